//! A Map of 1,000 iterations shared by two `sluice worker` processes on Postgres: each runs a
//! fair share of the iterations, one is killed with SIGKILL in the middle, and every iteration
//! still completes exactly once (one child execution per item, each succeeded once), the Map's
//! output in item order.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Backend, TestDb, run_sluice, spawn, wait_for_execution};

const ITEMS: usize = 1000;

/// Waits until both workers have registered with the queue, then a moment more. A worker idle
/// when another process pushes a burst can take up to its 5-second heartbeat to join in (see
/// the README), so the bursts these tests share last longer than that.
async fn both_up(pool: &sqlx::PgPool, names: [&str; 2]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM apalis.workers WHERE id IN ($1, $2)")
                .bind(names[0])
                .bind(names[1])
                .fetch_one(pool)
                .await
                .unwrap_or(0);
        if up == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the workers never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// How many batches of `size` the generated telemetry objects make.
fn objects_in_batches(generated: &Value, size: u64) -> u64 {
    generated["objects"].as_u64().unwrap().div_ceil(size)
}

/// A fresh Postgres database, and a folder whose `sluice.toml` points every process at it.
async fn on_postgres() -> (TestDb, tempfile::TempDir) {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        format!("database = \"{}\"\n", db.url),
    )
    .unwrap();
    (db, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_a_map_of_1000_iterations_and_finish_it_after_one_is_killed() {
    let (db, dir) = on_postgres().await;
    let path = dir.path();
    let effects = path.join("effects");
    std::fs::create_dir(&effects).unwrap();
    // Each iteration sleeps a moment and appends a line to a file of its own as it ends.
    let flow = json!({"StartAt": "Each", "States": {"Each": {"Type": "Map", "End": true,
        "ItemSelector": {"seconds": 0.1,
            "effect.$": "States.Format('{}/{}', $$.Execution.Input.effects, $$.Map.Item.Value)"},
        "ItemsPath": "$.items",
        "ItemProcessor": {"StartAt": "Work", "States": {
            "Work": {"Type": "Task", "Resource": "sluice:sleep", "End": true}}}}}});
    std::fs::write(path.join("map.json"), flow.to_string()).unwrap();
    let (ok, _, stderr) = run_sluice(
        path,
        &["workflow", "create", "map", "--definition", "map.json"],
    );
    assert!(ok, "{stderr}");
    let mut workers = [
        Some(spawn(path, &["worker", "--name", "w1"])),
        Some(spawn(path, &["worker", "--name", "w2"])),
    ];
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    both_up(&pool, ["w1", "w2"]).await;
    let items: Vec<usize> = (0..ITEMS).collect();
    let input = json!({"items": items, "effects": effects});
    let (ok, stdout, stderr) = run_sluice(
        path,
        &[
            "workflow",
            "start",
            "map",
            "--input",
            &input.to_string(),
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let id = serde_json::from_str::<Value>(&stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // In the middle of the Map, kill one worker.
    let succeeded = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM executions WHERE parent_id = $1 AND status = 'SUCCEEDED'",
        )
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while succeeded().await < (ITEMS as i64) * 6 / 10 {
        assert!(Instant::now() < deadline, "the Map never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done_by = |worker: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM apalis.jobs WHERE lock_by = $1 AND status = 'Done'",
            )
            .bind(worker)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let before_kill = succeeded().await;
    let (w1, w2_before) = (done_by("w1").await, done_by("w2").await);
    workers[0].take().unwrap().kill();

    let (dir_path, waited) = (path.to_owned(), id.clone());
    let status = tokio::task::spawn_blocking(move || {
        wait_for_execution(&dir_path, &waited, Duration::from_secs(240))
    })
    .await
    .unwrap();
    assert_eq!(status, "SUCCEEDED");
    let w2 = done_by("w2").await;
    // Both shared the Map before the kill: each had run at least a fifth of the steps done.
    let shared = w1 + w2_before;
    assert!(
        w1 * 5 >= shared && w2_before * 5 >= shared,
        "before the kill ({before_kill} iterations done) w1 ran {w1} steps and w2 {w2_before}"
    );
    assert!(w2 > w2_before, "w2 finished the rest: {w2} steps in all");

    // Once per iteration: one child per item, each succeeded once, the output in order.
    let (ok, stdout, stderr) = run_sluice(path, &["workflow", "describe", &id, "--output", "json"]);
    assert!(ok, "{stderr}");
    let parent: Value = serde_json::from_str(&stdout).unwrap();
    let output = parent["output"].as_array().expect("the Map's output");
    assert_eq!(output.len(), ITEMS);
    for (index, item) in output.iter().enumerate() {
        let effect = effects.join(index.to_string());
        assert_eq!(item["effect"], json!(effect), "item {index} in its place");
        assert!(effect.exists(), "item {index} ran");
    }
    let children: Vec<(String, i64)> = sqlx::query_as(
        "SELECT e.status, (SELECT COUNT(*) FROM execution_events v WHERE v.execution_id = e.id AND v.kind = 'ExecutionSucceeded') \
         FROM executions e WHERE e.parent_id = $1",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(children.len(), ITEMS, "one child per item");
    assert!(
        children
            .iter()
            .all(|(status, succeeded)| status == "SUCCEEDED" && *succeeded == 1),
        "each child succeeded once"
    );
    let items_started: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT i.execution_id) FROM map_items i JOIN map_runs r ON r.id = i.run_id WHERE r.execution_id = $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(items_started, ITEMS as i64);
    let run: (String, i64, i64) =
        sqlx::query_as("SELECT status, succeeded, failed FROM map_runs WHERE execution_id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(run, ("SUCCEEDED".to_owned(), ITEMS as i64, 0));
    // An iteration whose worker died between its effect and its commit ran twice: the effects
    // of those in flight at the kill, at most.
    let twice = (0..ITEMS)
        .filter(|i| {
            std::fs::read_to_string(effects.join(i.to_string()))
                .unwrap()
                .lines()
                .count()
                > 1
        })
        .count();
    assert!(twice <= 10, "{twice} effects repeated");
    drop(workers);
}

/// Landings converted in parallel: a distributed Map lists six days of landing objects and
/// hands each batch of two to `sluice:convert` with its keys, on two workers; every record lands
/// once in the curated table (each object's bookmark commits with its batch, and a batch racing
/// another to create the curated table is retried), against the generator's truth, though the
/// worker that converted the first third is killed (-9) mid-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_convert_landings_in_batches_exactly_once() {
    let (db, dir) = on_postgres().await;
    let path = dir.path();
    let (ok, stdout, stderr) = run_sluice(
        path,
        &[
            "generate",
            "landings",
            "--devices",
            "4",
            "--days",
            "6",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let generated: Value = serde_json::from_str(&stdout).unwrap();
    let (ok, _, stderr) = run_sluice(path, &["crawl", "landing"]);
    assert!(ok, "{stderr}");
    let flow = json!({"StartAt": "Convert", "States": {"Convert": {"Type": "Map", "End": true,
        "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                       "Parameters": {"Bucket": "landing-bucket", "Prefix": "landing/telemetry/"}},
        "ItemBatcher": {"MaxItemsPerBatch": 2},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Batch", "States": {"Batch": {"Type": "Task", "Resource": "sluice:convert", "End": true,
                "Parameters": {"table": "telemetry", "objects.$": "$.Items[*].Key"},
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 6, "IntervalSeconds": 1, "JitterStrategy": "FULL"}],
                "ResultSelector": {"read.$": "$.records_read", "written.$": "$.records_written",
                                   "quarantined.$": "$.records_quarantined", "sources.$": "$.sources"}}}}}}});
    std::fs::write(path.join("convert.json"), flow.to_string()).unwrap();
    let (ok, _, stderr) = run_sluice(
        path,
        &[
            "workflow",
            "create",
            "convert-day",
            "--definition",
            "convert.json",
        ],
    );
    assert!(ok, "{stderr}");
    let mut workers = [
        Some(spawn(path, &["worker", "--name", "c1"])),
        Some(spawn(path, &["worker", "--name", "c2"])),
    ];
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    both_up(&pool, ["c1", "c2"]).await;
    let (ok, stdout, stderr) = run_sluice(
        path,
        &["workflow", "start", "convert-day", "--output", "json"],
    );
    assert!(ok, "{stderr}");
    let id = serde_json::from_str::<Value>(&stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A third of the way through, the worker that has converted batches is killed (-9), in
    // the middle of others: the other one converts the rest, and nothing is converted twice.
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed = loop {
        let done: Vec<(String, i64)> = sqlx::query_as(
            "SELECT lock_by, COUNT(*) FROM apalis.jobs WHERE status = 'Done' AND lock_by IS NOT NULL \
             GROUP BY lock_by ORDER BY 2 DESC",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let total: i64 = done.iter().map(|(_, n)| n).sum();
        if total * 3 >= objects_in_batches(&generated, 2) as i64 {
            break done[0].0.clone();
        }
        assert!(Instant::now() < deadline, "the conversion never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let index = if killed == "c1" { 0 } else { 1 };
    workers[index].take().unwrap().kill();
    let (dir_path, waited) = (path.to_owned(), id.clone());
    let status = tokio::task::spawn_blocking(move || {
        wait_for_execution(&dir_path, &waited, Duration::from_secs(300))
    })
    .await
    .unwrap();
    let (ok, stdout, _) = run_sluice(path, &["workflow", "describe", &id, "--output", "json"]);
    assert!(ok);
    let parent: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status, "SUCCEEDED", "{parent}");

    // Every object in exactly one batch, every record read once, written or quarantined.
    // One child per batch. A batch whose worker was killed after its conversion committed and
    // before its step did runs again and finds its objects converted: it reports nothing read.
    // So the ledger is the catalog's: each object's bookmark once, each record read once.
    let batches = parent["output"].as_array().unwrap();
    assert_eq!(batches.len() as u64, objects_in_batches(&generated, 2));
    // The listing holds the telemetry objects (Firehose's error object lands under landing/errors).
    let objects = generated["objects"].as_u64().unwrap() as i64;
    let bookmarks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM converted_objects")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(bookmarks, objects, "every object converted once");
    let (read, written, quarantined): (i64, i64, i64) = sqlx::query_as(
        "SELECT SUM(records_read)::BIGINT, SUM(records_written)::BIGINT, SUM(records_quarantined)::BIGINT \
         FROM conversion_runs WHERE status IN ('committed', 'published')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(read as u64, generated["records"].as_u64().unwrap());
    assert_eq!(read, written + quarantined);
    assert_eq!(
        quarantined as u64,
        generated["malformed_records"].as_u64().unwrap()
    );
    let (ok, stdout, stderr) = run_sluice(
        path,
        &["catalog", "show", "telemetry_curated", "--output", "json"],
    );
    assert!(ok, "{stderr}");
    let curated: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(curated["records"].as_i64(), Some(written), "{curated}");
    let (ok, stdout, _) = run_sluice(path, &["convert", "telemetry", "--output", "json"]);
    assert!(ok);
    let again: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        again["records_read"], 0,
        "nothing is converted twice: {again}"
    );

    // Both workers converted batches: the killed one before, the other after.
    let workers: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT lock_by FROM apalis.jobs WHERE status = 'Done' AND lock_by IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(workers.len(), 2, "{workers:?}");
    // A batch naming an object the table does not hold is refused, naming it.
    let (ok, _, stderr) = run_sluice(
        path,
        &[
            "convert",
            "telemetry",
            "--object",
            "landing/telemetry/nope.gz",
        ],
    );
    assert!(
        !ok && stderr.contains("landing/telemetry/nope.gz"),
        "{stderr}"
    );
}

/// One model per group of series: a distributed Map over the groups builds each group's dataset
/// (`only_items`), trains on it and publishes it under the group's name, one child execution per
/// group (run here by `workflow start --wait`'s embedded worker, on SQLite).
#[test]
fn a_distributed_map_trains_and_publishes_one_model_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    for args in [
        &["generate", "landings", "--devices", "4", "--days", "5"][..],
        &["crawl", "landing"],
        &["convert", "telemetry"],
    ] {
        let (ok, _, stderr) = run_sluice(path, args);
        assert!(ok, "{args:?}: {stderr}");
    }
    let flow = json!({"StartAt": "Groups", "States": {"Groups": {"Type": "Map", "End": true,
        "ItemsPath": "$.groups",
        "ItemSelector": {"group.$": "$$.Map.Item.Value.group", "items.$": "$$.Map.Item.Value.items"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Dataset", "States": {
            "Dataset": {"Type": "Task", "Resource": "sluice:dataset", "ResultPath": "$.dataset", "Next": "Train",
                "Parameters": {"table": "telemetry", "item": "device_id", "target": "pm25", "freq": "1h",
                    "prediction_length": 12, "only_items.$": "$.items",
                    "out.$": "States.Format('work/{}/dataset', $.group)"}},
            "Train": {"Type": "Task", "Resource": "sluice:train", "ResultPath": "$.train", "Next": "Publish",
                "Parameters": {"train.$": "$.dataset.train", "test.$": "$.dataset.test",
                    "snapshot_id.$": "$.dataset.snapshot_id",
                    "model_dir.$": "States.Format('work/{}/model', $.group)",
                    "hyperparameters": {"context_length": "24", "epochs": "20", "num_cells": "8",
                        "mini_batch_size": "16", "num_batches_per_epoch": "20", "learning_rate": "0.01",
                        "prediction_length": "12", "time_freq": "H"}}},
            "Publish": {"Type": "Task", "Resource": "sluice:publish", "End": true,
                "Parameters": {"group.$": "$.group", "model_dir.$": "$.train.model_dir",
                    "test.$": "$.dataset.test", "margin": 0.0},
                "ResultSelector": {"group.$": "$.group", "version.$": "$.version"}}}}}}});
    std::fs::write(path.join("groups.json"), flow.to_string()).unwrap();
    let (ok, _, stderr) = run_sluice(
        path,
        &[
            "workflow",
            "create",
            "per-group",
            "--definition",
            "groups.json",
        ],
    );
    assert!(ok, "{stderr}");
    let input = json!({"groups": [
        {"group": "west", "items": ["aq-0000", "aq-0001"]},
        {"group": "east", "items": ["aq-0002", "aq-0003"]}]});
    let (ok, stdout, stderr) = run_sluice(
        path,
        &[
            "workflow",
            "start",
            "per-group",
            "--input",
            &input.to_string(),
            "--wait",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let done: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(
        done["output"],
        json!([{"group": "west", "version": 1}, {"group": "east", "version": 1}]),
        "{done}"
    );
    // Each group's dataset holds its own series only.
    for (group, items) in [
        ("west", ["aq-0000", "aq-0001"]),
        ("east", ["aq-0002", "aq-0003"]),
    ] {
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(path.join(format!("work/{group}/dataset/dataset.json")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["items"], 2, "{group}: {manifest}");
        assert_eq!(manifest["spec"]["only_items"], json!(items));
        let (ok, stdout, stderr) =
            run_sluice(path, &["models", "show", group, "1", "--output", "json"]);
        assert!(ok, "{group}: {stderr}");
        let version: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            version["dataset_snapshot"], manifest["snapshot_id"],
            "{group}'s model was trained on its own dataset: {version}"
        );
    }
}
