#!/usr/bin/env bash
# Drills that prove sluice under faults and hostile input, beside the test suite (not part of
# it: CI does not run them). `scripts/drill.sh [api] ...` runs the drills named (all by default).
#
#   api   the HTTP API against its own OpenAPI document with schemathesis (from PyPI, installed
#         once into ~/.cache/sluice/drill-venv): a `sluice server` on loopback over a seeded
#         database (a workflow with a succeeded and a failed execution, a trigger, a
#         notification rule with a failed delivery, a delivery stream, tokens), every operation
#         fuzzed (coverage, fuzzing and stateful phases); it fails on any 5xx or any response
#         that does not match the document. SLUICE_DRILL_EXAMPLES sets the examples per
#         operation (100 by default).
#   kill  the nightly-retrain workflow on Postgres and the S3-compatible server (moto, from the
#         test environment scripts/test.sh creates) with two `sluice worker` processes, both
#         killed (-9) at a random moment of each run and started again under their names
#         (SLUICE_DRILL_RUNS runs, 5 by default): every execution must end (SUCCEEDED, or FAILED
#         with its error recorded), the curated rows must be the generator's records less the
#         quarantined ones, each once, every registered version must be an execution's, and
#         after vacuum no staged file may be left.
#
#   jobs  every job of the nightly workflow (crawl, convert, compact, dataset, train, drift,
#         publish, batch forecast) interrupted 20 times at random moments of its own run, both
#         workers killed (-9) each time; the same checks as `kill`, and no batch forecast run
#         twice or unlisted (scripts/drills/jobs.sh says how).
#
#   overload  `sluice-bench overload` (built beside sluice): `sluice serve` measured at capacity,
#         then sent twice that rate for a minute, open loop (SLUICE_DRILL_OVERLOAD_SECONDS): the
#         excess must be refused with 503 and Retry-After, nothing may time out or fail, the
#         accepted requests' p99 must stay within 1 s and the server's memory flat; then 20 moves
#         of the champion alias with the CLI under half the capacity's load (SLUICE_DRILL_SWAPS):
#         no request may fail and both versions must have answered. Needs ../shared's
#         pedestrian series.
#
#   restarts  20 executions (each a Map of ten sleeping iterations) on Postgres under a `sluice
#         server` killed (-9) mid-run and replaced, then PostgreSQL restarted (pg_ctlcluster)
#         under that load, then the server's connections terminated over and over for 5 s and
#         one more execution started: every execution must end, succeeded or with its error,
#         none lost, no iteration run as two children, no execution ended twice, and the server
#         must survive.
#
#   tune  a tuning run of 16 trials on the pedestrian series over two `sluice worker` processes
#         (Postgres, the trials' models in the S3-compatible server), one worker killed (-9)
#         mid-trial and started again: the run must end SUCCEEDED with every trial scored, and
#         it reports its best trial against the reference at the same budget
#         (scripts/drills/tune.sh).
#
# The closing table has one line per drill: runs, failures, rows expected and found, executions
# lost, duplicates.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
REPO=$PWD
if [ $# -gt 0 ]; then DRILLS=("$@"); else DRILLS=(api kill jobs overload restarts soak tune); fi
TABLE=()

# Built as the test suite builds it (the test hooks only add `sluice:sleep`), so that a drill
# between two test runs leaves the tests' binary in the shared target directory as it was.
# SLUICE_DRILL_BIN names another binary instead, a release build say, for the drills that need
# no test hook (all but restarts): the tune drill trains for about an hour in a debug build.
if [ -n "${SLUICE_DRILL_BIN:-}" ]; then
  SLUICE=$SLUICE_DRILL_BIN
else
  cargo build --locked -q -p scheduler --bin sluice --features scheduler/test-hooks
  SLUICE="$CARGO_TARGET_DIR/debug/sluice"
fi
VENV=${SLUICE_DRILL_VENV:-$HOME/.cache/sluice/drill-venv}
if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "drill.sh: installing schemathesis into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'schemathesis==4.*'
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

drill_api() {
  local dir="$WORK/api" port dead
  mkdir -p "$dir"
  cd "$dir"
  port=$(port)
  dead=$(port)   # nothing listens there: the notification rule's deliveries fail
  "$SLUICE" generate landings --devices 2 --days 2 >/dev/null
  "$SLUICE" workflow create ingest --definition "$REPO/scheduler/workflows/ingest.asl.json" >/dev/null
  echo '{"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Drill.Failed", "Cause": "on purpose"}}}' >breaks.json
  "$SLUICE" workflow create breaks --definition breaks.json >/dev/null
  "$SLUICE" trigger create landed --workflow ingest --on-landing landing/telemetry --window 1m \
    --input '{"prefix": "landing", "table": "telemetry"}' >/dev/null
  "$SLUICE" notify create on-call --url "http://127.0.0.1:$dead/hook" --on execution.failed --max-attempts 1 >/dev/null
  "$SLUICE" ingest stream create telemetry --prefix landing/stream/ >/dev/null
  local admin
  admin=$("$SLUICE" token create --scope admin --name drill --output json | json_field '["token"]')
  "$SLUICE" server --listen "127.0.0.1:$port" >server.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
  local ok failed
  ok=$("$SLUICE" workflow start ingest --input '{"prefix": "landing", "table": "telemetry"}' --wait --output json | json_field '["id"]')
  failed=$("$SLUICE" workflow start breaks --output json | json_field '["id"]')
  local delivery=
  for _ in $(seq 1 50); do
    delivery=$("$SLUICE" notify deliveries --status failed --output json | json_field '[0]["id"]' 2>/dev/null || true)
    [ -n "$delivery" ] && break
    sleep 0.5
  done
  [ -n "$delivery" ] || { echo "drill.sh: the seeded delivery never failed" >&2; exit 1; }
  cat >schemathesis.toml <<TOML
headers = { Authorization = "Bearer $admin" }
generation.max-examples = ${SLUICE_DRILL_EXAMPLES:-100}
workers = 2

[checks]
enabled = false
not_a_server_error.enabled = true
response_schema_conformance.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true

[[operations]]
include-path-regex = "^/workflows/"
parameters = { "path.name" = "ingest" }

[[operations]]
include-path-regex = "^/executions/"
parameters = { "path.id" = "$failed" }

[[operations]]
include-name = "GET /executions/{id}/history"
parameters = { "path.id" = "$ok" }

[[operations]]
include-path-regex = "^/triggers/"
parameters = { "path.name" = "landed" }

[[operations]]
include-path-regex = "^/notifications/rules/"
parameters = { "path.name" = "on-call" }

[[operations]]
include-path-regex = "^/notifications/deliveries/"
parameters = { "path.id" = $delivery }

[[operations]]
include-path-regex = "^/ingest/streams/"
parameters = { "path.stream" = "telemetry" }
TOML
  echo "==> api: schemathesis against http://127.0.0.1:$port/openapi.json" >&2
  local status=0
  "$VENV/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" | tee schemathesis.log || status=$?
  local cases failures
  cases=$(grep -oE '[0-9]+ generated' schemathesis.log | grep -oE '[0-9]+' | tail -1)
  failures=$(grep -oE 'found [0-9]+ unique failures' schemathesis.log | grep -oE '[0-9]+' | tail -1)
  TABLE+=("api|${cases:-0} cases|${failures:-0}|-|0|0")
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "drill.sh: the server died during the drill:" >&2; tail -20 server.log >&2; status=1
  fi
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  cd "$REPO"
  return $status
}


describe() {
  "$SLUICE" workflow describe "$1" --output json | python3 -c 'import json, sys; e = json.load(sys.stdin); print(e["status"], e["state"])'
}

# A drill's directory on Postgres and the S3-compatible server (moto, from the test environment
# scripts/test.sh creates): checks both are there, starts moto on a free port with a bucket
# `drill`, creates a database, writes sluice.toml and enters the directory. Sets the caller's
# locals pg, venv, s3port, run_id, db, dburl and moto.
scaled_out() {
  pg=${SLUICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
  venv=${SLUICE_TEST_VENV:-$HOME/.cache/sluice/venv}
  [ -x "$venv/bin/moto_server" ] || { echo "drill.sh: no S3-compatible server: run scripts/test.sh once (it creates $venv)" >&2; return 1; }
  psql "$pg" -qAtc 'select 1' >/dev/null || { echo "drill.sh: PostgreSQL is not reachable at $pg" >&2; return 1; }
  mkdir -p "$1"
  cd "$1"
  local apiport
  s3port=$(port); apiport=$(port); run_id=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')
  db="sluice_drill_$run_id"; dburl="${pg%/*}/$db"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$s3port" >moto.log 2>&1 &
  moto=$!
  psql "$pg" -qc "create database $db" >/dev/null
  for _ in $(seq 1 50); do
    "$venv/bin/python" -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$s3port', region_name='us-east-1', aws_access_key_id='t', aws_secret_access_key='t').create_bucket(Bucket='drill')" 2>/dev/null && break
    sleep 0.2
  done
  cat >sluice.toml <<TOML
database = "$dburl"
lake = "s3://drill/$run_id"

[s3]
endpoint = "http://127.0.0.1:$s3port"
region = "us-east-1"
access_key_id = "t"
secret_access_key = "t"
allow_http = true

[api]
listen = "127.0.0.1:$apiport"
TOML
}

drill_kill() {
  local runs=${SLUICE_DRILL_RUNS:-5} pg venv s3port run_id db dburl moto
  scaled_out "$WORK/kill" || return 1
  local records input
  records=$("$SLUICE" generate landings --devices 4 --days 8 --output json | json_field '["records"]')
  # retrain.force: every night trains, so that every job of the nightly runs (and is killed) each night.
  input='{"prefix": "landing", "table": "telemetry", "group": "air-quality", "work": "lake:work", "item": "device_id", "target": "pm25", "freq": "1h", "prediction_length": 12, "margin": 0.0, "retrain": {"force": true}, "hyperparameters": {"context_length": "24", "epochs": "15", "num_cells": "24", "mini_batch_size": "32", "num_batches_per_epoch": "20"}}'
  "$SLUICE" workflow install nightly-retrain --input "$input" >/dev/null
  "$SLUICE" server --no-worker >server.log 2>&1 &
  SERVER_PID=$!
  local w1 w2
  "$SLUICE" worker --name w1 >w1.log 2>&1 & w1=$!
  "$SLUICE" worker --name w2 >w2.log 2>&1 & w2=$!
  local kills=0 failed=0 lost=0 ids=()
  for run in $(seq 1 "$runs"); do
    local id status state deadline=$((SECONDS + 600))
    id=$("$SLUICE" workflow start nightly-retrain --name "night-$run" --input "$input" --output json | json_field '["id"]')
    ids+=("$id")
    # One kill -9 of both workers at a random moment of the run (whatever step runs then),
    # both started again under their names at once; then the run is left to end.
    sleep "$(python3 -c 'import random; print(round(random.uniform(0.2, 5), 1))')"
    read -r status state < <(describe "$id")
    if [ "$status" = RUNNING ]; then
      kill -9 "$w1" "$w2" 2>/dev/null || true
      wait "$w1" "$w2" 2>/dev/null || true
      "$SLUICE" worker --name w1 >>w1.log 2>&1 & w1=$!
      "$SLUICE" worker --name w2 >>w2.log 2>&1 & w2=$!
      kills=$((kills + 1))
      echo "    night-$run: both workers killed in $state" >&2
    fi
    while [ "$status" = RUNNING ]; do
      [ $SECONDS -lt $deadline ] || { lost=$((lost + 1)); break; }
      sleep 1
      read -r status state < <(describe "$id")
    done
    echo "==> kill: night-$run $status" >&2
    if [ "$status" = FAILED ]; then
      failed=$((failed + 1))
      "$SLUICE" workflow describe "$id" --output json | python3 -c 'import json, sys; e = json.load(sys.stdin); print("    error:", e["error"], e["cause"])' >&2
    fi
  done
  kill -9 "$w1" "$w2" 2>/dev/null || true
  wait "$w1" "$w2" 2>/dev/null || true
  "$SLUICE" vacuum --grace-minutes 0 >/dev/null
  local expected found distinct staged versions registered
  expected=$("$SLUICE" workflow describe "${ids[0]}" --output json | python3 -c "import json, sys; c = json.load(sys.stdin)['output']['convert']; assert c['read'] == $records, (c, $records); print(c['written'])")
  found=$("$SLUICE" query 'SELECT count(*) AS n FROM telemetry_curated' --output json | json_field '["rows"][0]["n"]')
  distinct=$("$SLUICE" query 'SELECT count(*) AS n FROM (SELECT DISTINCT device_id, ts FROM telemetry_curated) AS once' --output json | json_field '["rows"][0]["n"]')
  staged=$("$venv/bin/python" -c "import boto3; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:$s3port', region_name='us-east-1', aws_access_key_id='t', aws_secret_access_key='t'); print(sum(1 for p in s3.get_paginator('list_objects_v2').paginate(Bucket='drill', Prefix='$run_id/') for o in p.get('Contents', []) if '_staging/' in o['Key']))")
  versions=$("$SLUICE" models list air-quality --output json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
  registered=0
  for id in "${ids[@]}"; do
    registered=$((registered + $("$SLUICE" workflow describe "$id" --output json | python3 -c 'import json, sys; o = json.load(sys.stdin).get("output") or {}; print(1 if (o.get("publish") or {}).get("version") else 0)')))
  done
  echo "==> kill: $kills kills over $runs runs; curated rows $found of $expected ($distinct distinct); $staged staged files after vacuum; $versions versions, $registered registered by executions" >&2
  kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  kill "$moto" 2>/dev/null || true
  psql "$pg" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  cd "$REPO"
  local duplicates=$((found - distinct + versions - registered))
  TABLE+=("kill|$runs runs, $kills kills|$failed|$expected vs $found|$lost|$duplicates")
  [ "$failed" -eq 0 ] && [ "$lost" -eq 0 ] && [ "$found" -eq "$expected" ] && [ "$duplicates" -eq 0 ] && [ "$staged" -eq 0 ]
}

drill_restarts() {
  local dir="$WORK/restarts" pg=${SLUICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
  local n=${SLUICE_DRILL_EXECUTIONS:-20} db run_id apiport
  psql "$pg" -qAtc 'select 1' >/dev/null || { echo "drill.sh: PostgreSQL is not reachable at $pg" >&2; return 1; }
  command -v pg_ctlcluster >/dev/null || { echo "drill.sh: restarts needs pg_ctlcluster (Debian's PostgreSQL) to restart the server" >&2; return 1; }
  local cluster
  cluster=$(ls /etc/postgresql | head -1)
  mkdir -p "$dir/effects"
  cd "$dir"
  run_id=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')
  db="sluice_drill_$run_id"; apiport=$(port)
  psql "$pg" -qc "create database $db" >/dev/null
  printf 'database = "%s"\n\n[api]\nlisten = "127.0.0.1:%s"\n' "${pg%/*}/$db" "$apiport" >sluice.toml
  # Each execution: a Map of 10 iterations (each a child execution sleeping 0.5 s), then a Task.
  cat >pulse.json <<'JSON'
{"StartAt": "Each", "States": {
  "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 4, "ResultPath": "$.slept", "Next": "Done",
    "ItemSelector": {"seconds": 0.5},
    "ItemProcessor": {"StartAt": "Nap", "States": {"Nap": {"Type": "Task", "Resource": "sluice:sleep", "End": true}}}},
  "Done": {"Type": "Task", "Resource": "sluice:echo", "End": true}}}
JSON
  "$SLUICE" workflow create pulse --definition pulse.json >/dev/null
  "$SLUICE" server >server-1.log 2>&1 &
  SERVER_PID=$!
  local ids=() id
  for i in $(seq 1 "$n"); do
    id=$("$SLUICE" workflow start pulse --input '{"items": [0,1,2,3,4,5,6,7,8,9]}' --name "pulse-$i" --output json | json_field '["id"]')
    ids+=("$id")
  done
  echo "==> restarts: $n executions started; the server is killed (-9) in 3 s" >&2
  sleep 3
  kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  "$SLUICE" server >server-2.log 2>&1 &
  SERVER_PID=$!
  sleep 4
  echo "==> restarts: PostgreSQL restarted under load" >&2
  local restarted=$SECONDS
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main restart
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  local deadline=$((SECONDS + ${SLUICE_DRILL_RESTART_WAIT:-300})) running
  while [ $SECONDS -lt $deadline ]; do
    running=$(psql "${pg%/*}/$db" -qAtc "select count(*) from executions where parent_id is null and status = 'RUNNING'" 2>/dev/null || echo "$n")
    [ "$running" = 0 ] && break
    sleep 2
  done
  local ended=$SECONDS
  # Then the server's connections are killed over and over for five seconds while its worker
  # polls (every 20 ms: some fetch fails), and one more execution must run on the same server.
  echo "==> restarts: the server's database connections terminated for 5 s" >&2
  local until=$((SECONDS + 5))
  while [ $SECONDS -lt $until ]; do
    psql "$pg" -qAtc "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = '$db' and pid <> pg_backend_pid()" >/dev/null 2>&1 || true
    sleep 0.05
  done
  sleep 2
  n=$((n + 1))
  id=$("$SLUICE" workflow start pulse --input '{"items": [0,1]}' --name "pulse-after" --output json | json_field '["id"]')
  local after_deadline=$((SECONDS + 120))
  while [ $SECONDS -lt $after_deadline ]; do
    [ "$(psql "${pg%/*}/$db" -qAtc "select status from executions where id = '$id'")" = RUNNING ] || break
    sleep 1
  done
  local succeeded failed lost unexplained duplicates server_alive=1
  succeeded=$(psql "${pg%/*}/$db" -qAtc "select count(*) from executions where parent_id is null and status = 'SUCCEEDED'")
  failed=$(psql "${pg%/*}/$db" -qAtc "select count(*) from executions where parent_id is null and status = 'FAILED'")
  unexplained=$(psql "${pg%/*}/$db" -qAtc "select count(*) from executions where parent_id is null and status = 'FAILED' and coalesce(error, '') = ''")
  lost=$((n - succeeded - failed))
  # Two children for one item of one run, or an execution that ended twice.
  duplicates=$(psql "${pg%/*}/$db" -qAtc "select (select count(*) - count(distinct (map_run_id, child_index)) from executions where parent_id is not null) + (select count(*) from (select execution_id from execution_events where kind in ('ExecutionSucceeded', 'ExecutionFailed') group by execution_id having count(*) > 1) twice)")
  kill -0 "$SERVER_PID" 2>/dev/null || server_alive=0
  echo "restarts: the first wave ended $((ended - restarted)) s after the database restart; the worker was started again $(grep -c 'the worker lost the queue' server-2.log || true) time(s)" >&2
  echo "restarts: $n executions, $succeeded succeeded, $failed failed ($unexplained without a reason), $lost still running, $duplicates duplicates; the second server $([ $server_alive = 1 ] && echo survived || echo DIED) the database restart" >&2
  [ $server_alive = 1 ] || tail -20 server-2.log >&2
  kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  TABLE+=("restarts|$n runs, 1 kill, 1 pg restart|$((failed + 1 - server_alive))|-|$lost|$duplicates")
  psql "$pg" -qc "drop database if exists $db" >/dev/null 2>&1 || true
  cd "$REPO"
  [ "$failed" -eq 0 ] && [ "$lost" -eq 0 ] && [ "$duplicates" -eq 0 ] && [ $server_alive = 1 ]
}

drill_overload() {
  local data="$REPO/../shared/bench/forecast/data/pedestrian" out
  if [ ! -f "$data/train.jsonl" ]; then
    echo "drill.sh: overload needs $data (the shared benchmark kit)" >&2
    TABLE+=("overload|0|1|-|0|0")
    return 1
  fi
  cargo build --locked -q -p bench --bin sluice-bench --features scheduler/test-hooks
  out="$WORK/overload.json"
  "$CARGO_TARGET_DIR/debug/sluice-bench" --output json overload --data "$data" \
    --seconds "${SLUICE_DRILL_OVERLOAD_SECONDS:-60}" --swaps "${SLUICE_DRILL_SWAPS:-20}" >"$out"
  python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
o, s, m = r["overload"], r["swaps"], r["memory_mib"]
print(f"overload: capacity {r['capacity_rps']:.1f} req/s; at twice it {o['sent']} sent, {o['accepted']} accepted "
      f"(p99 {o['accepted_p99_ms']:.0f} ms), {o['refused']} refused with 503 ({o['refused_without_retry_after']} without Retry-After), "
      f"{o['timed_out']} timed out, {o['failed']} failed; memory {m['early']:.0f} -> {m['late']:.0f} MiB; "
      f"hot swaps: {s['sent']} sent, {s['failed'] + s['timed_out'] + s['refused']} not answered, versions {s['versions']}", file=sys.stderr)
PY
  local row
  row=$(python3 -c "
import json; r = json.load(open('$out')); o, s = r['overload'], r['swaps']
bad = o['timed_out'] + o['failed'] + o['refused_without_retry_after'] + s['failed'] + s['timed_out'] + s['refused'] + (0 if r['met'] else 1)
print(f\"overload|{o['sent'] + s['sent']} requests|{bad}|-|0|0\")")
  TABLE+=("$row")
  python3 -c "import json, sys; sys.exit(0 if json.load(open('$out'))['met'] else 1)"
}

source scripts/drills/jobs.sh
source scripts/drills/soak.sh
source scripts/drills/tune.sh

overall=0
for drill in "${DRILLS[@]}"; do
  case "$drill" in
    api) drill_api || overall=1 ;;
    kill) drill_kill || overall=1 ;;
    overload) drill_overload || overall=1 ;;
    restarts) drill_restarts || overall=1 ;;
    jobs) drill_jobs || overall=1 ;;
    soak) drill_soak || overall=1 ;;
    tune) drill_tune || overall=1 ;;
    *) echo "drill.sh: unknown drill $drill (api, kill, jobs, overload, restarts, soak, tune)" >&2; exit 2 ;;
  esac
done
printf '\n%-20s %-24s %-9s %-18s %-6s %s\n' drill runs failures "rows exp vs found" lost duplicates
for row in "${TABLE[@]}"; do
  IFS='|' read -r d r f rows l dup <<<"$row"
  printf '%-20s %-24s %-9s %-18s %-6s %s\n' "$d" "$r" "$f" "$rows" "$l" "$dup"
done
exit $overall
