# The `jobs` drill of scripts/drill.sh (sourced by it; uses its helpers and SLUICE, REPO, WORK,
# TABLE): every job of the nightly workflow killed at random moments of its own run.
#
# The nightly-retrain workflow, with a Compact step after Convert, on Postgres and the
# S3-compatible server with two `sluice worker` processes. For each job (crawl, convert,
# compact, dataset, train, drift, publish, batch forecast), nights run, each after a new day
# of landings, until the job has been interrupted SLUICE_DRILL_KILLS times (20 by default),
# at most SLUICE_DRILL_KILLS_PER_NIGHT (10) per night: once the job's step is running on a
# worker, both workers are killed (-9) at a moment drawn uniformly from the job's duration in
# an undisturbed night, and started again under their names; the step runs again from its
# start, and may be killed again. After each job's nights:
#   - every execution ended: SUCCEEDED, or FAILED with its error (a kill must not fail one);
#   - the curated rows are the generator's records less the quarantined ones, each once, and
#     the conversion ledger read every generated record;
#   - every registered model version is an execution's, and no execution registered two;
#   - each night that forecast recorded one batch forecast run, and no forecast file is
#     unlisted;
#   - after vacuum no staged file is left.

drill_jobs() {
  local dir="$WORK/jobs" pg=${SLUICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
  local venv=${SLUICE_TEST_VENV:-$HOME/.cache/sluice/venv}
  local want=${SLUICE_DRILL_KILLS:-20} per_night=${SLUICE_DRILL_KILLS_PER_NIGHT:-10}
  [ -x "$venv/bin/moto_server" ] || { echo "drill.sh: no S3-compatible server: run scripts/test.sh once (it creates $venv)" >&2; return 1; }
  psql "$pg" -qAtc 'select 1' >/dev/null || { echo "drill.sh: PostgreSQL is not reachable at $pg" >&2; return 1; }
  mkdir -p "$dir"
  cd "$dir"
  local s3port apiport db run_id dburl
  s3port=$(port); apiport=$(port); run_id=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')
  db="sluice_drill_$run_id"; dburl="${pg%/*}/$db"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$s3port" >moto.log 2>&1 &
  local moto=$!
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
  local s3py="import boto3; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:$s3port', region_name='us-east-1', aws_access_key_id='t', aws_secret_access_key='t'); keys = [o['Key'] for p in s3.get_paginator('list_objects_v2').paginate(Bucket='drill', Prefix='$run_id/') for o in p.get('Contents', [])]"
  # The nightly workflow with a Compact step between Convert and Dataset.
  python3 - "$REPO/scheduler/workflows/nightly-retrain.asl.json" >nightly.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
convert = d["States"]["Convert"]
d["States"]["Compact"] = {"Type": "Task", "Resource": "sluice:compact", "Parameters": {"table.$": "$.table"},
    "ResultPath": "$.compact", "Retry": convert["Retry"], "Catch": convert["Catch"], "Next": convert["Next"]}
convert["Next"] = "Compact"
print(json.dumps(d))
PY
  "$SLUICE" workflow create nightly --definition nightly.json >/dev/null
  local input='{"prefix": "landing", "table": "telemetry", "group": "air-quality", "work": "lake:work", "item": "device_id", "target": "pm25", "freq": "1h", "prediction_length": 12, "margin": 0.0, "hyperparameters": {"context_length": "24", "epochs": "15", "num_cells": "24", "mini_batch_size": "32", "num_batches_per_epoch": "20"}}'
  local day=8 generated
  generated=$("$SLUICE" generate landings --devices 4 --days $day --output json | json_field '["records"]')
  "$SLUICE" server --no-worker >server.log 2>&1 &
  SERVER_PID=$!
  local w1 w2
  "$SLUICE" worker --name w1 >w1.log 2>&1 & w1=$!
  "$SLUICE" worker --name w2 >w2.log 2>&1 & w2=$!
  local sql="psql $dburl -qAtc"
  local nights=0 ids=()
  # One undisturbed night: each job's duration, from its history.
  local first
  first=$("$SLUICE" workflow start nightly --name night-0 --input "$input" --output json | json_field '["id"]')
  ids+=("$first"); nights=1
  while [ "$($sql "select status from executions where id = '$first'")" = RUNNING ]; do sleep 1; done
  declare -A took
  while IFS='|' read -r state ms; do took[$state]=$ms; done < <($sql "select state, max(at) filter (where kind = 'TaskStateExited') - min(at) filter (where kind = 'TaskStateEntered') from execution_events where execution_id = '$first' and state is not null group by state")
  echo "==> jobs: an undisturbed night: $(for s in "${!took[@]}"; do printf '%s %s ms; ' "$s" "${took[$s]}"; done)" >&2
  local overall=0 job
  for job in Crawl Convert Compact Dataset Train DetectDrift Publish BatchForecast; do
    local kills=0 failed=0 lost=0 tries=0 job_nights=0
    local span=${took[$job]:-100}
    while [ $kills -lt "$want" ] && [ $tries -lt $(( (want + per_night - 1) / per_night + 4 )) ]; do
      tries=$((tries + 1)); job_nights=$((job_nights + 1))
      # A new day of landings, so that crawl, convert and compact have work every night.
      generated=$((generated + $("$SLUICE" generate landings --devices 4 --days $((day + 1)) --from-day $day --output json | json_field '["records"]')))
      day=$((day + 1))
      local id night_kills=0 status state deadline=$((SECONDS + 1200))
      id=$("$SLUICE" workflow start nightly --name "night-$nights" --input "$input" --output json | json_field '["id"]')
      ids+=("$id"); nights=$((nights + 1))
      while [ $night_kills -lt "$per_night" ] && [ $kills -lt "$want" ]; do
        # Wait for the job's step to be running on a worker (or for the night to be past it).
        while :; do
          IFS='|' read -r status state < <($sql "select status, state from executions where id = '$id'")
          [ "$status" = RUNNING ] || break
          if [ "$state" = "$job" ] && [ "$($sql "select count(*) from apalis.jobs where status = 'Running'")" != 0 ]; then break; fi
          [ $SECONDS -lt $deadline ] || break
          sleep 0.02
        done
        [ "$status" = RUNNING ] && [ "$state" = "$job" ] || break
        sleep "$(python3 -c "import random; print(round(random.uniform(0, $span / 1000), 3))")"
        IFS='|' read -r status state < <($sql "select status, state from executions where id = '$id'")
        [ "$status" = RUNNING ] && [ "$state" = "$job" ] || break
        kill -9 "$w1" "$w2" 2>/dev/null || true
        wait "$w1" "$w2" 2>/dev/null || true
        "$SLUICE" worker --name w1 >>w1.log 2>&1 & w1=$!
        "$SLUICE" worker --name w2 >>w2.log 2>&1 & w2=$!
        kills=$((kills + 1)); night_kills=$((night_kills + 1))
      done
      while [ "$($sql "select status from executions where id = '$id'")" = RUNNING ]; do
        [ $SECONDS -lt $deadline ] || { lost=$((lost + 1)); break; }
        sleep 1
      done
      status=$($sql "select status from executions where id = '$id'")
      echo "    $job: night-$((nights - 1)) $status after $night_kills kills ($kills of $want)" >&2
      if [ "$status" = FAILED ]; then
        failed=$((failed + 1))
        echo "    error: $($sql "select error || ': ' || coalesce(cause, '') from executions where id = '$id'")" >&2
      fi
    done
    # The invariants, over every night so far.
    "$SLUICE" vacuum --grace-minutes 0 >/dev/null
    local quarantined read found distinct versions registered twice forecasts forecast_nights staged orphans unexplained
    quarantined=$($sql "select coalesce(sum(records_quarantined), 0) from conversion_runs where status in ('committed', 'published')")
    read=$($sql "select coalesce(sum(records_read), 0) from conversion_runs where status in ('committed', 'published')")
    found=$("$SLUICE" query 'SELECT count(*) AS n FROM telemetry_curated' --output json | json_field '["rows"][0]["n"]')
    distinct=$("$SLUICE" query 'SELECT count(*) AS n FROM (SELECT DISTINCT device_id, ts FROM telemetry_curated) AS once' --output json | json_field '["rows"][0]["n"]')
    versions=$("$SLUICE" models list air-quality --output json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
    registered=$($sql "select count(distinct (output::json -> 'publish' ->> 'version')) from executions where parent_id is null and output is not null and output::json -> 'publish' ->> 'version' is not null")
    twice=$($sql "select count(*) from (select output::json -> 'publish' ->> 'version' as v from executions where parent_id is null and output is not null and output::json -> 'publish' ->> 'version' is not null group by 1 having count(*) > 1) t")
    forecasts=$($sql "select count(*) from batch_forecasts where source = 'batch'")
    forecast_nights=$($sql "select count(*) from executions where parent_id is null and output is not null and output::json -> 'forecast' ->> 'run' is not null")
    unexplained=$($sql "select count(*) from executions where parent_id is null and status = 'FAILED' and coalesce(error, '') = ''")
    staged=$("$venv/bin/python" -c "$s3py; print(sum(1 for k in keys if '_staging/' in k))")
    orphans=$("$venv/bin/python" -c "$s3py
listed = set('$run_id/' + k for k in '''$($sql "select lake_key || ' ' || coalesce(history_key, '') from batch_forecasts")'''.split())
print(sum(1 for k in keys if k.startswith('$run_id/forecasts/') and k not in listed))")
    local expected=$((generated - quarantined))
    local duplicates=$((found - distinct + versions - registered + twice + forecasts - forecast_nights + orphans))
    echo "==> jobs: $job killed $kills times over $job_nights nights ($failed failed, $lost lost); curated rows $found of $expected ($distinct distinct; ledger read $read of $generated); $versions versions, $registered registered by executions ($twice twice); $forecasts batch forecast runs for $forecast_nights nights, $orphans unlisted forecast files; $staged staged files after vacuum" >&2
    TABLE+=("kill $job|$job_nights runs, $kills kills|$((failed + unexplained))|$expected vs $found|$lost|$duplicates")
    if [ "$failed" -ne 0 ] || [ "$lost" -ne 0 ] || [ "$found" -ne "$expected" ] || [ "$read" -ne "$generated" ] ||
       [ "$duplicates" -ne 0 ] || [ "$staged" -ne 0 ] || [ "$kills" -lt "$want" ]; then
      overall=1
    fi
  done
  kill -9 "$w1" "$w2" 2>/dev/null || true
  wait "$w1" "$w2" 2>/dev/null || true
  kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  kill "$moto" 2>/dev/null || true
  psql "$pg" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  cd "$REPO"
  return $overall
}
