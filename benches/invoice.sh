#!/usr/bin/env bash
# Rollup + invoice benchmark over a generated warehouse, with DuckDB (from PyPI) running the
# same rollup SQL (sql/rollups/usage_hourly.sql, and the view sql/views/billable_flows.sql) over the same
# Parquet files as a reference, and a cross-check that both engines get the same bytes.
#
#   benches/invoice.sh                  # about 12 million flow rows (31 days, 40 tenants)
#   INSTANCES=12 benches/invoice.sh     # scale the MSK traffic up (flow rows grow linearly)
#
# Prints wall time and peak RSS for `linkmeter invoice` and for DuckDB. Figures go in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/linkmeter-target}"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release -q
BIN="$CARGO_TARGET_DIR/release/linkmeter"
WORK="${BENCH_DIR:-/tmp/linkmeter-bench-invoice}"
VENV="${DUCKDB_VENV:-$WORK/duckdb-venv}"
INSTANCES="${INSTANCES:-6}"

mkdir -p "$WORK"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check 'duckdb==1.4.*' 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check duckdb

dir="$WORK/estate"
if [ ! -f "$dir/.ingested-$INSTANCES" ]; then
  rm -rf "$dir"
  "$BIN" generate --out "$dir" --days 31 --accounts 40 --instances "$INSTANCES" --noise 0 | head -1
  "$BIN" ingest --config "$dir/linkmeter.toml" | sed -n 2,3p
  touch "$dir/.ingested-$INSTANCES"
fi
rows=$("$BIN" sql -w "$dir/warehouse" --format csv "SELECT COUNT(*) AS n FROM flows" | tail -1)
echo "flows rows: $rows"

/usr/bin/time -v "$BIN" invoice --config "$dir/linkmeter.toml" --month 2026-10 >"$WORK/invoice.out" 2>"$WORK/invoice.time"
head -1 "$WORK/invoice.out"
awk -F': ' '/Elapsed \(wall clock\)/ {print "linkmeter invoice (rollups + both views + CSVs): wall " $2} /Maximum resident/ {print "linkmeter invoice peak RSS MiB: " int($2/1024)}' "$WORK/invoice.time"
ours=$("$BIN" sql -w "$dir/warehouse" --format csv "SELECT CAST(SUM(bytes) AS BIGINT) AS b FROM usage_hourly WHERE month = '2026-10'" | tail -1)

cat >"$WORK/duck.py" <<'PY'
import duckdb, pathlib, sys, time
wh, sqldir = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET TimeZone='UTC'")
con.execute(f"CREATE VIEW flows AS SELECT * FROM read_parquet('{wh}/flows/**/*.parquet', hive_partitioning=true)")
for t in ("connections", "endpoint_enis"):
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{wh}/{t}/*.parquet')")
strip = lambda t: "\n".join(l for l in t.splitlines() if not l.strip().startswith("--"))
con.execute("CREATE VIEW billable_flows AS " + strip(pathlib.Path(sqldir, "views", "billable_flows.sql").read_text()))
q = strip(pathlib.Path(sqldir, "rollups", "usage_hourly.sql").read_text())
q = q.replace("${month_start}", "2026-10-01T00:00:00Z").replace("${month_end}", "2026-11-01T00:00:00Z")
t = time.time()
n, b = con.execute(f"SELECT COUNT(*), SUM(bytes) FROM ({q})").fetchone()
print(f"duckdb usage_hourly: rows={n} seconds={time.time() - t:.2f}")
print(f"duckdb_bytes={b}")
PY
/usr/bin/time -v "$VENV/bin/python" "$WORK/duck.py" "$dir/warehouse" sql >"$WORK/duck.out" 2>"$WORK/duck.time"
grep -v duckdb_bytes "$WORK/duck.out"
awk -F': ' '/Maximum resident/ {print "duckdb peak RSS MiB: " int($2/1024)}' "$WORK/duck.time"
theirs=$(sed -n 's/^duckdb_bytes=//p' "$WORK/duck.out")
if [ "$ours" = "$theirs" ]; then echo "usage_hourly bytes agree: $ours"; else echo "MISMATCH: linkmeter $ours vs duckdb $theirs"; exit 1; fi
