//! The shipped `nightly-retrain` workflow end to end on embedded defaults: landings to curated
//! Parquet, a dataset, a trained and backtested model, a drift report, the publish decision with
//! its reason, and (once there is a champion) batch forecasts in the lake.

use serde_json::{Value, json};
use tests::run_sluice;

fn definition() -> String {
    format!(
        "{}/../scheduler/workflows/nightly-retrain.asl.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn the_nightly_retrain_workflow_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (ok, _, stderr) = run_sluice(
        path,
        &["generate", "landings", "--devices", "3", "--days", "5"],
    );
    assert!(ok, "{stderr}");
    let input = json!({
        "prefix": "landing", "table": "telemetry", "group": "air-quality", "work": "work",
        "item": "device_id", "target": "pm25", "freq": "1h", "prediction_length": 12, "margin": 0.0,
        "hyperparameters": {"context_length": "12", "epochs": "2", "num_cells": "8",
                            "mini_batch_size": "8", "num_batches_per_epoch": "4"}
    })
    .to_string();
    let run = |name: &str| {
        let definition = definition();
        let (ok, stdout, stderr) = run_sluice(
            path,
            &[
                "workflow",
                "run",
                "--definition",
                &definition,
                "--input",
                &input,
                "--name",
                name,
                "--output",
                "json",
            ],
        );
        assert!(ok, "{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()
    };

    let first = run("night-1");
    assert_eq!(first["status"], "SUCCEEDED", "{first}");
    let output = &first["output"];
    assert!(output["crawl"]["crawled"].as_u64().unwrap() > 0, "{output}");
    assert_eq!(
        output["convert"]["read"].as_u64(),
        Some(
            output["convert"]["written"].as_u64().unwrap()
                + output["convert"]["quarantined"].as_u64().unwrap()
        ),
        "the conversion reconciles"
    );
    assert!(path.join("work/night-1/model/model.safetensors").is_file());
    assert!(
        output["drift"]["report_id"]
            .as_str()
            .unwrap()
            .starts_with("drift-")
    );
    assert_eq!(output["publish"]["version"], 1);
    assert!(
        !output["decision"]["why"].as_str().unwrap().is_empty(),
        "{output}"
    );
    // One id for one snapshot: the registry's lineage names the dataset the night built.
    let (ok, shown, stderr) = run_sluice(
        path,
        &["models", "show", "air-quality", "1", "--output", "json"],
    );
    assert!(ok, "{stderr}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert!(
        output["dataset"]["snapshot_id"]
            .as_str()
            .unwrap()
            .starts_with("ds-")
    );
    assert_eq!(
        shown["dataset_snapshot"], output["dataset"]["snapshot_id"],
        "{shown}"
    );

    // Whatever the first decision, make v1 the champion so the next night forecasts.
    if output["publish"]["published"] == false {
        for args in [
            &[
                "models",
                "status",
                "air-quality",
                "1",
                "pending",
                "--reason",
                "test",
            ][..],
            &["models", "promote", "air-quality", "1", "--reason", "test"],
        ] {
            let (ok, _, stderr) = run_sluice(path, args);
            assert!(ok, "{stderr}");
        }
    }
    let second = run("night-2");
    assert_eq!(second["status"], "SUCCEEDED", "{second}");
    let output = &second["output"];
    assert_eq!(output["publish"]["version"], 2);
    assert_eq!(output["publish"]["champion"]["version"], 1, "{output}");
    let forecast = &output["forecast"];
    assert_eq!(forecast["items"], 3, "{output}");
    assert!(
        path.join("lake")
            .join(forecast["key"].as_str().unwrap())
            .is_file()
    );
    let (ok, history, _) = run_sluice(
        path,
        &["models", "history", "air-quality", "--output", "json"],
    );
    assert!(ok);
    let history: Value = serde_json::from_str(&history).unwrap();
    assert!(
        history.as_array().unwrap().iter().any(|e| e["actor"]
            .as_str()
            .unwrap_or_default()
            .starts_with("execution:")),
        "the workflow's decisions name their execution: {history}"
    );
}

#[test]
fn one_command_installs_the_workflow_and_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run_sluice(
        dir.path(),
        &[
            "workflow",
            "install",
            "nightly-retrain",
            "--tz",
            "Europe/Madrid",
        ],
    );
    assert!(ok && stdout.contains("installed"), "{stderr}");
    let (ok, stdout, _) = run_sluice(dir.path(), &["schedule", "list", "--output", "json"]);
    assert!(ok);
    let schedules: Value = serde_json::from_str(&stdout).unwrap();
    let nightly = &schedules[0];
    assert_eq!(
        (
            nightly["name"].as_str(),
            nightly["cron"].as_str(),
            nightly["timezone"].as_str()
        ),
        (
            Some("nightly-retrain"),
            Some("0 2 * * *"),
            Some("Europe/Madrid")
        ),
        "{schedules}"
    );
    assert_eq!(nightly["workflow"], "nightly-retrain");
}

