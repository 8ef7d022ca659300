//! Derived tables from SQL, Glue Studio's "SQL transform": a `SELECT` over curated tables
//! written as a curated table of its own (zstd Parquet, Hive-partitioned by the columns asked
//! for), registered in the catalog with a schema version, and read like any curated table.
//!
//! A run is built exactly once per input. Its input id hashes the SQL, the partitioning and
//! every file the query reads (path, rows, bytes: [`query::plan`] fixes them before anything is
//! read); a run whose input is the one the table was last built from does nothing. A run
//! replaces every file of the table in one commit, through conversion's manifest: staged first,
//! committed with the table's new version, then moved into place, so a reader sees the old rows
//! or the new ones, never a mix; a run stopped after its commit is finished by the next one (or
//! by vacuum), one stopped before leaves only staging objects that vacuum deletes. Two runs
//! racing from the same state cannot both commit ([`Catalog::commit_transform`]).
//!
//! The result is computed in memory (polars' SQL context): a transform is for aggregates and
//! selections, not for copying a table.

mod encode;

use std::collections::BTreeSet;
use std::time::Instant;

use arrow::datatypes::Schema;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::conversion::{CuratedTableWrite, FileWrite};
use crate::catalog::schema::diff;
use crate::catalog::transform::TransformCommit;
use crate::catalog::{Catalog, CatalogDbName, TableKind, TableName};
use crate::convert::FailPoint;
use crate::convert::publish::{after_commit, publish};
use crate::lake::{Lake, LakeKey};
use crate::query::{self, Plan};
use crate::{Error, Result};
use encode::encode;

/// What to build.
#[derive(Debug, Clone)]
pub struct TransformOptions {
    pub catalog_db: CatalogDbName,
    /// The derived table: new, or one an earlier transform made.
    pub target: TableName,
    pub sql: String,
    /// Curated prefix: files go under `<dest>/<target>/`.
    pub dest: LakeKey,
    /// Result columns that become Hive partition folders, in order (integers, text, dates or
    /// booleans).
    pub partition_by: Vec<String>,
    /// Build even when the input is unchanged.
    pub force: bool,
    #[cfg(feature = "fail-points")]
    pub fail_at: Option<FailPoint>,
}

impl TransformOptions {
    pub fn new(catalog_db: CatalogDbName, target: TableName, sql: impl Into<String>) -> Self {
        Self {
            catalog_db,
            target,
            sql: sql.into(),
            dest: LakeKey::parse("curated").expect("valid key"),
            partition_by: Vec::new(),
            force: false,
            #[cfg(feature = "fail-points")]
            fail_at: None,
        }
    }

