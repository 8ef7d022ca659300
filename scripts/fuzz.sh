#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of outside input (cargo fuzz, libFuzzer): each target
# in fuzz/ runs for SECONDS (default 60; `scripts/fuzz.sh 600` is the issue's ten minutes), one
# after the other, from a corpus seeded with fuzz/seeds/<target>, the shipped workflows and a day
# of generated landings. A crash stops the run and leaves its input under
# fuzz/artifacts/<target>/: make it a regression test in the normal suite, then fix it.
#
# usage: [FUZZ_JOBS=N] scripts/fuzz.sh [SECONDS] [TARGET...]   (N targets at once; default 1)
# needs: the nightly toolchain (`rustup toolchain list`) and cargo-fuzz (`cargo install cargo-fuzz`)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(asl_definition asl_paths crawler_sample convert_decode inference_request dataset_series firehose_request sigv4 console_forms)
fi
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }
rustup toolchain list | grep -q nightly || { echo "fuzz.sh: the nightly toolchain is missing" >&2; exit 1; }
CORPUS=fuzz/corpus
seed() { mkdir -p "$CORPUS/$1"; cp -n "${@:2}" "$CORPUS/$1/" 2>/dev/null || true; }
for target in "${TARGETS[@]}"; do
  [ -d "fuzz/seeds/$target" ] && seed "$target" fuzz/seeds/"$target"/*
done
seed asl_definition scheduler/workflows/*.asl.json
# A day of landings from the generator (gzip'd JSON, processing-failed envelopes) for the
# crawler, and their records for the decoders.
# (Built as the test suite builds it, so the shared target directory stays warm for the tests.)
mkdir -p "$CORPUS/crawler_sample" "$CORPUS/convert_decode"
if [ ! -d "$CORPUS/.landings" ]; then
  (source scripts/env.sh && cargo build -q -p scheduler --bin sluice --features scheduler/test-hooks &&
    "$CARGO_TARGET_DIR/debug/sluice" --lake "file://$PWD/$CORPUS/.landings" generate landings \
      --devices 3 --days 1 >/dev/null)
fi
# (A process substitution: `find` stopped early by `head` must not end the script.)
while read -r object; do
  cp -n "$object" "$CORPUS/crawler_sample/" 2>/dev/null || true
  name=$(basename "$object" .gz)
  [ -e "$CORPUS/convert_decode/$name" ] || gunzip -c "$object" | head -c 65536 >"$CORPUS/convert_decode/$name"
done < <(find "$CORPUS/.landings" -type f -name '*.gz' | head -8)

# The fuzz build (nightly, sanitizer coverage) keeps its own target directory: its flags differ
# from every other build's. It is the release profile without the shipped binary's whole-program
# LTO, which would cost minutes per target and buys a fuzzer nothing.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/sluice/fuzz-target}"
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
# FUZZ_JOBS targets run at once (default 1), each on one core for its whole time.
JOBS=${FUZZ_JOBS:-1}
RESULTS=$(mktemp -d)
# The fuzz build happens once, before any target runs (each `cargo fuzz run` would otherwise
# build while the others fuzz).
for target in "${TARGETS[@]}"; do cargo +nightly fuzz build --fuzz-dir fuzz "$target"; done
fuzz_one() {
  local target=$1 log="$RESULTS/$1.log" result runs
  if cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$CORPUS/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=4096 >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (fuzz/artifacts/$target)"
    tail -40 "$log" >&2
  fi
  # libFuzzer ends with "Done N runs in S second(s)"; a run cut short has only its "#N" lines.
  runs=$(grep -oE 'Done [0-9]+ runs' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  [ -n "$runs" ] || runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  printf '%-20s %10s %10s %s\n' "$target" "$SECONDS_PER_TARGET" "${runs:-0}" "$result" >"$RESULTS/$target.line"
}
for target in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  fuzz_one "$target" &
done
wait
printf '%-20s %10s %10s %s\n' target seconds runs result
failed=0
for target in "${TARGETS[@]}"; do
  cat "$RESULTS/$target.line"
  grep -q CRASH "$RESULTS/$target.line" && failed=1
done
rm -rf "$RESULTS"
exit $failed
