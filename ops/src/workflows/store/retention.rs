//! Retention of ended executions: an execution whose root ended before a cutoff is deleted
//! with everything recorded for it (its history, task tokens, map runs and children), and so
//! are the cron ticks and trigger firings of that age. A running execution is never touched,
//! however old, and neither is a child whose root still runs.

use sqlx::AnyPool;

use super::Error;

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistoryExpired {
    /// Executions, children included.
    pub executions: u64,
    /// Their history events.
    pub events: u64,
    /// Cron ticks and trigger firings.
    pub ticks: u64,
    /// The queue's records of ended deliveries (steps that ran).
    pub queue_tasks: u64,
}

/// Roots deleted per transaction: a pass over a long backlog holds no lock for long.
const ROOTS_PER_BATCH: i64 = 50;

/// Every execution of the tree under `$1` (the root itself included), for `IN (...)`.
const TREE: &str = "WITH RECURSIVE tree (id) AS (SELECT CAST($1 AS TEXT) \
    UNION ALL SELECT e.id FROM executions AS e JOIN tree AS t ON e.parent_id = t.id) \
    SELECT id FROM tree";

/// Deletes the executions whose root ended before `before_ms`, oldest first.
pub async fn expire(pool: &AnyPool, before_ms: i64) -> Result<HistoryExpired, Error> {
    let mut expired = HistoryExpired::default();
    loop {
        let roots: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM executions WHERE parent_id IS NULL AND status <> 'RUNNING' \
             AND stopped_at IS NOT NULL AND stopped_at < $1 ORDER BY stopped_at, id LIMIT $2",
        )
        .bind(before_ms)
        .bind(ROOTS_PER_BATCH)
        .fetch_all(pool)
        .await?;
        if roots.is_empty() {
            break;
        }
        let mut tx = pool.begin().await?;
        for root in &roots {
            // Checked again inside the transaction: a redrive may have started it again since.
            let still_ended: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM executions WHERE id = $1 AND status <> 'RUNNING' AND stopped_at < $2",
            )
            .bind(root)
            .bind(before_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if still_ended.is_none() {
                continue;
            }
            let delete = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql)).bind(root.as_str());
            expired.events += delete(format!(
                "DELETE FROM execution_events WHERE execution_id IN ({TREE})"
            ))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            delete(format!(
                "DELETE FROM task_tokens WHERE execution_id IN ({TREE})"
            ))
            .execute(&mut *tx)
            .await?;
            delete(format!(
                "DELETE FROM map_items WHERE run_id IN \
                 (SELECT id FROM map_runs WHERE execution_id IN ({TREE}))"
            ))
            .execute(&mut *tx)
            .await?;
            delete(format!(
                "DELETE FROM map_runs WHERE execution_id IN ({TREE})"
            ))
            .execute(&mut *tx)
            .await?;
            expired.executions += delete(format!("DELETE FROM executions WHERE id IN ({TREE})"))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        if (roots.len() as i64) < ROOTS_PER_BATCH {
            break;
        }
    }
    // Cron ticks and trigger firings of that age, once their schedule has moved past them (a
    // tick is claimed only after the schedule's last one) and none is being claimed or waits
    // buffered: neither is ever claimed again. The executions they started are gone or older.
    expired.ticks += sqlx::query(
        "DELETE FROM schedule_ticks WHERE created_at < $1 AND outcome NOT IN ('claimed', 'buffered') \
         AND tick <= (SELECT s.last_tick FROM schedules AS s WHERE s.name = schedule_ticks.schedule)",
    )
    .bind(before_ms)
    .execute(pool)
    .await?
    .rows_affected();
    expired.ticks +=
        sqlx::query("DELETE FROM trigger_fires WHERE created_at < $1 AND outcome <> 'claimed'")
            .bind(before_ms)
            .execute(pool)
            .await?
            .rows_affected();
    Ok(expired)
}
