# The `soak` drill of scripts/drill.sh (sourced by it; uses its helpers and SLUICE, REPO, WORK,
# TABLE): a nightly-retrain every minute for an hour (SLUICE_DRILL_SOAK_MINUTES) on SQLite and
# the local lake, under one `sluice server`, with a day of landings arriving every minute and
# an application calling the prediction endpoint every second with identified series (so
# the served-forecast buffer fills and flushes). Retention is short (`executions` and
# `forecasts` 10 minutes), so that its effect shows within the hour.
#
# Every minute it samples the server's resident memory and open files, the database's size
# on disk, and the rows of what retention bounds (executions, history events, the queue's
# records, forecast runs). It fails when a night fails, an endpoint call fails once a
# champion serves, or, between the middle and the last third of the hour: memory grows by
# more than a quarter (+32 MiB), open files by more than 8, the bounded rows by more than a
# quarter, or the database grows faster than before (what it grows by is the catalog of the
# data landed, which is kept).

drill_soak() {
  local dir="$WORK/soak" minutes=${SLUICE_DRILL_SOAK_MINUTES:-60} apiport
  mkdir -p "$dir"
  cd "$dir"
  apiport=$(port)
  cat >sluice.toml <<TOML
[api]
listen = "127.0.0.1:$apiport"

[retention]
executions = "10m"
forecasts = "10m"
TOML
  local input='{"prefix": "landing", "table": "telemetry", "group": "air-quality", "work": "lake:work", "item": "device_id", "target": "pm25", "freq": "1h", "prediction_length": 12, "margin": 0.0, "hyperparameters": {"context_length": "24", "epochs": "15", "num_cells": "24", "mini_batch_size": "32", "num_batches_per_epoch": "20"}}'
  "$SLUICE" generate landings --devices 4 --days 8 >/dev/null
  "$SLUICE" workflow install nightly-retrain --input "$input" >/dev/null
  "$SLUICE" schedule create soak --cron '0 * * * * *' --workflow nightly-retrain --input "$input" --overlap skip >/dev/null
  "$SLUICE" endpoint create air-quality --group air-quality >/dev/null
  local token
  token=$("$SLUICE" token create --scope predict --name soak --output json | json_field '["token"]')
  "$SLUICE" server >server.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$apiport/health" >/dev/null && break; sleep 0.2; done
  echo "==> soak: $minutes minutes; a night every minute, a day of landings every minute, a call every second" >&2
  local status=0
  python3 - "$SLUICE" "$SERVER_PID" "$apiport" "$token" "$minutes" >soak.json <<'PY' || status=$?
import glob, json, os, random, sqlite3, subprocess, sys, threading, time, urllib.request

sluice, pid, port, token, minutes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
db = sqlite3.connect("file:.sluice/sluice.db?mode=ro", uri=True, timeout=30)
calls = {"ok": 0, "failed": 0, "no_champion": 0}
stop = threading.Event()

def series():
    """A series of the latest dataset's test file, as an application would send it."""
    files = sorted(glob.glob("lake/work/*/dataset/test.jsonl"), key=os.path.getmtime)
    if not files:
        return None
    lines = open(files[-1]).read().splitlines()
    s = json.loads(random.choice(lines))
    s["target"] = s["target"][-96:]
    return s

def caller():
    start = None
    while not stop.is_set():
        time.sleep(1)
        s = series()
        if s is None:
            continue
        body = {"instances": [{"start": s["start"], "target": s["target"], "cat": s.get("cat", []),
                               "item_id": str(s.get("item_id", "device"))}],
                "configuration": {"num_samples": 20, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.5", "0.9"]}}
        req = urllib.request.Request(f"http://127.0.0.1:{port}/endpoints/air-quality/invocations",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
                calls["ok"] += 1
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            if "champion" in text or "no model" in text.lower() or e.code == 404:
                calls["no_champion"] += 1
            else:
                calls["failed"] += 1
                print(f"soak: a call failed: {e.code} {text[:200]}", file=sys.stderr)
        except Exception as e:
            calls["failed"] += 1
            print(f"soak: a call failed: {e}", file=sys.stderr)

threading.Thread(target=caller, daemon=True).start()

def scalar(sql):
    for _ in range(10):
        try:
            return db.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:
            time.sleep(0.5)
    return db.execute(sql).fetchone()[0]

def sample(minute):
    status = open(f"/proc/{pid}/status").read()
    rss = int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1]) / 1024
    return {
        "minute": minute,
        "rss_mib": round(rss, 1),
        "open_files": len(os.listdir(f"/proc/{pid}/fd")),
        "db_mib": round(sum(os.path.getsize(p) for p in glob.glob(".sluice/sluice.db*")) / 2**20, 2),
        "executions": scalar("SELECT count(*) FROM executions"),
        "events": scalar("SELECT count(*) FROM execution_events"),
        "queue": scalar("SELECT count(*) FROM Jobs"),
        "forecast_runs": scalar("SELECT count(*) FROM batch_forecasts"),
        "served_runs": scalar("SELECT count(*) FROM batch_forecasts WHERE source = 'served'"),
        "objects": scalar("SELECT count(*) FROM objects"),
    }

seen_ok, seen_failed, samples, day = set(), {}, [], 8
began = time.time()
for minute in range(1, minutes + 1):
    # A new day of landings.
    subprocess.run([sluice, "generate", "landings", "--devices", "4", "--days", str(day + 1), "--from-day", str(day)],
                   check=True, stdout=subprocess.DEVNULL)
    day += 1
    time.sleep(max(0, began + 60 * minute - time.time()))
    if not os.path.exists(f"/proc/{pid}"):
        print("soak: the server died", file=sys.stderr)
        break
    for id_, st, err in db.execute("SELECT id, status, coalesce(error, '') || ': ' || coalesce(cause, '') FROM executions WHERE parent_id IS NULL"):
        if st == "SUCCEEDED":
            seen_ok.add(id_)
        elif st in ("FAILED", "ABORTED"):
            seen_failed[id_] = err
    s = sample(minute)
    s["nights_ok"], s["nights_failed"], s["calls_ok"] = len(seen_ok), len(seen_failed), calls["ok"]
    samples.append(s)
    print(json.dumps(s), file=sys.stderr)
stop.set()

third = max(1, len(samples) // 3)
mid, last = samples[third:2 * third], samples[2 * third:]
peak = lambda rows, k: max(r[k] for r in rows)
growth = lambda rows: rows[-1]["db_mib"] - rows[0]["db_mib"]
checks = {
    "no night failed": not seen_failed,
    "nights ran": len(seen_ok) >= minutes // 3,
    "no call failed": calls["failed"] == 0 and calls["ok"] > 0,
    "memory flat": peak(last, "rss_mib") <= 1.25 * peak(mid, "rss_mib") + 32,
    "open files flat": peak(last, "open_files") <= peak(mid, "open_files") + 8,
    "history bounded": all(peak(last, k) <= 1.25 * peak(mid, k) + 50 for k in ("executions", "events", "queue")),
    "forecast runs bounded": peak(last, "forecast_runs") <= peak(mid, "forecast_runs") + 5,
    "database grows no faster": growth(last) <= 1.5 * growth(mid) + 1.0,
}
print(json.dumps({"samples": samples, "calls": calls, "nights_ok": len(seen_ok), "failed": seen_failed, "checks": checks}))
for k, ok in checks.items():
    print(f"soak: {'ok  ' if ok else 'FAIL'} {k}", file=sys.stderr)
sys.exit(0 if all(checks.values()) else 1)
PY
  python3 - soak.json <<'PY' >&2 || true
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{'minute':>6} {'rss MiB':>8} {'files':>6} {'db MiB':>7} {'execs':>6} {'events':>7} {'queue':>6} {'fc runs':>7} {'objects':>8} {'nights':>7} {'calls':>6}")
for s in r["samples"]:
    if s["minute"] % 5 == 0 or s["minute"] == 1:
        print(f"{s['minute']:>6} {s['rss_mib']:>8} {s['open_files']:>6} {s['db_mib']:>7} {s['executions']:>6} {s['events']:>7} {s['queue']:>6} {s['forecast_runs']:>7} {s['objects']:>8} {s['nights_ok']:>7} {s['calls_ok']:>6}")
PY
  local nights failed calls
  nights=$(python3 -c "import json; print(json.load(open('soak.json'))['nights_ok'])" 2>/dev/null || echo 0)
  failed=$(python3 -c "import json; r = json.load(open('soak.json')); print(len(r['failed']) + r['calls']['failed'] + sum(1 for v in r['checks'].values() if not v))" 2>/dev/null || echo 1)
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "drill.sh: the server died during the soak:" >&2; tail -20 server.log >&2; status=1; }
  kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  TABLE+=("soak|$minutes min, $nights nights|$failed|-|0|0")
  cd "$REPO"
  return $status
}
