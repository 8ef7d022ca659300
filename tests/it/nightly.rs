//! The shipped `nightly-retrain` workflow end to end on embedded defaults: landings to curated
//! Parquet, a dataset, a drift report, the retrain check, a trained and backtested model, the
//! publish decision with its reason, and (once there is a champion) batch forecasts in the lake.

use serde_json::{Value, json};
use tests::run_sluice;

fn definition() -> String {
    format!(
        "{}/../scheduler/workflows/nightly-retrain.asl.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The state's events in an execution's history, as JSON text.
fn events_of(path: &std::path::Path, execution: &str, state: &str) -> String {
    let (ok, history, stderr) = run_sluice(
        path,
        &["workflow", "history", execution, "--output", "json"],
    );
    assert!(ok, "{stderr}");
    let history: Value = serde_json::from_str(&history).unwrap();
    history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == state)
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Three nights: the first trains (no champion yet); the second sees nothing new and keeps the
/// champion, forecasting with it; the third, started as a drift trigger starts it, retrains
/// because wildfire smoke drifted the data. Each night's reason is in its history.
#[test]
fn the_nightly_retrain_workflow_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (ok, _, stderr) = run_sluice(
        path,
        &["generate", "landings", "--devices", "3", "--days", "5"],
    );
    assert!(ok, "{stderr}");
    let definition = definition();
    let (ok, _, stderr) = run_sluice(
        path,
        &["workflow", "create", "nightly", "--definition", &definition],
    );
    assert!(ok, "{stderr}");
    // New rows alone never retrain here (a tenfold growth would): what retrains is the lack of
    // a champion, or drift.
    let input = json!({
        "prefix": "landing", "table": "telemetry", "group": "air-quality", "work": "work",
        "item": "device_id", "target": "pm25", "freq": "1h", "prediction_length": 24, "margin": 0.0,
        "retrain": {"min_new_share": 10},
        "hyperparameters": {"context_length": "24", "epochs": "2", "num_cells": "8",
                            "mini_batch_size": "8", "num_batches_per_epoch": "4"}
    });
    let start = |name: &str, input: &Value| {
        let (ok, stdout, stderr) = run_sluice(
            path,
            &[
                "workflow",
                "start",
                "nightly",
                "--input",
                &input.to_string(),
                "--name",
                name,
                "--wait",
                "--output",
                "json",
            ],
        );
        assert!(ok, "{stderr}");
        let execution: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(execution["status"], "SUCCEEDED", "{execution}");
        execution
    };
    let run = |name: &str| start(name, &input);

    let first = run("night-1");
    let output = &first["output"];
    assert_eq!(output["check"]["retrain"], true, "{output}");
    assert_eq!(
        output["check"]["reasons"][0], "no champion yet: the group has no version",
        "{output}"
    );
    assert!(output["crawl"]["crawled"].as_u64().unwrap() > 0, "{output}");
    assert_eq!(
        output["convert"]["read"].as_u64(),
        Some(
            output["convert"]["written"].as_u64().unwrap()
                + output["convert"]["quarantined"].as_u64().unwrap()
        ),
        "the conversion reconciles"
    );
    assert!(path.join("work/night-1/deepar/model.safetensors").is_file());
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
    // DeepAR and the challengers trained side by side; Publish chose on their validation
    // windows, and the registry keeps every candidate's score and why it won or lost.
    let families: Vec<&str> = output["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["family"].as_str().unwrap())
        .collect();
    assert_eq!(
        families,
        ["deepar", "mstl", "ets", "arima", "theta", "ensemble"],
        "{output}"
    );
    assert!(path.join("work/night-1/mstl/config.json").is_file());
    // The Blend step ran between training and publishing: a blend of DeepAR and the best
    // challenger joined the candidates, or its reason says why none did.
    let blend = &output["blend"];
    let reason = blend["reason"].as_str().unwrap();
    let chosen_among = match blend["blend"].as_object() {
        Some(made) => {
            assert!(reason.starts_with("blended deepar"), "{reason}");
            assert_eq!(made["members"][0]["family"], "deepar", "{output}");
            assert!(path.join("work/night-1/blend/config.json").is_file());
            7
        }
        None => {
            assert!(reason.starts_with("no blend: "), "{reason}");
            assert!(!path.join("work/night-1/blend").exists());
            6
        }
    };
    assert_eq!(
        blend["candidates"].as_array().unwrap().len(),
        chosen_among,
        "{output}"
    );
    let selection = output["publish"]["selection"].as_array().unwrap();
    assert_eq!(selection.len(), chosen_among, "{output}");
    assert_eq!(selection.iter().filter(|o| o["won"] == true).count(), 1);
    let winner = selection.iter().find(|o| o["won"] == true).unwrap();
    assert_eq!(output["publish"]["family"], winner["family"], "{output}");
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

    // Whatever the first decision, make v1 the champion so the next nights forecast.
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

    // Night 2: nothing landed, the champion is a minute old. The drift report says what it
    // said last night about the same data (if it found drift, v1 was trained on it).
    let second = run("night-2");
    let output = &second["output"];
    let check = &output["check"];
    assert_eq!(check["retrain"], false, "{output}");
    let why = check["why"].as_str().unwrap();
    let drift = if first["output"]["drift"]["detected"] == true {
        format!(
            "drift detected ({}), but no rows landed since v1 was trained on the same data",
            output["drift"]["report_id"].as_str().unwrap()
        )
    } else {
        "no drift".to_owned()
    };
    assert!(
        why.starts_with(&format!("no change: {drift}; the last training (v1) is "))
            && why.contains("within max_age 7days")
            && why.contains("0 new rows in telemetry since v1 was trained"),
        "{why}"
    );
    assert_eq!(check["champion"]["version"], 1, "{output}");
    assert_eq!(
        output["decision"]["outcome"], "skipped training: the champion stays",
        "{output}"
    );
    assert!(
        output.get("candidates").is_none() && output.get("publish").is_none(),
        "no training, no publishing: {output}"
    );
    assert_eq!(output["forecast"]["version"], 1, "{output}");
    assert_eq!(output["forecast"]["items"], 3, "{output}");
    assert!(!path.join("work/night-2/deepar").exists());
    let id = second["id"].as_str().unwrap();
    let events = events_of(path, id, "RetrainCheck");
    assert!(events.contains(&format!("no change: {drift}")), "{events}");
    assert_eq!(
        events_of(path, id, "Train"),
        "",
        "night 2 never entered Train"
    );

    // Night 3: a day lands with wildfire smoke (particulate matter x3).
    let (ok, _, stderr) = run_sluice(
        path,
        &[
            "generate",
            "landings",
            "--devices",
            "3",
            "--days",
            "6",
            "--from-day",
            "5",
            "--shift-from-day",
            "5",
            "--shift-factor",
            "3",
        ],
    );
    assert!(ok, "{stderr}");
    // As a drift trigger starts it: with the reports that fired it in `trigger.reports`.
    let mut triggered = input.clone();
    triggered["trigger"] =
        json!({"name": "drifted", "on": "drift", "reports": ["drift-elsewhere"]});
    let third = start("night-3", &triggered);
    let output = &third["output"];
    assert_eq!(output["drift"]["detected"], true, "{output}");
    let check = &output["check"];
    assert_eq!(check["retrain"], true, "{output}");
    let reasons: Vec<&str> = check["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        reasons[0], "started by drift report drift-elsewhere",
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("drift detected (drift-") && reasons.len() == 2,
        "drift, and only drift, retrains: {reasons:?}"
    );
    assert!(
        check["new_rows"]["rows"].as_i64().unwrap() > 0
            && check["new_rows"]["share"].as_f64().unwrap() < 10.0,
        "the day's rows were counted and were not enough: {check}"
    );
    assert_eq!(output["publish"]["version"], 2, "{output}");
    assert_eq!(output["publish"]["champion"]["version"], 1, "{output}");
    assert_eq!(output["forecast"]["items"], 3, "{output}");
    assert!(
        path.join("lake")
            .join(output["forecast"]["key"].as_str().unwrap())
            .is_file()
    );
    let events = events_of(path, third["id"].as_str().unwrap(), "RetrainCheck");
    assert!(
        events.contains("retrain: started by drift report drift-elsewhere; drift detected (drift-"),
        "{events}"
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
        // DeepAR alone competes: trained this way it beats seasonal naive on these windows,
        // which a version must to be held for approval.
        "algorithms": ["deepar"],
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
