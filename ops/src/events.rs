//! Events that notification rules and triggers act on, read from where the operations already
//! record what happened: executions that failed or timed out, drift reports that found drift,
//! conversion runs that quarantined records, deployments that rolled back. Nothing writes an
//! event twice or needs to remember to write one: an event is a row those operations commit
//! anyway, and its key names it for good (one delivery per rule and key, one start per trigger
//! and key).
//!
//! A reader keeps a cursor (the newest event time it has seen) and reads again from
//! [`RESCAN`] before it, so that a row committed a little after the time it carries is not
//! missed; the keys make the rescan harmless.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};

use crate::{Error, Result};

/// How far before its cursor a reader looks again (ms).
pub const RESCAN: i64 = 5 * 60 * 1000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// An execution ended FAILED (any error but a timeout).
    #[serde(rename = "execution.failed")]
    ExecutionFailed,
    /// An execution ran past its `TimeoutSeconds` (Step Functions' TIMED_OUT).
    #[serde(rename = "execution.timed_out")]
    ExecutionTimedOut,
    /// A drift report found drift.
    #[serde(rename = "drift.detected")]
    DriftDetected,
    /// A conversion run committed with quarantined records (rules set the share that counts).
    #[serde(rename = "conversion.quarantined")]
    ConversionQuarantined,
    /// A deployment rolled back to the endpoint's variants before it.
    #[serde(rename = "deployment.rolled_back")]
    DeploymentRolledBack,
}

impl EventKind {
    pub const ALL: [Self; 5] = [
        Self::ExecutionFailed,
        Self::ExecutionTimedOut,
        Self::DriftDetected,
        Self::ConversionQuarantined,
        Self::DeploymentRolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExecutionFailed => "execution.failed",
            Self::ExecutionTimedOut => "execution.timed_out",
            Self::DriftDetected => "drift.detected",
            Self::ConversionQuarantined => "conversion.quarantined",
            Self::DeploymentRolledBack => "deployment.rolled_back",
        }
    }

    /// The kind named `text`; the error lists the names there are.
    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                Error::invalid(
                    "events",
                    format!(
                        "{text:?} is not an event: {}",
                        Self::ALL.map(Self::as_str).join(", ")
                    ),
                )
            })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub kind: EventKind,
    /// Names the event for good: `execution/<id>/<redrive>`, `drift/<report>`,
    /// `conversion/<run>`, `deployment/<id>`.
    pub key: String,
    /// When it happened (ms since the epoch).
    pub at: i64,
    /// What it is about: the workflow, the drift report's subject, the table, the endpoint.
    pub subject: String,
    /// One line for people.
    pub summary: String,
    /// The particulars, by kind (execution id, error and cause; the share quarantined; ...).
    pub detail: Value,
}

impl Event {
    /// The quarantined share of a conversion event (0 for other kinds).
    pub fn quarantine_share(&self) -> f64 {
        self.detail["quarantine_share"].as_f64().unwrap_or(0.0)
    }
}

/// At most this many characters of a cause go into a summary.
const CAUSE_CHARS: usize = 300;

