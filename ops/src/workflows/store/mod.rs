//! The orchestrator's tables: workflows with their versions, executions and their history.
//! Queries go through the catalog's pool, the same on SQLite and Postgres.

use serde_json::{Map, Value};
use sqlx::{AnyPool, Row};

use super::Error;
use asl::run::Event;

mod events;
mod fanout;
mod map_runs;
mod retention;
mod steps;
mod tokens;
use events::append_execution_event;
pub use events::{event_count, history};
pub use fanout::{RunStart, Wake};
pub use map_runs::{MapRunView, map_runs, run_children, run_status};
pub use retention::{HistoryExpired, expire};
pub use steps::{StepUpdate, abort, commit_step, redrive};
pub use tokens::{
    Answer, TaskToken, TokenStatus, answer_token, earliest, heartbeat_token, issue_token,
    task_token, time_out_token, waiting_tokens,
};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Where an execution is (Step Functions' names, as stored and shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    Aborted,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Aborted => "ABORTED",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        Ok(match text {
            "RUNNING" => Self::Running,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "ABORTED" => Self::Aborted,
            other => {
                return Err(Error::Invalid(format!(
                    "stored execution status {other:?} is unknown"
                )));
            }
        })
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An execution as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub id: String,
    pub workflow: String,
    pub name: String,
    pub version: i64,
    pub status: ExecutionStatus,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// The state the execution is at, or failed in.
    pub state: String,
    pub state_input: Value,
    pub variables: Map<String, Value>,
    pub entered_at: i64,
    pub step: i64,
    pub redrive_count: i64,
    pub started_at: i64,
    pub stopped_at: Option<i64>,
    /// A retry is pending (due at `entered_at`), or a callback waits: the state's retriers'
    /// attempts so far.
    pub retry_attempts: Option<Vec<u32>>,
    /// A callback task waits for this token.
    pub callback_token: Option<String>,
    /// A child (a Parallel's branch, a Map's iteration): its parent, its run and place in it.
    pub parent_id: Option<String>,
    pub map_run_id: Option<String>,
    pub child_index: Option<i64>,
    /// Where a child's machine is in the workflow's definition: (state, branch) from the top.
    pub machine_path: Vec<(String, usize)>,
    /// What `$$.Map.Item` shows in a Map's iteration.
    pub map_item: Option<(usize, Value)>,
    /// A child's root execution, as `$$.Execution` shows it (`input`, `started_at`, `name`).
    pub context: Option<Value>,
    /// The run of children the current state waits for (kept when it failed there).
    pub waiting_run: Option<String>,
}

/// One stored history event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub kind: String,
    pub state: Option<String>,
    pub details: Value,
    pub at: i64,
}

/// The execution query, then its WHERE clause.
macro_rules! select_executions {
    ($rest:literal) => {
        concat!(
            "SELECT id, workflow, name, version, status, input, output, error, cause, state, state_input, ",
            "variables, entered_at, step, redrive_count, started_at, stopped_at, retry_attempts, callback_token, ",
            "parent_id, map_run_id, child_index, machine_path, map_item, context, waiting_run FROM executions ",
            $rest
        )
    };
}

fn execution_of(row: &sqlx::any::AnyRow) -> Result<Execution, Error> {
    Ok(Execution {
        id: row.try_get("id")?,
        workflow: row.try_get("workflow")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        status: ExecutionStatus::parse(&row.try_get::<String, _>("status")?)?,
        input: json_of(&row.try_get::<String, _>("input")?),
        output: row
            .try_get::<Option<String>, _>("output")?
            .map(|t| json_of(&t)),
        error: row.try_get("error")?,
        cause: row.try_get("cause")?,
        state: row.try_get("state")?,
        state_input: json_of(&row.try_get::<String, _>("state_input")?),
        variables: match json_of(&row.try_get::<String, _>("variables")?) {
            Value::Object(map) => map,
            _ => Map::new(),
        },
        entered_at: row.try_get("entered_at")?,
        step: row.try_get("step")?,
        redrive_count: row.try_get("redrive_count")?,
        started_at: row.try_get("started_at")?,
        stopped_at: row.try_get("stopped_at")?,
        retry_attempts: row
            .try_get::<Option<String>, _>("retry_attempts")?
            .and_then(|text| serde_json::from_str(&text).ok()),
        callback_token: row.try_get("callback_token")?,
        parent_id: row.try_get("parent_id")?,
        map_run_id: row.try_get("map_run_id")?,
        child_index: row.try_get("child_index")?,
        machine_path: row
            .try_get::<Option<String>, _>("machine_path")?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
        map_item: row
            .try_get::<Option<String>, _>("map_item")?
            .map(|text| json_of(&text))
            .and_then(|item| Some((item["Index"].as_u64()? as usize, item["Value"].clone()))),
        context: row
            .try_get::<Option<String>, _>("context")?
            .map(|text| json_of(&text)),
        waiting_run: row.try_get("waiting_run")?,
    })
}

mod listing;
pub use listing::{ExecutionFilter, executions};

