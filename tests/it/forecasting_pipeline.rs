//! Forecasting from landings with the embedded defaults: generate, crawl, convert, then a
//! dataset, a model and a forecast, from the CLI and as workflow Task states.

use serde_json::{Value, json};
use tests::run_sluice;

/// Landings to a forecast with the embedded defaults: generate, crawl, convert, build a dataset
/// of hourly PM2.5 per device, train on it and forecast from its test lines.
#[test]
fn landings_become_a_dataset_a_model_and_a_forecast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let step = |args: &[&str]| {
        let (ok, stdout, stderr) = run_sluice(path, args);
        assert!(ok, "{args:?}: {stderr}");
        stdout
    };
    step(&["generate", "landings", "--devices", "3", "--days", "4"]);
    step(&["crawl"]);
    step(&["convert", "telemetry"]);
    let dataset = |out: &str| -> Value {
        let args = [
            "dataset",
            "telemetry",
            "--item",
            "device_id",
            "--target",
            "pm25",
            "--freq",
            "1h",
            "--dynamic",
            "temperature",
            "--cat",
            "firmware",
            "--prediction-length",
            "12",
            "--test-windows",
            "2",
            "--out",
            out,
            "--output",
            "json",
        ];
        serde_json::from_str(&step(&args)).unwrap()
    };
    let manifest = dataset("data");
    assert_eq!(manifest["items"], 3, "{manifest}");
    assert_eq!(manifest["time_freq"], "H");
    assert_eq!(manifest["train_lines"], 3);
    assert_eq!(manifest["test_lines"], 6);
    assert!(manifest["snapshot_id"].as_str().unwrap().starts_with("ds-"));
    let train = std::fs::read_to_string(path.join("data/train.jsonl")).unwrap();
    let first: Value = serde_json::from_str(train.lines().next().unwrap()).unwrap();
    let points = first["target"].as_array().unwrap().len();
    assert!(
        (60..=96).contains(&points),
        "about 4 days of hours less 24: {points}"
    );
    assert_eq!(first["dynamic_feat"][0].as_array().unwrap().len(), points);
    // The same data gives the same snapshot id.
    let again = dataset("data2");
    assert_eq!(again["snapshot_id"], manifest["snapshot_id"]);

    let report: Value = serde_json::from_str(&step(&[
        "train",
        "--train",
        "data/train.jsonl",
        "--test",
        "data/test.jsonl",
        "--set",
        "time_freq=H",
        "--set",
        "context_length=12",
        "--set",
        "prediction_length=12",
        "--set",
        "epochs=2",
        "--set",
        "num_cells=8",
        "--set",
        "mini_batch_size=8",
        "--set",
        "num_batches_per_epoch=5",
        "--model-dir",
        "model",
        "--output",
        "json",
    ]))
    .unwrap();
    assert!(
        report["test_metrics"]["deepar"]["mean_weighted_quantile_loss"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{report}"
    );
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(path.join("model/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["hyperparameters"]["num_dynamic_feat"], "1");

    // A request from a test line: dynamic features must cover the horizon too.
    let test = std::fs::read_to_string(path.join("data/test.jsonl")).unwrap();
    let mut instance: Value = serde_json::from_str(test.lines().next().unwrap()).unwrap();
    let target = instance["target"].as_array().unwrap().clone();
    instance["target"] = json!(target[..target.len() - 12]);
    std::fs::write(
        path.join("request.json"),
        json!({"instances": [instance]}).to_string(),
    )
    .unwrap();
    let response: Value = serde_json::from_str(&step(&[
        "forecast",
        "--model-dir",
        "model",
        "--input",
        "request.json",
        "--output",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        response["predictions"][0]["mean"].as_array().unwrap().len(),
        12
    );
}

/// `sluice:dataset` and `sluice:train` as Task states: the dataset's manifest feeds training
/// through the state's input, and bad hyperparameters fail as `Sluice.InvalidInput`.
#[test]
fn a_workflow_builds_a_dataset_and_trains_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    for args in [
        &["generate", "landings", "--devices", "2", "--days", "3"][..],
        &["crawl"],
        &["convert", "telemetry"],
    ] {
        let (ok, _, stderr) = run_sluice(path, args);
        assert!(ok, "{args:?}: {stderr}");
    }
    let definition = |num_cells_name: &str| {
        json!({
            "StartAt": "Dataset",
            "States": {
                "Dataset": {
                    "Type": "Task", "Resource": "sluice:dataset",
                    "Parameters": {"table": "telemetry", "item": "device_id", "target": "pm25",
                                   "prediction_length": 12, "out": "wf-data"},
                    "ResultPath": "$.dataset", "Next": "Train"
                },
                "Train": {
                    "Type": "Task", "Resource": "sluice:train",
                    "Parameters": {
                        "train.$": "$.dataset.train", "test.$": "$.dataset.test", "model_dir": "wf-model",
                        "hyperparameters": {"time_freq.$": "$.dataset.time_freq", "context_length": "12",
                            "prediction_length": "12", "epochs": "1", num_cells_name: "8",
                            "mini_batch_size": "8", "num_batches_per_epoch": "3"}
                    },
                    "ResultSelector": {"wql.$": "$.test_metrics.deepar.mean_weighted_quantile_loss",
                                       "naive.$": "$.test_metrics.seasonal_naive.mean_weighted_quantile_loss"},
                    "ResultPath": "$.train", "End": true
                }
            }
        })
        .to_string()
    };
    std::fs::write(path.join("retrain.json"), definition("num_cells")).unwrap();
    let run = [
        "workflow",
        "run",
        "--definition",
        "retrain.json",
        "--output",
        "json",
    ];
    let (ok, stdout, stderr) = run_sluice(path, &run);
    assert!(ok, "{stderr}");
    let outcome: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outcome["status"], "SUCCEEDED", "{outcome}");
    assert!(
        outcome["output"]["dataset"]["snapshot_id"]
            .as_str()
            .unwrap()
            .starts_with("ds-"),
        "{outcome}"
    );
    assert!(
        outcome["output"]["train"]["wql"].as_f64().unwrap() > 0.0,
        "{outcome}"
    );
    assert!(path.join("wf-model/model.safetensors").is_file());

    std::fs::write(path.join("retrain.json"), definition("num_cell")).unwrap();
    let (_, stdout, _) = run_sluice(path, &run);
    let failed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["error"], "Sluice.InvalidInput", "{failed}");
    assert!(
        failed["cause"].as_str().unwrap().contains("num_cell"),
        "{failed}"
    );

    // The task picks its device; the tested build has no CUDA and says how to get it.
    let mut on_gpu: Value = serde_json::from_str(&definition("num_cells")).unwrap();
    on_gpu["States"]["Train"]["Parameters"]["device"] = json!("cuda");
    std::fs::write(path.join("retrain.json"), on_gpu.to_string()).unwrap();
    let (_, stdout, _) = run_sluice(path, &run);
    let failed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(failed["error"], "Sluice.InvalidInput", "{failed}");
    assert!(
        failed["cause"]
            .as_str()
            .unwrap()
            .contains("--features cuda"),
        "{failed}"
    );
}
