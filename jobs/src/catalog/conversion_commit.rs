//! The commit point of a conversion run: in one transaction, the curated table and its new
//! schema versions, the landing table's new version, what the run replaces, the files with their
//! partitions and lineage, and a bookmark per source (see `conversion`'s module doc).

use sqlx::Row;

use super::conversion::{
    ConversionCommit, CuratedTableWrite, FileWrite, Replace, insert_curated_file,
    refresh_curated_partitions,
};
use super::model::{CatalogDbName, TableKind};
use super::schema::{encode_fields, encode_schema};
use super::{Catalog, now_ms};
use crate::Result;

/// Registers a curated table (or moves an existing one to its newest version) with its new
/// schema versions; returns its id. Conversion and transforms commit through it. A transform
/// replaces every file, so its partition keys replace the table's (`replace_keys`); a
/// conversion's files are added to those already there, under the keys the table has.
pub(super) async fn upsert_curated_table(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    catalog_db: &CatalogDbName,
    curated: &CuratedTableWrite,
    properties: &serde_json::Value,
    replace_keys: bool,
    now: i64,
) -> Result<i64> {
    let partition_keys = encode_fields(curated.partition_keys.iter());
    let current_version = curated.new_versions.last().map(|(v, _, _)| *v);
    let curated_id = match curated.existing_id {
        Some(id) => {
            sqlx::query("UPDATE catalog_tables SET current_version = COALESCE($1, current_version), \
                         partition_keys = CASE WHEN $2 = 1 THEN $3 ELSE partition_keys END, updated_at = $4 WHERE id = $5")
                .bind(current_version)
                .bind(i64::from(replace_keys))
                .bind(&partition_keys)
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            id
        }
        None => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO catalog_tables (catalog_db, name, location, kind, format, compression, schema_policy, \
                 current_version, partition_keys, properties, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'parquet', 'zstd', 'update', $5, $6, $7, $8, $8) RETURNING id",
            )
            .bind(catalog_db.as_str())
            .bind(&curated.name)
            .bind(&curated.location)
            .bind(TableKind::Curated.as_str())
            .bind(current_version.unwrap_or(1))
            .bind(&partition_keys)
            .bind(properties.to_string())
            .bind(now)
            .fetch_one(&mut **tx)
            .await?
        }
    };
    for (version, schema, diff) in &curated.new_versions {
        sqlx::query("INSERT INTO schema_versions (table_id, version, schema, diff, crawl_id, created_at) VALUES ($1, $2, $3, $4, NULL, $5)")
            .bind(curated_id)
            .bind(version)
            .bind(encode_schema(schema))
            .bind(serde_json::to_string(diff).expect("diffs serialize"))
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(curated_id)
}

/// A run's new files (staged) with their partitions and lineage.
pub(super) async fn insert_files(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: i64,
    curated_id: i64,
    files: &[FileWrite],
    now: i64,
) -> Result<()> {
    for file in files {
        let partition_id: i64 = sqlx::query(
            "INSERT INTO partitions (table_id, location, partition_values, crawl_id, created_at, updated_at) \
             VALUES ($1, $2, $3, NULL, $4, $4) \
             ON CONFLICT (table_id, location) DO UPDATE SET updated_at = excluded.updated_at RETURNING id",
        )
        .bind(curated_id)
        .bind(&file.partition_location)
        .bind(serde_json::to_string(&file.partition_values).expect("serializes"))
        .bind(now)
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
        let file_id = insert_curated_file(tx, run_id, curated_id, partition_id, file, now).await?;
        for (source, rows) in &file.sources {
            sqlx::query("INSERT INTO file_sources (file_id, source_key, rows) VALUES ($1, $2, $3)")
                .bind(file_id)
                .bind(source)
                .bind(rows)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

impl Catalog {
    /// The commit point of a run; see the module doc.
    pub async fn commit_conversion(&self, commit: &ConversionCommit) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let curated_id = upsert_curated_table(
            &mut tx,
            &commit.catalog_db,
            &commit.curated,
            &serde_json::json!({"source_table_id": commit.source_table_id}),
            false,
            now,
        )
        .await?;
        if let Some((schema, diff)) = &commit.source_version {
            sqlx::query(
                "INSERT INTO schema_versions (table_id, version, schema, diff, crawl_id, created_at) \
                 SELECT id, current_version + 1, $1, $2, NULL, $3 FROM catalog_tables WHERE id = $4",
            )
            .bind(encode_schema(schema))
            .bind(serde_json::to_string(diff).expect("diffs serialize"))
            .bind(now)
            .bind(commit.source_table_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE catalog_tables SET current_version = current_version + 1, updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(commit.source_table_id)
                .execute(&mut *tx)
                .await?;
        }
        match &commit.replace {
            Replace::Nothing => {}
            Replace::All => {
                sqlx::query("UPDATE curated_files SET state = 'removed' WHERE curated_table_id = $1 AND state <> 'removed'")
                    .bind(curated_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM converted_objects WHERE table_id = $1")
                    .bind(commit.source_table_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Replace::Files { files, sources } => {
                for file in files {
                    let replaced = sqlx::query(
                        "UPDATE curated_files SET state = 'removed' WHERE id = $1 AND curated_table_id = $2 AND state = 'published'",
                    )
                    .bind(file)
                    .bind(curated_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if replaced != 1 {
                        // Another run replaced it since the scope was read: nothing commits.
                        return Err(crate::Error::InvalidArgument {
                            field: "reprocess",
                            reason: format!(
                                "curated file {file} was replaced by another run meanwhile; run the reprocess again"
                            ),
                        });
                    }
                }
                for source in sources {
                    sqlx::query(
                        "DELETE FROM converted_objects WHERE table_id = $1 AND source_key = $2",
                    )
                    .bind(commit.source_table_id)
                    .bind(source)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        insert_files(&mut tx, commit.run_id, curated_id, &commit.files, now).await?;
        for bookmark in &commit.bookmarks {
            sqlx::query(
                "INSERT INTO converted_objects (table_id, source_key, run_id, records_read, records_written, \
                 records_quarantined, quarantine_path, converted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(commit.source_table_id)
            .bind(&bookmark.source_key)
            .bind(commit.run_id)
            .bind(bookmark.records_read)
            .bind(bookmark.records_written)
            .bind(bookmark.records_quarantined)
            .bind(&bookmark.quarantine_path)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        refresh_curated_partitions(&mut tx, curated_id).await?;
        let read: i64 = commit.bookmarks.iter().map(|b| b.records_read).sum();
        let written: i64 = commit.bookmarks.iter().map(|b| b.records_written).sum();
        let quarantined: i64 = commit.bookmarks.iter().map(|b| b.records_quarantined).sum();
        let result = sqlx::query(
            "UPDATE conversion_runs SET status = 'committed', curated_table_id = $1, sources = $2, records_read = $3, \
             records_written = $4, records_quarantined = $5, files = $6, bytes_written = $7, duration_ms = $8, report = $9 \
             WHERE id = $10 AND status = 'running'",
        )
        .bind(curated_id)
        .bind(commit.bookmarks.len() as i64)
        .bind(read)
        .bind(written)
        .bind(quarantined)
        .bind(commit.files.len() as i64)
        .bind(commit.files.iter().map(|f| f.bytes).sum::<i64>())
        .bind(commit.duration_ms)
        .bind(commit.report.to_string())
        .bind(commit.run_id)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() != 1 {
            return Err(crate::Error::InvalidArgument {
                field: "conversion run",
                reason: format!("run {} is no longer running", commit.run_id),
            });
        }
        tx.commit().await?;
        Ok(curated_id)
    }
}
