#!/usr/bin/env bash
# The CUDA path's check, in two halves, since the GPU machine has no Rust toolchain:
#   scripts/cuda-check.sh build   here: builds `--features cuda` with the toolkit from
#                                 scripts/cuda-toolkit.sh (or $CUDA_HOME) and packs into
#                                 .cuda-check/ the models crate's tests, the sluice binary and
#                                 pedestrian from ../shared/bench/forecast;
#   scripts/cuda-check.sh run     on the GPU machine, from the repository root: runs the CUDA
#                                 tests (the GPU cell against the fused CPU cell, training on the
#                                 GPU against the CPU, a GPU model forecasting on the CPU), then
#                                 `sluice train` on pedestrian with the benchmark's settings, seed 0,
#                                 once with --device cuda and once with --device cpu, and prints
#                                 both runs' metrics and times. Logs go to $OUT (or .cuda-check/out).
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=.cuda-check

build() {
  source scripts/env.sh
  export CUDA_HOME="${CUDA_HOME:-$(scripts/cuda-toolkit.sh)}"
  export PATH="$CUDA_HOME/bin:$PATH" LIBRARY_PATH="$CUDA_HOME/lib:$CUDA_HOME/lib/stubs"
  # Hopper (the lent H200s); candle's kernels are compiled for this compute capability.
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
  # Its own target directory, so that CI's stays as the test command leaves it.
  export CARGO_TARGET_DIR="${CUDA_TARGET_DIR:-$HOME/.cache/sluice/cuda-target}"
  local shared=../shared/bench/forecast/data/pedestrian
  [ -f "$shared/train.jsonl" ] || { echo "cuda-check: $shared is missing" >&2; exit 1; }
  cargo build --locked -p scheduler --features cuda --bin sluice
  local tests
  tests=$(cargo test --locked -p models --features cuda --lib --no-run --message-format=json |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "models" and m.get("executable"):
        print(m["executable"])')
  # Stripped and xz-compressed, the pack fits the 64 MiB that travels to the GPU machine.
  rm -rf "$PACK" && mkdir -p "$PACK/pedestrian"
  strip -o "$PACK/models-tests" "$tests"
  strip -o "$PACK/sluice" "$CARGO_TARGET_DIR/debug/sluice"
  xz -T0 -6 "$PACK/models-tests" "$PACK/sluice"
  cp "$shared/train.jsonl" "$shared/test.jsonl" "$PACK/pedestrian/"
  du -sh "$PACK"/*
}

# The GPU machine's image may lack xz; Python's lzma is always there.
unpack() {
  local bin="${TMPDIR:-/tmp}/cuda-check-bin"
  mkdir -p "$bin"
  for name in models-tests sluice; do
    python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)' "$PACK/$name.xz" "$bin/$name"
    chmod +x "$bin/$name"
  done
  echo "$bin"
}

run() {
  local out="${OUT:-$PACK/out}"
  mkdir -p "$out"
  # The image's CUDA libraries: its toolkit's, else those of its Python's NVIDIA wheels.
  local libs
  libs=$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "lib"))' 2>/dev/null || true)
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${libs}:${LD_LIBRARY_PATH:-}"
  nvidia-smi -L
  local bin
  bin=$(unpack)
  ldd "$bin/sluice" | grep -E 'cuda|cublas|curand|nvrtc|not found' || true
  echo "== the CUDA tests"
  local failed=()
  "$bin/models-tests" deepar::tests::cuda --test-threads 1 2>&1 | tee "$out/tests.log" ||
    failed+=("the CUDA tests")
  printf '{"time_freq": "h", "context_length": "24", "prediction_length": "24", "epochs": "20",
    "num_cells": "40", "num_layers": "2", "dropout_rate": "0.1", "learning_rate": "0.001",
    "mini_batch_size": "32", "num_batches_per_epoch": "50", "likelihood": "student-T",
    "num_eval_samples": "100"}' >"$out/hyperparameters.json"
  for device in cuda cpu; do
    echo "== sluice train --device $device (pedestrian, seed 0)"
    local started=$SECONDS
    "$bin/sluice" train --train "$PACK/pedestrian/train.jsonl" --test "$PACK/pedestrian/test.jsonl" \
      --hyperparameters "$out/hyperparameters.json" --model-dir "${TMPDIR:-/tmp}/cuda-check-model-$device" --seed 0 \
      --device "$device" --output json >"$out/train-$device.json" 2>"$out/train-$device.log" ||
      { failed+=("train --device $device"); tail -5 "$out/train-$device.log"; continue; }
    python3 - "$out/train-$device.json" "$device" $((SECONDS - started)) <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
metrics = report["test_metrics"]
print(f"{sys.argv[2]}: mean_wQuantileLoss {metrics['deepar']['mean_weighted_quantile_loss']:.4f}"
      f" (seasonal naive {metrics['seasonal_naive']['mean_weighted_quantile_loss']:.4f}),"
      f" best epoch {report['best_epoch']}, training {report['train_seconds']:.1f} s, wall {sys.argv[3]} s")
EOF
  done
  if [ ${#failed[@]} -gt 0 ]; then
    (IFS=","; echo "cuda-check: FAILED: ${failed[*]}" >&2)
    return 1
  fi
  echo "cuda-check: passed"
}

case "${1:-}" in
  build) build ;;
  run) run ;;
  *) echo "usage: scripts/cuda-check.sh build|run" >&2; exit 2 ;;
esac
