//! Task tokens of callback tasks (`.waitForTaskToken`): issued by the step that runs the task,
//! answered once (`SendTaskSuccess`, `SendTaskFailure`) or timed out, their deadlines moved by
//! `SendTaskHeartbeat`.

use serde_json::Value;
use sqlx::{AnyPool, Row};

use super::{Error, json_of, now_ms};
use asl::Failure;

/// Where a token is (as stored and shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenStatus {
    Waiting,
    Succeeded,
    Failed,
    TimedOut,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::TimedOut => "TIMED_OUT",
        }
    }

    fn parse(text: &str) -> Result<Self, Error> {
        Ok(match text {
            "WAITING" => Self::Waiting,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "TIMED_OUT" => Self::TimedOut,
            other => {
                return Err(Error::Invalid(format!(
                    "stored task token status {other:?} is unknown"
                )));
            }
        })
    }
}

impl std::fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task token as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskToken {
    pub token: String,
    pub execution_id: String,
    pub step: i64,
    pub state: String,
    pub status: TokenStatus,
    /// The job's input, once it ran.
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub heartbeat_ms: Option<i64>,
    pub timeout_at: Option<i64>,
    pub heartbeat_at: i64,
    /// When the wait runs out (None: never).
    pub due_at: Option<i64>,
    pub created_at: i64,
    pub answered_at: Option<i64>,
}

impl TaskToken {
    /// The task's result once the token is answered or timed out (None while it waits).
    pub fn answer(&self) -> Option<Result<Value, Failure>> {
        let failure = || {
            Failure::new(
                self.error.clone().unwrap_or_default(),
                self.cause.clone().unwrap_or_default(),
            )
        };
        match self.status {
            TokenStatus::Waiting => None,
            TokenStatus::Succeeded => Some(Ok(self.output.clone().unwrap_or(Value::Null))),
            TokenStatus::Failed | TokenStatus::TimedOut => Some(Err(failure())),
        }
    }

    /// The failure of a wait that ran out at `now`: past TimeoutSeconds, or past
    /// HeartbeatSeconds since the last heartbeat.
    pub fn lapse(&self, now: i64) -> Failure {
        match (self.timeout_at, self.heartbeat_ms) {
            (Some(timeout_at), _) if timeout_at <= now => Failure::new(
                "States.Timeout",
                format!(
                    "the task's token was not answered within its TimeoutSeconds ({} s)",
                    (timeout_at - self.created_at) as f64 / 1000.0
                ),
            ),
            (_, Some(every)) => Failure::new(
                "States.HeartbeatTimeout",
                format!(
                    "no heartbeat (SendTaskHeartbeat) or answer for the task's token within its HeartbeatSeconds ({} s)",
                    every as f64 / 1000.0
                ),
            ),
            _ => Failure::new("States.Timeout", "the task's token ran out of time"),
        }
    }
}

/// A task token as the CLI and the API show it.
/// The earlier of two optional times.
pub fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The token query, then its WHERE clause.
macro_rules! select_tokens {
    ($rest:literal) => {
        concat!(
            "SELECT token, execution_id, step, state, status, input, output, error, cause, heartbeat_ms, ",
            "timeout_at, heartbeat_at, due_at, created_at, answered_at FROM task_tokens ",
            $rest
        )
    };
}

fn token_of(row: &sqlx::any::AnyRow) -> Result<TaskToken, Error> {
    let json = |column: &str| -> Result<Option<Value>, Error> {
        Ok(row
            .try_get::<Option<String>, _>(column)?
            .map(|t| json_of(&t)))
    };
    Ok(TaskToken {
        token: row.try_get("token")?,
        execution_id: row.try_get("execution_id")?,
        step: row.try_get("step")?,
        state: row.try_get("state")?,
        status: TokenStatus::parse(&row.try_get::<String, _>("status")?)?,
        input: json("input")?,
        output: json("output")?,
        error: row.try_get("error")?,
        cause: row.try_get("cause")?,
        heartbeat_ms: row.try_get("heartbeat_ms")?,
        timeout_at: row.try_get("timeout_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        due_at: row.try_get("due_at")?,
        created_at: row.try_get("created_at")?,
        answered_at: row.try_get("answered_at")?,
    })
}

/// The token of step `step` of an execution, issued now if the step has none (a step run again
/// after its worker died gives its job the same token).
pub async fn issue_token(
    pool: &AnyPool,
    execution_id: &str,
    step: i64,
    state: &str,
    timeout_ms: Option<i64>,
    heartbeat_ms: Option<i64>,
) -> Result<String, Error> {
    let now = now_ms();
    let timeout_at = timeout_ms.map(|ms| now + ms);
    let due_at = earliest(timeout_at, heartbeat_ms.map(|ms| now + ms));
    // 256 random bits: a token is a bearer credential for answering the task.
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    sqlx::query(
        "INSERT INTO task_tokens (token, execution_id, step, state, status, heartbeat_ms, timeout_at, heartbeat_at, due_at, created_at) \
         VALUES ($1, $2, $3, $4, 'WAITING', $5, $6, $7, $8, $7) ON CONFLICT (execution_id, step) DO NOTHING",
    )
    .bind(&token)
    .bind(execution_id)
    .bind(step)
    .bind(state)
    .bind(heartbeat_ms)
    .bind(timeout_at)
    .bind(now)
    .bind(due_at)
    .execute(pool)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT token FROM task_tokens WHERE execution_id = $1 AND step = $2")
            .bind(execution_id)
            .bind(step)
            .fetch_one(pool)
            .await?,
    )
}

