//! Map runs: a Parallel's branches, a Map's iterations or a distributed Map's child executions,
//! each an execution of its own (migration 0018). Every change happens inside the transaction
//! of the step that causes it: the parent's step that fans out records the run and starts the
//! first children; the step that ends a child counts it, starts the next one (so that at most
//! `max_concurrency` run at once, whichever workers run them) and, when its end decides the
//! run, ends it and names the parent's step to enqueue. Each function returns the steps to
//! enqueue as (execution, step).

use serde_json::{Map, Value, json};
use sqlx::Row;

use super::events::append_execution_event;
use super::{Error, Execution, json_of, now_ms};
use asl::run::{Fanout, tolerated};

type Tx<'a, 'b> = &'a mut sqlx::Transaction<'b, sqlx::Any>;

/// Steps to enqueue: (execution, step).
pub type Wake = Vec<(String, i64)>;

/// A run's place: its parent's, and where the children's machines are.
pub struct RunStart<'a> {
    pub parent: &'a Execution,
    /// The parent's step that fans out.
    pub step: i64,
    pub state: &'a str,
    /// Each branch's `StartAt` (one entry for a Map's item processor).
    pub starts: Vec<String>,
    pub variables: &'a Map<String, Value>,
}

/// What `$$.Execution` shows inside a child: its root execution's.
fn root_context(execution: &Execution) -> Value {
    execution.context.clone().unwrap_or_else(|| {
        json!({"input": execution.input, "started_at": execution.started_at, "name": execution.name})
    })
}

/// Takes the run's row lock (a no-op write: the same on SQLite and Postgres).
pub(super) async fn lock_run(tx: Tx<'_, '_>, run: &str) -> Result<(), Error> {
    sqlx::query("UPDATE map_runs SET updated_at = updated_at WHERE id = $1")
        .bind(run)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records a fan-out's run and its children, and starts the first of them. Returns the run's
/// id and the children's first steps.
pub(super) async fn start_run(
    tx: Tx<'_, '_>,
    start: &RunStart<'_>,
    fanout: &Fanout,
) -> Result<(String, Wake), Error> {
    let now = now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let total = fanout.children.len() as i64;
    sqlx::query(
        "INSERT INTO map_runs (id, execution_id, step, state, kind, status, total, max_concurrency, \
         tolerated_count, tolerated_percentage, pending, running, succeeded, failed, starts, variables, \
         context, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'RUNNING', $6, $7, $8, $9, $6, 0, 0, 0, $10, $11, $12, $13, $13)",
    )
    .bind(&id)
    .bind(&start.parent.id)
    .bind(start.step)
    .bind(start.state)
    .bind(fanout.kind.as_str())
    .bind(total)
    .bind(fanout.max_concurrency as i64)
    .bind(fanout.tolerated_count.map(|c| c as i64))
    .bind(fanout.tolerated_percentage)
    .bind(Value::from(start.starts.clone()).to_string())
    .bind(Value::Object(start.variables.clone()).to_string())
    .bind(root_context(start.parent).to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    // Multi-row inserts, within the databases' limits on bound values.
    for (chunk_at, chunk) in fanout.children.chunks(500).enumerate() {
        let mut sql = String::from(
            "INSERT INTO map_items (run_id, idx, branch, input, map_item, status) VALUES ",
        );
        for i in 0..chunk.len() {
            let n = i * 5;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, 'PENDING')",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5
            ));
        }
        // Audited: numbered placeholders only; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, child) in chunk.iter().enumerate() {
            query = query
                .bind(&id)
                .bind((chunk_at * 500 + i) as i64)
                .bind(child.branch as i64)
                .bind(child.input.to_string())
                .bind(
                    child
                        .map_item
                        .as_ref()
                        .map(|(index, value)| json!({"Index": index, "Value": value}).to_string()),
                );
        }
        query.execute(&mut **tx).await?;
    }
    let mut wake = Wake::new();
    let first = match fanout.max_concurrency {
        0 => total,
        limit => total.min(limit as i64),
    };
    for _ in 0..first {
        wake.extend(start_next(tx, &id).await?);
    }
    if total == 0 {
        // Nothing to run: the run is over, and the parent goes on at once.
        sqlx::query("UPDATE map_runs SET status = 'SUCCEEDED' WHERE id = $1")
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        wake.push((start.parent.id.clone(), start.step + 1));
    }
    Ok((id, wake))
}

