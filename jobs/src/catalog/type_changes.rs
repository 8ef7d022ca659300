//! Type changes waiting for a person: a crawl records each change its table's policy does not
//! apply, with its evidence summed over crawls (values seen per type, since when, which
//! objects); accepting one makes a new schema version with the proposed type, dismissing one
//! keeps the table's type (conversion goes on quarantining the values that do not fit).

use arrow::datatypes::{Field, Schema};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::evolve::{PendingType, replace_leaf};
use super::model::CatalogDbName;
use super::schema::{decode_schema, diff, encode_fields, encode_schema, type_name};
use super::{Catalog, now_ms};
use crate::{Error, Result};

/// Objects named as evidence, at most.
const EVIDENCE_OBJECTS: usize = 20;

/// A pending change as one crawl saw it.
#[derive(Debug, Clone)]
pub struct TypeChangeWrite {
    pub change: PendingType,
    /// Values seen per type name.
    pub counts: Vec<(String, u64)>,
    /// Objects in which the new type dominates.
    pub objects: Vec<String>,
}

super::model::stored_status! {
    /// Where a type change stands.
    TypeChangeStatus, "type change" {
        /// Waiting for a person.
        Pending => "pending",
        /// Applied as a new schema version.
        Accepted => "accepted",
        /// The table keeps its type.
        Dismissed => "dismissed",
    }
}

/// A recorded type change with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct TypeChange {
    pub id: i64,
    pub table: String,
    pub column: String,
    pub from: String,
    pub to: String,
    pub status: TypeChangeStatus,
    pub counts: Vec<(String, u64)>,
    pub objects: Vec<String>,
    pub objects_total: i64,
    pub first_crawl_id: i64,
    pub last_crawl_id: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
    pub applied_version: Option<i64>,
}

/// A person's decision on a pending change.
#[derive(Debug, Clone)]
pub struct Decision {
    pub decided_by: String,
    pub reason: Option<String>,
}

fn corrupt(err: serde_json::Error) -> Error {
    Error::CorruptRecord {
        what: "type change",
        reason: err.to_string(),
    }
}

fn change_of(row: &AnyRow) -> Result<TypeChange> {
    Ok(TypeChange {
        id: row.try_get("id")?,
        table: row.try_get("table_name")?,
        column: row.try_get("column_path")?,
        from: row.try_get("from_type")?,
        to: row.try_get("to_type")?,
        status: TypeChangeStatus::parse(&row.try_get::<String, _>("status")?)?,
        counts: serde_json::from_str(&row.try_get::<String, _>("counts")?).map_err(corrupt)?,
        objects: serde_json::from_str(&row.try_get::<String, _>("objects")?).map_err(corrupt)?,
        objects_total: row.try_get("objects_total")?,
        first_crawl_id: row.try_get("first_crawl_id")?,
        last_crawl_id: row.try_get("last_crawl_id")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
        reason: row.try_get("reason")?,
        applied_version: row.try_get("applied_version")?,
    })
}

/// The type change query, then a WHERE clause.
macro_rules! select_changes {
    ($where:literal) => {
        concat!(
            "SELECT c.id, t.name AS table_name, c.column_path, c.from_type, c.to_type, c.status, c.counts, ",
            "c.objects, c.objects_total, c.first_crawl_id, c.last_crawl_id, c.first_seen, c.last_seen, c.decided_by, ",
            "c.decided_at, c.reason, c.applied_version FROM type_changes c JOIN catalog_tables t ON t.id = c.table_id ",
            $where
        )
    };
}

/// Sums two lists of per-type counts.
fn add_counts(mut into: Vec<(String, u64)>, more: &[(String, u64)]) -> Vec<(String, u64)> {
    for (name, count) in more {
        match into.iter_mut().find(|(n, _)| n == name) {
            Some((_, n)) => *n += count,
            None => into.push((name.clone(), *count)),
        }
    }
    into
}

