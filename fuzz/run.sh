#!/usr/bin/env bash
# Runs the fuzz targets with libFuzzer (needs a nightly toolchain and `cargo install cargo-fuzz`).
#   fuzz/run.sh                       # every target, 10 minutes or 10 M runs each
#   fuzz/run.sh 60 flow_text otel     # these targets, 60 s each
# Corpora grow in fuzz/corpus/<target> (seeded from fuzz/seeds/<target>), crashes land in
# fuzz/artifacts/<target>; see docs/fuzzing.md for what to do with one.
# FUZZ_TARGET_DIR moves the (large) build directory out of the clone.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(flow_text gzip_paths flow_parquet metric_stream otel prometheus bill inventory price_book)
dir=()
[ -n "${FUZZ_TARGET_DIR:-}" ] && dir=(--target-dir "$FUZZ_TARGET_DIR")
failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t (${secs}s, at most 10 M runs)"
  # rss_limit: the decoders hold an input to its limits, so 2 GiB is already generous;
  # timeout: no single input may take 10 s (the hang check).
  cargo +nightly fuzz run -O "${dir[@]}" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -runs=10000000 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -max_len=65536 -timeout=10 -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
    || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