/// Starts the run's next pending child, in item order: a new execution, or one that ran
/// before, redriven (after a redrive of the parent). Returns its step (none when nothing is
/// pending).
async fn start_next(tx: Tx<'_, '_>, run: &str) -> Result<Wake, Error> {
    let Some(item) = sqlx::query(
        "SELECT idx, branch, input, map_item, execution_id FROM map_items \
         WHERE run_id = $1 AND status = 'PENDING' ORDER BY idx LIMIT 1",
    )
    .bind(run)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(Wake::new());
    };
    let idx: i64 = item.try_get("idx")?;
    let now = now_ms();
    sqlx::query(
        "UPDATE map_runs SET pending = pending - 1, running = running + 1, updated_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(run)
    .execute(&mut **tx)
    .await?;
    if let Some(child) = item.try_get::<Option<String>, _>("execution_id")? {
        sqlx::query("UPDATE map_items SET status = 'STARTED' WHERE run_id = $1 AND idx = $2")
            .bind(run)
            .bind(idx)
            .execute(&mut **tx)
            .await?;
        return redrive_tree(tx, &child, None).await;
    }
    let parent = sqlx::query(
        "SELECT r.execution_id, r.state, r.starts, r.variables, r.context, e.workflow, e.version, e.machine_path \
         FROM map_runs r JOIN executions e ON e.id = r.execution_id WHERE r.id = $1",
    )
    .bind(run)
    .fetch_one(&mut **tx)
    .await?;
    let branch: i64 = item.try_get("branch")?;
    let starts: Vec<String> =
        serde_json::from_str(&parent.try_get::<String, _>("starts")?).unwrap_or_default();
    let start_at = starts
        .get(branch as usize)
        .cloned()
        .ok_or_else(|| Error::Invalid(format!("map run {run} has no branch {branch}")))?;
    let mut path: Vec<(String, usize)> = parent
        .try_get::<Option<String>, _>("machine_path")?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    path.push((parent.try_get("state")?, branch as usize));
    let id = uuid::Uuid::new_v4().to_string();
    let input: String = item.try_get("input")?;
    sqlx::query(
        "INSERT INTO executions (id, workflow, name, version, status, input, state, state_input, variables, entered_at, \
         step, started_at, updated_at, parent_id, map_run_id, child_index, machine_path, map_item, context) \
         VALUES ($1, $2, $3, $4, 'RUNNING', $5, $6, $5, $7, $8, 0, $8, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&id)
    .bind(parent.try_get::<String, _>("workflow")?)
    .bind(format!("{run}:{idx}"))
    .bind(parent.try_get::<i64, _>("version")?)
    .bind(&input)
    .bind(&start_at)
    .bind(parent.try_get::<String, _>("variables")?)
    .bind(now)
    .bind(parent.try_get::<String, _>("execution_id")?)
    .bind(run)
    .bind(idx)
    .bind(serde_json::to_string(&path).expect("names and numbers serialize"))
    .bind(item.try_get::<Option<String>, _>("map_item")?)
    .bind(parent.try_get::<String, _>("context")?)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE map_items SET status = 'STARTED', execution_id = $1 WHERE run_id = $2 AND idx = $3",
    )
    .bind(&id)
    .bind(run)
    .bind(idx)
    .execute(&mut **tx)
    .await?;
    append_execution_event(
        tx,
        &id,
        "ExecutionStarted",
        json!({"input": json_of(&input), "parent": parent.try_get::<String, _>("execution_id")?, "mapRun": run, "index": idx}),
        now,
    )
    .await?;
    Ok(vec![(id, 0)])
}

