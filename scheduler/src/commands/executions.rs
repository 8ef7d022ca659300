//! Durable executions from the command line: `sluice workflow create|list|start|describe|history|
//! stop|redrive` and `sluice worker`. `start --wait` and `redrive --wait` run an embedded worker
//! until the execution ends, so nothing else needs to be running.

use std::time::Duration;

use anyhow::Context as _;
use ops::workflows::{
    ExecutionList, ExecutionView, StartRequest, TaskFailureRequest, TaskHeartbeatRequest,
    TaskSuccessRequest, TokenView, Workflows,
};
use serde_json::{Value, json};

use super::Context;
use crate::cli::{
    ConnectionCommand, ExecutionArgs, TaskCommand, WorkerArgs, WorkflowCreateArgs,
    WorkflowStartArgs,
};
use crate::orchestrator::engine::Engine;
use crate::orchestrator::queue::Queue;
use crate::orchestrator::store::ExecutionStatus;
use crate::output::{Report, table, time};

fn execution_text(e: &ExecutionView) -> String {
    let mut text = format!(
        "execution {} ({}) of {} v{}: {}",
        e.id,
        e.name,
        e.workflow,
        e.version,
        e.status.as_str()
    );
    match (e.status, &e.output) {
        (ExecutionStatus::Succeeded, Some(output)) => text.push_str(&format!("\noutput: {output}")),
        (ExecutionStatus::Failed, _) => text.push_str(&format!(
            "\nfailed in state {}: {}: {}",
            e.state,
            e.error.as_deref().unwrap_or(""),
            e.cause.as_deref().unwrap_or("")
        )),
        (ExecutionStatus::Running, _) => text.push_str(&format!("\nat state {}", e.state)),
        _ => {}
    }
    text
}

fn execution_report(execution: &ExecutionView) -> anyhow::Result<Report> {
    Ok(Report::new(
        serde_json::to_value(execution)?,
        execution_text(execution),
    ))
}

pub async fn create(args: &WorkflowCreateArgs, context: &Context) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(&args.definition)
        .with_context(|| format!("cannot read {}", args.definition.display()))?;
    let definition: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.definition.display()))?;
    let (workflows, _) = context.workflows().await?;
    let stored = workflows
        .put_workflow(&args.name, &definition)
        .await
        .with_context(|| format!("{} is not a valid workflow", args.definition.display()))?;
    Ok(Report::new(
        serde_json::to_value(&stored)?,
        format!("workflow {} version {}", stored.workflow, stored.version),
    ))
}

pub async fn list(context: &Context) -> anyhow::Result<Report> {
    let (ops, _) = context.workflows().await?;
    let latest = ExecutionList {
        limit: Some(20),
        ..ExecutionList::default()
    };
    let (workflows, executions) = (ops.workflows().await?, ops.executions(&latest).await?);
    let text = format!(
        "{}\n{}",
        table(
            ["workflow", "version", "updated"],
            workflows
                .iter()
                .map(|w| [w.name.clone(), w.version.to_string(), time(w.updated_at)])
        ),
        table(
            [
                "execution",
                "name",
                "workflow",
                "status",
                "state",
                "started"
            ],
            executions.iter().map(|e| [
                e.id.clone(),
                e.name.clone(),
                e.workflow.clone(),
                e.status.as_str().to_owned(),
                e.state.clone(),
                e.started_at.clone()
            ])
        )
    );
    Ok(Report::new(
        json!({"workflows": workflows, "executions": executions}),
        text,
    ))
}

/// A worker in this process until the returned sender fires (or is dropped).
pub(super) fn embedded_worker(
    engine: &Engine,
    queue: Queue,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), crate::orchestrator::Error>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(queue.work(
        engine.clone(),
        format!("embedded-{}", uuid::Uuid::new_v4()),
        async move {
            let _ = stopped.await;
        },
    ));
    (stop, worker)
}

