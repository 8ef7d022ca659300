//! Compaction: merges the small files of each partition of a curated table, atomically.
//!
//! Per partition, published files are packed into bins of at most the target size; each bin of
//! two or more files is rewritten as one file (widened to the bin's newest schema). One
//! transaction records the new files with the union of their lineage and marks the replaced
//! files removed; then the new files are moved into place and the old ones deleted. Rows are
//! counted on both sides before the commit: a compaction that would lose or add one commits
//! nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use super::partition::PartitionKey;
use super::pipeline::widen;
use super::publish::{publish, vacuum};
use super::write::{FileOptions, Writers};
use crate::catalog::conversion::{CuratedFile, FileWrite};
use crate::catalog::{Catalog, CatalogDbName, TableKind};
use crate::lake::{Lake, LakeKey};
use crate::{Error, Result};

/// What to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    pub catalog_db: CatalogDbName,
    /// The crawled table or its curated table.
    pub table: String,
    pub files: FileOptions,
}

/// What a compaction did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactReport {
    pub table: String,
    pub run_id: Option<i64>,
    pub partitions_compacted: usize,
    pub files_before: usize,
    pub files_after: usize,
    pub rows: i64,
    pub bytes_before: i64,
    pub bytes_after: i64,
    pub duration_ms: u64,
}

fn partition_of(file: &CuratedFile) -> Option<PartitionKey> {
    let value = |i: usize| {
        file.partition_values
            .get(i)
            .and_then(|v| v.parse::<u32>().ok())
    };
    Some(PartitionKey {
        year: value(0)? as i32,
        month: value(1)?,
        day: value(2)?,
        hour: value(3),
    })
}

/// Bins of files, in path order, whose sizes add up to at most `target` (a larger file stands alone).
fn bins(files: Vec<CuratedFile>, target: u64) -> Vec<Vec<CuratedFile>> {
    let mut bins: Vec<Vec<CuratedFile>> = Vec::new();
    let mut size = 0_u64;
    for file in files {
        let bytes = file.bytes.max(0) as u64;
        match bins.last_mut() {
            Some(bin) if size + bytes <= target => {
                size += bytes;
                bin.push(file);
            }
            _ => {
                size = bytes;
                bins.push(vec![file]);
            }
        }
    }
    bins.into_iter().filter(|bin| bin.len() > 1).collect()
}

