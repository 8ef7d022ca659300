#!/usr/bin/env bash
# The whole test suite, as CI runs it: `scripts/test.sh` (extra arguments go to `cargo test`).
#
# It starts what the tests need and fails loudly when it cannot:
#   - PostgreSQL on 127.0.0.1:5432 (started with pg_ctlcluster when it is installed but down);
#     each test creates its own database, leftovers of earlier runs are dropped first;
#   - an S3-compatible server on loopback (moto, from PyPI, in a virtual environment this script
#     creates once under ~/.cache/sluice/venv), with a bucket for the S3 lake tests;
#   - DuckDB (the Python package, in the same environment), which reads the curated output back;
#   - nbclient with polars and matplotlib (same environment), which run the notebooks/ against a
#     demo (scripts/run-notebooks.py);
#   - Debian's Chromium (apt-get) and playwright-core (npm ci in tests/browser), which drive the
#     console in the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

PG_URL=${SLUICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    echo "test.sh: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
fi
if ! psql "$PG_URL" -qAtc 'select 1' >/dev/null 2>&1; then
  echo "test.sh: PostgreSQL is required at $PG_URL and is not reachable" >&2
  exit 1
fi
psql "$PG_URL" -qAtc "select datname from pg_database where datname like 'sluice_test_%'" |
  while read -r db; do psql "$PG_URL" -qc "drop database if exists $db" >/dev/null 2>&1 || true; done
export SLUICE_TEST_POSTGRES="$PG_URL"

VENV=${SLUICE_TEST_VENV:-$HOME/.cache/sluice/venv}
if [ ! -x "$VENV/bin/moto_server" ] ||
   ! "$VENV/bin/python" -c 'import boto3, duckdb, nbclient, ipykernel, polars, matplotlib, requests' 2>/dev/null; then
  echo "test.sh: creating $VENV (moto S3 server, DuckDB, and nbclient with what the notebooks use)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.*' boto3 'duckdb==2.0.0' \
    'nbclient==0.10.*' 'nbformat==5.*' ipykernel 'polars==1.*' 'matplotlib==3.*' requests
fi
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MOTO_LOG=$(mktemp)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true; rm -f "$MOTO_LOG"' EXIT
export SLUICE_TEST_S3_ENDPOINT="http://127.0.0.1:$PORT" SLUICE_TEST_S3_BUCKET=sluice-test
export SLUICE_TEST_PYTHON="$VENV/bin/python"   # DuckDB reads the curated output back; nbclient runs the notebooks
for _ in $(seq 1 50); do
  "$VENV/bin/python" - <<PY 2>/dev/null && break
import boto3
boto3.client("s3", endpoint_url="$SLUICE_TEST_S3_ENDPOINT", region_name="us-east-1",
             aws_access_key_id="test", aws_secret_access_key="test").create_bucket(Bucket="sluice-test")
PY
  sleep 0.2
done
if ! kill -0 "$MOTO_PID" 2>/dev/null; then
  echo "test.sh: the S3-compatible server did not start:" >&2; cat "$MOTO_LOG" >&2; exit 1
fi

# The console's browser tests: Debian's Chromium, driven by playwright-core (tests/browser, its
# version pinned by package-lock.json), installed here when missing.
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: installing Debian's chromium for the console's browser tests" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -q chromium >/dev/null 2>&1 ||
    { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; } || true
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: the browser tests need Chromium (apt-get install chromium) and it could not be installed" >&2
  exit 1
fi
export SLUICE_TEST_CHROMIUM="${SLUICE_TEST_CHROMIUM:-$(command -v chromium)}"
npm ci --prefix tests/browser --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null

# The CLI tests run the real binary, so build it first, with the fuzz targets (built here so that
# they cannot rot; scripts/fuzz.sh runs them); then every test of the workspace. All with the
# test hooks (`sluice:sleep`), which the product's builds leave out.
cargo build --locked -p scheduler -p fuzz --bins --features scheduler/test-hooks
LOG=$(mktemp)
trap 'kill $MOTO_PID 2>/dev/null || true; rm -f "$MOTO_LOG" "$LOG"' EXIT
status=0
cargo test --locked --workspace --features scheduler/test-hooks "$@" 2>&1 | tee "$LOG" || status=$?
# One closing line over every test binary of the run.
# Ignored tests are skips (the ASL conformance corpus where ../shared is absent).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "sluice tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$LOG"
exit $status
