//! Scale-out for real: Postgres, the S3-compatible server on loopback (scripts/test.sh starts
//! it), a `sluice server --no-worker` for the API and two `sluice worker` processes. The
//! nightly-retrain workflow starts over the HTTP API; the worker that runs its training is killed
//! with SIGKILL; the other one takes the step over and finishes, and every landed record is
//! converted exactly once. Datasets and models go through the lake (`lake:work`), not a disk.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Backend, TestDb, free_port, run_sluice, spawn};

fn s3_endpoint() -> String {
    std::env::var("SLUICE_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_S3_ENDPOINT is not set: the scale-out test needs the S3-compatible server scripts/test.sh starts")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_finish_the_nightly_workflow_after_one_is_killed_in_training() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let bucket = std::env::var("SLUICE_TEST_S3_BUCKET").unwrap_or_else(|_| "sluice-test".into());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let port = free_port();
    std::fs::write(
        path.join("sluice.toml"),
        format!(
            "database = \"{}\"\nlake = \"s3://{bucket}/scale-out/{run}\"\n\n[s3]\nendpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\nallow_http = true\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n",
            db.url,
            s3_endpoint()
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = run_sluice(
        path,
        &[
            "generate",
            "landings",
            "--devices",
            "4",
            "--days",
            "8",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let generated: Value = serde_json::from_str(&stdout).unwrap();
    // The work folder (datasets, model directories) is in the lake, on S3: the workers share
    // nothing but Postgres and S3.
    let input = json!({
        "prefix": "landing", "table": "telemetry", "group": "air-quality",
        "work": "lake:work", "item": "device_id", "target": "pm25", "freq": "1h",
        "prediction_length": 12, "margin": 0.0,
        "hyperparameters": {"context_length": "24", "epochs": "40", "num_cells": "24",
                            "mini_batch_size": "32", "num_batches_per_epoch": "20"}
    });
    let (ok, _, stderr) = run_sluice(
        path,
        &[
            "workflow",
            "install",
            "nightly-retrain",
            "--input",
            &input.to_string(),
        ],
    );
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run_sluice(
        path,
        &[
            "token", "create", "--scope", "admin", "--name", "test", "--output", "json",
        ],
    );
    assert!(ok, "{stderr}");
    let token = serde_json::from_str::<Value>(&stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let _server = spawn(path, &["server", "--no-worker"]);
    let mut workers = [
        Some(spawn(path, &["worker", "--name", "w1"])),
        Some(spawn(path, &["worker", "--name", "w2"])),
    ];
    let api = format!("http://127.0.0.1:{port}");
    let client = tests::http();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{api}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started: Value = client
        .post(format!("{api}/workflows/nightly-retrain/executions"))
        .bearer_auth(&token)
        .json(&json!({"name": "night-1", "input": input}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().expect("an execution id").to_owned();
    let describe = || {
        let (client, url, token) = (
            client.clone(),
            format!("{api}/executions/{id}"),
            token.clone(),
        );
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    // Wait for training, then kill the worker that holds the step.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let holder = loop {
        let now = describe().await;
        assert_eq!(now["status"], "RUNNING", "{now}");
        // Training is the Candidates state: DeepAR and the challengers, each a child execution
        // whose step any worker may hold.
        if now["state"] == "Candidates"
            && let Some(holder) = tests::worker_holding_a_step(&pool, &["w1", "w2"]).await
        {
            break holder;
        }
        assert!(Instant::now() < deadline, "training never started: {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let index = if holder == "w1" { 0 } else { 1 };
    let mut killed = workers[index].take().unwrap();
    killed.0.kill().unwrap(); // SIGKILL, mid-training
    killed.0.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(400);
    let finished = loop {
        let now = describe().await;
        if now["status"] != "RUNNING" {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the execution did not finish: {now}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(finished["status"], "SUCCEEDED", "{finished}");
    let survivor = if index == 0 { "w2" } else { "w1" };
    let done_by: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT lock_by FROM apalis.jobs WHERE status = 'Done' AND lock_by IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        done_by.iter().any(|w| w == survivor),
        "{survivor} finished the killed worker's step: {done_by:?}"
    );

    // Every record that landed was converted exactly once.
    let output = &finished["output"];
    let (read, written, quarantined) = (
        output["convert"]["read"].as_u64().unwrap(),
        output["convert"]["written"].as_u64().unwrap(),
        output["convert"]["quarantined"].as_u64().unwrap(),
    );
    assert_eq!(read, generated["records"].as_u64().unwrap(), "{output}");
    assert_eq!(read, written + quarantined);
    assert_eq!(
        quarantined,
        generated["malformed_records"].as_u64().unwrap()
    );
    let (ok, stdout, stderr) = run_sluice(
        path,
        &["catalog", "show", "telemetry_curated", "--output", "json"],
    );
    assert!(ok, "{stderr}");
    let curated: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(curated["records"].as_u64(), Some(written), "{curated}");
    let (ok, stdout, _) = run_sluice(path, &["convert", "telemetry", "--output", "json"]);
    assert!(ok);
    let again: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        again["records_read"], 0,
        "nothing is converted twice: {again}"
    );
    assert!(
        output["publish"]["version"].as_u64() == Some(1),
        "the model was registered once: {output}"
    );
    assert!(
        output["dataset"]["train"]
            .as_str()
            .unwrap()
            .starts_with("lake:work/night-1/dataset/"),
        "{output}"
    );
    assert!(
        !path.join("work").exists(),
        "nothing was written to a local work folder"
    );
}
