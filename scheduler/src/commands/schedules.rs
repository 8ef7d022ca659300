//! `sluice schedule ...` and `sluice server` (the scheduler loop beside a worker).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use ops::workflows::{ScheduleRequest, ScheduleView, Workflows};
use serde_json::{Value, json};

use super::Context;
use crate::cli::{ScheduleBackfillArgs, ScheduleCommand, ScheduleCreateArgs, ServerArgs};
use crate::output::{Report, table, time};

fn parse_time(flag: &str, text: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("{flag} {text:?} is not an RFC 3339 time"))?
        .with_timezone(&Utc))
}

pub(super) fn parse_window(text: &str) -> anyhow::Result<i64> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = number
        .parse()
        .with_context(|| format!("window {text:?}: a number and s, m, h or d"))?;
    Ok(n * match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => anyhow::bail!("window {text:?}: unknown unit {other:?}"),
    })
}

fn schedule_json(s: &ScheduleView) -> Value {
    json!({"name": s.name, "cron": s.cron, "timezone": s.timezone, "workflow": s.workflow,
        "input": s.input, "catchup": s.catchup, "window_seconds": s.window_seconds,
        "overlap": s.overlap, "paused": s.paused, "last_tick": time(s.last_tick)})
}

pub async fn run(command: &ScheduleCommand, context: &Context) -> anyhow::Result<Report> {
    let (workflows, _) = context.workflows().await?;
    match command {
        ScheduleCommand::Create(args) => create(args, &workflows).await,
        ScheduleCommand::List => {
            let list = workflows.schedules().await?;
            let text = table(
                [
                    "schedule",
                    "cron",
                    "zone",
                    "workflow",
                    "catch-up",
                    "overlap",
                    "paused",
                    "last tick",
                ],
                list.iter().map(|s| {
                    [
                        s.name.clone(),
                        s.cron.clone(),
                        s.timezone.clone(),
                        s.workflow.clone(),
                        s.catchup.clone(),
                        s.overlap.clone(),
                        s.paused.to_string(),
                        time(s.last_tick),
                    ]
                }),
            );
            Ok(Report::new(
                Value::Array(list.iter().map(schedule_json).collect()),
                text,
            ))
        }
        ScheduleCommand::Pause { name } | ScheduleCommand::Resume { name } => {
            let paused = matches!(command, ScheduleCommand::Pause { .. });
            workflows.set_paused(name, paused).await?;
            Ok(Report::new(
                json!({"schedule": name, "paused": paused}),
                format!(
                    "schedule {name} {}",
                    if paused { "paused" } else { "resumed" }
                ),
            ))
        }
        ScheduleCommand::Delete { name } => {
            workflows.delete_schedule(name).await?;
            Ok(Report::new(
                json!({"schedule": name, "deleted": true}),
                format!("schedule {name} deleted"),
            ))
        }
        ScheduleCommand::Backfill(ScheduleBackfillArgs { name, from, to }) => {
            let (from, to) = (parse_time("--from", from)?, parse_time("--to", to)?);
            let started = workflows.backfill(name, from, to).await?;
            Ok(Report::new(
                json!({"schedule": name, "started": started}),
                format!("schedule {name}: {} executions started", started.len()),
            ))
        }
    }
}

async fn create(args: &ScheduleCreateArgs, workflows: &Workflows) -> anyhow::Result<Report> {
    let input: Value = match &args.input {
        Some(text) => serde_json::from_str(text).context("--input is not JSON")?,
        None => json!({}),
    };
    let request = ScheduleRequest {
        name: args.name.clone(),
        cron: args.cron.clone(),
        timezone: args.tz.clone(),
        workflow: args.workflow.clone(),
        input,
        catchup: args.catchup.clone(),
        window_seconds: parse_window(&args.window)?,
        overlap: args.overlap.clone(),
    };
    let schedule = workflows.create_schedule(&request).await?;
    Ok(Report::new(
        json!({"schedule": schedule.name, "cron": schedule.cron, "timezone": schedule.timezone}),
        format!("schedule {} created", schedule.name),
    ))
}

/// The shipped nightly-retrain definition.
pub const NIGHTLY_RETRAIN: &str = include_str!("../../workflows/nightly-retrain.asl.json");

/// The nightly-retrain input for the generated air-quality fleet, working in `work` (the retrain
/// policy spelled out as its defaults, so that the installed schedule shows its knobs).
pub fn nightly_input(work: &str) -> serde_json::Value {
    json!({
        "prefix": "landing", "table": "telemetry", "group": "air-quality", "work": work,
        "item": "device_id", "target": "pm25", "freq": "1h", "prediction_length": 24, "margin": 0.0,
        "retrain": {"max_age": "7d", "min_new_share": 0.1, "on_drift": true},
        "hyperparameters": {"context_length": "24", "epochs": "10", "num_cells": "32",
                            "num_batches_per_epoch": "30", "mini_batch_size": "32",
                            "learning_rate": "0.005", "likelihood": "student-T"}
    })
}

/// `sluice workflow install nightly-retrain`: the workflow and its schedule.
pub async fn install(
    args: &crate::cli::WorkflowInstallArgs,
    context: &Context,
) -> anyhow::Result<Report> {
    let definition: serde_json::Value = serde_json::from_str(NIGHTLY_RETRAIN)?;
    let (workflows, _) = context.workflows().await?;
    let version = workflows
        .put_workflow(&args.name, &definition)
        .await?
        .version;
    let input = match &args.input {
        Some(text) => text.clone(),
        None => nightly_input(&std::path::absolute("work")?.display().to_string()).to_string(),
    };
    let schedule = ScheduleCreateArgs {
        name: args.name.clone(),
        cron: args.cron.clone(),
        tz: args.tz.clone(),
        workflow: args.name.clone(),
        input: Some(input),
        catchup: "latest".into(),
        window: "1d".into(),
        overlap: "skip".into(),
    };
    create(&schedule, &workflows).await?;
    Ok(Report::new(
        json!({"workflow": args.name, "version": version, "schedule": args.name, "cron": args.cron, "timezone": args.tz}),
        format!(
            "workflow {} version {version} installed; schedule {} runs it at \"{}\" ({}) while `sluice server` runs",
            args.name, args.name, args.cron, args.tz
        ),
    ))
}

/// `sluice server`: the HTTP API with the prediction endpoints, the scheduler loop and a worker,
/// until SIGTERM (see `process::server`).
pub async fn server(args: &ServerArgs, context: &Context) -> anyhow::Result<Report> {
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| context.config.api.listen.clone());
    let name = args
        .worker
        .name
        .clone()
        .unwrap_or_else(|| format!("server-{}", uuid::Uuid::new_v4()));
    let parts = crate::process::ServerParts {
        listen: &listen,
        worker: (!args.no_worker).then(|| name.clone()),
    };
    let address = crate::process::server(context, parts).await?;
    Ok(Report::new(
        json!({"server": name, "api": format!("http://{address}"), "stopped": true}),
        format!("server {name} stopped"),
    ))
}