fn shorten(text: &str) -> String {
    match text.char_indices().nth(CAUSE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Events of `kind` at or after `from` (ms), oldest first, at most `limit`.
pub async fn since(pool: &AnyPool, kind: EventKind, from: i64, limit: i64) -> Result<Vec<Event>> {
    let unavailable =
        |err: sqlx::Error| Error::Unavailable(format!("reading {kind} events: {err}"));
    let events = match kind {
        EventKind::ExecutionFailed | EventKind::ExecutionTimedOut => {
            let timed_out = kind == EventKind::ExecutionTimedOut;
            let rows = sqlx::query(
                "SELECT id, workflow, name, state, error, cause, redrive_count, updated_at FROM executions \
                 WHERE status = 'FAILED' AND updated_at >= $1 ORDER BY updated_at, id LIMIT $2",
            )
            .bind(from)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
            let mut events = Vec::new();
            for row in &rows {
                let error: Option<String> = row.try_get("error").map_err(unavailable)?;
                if (error.as_deref() == Some("States.Timeout")) != timed_out {
                    continue;
                }
                let (id, workflow, name, state): (String, String, String, String) = (
                    row.try_get("id").map_err(unavailable)?,
                    row.try_get("workflow").map_err(unavailable)?,
                    row.try_get("name").map_err(unavailable)?,
                    row.try_get("state").map_err(unavailable)?,
                );
                let cause: Option<String> = row.try_get("cause").map_err(unavailable)?;
                let redrive: i64 = row.try_get("redrive_count").map_err(unavailable)?;
                let error = error.unwrap_or_default();
                let summary = if timed_out {
                    format!("execution {name} of {workflow} timed out in state {state}")
                } else {
                    format!(
                        "execution {name} of {workflow} failed in state {state}: {error}: {}",
                        shorten(cause.as_deref().unwrap_or(""))
                    )
                };
                events.push(Event {
                    kind,
                    key: format!("execution/{id}/{redrive}"),
                    at: row.try_get("updated_at").map_err(unavailable)?,
                    subject: workflow.clone(),
                    summary,
                    detail: json!({"execution": id, "workflow": workflow, "name": name,
                        "state": state, "error": error, "cause": cause, "redrive_count": redrive}),
                });
            }
            events
        }
        EventKind::DriftDetected => sqlx::query(
            "SELECT id, subject, reasons, created_at FROM drift_reports \
             WHERE detected = 1 AND created_at >= $1 ORDER BY created_at, id LIMIT $2",
        )
        .bind(from)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| {
            let (id, subject): (String, String) = (row.try_get("id")?, row.try_get("subject")?);
            let reasons: Vec<String> =
                serde_json::from_str(&row.try_get::<String, _>("reasons")?).unwrap_or_default();
            Ok(Event {
                kind,
                key: format!("drift/{id}"),
                at: row.try_get("created_at")?,
                summary: format!("drift detected in {subject}: {}", reasons.join("; ")),
                detail: json!({"report_id": id, "subject": subject, "reasons": reasons}),
                subject,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(unavailable)?,
        EventKind::ConversionQuarantined => sqlx::query(
            "SELECT r.id, t.name AS table_name, r.records_read, r.records_written, r.records_quarantined, r.finished_at \
             FROM conversion_runs r JOIN catalog_tables t ON t.id = r.table_id \
             WHERE r.finished_at >= $1 AND r.records_quarantined > 0 AND r.status IN ('committed', 'published') \
             ORDER BY r.finished_at, r.id LIMIT $2",
        )
        .bind(from)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            let table: String = row.try_get("table_name")?;
            let (read, written, quarantined): (i64, i64, i64) = (
                row.try_get("records_read")?,
                row.try_get("records_written")?,
                row.try_get("records_quarantined")?,
            );
            let share = quarantined as f64 / read.max(1) as f64;
            Ok(Event {
                kind,
                key: format!("conversion/{id}"),
                at: row.try_get("finished_at")?,
                summary: format!(
                    "conversion run {id} of {table} quarantined {quarantined} of {read} records ({:.2} %)",
                    share * 100.0
                ),
                detail: json!({"run": id, "table": table, "records_read": read,
                    "records_written": written, "records_quarantined": quarantined,
                    "quarantine_share": share}),
                subject: table,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(unavailable)?,
        EventKind::DeploymentRolledBack => sqlx::query(
            "SELECT id, endpoint, from_version, to_version, reason, updated_at FROM deployments \
             WHERE status = 'rolled-back' AND updated_at >= $1 ORDER BY updated_at, id LIMIT $2",
        )
        .bind(from)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| {
            let (id, endpoint): (String, String) = (row.try_get("id")?, row.try_get("endpoint")?);
            let from: Option<i64> = row.try_get("from_version")?;
            let to: i64 = row.try_get("to_version")?;
            let reason: Option<String> = row.try_get("reason")?;
            Ok(Event {
                kind,
                key: format!("deployment/{id}"),
                at: row.try_get("updated_at")?,
                summary: format!(
                    "deployment {id} of version {to} to endpoint {endpoint} rolled back: {}",
                    reason.as_deref().unwrap_or("no reason recorded")
                ),
                detail: json!({"deployment": id, "endpoint": endpoint, "from_version": from,
                    "to_version": to, "reason": reason}),
                subject: endpoint,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(unavailable)?,
    };
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_named() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()).unwrap(), kind);
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                Value::String(kind.as_str().into())
            );
        }
        let err = EventKind::parse("execution.exploded")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("execution.exploded") && err.contains("drift.detected"),
            "{err}"
        );
    }

    #[test]
    fn long_causes_are_shortened_on_a_character_boundary() {
        let cause = "é".repeat(CAUSE_CHARS + 10);
        let short = shorten(&cause);
        assert_eq!(short.chars().count(), CAUSE_CHARS + 1);
        assert!(short.ends_with('…'));
        assert_eq!(shorten("short"), "short");
    }
}