/// A child's end, in the transaction of the step that ends it: counted; then the next pending
/// child starts, or, when this end decides the run (the last child, or a failure past what the
/// state tolerates, which stops the children still running), the run ends and its parent's
/// step is returned.
pub(super) async fn child_ended(tx: Tx<'_, '_>, run: &str, succeeded: bool) -> Result<Wake, Error> {
    let now = now_ms();
    // The row lock this takes orders the children's ends across workers.
    let Some(counts) = sqlx::query(
        "UPDATE map_runs SET running = running - 1, succeeded = succeeded + $1, failed = failed + $2, updated_at = $3 \
         WHERE id = $4 AND status = 'RUNNING' \
         RETURNING execution_id, total, max_concurrency, tolerated_count, tolerated_percentage, pending, running, failed",
    )
    .bind(i64::from(succeeded))
    .bind(i64::from(!succeeded))
    .bind(now)
    .bind(run)
    .fetch_optional(&mut **tx)
    .await?
    else {
        // The run ended already (a failure stopped it, or its parent was stopped).
        return Ok(Wake::new());
    };
    let parent: String = counts.try_get("execution_id")?;
    let total: i64 = counts.try_get("total")?;
    let limit: i64 = counts.try_get("max_concurrency")?;
    let pending: i64 = counts.try_get("pending")?;
    let running: i64 = counts.try_get("running")?;
    let failed: i64 = counts.try_get("failed")?;
    let count: Option<i64> = counts.try_get("tolerated_count")?;
    let percentage: Option<f64> = counts.try_get("tolerated_percentage")?;
    if !tolerated(
        failed as u64,
        total as u64,
        count.map(|c| c as u64),
        percentage,
    ) {
        end_run(tx, run, "FAILED").await?;
        return wake_parent(tx, &parent, run).await;
    }
    if pending > 0 && (limit == 0 || running < limit) {
        return start_next(tx, run).await;
    }
    if pending == 0 && running == 0 {
        end_run(tx, run, "SUCCEEDED").await?;
        return wake_parent(tx, &parent, run).await;
    }
    Ok(Wake::new())
}

/// Ends a run: its status, and its running children (with theirs) stopped.
pub(super) async fn end_run(tx: Tx<'_, '_>, run: &str, status: &str) -> Result<(), Error> {
    sqlx::query(
        "UPDATE map_runs SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'RUNNING'",
    )
    .bind(status)
    .bind(now_ms())
    .bind(run)
    .execute(&mut **tx)
    .await?;
    let running: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM executions WHERE map_run_id = $1 AND status = 'RUNNING'",
    )
    .bind(run)
    .fetch_all(&mut **tx)
    .await?;
    abort_tree(tx, running).await
}

/// Stops executions and every child under them (ABORTED, with the event); the runs they wait
/// for end as ABORTED.
pub(super) async fn abort_tree(tx: Tx<'_, '_>, mut ids: Vec<String>) -> Result<(), Error> {
    while let Some(id) = ids.pop() {
        let now = now_ms();
        let stopped = sqlx::query(
            "UPDATE executions SET status = 'ABORTED', stopped_at = $1, step = step + 1, updated_at = $1 \
             WHERE id = $2 AND status = 'RUNNING'",
        )
        .bind(now)
        .bind(&id)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if !stopped {
            continue;
        }
        append_execution_event(tx, &id, "ExecutionAborted", json!({}), now).await?;
        let runs: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM map_runs WHERE execution_id = $1 AND status = 'RUNNING'",
        )
        .bind(&id)
        .fetch_all(&mut **tx)
        .await?;
        for run in runs {
            sqlx::query("UPDATE map_runs SET status = 'ABORTED', updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&run)
                .execute(&mut **tx)
                .await?;
            ids.extend(
                sqlx::query_scalar::<_, String>(
                    "SELECT id FROM executions WHERE map_run_id = $1 AND status = 'RUNNING'",
                )
                .bind(&run)
                .fetch_all(&mut **tx)
                .await?,
            );
        }
    }
    Ok(())
}

