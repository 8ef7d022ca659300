#!/usr/bin/env bash
# The ETL benchmark: sluice beside DuckDB and polars (and pyarrow) in the same run, with
# ../shared/bench/etl's data, verifier and runner. Needs ../shared and a release build.
# usage: scripts/bench-etl.sh [ENGINES...]   (default: sluice polars duckdb)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SHARED=${SHARED:-../shared/bench/etl}
[ -d "$SHARED" ] || { echo "bench-etl: $SHARED not found (the shared benchmark kit)" >&2; exit 1; }
BENCH=/tmp/sluice-bench
if [ ! -x "$BENCH/venv/bin/python" ]; then
  python3 -m venv "$BENCH/venv" && "$BENCH/venv/bin/pip" install -q -r "$SHARED/requirements.txt"
fi
if [ ! -d "$BENCH/landing" ]; then
  "$BENCH/venv/bin/python" "$SHARED/gen_landing.py" --root "$BENCH/landing" --hours 72 --files-per-hour 3 \
    --records-per-file 18000 --seed 42 --workers 2
fi
cargo build --release --locked -p scheduler --bin sluice
# run_bench.sh runs bench_<name>.sh found beside itself; shared/ is read-only, so use a copy.
KIT=$(mktemp -d)
trap 'rm -rf "$KIT"' EXIT
cp "$SHARED"/* "$KIT"/
cp scripts/bench_sluice.sh "$KIT"/bench_sluice.sh
SLUICE="$CARGO_TARGET_DIR/release/sluice" EXPECTED_ROWS=3888000 PY="$BENCH/venv/bin/python" \
  bash "$KIT/run_bench.sh" "$BENCH/landing" "$BENCH/results" 2 "${@:-sluice polars duckdb}"
