//! The orchestrator's tables: workflows with their versions, executions and their history.
//! Queries go through the catalog's pool, the same on SQLite and Postgres.

use serde_json::{Map, Value};
use sqlx::{AnyPool, Row};

use super::Error;
use asl::Failure;
use asl::run::Event;

mod events;
mod fanout;
mod tokens;
use events::{append_events, append_execution_event, event_times};
pub use events::{event_count, history};
pub use fanout::{MapRunView, RunStart, Wake, map_runs, root_context, run_children, run_status};
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

/// How a step moves an execution.
pub enum StepUpdate<'a> {
    /// On to `state` with `input`.
    Advance {
        state: String,
        input: Value,
        variables: Map<String, Value>,
    },
    Succeed {
        output: Value,
        variables: Map<String, Value>,
    },
    /// The execution fails in its current state (kept, for redrive).
    Fail {
        failure: Failure,
        variables: Map<String, Value>,
    },
    /// The current state is retried at `due_at` (ms) with its retriers' attempts so far.
    Retry { attempts: Vec<u32>, due_at: i64 },
    /// The current state, a callback task whose job ran on `input`, waits for `token`.
    Wait {
        token: String,
        input: Value,
        attempts: Vec<u32>,
    },
    /// The current state, a Parallel or Map, waits for its children, started here.
    Fanout {
        run: RunStart<'a>,
        fanout: asl::run::Fanout,
    },
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

/// Commits one step of the state entered at `began` (ms): its events and the execution's new
/// position, in one transaction, only if the execution is still running at `step` (a duplicate
/// delivery commits nothing: None). The children it starts or the parent it wakes are in the
/// same transaction; their steps are returned, to enqueue.
pub async fn commit_step(
    pool: &AnyPool,
    execution: &Execution,
    step: i64,
    began: i64,
    events: &[Event],
    update: StepUpdate<'_>,
) -> Result<Option<Wake>, Error> {
    let id = execution.id.as_str();
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let mut wake = Wake::new();
    // Runs are locked before executions, in every transaction that touches both (a child's
    // end, a parent leaving its run, a stop), so that concurrent ones cannot deadlock.
    let ends = matches!(update, StepUpdate::Succeed { .. } | StepUpdate::Fail { .. });
    for run in [
        execution.map_run_id.as_ref().filter(|_| ends),
        execution
            .waiting_run
            .as_ref()
            .filter(|_| !matches!(update, StepUpdate::Fanout { .. })),
    ]
    .into_iter()
    .flatten()
    {
        fanout::lock_run(&mut tx, run).await?;
    }
    let result = match &update {
        StepUpdate::Retry { attempts, due_at } => sqlx::query(
            "UPDATE executions SET retry_attempts = $1, entered_at = $2, step = step + 1, updated_at = $3, \
             callback_token = NULL, waiting_run = NULL WHERE id = $4 AND step = $5 AND status = 'RUNNING'",
        )
        .bind(serde_json::to_string(attempts).expect("numbers serialize"))
        .bind(*due_at)
        .bind(now)
        .bind(id)
        .bind(step)
        .execute(&mut *tx)
        .await?,
        StepUpdate::Advance { state, input, variables } => sqlx::query(
            "UPDATE executions SET state = $1, state_input = $2, variables = $3, entered_at = $4, step = step + 1, updated_at = $4, \
             retry_attempts = NULL, callback_token = NULL, waiting_run = NULL \
             WHERE id = $5 AND step = $6 AND status = 'RUNNING'",
        )
        .bind(state)
        .bind(input.to_string())
        .bind(Value::Object(variables.clone()).to_string())
        .bind(now)
        .bind(id)
        .bind(step)
        .execute(&mut *tx)
        .await?,
        StepUpdate::Succeed { output, variables } => sqlx::query(
            "UPDATE executions SET status = 'SUCCEEDED', output = $1, variables = $2, stopped_at = $3, step = step + 1, updated_at = $3, \
             callback_token = NULL, waiting_run = NULL WHERE id = $4 AND step = $5 AND status = 'RUNNING'",
        )
        .bind(output.to_string())
        .bind(Value::Object(variables.clone()).to_string())
        .bind(now)
        .bind(id)
        .bind(step)
        .execute(&mut *tx)
        .await?,
        StepUpdate::Fail { failure, variables } => sqlx::query(
            "UPDATE executions SET status = 'FAILED', error = $1, cause = $2, variables = $3, stopped_at = $4, step = step + 1, \
             updated_at = $4, callback_token = NULL WHERE id = $5 AND step = $6 AND status = 'RUNNING'",
        )
        .bind(&failure.error)
        .bind(&failure.cause)
        .bind(Value::Object(variables.clone()).to_string())
        .bind(now)
        .bind(id)
        .bind(step)
        .execute(&mut *tx)
        .await?,
        StepUpdate::Wait {
            token,
            input,
            attempts,
        } => {
            sqlx::query("UPDATE task_tokens SET input = $1 WHERE token = $2")
                .bind(input.to_string())
                .bind(token)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE executions SET callback_token = $1, retry_attempts = $2, entered_at = $3, step = step + 1, \
                 updated_at = $3 WHERE id = $4 AND step = $5 AND status = 'RUNNING'",
            )
            .bind(token)
            .bind(serde_json::to_string(attempts).expect("numbers serialize"))
            .bind(now)
            .bind(id)
            .bind(step)
            .execute(&mut *tx)
            .await?
        }
        StepUpdate::Fanout { run, fanout } => {
            let moved = sqlx::query(
                "UPDATE executions SET retry_attempts = $1, step = step + 1, updated_at = $2, callback_token = NULL \
                 WHERE id = $3 AND step = $4 AND status = 'RUNNING'",
            )
            .bind(serde_json::to_string(&fanout.attempts).expect("numbers serialize"))
            .bind(now)
            .bind(id)
            .bind(step)
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 1 {
                let (run_id, started) = fanout::start_run(&mut tx, run, fanout).await?;
                sqlx::query("UPDATE executions SET waiting_run = $1 WHERE id = $2")
                    .bind(&run_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                wake.extend(started);
            }
            moved
        }
    };
    if result.rows_affected() != 1 {
        return Ok(None);
    }
    // A state that leaves its run before the run ended (the execution's timeout) stops it.
    if let Some(run) = &execution.waiting_run
        && !matches!(update, StepUpdate::Fanout { .. })
    {
        fanout::end_run(&mut tx, run, "ABORTED").await?;
    }
    // A child's end counts in its run, in this transaction.
    if let Some(run) = &execution.map_run_id {
        match &update {
            StepUpdate::Succeed { .. } => {
                wake.extend(fanout::child_ended(&mut tx, run, true).await?)
            }
            StepUpdate::Fail { .. } => wake.extend(fanout::child_ended(&mut tx, run, false).await?),
            _ => {}
        }
    }
    append_events(&mut tx, id, events, &event_times(events, began, now)).await?;
    tx.commit().await?;
    Ok(Some(wake))
}

