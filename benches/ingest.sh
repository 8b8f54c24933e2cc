#!/usr/bin/env bash
# Whole-command ingest benchmark on a generated estate of gzip flow-log files.
#
#   benches/ingest.sh            # ~10 million records (and a ~2.5 million run to show memory is flat)
#   SIZES="small" benches/ingest.sh
#
# Prints records/s end to end (decode + attribute + write Parquet) with all cores and with one,
# and peak resident memory, from /usr/bin/time. Figures go in the README by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/linkmeter-target}"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release -q
BIN="$CARGO_TARGET_DIR/release/linkmeter"
WORK="${BENCH_DIR:-/tmp/linkmeter-bench}"
SIZES="${SIZES:-small large}"

for size in $SIZES; do
  case "$size" in
    small) args=(--days 4 --accounts 40 --instances 3 --noise 3) ;;
    large) args=(--days 16 --accounts 40 --instances 3 --noise 3) ;;
    *) echo "unknown size $size" >&2; exit 2 ;;
  esac
  dir="$WORK/$size"
  rm -rf "$dir"
  echo "== $size: generating (${args[*]})"
  "$BIN" generate --out "$dir" "${args[@]}" | head -1
  lines=$(grep '^lines' "$dir/generated.toml" | tr -dc 0-9)
  gz=$(du -sb "$dir/flowlogs" | cut -f1)
  for workers in "$(nproc)" 1; do
    rm -rf "$dir/warehouse"
    /usr/bin/time -v "$BIN" ingest --config "$dir/linkmeter.toml" --workers "$workers" >"$dir/ingest.out" 2>"$dir/time.txt"
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$dir/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print int($2/1024)}' "$dir/time.txt")
    rate=$(awk -v l="$lines" -v s="$secs" 'BEGIN {printf "%.0f", l/s}')
    printf '%-6s records=%s gzip_bytes=%s workers=%s seconds=%s records_per_s=%s peak_rss_mib=%s\n' \
      "$size" "$lines" "$gz" "$workers" "$secs" "$rate" "$rss"
    grep -q '\[balanced\]' "$dir/ingest.out" || { echo "run did not balance"; cat "$dir/ingest.out"; exit 1; }
  done
done
