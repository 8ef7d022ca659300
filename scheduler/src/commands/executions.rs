//! Durable executions from the command line: `sluice workflow create|list|start|describe|history|
//! stop|redrive` and `sluice worker`. `start --wait` and `redrive --wait` run an embedded worker
//! until the execution ends, so nothing else needs to be running.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Context;
use crate::cli::{
    ConnectionCommand, ExecutionArgs, TaskCommand, WorkerArgs, WorkflowCreateArgs,
    WorkflowStartArgs,
};
use crate::orchestrator::engine::{Engine, Next};
use crate::orchestrator::queue::Queue;
use crate::orchestrator::store::{self, Execution, ExecutionStatus, execution_json};
use crate::output::{Report, table, time};

async fn engine(context: &Context) -> anyhow::Result<Engine> {
    let catalog = context.catalog().await?;
    Ok(Engine::new(context.ops.clone(), catalog.pool().clone()))
}

fn execution_text(e: &Execution) -> String {
    let mut text = format!(
        "execution {} ({}) of {} v{}: {}",
        e.id, e.name, e.workflow, e.version, e.status
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

pub async fn create(args: &WorkflowCreateArgs, context: &Context) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(&args.definition)
        .with_context(|| format!("cannot read {}", args.definition.display()))?;
    let definition: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.definition.display()))?;
    crate::tasks::runnable(&definition, &context.ops.settings().process)
        .with_context(|| format!("{} is not a valid workflow", args.definition.display()))?;
    let engine = engine(context).await?;
    let version = store::put_workflow(&engine.pool, &args.name, &definition).await?;
    Ok(Report::new(
        json!({"workflow": args.name, "version": version}),
        format!("workflow {} version {version}", args.name),
    ))
}

pub async fn list(context: &Context) -> anyhow::Result<Report> {
    let engine = engine(context).await?;
    let workflows = store::workflows(&engine.pool).await;
    let executions = store::executions(&engine.pool, None, 20).await;
    let (workflows, executions) = (workflows?, executions?);
    let text = format!(
        "{}\n{}",
        table(
            ["workflow", "version", "updated"],
            workflows
                .iter()
                .map(|(n, v, u)| [n.clone(), v.to_string(), time(*u)])
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
                e.status.to_string(),
                e.state.clone(),
                time(e.started_at)
            ])
        )
    );
    Ok(Report::new(
        json!({"workflows": workflows.iter().map(|(n, v, _)| json!({"name": n, "version": v})).collect::<Vec<_>>(),
               "executions": executions.iter().map(execution_json).collect::<Vec<_>>()}),
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
async fn wait_for(engine: &Engine, queue: Queue, id: &str) -> anyhow::Result<Execution> {
    let (stop, worker) = embedded_worker(engine, queue);
    let execution = loop {
        let execution = store::execution(&engine.pool, id).await?;
        if execution.status != ExecutionStatus::Running {
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
    let engine = engine(context).await?;
    let queue = Queue::open(&context.config.database).await?;
    let (execution, first) = engine
        .start(&args.workflow, input, args.name.clone())
        .await?;
    if let Some(first) = &first {
        queue.push(first).await?;
    }
    let execution = if args.wait {
        wait_for(&engine, queue, &execution.id).await?
    } else {
        execution
    };
    Ok(Report::new(
        execution_json(&execution),
        execution_text(&execution),
    ))
}

pub async fn describe(args: &ExecutionArgs, context: &Context) -> anyhow::Result<Report> {
    let engine = engine(context).await?;
    let execution = store::execution(&engine.pool, &args.execution).await?;
    Ok(Report::new(
        execution_json(&execution),
        execution_text(&execution),
    ))
}

pub async fn history(args: &ExecutionArgs, context: &Context) -> anyhow::Result<Report> {
    let engine = engine(context).await?;
    let events = store::history(&engine.pool, &args.execution).await?;
    let json: Vec<Value> = events.iter().map(|e| json!({"id": e.seq + 1, "type": e.kind, "state": e.state, "details": e.details, "timestamp": time(e.at)})).collect();
    let text = table(
        ["id", "time", "event", "state"],
        events.iter().map(|e| {
            [
                (e.seq + 1).to_string(),
                time(e.at),
                e.kind.clone(),
                e.state.clone().unwrap_or_default(),
            ]
        }),
    );
    Ok(Report::new(Value::Array(json), text))
}

pub async fn stop(args: &ExecutionArgs, context: &Context) -> anyhow::Result<Report> {
    let engine = engine(context).await?;
    engine.stop(&args.execution).await?;
    Ok(Report::new(
        json!({"execution": args.execution, "status": ExecutionStatus::Aborted.as_str()}),
        format!("execution {} stopped", args.execution),
    ))
}

pub async fn redrive(args: &ExecutionArgs, context: &Context) -> anyhow::Result<Report> {
    let engine = engine(context).await?;
    let queue = Queue::open(&context.config.database).await?;
    let next: Next = engine.redrive(&args.execution).await?;
    queue.push(&next).await?;
    let execution = if args.wait {
        wait_for(&engine, queue, &args.execution).await?
    } else {
        store::execution(&engine.pool, &args.execution).await?
    };
    Ok(Report::new(
        execution_json(&execution),
        execution_text(&execution),
    ))
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
    let engine = engine(context).await?;
    let (token, answer) = match command {
        TaskCommand::List => {
            let tokens = store::waiting_tokens(&engine.pool, 1000).await?;
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
                        t.execution_id.clone(),
                        t.state.clone(),
                        time(t.created_at),
                        t.due_at.map(time).unwrap_or_else(|| "never".into()),
                        t.input.as_ref().map(Value::to_string).unwrap_or_default(),
                    ]
                }),
            );
            return Ok(Report::new(
                json!(tokens.iter().map(store::token_json).collect::<Vec<_>>()),
                text,
            ));
        }
        TaskCommand::Heartbeat(args) => {
            let token = engine.heartbeat(&args.token).await?;
            return Ok(Report::new(
                store::token_json(&token),
                format!(
                    "heartbeat recorded for execution {} state {}",
                    token.execution_id, token.state
                ),
            ));
        }
        TaskCommand::Success(args) => (
            &args.token,
            store::Answer::Success(
                serde_json::from_str(&args.task_output).context("--task-output is not JSON")?,
            ),
        ),
        TaskCommand::Failure(args) => (
            &args.token,
            store::Answer::Failure(crate::asl::Failure::new(
                args.error.as_deref().unwrap_or("States.TaskFailed"),
                args.cause.clone(),
            )),
        ),
    };
    let next = engine.answer(token, answer).await?;
    if let Some(next) = &next {
        Queue::open(&context.config.database)
            .await?
            .push(next)
            .await?;
    }
    let stored = store::task_token(&engine.pool, token).await?;
    Ok(Report::new(
        store::token_json(&stored),
        format!(
            "task {} of execution {}: {}",
            stored.state, stored.execution_id, stored.status
        ),
    ))
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