/// Runs an embedded worker until the execution leaves RUNNING.
pub(super) async fn wait_for(
    workflows: &Workflows,
    queue: Queue,
    id: &str,
) -> anyhow::Result<ExecutionView> {
    let (stop, worker) = embedded_worker(workflows.engine(), queue);
    let execution = loop {
        let execution = workflows.describe(id).await?;
        if execution.ended() {
            break execution;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = stop.send(());
    worker.await??;
    Ok(execution)
}

pub async fn start(args: &WorkflowStartArgs, context: &Context) -> anyhow::Result<Report> {
    let input: Value = match &args.input {
        Some(text) => serde_json::from_str(text).context("--input is not JSON")?,
        None => json!({}),
    };
    let (workflows, queue) = context.workflows().await?;
    let request = StartRequest {
        input: Some(input),
        name: args.name.clone(),
    };
    let started = workflows.start(&args.workflow, request).await?;
    let execution = if args.wait {
        wait_for(&workflows, queue, &started.execution.id).await?
    } else {
        started.execution
    };
    execution_report(&execution)
}

pub async fn describe(args: &ExecutionArgs, context: &Context) -> anyhow::Result<Report> {
    let (workflows, _) = context.workflows().await?;
    execution_report(&workflows.describe(&args.execution).await?)
}

pub async fn history(args: &ExecutionArgs, context: &Context) -> anyhow::Result<Report> {
    let (workflows, _) = context.workflows().await?;
    let events = workflows.history(&args.execution).await?;
    let text = table(
        ["id", "time", "event", "state"],
        events.iter().map(|e| {
            [
                e.id.to_string(),
                time(e.at_ms),
                e.kind.clone(),
                e.state.clone().unwrap_or_default(),
            ]
        }),
    );
    Ok(Report::new(serde_json::to_value(&events)?, text))
}

pub async fn stop(args: &ExecutionArgs, context: &Context) -> anyhow::Result<Report> {
    let (workflows, _) = context.workflows().await?;
    let stopped = workflows.stop(&args.execution).await?;
    Ok(Report::new(
        json!({"execution": stopped.id, "status": stopped.status}),
        format!("execution {} stopped", stopped.id),
    ))
}

pub async fn redrive(args: &ExecutionArgs, context: &Context) -> anyhow::Result<Report> {
    let (workflows, queue) = context.workflows().await?;
    let execution = workflows.redrive(&args.execution).await?;
    let execution = if args.wait {
        wait_for(&workflows, queue, &args.execution).await?
    } else {
        execution
    };
    execution_report(&execution)
}

pub async fn worker(args: &WorkerArgs, context: &Context) -> anyhow::Result<Report> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("worker-{}", uuid::Uuid::new_v4()));
    crate::process::worker(context, &name).await?;
    Ok(Report::new(
        json!({"worker": name, "stopped": true}),
        format!("worker {name} stopped"),
    ))
}

