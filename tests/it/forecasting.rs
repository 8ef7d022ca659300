//! `sluice train` and `sluice forecast` as a user runs them: SageMaker-style JSON lines and
//! hyperparameters in, a model directory out, SageMaker's request and response JSON, and bad
//! input refused with the file, line and field.

use std::path::Path;

use serde_json::{Value, json};
use tests::run_sluice;

/// Hourly series with a daily cycle; `cat` is the series' group.
fn panel(hours: usize) -> Vec<Value> {
    (0..4)
        .map(|i| {
            let level = 50.0 + 25.0 * i as f64;
            let target: Vec<f64> = (0..hours)
                .map(|t| {
                    let day = (2.0 * std::f64::consts::PI * (t % 24) as f64 / 24.0).sin();
                    (level * (1.0 + 0.7 * day) + ((t * 7 + i * 3) % 5) as f64).round()
                })
                .collect();
            json!({"start": "2024-01-01 00:00:00", "target": target, "cat": [i % 2], "item_id": format!("device-{i}")})
        })
        .collect()
}

fn write_lines(path: &Path, lines: &[Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn train_small(dir: &Path) -> Value {
    let full = panel(24 * 12);
    let train: Vec<Value> = full
        .iter()
        .map(|s| {
            let mut s = s.clone();
            let target = s["target"].as_array().unwrap().clone();
            s["target"] = json!(target[..target.len() - 24]);
            s
        })
        .collect();
    write_lines(&dir.join("train.jsonl"), &train);
    write_lines(&dir.join("test.jsonl"), &full);
    std::fs::write(
        dir.join("hyperparameters.json"),
        json!({"time_freq": "H", "context_length": "24", "prediction_length": "24", "epochs": "2",
               "num_cells": "12", "mini_batch_size": "16", "num_batches_per_epoch": "10",
               "embedding_dimension": "2", "num_eval_samples": "30"})
        .to_string(),
    )
    .unwrap();
    let (ok, stdout, stderr) = run_sluice(
        dir,
        &[
            "train",
            "--train",
            "train.jsonl",
            "--test",
            "test.jsonl",
            "--hyperparameters",
            "hyperparameters.json",
            "--set",
            "learning_rate=0.005",
            "--model-dir",
            "model",
            "--seed",
            "3",
            "--output",
            "json",
        ],
    );
    assert!(ok, "train failed: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn train_writes_a_model_directory_and_prints_test_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let report = train_small(dir.path());
    assert_eq!(report["epochs"], 2);
    let deepar = &report["test_metrics"]["deepar"];
    let naive = &report["test_metrics"]["seasonal_naive"];
    assert!(
        deepar["mean_weighted_quantile_loss"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        naive["mean_weighted_quantile_loss"].as_f64().is_some(),
        "{report}"
    );
    let model = dir.path().join("model");
    for file in [
        "config.json",
        "model.safetensors",
        "metrics.json",
        "training.json",
    ] {
        assert!(model.join(file).is_file(), "{file} missing");
    }
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    let hp = &config["hyperparameters"];
    assert_eq!(hp["time_freq"], "H");
    assert_eq!(hp["learning_rate"], "0.005", "--set overrides the file");
    assert_eq!(
        hp["cardinality"], "[2]",
        "cardinality resolved from the data"
    );
    assert_eq!(config["lineage"]["seed"], 3);
    assert!(
        config["lineage"]["dataset_snapshot"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let training: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("training.json")).unwrap())
            .unwrap();
    assert_eq!(training["epochs"].as_array().unwrap().len(), 2);

    // The table output names the metrics beside seasonal naive.
    let (ok, stdout, stderr) = run_sluice(
        dir.path(),
        &[
            "train",
            "--train",
            "train.jsonl",
            "--test",
            "test.jsonl",
            "--hyperparameters",
            "hyperparameters.json",
            "--set",
            "epochs=1",
            "--model-dir",
            "model2",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("mean_wQuantileLoss") && stdout.contains("seasonal naive"),
        "{stdout}"
    );
}

#[test]
fn forecast_answers_a_sagemaker_request() {
    let dir = tempfile::tempdir().unwrap();
    train_small(dir.path());
    let mut instance = panel(24 * 12)[1].clone();
    instance["target"][100] = json!("NaN");
    let request = json!({"instances": [instance, panel(24 * 3)[0]],
        "configuration": {"num_samples": 50, "output_types": ["mean", "quantiles", "samples"], "quantiles": ["0.1", "0.9"]}});
    std::fs::write(dir.path().join("request.json"), request.to_string()).unwrap();
    let args = [
        "forecast",
        "--model-dir",
        "model",
        "--input",
        "request.json",
        "--seed",
        "9",
        "--output",
        "json",
    ];
    let (ok, stdout, stderr) = run_sluice(dir.path(), &args);
    assert!(ok, "{stderr}");
    let response: Value = serde_json::from_str(&stdout).unwrap();
    let predictions = response["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2);
    for p in predictions {
        assert_eq!(p["mean"].as_array().unwrap().len(), 24);
        assert_eq!(p["samples"].as_array().unwrap().len(), 50);
        let (low, high) = (
            p["quantiles"]["0.1"].as_array().unwrap(),
            p["quantiles"]["0.9"].as_array().unwrap(),
        );
        assert!(
            low.iter().zip(high).all(|(l, h)| l.as_f64() <= h.as_f64()),
            "{p}"
        );
    }
    // Same seed, same answer.
    let (_, again, _) = run_sluice(dir.path(), &args);
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), response);

    // Defaults: mean and the nine deciles.
    std::fs::write(
        dir.path().join("plain.json"),
        json!({"instances": [panel(48)[2]]}).to_string(),
    )
    .unwrap();
    let (ok, stdout, stderr) = run_sluice(
        dir.path(),
        &[
            "forecast",
            "--model-dir",
            "model",
            "--input",
            "plain.json",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let response: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        response["predictions"][0]["quantiles"]
            .as_object()
            .unwrap()
            .len(),
        9
    );
    assert!(response["predictions"][0].get("samples").is_none());
}

#[test]
fn bad_input_names_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    train_small(path);
    let refuse = |args: &[&str], wants: &[&str]| {
        let (ok, stdout, stderr) = run_sluice(path, args);
        assert!(!ok, "{args:?} should fail: {stdout}");
        for want in wants {
            assert!(
                stderr.contains(want),
                "{args:?}: {stderr} should mention {want}"
            );
        }
    };
    let mut lines = panel(24 * 5);
    lines[2]["dynamic_feat"] = json!([vec![1.0; 24 * 5 - 1]]);
    for line in lines.iter_mut().take(2) {
        line["dynamic_feat"] = json!([vec![1.0; 24 * 5]]);
    }
    lines[3]["dynamic_feat"] = json!([vec![1.0; 24 * 5]]);
    write_lines(&path.join("ragged.jsonl"), &lines);
    let train = [
        "train",
        "--train",
        "ragged.jsonl",
        "--hyperparameters",
        "hyperparameters.json",
        "--model-dir",
        "m",
    ];
    refuse(&train, &["ragged.jsonl:3", "dynamic_feat[0]", "119 values"]);
    let mut all_nan = panel(24 * 5);
    all_nan[1]["target"] = json!(vec!["NaN"; 24 * 5]);
    write_lines(&path.join("nan.jsonl"), &all_nan);
    refuse(
        &[
            "train",
            "--train",
            "nan.jsonl",
            "--hyperparameters",
            "hyperparameters.json",
            "--model-dir",
            "m",
        ],
        &["nan.jsonl:2", "target", "missing"],
    );
    refuse(
        &[
            "train",
            "--train",
            "train.jsonl",
            "--hyperparameters",
            "hyperparameters.json",
            "--set",
            "time_freq=fortnight",
            "--model-dir",
            "m",
        ],
        &["time_freq", "fortnight"],
    );
    refuse(
        &[
            "train",
            "--train",
            "train.jsonl",
            "--hyperparameters",
            "hyperparameters.json",
            "--set",
            "num_cell=3",
            "--model-dir",
            "m",
        ],
        &["unknown hyperparameter", "num_cell"],
    );
    let mut short = panel(24 * 5);
    short[0]["target"] = json!([1.0, 2.0]);
    write_lines(&path.join("short.jsonl"), &short);
    refuse(
        &[
            "train",
            "--train",
            "short.jsonl",
            "--hyperparameters",
            "hyperparameters.json",
            "--model-dir",
            "m",
        ],
        &["short.jsonl:1", "target", "at least 24"],
    );
    let mut request = json!({"instances": [panel(48)[0]]});
    request["instances"][0]["cat"] = json!([5]);
    std::fs::write(path.join("bad-cat.json"), request.to_string()).unwrap();
    refuse(
        &[
            "forecast",
            "--model-dir",
            "model",
            "--input",
            "bad-cat.json",
        ],
        &["instances[0].cat[0]", "cardinality"],
    );
    let request = json!({"instances": [panel(48)[0]], "configuration": {"quantiles": ["1.5"]}});
    std::fs::write(path.join("bad-q.json"), request.to_string()).unwrap();
    refuse(
        &["forecast", "--model-dir", "model", "--input", "bad-q.json"],
        &["configuration.quantiles[0]"],
    );
    refuse(
        &[
            "forecast",
            "--model-dir",
            "missing",
            "--input",
            "bad-q.json",
        ],
        &["missing", "config.json"],
    );
    refuse(
        &[
            "train",
            "--train",
            "train.jsonl",
            "--hyperparameters",
            "hyperparameters.json",
            "--model-dir",
            "m",
            "--device",
            "cuda",
        ],
        &["without CUDA", "--features cuda"],
    );
}

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
}
