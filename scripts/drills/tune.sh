# The `tune` drill of scripts/drill.sh (sourced by it; uses its helpers and SLUICE, REPO, WORK,
# TABLE): a tuning run of 16 trials on the pedestrian series (../shared/bench/forecast), spread
# over two `sluice worker` processes on Postgres with the trials' models in the S3-compatible
# server, one worker killed (-9) mid-trial and started again under its name.
#
# The reference configuration is the forecasting benchmark's (2x40 LSTM, dropout 0.1, lr 1e-3,
# batch 32, 50 batches x 20 epochs, Student-t): the run must end SUCCEEDED with every trial
# scored in the first rung, the killed trial trained again by a worker, and its best trial is
# reported against the reference at the same budget on the validation windows (the last week of
# every training series, seven rolling days). SLUICE_DRILL_TUNE_TRIALS sets the trials (16).

drill_tune() {
  local trials=${SLUICE_DRILL_TUNE_TRIALS:-16} pg venv s3port run_id db dburl moto
  local data="$REPO/../shared/bench/forecast/data/pedestrian"
  [ -f "$data/train.jsonl" ] || { echo "drill.sh: tune needs $data (../shared)" >&2; return 1; }
  scaled_out "$WORK/tune" || return 1
  cat >reference.json <<'JSON'
{"time_freq": "H", "context_length": "24", "prediction_length": "24", "epochs": "20",
 "num_cells": "40", "num_layers": "2", "dropout_rate": "0.1", "learning_rate": "0.001",
 "mini_batch_size": "32", "num_batches_per_epoch": "50", "likelihood": "student-T"}
JSON
  "$SLUICE" worker --name w1 >w1.log 2>&1 & local w1=$!
  "$SLUICE" worker --name w2 >w2.log 2>&1 & local w2=$!
  local started id
  started=$(date +%s)
  id=$("$SLUICE" tune --train "$data/train.jsonl" --test "$data/test.jsonl" \
        --hyperparameters reference.json --trials "$trials" --eta 3 --seed 0 --work lake:work \
        --name tune-pedestrian --no-wait --output json | json_field '["execution"]')
  # Once the first rung trains, a moment drawn from its first minute: kill the worker that
  # holds a training then, and start it again under its name.
  local holder="" state
  for _ in $(seq 1 600); do
    state=$("$SLUICE" workflow describe "$id" --output json | json_field '["state"]')
    [ "$state" = Rung ] && break
    sleep 0.5
  done
  sleep "$(python3 -c 'import random; print(round(random.uniform(1, 60), 1))')"
  for _ in $(seq 1 600); do
    holder=$(psql "$dburl" -qAtc "SELECT lock_by FROM apalis.jobs WHERE status = 'Running' AND lock_by IN ('w1', 'w2') LIMIT 1")
    [ -n "$holder" ] && break
    sleep 0.1
  done
  local killed_at=$(( $(date +%s) - started ))
  if [ "$holder" = w1 ]; then kill -9 $w1; wait $w1 2>/dev/null || true; sleep 2
    "$SLUICE" worker --name w1 >>w1.log 2>&1 & w1=$!
  else kill -9 $w2; wait $w2 2>/dev/null || true; sleep 2
    "$SLUICE" worker --name w2 >>w2.log 2>&1 & w2=$!
  fi
  echo "==> tune: killed $holder at ${killed_at} s, mid-trial" >&2
  local status
  for _ in $(seq 1 7200); do
    status=$("$SLUICE" workflow describe "$id" --output json | json_field '["status"]')
    [ "$status" != RUNNING ] && break
    sleep 1
  done
  local wall=$(( $(date +%s) - started ))
  kill $w1 $w2 2>/dev/null || true
  "$SLUICE" workflow describe "$id" --output json >tune.json
  python3 - tune.json "$wall" "$holder" <<'PY'
import json, sys
e, wall, killed = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
if e["status"] != "SUCCEEDED":
    print(f"==> tune: {e['status']} in {e['state']}: {e.get('error')}: {e.get('cause')}", file=sys.stderr)
    sys.exit(1)
r = e["output"]["report"]
for t in r["trials"]:
    drawn = " ".join(f"{k}={v}" for k, v in t["drawn"].items()) or "(reference)"
    scores = ", ".join(f"r{s['rung']}: {s['validation_mean_wql']}" for s in t["scores"])
    print(f"    trial {t['trial']:2}: {scores}  [{drawn}]", file=sys.stderr)
print(f"==> tune: {len(r['trials'])} trials, rungs "
      + ", ".join(f"{x['trials']}x{x['epochs']} epochs" for x in r["rungs"])
      + f", {wall} s wall over two workers ({killed} killed mid-trial): {r['summary']}", file=sys.stderr)
ok = all(t["scores"] and t["scores"][0]["validation_mean_wql"] is not None for t in r["trials"])
sys.exit(0 if ok else 1)
PY
  local ok=$?
  TABLE+=("tune|1 run, $trials trials|$([ $ok = 0 ] && echo 0 || echo 1)|-|0|0")
  return $ok
}
