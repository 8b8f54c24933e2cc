#!/usr/bin/env bash
# Inventory edits against a full re-ingest, on the ingest benchmark's large estate (16 days,
# 40 accounts: 9.9 M flow-log records in 15,221 gzip files, 3.3 M `flows` rows).
#
#   benches/reattribute.sh
#   DAYS=4 benches/reattribute.sh      # the small estate
#
# Two warehouses over the same files: A ingested with one connection missing from the
# inventory (its traffic is stored as `unknown_endpoint`), B with the full inventory. Both
# full ingests are timed. Then, on A (each `linkmeter ingest`, timed; the raw files are left
# in place and nothing is read again, the summary shows it):
#   1. the missing connection is added: its rows are re-attributed from the warehouse; A must
#      then hold exactly B's attributed bytes per connection (checked, the script fails if not);
#   2. a connection gets a `deleted` time on the estate's last day (only that day's files are
#      opened), then another connection one half-way through (eight days of files);
#   3. a connection is added whose endpoint carried no traffic yet (a key scan, nothing read);
#   4. an account's cost center is renamed (nothing to do but list and check the inputs).
# Figures go in the README by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/linkmeter-target}"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release -q
BIN="$CARGO_TARGET_DIR/release/linkmeter"
WORK="${BENCH_DIR:-/tmp/linkmeter-bench-reattribute}"
DAYS="${DAYS:-16}"
dir="$WORK/estate"

rm -rf "$WORK"
mkdir -p "$WORK"
"$BIN" generate --out "$dir" --days "$DAYS" --accounts 40 --instances 3 --noise 3 | head -1
cp "$dir/inventory.toml" "$dir/full.toml"
# Without the second connection (blocks are separated by `[[connections]]` lines).
python3 - "$dir" <<'PY'
import sys, pathlib
d = pathlib.Path(sys.argv[1])
parts = (d / "full.toml").read_text().split("\n[[connections]]\n")
gone = parts.pop(2)
(d / "missing.toml").write_text("\n[[connections]]\n".join(parts))
arn = next(l.split(" = ")[1].strip('"') for l in gone.splitlines() if l.startswith("arn = "))
(d / "gone-arn").write_text(arn)
PY
for w in A B; do
  inv=$([ "$w" = A ] && echo missing.toml || echo full.toml)
  sed -e "s|^warehouse = .*|warehouse = \"warehouse-$w\"|" -e "s|^inventory = .*|inventory = \"$w.toml\"|" \
    "$dir/linkmeter.toml" >"$dir/$w.conf.toml"
  cp "$dir/$inv" "$dir/$w.toml"
done

timed() { # label config
  /usr/bin/time -v "$BIN" ingest --config "$2" >"$WORK/$1.out" 2>"$WORK/$1.time"
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/$1.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print int($2/1024)}' "$WORK/$1.time")
  grep -q '\[balanced\]' "$WORK/$1.out" || { echo "$1 did not balance"; cat "$WORK/$1.out"; exit 1; }
  echo "$secs" >"$WORK/$1.secs"
  printf '%-28s wall=%6ss peak_rss_mib=%s\n' "$1" "$secs" "$rss"
}

timed full-ingest-A "$dir/A.conf.toml"
timed full-ingest-B "$dir/B.conf.toml"

cp "$dir/full.toml" "$dir/A.toml"
timed add-connection "$dir/A.conf.toml"
grep -A8 '^re-attributed' "$WORK/add-connection.out" | sed 's/^/    /'
grep -q '^inputs   0 read' "$WORK/add-connection.out" || { echo "inputs were read again"; exit 1; }
per_conn="SELECT connection_arn, CAST(SUM(bytes) AS BIGINT) AS b FROM flows WHERE status = 'attributed' GROUP BY 1 ORDER BY 1"
"$BIN" sql -w "$dir/warehouse-A" --format csv "$per_conn" >"$WORK/A.csv"
"$BIN" sql -w "$dir/warehouse-B" --format csv "$per_conn" >"$WORK/B.csv"
if ! cmp -s "$WORK/A.csv" "$WORK/B.csv"; then
  echo "attributed bytes per connection differ from a fresh ingest:"; diff "$WORK/A.csv" "$WORK/B.csv" | head; exit 1
fi
echo "    attributed bytes per connection: identical to the fresh ingest ($(($(wc -l <"$WORK/A.csv") - 1)) connections)"

# A connection deleted on the estate's last day (a team leaves), then another half-way
# through (the same edit reaching back eight days).
delete_at() { # day label
  python3 - "$dir" "$1" <<'PY'
import sys, pathlib
d = pathlib.Path(sys.argv[1]); day = int(sys.argv[2])
text = (d / "A.toml").read_text()
parts = text.split("\n[[connections]]\n")
i = next(i for i, p in enumerate(parts) if i > 0 and "\ndeleted = " not in p)
lines = parts[i].splitlines()
at = next(j for j, l in enumerate(lines) if l.startswith("created = "))
lines.insert(at + 1, f'deleted = "2026-10-{day:02d}T00:00:00Z"')
parts[i] = "\n".join(lines)
(d / "A.toml").write_text("\n[[connections]]\n".join(parts))
PY
  timed "$2" "$dir/A.conf.toml"
  grep -A8 '^re-attributed' "$WORK/$2.out" | sed 's/^/    /'
}
delete_at "$DAYS" delete-last-day
delete_at $((1 + DAYS / 2)) delete-half-way

# A new connection whose endpoint has carried no traffic yet: only the key columns are scanned.
cat >>"$dir/A.toml" <<'TOML'

[[connections]]
arn = "arn:aws:kafka:us-east-1:210000000000:vpc-connection/900000000001/orders-prod/ffffffffffff"
cluster = "orders-prod"
auth = "SASL_IAM"
client_account = "210000000000"
vpc_id = "vpc-fffffffffffffffff"
endpoint_id = "vpce-fffffffffffffffff"
created = "2026-10-15T00:00:00Z"

[[connections.enis]]
id = "eni-fffffffffffffffff"
az_id = "use1-az1"
ips = ["10.250.1.10"]
TOML
timed add-idle-connection "$dir/A.conf.toml"

sed -i '0,/^cost_center = "/s//cost_center = "renamed-/' "$dir/A.toml"
timed rename-cost-center "$dir/A.conf.toml"

full=$(cat "$WORK/full-ingest-B.secs")
for s in add-connection delete-last-day delete-half-way add-idle-connection rename-cost-center; do
  awk -v a="$(cat "$WORK/$s.secs")" -v b="$full" -v n="$s" 'BEGIN {printf "%-28s %.3f of a full ingest\n", n, a/b}'
done