/// A token by its text.
pub async fn task_token(pool: &AnyPool, token: &str) -> Result<TaskToken, Error> {
    let row = sqlx::query(select_tokens!("WHERE token = $1"))
        .bind(token)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "task token",
            id: shown(token),
        })?;
    token_of(&row)
}

/// Tokens waiting for an answer whose job has run (the task's wait is committed), oldest first.
pub async fn waiting_tokens(pool: &AnyPool, limit: i64) -> Result<Vec<TaskToken>, Error> {
    let rows = sqlx::query(select_tokens!(
        "WHERE status = 'WAITING' AND input IS NOT NULL ORDER BY created_at, token LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(token_of).collect()
}

/// A token as errors show it: enough to tell it apart, not enough to answer it.
fn shown(token: &str) -> String {
    let head: String = token.chars().take(8).collect();
    if head.len() < token.len() {
        format!("{head}…")
    } else {
        head
    }
}

/// How a token is answered.
pub enum Answer {
    Success(Value),
    Failure(Failure),
}

/// Answers a waiting token of a running execution, once. A token answered before, timed out,
/// or of an execution that no longer runs is refused ([`Error::TokenClosed`]).
pub async fn answer_token(
    pool: &AnyPool,
    token: &str,
    answer: &Answer,
) -> Result<TaskToken, Error> {
    let now = now_ms();
    let (status, output, error, cause) = match answer {
        Answer::Success(output) => (TokenStatus::Succeeded, Some(output.to_string()), None, None),
        Answer::Failure(failure) => (
            TokenStatus::Failed,
            None,
            Some(failure.error.as_str()),
            Some(failure.cause.as_str()),
        ),
    };
    let answered = sqlx::query(
        "UPDATE task_tokens SET status = $1, output = $2, error = $3, cause = $4, answered_at = $5, due_at = NULL \
         WHERE token = $6 AND status = 'WAITING' AND (due_at IS NULL OR due_at > $5) \
         AND EXISTS (SELECT 1 FROM executions e WHERE e.id = task_tokens.execution_id AND e.status = 'RUNNING')",
    )
    .bind(status.as_str())
    .bind(output)
    .bind(error)
    .bind(cause)
    .bind(now)
    .bind(token)
    .execute(pool)
    .await?
    .rows_affected()
        == 1;
    let stored = task_token(pool, token).await?;
    if !answered {
        return Err(closed(pool, &stored).await?);
    }
    Ok(stored)
}

/// Why a token cannot be answered or beaten for.
async fn closed(pool: &AnyPool, token: &TaskToken) -> Result<Error, Error> {
    let execution = super::execution(pool, &token.execution_id).await?;
    let status = match token.status {
        TokenStatus::Waiting if token.due_at.is_some_and(|due| due <= now_ms()) => {
            TokenStatus::TimedOut.to_string()
        }
        TokenStatus::Waiting => format!(
            "of execution {} which is {}",
            execution.id, execution.status
        ),
        other => other.to_string(),
    };
    Ok(Error::TokenClosed {
        token: shown(&token.token),
        status,
    })
}

/// Records a heartbeat for a waiting token: its heartbeat deadline starts again.
pub async fn heartbeat_token(pool: &AnyPool, token: &str) -> Result<TaskToken, Error> {
    let stored = task_token(pool, token).await?;
    let now = now_ms();
    let due_at = earliest(stored.timeout_at, stored.heartbeat_ms.map(|ms| now + ms));
    let beaten = sqlx::query(
        "UPDATE task_tokens SET heartbeat_at = $1, due_at = $2 WHERE token = $3 AND status = 'WAITING' \
         AND (due_at IS NULL OR due_at > $1) AND EXISTS (SELECT 1 FROM executions e WHERE e.id = task_tokens.execution_id AND e.status = 'RUNNING')",
    )
    .bind(now)
    .bind(due_at)
    .bind(token)
    .execute(pool)
    .await?
    .rows_affected()
        == 1;
    if !beaten {
        return Err(closed(pool, &stored).await?);
    }
    task_token(pool, token).await
}

/// Times out a waiting token with `failure`; false when it was answered first.
pub async fn time_out_token(pool: &AnyPool, token: &str, failure: &Failure) -> Result<bool, Error> {
    Ok(sqlx::query(
        "UPDATE task_tokens SET status = 'TIMED_OUT', error = $1, cause = $2, answered_at = $3, due_at = NULL \
         WHERE token = $4 AND status = 'WAITING'",
    )
    .bind(&failure.error)
    .bind(&failure.cause)
    .bind(now_ms())
    .bind(token)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}
