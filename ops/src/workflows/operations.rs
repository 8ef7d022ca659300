//! Workflow, execution, callback and schedule management as operations: typed requests in,
//! typed views out, [`crate::Error`] for every failure. `sluice workflow|task|schedule`, the
//! HTTP API and (next) the console are adapters over [`Workflows`]; none of them reads the
//! store or pushes to the queue itself.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::engine::Engine;
use super::schedules::{self, Schedule};
use super::store::{self, Answer, Execution, ExecutionStatus, TaskToken, TokenStatus, show_time};
use super::{Dispatch, Error as FlowError};
use crate::{Error, Missing, Result};

/// The workflow operations of a process: its engine, and the queue its steps go to.
#[derive(Clone)]
pub struct Workflows {
    engine: Engine,
    dispatch: Arc<dyn Dispatch>,
}

/// A definition that validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Validated {
    pub valid: bool,
    pub start_at: String,
    pub states: usize,
}

/// A stored version of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowVersion {
    pub workflow: String,
    pub version: i64,
}

/// A workflow and its latest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowSummary {
    pub name: String,
    pub version: i64,
    /// When its latest version was stored (ms since the epoch; not serialized).
    #[serde(skip)]
    pub updated_at: i64,
}

/// `StartExecution`: the execution's input (`{}` by default) and its name (a new UUID by
/// default; a name starts one execution).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A started execution; `created` is false when the start repeated one that still runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Started {
    pub execution: ExecutionView,
    pub created: bool,
}

/// Which executions to list: newest first, of one workflow or all, at most `limit` (1 to 1,000;
/// 100 by default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionList {
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
}

/// An execution as callers see it (`DescribeExecution`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionView {
    pub id: String,
    pub workflow: String,
    pub name: String,
    pub version: i64,
    pub status: ExecutionStatus,
    /// The state it is at, or ended in.
    pub state: String,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub redrive_count: i64,
    pub started_at: String,
    pub stopped_at: Option<String>,
}

/// One event of an execution's history (`GetExecutionHistory`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEvent {
    /// 1, 2, ...: the event's place in the history.
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: Option<String>,
    pub details: Value,
    pub timestamp: String,
    /// The event's time in ms since the epoch (not serialized).
    #[serde(skip)]
    pub at_ms: i64,
}

/// A callback task's token, as `GET /tasks` and the answers return it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenView {
    pub token: String,
    pub execution: String,
    pub state: String,
    pub status: TokenStatus,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub issued_at: String,
    pub heartbeat_at: String,
    pub runs_out_at: Option<String>,
    pub answered_at: Option<String>,
}

/// `SendTaskSuccess`, as Step Functions names it: `output` is JSON text (at most 256 KiB).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskSuccessRequest {
    pub task_token: String,
    pub output: String,
}

/// `SendTaskFailure`: `error` (`States.TaskFailed` by default, at most 256 characters) and
/// `cause` (at most 32,768).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskFailureRequest {
    pub task_token: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

/// `SendTaskHeartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskHeartbeatRequest {
    pub task_token: String,
}

/// What an answer did: the token, and whether its execution was resumed now (false: the step
/// running the task sees the answer as it commits).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answered {
    #[serde(flatten)]
    pub token: TokenView,
    #[serde(skip)]
    pub resumed: bool,
}

/// A cron schedule of a workflow, with its defaults: UTC, input `{}`, missed ticks skipped
/// (`catchup`: `skip`, `latest` or `all`, within `window_seconds`, one day), and a tick that
/// finds the last one still running skipped (`overlap`: `skip`, `buffer-one` or `allow`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    pub name: String,
    pub cron: String,
    pub workflow: String,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default = "empty_object")]
    pub input: Value,
    #[serde(default = "skip")]
    pub catchup: String,
    #[serde(default = "one_day")]
    pub window_seconds: i64,
    #[serde(default = "skip")]
    pub overlap: String,
}

fn utc() -> String {
    "UTC".to_owned()
}
fn empty_object() -> Value {
    Value::Object(Default::default())
}
fn skip() -> String {
    "skip".to_owned()
}
fn one_day() -> i64 {
    86_400
}

/// A stored schedule (`last_tick`: the last tick handled, ms since the epoch).
pub type ScheduleView = Schedule;