/// Records (or adds evidence to) one pending change, inside a crawl's transaction.
pub(super) async fn record(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table_id: i64,
    crawl_id: i64,
    write: &TypeChangeWrite,
    now: i64,
) -> Result<()> {
    let to_type = type_name(write.change.to.data_type());
    let existing = sqlx::query(
        "SELECT id, counts, objects, objects_total FROM type_changes \
         WHERE table_id = $1 AND column_path = $2 AND to_type = $3 AND status = 'pending'",
    )
    .bind(table_id)
    .bind(&write.change.column)
    .bind(&to_type)
    .fetch_optional(&mut **tx)
    .await?;
    match existing {
        Some(row) => {
            let counts: Vec<(String, u64)> =
                serde_json::from_str(&row.try_get::<String, _>("counts")?).map_err(corrupt)?;
            let mut objects: Vec<String> =
                serde_json::from_str(&row.try_get::<String, _>("objects")?).map_err(corrupt)?;
            let mut total: i64 = row.try_get("objects_total")?;
            for key in &write.objects {
                if !objects.contains(key) {
                    total += 1;
                    if objects.len() < EVIDENCE_OBJECTS {
                        objects.push(key.clone());
                    }
                }
            }
            sqlx::query(
                "UPDATE type_changes SET counts = $1, objects = $2, objects_total = $3, last_crawl_id = $4, \
                 last_seen = $5 WHERE id = $6",
            )
            .bind(serde_json::to_string(&add_counts(counts, &write.counts)).expect("serializes"))
            .bind(serde_json::to_string(&objects).expect("serializes"))
            .bind(total)
            .bind(crawl_id)
            .bind(now)
            .bind(row.try_get::<i64, _>("id")?)
            .execute(&mut **tx)
            .await?;
        }
        None => {
            let objects: Vec<&String> = write.objects.iter().take(EVIDENCE_OBJECTS).collect();
            sqlx::query(
                "INSERT INTO type_changes (table_id, column_path, from_type, to_type, to_field, status, counts, \
                 objects, objects_total, first_crawl_id, last_crawl_id, first_seen, last_seen) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $9, $10, $10)",
            )
            .bind(table_id)
            .bind(&write.change.column)
            .bind(type_name(write.change.from.data_type()))
            .bind(&to_type)
            .bind(encode_fields(std::iter::once(&write.change.to)))
            .bind(serde_json::to_string(&write.counts).expect("serializes"))
            .bind(serde_json::to_string(&objects).expect("serializes"))
            .bind(write.objects.len() as i64)
            .bind(crawl_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

impl Catalog {
    /// Type changes of a database's tables (of one table with `table`), pending ones only unless
    /// `all`; newest first.
    pub async fn type_changes(
        &self,
        db: &CatalogDbName,
        table: Option<&str>,
        all: bool,
    ) -> Result<Vec<TypeChange>> {
        if let Some(name) = table {
            self.table(db, name).await?;
        }
        let rows = sqlx::query(select_changes!(
            "WHERE t.catalog_db = $1 AND ($2 = '' OR t.name = $2) AND ($3 = 1 OR c.status = 'pending') \
             ORDER BY c.last_seen DESC, c.id DESC"
        ))
            .bind(db.as_str())
            .bind(table.unwrap_or_default())
            .bind(i64::from(all))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(change_of).collect()
    }

    /// Accepts the pending change of `column` to `to` (a type name, as listed): the table gets
    /// a new schema version with the proposed type, and other pending changes of the column are
    /// dismissed. Returns the accepted change.
    pub async fn accept_type_change(
        &self,
        db: &CatalogDbName,
        table: &str,
        column: &str,
        to: &str,
        decision: &Decision,
    ) -> Result<TypeChange> {
        let info = self.table(db, table).await?;
        let pending = self.type_changes(db, Some(table), false).await?;
        let Some(change) = pending.iter().find(|c| c.column == column && c.to == to) else {
            return Err(not_found(table, column, to, &pending));
        };
        let to_field: String =
            sqlx::query_scalar("SELECT to_field FROM type_changes WHERE id = $1")
                .bind(change.id)
                .fetch_one(&self.pool)
                .await?;
        let proposed: Field = decode_schema(&to_field)?
            .fields()
            .first()
            .map(|f| f.as_ref().clone())
            .ok_or_else(|| Error::CorruptRecord {
                what: "type change",
                reason: "no proposed field".into(),
            })?;
        let fields = replace_leaf(info.schema.fields(), column, &proposed).ok_or_else(|| {
            Error::InvalidArgument {
                field: "column",
                reason: format!("table {table:?} has no column {column:?} any more"),
            }
        })?;
        let schema = Schema::new(fields);
        let change_diff = diff(&info.schema, &schema);
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar(
            "UPDATE catalog_tables SET current_version = current_version + 1, updated_at = $1 \
             WHERE id = $2 AND current_version = $3 RETURNING current_version",
        )
        .bind(now)
        .bind(info.id)
        .bind(info.current_version)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::InvalidArgument {
            field: "table",
            reason: format!("table {table:?} changed while the change was accepted; try again"),
        })?;
        sqlx::query(
            "INSERT INTO schema_versions (table_id, version, schema, diff, crawl_id, created_at) VALUES ($1, $2, $3, $4, NULL, $5)",
        )
        .bind(info.id)
        .bind(version)
        .bind(encode_schema(&schema))
        .bind(serde_json::to_string(&change_diff).expect("diffs serialize"))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE type_changes SET status = 'accepted', decided_by = $1, decided_at = $2, reason = $3, \
             applied_version = $4 WHERE id = $5",
        )
        .bind(&decision.decided_by)
        .bind(now)
        .bind(&decision.reason)
        .bind(version)
        .bind(change.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE type_changes SET status = 'dismissed', decided_by = $1, decided_at = $2, reason = $3 \
             WHERE table_id = $4 AND column_path = $5 AND status = 'pending'",
        )
        .bind(&decision.decided_by)
        .bind(now)
        .bind(format!("superseded by the change to {to}"))
        .bind(info.id)
        .bind(column)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TypeChange {
            status: TypeChangeStatus::Accepted,
            decided_by: Some(decision.decided_by.clone()),
            decided_at: Some(now),
            reason: decision.reason.clone(),
            applied_version: Some(version),
            ..change.clone()
        })
    }

    /// Dismisses the pending change of `column` to `to`: the table keeps its type.
    pub async fn dismiss_type_change(
        &self,
        db: &CatalogDbName,
        table: &str,
        column: &str,
        to: &str,
        decision: &Decision,
    ) -> Result<TypeChange> {
        let pending = self.type_changes(db, Some(table), false).await?;
        let Some(change) = pending.iter().find(|c| c.column == column && c.to == to) else {
            return Err(not_found(table, column, to, &pending));
        };
        let now = now_ms();
        sqlx::query(
            "UPDATE type_changes SET status = 'dismissed', decided_by = $1, decided_at = $2, reason = $3 \
             WHERE id = $4 AND status = 'pending'",
        )
        .bind(&decision.decided_by)
        .bind(now)
        .bind(&decision.reason)
        .bind(change.id)
        .execute(&self.pool)
        .await?;
        Ok(TypeChange {
            status: TypeChangeStatus::Dismissed,
            decided_by: Some(decision.decided_by.clone()),
            decided_at: Some(now),
            reason: decision.reason.clone(),
            ..change.clone()
        })
    }
}

fn not_found(table: &str, column: &str, to: &str, pending: &[TypeChange]) -> Error {
    let listed: Vec<String> = pending
        .iter()
        .map(|c| format!("{} {} -> {}", c.column, c.from, c.to))
        .collect();
    Error::TypeChangeNotFound {
        table: table.to_owned(),
        column: column.to_owned(),
        to: to.to_owned(),
        pending: if listed.is_empty() {
            "; nothing is pending".to_owned()
        } else {
            format!("; pending: {}", listed.join(", "))
        },
    }
}
