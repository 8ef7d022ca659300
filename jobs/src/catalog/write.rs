//! Write side: a crawl starts with a `running` row and ends with one transaction that records
//! every table, schema version, partition and object it found, and the crawl's report.

use arrow::datatypes::{Field, Schema};
use sqlx::Row;

use super::model::{CatalogDbName, ObjectStatus, SchemaPolicy, TableKind};
use super::schema::{SchemaDiff, encode_fields, encode_schema};
use super::{Catalog, now_ms};
use crate::Result;
use crate::crawler::infer::Conflict;

/// A table the crawl creates or updates.
#[derive(Debug, Clone)]
pub struct TableWrite {
    /// None for a new table.
    pub existing_id: Option<i64>,
    pub name: String,
    pub location: String,
    pub kind: TableKind,
    pub format: String,
    pub compression: String,
    /// Policy of a new table (existing tables keep theirs).
    pub policy: SchemaPolicy,
    pub partition_keys: Vec<Field>,
    /// A new schema version: the schema and its diff against the current one.
    pub new_version: Option<(Schema, SchemaDiff)>,
    /// A change seen under the `log` policy: the diff, recorded but not applied.
    pub logged_change: Option<SchemaDiff>,
    pub conflicts: Vec<Conflict>,
    /// Type changes the table's policy did not apply, for a person to decide.
    pub pending: Vec<super::type_changes::TypeChangeWrite>,
    pub properties: serde_json::Value,
    pub partitions: Vec<PartitionWrite>,
    pub objects: Vec<ObjectWrite>,
}

/// A partition folder and its values, in partition-key order.
#[derive(Debug, Clone)]
pub struct PartitionWrite {
    pub location: String,
    pub values: Vec<String>,
}

/// One object's outcome.
#[derive(Debug, Clone)]
pub struct ObjectWrite {
    pub key: String,
    pub etag: Option<String>,
    pub size: i64,
    pub last_modified: i64,
    pub status: ObjectStatus,
    pub format: Option<String>,
    pub compression: Option<String>,
    pub partition_location: Option<String>,
    pub records: i64,
    pub records_exact: bool,
    pub sampled_records: i64,
    pub malformed_records: i64,
    pub failure_reason: Option<String>,
    pub error_codes: Option<String>,
}

/// Everything one crawl writes, committed at once.
#[derive(Debug, Clone)]
pub struct CrawlCommit {
    pub crawl_id: i64,
    pub catalog_db: CatalogDbName,
    pub tables: Vec<TableWrite>,
    /// Objects that belong to no table (they failed).
    pub failed_objects: Vec<ObjectWrite>,
    /// Keys of objects the catalog knew that the store no longer lists.
    pub gone_objects: Vec<String>,
    pub objects_listed: i64,
    pub objects_skipped: i64,
    pub bytes_read: i64,
    pub duration_ms: i64,
    pub report: serde_json::Value,
}

/// Table ids the commit created or updated, by name.
pub type CommittedTables = Vec<(String, i64)>;

