#!/usr/bin/env bash
# The forecasting benchmark: sluice's DeepAR beside GluonTS's (PyTorch) in the same run, on
# ../shared/bench/forecast's datasets, 5 seeds each, with the peer's fixed settings. Sets up
# GluonTS's virtual environment once, as its README says (about 10 minutes, 5.8 GB).
# Extra arguments go to `sluice-bench forecast` (e.g. --seeds 2, --gluonts-threads 1,2).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/gluonts-venv.sh
cargo build --release --locked -p scheduler -p bench
"$CARGO_TARGET_DIR/release/sluice-bench" forecast --data "$SHARED/data" \
  --gluonts-python "$VENV/bin/python" --gluonts-script "$SHARED/run_gluonts.py" "$@"