/// The optional approval gate: with `"approval": true`, a version that beats the champion is
/// registered as pending and the durable execution waits (holding no worker) until someone
/// answers its Approve task; `sluice task success` promotes it and the night goes on to forecast.
#[test]
fn the_nightly_workflow_holds_a_winner_until_it_is_approved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let (ok, _, stderr) = run_sluice(
        &path,
        &["generate", "landings", "--devices", "3", "--days", "8"],
    );
    assert!(ok, "{stderr}");
    let definition = definition();
    let (ok, _, stderr) = run_sluice(
        &path,
        &["workflow", "create", "nightly", "--definition", &definition],
    );
    assert!(ok, "{stderr}");
    let input = json!({
        "prefix": "landing", "table": "telemetry", "group": "air-quality", "work": "work",
        "item": "device_id", "target": "pm25", "freq": "1h", "prediction_length": 12, "margin": 0.0,
        "approval": true,
        "hyperparameters": {"context_length": "24", "epochs": "20", "num_cells": "8",
                            "mini_batch_size": "16", "num_batches_per_epoch": "20",
                            "learning_rate": "0.01"}
    })
    .to_string();
    // `start --wait` runs an embedded worker until the execution ends, in its own process.
    let night = {
        let path = path.clone();
        std::thread::spawn(move || {
            run_sluice(
                &path,
                &[
                    "workflow", "start", "nightly", "--input", &input, "--name", "night-1",
                    "--wait", "--output", "json",
                ],
            )
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let task = loop {
        let (ok, stdout, stderr) = run_sluice(&path, &["task", "list", "--output", "json"]);
        assert!(ok, "{stderr}");
        let waiting: Value = serde_json::from_str(&stdout).unwrap();
        if let Some(task) = waiting.as_array().unwrap().first() {
            break task.clone();
        }
        assert!(
            !night.is_finished(),
            "the night ended without asking: {:?}",
            night.join().unwrap()
        );
        assert!(std::time::Instant::now() < deadline, "nothing was asked");
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert_eq!(task["state"], "Approve", "{task}");
    let message = task["input"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Promote air-quality v1 to champion? no champion yet"),
        "{message}"
    );
    assert!(
        task["input"]["details"]["candidate"]["mean_wQuantileLoss"].is_number(),
        "{task}"
    );
    let (ok, shown, stderr) = run_sluice(
        &path,
        &["models", "show", "air-quality", "1", "--output", "json"],
    );
    assert!(ok, "{stderr}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"], "pending", "held, not promoted: {shown}");
    assert_eq!(shown["aliases"], json!([]), "{shown}");

    let (ok, answered, stderr) = run_sluice(
        &path,
        &[
            "task",
            "success",
            task["token"].as_str().unwrap(),
            "--task-output",
            "{\"approved_by\": \"test\"}",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(answered.contains("SUCCEEDED"), "{answered}");
    let (ok, stdout, stderr) = night.join().unwrap();
    assert!(ok, "{stderr}");
    let finished: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(finished["status"], "SUCCEEDED", "{finished}");
    let output = &finished["output"];
    assert_eq!(output["approved"], json!({"approved_by": "test"}));
    assert_eq!(output["promotion"]["version"], 1, "{output}");
    assert_eq!(output["decision"]["outcome"], "published", "{output}");
    assert_eq!(output["forecast"]["items"], 3, "{output}");
    let (ok, shown, _) = run_sluice(
        &path,
        &["models", "show", "air-quality", "1", "--output", "json"],
    );
    assert!(ok);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        (&shown["status"], &shown["aliases"]),
        (&json!("approved"), &json!(["champion"])),
        "{shown}"
    );
}
