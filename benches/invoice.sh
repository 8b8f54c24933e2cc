#!/usr/bin/env bash
# Month-close benchmark over generated warehouses, with DuckDB (from PyPI) running the same
# portable SQL over the same Parquet files, and a cross-check that both engines get the same
# answer (the script fails on a difference).
#
#   benches/invoice.sh                  # 12 million flow rows (31 days, 40 tenants, INSTANCES=6)
#   SIZES="6 48" benches/invoice.sh     # and an estate 8× larger (about 100 million rows)
#
# For each estate: `linkmeter invoice` (wall, peak RSS, the engine's own memory peak), then
# three queries, each run by `linkmeter sql` (DataFusion) and by DuckDB as whole processes:
#   usage_hourly    sql/rollups/usage_hourly.sql for 2026-10 (reads flow_hours)
#   billable_flows  the view over the raw rows (sql/views/billable_flows.sql), the month summed
#   reconciliation  sql/views/reconciliation.sql for 2026-10 (flow_hours and broker_metrics)
# With BALLISTA=1 (a build with --features ballista) the invoice and the three queries also run
# on a Ballista cluster started here: a scheduler and two executors (2 task slots each) on this
# machine, so the figures show the cluster's fixed costs, not a speed-up (the executors share
# the same cores); the answers must match.
# Figures go in the README. DuckDB reads the files on disk by glob, so the estates must not
# hold files a Delta version removed (a fresh ingest has none). The estates are kept in
# BENCH_DIR between runs (delete estate-N to generate and ingest again).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/linkmeter-target}"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
BALLISTA="${BALLISTA:-}"
if [ -n "$BALLISTA" ]; then cargo build --release -q --features ballista; else cargo build --release -q; fi
BIN="$CARGO_TARGET_DIR/release/linkmeter"
WORK="${BENCH_DIR:-/tmp/linkmeter-bench-invoice}"
VENV="${DUCKDB_VENV:-$WORK/duckdb-venv}"
SIZES="${SIZES:-${INSTANCES:-6}}"
START=2026-10-01T00:00:00Z
END=2026-11-01T00:00:00Z

mkdir -p "$WORK"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check 'duckdb==1.4.*' 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check duckdb

strip() { grep -v '^[[:space:]]*--' "$1" | sed "s/\${month_start}/$START/g; s/\${month_end}/$END/g"; }
# The three queries, each reduced to one row that both engines must agree on.
{ echo "SELECT COUNT(*) AS n, CAST(SUM(bytes) AS VARCHAR) AS b FROM ("; strip sql/rollups/usage_hourly.sql; echo ") q"; } >"$WORK/q_usage_hourly.sql"
echo "SELECT COUNT(*) AS n, CAST(SUM(CAST(bytes AS DECIMAL(38, 0))) AS VARCHAR) AS b FROM billable_flows WHERE CAST(date AS VARCHAR) >= '2026-10-01' AND CAST(date AS VARCHAR) < '2026-11-01'" >"$WORK/q_billable_flows.sql"
{ echo "SELECT COUNT(*) AS n, CAST(SUM(flow_bytes) AS VARCHAR) AS b, CAST(SUM(broker_bytes) AS VARCHAR) AS m FROM ("; strip sql/views/reconciliation.sql; echo ") q"; } >"$WORK/q_reconciliation.sql"

