#!/usr/bin/env bash
# Ingest benchmark: `linkmeter ingest` against DuckDB (from PyPI) on the same flow-log files, run
# alternately in one session, plus the whole-estate figures.
#
#   benches/ingest.sh                        # the DuckDB comparison on 4 M records, then the estates
#   SETS="4000000 40000000" ESTATES= benches/ingest.sh   # memory stays flat when the input grows 10x
#   SETS= ESTATES="small large" benches/ingest.sh        # only the generated estates
#
# Sets (SETS, records each): benches/flowlog_set.py writes 16 gzip files of default-format v2
# records with a header (20% on the multi-VPC ports, half of those on endpoint ENIs of a
# generated inventory, 2% REJECT, spans up to 10 minutes). Each engine runs RUNS times after a
# warm-up, alternating:
#   linkmeter  `linkmeter ingest` into a fresh warehouse: decode, attribute, split hours, write
#              `flows` (40 columns) and its hourly sums as Parquet, commit
#   duckdb     read_csv of the same files, the multi-VPC port filter and an hourly GROUP BY
#              (hour, ENI, account, addresses, action) written to one Parquet file
# and the script checks both count the same relevant records and bytes. Prints medians, the
# ratio (linkmeter / DuckDB wall time) and peak RSS. Estates (ESTATES): `linkmeter generate`
# estates of many small files (one per account and hour), records/s with all cores and with
# one. Figures go in the README by hand.
#
# In the DuckDB comparison both engines write to tmpfs (/dev/shm) when there is one; OUT_DIR
# puts their output elsewhere. Why: on ext4 without a journal (this machine's root), ext4 does
# not reuse an inode freed within the last minute and checks each one it passes on every file
# it creates, so a run right after the removal of the last run's warehouse (hundreds of files)
# pays for that removal, more with every run, while DuckDB writes one file.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/linkmeter-target}"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release -q
BIN="$CARGO_TARGET_DIR/release/linkmeter"
WORK="${BENCH_DIR:-/tmp/linkmeter-bench}"
SETS="${SETS-4000000}"
ESTATES="${ESTATES-small large}"
RUNS="${RUNS:-3}"
VENV="${DUCKDB_VENV:-$WORK/duckdb-venv}"
OUT="${OUT_DIR:-$( [ -d /dev/shm ] && echo /dev/shm/linkmeter-bench || echo "$WORK/out")}"
mkdir -p "$WORK" "$OUT"
trap 'rm -rf "$OUT"' EXIT

