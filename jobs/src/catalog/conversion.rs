//! Conversion's records: runs, the manifest of curated files, lineage, and bookmarks.
//!
//! The commit point of a run is [`Catalog::commit_conversion`]: in one transaction it registers
//! the curated table and its partitions, the files (state `staged`), which sources fed them, and a
//! bookmark per source. A bookmark's primary key (table, source) makes a second conversion of the
//! same object fail to commit. After the commit the files are moved into place and marked
//! `published`; a run that stopped in between is finished by [`Catalog::unpublished_files`].

use arrow::datatypes::{Field, Schema};
use sqlx::Row;

use super::model::CatalogDbName;
use super::schema::SchemaDiff;
use super::{Catalog, now_ms};
use crate::Result;

/// A landed object waiting for conversion.
#[derive(Debug, Clone)]
pub struct SourceObject {
    pub key: String,
    pub size: i64,
    pub last_modified: i64,
    /// The records the crawler counted, where its count is exact and the conversion counts
    /// them the same way (JSON lines, Firehose error envelopes, Parquet's footer): the run
    /// reconciles against it too.
    pub crawled_records: Option<u64>,
    /// The crawler found a Parquet file: conversion reads it row group by row group with range
    /// requests instead of fetching it whole.
    pub parquet: bool,
}

/// The curated table a run registers or updates.
#[derive(Debug, Clone)]
pub struct CuratedTableWrite {
    pub existing_id: Option<i64>,
    pub name: String,
    pub location: String,
    pub partition_keys: Vec<Field>,
    /// New schema versions, in order (version number, schema, diff against the one before).
    pub new_versions: Vec<(i64, Schema, SchemaDiff)>,
}

/// One output file of a run.
#[derive(Debug, Clone)]
pub struct FileWrite {
    pub path: String,
    pub staging_path: String,
    pub partition_location: String,
    pub partition_values: Vec<String>,
    pub rows: i64,
    pub bytes: i64,
    pub schema_version: i64,
    /// Rows per source object.
    pub sources: Vec<(String, i64)>,
}

/// Reconciliation of one source object: read = written + quarantined.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bookmark {
    pub source_key: String,
    pub records_read: i64,
    pub records_written: i64,
    pub records_quarantined: i64,
    pub quarantine_path: Option<String>,
}

/// What a run replaces.
#[derive(Debug, Clone, PartialEq)]
pub enum Replace {
    /// Nothing: it converts new objects.
    Nothing,
    /// Every file and bookmark of the table (`--reprocess`).
    All,
    /// These published files and these sources' bookmarks (a range's lineage closure).
    Files {
        files: Vec<i64>,
        sources: Vec<String>,
    },
}

/// Everything a run commits at once.
#[derive(Debug, Clone)]
pub struct ConversionCommit {
    pub run_id: i64,
    pub catalog_db: CatalogDbName,
    pub source_table_id: i64,
    /// Columns the run found that the landing table lacked: its new version (policy `update`).
    pub source_version: Option<(Schema, SchemaDiff)>,
    pub curated: CuratedTableWrite,
    pub files: Vec<FileWrite>,
    pub bookmarks: Vec<Bookmark>,
    /// What earlier files and bookmarks the run replaces.
    pub replace: Replace,
    pub duration_ms: i64,
    pub report: serde_json::Value,
}

/// A curated file as the manifest knows it.
#[derive(Debug, Clone)]
pub struct CuratedFile {
    pub id: i64,
    pub run_id: i64,
    pub path: String,
    pub staging_path: String,
    pub partition_values: Vec<String>,
    pub rows: i64,
    pub bytes: i64,
    pub schema_version: i64,
    pub state: String,
}

/// Rows written by a table's conversions: in all, and since a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowsConverted {
    pub total: i64,
    pub since: i64,
}

/// A run that started and never committed (crashed or failed): its staging and quarantine
/// prefixes hold nothing anyone may read.
#[derive(Debug, Clone)]
pub struct AbandonedRun {
    pub id: i64,
    pub table: String,
    pub dest: String,
}

fn file_of(row: &sqlx::any::AnyRow) -> Result<CuratedFile> {
    let values: String = row.try_get("partition_values")?;
    Ok(CuratedFile {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        path: row.try_get("path")?,
        staging_path: row.try_get("staging_path")?,
        partition_values: serde_json::from_str(&values).unwrap_or_default(),
        rows: row.try_get("rows")?,
        bytes: row.try_get("bytes")?,
        schema_version: row.try_get("schema_version")?,
        state: row.try_get("state")?,
    })
}

/// A staged curated file's manifest row; returns its id.
pub(super) async fn insert_curated_file(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: i64,
    curated_table_id: i64,
    partition_id: i64,
    file: &FileWrite,
    now: i64,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO curated_files (run_id, curated_table_id, path, staging_path, partition_id, rows, bytes, \
         schema_version, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'staged', $9) RETURNING id",
    )
    .bind(run_id)
    .bind(curated_table_id)
    .bind(&file.path)
    .bind(&file.staging_path)
    .bind(partition_id)
    .bind(file.rows)
    .bind(file.bytes)
    .bind(file.schema_version)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?)
}

