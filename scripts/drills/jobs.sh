# The `jobs` drill of scripts/drill.sh (sourced by it; uses its helpers and SLUICE, REPO, WORK,
# TABLE): every job of the nightly workflow killed at random moments of its own run.
#
# The nightly-retrain workflow, with a Compact step after Convert, on Postgres and the
# S3-compatible server with two `sluice worker` processes. For each job (crawl, convert,
# compact, dataset, train, drift, publish, batch forecast), nights run, each after a new day
# of landings, until the job has been interrupted SLUICE_DRILL_KILLS times (20 by default),
# at most SLUICE_DRILL_KILLS_PER_NIGHT (10) per night: once the job's step is running on a
# worker, both workers are killed (-9) at a moment drawn uniformly from the job's duration in
# the last night that did not kill it, and started again under their names; the step runs
# again from its start, and may be killed again (scripts/drills/jobs.py runs the nights, polling
# Postgres every 5 ms). After each job's nights:
#   - every execution ended: SUCCEEDED, or FAILED with its error (a kill must not fail one);
#   - the curated rows are the generator's records less the quarantined ones, each once, and
#     the conversion ledger read every generated record;
#   - every registered model version is an execution's, and no execution registered two;
#   - each night that forecast recorded one batch forecast run, and no forecast file is
#     unlisted;
#   - after vacuum no staged file is left.

drill_jobs() {
  local want=${SLUICE_DRILL_KILLS:-20} per_night=${SLUICE_DRILL_KILLS_PER_NIGHT:-10}
  local pg venv s3port run_id db dburl moto
  scaled_out "$WORK/jobs" || return 1
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
  # retrain.force: every night trains, so that every job of the nightly runs (and is killed) each night.
  local input='{"prefix": "landing", "table": "telemetry", "group": "air-quality", "work": "lake:work", "item": "device_id", "target": "pm25", "freq": "1h", "prediction_length": 12, "margin": 0.0, "retrain": {"force": true}, "hyperparameters": {"context_length": "24", "epochs": "15", "num_cells": "24", "mini_batch_size": "32", "num_batches_per_epoch": "20"}}'
  local day=8 generated
  generated=$("$SLUICE" generate landings --devices 4 --days $day --output json | json_field '["records"]')
  "$SLUICE" server --no-worker >server.log 2>&1 &
  SERVER_PID=$!
  # The nights, the kills and the checks: jobs.py, which polls Postgres every 5 ms (psycopg and
  # boto3 in the drill's virtual environment).
  "$VENV/bin/python" -c 'import psycopg, boto3' 2>/dev/null ||
    "$VENV/bin/pip" install -q --disable-pip-version-check 'psycopg[binary]==3.*' boto3
  local overall=0 line
  while read -r line; do
    echo "$line" >>jobs.jsonl
    python3 - "$line" "$want" <<'PY' || overall=1
import json, sys
r, want = json.loads(sys.argv[1]), int(sys.argv[2])
if "undisturbed" in r:
    print("==> jobs: an undisturbed night: " + ", ".join(f"{k} {v} ms" for k, v in r["undisturbed"].items()), file=sys.stderr)
elif "nights" not in r:
    print(f"    {r['job']}: night-{r['night']} {r['status']} after {r['kills']} kills {r['error']}", file=sys.stderr)
else:
    print(f"==> jobs: {r['job']} killed {r['kills']} times over {r['nights']} nights ({r['failed']} failed, {r['lost']} lost) "
          f"at moments {r['moments']} of its run; curated rows {r['found']} of {r['expected']} ({r['distinct']} distinct; "
          f"ledger read {r['read']} of {r['generated']}); {r['versions']} versions, {r['registered']} registered by executions "
          f"({r['registered_twice']} twice); {r['forecasts']} batch forecast runs for {r['forecast_nights']} nights, "
          f"{r['unlisted_forecast_files']} unlisted forecast files; {r['staged']} staged files after vacuum", file=sys.stderr)
    ok = (r["kills"] >= want and r["failed"] == 0 and r["lost"] == 0 and r["found"] == r["expected"]
          and r["read"] == r["generated"] and r["duplicates"] == 0 and r["staged"] == 0 and r["failed_without_reason"] == 0)
    sys.exit(0 if ok else 1)
PY
    case "$line" in
      *'"nights"'*) TABLE+=("$(python3 -c "import json, sys; r = json.loads(sys.argv[1]); print(f\"kill {r['job']}|{r['nights']} runs, {r['kills']} kills|{r['failed'] + r['failed_without_reason']}|{r['expected']} vs {r['found']}|{r['lost']}|{r['duplicates']}\")" "$line")") ;;
    esac
  done < <("$VENV/bin/python" "$REPO/scripts/drills/jobs.py" "$SLUICE" "$dburl" drill "$run_id" \
             "http://127.0.0.1:$s3port" "$input" "$want" "$per_night" "$day" "$generated" 2>jobs.err)
  [ -s jobs.err ] && { echo "drill.sh: jobs.py:" >&2; tail -20 jobs.err >&2; overall=1; }
  kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  kill "$moto" 2>/dev/null || true
  psql "$pg" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  cd "$REPO"
  return $overall
}