impl From<FlowError> for Error {
    /// What the caller does about a workflow error: the one mapping.
    fn from(err: FlowError) -> Self {
        let text = err.to_string();
        match err {
            FlowError::NotFound { .. } => Self::NotFound {
                missing: Missing::Other,
                what: text,
            },
            FlowError::Definition(invalid) => Self::InvalidInput {
                field: invalid.pointer.clone(),
                reason: text,
            },
            FlowError::Invalid(_) => Self::InvalidInput {
                field: String::new(),
                reason: text,
            },
            FlowError::WrongStatus { .. }
            | FlowError::TokenClosed { .. }
            | FlowError::AlreadyExists { .. } => Self::Conflict(text),
            FlowError::Database(_) | FlowError::Queue(_) => Self::Unavailable(text),
            FlowError::Join(_) => Self::Failed(text),
        }
    }
}

impl From<&Execution> for ExecutionView {
    fn from(e: &Execution) -> Self {
        Self {
            id: e.id.clone(),
            workflow: e.workflow.clone(),
            name: e.name.clone(),
            version: e.version,
            status: e.status,
            state: e.state.clone(),
            input: e.input.clone(),
            output: e.output.clone(),
            error: e.error.clone(),
            cause: e.cause.clone(),
            redrive_count: e.redrive_count,
            started_at: show_time(e.started_at),
            stopped_at: e.stopped_at.map(show_time),
        }
    }
}

impl From<&TaskToken> for TokenView {
    fn from(t: &TaskToken) -> Self {
        Self {
            token: t.token.clone(),
            execution: t.execution_id.clone(),
            state: t.state.clone(),
            status: t.status,
            input: t.input.clone(),
            output: t.output.clone(),
            error: t.error.clone(),
            cause: t.cause.clone(),
            issued_at: show_time(t.created_at),
            heartbeat_at: show_time(t.heartbeat_at),
            runs_out_at: t.due_at.map(show_time),
            answered_at: t.answered_at.map(show_time),
        }
    }
}

impl Workflows {
    pub fn new(engine: Engine, dispatch: Arc<dyn Dispatch>) -> Self {
        Self { engine, dispatch }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The queue steps go to.
    pub fn dispatch(&self) -> &dyn Dispatch {
        self.dispatch.as_ref()
    }

    fn pool(&self) -> &sqlx::AnyPool {
        &self.engine.pool
    }

    async fn push(&self, next: Option<&super::engine::Next>) -> Result<()> {
        if let Some(next) = next {
            self.dispatch.push(next).await?;
        }
        Ok(())
    }

    /// Validates a definition that this process can run.
    pub fn validate(&self, definition: &Value) -> Result<Validated> {
        let machine = self.engine.runnable(definition)?;
        Ok(Validated {
            valid: true,
            start_at: machine.start_at,
            states: machine.states.len(),
        })
    }

    /// Stores a definition as the workflow's next version (its first when it is new).
    pub async fn put_workflow(&self, name: &str, definition: &Value) -> Result<WorkflowVersion> {
        if name.is_empty() {
            return Err(Error::invalid("name", "a workflow needs a name"));
        }
        self.engine.runnable(definition)?;
        let version = store::put_workflow(self.pool(), name, definition).await?;
        Ok(WorkflowVersion {
            workflow: name.to_owned(),
            version,
        })
    }

    /// Every workflow with its latest version, by name.
    pub async fn workflows(&self) -> Result<Vec<WorkflowSummary>> {
        Ok(store::workflows(self.pool())
            .await?
            .into_iter()
            .map(|(name, version, updated_at)| WorkflowSummary {
                name,
                version,
                updated_at,
            })
            .collect())
    }

    /// Starts an execution of a workflow's latest version and queues its first step.
    pub async fn start(&self, workflow: &str, request: StartRequest) -> Result<Started> {
        let input = request.input.unwrap_or_else(empty_object);
        let (execution, first) = self.engine.start(workflow, input, request.name).await?;
        self.push(first.as_ref()).await?;
        Ok(Started {
            execution: ExecutionView::from(&execution),
            created: first.is_some(),
        })
    }

    /// Executions, newest first.
    pub async fn executions(&self, request: &ExecutionList) -> Result<Vec<ExecutionView>> {
        let limit = request.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(Error::invalid("limit", "1 to 1,000"));
        }
        let executions = store::executions(self.pool(), request.workflow.as_deref(), limit).await?;
        Ok(executions.iter().map(ExecutionView::from).collect())
    }

    /// An execution.
    pub async fn describe(&self, id: &str) -> Result<ExecutionView> {
        Ok(ExecutionView::from(
            &store::execution(self.pool(), id).await?,
        ))
    }

