//! A pass of the triggers: new items counted, due windows claimed, their executions started.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};

use super::{On, Stored, stored_of, unavailable};
use crate::events::{self, EventKind};
use crate::workflows::Dispatch;
use crate::workflows::engine::Engine;
use crate::workflows::store::show_time;
use crate::{Error, Result};

/// Keys listed in an execution's input (the count says how many there were).
const INPUT_KEYS: i64 = 1000;
/// Drift reports read per pass.
const DRIFT_BATCH: i64 = 500;

/// An item a trigger may count: an object's key or a drift report's id, with its time.
struct Item {
    key: String,
    at: i64,
    size: i64,
}

/// The items of `trigger` at or after its bounds' `from`.
async fn items(engine: &Engine, trigger: &Stored) -> Result<Vec<Item>> {
    let from = trigger.bounds.start();
    match trigger.definition.on {
        On::Landing => {
            let from = trigger.bounds.listing_start();
            let lake = engine.ops.lake()?;
            let prefix = trigger.definition.prefix.clone().unwrap_or_default();
            let path = object_store::path::Path::from(prefix.trim_end_matches('/'));
            let listed: Vec<object_store::ObjectMeta> = lake
                .store()
                .list(Some(&path))
                .try_collect()
                .await
                .map_err(|e| Error::Unavailable(format!("listing {prefix}: {e}")))?;
            Ok(listed
                .into_iter()
                .map(|meta| Item {
                    key: meta.location.to_string(),
                    at: meta.last_modified.timestamp_millis(),
                    size: meta.size as i64,
                })
                .filter(|item| item.at >= from)
                .collect())
        }
        On::Drift => Ok(
            events::since(&engine.pool, EventKind::DriftDetected, from, DRIFT_BATCH)
                .await?
                .into_iter()
                .filter(|e| {
                    trigger
                        .definition
                        .subject
                        .as_ref()
                        .is_none_or(|s| *s == e.subject)
                })
                .map(|e| Item {
                    key: e.detail["report_id"].as_str().unwrap_or(&e.key).to_owned(),
                    at: e.at,
                    size: 0,
                })
                .collect(),
        ),
    }
}

/// Counts a trigger's new items (each once, whichever server inserts it) and moves its cursor.
async fn count_items(engine: &Engine, trigger: &Stored, now: i64) -> Result<()> {
    let pool = &engine.pool;
    let items = items(engine, trigger).await?;
    // What the rescan finds again is counted already: only the rest is inserted.
    let counted: std::collections::HashSet<String> = sqlx::query_scalar(
        "SELECT key FROM trigger_objects WHERE trigger_name = $1 AND last_modified >= $2",
    )
    .bind(&trigger.name)
    .bind(trigger.bounds.listing_start().min(trigger.bounds.start()))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .into_iter()
    .collect();
    for item in items.iter().filter(|i| !counted.contains(&i.key)) {
        sqlx::query(
            "INSERT INTO trigger_objects (trigger_name, key, last_modified, size, seen_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (trigger_name, key) DO NOTHING",
        )
        .bind(&trigger.name)
        .bind(&item.key)
        .bind(item.at)
        .bind(item.size)
        .bind(now)
        .execute(pool)
        .await
        .map_err(unavailable)?;
    }
    if let Some(newest) = items.iter().map(|i| i.at).max() {
        sqlx::query("UPDATE triggers SET cursor = $1 WHERE name = $2 AND cursor < $1")
            .bind(newest)
            .bind(&trigger.name)
            .execute(pool)
            .await
            .map_err(unavailable)?;
    }
    // Fired items older than the rescan are never looked at again.
    sqlx::query("DELETE FROM trigger_objects WHERE trigger_name = $1 AND fire IS NOT NULL AND last_modified < $2")
        .bind(&trigger.name)
        .bind(trigger.bounds.listing_start().min(trigger.bounds.start()))
        .execute(pool)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// The name of a window's execution.
fn fire_name(trigger: &str, opened: i64) -> String {
    let at = DateTime::<Utc>::from_timestamp_millis(opened).unwrap_or_default();
    format!("{trigger}@{}", at.format("%Y-%m-%dT%H-%M-%S-%3fZ"))
}

/// Claims the window of `trigger`'s pending items when it fires at `now`: its firing row and
/// its items, in one transaction; false when it does not fire or another server has it.
async fn claim_window(pool: &AnyPool, trigger: &Stored, now: i64) -> Result<bool> {
    let first: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(seen_at) FROM trigger_objects WHERE trigger_name = $1 AND fire IS NULL",
    )
    .bind(&trigger.name)
    .fetch_one(pool)
    .await
    .map_err(unavailable)?;
    let Some(first) = first else { return Ok(false) };
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(created_at) FROM trigger_fires WHERE trigger_name = $1")
            .bind(&trigger.name)
            .fetch_one(pool)
            .await
            .map_err(unavailable)?;
    if !trigger.definition.window().fires(first, last, now) {
        return Ok(false);
    }
    let fire = fire_name(&trigger.name, first);
    let mut tx = pool.begin().await.map_err(unavailable)?;
    let claimed = sqlx::query(
        "INSERT INTO trigger_fires (trigger_name, fire, outcome, detail, created_at) \
         VALUES ($1, $2, 'claimed', '{}', $3) ON CONFLICT (trigger_name, fire) DO NOTHING",
    )
    .bind(&trigger.name)
    .bind(&fire)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    if claimed.rows_affected() == 0 {
        return Ok(false);
    }
    let taken = sqlx::query(
        "UPDATE trigger_objects SET fire = $1 WHERE trigger_name = $2 AND fire IS NULL AND seen_at <= $3",
    )
    .bind(&fire)
    .bind(&trigger.name)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    if taken.rows_affected() == 0 {
        // Another server took these items under a window of its own.
        tx.rollback().await.map_err(unavailable)?;
        return Ok(false);
    }
    let totals = sqlx::query(
        "SELECT COUNT(*) AS items, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM trigger_objects \
         WHERE trigger_name = $1 AND fire = $2",
    )
    .bind(&trigger.name)
    .bind(&fire)
    .fetch_one(&mut *tx)
    .await
    .map_err(unavailable)?;
    let (count, bytes): (i64, i64) = (
        totals.try_get("items").map_err(unavailable)?,
        totals.try_get("bytes").map_err(unavailable)?,
    );
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT key FROM trigger_objects WHERE trigger_name = $1 AND fire = $2 ORDER BY key LIMIT $3",
    )
    .bind(&trigger.name)
    .bind(&fire)
    .bind(INPUT_KEYS)
    .fetch_all(&mut *tx)
    .await
    .map_err(unavailable)?;
    let mut detail = json!({
        "name": trigger.name, "on": trigger.definition.on, "window_opened": show_time(first),
        "window_closed": show_time(now),
    });
    match trigger.definition.on {
        On::Landing => {
            detail["prefix"] = json!(trigger.definition.prefix);
            detail["objects"] = json!(count);
            detail["bytes"] = json!(bytes);
            detail["keys"] = json!(keys);
            detail["truncated"] = json!(count > keys.len() as i64);
        }
        On::Drift => {
            detail["subject"] = json!(trigger.definition.subject);
            detail["reports"] = json!(keys);
        }
    }
    sqlx::query("UPDATE trigger_fires SET detail = $1 WHERE trigger_name = $2 AND fire = $3")
        .bind(detail.to_string())
        .bind(&trigger.name)
        .bind(&fire)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok(true)
}

