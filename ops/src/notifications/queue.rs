//! The notification pass: new events queued as deliveries (one per rule and event, whichever
//! server inserts it first), then the deliveries that are due sent.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AnyPool, Row};

use super::{RuleDefinition, stored, unavailable};
use crate::events::{self, RESCAN};
use crate::{Ops, Result};

/// Events read per rule and kind in one pass.
const BATCH: i64 = 500;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pass {
    /// Deliveries this server queued (another server may have queued the rest).
    pub queued: usize,
    /// Deliveries the receivers took.
    pub delivered: usize,
    /// Deliveries that will be tried again.
    pub retrying: usize,
    /// Deliveries given up (attempts spent, or refused for good).
    pub failed: usize,
}

/// Queues a delivery for each new event each rule wants; returns how many this server queued.
async fn queue_events(pool: &AnyPool, now: i64) -> Result<usize> {
    let rules = sqlx::query(
        "SELECT name, definition, since, cursor FROM notification_rules WHERE paused = 0",
    )
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let mut queued = 0;
    for row in &rules {
        let name: String = row.try_get("name").map_err(unavailable)?;
        let definition: RuleDefinition = serde_json::from_str(
            &row.try_get::<String, _>("definition")
                .map_err(unavailable)?,
        )
        .map_err(stored)?;
        let since: i64 = row.try_get("since").map_err(unavailable)?;
        let cursor: i64 = row.try_get("cursor").map_err(unavailable)?;
        let from = since.max(cursor - RESCAN);
        // Where the next pass reads from: now, unless a kind had more events than one batch.
        let mut next = now;
        // What the rescan finds again is queued already: only the rest is inserted.
        let queued_before: std::collections::HashSet<String> = sqlx::query_scalar(
            "SELECT event FROM notification_deliveries WHERE rule = $1 AND event_at >= $2",
        )
        .bind(&name)
        .bind(from)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .into_iter()
        .collect();
        for kind in &definition.events {
            let events = events::since(pool, *kind, from, BATCH).await?;
            if events.len() as i64 == BATCH
                && let Some(last) = events.last()
            {
                next = next.min(last.at);
            }
            for event in events
                .iter()
                .filter(|e| definition.wants(e) && !queued_before.contains(&e.key))
            {
                let body = super::body(&name, event, definition.body);
                let inserted = sqlx::query(
                    "INSERT INTO notification_deliveries (rule, event, kind, body, status, attempts, next_attempt_at, lease_until, event_at, created_at) \
                     VALUES ($1, $2, $3, $4, 'pending', 0, $5, 0, $6, $5) ON CONFLICT (rule, event) DO NOTHING",
                )
                .bind(&name)
                .bind(&event.key)
                .bind(event.kind.as_str())
                .bind(body.to_string())
                .bind(now)
                .bind(event.at)
                .execute(pool)
                .await
                .map_err(unavailable)?;
                queued += inserted.rows_affected() as usize;
            }
        }
        sqlx::query("UPDATE notification_rules SET cursor = $1 WHERE name = $2 AND cursor < $1")
            .bind(next)
            .bind(&name)
            .execute(pool)
            .await
            .map_err(unavailable)?;
    }
    Ok(queued)
}

impl Ops {
    /// One pass of notifications at `now`: new events queued, due deliveries sent. Several
    /// servers may run it at once: each event is queued once per rule and each attempt made by
    /// one of them.
    pub async fn notify(&self, now: DateTime<Utc>) -> Result<Pass> {
        let pool = self.catalog().await?.pool().clone();
        let now = now.timestamp_millis();
        let queued = queue_events(&pool, now).await?;
        let mut pass = self.send_due(&pool, now).await?;
        pass.queued = queued;
        Ok(pass)
    }
}
