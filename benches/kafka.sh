#!/usr/bin/env bash
# Kafka ingest benchmark: the flow-log lines of a generated estate (default-format accounts)
# produced into a 4-partition topic on a local Kafka-protocol broker (Tansu, started here like
# the tests do), then `linkmeter ingest` in batch mode from kafka://. Prints records/s and peak
# memory; figures go in the README.
#
#   benches/kafka.sh                 # 4 days, 40 tenants: ~1.2 M lines
#   DAYS=16 benches/kafka.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/linkmeter-target}"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release -q
BIN="$CARGO_TARGET_DIR/release/linkmeter"
WORK="${BENCH_DIR:-/tmp/linkmeter-bench-kafka}"
DAYS="${DAYS:-4}"

# shellcheck source=../.ci/services.sh
source .ci/services.sh
services_install >/dev/null
"$SVC_DIR/venv/bin/pip" install -q --disable-pip-version-check 'confluent-kafka==2.12.*'
trap services_stop EXIT
services_start

dir="$WORK/estate"
rm -rf "$WORK"
mkdir -p "$WORK"
"$BIN" generate --out "$dir" --days "$DAYS" --accounts 40 --instances 3 --noise 3 | head -1

"$SVC_DIR/venv/bin/python" - "$dir/flowlogs" "$KAFKA_BOOTSTRAP" <<'PY'
import gzip, pathlib, sys, time
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
root, bootstrap = pathlib.Path(sys.argv[1]), sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
admin.create_topics([NewTopic("bench-flowlogs", 4, 1)])["bench-flowlogs"].result()
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
n = 0
for f in sorted(root.rglob("*.gz")):
    lines = gzip.decompress(f.read_bytes()).decode().splitlines()
    if not lines or not lines[0].startswith("version account-id interface-id"):
        continue  # custom-format accounts: a Kafka source has one format
    for i, line in enumerate(lines[1:]):
        while True:
            try:
                p.produce("bench-flowlogs", line.encode(), partition=n % 4)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
    p.poll(0)
p.flush()
print(f"produced {n} messages")
open(sys.argv[1] + "/../produced.txt", "w").write(str(n))
PY
n=$(cat "$dir/produced.txt")
cat >"$dir/kafka.toml" <<TOML
warehouse = "warehouse"
inventory = "inventory.toml"

[[sources]]
name = "stream"
uri = "kafka://$KAFKA_BOOTSTRAP/bench-flowlogs"
TOML
/usr/bin/time -v "$BIN" ingest --config "$dir/kafka.toml" >"$dir/ingest.out" 2>"$dir/time.txt"
grep -q '\[balanced\]' "$dir/ingest.out" || { echo "run did not balance"; cat "$dir/ingest.out"; exit 1; }
grep '^records' "$dir/ingest.out"
secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$dir/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {print int($2/1024)}' "$dir/time.txt")
awk -v n="$n" -v s="$secs" -v r="$rss" 'BEGIN { printf "messages=%d seconds=%.2f records_per_s=%.0f peak_rss_mib=%d\n", n, s, n/s, r }'
/usr/bin/time -f "rerun (nothing new): %e s" "$BIN" ingest --config "$dir/kafka.toml" 2>&1 >/dev/null | tail -1
