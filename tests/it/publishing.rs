//! Publishing as a user runs it: `sluice models publish` promoting a winner and rejecting a tie
//! with the reason (from the CLI and as a workflow Task, idempotent per execution), and batch
//! forecasts written to the lake from the champion and scored later against the actuals.

use serde_json::json;
use tests::sluice_json as cli;

/// Noisy series around a level per series: seasonal naive repeats yesterday's noise, so a
/// model that learns the level and the spread beats it.
fn noisy_panel(hours: usize) -> Vec<serde_json::Value> {
    let mut state = 7u64;
    (0..4)
        .map(|i| {
            let target: Vec<f64> = (0..hours)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let noise = ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
                    (100.0 + 20.0 * i as f64 + 30.0 * noise).round()
                })
                .collect();
            json!({"start": "2024-01-01 00:00:00", "target": target})
        })
        .collect()
}

#[test]
fn models_publish_promotes_a_winner_and_rejects_a_tie_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, lines: &[serde_json::Value]| {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.path().join(name), text).unwrap();
    };
    let full = noisy_panel(24 * 8);
    let train: Vec<serde_json::Value> = full
        .iter()
        .map(|s| {
            let target = s["target"].as_array().unwrap();
            json!({"start": s["start"], "target": target[..target.len() - 24]})
        })
        .collect();
    write("train.jsonl", &train);
    write("test.jsonl", &full);
    let sluice = |args: &[&str]| cli(dir.path(), args);
    let (ok, _, stderr) = sluice(&[
        "train",
        "--train",
        "train.jsonl",
        "--test",
        "test.jsonl",
        "--model-dir",
        "model",
        "--set",
        "time_freq=H",
        "--set",
        "context_length=24",
        "--set",
        "prediction_length=24",
        "--set",
        "epochs=20",
        "--set",
        "num_cells=8",
        "--set",
        "mini_batch_size=16",
        "--set",
        "num_batches_per_epoch=20",
        "--set",
        "learning_rate=0.01",
        "--set",
        "num_eval_samples=50",
    ]);
    assert!(ok, "{stderr}");
    let publish = [
        "models",
        "publish",
        "--group",
        "fleet",
        "--model-dir",
        "model",
        "--test",
        "test.jsonl",
    ];

    let (ok, first, stderr) = sluice(&publish);
    assert!(ok, "{stderr}");
    assert_eq!(first["version"], 1);
    assert_eq!(first["published"], true, "{first}");
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .contains("no champion yet"),
        "{first}"
    );
    let artifact = first["artifact"].as_str().unwrap();
    assert!(
        dir.path()
            .join("lake")
            .join(artifact)
            .join("model.safetensors")
            .is_file()
    );

    // The same model again scores exactly the champion's loss on the same windows: no win.
    let (ok, second, stderr) = sluice(&publish);
    assert!(ok, "{stderr}");
    assert_eq!(
        (second["version"].as_u64(), second["published"].as_bool()),
        (Some(2), Some(false))
    );
    let reason = second["reason"].as_str().unwrap();
    assert!(reason.contains("does not beat champion v1"), "{reason}");
    assert_eq!(
        second["champion"]["mean_wQuantileLoss"], first["candidate"]["mean_wQuantileLoss"],
        "the champion is scored on the candidate's windows"
    );

    let (ok, v2, _) = sluice(&["models", "show", "fleet", "2"]);
    assert!(ok);
    assert_eq!(v2["status"], "rejected");
    assert_eq!(v2["status_reason"], reason);
    assert!(
        v2["baseline_metrics"]["mean_wQuantileLoss"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let (ok, champion, _) = sluice(&["models", "show", "fleet", "champion"]);
    assert!(ok);
    assert_eq!(champion["version"], 1);

    // Refusals name the problem; the history tells the story.
    let (ok, _, stderr) = sluice(&["models", "promote", "fleet", "2", "--reason", "force it"]);
    assert!(!ok && stderr.contains("rejected"), "{stderr}");
    let (ok, _, stderr) = sluice(&["models", "rollback", "fleet", "--reason", "undo"]);
    assert!(!ok && stderr.contains("nothing before it"), "{stderr}");
    let (ok, history, _) = sluice(&["models", "history", "fleet"]);
    assert!(ok);
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "registered",
            "alias-moved",
            "status",
            "registered",
            "status"
        ]
    );

    // The same decision as a workflow's Task, with an output Choice states can read.
    let flow = json!({"StartAt": "Publish", "States": {
        "Publish": {"Type": "Task", "Resource": "sluice:publish", "Parameters": {
            "group": "fleet", "model_dir": "model", "test": "test.jsonl", "margin": 0.05,
            "execution.$": "$$.Execution.Id"}, "Next": "Won?"},
        "Won?": {"Type": "Choice", "Choices": [
            {"Variable": "$.published", "BooleanEquals": true, "Next": "Published"}],
            "Default": "Kept"},
        "Published": {"Type": "Succeed"},
        "Kept": {"Type": "Pass", "Parameters": {"kept.$": "$.champion.version", "why.$": "$.reason"}, "End": true}}});
    std::fs::write(dir.path().join("publish.json"), flow.to_string()).unwrap();
    let (ok, outcome, stderr) = sluice(&["workflow", "run", "--definition", "publish.json"]);
    assert!(ok, "{stderr}");
    assert_eq!(outcome["status"], "SUCCEEDED", "{outcome}");
    assert_eq!(outcome["output"]["kept"], 1, "{outcome}");
    assert!(
        outcome["output"]["why"]
            .as_str()
            .unwrap()
            .contains("margin of 5.0 %")
    );
    // A retried task (same execution) reports the recorded decision instead of registering again.
    let retried = flow.to_string().replace(
        "\"execution.$\":\"$$.Execution.Id\"",
        "\"execution\":\"retry-1\"",
    );
    assert!(retried.contains("retry-1"), "{retried}");
    std::fs::write(dir.path().join("retried.json"), retried).unwrap();
    let mut versions = Vec::new();
    for _ in 0..2 {
        let (ok, outcome, stderr) = sluice(&["workflow", "run", "--definition", "retried.json"]);
        assert!(ok && outcome["status"] == "SUCCEEDED", "{stderr} {outcome}");
        versions.push(outcome["output"]["kept"].clone());
    }
    assert_eq!(
        versions,
        vec![json!(1), json!(1)],
        "both runs keep champion v1"
    );
    let (ok, listed, _) = sluice(&["models", "list", "fleet"]);
    assert!(ok);
    assert_eq!(
        listed.as_array().unwrap().len(),
        4,
        "one version for the retried execution: {listed}"
    );
    let (ok, v3, _) = sluice(&["models", "show", "fleet", "v3"]);
    assert!(ok);
    assert!(
        v3["created_by"].as_str().unwrap().starts_with("execution:"),
        "{v3}"
    );
}

