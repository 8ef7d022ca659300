#!/usr/bin/env bash
# The serving benchmark: `sluice serve` beside GluonTS's predictor behind a minimal Python HTTP
# server, same client, same run. Reuses the forecasting benchmark's GluonTS environment (set up
# once, as scripts/bench-forecast.sh does). Extra arguments go to `sluice bench serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SHARED=${SHARED:-../shared/bench/forecast}
[ -d "$SHARED" ] || { echo "bench-serve: $SHARED not found (the shared benchmark kit)" >&2; exit 1; }
VENV=/tmp/sluice-bench/gluonts
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import gluonts.torch' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$SHARED/requirements.txt"
  "$VENV/bin/pip" install -q scipy
fi
cargo build --release --locked -p scheduler --bin sluice
"$CARGO_TARGET_DIR/release/sluice" bench serve --data "$SHARED/data/pedestrian" \
  --gluonts-python "$VENV/bin/python" "$@"