impl Catalog {
    /// Records the start of a crawl; returns its id.
    pub async fn begin_crawl(&self, db: &CatalogDbName, prefix: &str) -> Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>(
            "INSERT INTO crawls (catalog_db, prefix, status, started_at) VALUES ($1, $2, 'running', $3) RETURNING id",
        )
        .bind(db.as_str())
        .bind(prefix)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records a crawl that failed before it could commit.
    pub async fn fail_crawl(&self, crawl_id: i64, error: &str, duration_ms: i64) -> Result<()> {
        sqlx::query("UPDATE crawls SET status = 'failed', finished_at = $1, error = $2, duration_ms = $3 WHERE id = $4")
            .bind(now_ms())
            .bind(error)
            .bind(duration_ms)
            .bind(crawl_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Writes a crawl's findings in one transaction.
    pub async fn commit_crawl(&self, commit: &CrawlCommit) -> Result<CommittedTables> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO catalog_databases (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(commit.catalog_db.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let mut committed = Vec::new();
        let mut crawled = 0_i64;
        let mut failed = commit.failed_objects.len() as i64;
        for table in &commit.tables {
            let partition_keys = encode_fields(table.partition_keys.iter());
            let properties = table.properties.to_string();
            let table_id = match table.existing_id {
                None => {
                    sqlx::query_scalar::<_, i64>(
                        "INSERT INTO catalog_tables (catalog_db, name, location, kind, format, compression, schema_policy, \
                         current_version, partition_keys, properties, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $10) RETURNING id",
                    )
                    .bind(commit.catalog_db.as_str())
                    .bind(&table.name)
                    .bind(&table.location)
                    .bind(table.kind.as_str())
                    .bind(&table.format)
                    .bind(&table.compression)
                    .bind(table.policy.as_str())
                    .bind(&partition_keys)
                    .bind(&properties)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?
                }
                Some(id) => {
                    let bump = i64::from(table.new_version.is_some());
                    sqlx::query(
                        "UPDATE catalog_tables SET format = $1, compression = $2, partition_keys = $3, properties = $4, \
                         current_version = current_version + $5, updated_at = $6 WHERE id = $7",
                    )
                    .bind(&table.format)
                    .bind(&table.compression)
                    .bind(&partition_keys)
                    .bind(&properties)
                    .bind(bump)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    id
                }
            };
            let current: i64 =
                sqlx::query_scalar("SELECT current_version FROM catalog_tables WHERE id = $1")
                    .bind(table_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if let Some((schema, diff)) = &table.new_version {
                sqlx::query(
                    "INSERT INTO schema_versions (table_id, version, schema, diff, crawl_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(table_id)
                .bind(current)
                .bind(encode_schema(schema))
                .bind(serde_json::to_string(diff).expect("diffs serialize"))
                .bind(commit.crawl_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(diff) = &table.logged_change {
                sqlx::query("INSERT INTO schema_changes (table_id, crawl_id, version, diff, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(table_id)
                    .bind(commit.crawl_id)
                    .bind(current)
                    .bind(serde_json::to_string(diff).expect("diffs serialize"))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            for conflict in &table.conflicts {
                sqlx::query(
                    "INSERT INTO schema_conflicts (table_id, crawl_id, column_path, types, examples, counts, \
                     resolved_type, resolution, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(table_id)
                .bind(commit.crawl_id)
                .bind(&conflict.path)
                .bind(serde_json::to_string(&conflict.types).expect("serializes"))
                .bind(serde_json::to_string(&conflict.examples).expect("serializes"))
                .bind(serde_json::to_string(&conflict.counts).expect("serializes"))
                .bind(&conflict.resolved)
                .bind(conflict.resolution.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            for change in &table.pending {
                super::type_changes::record(&mut tx, table_id, commit.crawl_id, change, now)
                    .await?;
            }
            let mut partition_ids = std::collections::HashMap::new();
            for partition in &table.partitions {
                let id: i64 = sqlx::query(
                    "INSERT INTO partitions (table_id, location, partition_values, crawl_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) \
                     ON CONFLICT (table_id, location) DO UPDATE SET updated_at = excluded.updated_at RETURNING id",
                )
                .bind(table_id)
                .bind(&partition.location)
                .bind(serde_json::to_string(&partition.values).expect("serializes"))
                .bind(commit.crawl_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")?;
                partition_ids.insert(partition.location.as_str(), id);
            }
            for object in &table.objects {
                let partition_id = object
                    .partition_location
                    .as_deref()
                    .and_then(|l| partition_ids.get(l).copied());
                upsert_object(
                    &mut tx,
                    object,
                    Some(table_id),
                    partition_id,
                    commit.crawl_id,
                    now,
                )
                .await?;
                if object.status == ObjectStatus::Failed {
                    failed += 1
                } else {
                    crawled += 1
                }
            }
            committed.push((table.name.clone(), table_id));
        }
        for object in &commit.failed_objects {
            upsert_object(&mut tx, object, None, None, commit.crawl_id, now).await?;
        }
        // Objects deleted from the landing area: kept (with their counts, what conversion took
        // from them stays), marked gone, and out of the partitions' and tables' figures.
        for key in &commit.gone_objects {
            sqlx::query(
                "UPDATE objects SET status = 'gone', crawl_id = $1, crawled_at = $2 WHERE key = $3",
            )
            .bind(commit.crawl_id)
            .bind(now)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        }
        // Partition figures are derived from their objects, never accumulated: a recrawled or
        // moved object is counted once.
        sqlx::query(
            "UPDATE partitions SET \
             object_count = (SELECT COUNT(*) FROM objects o WHERE o.partition_id = partitions.id AND o.status <> 'gone'), \
             bytes = (SELECT COALESCE(SUM(o.size), 0) FROM objects o WHERE o.partition_id = partitions.id AND o.status <> 'gone'), \
             record_estimate = (SELECT COALESCE(SUM(o.records), 0) FROM objects o WHERE o.partition_id = partitions.id AND o.status <> 'gone') \
             WHERE id IN (SELECT DISTINCT partition_id FROM objects WHERE crawl_id = $1 AND partition_id IS NOT NULL) \
             OR crawl_id = $1",
        )
        .bind(commit.crawl_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE crawls SET status = 'succeeded', finished_at = $1, objects_listed = $2, objects_crawled = $3, \
             objects_failed = $4, objects_skipped = $5, bytes_read = $6, duration_ms = $7, report = $8 WHERE id = $9",
        )
        .bind(now_ms())
        .bind(commit.objects_listed)
        .bind(crawled)
        .bind(failed)
        .bind(commit.objects_skipped)
        .bind(commit.bytes_read)
        .bind(commit.duration_ms)
        .bind(commit.report.to_string())
        .bind(commit.crawl_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(committed)
    }
}

async fn upsert_object(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    object: &ObjectWrite,
    table_id: Option<i64>,
    partition_id: Option<i64>,
    crawl_id: i64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO objects (key, etag, size, last_modified, status, format, compression, table_id, partition_id, \
         records, records_exact, sampled_records, malformed_records, failure_reason, error_codes, crawl_id, crawled_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT (key) DO UPDATE SET etag = excluded.etag, size = excluded.size, \
         last_modified = excluded.last_modified, status = excluded.status, format = excluded.format, \
         compression = excluded.compression, table_id = excluded.table_id, partition_id = excluded.partition_id, \
         records = excluded.records, records_exact = excluded.records_exact, sampled_records = excluded.sampled_records, \
         malformed_records = excluded.malformed_records, failure_reason = excluded.failure_reason, \
         error_codes = excluded.error_codes, crawl_id = excluded.crawl_id, crawled_at = excluded.crawled_at",
    )
    .bind(&object.key)
    .bind(&object.etag)
    .bind(object.size)
    .bind(object.last_modified)
    .bind(object.status.as_str())
    .bind(&object.format)
    .bind(&object.compression)
    .bind(table_id)
    .bind(partition_id)
    .bind(object.records)
    .bind(i64::from(object.records_exact))
    .bind(object.sampled_records)
    .bind(object.malformed_records)
    .bind(&object.failure_reason)
    .bind(&object.error_codes)
    .bind(crawl_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
