//! Stored drift reports (`drift_reports`): one row per report with its verdict and reasons for
//! listing, and the report itself as a versioned JSON document.

use serde_json::Value;
use sqlx::Row;

use crate::catalog::{Catalog, now_ms};
use crate::{Error, Result};

/// A stored report.
#[derive(Debug, Clone)]
pub struct StoredReport {
    pub id: String,
    pub subject: String,
    pub detected: bool,
    pub reasons: Vec<String>,
    pub report: Value,
    pub created_at: i64,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredReport> {
    let reasons: String = row.try_get("reasons")?;
    let report: String = row.try_get("report")?;
    let id: String = row.try_get("id")?;
    let mut report: Value = serde_json::from_str(&report).unwrap_or(Value::Null);
    if let Some(object) = report.as_object_mut() {
        object.insert("id".into(), Value::String(id.clone()));
    }
    Ok(StoredReport {
        id,
        subject: row.try_get("subject")?,
        detected: row.try_get::<i64, _>("detected")? != 0,
        reasons: serde_json::from_str(&reasons).unwrap_or_default(),
        report,
        created_at: row.try_get("created_at")?,
    })
}

/// Saves a report under a new id (`drift-<uuid>`), returned.
pub async fn save(
    catalog: &Catalog,
    subject: &str,
    detected: bool,
    reasons: &[String],
    report: &Value,
) -> Result<String> {
    let id = format!("drift-{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO drift_reports (id, subject, detected, reasons, report, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(subject)
    .bind(i64::from(detected))
    .bind(serde_json::to_string(reasons).expect("strings serialise"))
    .bind(report.to_string())
    .bind(now_ms())
    .execute(catalog.pool())
    .await?;
    Ok(id)
}

/// One report by id, or the latest (of a subject, when given).
pub async fn get(
    catalog: &Catalog,
    id: Option<&str>,
    subject: Option<&str>,
) -> Result<StoredReport> {
    let row = match id {
        Some(id) => {
            sqlx::query(
                "SELECT id, subject, detected, reasons, report, created_at FROM drift_reports WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(catalog.pool())
            .await?
        }
        None => {
            sqlx::query(
                "SELECT id, subject, detected, reasons, report, created_at FROM drift_reports \
                 WHERE ($1 = '' OR subject = $1) ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(subject.unwrap_or_default())
            .fetch_optional(catalog.pool())
            .await?
        }
    };
    let row = row.ok_or_else(|| Error::InvalidArgument {
        field: "drift report",
        reason: match id {
            Some(id) => format!("no report {id}"),
            None => {
                "no drift report yet: run sluice drift run (or a sluice:detect-drift task)".into()
            }
        },
    })?;
    from_row(&row)
}

/// The latest reports, newest first.
pub async fn list(catalog: &Catalog, limit: i64) -> Result<Vec<StoredReport>> {
    let rows = sqlx::query(
        "SELECT id, subject, detected, reasons, report, created_at FROM drift_reports \
         ORDER BY created_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(catalog.pool())
    .await?;
    rows.iter().map(from_row).collect()
}
