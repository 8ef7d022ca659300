//! The CLI and the Task resources make the same requests: each subcommand's flags, defaults
//! included, against the task input that means the same.

use clap::Parser;
use serde_json::{Value, json};

use crate::cli::{Cli, Command};

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()))
        .unwrap_or_else(|err| panic!("{args:?}: {err}"))
}

fn task<T: serde::de::DeserializeOwned>(input: Value) -> T {
    ops::request::from_json(input).expect("a valid task input")
}

#[test]
fn crawl_flags_and_task_input_make_the_same_request() {
    let cases = [
        (vec!["crawl"], json!({})),
        (
            vec![
                "crawl",
                "in",
                "--recrawl",
                "--schema-policy",
                "log",
                "--no-verify",
            ],
            json!({"prefix": "in", "recrawl": true, "schema_policy": "log", "verify": false}),
        ),
    ];
    for (args, input) in cases {
        let Command::Crawl(flags) = cli(&args).command else {
            panic!("{args:?}")
        };
        let from_flags = super::crawl::crawl_request(&flags).unwrap();
        assert_eq!(from_flags, task::<ops::CrawlRequest>(input), "{args:?}");
    }
}

#[test]
fn convert_flags_and_task_input_make_the_same_request() {
    let cases = [
        (vec!["convert", "t"], json!({"table": "t"})),
        (
            vec!["convert", "t", "--dry-run"],
            json!({"table": "t", "dry_run": true}),
        ),
        (
            vec!["convert", "t", "--reprocess"],
            json!({"table": "t", "reprocess": true}),
        ),
        (
            vec![
                "convert",
                "t",
                "--reprocess",
                "--from",
                "2024-05-01",
                "--to",
                "2024-05-03",
            ],
            json!({"table": "t", "reprocess": true, "from": "2024-05-01", "to": "2024-05-03"}),
        ),
        (
            vec![
                "convert",
                "t",
                "--partition-by",
                "year,month,day,hour",
                "--dest",
                "gold",
            ],
            json!({"table": "t", "partition_by": "hour", "dest": "gold"}),
        ),
    ];
    for (args, input) in cases {
        let Command::Convert(flags) = cli(&args).command else {
            panic!("{args:?}")
        };
        let from_flags = super::convert::convert_request(&flags).unwrap();
        assert_eq!(from_flags, task::<ops::ConvertRequest>(input), "{args:?}");
    }
    // The CLI refuses a range with one end, as the task does.
    assert!(
        Cli::try_parse_from([
            "sluice",
            "convert",
            "t",
            "--reprocess",
            "--from",
            "2024-05-01"
        ])
        .is_err()
    );
    let Command::Convert(flags) = cli(&["convert", "t", "--dry-run", "--reprocess"]).command else {
        panic!("convert")
    };
    assert!(super::convert::convert_request(&flags).is_err());
}

#[test]
fn dataset_flags_and_task_input_make_the_same_request() {
    let Command::Dataset(flags) = cli(&[
        "dataset",
        "t",
        "--item",
        "site,device_id",
        "--target",
        "pm25",
        "--prediction-length",
        "12",
        "--out",
        "ds",
        "--dynamic",
        "temperature",
    ])
    .command
    else {
        panic!("dataset")
    };
    let input = json!({"table": "t", "item": ["site", "device_id"], "target": "pm25",
                       "prediction_length": 12, "out": "ds", "dynamic": "temperature"});
    assert_eq!(
        super::dataset::dataset_request(&flags).unwrap(),
        task::<ops::DatasetRequest>(input)
    );
    // The horizon is a choice, for the CLI as for the task.
    assert!(
        Cli::try_parse_from([
            "sluice", "dataset", "t", "--item", "d", "--target", "y", "--out", "o"
        ])
        .is_err()
    );
}

#[test]
fn train_flags_and_task_input_make_the_same_request() {
    let Command::Train(flags) = cli(&[
        "train",
        "--train",
        "a.jsonl",
        "--test",
        "b.jsonl",
        "--model-dir",
        "m",
        "--set",
        "epochs=2",
        "--set",
        "context_length = 24",
        "--seed",
        "7",
    ])
    .command
    else {
        panic!("train")
    };
    let input = json!({"train": "a.jsonl", "test": "b.jsonl", "model_dir": "m", "seed": 7,
                       "hyperparameters": {"epochs": "2", "context_length": "24"}});
    assert_eq!(
        super::forecasting::train_request(&flags).unwrap(),
        task::<ops::TrainRequest>(input)
    );
}

