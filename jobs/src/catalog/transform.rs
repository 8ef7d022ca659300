//! Derived tables' records: what each committed transform run was built from, and its commit
//! point. A run's files go through conversion's manifest (`curated_files`), so publishing,
//! vacuum, queries and datasets read a derived table as they read any curated table.

use sqlx::Row;

use super::conversion::{CuratedTableWrite, FileWrite, refresh_curated_partitions};
use super::conversion_commit::{insert_files, upsert_curated_table};
use super::model::CatalogDbName;
use super::{Catalog, now_ms};
use crate::{Error, Result};

/// A committed transform run, as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransformRun {
    pub run_id: i64,
    pub input_id: String,
    pub sql: String,
    pub sources: serde_json::Value,
    pub previous_run: i64,
    pub rows: i64,
    pub committed_at: i64,
}

/// Everything a transform run commits at once.
#[derive(Debug, Clone)]
pub struct TransformCommit {
    pub run_id: i64,
    pub catalog_db: CatalogDbName,
    pub curated: CuratedTableWrite,
    pub files: Vec<FileWrite>,
    pub input_id: String,
    pub sql: String,
    pub sources: serde_json::Value,
    /// The committed run this one replaces (0 for the table's first).
    pub previous_run: i64,
    pub rows: i64,
    pub duration_ms: i64,
    pub report: serde_json::Value,
}

impl Catalog {
    /// The last committed run of a derived table, if any.
    pub async fn last_transform(
        &self,
        db: &CatalogDbName,
        target: &str,
    ) -> Result<Option<TransformRun>> {
        let row = sqlx::query(
            "SELECT run_id, input_id, sql_text, sources, previous_run, rows_written, committed_at \
             FROM transform_runs WHERE catalog_db = $1 AND target = $2 ORDER BY run_id DESC LIMIT 1",
        )
        .bind(db.as_str())
        .bind(target)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let sources: String = row.try_get("sources")?;
            Ok(TransformRun {
                run_id: row.try_get("run_id")?,
                input_id: row.try_get("input_id")?,
                sql: row.try_get("sql_text")?,
                sources: serde_json::from_str(&sources).map_err(|e| Error::CorruptRecord {
                    what: "transform run",
                    reason: e.to_string(),
                })?,
                previous_run: row.try_get("previous_run")?,
                rows: row.try_get("rows_written")?,
                committed_at: row.try_get("committed_at")?,
            })
        })
        .transpose()
    }

    /// The commit point of a transform run: in one transaction, the derived table with its new
    /// schema version, its earlier files marked removed, the new files (staged), and the run's
    /// record. A run that raced another from the same state does not commit: `transform_runs`
    /// admits one successor per run, and this one learns which run won.
    pub async fn commit_transform(&self, commit: &TransformCommit) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let recorded = sqlx::query(
            "INSERT INTO transform_runs (run_id, catalog_db, target, input_id, sql_text, sources, previous_run, \
             rows_written, committed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (catalog_db, target, previous_run) DO NOTHING",
        )
        .bind(commit.run_id)
        .bind(commit.catalog_db.as_str())
        .bind(&commit.curated.name)
        .bind(&commit.input_id)
        .bind(&commit.sql)
        .bind(commit.sources.to_string())
        .bind(commit.previous_run)
        .bind(commit.rows)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() != 1 {
            return Err(Error::Conflict {
                what: "transform",
                reason: format!(
                    "another run of {} committed after run {} while this one ran; nothing was committed",
                    commit.curated.name, commit.previous_run
                ),
            });
        }
        let curated_id = upsert_curated_table(
            &mut tx,
            &commit.catalog_db,
            &commit.curated,
            &serde_json::json!({"derived": true, "sql": commit.sql}),
            true,
            now,
        )
        .await?;
        sqlx::query("UPDATE curated_files SET state = 'removed' WHERE curated_table_id = $1 AND state <> 'removed'")
            .bind(curated_id)
            .execute(&mut *tx)
            .await?;
        insert_files(&mut tx, commit.run_id, curated_id, &commit.files, now).await?;
        // Partitions the new files do not use keep no figures; drop them.
        refresh_curated_partitions(&mut tx, curated_id).await?;
        sqlx::query(
            "DELETE FROM partitions WHERE table_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM curated_files f WHERE f.partition_id = partitions.id)",
        )
        .bind(curated_id)
        .execute(&mut *tx)
        .await?;
        let result = sqlx::query(
            "UPDATE conversion_runs SET status = 'committed', curated_table_id = $1, records_read = $2, \
             records_written = $2, files = $3, bytes_written = $4, duration_ms = $5, report = $6 \
             WHERE id = $7 AND status = 'running'",
        )
        .bind(curated_id)
        .bind(commit.rows)
        .bind(commit.files.len() as i64)
        .bind(commit.files.iter().map(|f| f.bytes).sum::<i64>())
        .bind(commit.duration_ms)
        .bind(commit.report.to_string())
        .bind(commit.run_id)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() != 1 {
            return Err(Error::Conflict {
                what: "transform",
                reason: format!("run {} is no longer running", commit.run_id),
            });
        }
        tx.commit().await?;
        Ok(curated_id)
    }
}
