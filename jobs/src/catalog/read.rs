//! Read queries: what `sluice catalog` shows and what a crawl needs to plan.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::model::{
    CatalogDbName, ConversionRunInfo, CrawlInfo, CrawlStatus, ObjectInfo, ObjectStatus,
    PartitionInfo, SchemaChange, SchemaPolicy, SchemaVersion, TableInfo, TableKind,
};
use super::schema::{SchemaDiff, decode_schema};
use super::{Catalog, now_ms};
use crate::crawler::plan::KnownObject;
use crate::{Error, Result};

/// The table query with its current schema and figures, then a WHERE clause.
macro_rules! select_tables {
    ($where:literal) => {
        concat!(
            "SELECT t.id, t.catalog_db, t.name, t.location, t.kind, t.format, t.compression, ",
            "t.schema_policy, t.current_version, t.partition_keys, t.properties, t.created_at, t.updated_at, v.schema, ",
            "(SELECT COUNT(*) FROM partitions p WHERE p.table_id = t.id) AS partition_count, ",
            "(SELECT COUNT(*) FROM objects o WHERE o.table_id = t.id AND o.status <> 'gone') ",
            "+ (SELECT COUNT(*) FROM curated_files f WHERE f.curated_table_id = t.id AND f.state <> 'removed') AS object_count, ",
            "CAST(COALESCE((SELECT SUM(o.size) FROM objects o WHERE o.table_id = t.id AND o.status <> 'gone'), 0) ",
            "+ COALESCE((SELECT SUM(f.bytes) FROM curated_files f WHERE f.curated_table_id = t.id AND f.state <> 'removed'), 0) AS BIGINT) AS bytes, ",
            "CAST(COALESCE((SELECT SUM(o.records) FROM objects o WHERE o.table_id = t.id AND o.status <> 'gone'), 0) ",
            "+ COALESCE((SELECT SUM(f.rows) FROM curated_files f WHERE f.curated_table_id = t.id AND f.state <> 'removed'), 0) AS BIGINT) AS records ",
            "FROM catalog_tables t JOIN schema_versions v ON v.table_id = t.id AND v.version = t.current_version ",
            $where
        )
    };
}

fn corrupt(what: &'static str) -> impl Fn(serde_json::Error) -> Error {
    move |err| Error::CorruptRecord {
        what,
        reason: err.to_string(),
    }
}

fn diff_of(text: &str) -> Result<SchemaDiff> {
    serde_json::from_str(text).map_err(corrupt("schema diff"))
}

