//! Map runs read back: how a run's children ended (what the state resumes with), its status,
//! and the runs an execution started, as its view shows them.

use serde_json::Value;
use sqlx::Row;

use super::{Error, json_of};
use asl::run::{ChildResult, Fanned};

/// How a run's children ended, in their order.
pub async fn run_children(pool: &sqlx::AnyPool, run: &str) -> Result<Fanned, Error> {
    let rows = sqlx::query(
        "SELECT i.execution_id, i.input AS item_input, e.name, e.status, e.output, e.error, e.cause, \
         e.redrive_count, e.started_at, e.stopped_at FROM map_items i \
         LEFT JOIN executions e ON e.id = i.execution_id WHERE i.run_id = $1 ORDER BY i.idx",
    )
    .bind(run)
    .fetch_all(pool)
    .await?;
    let children = rows
        .iter()
        .map(|row| {
            let status: Option<String> = row.try_get("status")?;
            let result = match status.as_deref() {
                Some("SUCCEEDED") => Some(Ok(row
                    .try_get::<Option<String>, _>("output")?
                    .map_or(Value::Null, |t| json_of(&t)))),
                Some("FAILED") => Some(Err(asl::Failure::new(
                    row.try_get::<Option<String>, _>("error")?
                        .unwrap_or_default(),
                    row.try_get::<Option<String>, _>("cause")?
                        .unwrap_or_default(),
                ))),
                _ => None,
            };
            Ok(ChildResult {
                execution: row
                    .try_get::<Option<String>, _>("execution_id")?
                    .unwrap_or_default(),
                name: row
                    .try_get::<Option<String>, _>("name")?
                    .unwrap_or_default(),
                input: json_of(&row.try_get::<String, _>("item_input")?),
                result,
                redrive_count: row.try_get::<Option<i64>, _>("redrive_count")?.unwrap_or(0),
                started_at: row.try_get::<Option<i64>, _>("started_at")?.unwrap_or(0),
                stopped_at: row.try_get("stopped_at")?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Fanned {
        run: run.to_owned(),
        children,
    })
}

/// A run's status (RUNNING, SUCCEEDED, FAILED, ABORTED).
pub async fn run_status(pool: &sqlx::AnyPool, run: &str) -> Result<String, Error> {
    sqlx::query_scalar("SELECT status FROM map_runs WHERE id = $1")
        .bind(run)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "map run",
            id: run.to_owned(),
        })
}

/// A run's figures, as an execution's view shows them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MapRunView {
    pub id: String,
    pub state: String,
    pub kind: String,
    pub status: String,
    pub total: i64,
    pub max_concurrency: i64,
    pub pending: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
}

/// The runs an execution started, oldest first.
pub async fn map_runs(pool: &sqlx::AnyPool, execution: &str) -> Result<Vec<MapRunView>, Error> {
    let rows = sqlx::query(
        "SELECT id, state, kind, status, total, max_concurrency, pending, running, succeeded, failed \
         FROM map_runs WHERE execution_id = $1 ORDER BY step, created_at",
    )
    .bind(execution)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MapRunView {
                id: r.try_get("id")?,
                state: r.try_get("state")?,
                kind: r.try_get("kind")?,
                status: r.try_get("status")?,
                total: r.try_get("total")?,
                max_concurrency: r.try_get("max_concurrency")?,
                pending: r.try_get("pending")?,
                running: r.try_get("running")?,
                succeeded: r.try_get("succeeded")?,
                failed: r.try_get("failed")?,
            })
        })
        .collect()
}
