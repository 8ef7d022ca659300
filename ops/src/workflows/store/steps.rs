//! What a step commits: the execution's new position with its history events, in one
//! transaction guarded by the step number, with the children it starts or the parent it wakes;
//! and stopping and redriving an execution with its children.

use serde_json::{Map, Value};
use sqlx::AnyPool;

use super::events::{append_events, event_times};
use super::fanout::{self, RunStart, Wake};
use super::{Error, Execution, now_ms};
use asl::Failure;
use asl::run::Event;

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