    /// An execution's history, in order.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>> {
        store::execution(self.pool(), id).await?;
        Ok(store::history(self.pool(), id)
            .await?
            .into_iter()
            .map(|e| HistoryEvent {
                id: e.seq + 1,
                kind: e.kind,
                state: e.state,
                details: e.details,
                timestamp: show_time(e.at),
                at_ms: e.at,
            })
            .collect())
    }

    /// Stops a running execution (`ABORTED`).
    pub async fn stop(&self, id: &str) -> Result<ExecutionView> {
        self.engine.stop(id).await?;
        self.describe(id).await
    }

    /// Redrives a failed execution from its failed state, with the workflow's latest version.
    pub async fn redrive(&self, id: &str) -> Result<ExecutionView> {
        let next = self.engine.redrive(id).await?;
        self.push(Some(&next)).await?;
        self.describe(id).await
    }

    /// Callback tasks waiting for their token, oldest first.
    pub async fn waiting_tasks(&self) -> Result<Vec<TokenView>> {
        Ok(store::waiting_tokens(self.pool(), 1000)
            .await?
            .iter()
            .map(TokenView::from)
            .collect())
    }

    async fn answer(&self, token: &str, answer: Answer) -> Result<Answered> {
        let next = self.engine.answer(token, answer).await?;
        self.push(next.as_ref()).await?;
        Ok(Answered {
            token: TokenView::from(&store::task_token(self.pool(), token).await?),
            resumed: next.is_some(),
        })
    }

    /// `SendTaskSuccess`: the callback task succeeds with `output`.
    pub async fn send_task_success(&self, request: &TaskSuccessRequest) -> Result<Answered> {
        let output: Value = serde_json::from_str(&request.output)
            .map_err(|e| Error::invalid("output", format!("not JSON text: {e}")))?;
        self.answer(&request.task_token, Answer::Success(output))
            .await
    }

    /// `SendTaskFailure`: the callback task fails with `error` and `cause`.
    pub async fn send_task_failure(&self, request: &TaskFailureRequest) -> Result<Answered> {
        let failure = asl::Failure::new(
            request.error.as_deref().unwrap_or("States.TaskFailed"),
            request.cause.clone().unwrap_or_default(),
        );
        self.answer(&request.task_token, Answer::Failure(failure))
            .await
    }

    /// `SendTaskHeartbeat`: the task's `HeartbeatSeconds` start again.
    pub async fn send_task_heartbeat(&self, request: &TaskHeartbeatRequest) -> Result<TokenView> {
        Ok(TokenView::from(
            &self.engine.heartbeat(&request.task_token).await?,
        ))
    }

    /// Creates a schedule; its first tick is the first after now.
    pub async fn create_schedule(&self, request: &ScheduleRequest) -> Result<ScheduleView> {
        if request.window_seconds < 0 {
            return Err(Error::invalid("window_seconds", "not negative"));
        }
        let schedule = Schedule {
            name: request.name.clone(),
            cron: request.cron.clone(),
            timezone: request.timezone.clone(),
            workflow: request.workflow.clone(),
            input: request.input.clone(),
            catchup: request.catchup.clone(),
            window_seconds: request.window_seconds,
            overlap: request.overlap.clone(),
            paused: false,
            last_tick: 0,
        };
        let now = Utc::now();
        schedules::create(self.pool(), &schedule, now).await?;
        Ok(Schedule {
            last_tick: now.timestamp_millis(),
            ..schedule
        })
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleView>> {
        Ok(schedules::list(self.pool()).await?)
    }

    /// Pauses or resumes a schedule; a resumed schedule's missed ticks follow its catch-up.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<()> {
        Ok(schedules::set_paused(self.pool(), name, paused).await?)
    }

    /// Deletes a schedule; its executions stay.
    pub async fn delete_schedule(&self, name: &str) -> Result<()> {
        Ok(schedules::delete(self.pool(), name).await?)
    }

    /// Starts an execution for each tick of a schedule in `[from, to]` not yet fired; returns
    /// their ids.
    pub async fn backfill(
        &self,
        name: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        if to < from {
            return Err(Error::invalid("to", "before from"));
        }
        Ok(schedules::backfill(&self.engine, self.dispatch(), name, from, to).await?)
    }

    /// One pass of the cron loop at `now`: every due tick fired once.
    pub async fn fire_due(&self, now: DateTime<Utc>) -> Result<usize> {
        Ok(schedules::fire_due(&self.engine, self.dispatch(), now).await?)
    }
}

impl ExecutionView {
    /// Whether the execution has ended.
    pub fn ended(&self) -> bool {
        self.status != ExecutionStatus::Running
    }
}

impl TokenView {
    /// Whether the token still waits for an answer.
    pub fn waiting(&self) -> bool {
        self.status == TokenStatus::Waiting
    }
}