/// A curated table's partition figures, derived from its live files (never accumulated).
pub(super) async fn refresh_curated_partitions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    curated_table_id: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE partitions SET \
         object_count = (SELECT COUNT(*) FROM curated_files f WHERE f.partition_id = partitions.id AND f.state <> 'removed'), \
         bytes = (SELECT COALESCE(SUM(f.bytes), 0) FROM curated_files f WHERE f.partition_id = partitions.id AND f.state <> 'removed'), \
         record_estimate = (SELECT COALESCE(SUM(f.rows), 0) FROM curated_files f WHERE f.partition_id = partitions.id AND f.state <> 'removed') \
         WHERE table_id = $1",
    )
    .bind(curated_table_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Catalog {
    /// Records the start of a conversion run; returns its id.
    pub async fn begin_conversion(&self, table_id: i64, dest: &str) -> Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>(
            "INSERT INTO conversion_runs (table_id, status, dest, started_at) VALUES ($1, 'running', $2, $3) RETURNING id",
        )
        .bind(table_id)
        .bind(dest)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records a run that failed before its commit.
    pub async fn fail_conversion(&self, run_id: i64, error: &str, duration_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE conversion_runs SET status = 'failed', error = $1, finished_at = $2, duration_ms = $3 \
             WHERE id = $4 AND status = 'running'",
        )
        .bind(error)
        .bind(now_ms())
        .bind(duration_ms)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Passes a run's outcome on, recording the run failed when its work failed (a run that
    /// committed stays committed: only running runs are marked).
    pub async fn settle_run<T>(
        &self,
        run_id: i64,
        started: std::time::Instant,
        outcome: Result<T>,
    ) -> Result<T> {
        if let Err(err) = &outcome {
            let duration_ms = started.elapsed().as_millis() as i64;
            self.fail_conversion(run_id, &err.to_string(), duration_ms)
                .await?;
        }
        outcome
    }

    /// Keys of a table's objects deleted from the landing area since their crawl.
    pub async fn gone_objects(&self, table_id: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT key FROM objects WHERE table_id = $1 AND status = 'gone' ORDER BY key",
        )
        .bind(table_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Rows the table's conversions wrote to its curated table, in all and in those committed
    /// after `since_ms` (a source reprocessed since counts again: its rows were written anew).
    pub async fn rows_converted(&self, table_id: i64, since_ms: i64) -> Result<RowsConverted> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(records_written), 0) AS BIGINT) AS total, \
                    CAST(COALESCE(SUM(CASE WHEN converted_at > $2 THEN records_written ELSE 0 END), 0) AS BIGINT) AS since \
             FROM converted_objects WHERE table_id = $1",
        )
        .bind(table_id)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(RowsConverted {
            total: row.try_get("total")?,
            since: row.try_get("since")?,
        })
    }

    /// Which of `keys` were converted from the table already (their bookmark exists).
    pub async fn converted_among(
        &self,
        table_id: i64,
        keys: &[&String],
    ) -> Result<std::collections::HashSet<String>> {
        let mut converted = std::collections::HashSet::new();
        for key in keys {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM converted_objects WHERE table_id = $1 AND source_key = $2",
            )
            .bind(table_id)
            .bind(key.as_str())
            .fetch_optional(&self.pool)
            .await?;
            if found.is_some() {
                converted.insert((*key).clone());
            }
        }
        Ok(converted)
    }

    /// Objects of a table not yet converted (all of them with `all`), by key. Objects the crawler
    /// failed under the table's location are included: their records are quarantined, not lost.
    pub async fn pending_sources(
        &self,
        table_id: i64,
        location: &str,
        all: bool,
    ) -> Result<Vec<SourceObject>> {
        let pattern = format!(
            "{}/%",
            location
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = sqlx::query(
            "SELECT o.key, o.size, o.last_modified, o.records, o.records_exact, o.format, o.status FROM objects o \
             WHERE (o.table_id = $1 OR (o.status = 'failed' AND o.key LIKE $2 ESCAPE '\\')) AND o.status <> 'gone' \
             AND ($3 = 1 OR NOT EXISTS (SELECT 1 FROM converted_objects c WHERE c.table_id = $1 AND c.source_key = o.key)) \
             ORDER BY o.key",
        )
        .bind(table_id)
        .bind(pattern)
        .bind(i64::from(all))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let exact = row.try_get::<i64, _>("records_exact")? == 1
                    && row.try_get::<String, _>("status")? == "crawled"
                    && matches!(
                        row.try_get::<Option<String>, _>("format")?.as_deref(),
                        Some("ndjson" | "firehose_errors" | "parquet")
                    );
                let records: i64 = row.try_get("records")?;
                let parquet = row.try_get::<Option<String>, _>("format")?.as_deref()
                    == Some("parquet")
                    && row.try_get::<String, _>("status")? == "crawled";
                Ok(SourceObject {
                    parquet,
                    key: row.try_get("key")?,
                    size: row.try_get("size")?,
                    last_modified: row.try_get("last_modified")?,
                    crawled_records: exact.then_some(records.max(0) as u64),
                })
            })
            .collect()
    }

    /// Lineage of a curated table's published files: one row per (file, source).
    pub async fn curated_lineage(
        &self,
        curated_table_id: i64,
    ) -> Result<Vec<crate::convert::scope::Lineage>> {
        let rows = sqlx::query(
            "SELECT f.id, p.location, p.partition_values, s.source_key FROM curated_files f \
             JOIN partitions p ON p.id = f.partition_id JOIN file_sources s ON s.file_id = f.id \
             WHERE f.curated_table_id = $1 AND f.state = 'published' ORDER BY f.id, s.source_key",
        )
        .bind(curated_table_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(crate::convert::scope::Lineage {
                    file_id: row.try_get("id")?,
                    partition_location: row.try_get("location")?,
                    partition_values: serde_json::from_str(
                        &row.try_get::<String, _>("partition_values")?,
                    )
                    .unwrap_or_default(),
                    source_key: row.try_get("source_key")?,
                })
            })
            .collect()
    }

    /// Files of committed runs still waiting to be moved into place.
    pub async fn unpublished_files(
        &self,
        curated_table_id: Option<i64>,
    ) -> Result<Vec<CuratedFile>> {
        let rows = sqlx::query(
            "SELECT f.id, f.run_id, f.path, f.staging_path, f.rows, f.bytes, f.schema_version, f.state, p.partition_values \
             FROM curated_files f JOIN partitions p ON p.id = f.partition_id \
             WHERE f.state = 'staged' AND ($1 IS NULL OR f.curated_table_id = $1) ORDER BY f.id",
        )
        .bind(curated_table_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(file_of).collect()
    }

    /// Marks files moved into place, and runs whose every file is, published.
    pub async fn mark_published(&self, file_ids: &[i64]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in file_ids {
            sqlx::query(
                "UPDATE curated_files SET state = 'published' WHERE id = $1 AND state = 'staged'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE conversion_runs SET status = 'published', finished_at = $1 WHERE status = 'committed' \
             AND NOT EXISTS (SELECT 1 FROM curated_files f WHERE f.run_id = conversion_runs.id AND f.state = 'staged')",
        )
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The files of a curated table readers may read, by path.
    pub async fn curated_files(&self, curated_table_id: i64) -> Result<Vec<CuratedFile>> {
        let rows = sqlx::query(
            "SELECT f.id, f.run_id, f.path, f.staging_path, f.rows, f.bytes, f.schema_version, f.state, p.partition_values \
             FROM curated_files f JOIN partitions p ON p.id = f.partition_id \
             WHERE f.curated_table_id = $1 AND f.state = 'published' ORDER BY f.path",
        )
        .bind(curated_table_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(file_of).collect()
    }

    /// Files replaced by a reprocess or compaction that may still exist in the lake.
    pub async fn removed_files(&self) -> Result<Vec<CuratedFile>> {
        let rows = sqlx::query(
            "SELECT f.id, f.run_id, f.path, f.staging_path, f.rows, f.bytes, f.schema_version, f.state, p.partition_values \
             FROM curated_files f JOIN partitions p ON p.id = f.partition_id WHERE f.state = 'removed' ORDER BY f.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(file_of).collect()
    }

    /// Forgets files whose objects were deleted from the lake.
    pub async fn purge_files(&self, file_ids: &[i64]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in file_ids {
            sqlx::query("DELETE FROM file_sources WHERE file_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM curated_files WHERE id = $1 AND state = 'removed'")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs that never committed and started before `before_ms`.
    pub async fn abandoned_runs(&self, before_ms: i64) -> Result<Vec<AbandonedRun>> {
        let rows = sqlx::query(
            "SELECT r.id, t.name, r.dest FROM conversion_runs r JOIN catalog_tables t ON t.id = r.table_id \
             WHERE r.status IN ('running', 'failed') AND r.started_at < $1 ORDER BY r.id",
        )
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AbandonedRun {
                    id: row.try_get("id")?,
                    table: row.try_get("name")?,
                    dest: row.try_get("dest")?,
                })
            })
            .collect()
    }

    /// Marks abandoned runs cleaned, so vacuum does not visit them again.
    pub async fn mark_vacuumed(&self, run_id: i64) -> Result<()> {
        sqlx::query("UPDATE conversion_runs SET status = 'vacuumed', finished_at = COALESCE(finished_at, $1) WHERE id = $2 AND status IN ('running', 'failed')")
            .bind(now_ms())
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Per-source reconciliation of a table's conversions, by source.
    pub async fn bookmarks(&self, table_id: i64) -> Result<Vec<Bookmark>> {
        let rows = sqlx::query(
            "SELECT source_key, records_read, records_written, records_quarantined, quarantine_path \
             FROM converted_objects WHERE table_id = $1 ORDER BY source_key",
        )
        .bind(table_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Bookmark {
                    source_key: row.try_get("source_key")?,
                    records_read: row.try_get("records_read")?,
                    records_written: row.try_get("records_written")?,
                    records_quarantined: row.try_get("records_quarantined")?,
                    quarantine_path: row.try_get("quarantine_path")?,
                })
            })
            .collect()
    }
}
