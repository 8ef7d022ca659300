//! `sluice workflow validate` and `sluice workflow run`: a definition checked, or run to its end
//! in this process (its Task states call the jobs directly), with the execution's history.

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Context;
use crate::asl::definition::StateMachine;
use crate::asl::run::{ExecutionInfo, SystemClock, run as run_execution};
use crate::cli::{WorkflowRunArgs, WorkflowValidateArgs};
use crate::output::{Report, table};
use crate::tasks::InProcess;

fn load(path: &std::path::Path, context: &Context) -> anyhow::Result<StateMachine> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    crate::tasks::runnable(&value, &context.ops.settings().process)
        .with_context(|| format!("{} is not a valid workflow", path.display()))
}

pub fn validate(args: &WorkflowValidateArgs, context: &Context) -> anyhow::Result<Report> {
    let machine = load(&args.definition, context)?;
    Ok(Report::new(
        json!({"valid": true, "start_at": machine.start_at, "states": machine.states.len()}),
        format!(
            "{}: valid, {} states, starts at {}",
            args.definition.display(),
            machine.states.len(),
            machine.start_at
        ),
    ))
}

pub async fn run(args: &WorkflowRunArgs, context: &Context) -> anyhow::Result<Report> {
    let machine = load(&args.definition, context)?;
    let input: Value = match &args.input {
        Some(text) => serde_json::from_str(text).context("--input is not JSON")?,
        None => json!({}),
    };
    let info = ExecutionInfo {
        name: args
            .name
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        state_machine: args
            .definition
            .file_stem()
            .map_or_else(|| "workflow".into(), |s| s.to_string_lossy().into_owned()),
    };
    let ops = context.ops.clone();
    let handle = tokio::runtime::Handle::current();
    // The interpreter blocks (waits, retry delays, jobs run through the handle): off the runtime.
    let outcome = tokio::task::spawn_blocking(move || {
        let mut tasks = InProcess { ops: &ops, handle };
        run_execution(&machine, input, &info, &mut tasks, &mut SystemClock)
    })
    .await?;
    let events: Vec<&str> = outcome.events.iter().map(|e| e.kind.as_str()).collect();
    let json = json!({
        "status": outcome.status.as_str(),
        "output": outcome.output,
        "error": outcome.failure.as_ref().map(|f| f.error.clone()),
        "cause": outcome.failure.as_ref().map(|f| f.cause.clone()),
        "events": events,
    });
    let mut text = format!("execution {}", outcome.status.as_str());
    match (&outcome.output, &outcome.failure) {
        (Some(output), _) => text.push_str(&format!(
            "\noutput: {}",
            serde_json::to_string_pretty(output)?
        )),
        (_, Some(failure)) => text.push_str(&format!(
            "\nerror: {}\ncause: {}",
            failure.error, failure.cause
        )),
        _ => {}
    }
    text.push('\n');
    text.push_str(&table(
        ["#", "event", "state"],
        outcome.events.iter().enumerate().map(|(i, e)| {
            [
                (i + 1).to_string(),
                e.kind.clone(),
                e.state.clone().unwrap_or_default(),
            ]
        }),
    ));
    Ok(Report::new(json, text))
}