cat >"$WORK/duck.py" <<'PY'
import duckdb, pathlib, sys
wh, sqldir, query = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("SET TimeZone='UTC'")
for t in ("flows", "flow_hours", "broker_metrics", "broker_hours"):
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{wh}/{t}/**/*.parquet', hive_partitioning=true)")
for t in ("connections", "endpoint_enis"):
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{wh}/{t}/*.parquet')")
strip = lambda t: "\n".join(l for l in t.splitlines() if not l.strip().startswith("--"))
for v in ("billable_flows", "billable_hours"):
    con.execute(f"CREATE VIEW {v} AS " + strip(pathlib.Path(sqldir, "views", v + ".sql").read_text()))
row = con.execute(pathlib.Path(query).read_text()).fetchone()
print(",".join("" if v is None else str(v) for v in row))
PY

# Runs a command under /usr/bin/time; prints "wall_seconds peak_mib" and keeps its stdout.
timed() {
  local out="$1"; shift
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$out"
  awk '{printf "%.2f %d\n", $1, $2 / 1024}' "$WORK/time"
}

if [ -n "$BALLISTA" ]; then
  SCHED_PORT="${SCHED_PORT:-50850}"
  "$BIN" ballista scheduler --bind "127.0.0.1:$SCHED_PORT" 2>"$WORK/scheduler.log" &
  PIDS="$!"
  sleep 2
  for i in 1 2; do
    p=$((SCHED_PORT + 2 * i - 1))
    "$BIN" ballista executor --scheduler "127.0.0.1:$SCHED_PORT" --bind-host 127.0.0.1 \
      --external-host 127.0.0.1 --port "$p" --grpc-port $((p + 1)) --concurrent-tasks 2 \
      2>"$WORK/executor-$i.log" &
    PIDS="$PIDS $!"
  done
  trap 'kill $PIDS 2>/dev/null' EXIT
  sleep 3
  CLUSTER="df://127.0.0.1:$SCHED_PORT"
fi

for n in $SIZES; do
  dir="$WORK/estate-$n"
  if [ ! -f "$dir/.ingested" ]; then
    rm -rf "$dir"
    "$BIN" generate --out "$dir" --days 31 --accounts 40 --instances "$n" --noise 0 | head -1
    "$BIN" ingest --config "$dir/linkmeter.toml" | sed -n 2,3p
    touch "$dir/.ingested"
  fi
  wh="$dir/warehouse"
  rows=$("$BIN" sql -w "$wh" --format csv "SELECT COUNT(*) AS n FROM flows" | tail -1)
  sums=$("$BIN" sql -w "$wh" --format csv "SELECT COUNT(*) AS n FROM flow_hours" | tail -1)
  points=$("$BIN" sql -w "$wh" --format csv "SELECT COUNT(*) AS n FROM broker_metrics" | tail -1)
  echo "== INSTANCES=$n: flows rows $rows, flow_hours rows $sums, broker_metrics datapoints $points"
  read -r wall mib < <(timed "$WORK/invoice.out" "$BIN" invoice --config "$dir/linkmeter.toml" --month 2026-10)
  echo "linkmeter invoice --month 2026-10: wall ${wall}s, peak RSS ${mib} MiB; $(grep -o 'query engine memory: .*' "$WORK/invoice.out")"
  if [ -n "$BALLISTA" ]; then
    cp "$wh/reports/month=2026-10/finance-chargeback.csv" "$WORK/local.csv"
    { cat "$dir/linkmeter.toml"; printf '\n[engine]\nkind = "ballista"\nscheduler = "%s"\n' "$CLUSTER"; } >"$dir/linkmeter-ballista.toml"
    read -r bwall bmib < <(timed "$WORK/invoice-b.out" "$BIN" invoice --config "$dir/linkmeter-ballista.toml" --month 2026-10)
    cmp -s "$WORK/local.csv" "$wh/reports/month=2026-10/finance-chargeback.csv" \
      || { echo "MISMATCH: the cluster's finance CSV differs"; exit 1; }
    echo "linkmeter invoice on the cluster: wall ${bwall}s, client peak RSS ${bmib} MiB (same finance CSV)"
  fi
  for q in usage_hourly billable_flows reconciliation; do
    # billable_flows joins every flow row of the month: DataFusion cannot spill that join's
    # table, so it runs without the default 512 MiB budget (the close never uses it).
    budget=512MiB; [ "$q" = billable_flows ] && budget=unlimited
    read -r w1 m1 < <(timed "$WORK/ours.out" env LINKMETER_MEMORY_LIMIT=$budget "$BIN" sql -w "$wh" --format csv -f "$WORK/q_$q.sql")
    read -r w2 m2 < <(timed "$WORK/duck.out" "$VENV/bin/python" "$WORK/duck.py" "$wh" sql "$WORK/q_$q.sql")
    ours=$(tail -1 "$WORK/ours.out")
    theirs=$(tail -1 "$WORK/duck.out")
    ratio=$(awk -v a="$w1" -v b="$w2" 'BEGIN {printf "%.2f", a / b}')
    printf '%-15s linkmeter sql %6.2fs %5d MiB | duckdb %6.2fs %5d MiB | ratio %s | %s\n' "$q" "$w1" "$m1" "$w2" "$m2" "$ratio" "$ours"
    if [ "$ours" != "$theirs" ]; then echo "MISMATCH in $q: linkmeter $ours vs duckdb $theirs"; exit 1; fi
    if [ -n "$BALLISTA" ]; then
      read -r w3 m3 < <(timed "$WORK/cluster.out" "$BIN" sql -w "$wh" --engine "$CLUSTER" --format csv -f "$WORK/q_$q.sql")
      printf '%-15s on the cluster %6.2fs (client %d MiB) | against local %s\n' "$q" "$w3" "$m3" "$(awk -v a="$w3" -v b="$w1" 'BEGIN {printf "%.2f", a / b}')"
      if [ "$(tail -1 "$WORK/cluster.out")" != "$ours" ]; then echo "MISMATCH in $q on the cluster: $(tail -1 "$WORK/cluster.out")"; exit 1; fi
    fi
  done
done
if [ -n "$BALLISTA" ]; then
  # The cluster processes' peak memory over every run above (scheduler, then the executors).
  for p in $PIDS; do
    echo "cluster process $p: peak RSS $(awk '/VmHWM/ {printf "%d MiB", $2 / 1024}' "/proc/$p/status")"
  done
fi
