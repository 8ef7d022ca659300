//! The workflow operations' requests (`Deserialize`, unknown fields refused, their defaults
//! here) and views (`Serialize`: what the API returns and the CLI prints as JSON), and the one
//! mapping of the engine's error into [`crate::Error`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Error as FlowError;
use super::schedules::Schedule;
use super::store::{self, Execution, ExecutionStatus, TaskToken, TokenStatus, show_time};
use crate::{Error, Missing};

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

/// One stored version of a workflow, with its definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowDefinition {
    pub workflow: String,
    pub version: i64,
    pub definition: Value,
}

/// A workflow's version as its history lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionEntry {
    pub version: i64,
    pub stored_at: String,
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

/// Which executions to list: newest first, at most `limit` (1 to 1,000; 100 by default), of one
/// workflow or all, in one status or any, started in `[started_from, started_before)` (each
/// RFC 3339 or a UTC date, `2026-12-05`); `after` is the `next` of the page before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionList {
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub started_from: Option<String>,
    #[serde(default)]
    pub started_before: Option<String>,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
    /// The children of this execution (its Parallel branches and Map iterations); without it,
    /// top-level executions only.
    #[serde(default)]
    pub parent: Option<String>,
}

/// A page of executions, and the cursor of the next (`None`: this is the last).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionPage {
    pub executions: Vec<ExecutionView>,
    pub next: Option<String>,
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
    /// A child's parent execution, its run and its place in it (a Parallel's branch or a Map's
    /// item).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_run: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<i64>,
    /// The runs of children its Parallel and Map states started (describe only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub map_runs: Vec<store::MapRunView>,
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
pub(super) fn empty_object() -> Value {
    Value::Object(Default::default())
}
fn skip() -> String {
    "skip".to_owned()
}
fn one_day() -> i64 {
    86_400
}

/// A schedule with its next ticks (in UTC and in its time zone) and its latest ticks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleDetail {
    pub schedule: Schedule,
    pub next: Vec<NextTick>,
    pub recent: Vec<TickView>,
}

/// A tick to come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextTick {
    pub at: String,
    /// The same instant in the schedule's time zone (`2026-12-06 02:00 CET`).
    pub local: String,
}

/// A tick handled: what became of it (`started`, `skipped`, ...) and its execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TickView {
    pub tick: String,
    pub outcome: String,
    pub execution: Option<String>,
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
            parent: e.parent_id.clone(),
            map_run: e.map_run_id.clone(),
            index: e.child_index,
            map_runs: Vec::new(),
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