/// An execution as the CLI and the API show it.
pub(crate) fn show_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// Stores a workflow's definition as its next version; returns the version.
pub async fn put_workflow(pool: &AnyPool, name: &str, definition: &Value) -> Result<i64, Error> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    // Write first: on SQLite a transaction that reads and then writes cannot wait for another
    // writer (its snapshot is stale, SQLITE_BUSY at once); one that starts by writing waits
    // under busy_timeout.
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO workflows (name, version, created_at, updated_at) VALUES ($1, 1, $2, $2) \
         ON CONFLICT (name) DO UPDATE SET version = workflows.version + 1, updated_at = excluded.updated_at \
         RETURNING version",
    )
    .bind(name)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO workflow_versions (name, version, definition, created_at) VALUES ($1, $2, $3, $4)")
        .bind(name)
        .bind(version)
        .bind(definition.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(version)
}

/// A workflow's definition: the given version, or the latest.
pub async fn workflow(
    pool: &AnyPool,
    name: &str,
    version: Option<i64>,
) -> Result<(i64, Value), Error> {
    let row = sqlx::query(
        "SELECT v.version, v.definition FROM workflow_versions v JOIN workflows w ON w.name = v.name \
         WHERE v.name = $1 AND v.version = COALESCE($2, w.version)",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::NotFound { what: "workflow", id: name.to_owned() })?;
    Ok((
        row.try_get("version")?,
        json_of(&row.try_get::<String, _>("definition")?),
    ))
}

/// A workflow's versions, newest first: (version, stored at).
pub async fn workflow_versions(pool: &AnyPool, name: &str) -> Result<Vec<(i64, i64)>, Error> {
    let rows = sqlx::query(
        "SELECT version, created_at FROM workflow_versions WHERE name = $1 ORDER BY version DESC",
    )
    .bind(name)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Err(Error::NotFound {
            what: "workflow",
            id: name.to_owned(),
        });
    }
    rows.iter()
        .map(|r| Ok((r.try_get("version")?, r.try_get("created_at")?)))
        .collect()
}

/// Every workflow: (name, latest version, updated at).
pub async fn workflows(pool: &AnyPool) -> Result<Vec<(String, i64, i64)>, Error> {
    let rows = sqlx::query("SELECT name, version, updated_at FROM workflows ORDER BY name")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("name")?,
                r.try_get("version")?,
                r.try_get("updated_at")?,
            ))
        })
        .collect()
}

/// Records a new execution, with its ExecutionStarted event; an execution of the same name is
/// returned instead (starting twice is idempotent). The flag says whether this call created it.
pub async fn insert_execution(
    pool: &AnyPool,
    workflow: &str,
    version: i64,
    name: &str,
    input: &Value,
    start_at: &str,
) -> Result<(Execution, bool), Error> {
    let now = now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO executions (id, workflow, name, version, status, input, state, state_input, variables, entered_at, step, \
         started_at, updated_at) VALUES ($1, $2, $3, $4, 'RUNNING', $5, $6, $5, '{}', $7, 0, $7, $7) \
         ON CONFLICT (workflow, name) DO NOTHING",
    )
    .bind(&id)
    .bind(workflow)
    .bind(name)
    .bind(version)
    .bind(input.to_string())
    .bind(start_at)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        append_execution_event(
            &mut tx,
            &id,
            "ExecutionStarted",
            serde_json::json!({"input": input}),
            now,
        )
        .await?;
    }
    tx.commit().await?;
    let row = sqlx::query(select_executions!("WHERE workflow = $1 AND name = $2"))
        .bind(workflow)
        .bind(name)
        .fetch_one(pool)
        .await?;
    Ok((execution_of(&row)?, inserted))
}

/// An execution by id.
pub async fn execution(pool: &AnyPool, id: &str) -> Result<Execution, Error> {
    let row = sqlx::query(select_executions!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "execution",
            id: id.to_owned(),
        })?;
    execution_of(&row)
}

/// How long an answered callback, or a wait past its deadline, may go without the step that
/// follows before the sweep enqueues it again (the push after an answer or a commit was lost).
const CALLBACK_GRACE_MS: i64 = 10_000;

/// Marks a step as still running (its execution's `updated_at`, what [`stalled`] reads), so
/// that the stall sweep does not take a long task for a stalled one; false once the execution
/// has moved on or ended.
pub async fn still_running(pool: &AnyPool, id: &str, step: i64) -> Result<bool, Error> {
    Ok(sqlx::query(
        "UPDATE executions SET updated_at = $1 WHERE id = $2 AND step = $3 AND status = 'RUNNING'",
    )
    .bind(now_ms())
    .bind(id)
    .bind(step)
    .execute(pool)
    .await?
    .rows_affected()
        > 0)
}

/// Running executions whose position has not moved since `before_ms`: (id, step). One waiting
/// for a callback is not stalled while it waits; it is once its token was answered, or its
/// wait ran out, [`CALLBACK_GRACE_MS`] ago without a step. One waiting for its children is
/// not stalled while they run.
pub async fn stalled(pool: &AnyPool, before_ms: i64) -> Result<Vec<(String, i64)>, Error> {
    let rows = sqlx::query(
        "SELECT e.id, e.step FROM executions e LEFT JOIN task_tokens t ON t.token = e.callback_token \
         LEFT JOIN map_runs r ON r.id = e.waiting_run \
         WHERE e.status = 'RUNNING' AND ( \
           (t.token IS NULL AND e.updated_at < $1 AND (r.id IS NULL OR r.status <> 'RUNNING')) \
           OR (t.status = 'WAITING' AND t.due_at < $2) \
           OR (t.status <> 'WAITING' AND t.answered_at < $2)) \
         ORDER BY e.updated_at",
    )
    .bind(before_ms)
    .bind(now_ms() - CALLBACK_GRACE_MS)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("step")?)))
        .collect()
}
