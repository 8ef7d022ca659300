"""The nights of the `jobs` drill (scripts/drills/jobs.sh runs it in its working directory, where
sluice.toml points at the drill's Postgres database and S3 bucket, and `sluice server
--no-worker` runs). It owns the two workers, `sluice worker --name w1|w2`.

For each job, nights run (each after a new day of landings) until the job has been interrupted
KILLS times, at most PER_NIGHT a night: once the execution is in the job's state and a worker
holds its delivery, both workers are killed (-9) at a moment drawn uniformly from the job's
duration in the last night that did not kill it, and started again under their names. The
step then runs again from its start, and may be killed again. The database is polled every
5 ms over one connection, so that a job of 40 ms is hit inside its run.

After each job's nights it checks every night so far, and prints one JSON line per job.
usage: jobs.py SLUICE DBURL BUCKET PREFIX S3_ENDPOINT INPUT KILLS PER_NIGHT FIRST_DAY GENERATED
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import boto3
import psycopg

# Candidates is training: DeepAR and the challengers, a Map state whose iterations are child
# executions, each step on any worker.
JOBS = ["Crawl", "Convert", "Compact", "Dataset", "Candidates", "DetectDrift", "Publish", "BatchForecast"]

sluice, dburl, bucket, prefix, endpoint, night_input = sys.argv[1:7]
want, per_night, day, generated = (int(a) for a in sys.argv[7:11])
db = psycopg.connect(dburl, autocommit=True)
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="t", aws_secret_access_key="t")


def one(sql, *args):
    row = db.execute(sql, args).fetchone()
    return row[0] if row and len(row) == 1 else row


def run(*args):
    out = subprocess.run([sluice, *args], check=True, capture_output=True, text=True)
    return out.stdout


def cli_json(*args):
    return json.loads(run(*args, "--output", "json"))


workers = {}


def start_workers():
    for name in ("w1", "w2"):
        log = open(f"{name}.log", "a")
        workers[name] = subprocess.Popen([sluice, "worker", "--name", name], stdout=log, stderr=log)


def kill_workers():
    for proc in workers.values():
        proc.send_signal(signal.SIGKILL)
    for proc in workers.values():
        proc.wait()


def durations(execution, but=None):
    """Each Task or Map state's time from entered to exited in an execution's history."""
    rows = db.execute(
        "SELECT state, max(at) FILTER (WHERE kind IN ('TaskStateExited', 'MapStateExited')) "
        "- min(at) FILTER (WHERE kind IN ('TaskStateEntered', 'MapStateEntered')) "
        "FROM execution_events WHERE execution_id = %s AND state IS NOT NULL GROUP BY state", (execution,)).fetchall()
    return {state: ms for state, ms in rows if ms is not None and state != but}


def start_night(name):
    return cli_json("workflow", "start", "nightly", "--name", name, "--input", night_input)["id"]


def status(execution):
    return one("SELECT status, state FROM executions WHERE id = %s", execution)


def held():
    """Whether a worker holds a delivery (apalis marks it Queued, then Running, locked by it)."""
    return one("SELECT count(*) FROM apalis.jobs WHERE status IN ('Queued', 'Running') AND lock_by IS NOT NULL") > 0


def invariants(ids):
    run("vacuum", "--grace-minutes", "0")
    quarantined, read = one("SELECT coalesce(sum(records_quarantined), 0), coalesce(sum(records_read), 0) "
                            "FROM conversion_runs WHERE status IN ('committed', 'published')")
    quarantined, read = int(quarantined), int(read)
    found = cli_json("query", "SELECT count(*) AS n FROM telemetry_curated")["rows"][0]["n"]
    distinct = cli_json("query", "SELECT count(*) AS n FROM (SELECT DISTINCT device_id, ts FROM telemetry_curated) AS once")["rows"][0]["n"]
    versions = len(cli_json("models", "list", "air-quality"))
    outputs = [json.loads(o) for (o,) in db.execute(
        "SELECT output FROM executions WHERE parent_id IS NULL AND output IS NOT NULL").fetchall()]
    registered = [o["publish"]["version"] for o in outputs if (o.get("publish") or {}).get("version")]
    forecast_nights = sum(1 for o in outputs if (o.get("forecast") or {}).get("run"))
    forecasts = one("SELECT count(*) FROM batch_forecasts WHERE source = 'batch'")
    listed = set()
    for key, history in db.execute("SELECT lake_key, history_key FROM batch_forecasts").fetchall():
        listed.update(f"{prefix}/{k}" for k in (key, history) if k)
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
            for o in page.get("Contents", [])]
    unlisted = sum(1 for k in keys if k.startswith(f"{prefix}/forecasts/") and k not in listed)
    staged = sum(1 for k in keys if "_staging/" in k)
    unexplained = one("SELECT count(*) FROM executions WHERE parent_id IS NULL AND status = 'FAILED' AND coalesce(error, '') = ''")
    return {
        "expected": generated - quarantined, "found": found, "distinct": distinct, "read": read,
        "generated": generated, "versions": versions, "registered": len(set(registered)),
        "registered_twice": len(registered) - len(set(registered)), "forecasts": forecasts,
        "forecast_nights": forecast_nights, "unlisted_forecast_files": unlisted, "staged": staged,
        "failed_without_reason": unexplained,
        "duplicates": (found - distinct) + (versions - len(set(registered))) + (len(registered) - len(set(registered)))
        + (forecasts - forecast_nights) + unlisted,
    }


start_workers()
ids, nights = [], 0
first = start_night("night-0")
ids.append(first)
while status(first)[0] == "RUNNING":
    time.sleep(0.5)
took = durations(first)
print(json.dumps({"undisturbed": took}), flush=True)
random.seed(int.from_bytes(os.urandom(8), "little"))
for job in JOBS:
    kills = failed = lost = job_nights = 0
    moments = []
    while kills < want and job_nights < (want + per_night - 1) // per_night + 4:
        job_nights += 1
        nights += 1
        generated += json.loads(run("generate", "landings", "--devices", "4", "--days", str(day + 1),
                                    "--from-day", str(day), "--output", "json"))["records"]
        day += 1
        execution = start_night(f"night-{nights}")
        ids.append(execution)
        deadline = time.time() + 1200
        night_kills = 0
        while night_kills < per_night and kills < want and time.time() < deadline:
            # The job's step running on a worker, or the night past it.
            while time.time() < deadline:
                st, state = status(execution)
                if st != "RUNNING" or (state == job and held()):
                    break
                time.sleep(0.005)
            if st != "RUNNING" or state != job:
                break
            span = took.get(job, 100) / 1000
            moment = random.uniform(0, span)
            time.sleep(moment)
            st, state = status(execution)
            if st != "RUNNING" or state != job:
                break
            kill_workers()
            start_workers()
            kills += 1
            night_kills += 1
            moments.append(round(moment / span, 2) if span else 0)
        while status(execution)[0] == "RUNNING":
            if time.time() > deadline:
                lost += 1
                break
            time.sleep(0.5)
        st, _ = status(execution)
        took.update(durations(execution, but=job if night_kills else None))
        error = one("SELECT coalesce(error, '') || ': ' || coalesce(cause, '') FROM executions WHERE id = %s", execution) if st == "FAILED" else ""
        failed += st == "FAILED"
        print(json.dumps({"job": job, "night": nights, "status": st, "kills": night_kills, "error": error}), flush=True)
    checked = invariants(ids)
    print(json.dumps({"job": job, "nights": job_nights, "kills": kills, "failed": failed, "lost": lost,
                      "moments": sorted(moments), **checked}), flush=True)
kill_workers()