#[test]
fn transform_flags_and_task_input_make_the_same_request() {
    let sql = "SELECT 1 AS n FROM t_curated";
    let cases = [
        (
            vec!["transform", "daily", sql],
            json!({"table": "daily", "sql": sql}),
        ),
        (
            vec![
                "transform",
                "daily",
                sql,
                "--partition-by",
                "year,day",
                "--force",
                "--dest",
                "derived",
            ],
            json!({"table": "daily", "sql": sql, "partition_by": ["year", "day"], "force": true, "dest": "derived"}),
        ),
    ];
    for (args, input) in cases {
        let Command::Transform(flags) = cli(&args).command else {
            panic!("{args:?}")
        };
        assert_eq!(
            super::transform::request(&flags),
            task::<ops::TransformRequest>(input),
            "{args:?}"
        );
    }
}

#[test]
fn deploy_flags_and_the_admin_body_make_the_same_request() {
    let cases = [
        (
            vec!["endpoint", "deploy", "e", "--model", "v3"],
            json!({"version": 3}),
        ),
        (
            vec![
                "endpoint",
                "deploy",
                "e",
                "--model",
                "4",
                "--strategy",
                "linear",
                "--percent",
                "25",
                "--bake-seconds",
                "60",
            ],
            json!({"version": 4, "strategy": "linear", "percent": 25, "bake_seconds": 60.0}),
        ),
    ];
    for (args, body) in cases {
        let Command::Endpoint(crate::cli::EndpointCommand::Deploy(flags)) = cli(&args).command
        else {
            panic!("{args:?}")
        };
        let from_flags = super::serving::deploy_request(&flags).unwrap();
        assert_eq!(
            from_flags,
            task::<ops::serving::DeployRequest>(body),
            "{args:?}"
        );
    }
    let Command::Endpoint(crate::cli::EndpointCommand::Deploy(flags)) =
        cli(&["endpoint", "deploy", "e", "--model", "champion"]).command
    else {
        panic!("deploy")
    };
    let refused = super::serving::deploy_request(&flags).unwrap_err();
    assert!(refused.to_string().starts_with("--model:"), "{refused}");
}

#[test]
fn trigger_flags_and_api_bodies_make_the_same_request() {
    let cases = [
        (
            vec![
                "trigger",
                "create",
                "t",
                "--workflow",
                "w",
                "--on-landing",
                "landing/x",
            ],
            json!({"name": "t", "workflow": "w", "on": "landing", "prefix": "landing/x"}),
        ),
        (
            vec![
                "trigger",
                "create",
                "t",
                "--workflow",
                "w",
                "--on-drift",
                "--window",
                "6h",
                "--input",
                r#"{"a": 1}"#,
            ],
            json!({"name": "t", "workflow": "w", "on": "drift", "window_seconds": 21_600, "input": {"a": 1}}),
        ),
        (
            vec![
                "trigger",
                "create",
                "t",
                "--workflow",
                "w",
                "--on-drift",
                "air-quality",
            ],
            json!({"name": "t", "workflow": "w", "on": "drift", "subject": "air-quality"}),
        ),
    ];
    for (args, body) in cases {
        let Command::Trigger(crate::cli::TriggerCommand::Create(flags)) = cli(&args).command else {
            panic!("{args:?}")
        };
        let from_flags = super::events::trigger_request(&flags).unwrap();
        assert_eq!(
            from_flags,
            task::<ops::workflows::triggers::TriggerRequest>(body),
            "{args:?}"
        );
    }
    let both = Cli::try_parse_from([
        "sluice",
        "trigger",
        "create",
        "t",
        "--workflow",
        "w",
        "--on-landing",
        "x",
        "--on-drift",
    ]);
    assert!(
        both.is_err(),
        "a trigger watches landings or drift, not both"
    );
}

#[test]
fn notify_flags_and_api_bodies_make_the_same_request() {
    let args = [
        "notify",
        "create",
        "chat",
        "--url",
        "https://hooks.example.com/x",
        "--on",
        "drift.detected",
        "--on",
        "conversion.quarantined",
        "--format",
        "slack",
        "--min-quarantine-share",
        "0.05",
        "--subject",
        "telemetry",
        "--max-attempts",
        "3",
    ];
    let Command::Notify(crate::cli::NotifyCommand::Create(flags)) = cli(&args).command else {
        panic!("{args:?}")
    };
    assert_eq!(
        super::events::rule_request(&flags).unwrap(),
        task::<ops::notifications::RuleRequest>(json!({
            "name": "chat", "url": "https://hooks.example.com/x",
            "events": ["drift.detected", "conversion.quarantined"], "format": "slack",
            "min_quarantine_share": 0.05, "subject": "telemetry", "max_attempts": 3
        }))
    );
    let Command::Notify(crate::cli::NotifyCommand::Create(flags)) = cli(&[
        "notify",
        "create",
        "n",
        "--url",
        "http://h/x",
        "--on",
        "execution.failed",
    ])
    .command
    else {
        panic!()
    };
    assert_eq!(
        super::events::rule_request(&flags).unwrap(),
        task::<ops::notifications::RuleRequest>(
            json!({"name": "n", "url": "http://h/x", "events": ["execution.failed"]})
        )
    );
}
