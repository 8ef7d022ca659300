//! Tuning DeepAR's hyperparameters as a user runs it: `sluice tune` runs the shipped `tune`
//! workflow (random search with successive halving, each rung a Map of trainings scored on
//! validation windows), embedded, or with `--no-wait` for `sluice worker` processes, one of
//! which is killed mid-trial here.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::run_sluice_json as sluice_json;
use tests::{Backend, TestDb, hourly_cycles, spawn, wait_for_execution, write_lines};

/// `train.jsonl` (the test series without their last day), `test.jsonl`, and the reference
/// hyperparameters: a learning rate too small to learn much in the budget, which a search
/// should beat.
fn setup(dir: &Path, batches: usize) {
    let full = hourly_cycles(24 * 7 * 3);
    let train: Vec<Value> = full
        .iter()
        .map(|s| {
            let t = s["target"].as_array().unwrap();
            json!({"start": s["start"], "item_id": s["item_id"], "target": t[..t.len() - 24]})
        })
        .collect();
    write_lines(&dir.join("train.jsonl"), &train);
    write_lines(&dir.join("test.jsonl"), &full);
    std::fs::write(
        dir.join("reference.json"),
        json!({"time_freq": "H", "prediction_length": "24", "context_length": "24",
               "epochs": "9", "num_cells": "8", "learning_rate": "0.00001",
               "mini_batch_size": "16", "num_batches_per_epoch": batches.to_string(),
               "num_eval_samples": "40"})
        .to_string(),
    )
    .unwrap();
}

fn tune_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "tune",
        "--train",
        "train.jsonl",
        "--test",
        "test.jsonl",
        "--hyperparameters",
        "reference.json",
        "--seed",
        "3",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_tuning_run_halves_its_trials_records_them_all_and_registers_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    setup(path, 4);
    let (ok, report, stderr) = tests::sluice_json(
        path,
        &tune_args(&[
            "--trials", "4", "--eta", "2", "--name", "tune-a", "--group", "meters",
        ]),
    );
    assert!(ok, "{stderr}");
    let rungs: Vec<(u64, u64)> = report["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["trials"].as_u64().unwrap(), r["epochs"].as_u64().unwrap()))
        .collect();
    assert_eq!(rungs, [(4, 2), (2, 5), (1, 9)], "{report}");
    let trials = report["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4);
    assert!(trials[0]["drawn"].as_object().unwrap().is_empty());
    for trial in trials {
        let scores = trial["scores"].as_array().unwrap();
        assert!(
            !scores.is_empty(),
            "every trial trained in the first rung: {trial}"
        );
        assert!(
            scores
                .iter()
                .all(|s| s["validation_mean_wql"].as_f64().is_some()),
            "{trial}"
        );
    }
    let best = &report["best"];
    assert_eq!(best["epochs"], 9);
    let model_dir = Path::new(best["model_dir"].as_str().unwrap());
    assert!(
        model_dir.starts_with(path.join("work/tune/tune-a")),
        "{best}"
    );
    assert!(model_dir.join("config.json").is_file());
    assert!(model_dir.join("validation.json").is_file());
    let reference = &report["reference"];
    assert_eq!(reference["trial"], 0);
    assert_eq!(reference["epochs"], 9, "compared at the same budget");
    assert!(report["summary"].as_str().unwrap().contains("trial"));
    assert_eq!(report["registered"]["group"], "meters", "{report}");
    assert_eq!(report["registered"]["version"], 1);

    // The run is an execution like any other, with its history.
    let id = report["execution"].as_str().unwrap();
    let (ok, history, stderr) = tests::sluice_json(path, &["workflow", "history", id]);
    assert!(ok, "{stderr}");
    let text = history.to_string();
    for state in ["Plan", "Rung", "Promote", "Finish", "Register"] {
        assert!(text.contains(state), "{state} in the history");
    }

    // A search space that cannot be searched fails the run at Plan, naming the range.
    std::fs::write(
        path.join("ranges.json"),
        json!({"IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "5"}]})
            .to_string(),
    )
    .unwrap();
    let (ok, _, stderr) = tests::sluice_json(
        path,
        &tune_args(&[
            "--trials",
            "4",
            "--ranges",
            "ranges.json",
            "--name",
            "tune-b",
        ]),
    );
    assert!(!ok);
    assert!(
        stderr.contains("Plan")
            && stderr.contains("epochs")
            && stderr.contains("successive halving"),
        "{stderr}"
    );
    // Registering the best needs the test windows it is compared with the champion on.
    let (ok, _, stderr) = tests::sluice_json(
        path,
        &[
            "tune",
            "--train",
            "train.jsonl",
            "--hyperparameters",
            "reference.json",
            "--group",
            "meters",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("--test"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_trials_over_two_workers_survive_one_killed_mid_trial() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    setup(path, 20);
    std::fs::write(
        path.join("sluice.toml"),
        format!("database = \"{}\"\nlake = \"file://lake\"\n", db.url),
    )
    .unwrap();
    let mut workers = [
        Some(spawn(path, &["worker", "--name", "w1"])),
        Some(spawn(path, &["worker", "--name", "w2"])),
    ];
    let (ok, started, stderr) = sluice_json(
        path,
        &tune_args(&["--trials", "16", "--name", "tune-16", "--no-wait"]),
    );
    assert!(ok, "{stderr}");
    let id = started["execution"].as_str().unwrap().to_owned();

    // Kill the worker holding a trial's training, mid-trial.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let holder = loop {
        let (_, now, _) = sluice_json(path, &["workflow", "describe", &id]);
        assert_eq!(now["status"], "RUNNING", "{now}");
        if now["state"] == "Rung"
            && let Some(holder) = tests::worker_holding_a_step(&pool, &["w1", "w2"]).await
        {
            break holder;
        }
        assert!(Instant::now() < deadline, "no trial started: {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let index = usize::from(holder == "w2");
    workers[index].take().unwrap().kill();

    let status = wait_for_execution(path, &id, Duration::from_secs(600));
    let (_, finished, _) = sluice_json(path, &["workflow", "describe", &id]);
    assert_eq!(status, "SUCCEEDED", "{finished}");
    let report = &finished["output"]["report"];
    let trials = report["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 16);
    assert!(
        trials
            .iter()
            .all(|t| t["scores"][0]["validation_mean_wql"].as_f64().is_some()),
        "every trial was scored in the first rung, the killed one too: {report}"
    );
    let kept: Vec<usize> = report["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trials"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(kept, [16, 5, 1]);
    assert_eq!(report["beats_reference"], true, "{report}");
    assert!(
        report["best"]["validation_mean_wql"].as_f64().unwrap()
            < report["reference"]["validation_mean_wql"].as_f64().unwrap()
    );
    let survivor = if index == 0 { "w2" } else { "w1" };
    let done_by: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT lock_by FROM apalis.jobs WHERE status = 'Done' AND lock_by IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(done_by.iter().any(|w| w == survivor), "{done_by:?}");
}