/// `sluice task list|success|failure|heartbeat`: answers to callback tasks. An answer to a task
/// whose execution already waits enqueues the step that resumes it; a worker (or `sluice
/// server`) runs it.
pub async fn task(command: &TaskCommand, context: &Context) -> anyhow::Result<Report> {
    let (workflows, _) = context.workflows().await?;
    let answered = match command {
        TaskCommand::List => {
            let tokens = workflows.waiting_tasks().await?;
            let text = table(
                [
                    "token",
                    "execution",
                    "state",
                    "waiting since",
                    "runs out",
                    "input",
                ],
                tokens.iter().map(|t| {
                    [
                        t.token.clone(),
                        t.execution.clone(),
                        t.state.clone(),
                        t.issued_at.clone(),
                        t.runs_out_at.clone().unwrap_or_else(|| "never".into()),
                        t.input.as_ref().map(Value::to_string).unwrap_or_default(),
                    ]
                }),
            );
            return Ok(Report::new(serde_json::to_value(&tokens)?, text));
        }
        TaskCommand::Heartbeat(args) => {
            let request = TaskHeartbeatRequest {
                task_token: args.token.clone(),
            };
            let token = workflows.send_task_heartbeat(&request).await?;
            return Ok(Report::new(
                serde_json::to_value(&token)?,
                format!(
                    "heartbeat recorded for execution {} state {}",
                    token.execution, token.state
                ),
            ));
        }
        TaskCommand::Success(args) => {
            let request = TaskSuccessRequest {
                task_token: args.token.clone(),
                output: args.task_output.clone(),
            };
            workflows
                .send_task_success(&request)
                .await
                .map_err(task_output_flag)?
        }
        TaskCommand::Failure(args) => {
            let request = TaskFailureRequest {
                task_token: args.token.clone(),
                error: args.error.clone(),
                cause: Some(args.cause.clone()),
            };
            workflows.send_task_failure(&request).await?
        }
    };
    let token: &TokenView = &answered.token;
    Ok(Report::new(
        serde_json::to_value(token)?,
        format!(
            "task {} of execution {}: {}",
            token.state,
            token.execution,
            token.status.as_str()
        ),
    ))
}

/// The request's `output` is the command line's `--task-output`.
fn task_output_flag(err: ops::Error) -> anyhow::Error {
    match err {
        ops::Error::InvalidInput { field, reason } if field == "output" => {
            anyhow::anyhow!("--task-output{}", reason.trim_start_matches("output"))
        }
        err => err.into(),
    }
}

/// `sluice connection create|list|delete`: adapters over the connection operations.
pub async fn connection(command: &ConnectionCommand, context: &Context) -> anyhow::Result<Report> {
    let ops = &context.ops;
    match command {
        ConnectionCommand::List => {
            let connections = ops.connections().await?;
            let text = table(
                ["connection", "authorization", "headers", "query", "updated"],
                connections.iter().map(|c| {
                    [
                        c.name.clone(),
                        c.authorization.to_owned(),
                        c.headers.join(", "),
                        c.query.join(", "),
                        time(c.updated_at),
                    ]
                }),
            );
            Ok(Report::new(json!(connections), text))
        }
        ConnectionCommand::Delete(args) => {
            ops.delete_connection(&args.name).await?;
            Ok(Report::new(
                json!({"connection": args.name, "deleted": true}),
                format!("connection {} deleted", args.name),
            ))
        }
        ConnectionCommand::Create(args) => {
            let split = |flag: &str, text: &str, on: char| -> anyhow::Result<(String, String)> {
                text.split_once(on)
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .with_context(|| format!("{flag}: expected a '{on}' in {text:?}"))
            };
            let authorization = match (&args.basic, &args.api_key, &args.bearer) {
                (Some(basic), _, _) => {
                    let (user, password) = split("--basic", basic, ':')?;
                    json!({"type": "basic", "username": user, "password": password})
                }
                (_, Some(key), _) => {
                    let (header, value) = split("--api-key", key, '=')?;
                    json!({"type": "api_key", "header": header, "value": value})
                }
                (_, _, Some(token)) => json!({"type": "bearer", "token": token}),
                _ => anyhow::bail!("one of --basic, --api-key or --bearer"),
            };
            let pairs =
                |flag: &str, items: &[String]| -> anyhow::Result<serde_json::Map<String, Value>> {
                    items
                        .iter()
                        .map(|item| split(flag, item, '=').map(|(k, v)| (k, json!(v))))
                        .collect()
                };
            let request: ops::ConnectionRequest = ops::request::from_json(json!({
                "name": args.name, "authorization": authorization,
                "headers": pairs("--header", &args.headers)?, "query": pairs("--query", &args.query)?,
            }))?;
            let info = ops.put_connection(&request).await?;
            Ok(Report::new(
                json!(info),
                format!("connection {} ({})", info.name, info.authorization),
            ))
        }
    }
}