    fn stops_at(&self, point: FailPoint) -> bool {
        #[cfg(feature = "fail-points")]
        return self.fail_at == Some(point);
        #[cfg(not(feature = "fail-points"))]
        {
            let _ = point;
            false
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransformStatus {
    /// The table was (re)built from this input.
    Built,
    /// The table was already built from this input: nothing was written.
    Unchanged,
}

/// What one source table gave a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TransformSource {
    pub table: String,
    pub files_read: usize,
    pub files_total: usize,
    pub rows_read: i64,
    pub pruned_by: Vec<String>,
}

/// A transform run's report (the Task output's core).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransformReport {
    pub table: String,
    pub status: TransformStatus,
    /// `tf-` and 16 hex digits: what the table is built from.
    pub input_id: String,
    /// The run that built the table's current files (this run when `built`).
    pub run_id: i64,
    pub location: String,
    pub sources: Vec<TransformSource>,
    pub rows: i64,
    pub files: usize,
    pub bytes: i64,
    pub partitions: usize,
    pub schema_version: i64,
    /// Columns added, removed or retyped by this run's schema version (empty when unchanged).
    pub schema_changed: bool,
    pub duration_ms: u64,
}

/// Builds (or confirms) a derived table; see the module doc.
pub async fn transform(
    curated_lake: &Lake,
    catalog: &Catalog,
    options: &TransformOptions,
) -> Result<TransformReport> {
    let started = Instant::now();
    let target = options.target.as_str();
    let location = options.dest.join(target)?;
    let existing = match catalog.table(&options.catalog_db, target).await {
        Ok(table) => Some(table),
        Err(Error::TableNotFound { .. }) => None,
        Err(err) => return Err(err),
    };
    if let Some(table) = &existing
        && (table.kind != TableKind::Curated || table.properties["derived"] != true)
    {
        return Err(Error::InvalidArgument {
            field: "table",
            reason: format!(
                "{target} is a {} table that a transform did not make; a transform writes only its own tables",
                kind_word(table.kind)
            ),
        });
    }
    for other in catalog.tables(&options.catalog_db).await? {
        let overlaps = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        if other.name != target
            && (overlaps(&other.location, location.as_str())
                || overlaps(location.as_str(), &other.location))
        {
            return Err(Error::InvalidArgument {
                field: "table",
                reason: format!(
                    "{target} would be written under {location}, where table {} lives ({}); choose another name or dest",
                    other.name, other.location
                ),
            });
        }
    }
    let plan = query::plan(catalog, &options.catalog_db, &options.sql).await?;
    for source in &plan.sources {
        if source.table.name == target {
            return Err(Error::InvalidArgument {
                field: "sql",
                reason: format!("the query reads {target}, the table it writes"),
            });
        }
        if source.table.kind != TableKind::Curated {
            return Err(Error::InvalidArgument {
                field: "sql",
                reason: format!(
                    "{} is a {} table: a transform reads curated tables (convert it first; `sluice query` reads landing tables)",
                    source.table.name,
                    kind_word(source.table.kind)
                ),
            });
        }
    }
    let input_id = input_id(&plan, &options.partition_by);
    let sources: Vec<TransformSource> = plan
        .sources
        .iter()
        .map(|s| TransformSource {
            table: s.table.name.clone(),
            files_read: s.read.files_read,
            files_total: s.read.files_total,
            rows_read: s.parts.iter().map(|p| p.rows).sum(),
            pruned_by: s.read.pruned_by.clone(),
        })
        .collect();
    let last = catalog.last_transform(&options.catalog_db, target).await?;
    if let (Some(last), Some(table)) = (&last, &existing)
        && last.input_id == input_id
        && !options.force
    {
        // Built already; finish its publish if it stopped after its commit.
        publish(
            curated_lake,
            catalog,
            &catalog.unpublished_files(Some(table.id)).await?,
            None,
        )
        .await?;
        let files = catalog.curated_files(table.id).await?;
        return Ok(TransformReport {
            table: target.to_owned(),
            status: TransformStatus::Unchanged,
            input_id,
            run_id: last.run_id,
            location: table.location.clone(),
            sources,
            rows: files.iter().map(|f| f.rows).sum(),
            files: files.len(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            partitions: distinct_partitions(files.iter().map(|f| &f.partition_values)),
            schema_version: table.current_version,
            schema_changed: false,
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }

    // The run's record comes first, so that vacuum finds what a stopped run staged.
    let run_table = plan.sources[0].table.id;
    let run_id = catalog
        .begin_conversion(run_table, location.as_str())
        .await?;
    let outcome = build(
        curated_lake,
        catalog,
        options,
        plan,
        Built {
            run_id,
            location: &location,
            input_id: &input_id,
            previous_run: last.map_or(0, |l| l.run_id),
            existing: existing.as_ref(),
            sources,
            started,
        },
    )
    .await;
    catalog.settle_run(run_id, started, outcome).await
}

/// What [`build`] needs besides the plan.
struct Built<'a> {
    run_id: i64,
    location: &'a LakeKey,
    input_id: &'a str,
    previous_run: i64,
    existing: Option<&'a crate::catalog::TableInfo>,
    sources: Vec<TransformSource>,
    started: Instant,
}

async fn build(
    curated_lake: &Lake,
    catalog: &Catalog,
    options: &TransformOptions,
    plan: Plan,
    run: Built<'_>,
) -> Result<TransformReport> {
    let target = options.target.as_str();
    let sql = plan.sql.clone();
    let result = query::run(curated_lake, curated_lake, plan).await?;
    let partition_by = options.partition_by.clone();
    let frame = result.frame;
    let encoded = tokio::task::spawn_blocking(move || encode(frame, &partition_by)).await??;

    let staging = run.location.join(&format!("_staging/run={}", run.run_id))?;
    let mut files = Vec::with_capacity(encoded.files.len());
    for (index, file) in encoded.files.into_iter().enumerate() {
        let name = format!("part-{:05}-run{}.parquet", index, run.run_id);
        let (partition_location, staging_path) = if file.folder.is_empty() {
            (run.location.to_string(), staging.join(&name)?)
        } else {
            (
                format!("{}/{}", run.location, file.folder),
                staging.join(&format!("{}/{name}", file.folder))?,
            )
        };
        let bytes = file.bytes.len() as i64;
        curated_lake
            .put(&staging_path, bytes::Bytes::from(file.bytes))
            .await?;
        files.push(FileWrite {
            path: format!("{partition_location}/{name}"),
            staging_path: staging_path.to_string(),
            partition_location,
            partition_values: file.values,
            rows: file.rows as i64,
            bytes,
            schema_version: 0,
            sources: Vec::new(),
        });
    }

    // A new schema version when the result's columns differ from the table's.
    let (version, new_versions, schema_changed) = match run.existing {
        Some(table)
            if table.schema.fields() == encoded.schema.fields()
                && table.partition_keys == encoded.partition_keys =>
        {
            (table.current_version, Vec::new(), false)
        }
        Some(table) => {
            let version = table.current_version + 1;
            let change = diff(&table.schema, &encoded.schema);
            (
                version,
                vec![(version, encoded.schema.clone(), change)],
                true,
            )
        }
        None => (
            1,
            vec![(
                1,
                encoded.schema.clone(),
                diff(&Schema::empty(), &encoded.schema),
            )],
            true,
        ),
    };
    for file in &mut files {
        file.schema_version = version;
    }
    if options.stops_at(FailPoint::BeforeCommit) {
        return Err(FailPoint::BeforeCommit.stopped());
    }
    let mut report = TransformReport {
        table: target.to_owned(),
        status: TransformStatus::Built,
        input_id: run.input_id.to_owned(),
        run_id: run.run_id,
        location: run.location.to_string(),
        sources: run.sources,
        rows: encoded.rows as i64,
        files: files.len(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        partitions: distinct_partitions(files.iter().map(|f| &f.partition_values)),
        schema_version: version,
        schema_changed,
        duration_ms: run.started.elapsed().as_millis() as u64,
    };
    let commit = TransformCommit {
        run_id: run.run_id,
        catalog_db: options.catalog_db.clone(),
        curated: CuratedTableWrite {
            existing_id: run.existing.map(|t| t.id),
            name: target.to_owned(),
            location: run.location.to_string(),
            partition_keys: encoded.partition_keys,
            new_versions,
        },
        files,
        input_id: run.input_id.to_owned(),
        sql,
        sources: serde_json::to_value(&report.sources).expect("serializes"),
        previous_run: run.previous_run,
        rows: report.rows,
        duration_ms: report.duration_ms as i64,
        report: serde_json::to_value(&report).expect("serializes"),
    };
    let table_id = catalog.commit_transform(&commit).await?;
    after_commit(curated_lake, catalog, table_id, |p| options.stops_at(p)).await?;
    report.duration_ms = run.started.elapsed().as_millis() as u64;
    Ok(report)
}

/// A table's kind as a person names it.
fn kind_word(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Curated => "curated",
        _ => "landing",
    }
}

/// `tf-` and 16 hex digits of SHA-256 over the SQL, the partitioning and every file read.
pub fn input_id(plan: &Plan, partition_by: &[String]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(plan.sql.as_bytes());
    hasher.update(format!("\npartition_by={partition_by:?}").as_bytes());
    for source in &plan.sources {
        hasher.update(format!("\ntable {}", source.table.name).as_bytes());
        for part in &source.parts {
            hasher.update(format!("\n{}:{}:{}", part.key, part.rows, part.bytes).as_bytes());
        }
    }
    crate::dataset::load::short_id("tf-", hasher)
}

fn distinct_partitions<'a>(values: impl Iterator<Item = &'a Vec<String>>) -> usize {
    values.collect::<BTreeSet<_>>().len()
}
