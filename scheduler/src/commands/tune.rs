//! `sluice tune`: a run of the shipped `tune` workflow (random search with successive halving
//! over DeepAR's hyperparameters), started from flags. By default it runs an embedded worker
//! until the run ends and prints every trial; with `--no-wait` it only starts the run, for the
//! `sluice worker` processes of a scale-out to train its trials.

use std::path::Path;

use anyhow::Context as _;
use ops::workflows::{ExecutionView, StartRequest};
use serde_json::{Value, json};

use super::Context;
use super::executions::wait_for;
use super::forecasting::hyperparameters;
use crate::cli::TuneArgs;
use crate::orchestrator::store::ExecutionStatus;
use crate::output::{Report, table};

/// The workflow every tuning run executes.
pub const WORKFLOW: &str = "tune";
/// Its definition, stored (as a new version) when the stored one differs.
pub const DEFINITION: &str = include_str!("../../workflows/tune.asl.json");

/// A path the workers can open: absolute (they run elsewhere), unless it is a lake key.
fn shared(path: &str) -> anyhow::Result<String> {
    if path.starts_with("lake:") {
        return Ok(path.to_owned());
    }
    Ok(std::path::absolute(path)
        .with_context(|| format!("cannot resolve {path}"))?
        .display()
        .to_string())
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))
}

/// The run's input, as the workflow reads it.
fn input(args: &TuneArgs) -> anyhow::Result<Value> {
    let mut settings = json!({
        "train": shared(&args.train.display().to_string())?,
        "work": shared(&args.work)?,
        "trials": args.trials,
        "eta": args.eta,
        "seed": args.seed,
        "hyperparameters": hyperparameters(args.hyperparameters.as_deref(), &args.set)?,
    });
    if let Some(test) = &args.test {
        settings["test"] = json!(shared(&test.display().to_string())?);
    }
    if let Some(ranges) = &args.ranges {
        settings["ranges"] = read_json(ranges)?;
    }
    let mut input = json!({ "settings": settings });
    if let Some(group) = &args.group {
        anyhow::ensure!(
            args.test.is_some(),
            "--group registers the best trial, which is scored against the champion on --test: give --test"
        );
        input["register"] = json!({"group": group, "margin": args.margin});
    }
    Ok(input)
}

/// Stores the shipped definition unless the latest stored version is the same.
async fn install(workflows: &ops::workflows::Workflows) -> anyhow::Result<()> {
    let definition: Value = serde_json::from_str(DEFINITION).expect("the shipped workflow is JSON");
    let current = workflows.definition(WORKFLOW, None).await.ok();
    if current.is_none_or(|c| c.definition != definition) {
        workflows.put_workflow(WORKFLOW, &definition).await?;
    }
    Ok(())
}

pub async fn run(args: &TuneArgs, context: &Context) -> anyhow::Result<Report> {
    let input = input(args)?;
    let (workflows, queue) = context.workflows().await?;
    install(&workflows).await?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("tune-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S")));
    let started = workflows
        .start(
            WORKFLOW,
            StartRequest {
                input: Some(input),
                name: Some(name),
            },
        )
        .await?;
    if args.no_wait {
        let e = &started.execution;
        return Ok(Report::new(
            json!({"execution": e.id, "name": e.name, "status": e.status.as_str()}),
            format!(
                "tuning run {} started (execution {}); `sluice worker` processes train its trials; \
                 `sluice workflow describe {}` shows where it is",
                e.name, e.id, e.id
            ),
        ));
    }
    let execution = wait_for(&workflows, queue, &started.execution.id).await?;
    report(&execution)
}

/// The finished run: every trial's scores by rung, the best and the reference.
fn report(execution: &ExecutionView) -> anyhow::Result<Report> {
    if execution.status != ExecutionStatus::Succeeded {
        anyhow::bail!(
            "tuning run {} (execution {}) {} in state {}: {}: {}",
            execution.name,
            execution.id,
            execution.status.as_str(),
            execution.state,
            execution.error.as_deref().unwrap_or(""),
            execution.cause.as_deref().unwrap_or("")
        );
    }
    let output = execution.output.clone().unwrap_or(Value::Null);
    let report = &output["report"];
    let rungs = report["rungs"].as_array().cloned().unwrap_or_default();
    let rows = report["trials"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|trial| {
            let drawn = trial["drawn"].as_object().filter(|d| !d.is_empty()).map_or(
                "(reference)".to_owned(),
                |d| {
                    d.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(" ")
                },
            );
            let scores = trial["scores"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let loss = s["validation_mean_wql"]
                        .as_f64()
                        .map_or("failed".to_owned(), |v| format!("{v:.4}"));
                    format!("r{}: {loss}", s["rung"])
                })
                .collect::<Vec<_>>()
                .join(", ");
            let stopped = trial["stopped_after"]
                .as_u64()
                .map_or(String::new(), |r| format!("after rung {r}"));
            [trial["trial"].to_string(), drawn, scores, stopped]
        });
    let schedule = rungs
        .iter()
        .map(|r| format!("{}×{} epochs", r["trials"], r["epochs"]))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "tuning run {} (execution {}): rungs {schedule}\n{}\n{}",
        execution.name,
        execution.id,
        table(
            ["trial", "drawn", "validation mean_wQuantileLoss", "stopped"],
            rows
        ),
        report["summary"].as_str().unwrap_or_default()
    );
    text.push_str(&format!(
        "\nbest model: {}",
        report["best"]["model_dir"].as_str().unwrap_or_default()
    ));
    if let Some(registered) = output["registered"].as_object() {
        text.push_str(&format!(
            "\nregistered: {}",
            registered
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("yes")
        ));
    }
    let mut json = report.clone();
    json["execution"] = json!(execution.id);
    json["registered"] = output["registered"].clone();
    Ok(Report::new(json, text))
}