/// The parent's step that resumes the state, when it still waits for this run.
async fn wake_parent(tx: Tx<'_, '_>, parent: &str, run: &str) -> Result<Wake, Error> {
    let step: Option<i64> = sqlx::query_scalar(
        "SELECT step FROM executions WHERE id = $1 AND status = 'RUNNING' AND waiting_run = $2",
    )
    .bind(parent)
    .bind(run)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(step
        .map(|step| (parent.to_owned(), step))
        .into_iter()
        .collect())
}

/// Redrives an execution from the state it stopped in (FAILED, or for a child ABORTED too),
/// with `version` when given. When it stopped waiting for a run that did not succeed, the
/// run's children that did not succeed run again (the others keep their results) and the
/// execution waits for them; otherwise its step runs. Returns the steps to enqueue, or None
/// when it had not stopped.
pub(super) async fn redrive_tree(
    tx: Tx<'_, '_>,
    id: &str,
    version: Option<i64>,
) -> Result<Wake, Error> {
    let now = now_ms();
    let redriven = sqlx::query(
        "UPDATE executions SET status = 'RUNNING', version = COALESCE($1, version), error = NULL, cause = NULL, \
         stopped_at = NULL, redrive_count = redrive_count + 1, entered_at = $2, step = step + 1, updated_at = $2, \
         retry_attempts = NULL, callback_token = NULL \
         WHERE id = $3 AND (status = 'FAILED' OR (status = 'ABORTED' AND parent_id IS NOT NULL))",
    )
    .bind(version)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !redriven {
        return Ok(Wake::new());
    }
    let row = sqlx::query("SELECT step, version, waiting_run FROM executions WHERE id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    let step: i64 = row.try_get("step")?;
    let version: i64 = row.try_get("version")?;
    append_execution_event(
        tx,
        id,
        "ExecutionRedriven",
        json!({"version": version}),
        now,
    )
    .await?;
    let Some(run) = row.try_get::<Option<String>, _>("waiting_run")? else {
        return Ok(vec![(id.to_owned(), step)]);
    };
    let status: String = sqlx::query_scalar("SELECT status FROM map_runs WHERE id = $1")
        .bind(&run)
        .fetch_one(&mut **tx)
        .await?;
    if status == "SUCCEEDED" {
        // Every child ended within what the state tolerates: the state resumes with them.
        return Ok(vec![(id.to_owned(), step)]);
    }
    // The children that did not succeed start again, in order, as they would have.
    sqlx::query(
        "UPDATE executions SET version = $1 WHERE map_run_id = $2 AND status <> 'SUCCEEDED'",
    )
    .bind(version)
    .bind(&run)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE map_items SET status = 'PENDING' WHERE run_id = $1 AND (execution_id IS NULL OR execution_id IN \
         (SELECT id FROM executions WHERE map_run_id = $1 AND status <> 'SUCCEEDED'))",
    )
    .bind(&run)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query(
        "UPDATE map_runs SET status = 'RUNNING', running = 0, failed = 0, \
         pending = (SELECT COUNT(*) FROM map_items WHERE run_id = $1 AND status = 'PENDING'), \
         succeeded = (SELECT COUNT(*) FROM map_items WHERE run_id = $1 AND status = 'STARTED'), updated_at = $2 \
         WHERE id = $1 RETURNING pending, max_concurrency",
    )
    .bind(&run)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let pending: i64 = row.try_get("pending")?;
    let limit: i64 = row.try_get("max_concurrency")?;
    let mut wake = Wake::new();
    let first = if limit == 0 {
        pending
    } else {
        pending.min(limit)
    };
    for _ in 0..first {
        wake.extend(Box::pin(start_next(tx, &run)).await?);
    }
    Ok(wake)
}