fn table_of(row: &AnyRow) -> Result<TableInfo> {
    let partition_keys = decode_schema(&row.try_get::<String, _>("partition_keys")?)?;
    Ok(TableInfo {
        id: row.try_get("id")?,
        catalog_db: row.try_get("catalog_db")?,
        name: row.try_get("name")?,
        location: row.try_get("location")?,
        kind: TableKind::parse(&row.try_get::<String, _>("kind")?),
        format: row.try_get("format")?,
        compression: row.try_get("compression")?,
        schema_policy: row.try_get::<String, _>("schema_policy")?.parse()?,
        current_version: row.try_get("current_version")?,
        schema: decode_schema(&row.try_get::<String, _>("schema")?)?,
        partition_keys: partition_keys
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect(),
        properties: serde_json::from_str(&row.try_get::<String, _>("properties")?)
            .map_err(corrupt("table properties"))?,
        partitions: row.try_get("partition_count")?,
        objects: row.try_get("object_count")?,
        bytes: row.try_get("bytes")?,
        records: row.try_get("records")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Catalog {
    /// Every table of a catalog database, with its current schema, by name.
    pub async fn tables(&self, db: &CatalogDbName) -> Result<Vec<TableInfo>> {
        let rows = sqlx::query(select_tables!("WHERE t.catalog_db = $1 ORDER BY t.name"))
            .bind(db.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(table_of).collect()
    }

    /// One table by name.
    pub async fn table(&self, db: &CatalogDbName, name: &str) -> Result<TableInfo> {
        let row = sqlx::query(select_tables!("WHERE t.catalog_db = $1 AND t.name = $2"))
            .bind(db.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => table_of(&row),
            None => Err(Error::TableNotFound {
                database: db.to_string(),
                table: name.to_owned(),
            }),
        }
    }

    /// Every schema version of a table, oldest first.
    pub async fn versions(&self, db: &CatalogDbName, name: &str) -> Result<Vec<SchemaVersion>> {
        let table = self.table(db, name).await?;
        let rows = sqlx::query(
            "SELECT version, schema, diff, crawl_id, created_at FROM schema_versions WHERE table_id = $1 ORDER BY version",
        )
        .bind(table.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SchemaVersion {
                    version: row.try_get("version")?,
                    schema: decode_schema(&row.try_get::<String, _>("schema")?)?,
                    diff: diff_of(&row.try_get::<String, _>("diff")?)?,
                    crawl_id: row.try_get("crawl_id")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// One schema version of a table.
    pub async fn version(
        &self,
        db: &CatalogDbName,
        name: &str,
        version: i64,
    ) -> Result<SchemaVersion> {
        self.versions(db, name)
            .await?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| Error::VersionNotFound {
                table: name.to_owned(),
                version,
            })
    }

    /// Schema changes recorded under the `log` policy, oldest first.
    pub async fn schema_changes(
        &self,
        db: &CatalogDbName,
        name: &str,
    ) -> Result<Vec<SchemaChange>> {
        let table = self.table(db, name).await?;
        let rows = sqlx::query("SELECT crawl_id, version, diff, created_at FROM schema_changes WHERE table_id = $1 ORDER BY id")
            .bind(table.id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SchemaChange {
                    crawl_id: row.try_get("crawl_id")?,
                    version: row.try_get("version")?,
                    diff: diff_of(&row.try_get::<String, _>("diff")?)?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Type conflicts recorded on a table by its latest crawl that saw any, with their counts
    /// and what became of the minority values; the crawl's id beside each.
    pub async fn conflicts(
        &self,
        db: &CatalogDbName,
        name: &str,
    ) -> Result<Vec<(i64, crate::crawler::infer::Conflict)>> {
        let table = self.table(db, name).await?;
        let rows = sqlx::query(
            "SELECT crawl_id, column_path, types, examples, counts, resolved_type, resolution FROM schema_conflicts \
             WHERE table_id = $1 AND crawl_id = (SELECT MAX(crawl_id) FROM schema_conflicts WHERE table_id = $1) ORDER BY id",
        )
        .bind(table.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let json = |column: &str| -> Result<serde_json::Value> {
                    serde_json::from_str(&row.try_get::<String, _>(column)?)
                        .map_err(corrupt("conflict"))
                };
                let conflict = crate::crawler::infer::Conflict {
                    path: row.try_get("column_path")?,
                    types: serde_json::from_value(json("types")?).map_err(corrupt("conflict"))?,
                    examples: serde_json::from_value(json("examples")?)
                        .map_err(corrupt("conflict"))?,
                    counts: serde_json::from_value(json("counts")?).map_err(corrupt("conflict"))?,
                    resolved: row.try_get("resolved_type")?,
                    resolution: serde_json::from_value(serde_json::Value::String(
                        row.try_get("resolution")?,
                    ))
                    .map_err(corrupt("conflict"))?,
                };
                Ok((row.try_get("crawl_id")?, conflict))
            })
            .collect()
    }

    /// A table's readable objects (not failed, not gone) with their partitions' values, by key.
    pub async fn table_objects(&self, table_id: i64) -> Result<Vec<(String, Vec<String>)>> {
        let rows = sqlx::query(
            "SELECT o.key, p.partition_values FROM objects o LEFT JOIN partitions p ON p.id = o.partition_id \
             WHERE o.table_id = $1 AND o.status = 'crawled' ORDER BY o.key",
        )
        .bind(table_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let values: Option<String> = row.try_get("partition_values")?;
                let values = match values {
                    Some(text) => serde_json::from_str(&text).map_err(corrupt("partition"))?,
                    None => Vec::new(),
                };
                Ok((row.try_get("key")?, values))
            })
            .collect()
    }

    /// A table's partitions, by location.
    pub async fn partitions(&self, db: &CatalogDbName, name: &str) -> Result<Vec<PartitionInfo>> {
        let table = self.table(db, name).await?;
        let rows = sqlx::query(
            "SELECT location, partition_values, object_count, bytes, record_estimate, updated_at \
             FROM partitions WHERE table_id = $1 ORDER BY location",
        )
        .bind(table.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PartitionInfo {
                    location: row.try_get("location")?,
                    values: serde_json::from_str(&row.try_get::<String, _>("partition_values")?)
                        .map_err(corrupt("partition values"))?,
                    object_count: row.try_get("object_count")?,
                    bytes: row.try_get("bytes")?,
                    record_estimate: row.try_get("record_estimate")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Landed objects, optionally only the failed ones, by key.
    /// A table's latest conversion runs, newest first.
    pub async fn conversion_runs(
        &self,
        db: &CatalogDbName,
        name: &str,
        limit: i64,
    ) -> Result<Vec<ConversionRunInfo>> {
        let rows = sqlx::query(
            "SELECT r.id, r.status, r.started_at, r.finished_at, r.sources, r.records_read, r.records_written, \
             r.records_quarantined, r.files, r.bytes_written, r.duration_ms, r.error, r.report \
             FROM conversion_runs r JOIN catalog_tables t ON t.id = r.table_id \
             WHERE t.catalog_db = $1 AND t.name = $2 ORDER BY r.id DESC LIMIT $3",
        )
        .bind(db.as_str())
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let report: Option<String> = row.try_get("report")?;
                let quarantine = report
                    .and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok())
                    .and_then(|r| r.get("quarantine")?.as_str().map(str::to_owned));
                Ok(ConversionRunInfo {
                    id: row.try_get("id")?,
                    status: row.try_get("status")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    sources: row.try_get("sources")?,
                    records_read: row.try_get("records_read")?,
                    records_written: row.try_get("records_written")?,
                    records_quarantined: row.try_get("records_quarantined")?,
                    files: row.try_get("files")?,
                    bytes_written: row.try_get("bytes_written")?,
                    duration_ms: row.try_get("duration_ms")?,
                    error: row.try_get("error")?,
                    quarantine,
                })
            })
            .collect()
    }

    pub async fn objects(&self, failed_only: bool) -> Result<Vec<ObjectInfo>> {
        let rows = sqlx::query(
            "SELECT o.key, o.etag, o.size, o.last_modified, o.status, o.format, o.compression, t.name AS table_name, \
             o.records, o.records_exact, o.malformed_records, o.failure_reason \
             FROM objects o LEFT JOIN catalog_tables t ON t.id = o.table_id \
             WHERE ($1 = 0 OR o.status = 'failed') ORDER BY o.key",
        )
        .bind(i64::from(failed_only))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ObjectInfo {
                    key: row.try_get("key")?,
                    etag: row.try_get("etag")?,
                    size: row.try_get("size")?,
                    last_modified: row.try_get("last_modified")?,
                    status: ObjectStatus::parse(&row.try_get::<String, _>("status")?)?,
                    format: row.try_get("format")?,
                    compression: row.try_get("compression")?,
                    table: row.try_get("table_name")?,
                    records: row.try_get("records")?,
                    records_exact: row.try_get::<i64, _>("records_exact")? != 0,
                    malformed_records: row.try_get("malformed_records")?,
                    failure_reason: row.try_get("failure_reason")?,
                })
            })
            .collect()
    }

    /// What the catalog knows of the objects under a key prefix, for incremental crawls.
    pub async fn known_objects(&self, prefix: &str) -> Result<HashMap<String, KnownObject>> {
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = sqlx::query(
            "SELECT key, etag, size, last_modified, status FROM objects WHERE key LIKE $1 ESCAPE '\\'",
        )
        .bind(pattern)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("key")?,
                    KnownObject {
                        etag: row.try_get("etag")?,
                        size: row.try_get::<i64, _>("size")? as u64,
                        last_modified_ms: row.try_get("last_modified")?,
                        gone: row.try_get::<String, _>("status")? == ObjectStatus::Gone.as_str(),
                    },
                ))
            })
            .collect()
    }

    /// Recent crawls, newest first.
    pub async fn crawls(&self, limit: i64) -> Result<Vec<CrawlInfo>> {
        let rows = sqlx::query(
            "SELECT id, catalog_db, prefix, status, started_at, finished_at, objects_listed, objects_crawled, \
             objects_failed, objects_skipped, bytes_read, duration_ms, error FROM crawls ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CrawlInfo {
                    id: row.try_get("id")?,
                    catalog_db: row.try_get("catalog_db")?,
                    prefix: row.try_get("prefix")?,
                    status: CrawlStatus::parse(&row.try_get::<String, _>("status")?)?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    objects_listed: row.try_get("objects_listed")?,
                    objects_crawled: row.try_get("objects_crawled")?,
                    objects_failed: row.try_get("objects_failed")?,
                    objects_skipped: row.try_get("objects_skipped")?,
                    bytes_read: row.try_get("bytes_read")?,
                    duration_ms: row.try_get("duration_ms")?,
                    error: row.try_get("error")?,
                })
            })
            .collect()
    }

    /// Sets (or, with `None`, removes) one property of a table.
    pub async fn set_table_property(
        &self,
        db: &CatalogDbName,
        name: &str,
        key: &str,
        value: Option<serde_json::Value>,
    ) -> Result<()> {
        let table = self.table(db, name).await?;
        let mut properties = table.properties;
        match value {
            Some(value) => properties[key] = value,
            None => {
                if let Some(map) = properties.as_object_mut() {
                    map.remove(key);
                }
            }
        }
        sqlx::query("UPDATE catalog_tables SET properties = $1, updated_at = $2 WHERE id = $3")
            .bind(properties.to_string())
            .bind(now_ms())
            .bind(table.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets a table's schema-change policy.
    pub async fn set_schema_policy(
        &self,
        db: &CatalogDbName,
        name: &str,
        policy: SchemaPolicy,
    ) -> Result<()> {
        let result = sqlx::query("UPDATE catalog_tables SET schema_policy = $1, updated_at = $2 WHERE catalog_db = $3 AND name = $4")
            .bind(policy.as_str())
            .bind(now_ms())
            .bind(db.as_str())
            .bind(name)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(Error::TableNotFound {
                database: db.to_string(),
                table: name.to_owned(),
            });
        }
        Ok(())
    }
}
