#!/usr/bin/env bash
# The forecasting benchmark: sluice's DeepAR beside GluonTS's (PyTorch) and statsforecast's
# classical models (AutoETS, AutoARIMA, AutoTheta, MSTL, SeasonalNaive) in the same run, on
# ../shared/bench/forecast's datasets, 5 seeds each, with the peer's fixed settings. Sets up
# GluonTS's virtual environment once, as its README says (about 10 minutes, 5.8 GB), and
# statsforecast's (pinned, from PyPI, under a minute).
# Extra arguments go to `sluice-bench forecast` (e.g. --seeds 2, --gluonts-threads 1,2).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/gluonts-venv.sh
STATS_VENV=/tmp/sluice-bench/statsforecast
if ! "$STATS_VENV/bin/python" -c 'import statsforecast' 2>/dev/null; then
  python3 -m venv "$STATS_VENV"
  "$STATS_VENV/bin/pip" install -q --disable-pip-version-check 'statsforecast==2.1.1'
fi
cargo build --release --locked -p scheduler -p bench
"$CARGO_TARGET_DIR/release/sluice-bench" forecast --data "$SHARED/data" \
  --gluonts-python "$VENV/bin/python" --gluonts-script "$SHARED/run_gluonts.py" \
  --statsforecast-python "$STATS_VENV/bin/python" --statsforecast-script bench/peers/statsforecast_peer.py "$@"
