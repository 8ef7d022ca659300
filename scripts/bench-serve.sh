#!/usr/bin/env bash
# The serving benchmark: `sluice serve` beside GluonTS's predictor behind a minimal Python HTTP
# server, same client, same run. Reuses the forecasting benchmark's GluonTS environment (set up
# once, as scripts/bench-forecast.sh does). Extra arguments go to `sluice-bench serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/gluonts-venv.sh
cargo build --release --locked -p scheduler -p bench
"$CARGO_TARGET_DIR/release/sluice-bench" serve --data "$SHARED/data/pedestrian" \
  --gluonts-python "$VENV/bin/python" "$@"
