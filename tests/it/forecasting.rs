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

/// `sluice train` on the small panel's files, then `extra`.
fn train_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--train",
        "train.jsonl",
        "--test",
        "test.jsonl",
        "--hyperparameters",
        "hyperparameters.json",
    ];
    args.extend_from_slice(extra);
    args
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
        &train_args(&[
            "--set",
            "learning_rate=0.005",
            "--model-dir",
            "model",
            "--seed",
            "3",
            "--output",
            "json",
        ]),
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
        &train_args(&["--set", "epochs=1", "--model-dir", "model2"]),
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