fn read_file(bytes: bytes::Bytes, path: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let invalid = |reason: String| Error::InvalidArgument {
        field: "curated file",
        reason: format!("{path}: {reason}"),
    };
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| invalid(e.to_string()))?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .map_err(|e| invalid(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    Ok((schema, batches))
}

/// Compacts a curated table; see the module doc.
pub async fn compact(
    lake: &Lake,
    catalog: &Catalog,
    options: &CompactOptions,
) -> Result<CompactReport> {
    let started = Instant::now();
    let named = catalog.table(&options.catalog_db, &options.table).await?;
    let curated = if named.kind == TableKind::Curated {
        named
    } else {
        catalog
            .table(&options.catalog_db, &format!("{}_curated", named.name))
            .await?
    };
    let source_table_id = curated.properties["source_table_id"]
        .as_i64()
        .unwrap_or(curated.id);
    let mut report = CompactReport {
        table: curated.name.clone(),
        ..CompactReport::default()
    };
    let mut by_partition: BTreeMap<Vec<String>, Vec<CuratedFile>> = BTreeMap::new();
    for file in catalog.curated_files(curated.id).await? {
        by_partition
            .entry(file.partition_values.clone())
            .or_default()
            .push(file);
    }
    let work: Vec<Vec<CuratedFile>> = by_partition
        .into_values()
        .flat_map(|files| bins(files, options.files.target_file_bytes))
        .collect();
    if work.is_empty() {
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    let run_id = catalog
        .begin_conversion(source_table_id, &curated.location)
        .await?;
    report.run_id = Some(run_id);
    let staging = LakeKey::parse(&format!("{}/_staging/run={run_id}", curated.location))?;
    let outcome = rewrite(
        lake,
        catalog,
        &curated.location,
        curated.id,
        &staging,
        run_id,
        &work,
        &options.files,
        &mut report,
    )
    .await;
    catalog.settle_run(run_id, started, outcome).await?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn rewrite(
    lake: &Lake,
    catalog: &Catalog,
    location: &str,
    curated_id: i64,
    staging: &LakeKey,
    run_id: i64,
    work: &[Vec<CuratedFile>],
    files: &FileOptions,
    report: &mut CompactReport,
) -> Result<()> {
    let mut commits = Vec::with_capacity(work.len());
    for bin in work {
        let partition = partition_of(&bin[0]).ok_or_else(|| Error::InvalidArgument {
            field: "partition",
            reason: format!("unexpected partition values {:?}", bin[0].partition_values),
        })?;
        let mut contents = Vec::with_capacity(bin.len());
        for file in bin {
            let bytes = lake.get(&LakeKey::parse(&file.path)?).await?;
            let path = file.path.clone();
            contents.push(tokio::task::spawn_blocking(move || read_file(bytes, &path)).await??);
        }
        let newest = bin
            .iter()
            .enumerate()
            .max_by_key(|(_, f)| f.schema_version)
            .map(|(i, _)| i)
            .expect("a bin has files");
        let schema: SchemaRef = Arc::clone(&contents[newest].0);
        let version = bin[newest].schema_version;
        let rows_before: i64 = bin.iter().map(|f| f.rows).sum();
        let one_file = FileOptions {
            target_file_bytes: u64::MAX,
            ..files.clone()
        };
        let (spool, written) = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut writers = Writers::new(one_file).map_err(|e| Error::InvalidArgument { field: "spool", reason: e.to_string() })?;
            let parquet = |e: parquet::errors::ParquetError| Error::InvalidArgument { field: "parquet output", reason: e.to_string() };
            for (file_schema, batches) in &contents {
                for batch in batches {
                    let batch = widen(batch, &schema).ok_or_else(|| Error::InvalidArgument {
                        field: "compaction",
                        reason: format!("a file's schema {file_schema:?} does not widen to the partition's newest"),
                    })?;
                    writers.write(partition, &batch, version, "compaction").map_err(parquet)?;
                }
            }
            let mut finished = writers.finish_all().map_err(parquet)?;
            // The writers own the spool: they live until the file is uploaded.
            Ok((writers, finished.pop().expect("one file per bin")))
        })
        .await??;
        if written.rows as i64 != rows_before {
            return Err(Error::InvalidArgument {
                field: "compaction",
                reason: format!(
                    "{} rows read but {} written; nothing was committed",
                    rows_before, written.rows
                ),
            });
        }
        let key = staging.join(&format!("{}/{}", partition.path(), written.name))?;
        super::pipeline::upload(lake, &written, &key).await?;
        drop(spool);
        let partition_location = format!("{location}/{}", partition.path());
        report.files_before += bin.len();
        report.files_after += 1;
        report.rows += rows_before;
        report.bytes_before += bin.iter().map(|f| f.bytes).sum::<i64>();
        report.bytes_after += written.bytes as i64;
        commits.push((
            FileWrite {
                path: format!("{partition_location}/{}", written.name),
                staging_path: key.to_string(),
                partition_location,
                partition_values: partition.values(),
                rows: written.rows as i64,
                bytes: written.bytes as i64,
                schema_version: version,
                sources: Vec::new(),
            },
            bin.iter().map(|f| f.id).collect::<Vec<_>>(),
        ));
    }
    report.partitions_compacted = commits
        .iter()
        .map(|(f, _)| f.partition_location.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    catalog
        .commit_compaction(run_id, curated_id, &commits)
        .await?;
    publish(
        lake,
        catalog,
        &catalog.unpublished_files(Some(curated_id)).await?,
        None,
    )
    .await?;
    vacuum(lake, catalog, i64::MAX / 2).await?;
    Ok(())
}