# Runs a command under /usr/bin/time; prints "wall_seconds peak_mib" and keeps its stdout.
timed() {
  local out="$1"; shift
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$out" 2>"$out.err"
  awk '{printf "%.2f %d\n", $1, $2 / 1024}' "$WORK/time"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

if [ -n "$SETS" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'duckdb==2.0.*' 2>/dev/null \
    || "$VENV/bin/pip" install -q --disable-pip-version-check duckdb
  cat >"$WORK/duck_ingest.py" <<'PY'
import duckdb, sys
src, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET TimeZone='UTC'")
con.execute(f"""COPY (
  SELECT time_bucket(INTERVAL 1 HOUR, to_timestamp("start")) AS hour, "interface-id" AS eni,
         "account-id" AS account, srcaddr, dstaddr, action,
         COUNT(*) AS records, SUM(bytes) AS bytes, SUM(packets) AS packets
  FROM read_csv('{src}/*.gz', delim=' ', header=true)
  WHERE srcport BETWEEN 14001 AND 14100 OR dstport BETWEEN 14001 AND 14100
  GROUP BY ALL) TO '{out}' (FORMAT parquet)""")
n, b = con.execute(f"SELECT SUM(records), CAST(SUM(bytes) AS BIGINT) FROM '{out}'").fetchone()
print(f"{n} {b}")
PY
  inv="$WORK/set-inventory"
  [ -f "$inv/inventory.toml" ] || "$BIN" generate --out "$inv" --days 1 --accounts 40 >/dev/null
  for records in $SETS; do
    dir="$WORK/set-$records"
    if [ ! -f "$dir/done" ]; then
      rm -rf "$dir"
      python3 benches/flowlog_set.py --inventory "$inv/inventory.toml" --out "$dir/flowlogs" --records "$records" --files 16
      touch "$dir/done"
    fi
    out="$OUT/set-$records"
    mkdir -p "$out"
    cat >"$dir/linkmeter.toml" <<TOML
warehouse = "$out/warehouse"
inventory = "$inv/inventory.toml"

[[sources]]
name = "set"
uri = "flowlogs"
TOML
    gz=$(du -sb "$dir/flowlogs" | cut -f1)
    : >"$dir/lm.txt"; : >"$dir/duck.txt"; : >"$dir/lm_rss.txt"; : >"$dir/duck_rss.txt"
    for i in $(seq 0 "$RUNS"); do
      rm -rf "$out/warehouse" "$out/duck.parquet"
      read -r ls lm < <(timed "$dir/ingest.out" "$BIN" ingest --config "$dir/linkmeter.toml")
      read -r ds dm < <(timed "$dir/duck.out" "$VENV/bin/python" "$WORK/duck_ingest.py" "$dir/flowlogs" "$out/duck.parquet")
      [ "$i" -eq 0 ] && continue  # warm-up
      echo "set $records run $i: linkmeter ${ls}s ${lm}MiB, duckdb ${ds}s ${dm}MiB"
      echo "$ls" >>"$dir/lm.txt"; echo "$ds" >>"$dir/duck.txt"
      echo "$lm" >>"$dir/lm_rss.txt"; echo "$dm" >>"$dir/duck_rss.txt"
    done
    grep -q '\[balanced\]' "$dir/ingest.out" || { echo "run did not balance"; cat "$dir/ingest.out"; exit 1; }
    # Relevant = attributed + unattributed records and bytes; DuckDB's port filter must agree.
    rel=$(awk '/^records/ {gsub(",", ""); printf "%.0f", $5 + $8}' "$dir/ingest.out")
    relb=$(awk '/^bytes/ {gsub(",", ""); printf "%.0f", $5 + $8}' "$dir/ingest.out")
    read -r dn db <"$dir/duck.out"
    [ "$rel" = "$dn" ] && [ "$relb" = "$db" ] || { echo "relevant records differ: linkmeter $rel / $relb bytes, duckdb $dn / $db"; exit 1; }
    l=$(median <"$dir/lm.txt"); d=$(median <"$dir/duck.txt")
    lr=$(sort -n "$dir/lm_rss.txt" | tail -1); dr=$(sort -n "$dir/duck_rss.txt" | tail -1)
    awk -v n="$records" -v g="$gz" -v rel="$rel" -v l="$l" -v d="$d" -v lr="$lr" -v dr="$dr" 'BEGIN {
      printf "set records=%d gzip_bytes=%d relevant=%d linkmeter_s=%.2f duckdb_s=%.2f ratio=%.2f linkmeter_records_per_s=%.0f linkmeter_peak_mib=%d duckdb_peak_mib=%d\n",
        n, g, rel, l, d, l / d, n / l, lr, dr }'
  done
fi

for size in $ESTATES; do
  case "$size" in
    small) args=(--days 4 --accounts 40 --instances 3 --noise 3) ;;
    large) args=(--days 16 --accounts 40 --instances 3 --noise 3) ;;
    *) echo "unknown estate $size" >&2; exit 2 ;;
  esac
  dir="$WORK/$size"
  rm -rf "$dir"
  echo "== $size: generating (${args[*]})"
  "$BIN" generate --out "$dir" "${args[@]}" | head -1
  # The first `lines =` is the estate's (a planted section further down has its own).
  lines=$(grep -m1 '^lines = ' "$dir/generated.toml" | tr -dc 0-9)
  gz=$(du -sb "$dir/flowlogs" | cut -f1)
  for workers in "$(nproc)" 1; do
    rm -rf "$dir/warehouse"
    read -r secs rss < <(timed "$dir/ingest.out" "$BIN" ingest --config "$dir/linkmeter.toml" --workers "$workers")
    grep -q '\[balanced\]' "$dir/ingest.out" || { echo "run did not balance"; cat "$dir/ingest.out"; exit 1; }
    awk -v s="$size" -v l="$lines" -v g="$gz" -v w="$workers" -v t="$secs" -v r="$rss" 'BEGIN {
      printf "%-6s records=%d gzip_bytes=%d workers=%d seconds=%.2f records_per_s=%.0f peak_rss_mib=%d\n", s, l, g, w, t, l / t, r }'
  done
done
