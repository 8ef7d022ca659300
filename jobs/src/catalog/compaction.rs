//! Compaction's commit: new files replace a partition's small files in one transaction, with
//! the union of their lineage.

use sqlx::Row;

use super::conversion::{FileWrite, insert_curated_file, refresh_curated_partitions};
use super::{Catalog, now_ms};
use crate::Result;

impl Catalog {
    /// The commit point of a compaction: the new files (staged), their lineage (the union of the
    /// replaced files'), and the replaced files marked removed, in one transaction.
    pub async fn commit_compaction(
        &self,
        run_id: i64,
        curated_table_id: i64,
        files: &[(FileWrite, Vec<i64>)],
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for (file, replaced) in files {
            let partition_id: i64 = sqlx::query_scalar(
                "SELECT id FROM partitions WHERE table_id = $1 AND location = $2",
            )
            .bind(curated_table_id)
            .bind(&file.partition_location)
            .fetch_one(&mut *tx)
            .await?;
            let file_id =
                insert_curated_file(&mut tx, run_id, curated_table_id, partition_id, file, now)
                    .await?;
            for old in replaced {
                sqlx::query(
                    "INSERT INTO file_sources (file_id, source_key, rows) SELECT $1, source_key, rows FROM file_sources \
                     WHERE file_id = $2 ON CONFLICT (file_id, source_key) DO UPDATE SET rows = file_sources.rows + excluded.rows",
                )
                .bind(file_id)
                .bind(old)
                .execute(&mut *tx)
                .await?;
                let marked = sqlx::query("UPDATE curated_files SET state = 'removed' WHERE id = $1 AND state = 'published'")
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
                if marked.rows_affected() != 1 {
                    return Err(crate::Error::InvalidArgument {
                        field: "compaction",
                        reason: format!(
                            "file {old} changed while compacting; nothing was committed"
                        ),
                    });
                }
            }
        }
        refresh_curated_partitions(&mut tx, curated_table_id).await?;
        sqlx::query(
            "UPDATE conversion_runs SET status = 'committed', curated_table_id = $1, files = $2, \
             bytes_written = $3 WHERE id = $4 AND status = 'running'",
        )
        .bind(curated_table_id)
        .bind(files.len() as i64)
        .bind(files.iter().map(|(f, _)| f.bytes).sum::<i64>())
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Rows per source object in a curated file (lineage).
    pub async fn file_sources(&self, file_id: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT source_key, rows FROM file_sources WHERE file_id = $1 ORDER BY source_key",
        )
        .bind(file_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("source_key")?, row.try_get("rows")?)))
            .collect()
    }
}