/// Starts the executions of claimed firings (a claim this pass made, or one a server made
/// before it stopped); returns how many it started.
async fn start_claimed(engine: &Engine, queue: &dyn Dispatch, trigger: &Stored) -> Result<usize> {
    let pool = &engine.pool;
    let claimed = sqlx::query(
        "SELECT fire, detail FROM trigger_fires WHERE trigger_name = $1 AND outcome = 'claimed' ORDER BY fire",
    )
    .bind(&trigger.name)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let mut started = 0;
    for row in &claimed {
        let fire: String = row.try_get("fire").map_err(unavailable)?;
        let detail: Value =
            serde_json::from_str(&row.try_get::<String, _>("detail").map_err(unavailable)?)
                .unwrap_or(Value::Null);
        let mut input = trigger.definition.input.clone();
        input["trigger"] = detail;
        let id = match engine
            .start(&trigger.workflow, input, Some(fire.clone()))
            .await
        {
            Ok((execution, first)) => {
                if let Some(first) = first {
                    queue.push(&first).await?;
                    started += 1;
                }
                execution.id
            }
            // Started before (a pass that stopped before recording it): that execution stands.
            Err(crate::workflows::Error::AlreadyExists { id, .. }) => id,
            Err(err) => return Err(err.into()),
        };
        sqlx::query(
            "UPDATE trigger_fires SET outcome = 'started', execution_id = $1 WHERE trigger_name = $2 AND fire = $3",
        )
        .bind(&id)
        .bind(&trigger.name)
        .bind(&fire)
        .execute(pool)
        .await
        .map_err(unavailable)?;
        tracing::info!(trigger = %trigger.name, execution = %id, fire = %fire, "trigger fired");
    }
    Ok(started)
}

/// One pass of the triggers at `now` (ms): new items counted, due windows claimed and their
/// executions started, each once whatever the number of servers doing the same; returns the
/// executions this server started.
pub async fn fire_due(engine: &Engine, queue: &dyn Dispatch, now: i64) -> Result<usize> {
    let rows = sqlx::query("SELECT * FROM triggers WHERE paused = 0 ORDER BY name")
        .fetch_all(&engine.pool)
        .await
        .map_err(unavailable)?;
    let mut started = 0;
    let mut failed = Vec::new();
    for row in &rows {
        let trigger = stored_of(row)?;
        let outcome = async {
            count_items(engine, &trigger, now).await?;
            claim_window(&engine.pool, &trigger, now).await?;
            start_claimed(engine, queue, &trigger).await
        }
        .await;
        match outcome {
            Ok(n) => started += n,
            // One trigger's trouble (its prefix unreadable) does not hold up the others.
            Err(err) => failed.push(format!("trigger {}: {err}", trigger.name)),
        }
    }
    if failed.is_empty() {
        Ok(started)
    } else {
        Err(Error::Unavailable(failed.join("; ")))
    }
}
