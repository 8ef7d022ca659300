# Sourced by the forecasting and serving benchmarks: GluonTS's virtual environment, created once
# as ../shared/bench/forecast's README says (about 10 minutes, 5.8 GB). Sets VENV and SHARED.
SHARED=${SHARED:-../shared/bench/forecast}
[ -d "$SHARED" ] || { echo "$0: $SHARED not found (the shared benchmark kit)" >&2; exit 1; }
VENV=/tmp/sluice-bench/gluonts
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import gluonts.torch' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$SHARED/requirements.txt"
  # gluonts.torch imports scipy, which the kit's requirements.txt does not list.
  "$VENV/bin/pip" install -q scipy
fi
