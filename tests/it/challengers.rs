//! The classical challengers as a user runs them: `sluice train --algorithm
//! mstl|ets|arima|theta|ensemble` writes a model directory of settings, `sluice forecast`
//! answers SageMaker's request with it, and
//! `sluice models publish --candidate ...` chooses among families on the validation windows
//! held out of the training data, publishes the winner, and records why each won or lost.

use std::path::Path;

use serde_json::{Value, json};
use tests::{hourly_cycles as cycles, sluice_json as cli, write_lines};

fn setup(dir: &Path) {
    let full = cycles(24 * 7 * 4);
    let train: Vec<Value> = full
        .iter()
        .map(|s| {
            let target = s["target"].as_array().unwrap();
            json!({"start": s["start"], "item_id": s["item_id"], "target": target[..target.len() - 24]})
        })
        .collect();
    write_lines(&dir.join("train.jsonl"), &train);
    write_lines(&dir.join("test.jsonl"), &full);
    std::fs::write(
        dir.join("hyperparameters.json"),
        json!({"time_freq": "H", "context_length": "24", "prediction_length": "24", "epochs": "2",
               "num_cells": "8", "mini_batch_size": "16", "num_batches_per_epoch": "5",
               "num_eval_samples": "50"})
        .to_string(),
    )
    .unwrap();
}

fn train(dir: &Path, algorithm: &str, model_dir: &str) -> Value {
    let (ok, report, stderr) = cli(
        dir,
        &[
            "train",
            "--algorithm",
            algorithm,
            "--train",
            "train.jsonl",
            "--test",
            "test.jsonl",
            "--hyperparameters",
            "hyperparameters.json",
            "--model-dir",
            model_dir,
            "--validation",
        ],
    );
    assert!(ok, "train {algorithm}: {stderr}");
    report
}

/// `sluice forecast` of `request.json` with a model directory: the first prediction.
fn predict(dir: &Path, model_dir: &str) -> Value {
    let (ok, response, stderr) = cli(
        dir,
        &[
            "forecast",
            "--model-dir",
            model_dir,
            "--input",
            "request.json",
            "--seed",
            "4",
        ],
    );
    assert!(ok, "forecast with {model_dir}: {stderr}");
    response["predictions"][0].clone()
}

