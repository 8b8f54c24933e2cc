#!/usr/bin/env bash
# S3 ingest benchmark: a generated estate uploaded to a local S3-compatible server (moto, from
# PyPI, started here like the tests do), then `linkmeter ingest` from s3:// with the default
# client settings. Prints objects/s, records/s, MiB/s and peak memory; figures go in the README.
#
#   benches/s3.sh                      # 4 days, 40 tenants: ~3,800 objects, ~2.5 M records
#   DAYS=16 benches/s3.sh              # ~15,000 objects, ~10 M records
#
# moto is a single Python process, so this measures linkmeter against a slow server: compare
# with benches/ingest.sh (the same estate from local files) to see what the network path costs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/linkmeter-target}"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release -q
BIN="$CARGO_TARGET_DIR/release/linkmeter"
WORK="${BENCH_DIR:-/tmp/linkmeter-bench-s3}"
DAYS="${DAYS:-4}"

# shellcheck source=../.ci/services.sh
source .ci/services.sh
services_install >/dev/null
trap services_stop EXIT
services_start

dir="$WORK/estate"
rm -rf "$WORK"
mkdir -p "$WORK"
"$BIN" generate --out "$dir" --days "$DAYS" --accounts 40 --instances 3 --noise 3 | head -1
lines=$(grep '^lines' "$dir/generated.toml" | tr -dc 0-9)

"$SVC_DIR/venv/bin/python" - "$dir/flowlogs" <<'PY'
import boto3, os, sys, pathlib, concurrent.futures as cf
from botocore.config import Config
root = pathlib.Path(sys.argv[1])
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
s3.create_bucket(Bucket="bench-flowlogs")
files = [p for p in root.rglob("*") if p.is_file()]
def put(p):
    s3.put_object(Bucket="bench-flowlogs", Key="central/" + str(p.relative_to(root)), Body=p.read_bytes())
with cf.ThreadPoolExecutor(16) as ex:
    list(ex.map(put, files))
print(f"uploaded {len(files)} objects")
PY

cat >"$dir/s3.toml" <<TOML
warehouse = "warehouse"
inventory = "inventory.toml"
prices = "prices.toml"

[s3]
endpoint_url = "$S3_ENDPOINT"
force_path_style = true

[[sources]]
name = "central"
uri = "s3://bench-flowlogs/central/"
TOML
objects=$(find "$dir/flowlogs" -type f | wc -l)
bytes=$(du -sb "$dir/flowlogs" | cut -f1)
/usr/bin/time -v "$BIN" ingest --config "$dir/s3.toml" >"$dir/ingest.out" 2>"$dir/time.txt"
grep -q '\[balanced\]' "$dir/ingest.out" || { echo "run did not balance"; cat "$dir/ingest.out"; exit 1; }
grep '^S3:' "$dir/ingest.out"
secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$dir/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {print int($2/1024)}' "$dir/time.txt")
awk -v o="$objects" -v l="$lines" -v b="$bytes" -v s="$secs" -v r="$rss" 'BEGIN {
  printf "objects=%d records=%d gzip_mib=%.1f seconds=%.2f objects_per_s=%.0f records_per_s=%.0f mib_per_s=%.1f peak_rss_mib=%d\n",
    o, l, b/1048576, s, o/s, l/s, b/1048576/s, r }'
# A rerun lists and skips everything: the cost of an incremental run with nothing new.
/usr/bin/time -f "rerun (nothing new): %e s" "$BIN" ingest --config "$dir/s3.toml" 2>&1 >/dev/null | tail -1
