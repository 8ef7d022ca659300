//! An execution's history events: appended in multi-row inserts, stamped with when they happened,
//! and read back in order.

use sqlx::{AnyPool, Row};

use super::{Error, Event, StoredEvent, json_of};

/// Appends events after the execution's last one.
pub(super) async fn append_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    events: &[Event],
    times: &[i64],
) -> Result<(), Error> {
    let next_seq: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(seq), -1) + 1 FROM execution_events WHERE execution_id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    insert_events(tx, id, next_seq, events, times).await
}

/// How many events an execution's history holds.
pub async fn event_count(pool: &AnyPool, id: &str) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(MAX(seq), -1) + 1 FROM execution_events WHERE execution_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await?)
}

/// Appends one event of the execution itself (`ExecutionStarted`, `ExecutionAborted`, ...).
pub(super) async fn append_execution_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    kind: &str,
    details: serde_json::Value,
    now: i64,
) -> Result<(), Error> {
    append_events(tx, id, &[Event::execution(kind, details)], &[now]).await
}

/// When each of a step's events happened: the leading `...Entered`, `...Scheduled` and
/// `...Started` events when the state was entered, the rest (its outcome) when it committed.
pub(super) fn event_times(events: &[Event], began: i64, now: i64) -> Vec<i64> {
    let leading = events
        .iter()
        .take_while(|e| {
            ["Entered", "Scheduled", "Started"]
                .iter()
                .any(|suffix| e.kind.ends_with(suffix))
        })
        .count();
    (0..events.len())
        .map(|i| if i < leading { began.min(now) } else { now })
        .collect()
}

async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    first_seq: i64,
    events: &[Event],
    times: &[i64],
) -> Result<(), Error> {
    // Multi-row INSERTs (one round trip for a step's few events); chunks stay far below the
    // backends' limits on bound parameters (a Map state's step may hold thousands of events).
    const ROWS: usize = 500;
    let rows: Vec<(i64, &Event, i64)> = events
        .iter()
        .zip(times)
        .enumerate()
        .map(|(offset, (event, at))| (first_seq + offset as i64, event, *at))
        .collect();
    for chunk in rows.chunks(ROWS) {
        let values: Vec<String> = (0..chunk.len())
            .map(|row| {
                let p = row * 6;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6
                )
            })
            .collect();
        // Only numbered placeholders are formatted in: every value is bound.
        let sql = format!(
            "INSERT INTO execution_events (execution_id, seq, kind, state, details, at) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, event, at) in chunk {
            query = query
                .bind(id)
                .bind(*seq)
                .bind(event.kind.as_str())
                .bind(event.state.as_deref())
                .bind(event.details.to_string())
                .bind(*at);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// An execution's history, in order.
pub async fn history(pool: &AnyPool, id: &str) -> Result<Vec<StoredEvent>, Error> {
    let rows = sqlx::query("SELECT seq, kind, state, details, at FROM execution_events WHERE execution_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredEvent {
                seq: r.try_get("seq")?,
                kind: r.try_get("kind")?,
                state: r.try_get("state")?,
                details: json_of(&r.try_get::<String, _>("details")?),
                at: r.try_get("at")?,
            })
        })
        .collect()
}