#[test]
fn challengers_train_forecast_and_win_on_validation_windows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    setup(path);

    let mstl = train(path, "mstl", "mstl");
    assert_eq!(mstl["algorithm"], "mstl");
    assert_eq!(mstl["epochs"], 0);
    assert!(mstl["best_loss"].is_null());
    assert_eq!(mstl["test_metrics"]["family"], "mstl");
    assert!(mstl["test_metrics"].get("deepar").is_none());
    let validation = mstl["validation_metrics"]["model"]["mean_weighted_quantile_loss"]
        .as_f64()
        .unwrap();
    let naive = mstl["validation_metrics"]["seasonal_naive"]["mean_weighted_quantile_loss"]
        .as_f64()
        .unwrap();
    assert!(
        validation < naive,
        "MSTL {validation} against seasonal naive {naive}"
    );
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(path.join("mstl/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["format"], "sluice-classical");
    assert_eq!(config["hyperparameters"]["season_lengths"], "[24, 168]");
    assert!(!path.join("mstl/model.safetensors").exists());
    assert!(path.join("mstl/validation.json").is_file());

    let mut members = vec![validation];
    for family in ["ets", "arima", "theta", "ensemble"] {
        let out = train(path, family, family);
        assert_eq!(out["test_metrics"]["family"], family, "{out}");
        let model = out["validation_metrics"]["model"]["mean_weighted_quantile_loss"]
            .as_f64()
            .unwrap();
        let naive = out["validation_metrics"]["seasonal_naive"]["mean_weighted_quantile_loss"]
            .as_f64()
            .unwrap();
        assert!(model.is_finite() && model > 0.0, "{family}: {out}");
        // The hourly cycles are modelled: within reach of seasonal naive, not a flat line.
        assert!(
            model < 1.5 * naive,
            "{family} {model} against seasonal naive {naive}"
        );
        if family == "ensemble" {
            // A weighted average of quantiles scores no worse than the members' scores averaged
            // with the same weights (the pinball loss is convex). The weights come from each
            // series' last season, not from these windows, so the bound held to is the plain
            // average of the members, up to the noise of reading quantiles off 50 paths.
            let average = members.iter().sum::<f64>() / members.len() as f64;
            assert!(
                model <= average * 1.02,
                "ensemble {model} against its members' average {average} ({members:?})"
            );
            let config: Value = serde_json::from_str(
                &std::fs::read_to_string(path.join("ensemble/config.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(
                config["hyperparameters"]["ensemble_members"],
                "[arima, ets, mstl, theta]"
            );
        } else {
            members.push(model);
        }
    }
    let deepar = train(path, "deepar", "deepar");
    assert!(
        deepar["test_metrics"]["deepar"].is_object(),
        "the old name stays for DeepAR"
    );
    assert_eq!(deepar["validation_metrics"]["family"], "deepar");

    // SageMaker's request and response, with a gap in the history.
    let mut instance = cycles(24 * 14)[2].clone();
    instance["target"][30] = json!(null);
    let request = json!({"instances": [instance],
        "configuration": {"num_samples": 40, "output_types": ["mean", "quantiles", "samples"], "quantiles": ["0.1", "0.9"]}});
    std::fs::write(path.join("request.json"), request.to_string()).unwrap();
    let prediction = &predict(path, "mstl");
    assert_eq!(prediction["mean"].as_array().unwrap().len(), 24);
    assert_eq!(prediction["samples"].as_array().unwrap().len(), 40);
    let (low, high) = (
        prediction["quantiles"]["0.1"].as_array().unwrap(),
        prediction["quantiles"]["0.9"].as_array().unwrap(),
    );
    assert!(
        low.iter().zip(high).all(|(l, h)| l.as_f64() < h.as_f64()),
        "{prediction}"
    );

    // Publishing among the six: the lowest validation loss is chosen, and the registry keeps
    // every candidate's score with why it won or lost.
    let (ok, published, stderr) = cli(
        path,
        &[
            "models",
            "publish",
            "--group",
            "meters",
            "--candidate",
            "deepar",
            "--candidate",
            "mstl",
            "--candidate",
            "ets",
            "--candidate",
            "arima",
            "--candidate",
            "theta",
            "--candidate",
            "ensemble",
            "--test",
            "test.jsonl",
        ],
    );
    assert!(ok, "{stderr}");
    let selection = published["selection"].as_array().unwrap();
    assert_eq!(selection.len(), 6);
    let scores: Vec<f64> = selection
        .iter()
        .map(|o| o["validation_mean_wQuantileLoss"].as_f64().unwrap())
        .collect();
    let best = scores
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(selection[best]["won"], true, "{published}");
    assert_eq!(published["family"], selection[best]["family"]);
    for (i, outcome) in selection.iter().enumerate() {
        let reason = outcome["reason"].as_str().unwrap();
        if i == best {
            assert!(
                reason.starts_with("lowest validation mean_wQuantileLoss"),
                "{reason}"
            );
        } else {
            assert!(reason.contains("above"), "{reason}");
        }
    }
    let (ok, info, stderr) = cli(path, &["models", "show", "meters", "v1"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        info["metrics"]["selection"].as_array().unwrap().len(),
        6,
        "{info}"
    );

    // The published challenger forecasts every series of a file from the registry.
    if published["published"] == true {
        let (ok, run, stderr) = cli(
            path,
            &[
                "models",
                "batch-forecast",
                "--group",
                "meters",
                "--input",
                "test.jsonl",
            ],
        );
        assert!(ok, "{stderr}");
        assert_eq!(run["items"], 4, "{run}");
    }

    blends_are_made_published_and_served(path);

    // Bad requests are refused by name.
    let (ok, _, stderr) = cli(
        path,
        &[
            "models",
            "publish",
            "--group",
            "meters",
            "--candidate",
            "ets",
            "--candidate",
            "nowhere",
            "--test",
            "test.jsonl",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("nowhere/validation.json"), "{stderr}");
    let (ok, _, stderr) = cli(
        path,
        &[
            "train",
            "--algorithm",
            "ets",
            "--train",
            "train.jsonl",
            "--model-dir",
            "x",
            "--set",
            "time_freq=H",
            "--set",
            "prediction_length=24",
            "--set",
            "season_lengths=[24, 1]",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("season_lengths") && stderr.contains("at least 2"),
        "{stderr}"
    );
}

/// `sluice models blend` over the six candidates, then a blend of DeepAR and MSTL as one model:
/// its directory published (to the lake and the registry), answering SageMaker's request, and
/// forecasting a file from the registry.
fn blends_are_made_published_and_served(path: &Path) {
    let mut args = vec![
        "models",
        "blend",
        "--train",
        "train.jsonl",
        "--model-dir",
        "blend",
    ];
    for family in ["deepar", "mstl", "ets", "arima", "theta", "ensemble"] {
        args.extend(["--candidate", family]);
    }
    let (ok, out, stderr) = cli(path, &args);
    assert!(ok, "{stderr}");
    let reason = out["reason"].as_str().unwrap();
    let candidates = out["candidates"].as_array().unwrap();
    // DeepAR trained for two epochs is far behind the classical models here: whether a little
    // of it helps is for the validation windows to say, and the output agrees with itself.
    match out["blend"].as_object() {
        Some(made) => {
            assert_eq!(candidates.len(), 7, "{out}");
            assert_eq!(made["members"][0]["family"], "deepar", "{out}");
            let weight = made["members"][0]["weight"].as_f64().unwrap();
            assert!(weight > 0.0 && weight < 1.0, "{out}");
            assert!(reason.starts_with("blended deepar"), "{reason}");
            assert!(path.join("blend/config.json").is_file());
        }
        None => {
            assert_eq!(candidates.len(), 6, "{out}");
            assert!(reason.starts_with("no blend: "), "{reason}");
            assert!(!path.join("blend").exists());
        }
    }
    for family in ["deepar", "mstl"] {
        assert!(
            path.join(family)
                .join("validation_forecasts.safetensors")
                .is_file()
        );
    }

    // A blend as one model, whatever the search chose above.
    let lineage = models::deepar::artifact::Lineage {
        seed: 0,
        train: "train.jsonl".into(),
        dataset_snapshot: None,
    };
    models::blend::save(
        &path.join("mix"),
        &[
            (0.25, path.join("deepar").as_path()),
            (0.75, path.join("mstl").as_path()),
        ],
        &lineage,
    )
    .unwrap();
    let (ok, published, stderr) = cli(
        path,
        &[
            "models",
            "publish",
            "--group",
            "mixes",
            "--model-dir",
            "mix",
            "--test",
            "test.jsonl",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(published["family"], "blend", "{published}");
    assert!(
        published["candidate"]["mean_wQuantileLoss"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let (ok, shown, stderr) = cli(path, &["models", "show", "mixes", "v1"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        shown["hyperparameters"]["members"], "deepar 0.25, mstl 0.75",
        "{shown}"
    );
    assert_eq!(shown["hyperparameters"]["member1.algorithm"], "mstl");
    let prediction = &predict(path, "mix");
    assert_eq!(prediction["samples"].as_array().unwrap().len(), 40);
    let (low, high) = (
        prediction["quantiles"]["0.1"].as_array().unwrap(),
        prediction["quantiles"]["0.9"].as_array().unwrap(),
    );
    assert!(
        low.iter().zip(high).all(|(l, h)| l.as_f64() <= h.as_f64()),
        "{prediction}"
    );
    // The registered blend (read back from the lake, weights and all) forecasts every series.
    let (ok, run, stderr) = cli(
        path,
        &[
            "models",
            "batch-forecast",
            "--group",
            "mixes",
            "--model",
            "1",
            "--input",
            "test.jsonl",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(run["items"], 4, "{run}");
}
