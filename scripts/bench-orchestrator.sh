#!/usr/bin/env bash
# The orchestrator benchmark: sluice (SQLite, Postgres) beside Prefect 3 in the same run, with
# ../shared/bench/orchestrator's peer. Sets up Prefect's virtual environment once, as its README says.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SHARED=${SHARED:-../shared/bench/orchestrator}
[ -d "$SHARED" ] || { echo "bench-orchestrator: $SHARED not found (the shared benchmark kit)" >&2; exit 1; }
VENV=/tmp/sluice-bench/prefect
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import prefect' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$SHARED/requirements.txt"
  "$VENV/bin/pip" install -q fastapi==0.129.2 starlette==0.52.1
fi
cargo build --release --locked -p scheduler -p bench
"$CARGO_TARGET_DIR/release/sluice-bench" orchestrator --prefect-python "$VENV/bin/python" --prefect-script "$SHARED/prefect_chain.py" "$@"