#[test]
fn batch_forecasts_land_in_the_lake_as_parquet_from_the_champion() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    // Six days to train and forecast from; the seventh lands later as the actuals.
    let full = noisy_panel(24 * 7);
    let write = |name: &str, hours: usize, shift: f64| {
        let text: String = full
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let target: Vec<f64> = s["target"].as_array().unwrap()[..hours]
                    .iter()
                    .enumerate()
                    .map(|(t, v)| v.as_f64().unwrap() + if t >= 24 * 6 { shift } else { 0.0 })
                    .collect();
                let line = json!({"start": s["start"], "target": target, "item_id": format!("device-{i}")});
                format!("{line}\n")
            })
            .collect();
        std::fs::write(dir.path().join(name), text).unwrap();
    };
    write("series.jsonl", 24 * 6, 0.0);
    write("actuals.jsonl", 24 * 7, 0.0);
    write("shifted.jsonl", 24 * 7, 400.0);
    let sluice = |args: &[&str]| cli(dir.path(), args);
    let batch = [
        "models",
        "batch-forecast",
        "--group",
        "fleet",
        "--input",
        "series.jsonl",
        "--num-samples",
        "20",
    ];
    let (ok, _, stderr) = sluice(&batch);
    assert!(
        !ok && stderr.contains("fleet:champion is not set"),
        "{stderr}"
    );
    let (ok, _, stderr) = sluice(&[
        "train",
        "--train",
        "series.jsonl",
        "--model-dir",
        "model",
        "--set",
        "time_freq=H",
        "--set",
        "context_length=24",
        "--set",
        "prediction_length=24",
        "--set",
        "epochs=1",
        "--set",
        "num_cells=8",
        "--set",
        "num_batches_per_epoch=2",
    ]);
    assert!(ok, "{stderr}");
    // Publishing needs the model to beat seasonal naive; promote it by hand instead.
    let (ok, first, stderr) = sluice(&[
        "models",
        "publish",
        "--group",
        "fleet",
        "--model-dir",
        "model",
        "--test",
        "series.jsonl",
    ]);
    assert!(ok, "{stderr}");
    if first["published"] == false {
        let (ok, _, stderr) = sluice(&[
            "models", "status", "fleet", "1", "pending", "--reason", "try it",
        ]);
        assert!(ok, "{stderr}");
        let (ok, _, stderr) = sluice(&[
            "models",
            "promote",
            "fleet",
            "1",
            "--reason",
            "for the test",
        ]);
        assert!(ok, "{stderr}");
    }
    let (ok, run, stderr) = sluice(&batch);
    assert!(ok, "{stderr}");
    assert_eq!(
        (run["items"].as_u64(), run["rows"].as_u64()),
        (Some(4), Some(96))
    );
    assert_eq!(run["model_version"], 1);
    let path = dir.path().join("lake").join(run["key"].as_str().unwrap());
    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 96);
    let columns: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    assert_eq!(
        columns,
        [
            "item_id",
            "timestamp",
            "step",
            "mean",
            "q10",
            "q50",
            "q90",
            "model_group",
            "model_version"
        ]
    );
}
