#!/usr/bin/env bash
# Kafka ingest benchmark: the flow-log lines of a generated estate (default-format accounts)
# produced into a 4-partition topic on a local Kafka-protocol broker (Tansu, started here like
# the tests do), then, alternately (RUNS times each, after a warm-up of both), the bare
# consumer (`examples/kafka_count.rs`: rdkafka with linkmeter's settings, reading every
# partition to its end and only counting messages) and `linkmeter ingest` in batch mode from
# kafka:// into a fresh warehouse. Prints medians, records/s, the ingest/bare ratio and peak
# memory; figures go in the README.
#
# ORDER=time produces the files in the order of their time stamps, as a delivery pipeline
# would (the default, path order, is tenant by tenant: every round spans every hour, the
# most files per round).
#
# The warehouse goes to tmpfs (/dev/shm) when there is one; OUT_DIR=/some/dir puts it there
# instead. Why: on a root filesystem of ext4 without a journal (this machine's), ext4 does not
# reuse an inode freed within the last minute and checks each one it passes on every file it
# creates, so a run right after the removal of the last run's warehouse (hundreds of files)
# pays for that removal, more with every run. The bare consumer writes nothing.
#
#   benches/kafka.sh                 # 4 days, 40 tenants: ~1.7 M lines
#   DAYS=16 RUNS=5 benches/kafka.sh
#   ORDER=time RUNS=5 benches/kafka.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/linkmeter-target}"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release -q
cargo build --release -q --example kafka_count
BIN="$CARGO_TARGET_DIR/release/linkmeter"
COUNT="$CARGO_TARGET_DIR/release/examples/kafka_count"
RUNS="${RUNS:-3}"
WORK="${BENCH_DIR:-/tmp/linkmeter-bench-kafka}"
DAYS="${DAYS:-4}"
OUT="${OUT_DIR:-$( [ -d /dev/shm ] && echo /dev/shm/linkmeter-bench-kafka || echo "$WORK/out")}"

# shellcheck source=../.ci/services.sh
source .ci/services.sh
services_install >/dev/null
"$SVC_DIR/venv/bin/pip" install -q --disable-pip-version-check 'confluent-kafka==2.12.*'
trap 'services_stop; rm -rf "$OUT"' EXIT
services_start

dir="$WORK/estate"
rm -rf "$WORK"
mkdir -p "$WORK"
"$BIN" generate --out "$dir" --days "$DAYS" --accounts 40 --instances 3 --noise 3 | head -1

"$SVC_DIR/venv/bin/python" - "$dir/flowlogs" "$KAFKA_BOOTSTRAP" "${ORDER:-path}" <<'PY'
import gzip, pathlib, re, sys, time
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
root, bootstrap = pathlib.Path(sys.argv[1]), sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
admin.create_topics([NewTopic("bench-flowlogs", 4, 1)])["bench-flowlogs"].result()
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
n = 0
files = sorted(root.rglob("*.gz"))
if sys.argv[3] == "time":  # AWS names end in _YYYYMMDDTHHMMZ_hash.log.gz
    files.sort(key=lambda f: (re.search(r"_(\d{8}T\d{4}Z)_", f.name).group(1), str(f)))
for f in files:
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
mkdir -p "$OUT"
cat >"$dir/kafka.toml" <<TOML
warehouse = "$OUT/warehouse"
inventory = "inventory.toml"

[[sources]]
name = "stream"
uri = "kafka://$KAFKA_BOOTSTRAP/bench-flowlogs"
TOML
# Runs a command under /usr/bin/time; prints "wall_seconds peak_mib" and keeps its stdout.
timed() {
  local out="$1"; shift
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$out"
  awk '{printf "%.2f %d\n", $1, $2 / 1024}' "$WORK/time"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$WORK/bare.txt"; : >"$WORK/ingest.txt"; : >"$WORK/ingest_rss.txt"
for i in $(seq 0 "$RUNS"); do
  read -r bs bm < <(timed "$dir/bare.out" "$COUNT" "$KAFKA_BOOTSTRAP" bench-flowlogs)
  grep -q "messages=$n " "$dir/bare.out" || { echo "bare consumer read a different count"; cat "$dir/bare.out"; exit 1; }
  rm -rf "$OUT/warehouse"
  read -r is im < <(timed "$dir/ingest.out" "$BIN" ingest --config "$dir/kafka.toml")
  grep -q '\[balanced\]' "$dir/ingest.out" || { echo "run did not balance"; cat "$dir/ingest.out"; exit 1; }
  got=$(grep -o '^records *[0-9,]* in' "$dir/ingest.out" | tr -dc 0-9)
  [ "$got" = "$n" ] || { echo "ingest read $got records of $n messages"; exit 1; }
  [ "$i" -eq 0 ] && continue  # warm-up
  echo "run $i: bare ${bs}s ${bm}MiB, ingest ${is}s ${im}MiB"
  echo "$bs" >>"$WORK/bare.txt"; echo "$is" >>"$WORK/ingest.txt"; echo "$im" >>"$WORK/ingest_rss.txt"
done
grep '^records' "$dir/ingest.out"
b=$(median <"$WORK/bare.txt"); g=$(median <"$WORK/ingest.txt"); r=$(sort -n "$WORK/ingest_rss.txt" | tail -1)
awk -v n="$n" -v b="$b" -v g="$g" -v r="$r" 'BEGIN {
  printf "messages=%d bare_seconds=%.2f bare_per_s=%.0f ingest_seconds=%.2f ingest_per_s=%.0f ingest_of_bare=%.2f peak_rss_mib=%d\n", n, b, n/b, g, n/g, b/g, r }'
/usr/bin/time -f "rerun (nothing new): %e s" "$BIN" ingest --config "$dir/kafka.toml" 2>&1 >/dev/null | tail -1
