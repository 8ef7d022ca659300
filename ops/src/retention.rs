//! Retention: how long what sluice records about its own work is kept. Ended executions go
//! with their histories (Step Functions keeps them 90 days), forecast runs with their files
//! (the newest of each group and source always stays), notification deliveries that ended,
//! the queue's records of steps that ran. The data itself (landings, curated tables, the
//! catalog, the model registry) is never expired here.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::workflows::Workflows;
use crate::{Error, Ops, Result};

/// How long each kind of record is kept; `None` keeps it for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Ended executions (their history, children, tokens), cron ticks, trigger firings,
    /// ended notification deliveries and the queue's records of steps that ran.
    pub executions: Option<Duration>,
    /// Forecast runs, batch and served, with their files in the lake.
    pub forecasts: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            executions: Some(Duration::from_secs(90 * 86_400)),
            forecasts: Some(Duration::from_secs(30 * 86_400)),
        }
    }
}

/// A duration as humantime reads it (`90d`, `12h`, `30min`, `1h 30m`), or `forever` (None);
/// the error says what was expected.
pub(crate) fn duration_or_forever(text: &str) -> std::result::Result<Option<Duration>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("forever") {
        return Ok(None);
    }
    humantime::parse_duration(text).map(Some).map_err(|err| {
        format!("{text:?} is not a duration (90d, 12h, 30min) or \"forever\": {err}")
    })
}

/// Parses a retention setting: a duration of at least a minute, or `forever`.
pub fn parse_retention(field: &str, text: &str) -> Result<Option<Duration>> {
    match duration_or_forever(text) {
        Ok(Some(age)) if age < Duration::from_secs(60) => Err(Error::invalid(
            field,
            "at least a minute (60s), or \"forever\"",
        )),
        Ok(age) => Ok(age),
        Err(reason) => Err(Error::invalid(field, reason)),
    }
}

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExpiryReport {
    pub executions: u64,
    pub events: u64,
    /// Cron ticks and trigger firings.
    pub ticks: u64,
    pub queue_tasks: u64,
    pub notification_deliveries: u64,
    pub forecast_runs: usize,
    pub forecast_files: usize,
}

/// `now` less `age`; the dawn of time for an age longer than chrono counts.
fn cutoff(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Ops {
    /// The retention this process applies.
    pub fn retention(&self) -> Retention {
        self.settings().retention
    }

    /// Deletes what the retention settings no longer keep at `now` (each server does this
    /// every few minutes; `sluice expire` does it at once).
    pub async fn expire(&self, workflows: &Workflows, now: DateTime<Utc>) -> Result<ExpiryReport> {
        let retention = self.retention();
        let mut report = ExpiryReport::default();
        if let Some(age) = retention.executions {
            let before = cutoff(now, age);
            let history = workflows.expire(before).await?;
            report.executions = history.executions;
            report.events = history.events;
            report.ticks = history.ticks;
            report.queue_tasks = history.queue_tasks;
            let pool = self.catalog().await?.pool().clone();
            report.notification_deliveries = sqlx::query(
                "DELETE FROM notification_deliveries WHERE status IN ('delivered', 'failed') AND event_at < $1",
            )
            .bind(before.timestamp_millis())
            .execute(&pool)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot expire notification deliveries: {e}")))?
            .rows_affected();
        }
        if let Some(age) = retention.forecasts {
            let pool = self.catalog().await?.pool().clone();
            let expired = jobs::forecasts::expire(
                &pool,
                &self.curated_lake()?,
                cutoff(now, age).timestamp_millis(),
            )
            .await?;
            report.forecast_runs = expired.runs;
            report.forecast_files = expired.files;
        }
        Ok(report)
    }
}