/// Stops a running execution (ABORTED), and the children it runs; false when it was not running.
pub async fn abort(pool: &AnyPool, id: &str) -> Result<bool, Error> {
    let mut tx = pool.begin().await?;
    if let Some(run) =
        sqlx::query_scalar::<_, Option<String>>("SELECT waiting_run FROM executions WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .flatten()
    {
        fanout::lock_run(&mut tx, &run).await?;
    }
    let running: bool = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM executions WHERE id = $1 AND status = 'RUNNING'",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?
        == 1;
    if running {
        fanout::abort_tree(&mut tx, vec![id.to_owned()]).await?;
    }
    tx.commit().await?;
    Ok(running)
}

/// Redrives a failed execution from the state it failed in, with the workflow's latest version:
/// the steps to enqueue (its own, or those of the children of a Parallel or Map it failed in
/// that did not succeed), or None when it had not failed.
pub async fn redrive(pool: &AnyPool, id: &str, version: i64) -> Result<Option<Wake>, Error> {
    let mut tx = pool.begin().await?;
    let failed: bool = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM executions WHERE id = $1 AND status = 'FAILED'",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?
        == 1;
    if !failed {
        return Ok(None);
    }
    let wake = fanout::redrive_tree(&mut tx, id, Some(version)).await?;
    tx.commit().await?;
    Ok(Some(wake))
}

/// How long an answered callback, or a wait past its deadline, may go without the step that
/// follows before the sweep enqueues it again (the push after an answer or a commit was lost).
const CALLBACK_GRACE_MS: i64 = 10_000;

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
