//! Conversion, as Glue ETL: a crawled table's landed objects become Hive-partitioned zstd
//! Parquet, `<dest>/<table>/year=YYYY/month=MM/day=DD/part-<uuid>.parquet`, partitioned by event
//! time, exactly once, with every record either written or quarantined.
//!
//! Decide, then do: the sources are the table's objects without a bookmark; [`pipeline`] decodes
//! and writes them into the run's staging prefix; the run reconciles every source (read equals
//! written plus quarantined) and commits files, lineage and bookmarks in one transaction
//! ([`Catalog::commit_conversion`]); then [`publish`] moves the files into place. A run stopped at
//! any point is harmless: before the commit nothing it wrote is visible (vacuum removes it), after
//! it the next run or vacuum finishes the move.

pub mod compact;
pub mod decode;
pub mod mapping;
mod options;
pub mod partition;
mod pipeline;
pub mod publish;
pub mod scope;
mod stream;
mod write;

use std::time::Instant;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;
use tracing::{info, instrument, warn};

use crate::catalog::conversion::{
    Bookmark, ConversionCommit, CuratedTableWrite, FileWrite, Replace,
};
use crate::catalog::schema::diff;
use crate::catalog::{Catalog, SchemaPolicy, TableInfo, TableKind};
use crate::lake::{Lake, LakeKey};
use crate::{Error, Result};
pub use compact::{CompactOptions, CompactReport, compact};
pub use options::{ConvertMode, ConvertOptions, FailPoint, SourceDone};
pub use partition::Granularity;
pub use publish::{VacuumReport, vacuum};
pub use write::FileOptions;

/// What a run did (or, dry, would do); stored with the run. A persisted format: fields are only
/// added, and `format` says which.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConvertReport {
    pub format: u32,
    pub run_id: Option<i64>,
    pub table: String,
    pub curated_table: String,
    pub dry_run: bool,
    pub sources: usize,
    pub source_bytes: i64,
    pub records_read: u64,
    pub records_written: u64,
    pub records_quarantined: u64,
    /// Objects that could not be read at all (corrupt, not JSON), with why.
    pub unreadable: Vec<(String, String)>,
    /// Every source reconciled: read = written + quarantined.
    pub reconciled: bool,
    pub files: Vec<String>,
    pub bytes_written: i64,
    pub partitions: Vec<String>,
    pub event_time: Option<String>,
    pub schema_version: Option<i64>,
    pub new_columns: Vec<String>,
    pub quarantine: Option<String>,
    /// A range reprocess: what it replaced.
    pub reprocessed: Option<scope::ReprocessScope>,
    pub duration_ms: u64,
}

/// Chooses the event-time column: as configured, else `ts`-like names, else the first timestamp.
fn event_column(schema: &Schema, configured: Option<&str>) -> Result<Option<String>> {
    if let Some(name) = configured {
        return match schema.field_with_name(name) {
            Ok(field) if matches!(field.data_type(), DataType::Timestamp(..)) => {
                Ok(Some(name.to_owned()))
            }
            _ => Err(Error::InvalidArgument {
                field: "event time",
                reason: format!("{name:?} is not a timestamp column of the table"),
            }),
        };
    }
    let timestamps: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| matches!(f.data_type(), DataType::Timestamp(..)))
        .map(|f| f.name().as_str())
        .collect();
    let preferred = ["ts", "event_time", "timestamp", "time", "event_ts"];
    Ok(preferred
        .iter()
        .find(|p| timestamps.contains(p))
        .or(timestamps.first())
        .map(|s| (*s).to_owned()))
}

/// The table's mapping (catalog property `mapping`), checked against its schema.
fn table_mapping(table: &TableInfo) -> Result<Option<mapping::Mapping>> {
    let Some(value) = table.properties.get("mapping").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let mapping: mapping::Mapping =
        serde_json::from_value(value.clone()).map_err(|e| Error::InvalidArgument {
            field: "mapping",
            reason: format!("table {}: {e}", table.name),
        })?;
    mapping.validate(&table.schema)?;
    Ok(Some(mapping))
}

/// Converts a table's new landed objects; see the module doc.
#[instrument(skip_all, fields(table = %options.table))]
pub async fn convert(
    source_lake: &Lake,
    curated_lake: &Lake,
    catalog: &Catalog,
    options: &ConvertOptions,
) -> Result<ConvertReport> {
    let started = Instant::now();
    let table = catalog.table(&options.catalog_db, &options.table).await?;
    if table.kind == TableKind::Curated {
        return Err(Error::InvalidArgument {
            field: "table",
            reason: format!("{} is already a curated table", table.name),
        });
    }
    let curated_name = format!("{}_curated", table.name);
    let curated = match catalog.table(&options.catalog_db, &curated_name).await {
        Ok(curated) => Some(curated),
        Err(Error::TableNotFound { .. }) => None,
        Err(err) => return Err(err),
    };
    if let Some(curated) = &curated {
        let stranded = catalog.unpublished_files(Some(curated.id)).await?;
        if !stranded.is_empty() {
            warn!(
                files = stranded.len(),
                "finishing the publish of an earlier run"
            );
            publish::publish(curated_lake, catalog, &stranded, None).await?;
        }
    }
    let mut reprocessed = scope::resolve(catalog, curated.as_ref(), options).await?;
    let mut sources = catalog
        .pending_sources(table.id, &table.location, options.mode.reprocess())
        .await?;
    if options.mode.reprocess()
        && let Some(curated) = &curated
    {
        let gone = catalog.gone_objects(table.id).await?;
        if !gone.is_empty() {
            let lineage = catalog.curated_lineage(curated.id).await?;
            let keys: Vec<String> = sources.iter().map(|s| s.key.clone()).collect();
            reprocessed = scope::around_gone(&lineage, &gone, reprocessed, &keys);
        }
    }
    if let Some(scope) = &reprocessed {
        let wanted: std::collections::HashSet<&str> =
            scope.sources.iter().map(String::as_str).collect();
        sources.retain(|s| wanted.contains(s.key.as_str()));
    }
    if let Some(only) = &options.objects {
        sources.retain(|s| only.contains(&s.key));
        let pending: std::collections::HashSet<&str> =
            sources.iter().map(|s| s.key.as_str()).collect();
        let others: Vec<&String> = only
            .iter()
            .filter(|k| !pending.contains(k.as_str()))
            .collect();
        let converted = catalog.converted_among(table.id, &others).await?;
        if let Some(unknown) = others.iter().find(|k| !converted.contains(k.as_str())) {
            return Err(Error::InvalidArgument {
                field: "objects",
                reason: format!(
                    "{unknown} is not an object of table {} (crawl it first, or name it by its key in the lake)",
                    table.name
                ),
            });
        }
    }
    let event_time = event_column(&table.schema, options.event_time.as_deref())?;
    let location = options.dest.join(&table.name)?;
    let mut report = ConvertReport {
        format: 1,
        run_id: None,
        table: table.name.clone(),
        curated_table: curated_name.clone(),
        dry_run: options.mode.dry_run(),
        sources: sources.len(),
        source_bytes: sources.iter().map(|s| s.size).sum(),
        records_read: 0,
        records_written: 0,
        records_quarantined: 0,
        unreadable: Vec::new(),
        reconciled: true,
        files: Vec::new(),
        bytes_written: 0,
        partitions: Vec::new(),
        event_time: event_time.clone(),
        schema_version: curated.as_ref().map(|c| c.current_version),
        new_columns: Vec::new(),
        quarantine: None,
        reprocessed,
        duration_ms: 0,
    };
    if options.mode.dry_run() || sources.is_empty() {
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }

    let run_id = catalog
        .begin_conversion(table.id, location.as_str())
        .await?;
    report.run_id = Some(run_id);
    match run(
        source_lake,
        curated_lake,
        catalog,
        options,
        &table,
        curated.as_ref(),
        &sources,
        event_time,
        run_id,
        &mut report,
        started,
    )
    .await
    {
        Ok(()) => {
            info!(
                run = run_id,
                read = report.records_read,
                written = report.records_written,
                quarantined = report.records_quarantined,
                files = report.files.len(),
                duration_ms = report.duration_ms,
                "conversion finished"
            );
            Ok(report)
        }
        Err(err) => {
            warn!(run = run_id, error = %err, "conversion failed");
            catalog
                .fail_conversion(
                    run_id,
                    &err.to_string(),
                    started.elapsed().as_millis() as i64,
                )
                .await?;
            Err(err)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    source_lake: &Lake,
    curated_lake: &Lake,
    catalog: &Catalog,
    options: &ConvertOptions,
    table: &TableInfo,
    curated: Option<&TableInfo>,
    sources: &[crate::catalog::conversion::SourceObject],
    event_time: Option<String>,
    run_id: i64,
    report: &mut ConvertReport,
    started: Instant,
) -> Result<()> {
    let location = options.dest.join(&table.name)?;
    let schema: SchemaRef = std::sync::Arc::new(table.schema.clone());
    let mapping = table_mapping(table)?;
    // What the curated files hold: the table's schema through its mapping.
    let output_schema = |schema: &SchemaRef| -> Result<SchemaRef> {
        match &mapping {
            Some(mapping) => mapping.schema(schema),
            None => Ok(schema.clone()),
        }
    };
    let event_time = event_time.and_then(|name| match &mapping {
        Some(mapping) if mapping.drop.contains(&name) => None,
        Some(mapping) => Some(mapping.rename.get(&name).cloned().unwrap_or(name)),
        None => Some(name),
    });
    let first_output = output_schema(&schema)?;
    let (base_version, schema_is_new) = match curated {
        Some(c) if c.schema.fields() == first_output.fields() => (c.current_version, false),
        Some(c) => (c.current_version + 1, true),
        None => (1, true),
    };
    let spec = pipeline::PipelineSpec {
        schema: schema.clone(),
        event_column: event_time,
        granularity: options.granularity,
        allow_new_fields: table.schema_policy != SchemaPolicy::Log,
        mapping: mapping.clone(),
        files: options.files.clone(),
        concurrency: options.concurrency,
        base_version,
        staging: location.join(&format!("_staging/run={run_id}"))?,
        on_source: options.on_source.clone(),
        line_format: decode::LineFormat::of_table(table),
    };
    let output = pipeline::run(source_lake, curated_lake, sources, &spec).await?;

    // Reconcile every source: read = written + quarantined, and the files hold what was written.
    let mut from_files: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for (file, _) in &output.files {
        for (source, rows) in &file.sources {
            *from_files.entry(source.as_str()).or_default() += rows;
        }
    }
    let quarantine_key = LakeKey::parse(&format!(
        "quarantine/{}/run={run_id}/quarantine.ndjson",
        table.name
    ))?;
    let mut quarantine_lines = String::new();
    let mut bookmarks = Vec::with_capacity(output.sources.len());
    let crawled_counts: std::collections::HashMap<&str, Option<u64>> = sources
        .iter()
        .map(|s| (s.key.as_str(), s.crawled_records))
        .collect();
    for (key, outcome) in &output.sources {
        let quarantined = outcome.quarantined.len() as u64;
        let in_files = from_files.get(key.as_str()).copied().unwrap_or(0);
        let crawled = crawled_counts.get(key.as_str()).copied().flatten();
        if let Some(counted) = crawled.filter(|_| outcome.unreadable.is_none())
            && counted != outcome.read
        {
            report.reconciled = false;
            return Err(Error::CrawlDisagrees {
                object: key.clone(),
                crawled: counted,
                read: outcome.read,
            });
        }
        if outcome.read != outcome.written + quarantined || in_files != outcome.written {
            report.reconciled = false;
            return Err(Error::Reconciliation {
                object: key.clone(),
                read: outcome.read,
                written: in_files,
                quarantined,
            });
        }
        for entry in &outcome.quarantined {
            quarantine_lines.push_str(&serde_json::to_string(entry).expect("serializes"));
            quarantine_lines.push('\n');
        }
        if let Some(reason) = &outcome.unreadable {
            report.unreadable.push((key.clone(), reason.clone()));
            let entry = serde_json::json!({"source_key": key, "line": null, "byte_offset": null, "reason": format!("object unreadable: {reason}"), "record": null});
            quarantine_lines.push_str(&entry.to_string());
            quarantine_lines.push('\n');
        }
        report.records_read += outcome.read;
        report.records_written += outcome.written;
        report.records_quarantined += quarantined;
        let has_quarantine = quarantined > 0 || outcome.unreadable.is_some();
        bookmarks.push(Bookmark {
            source_key: key.clone(),
            records_read: outcome.read as i64,
            records_written: outcome.written as i64,
            records_quarantined: quarantined as i64,
            quarantine_path: has_quarantine.then(|| quarantine_key.to_string()),
        });
    }
    if !quarantine_lines.is_empty() {
        curated_lake
            .put(&quarantine_key, bytes::Bytes::from(quarantine_lines))
            .await?;
        report.quarantine = Some(quarantine_key.to_string());
    }

    // The curated table's new schema versions, and the landing table's discovered columns.
    let mut new_versions = Vec::new();
    let mut previous = curated
        .map(|c| c.schema.clone())
        .unwrap_or_else(Schema::empty);
    for (index, schema) in output.schemas.iter().enumerate() {
        if index == 0 && !schema_is_new {
            continue;
        }
        let version = base_version + index as i64;
        let schema = output_schema(schema)?;
        new_versions.push((version, schema.as_ref().clone(), diff(&previous, &schema)));
        previous = schema.as_ref().clone();
    }
    let widest = output.schemas.last().expect("the table's schema");
    let source_version = (widest.fields() != schema.fields()).then(|| {
        let change = diff(&table.schema, widest);
        report.new_columns = change.added.iter().map(|c| c.column.clone()).collect();
        (widest.as_ref().clone(), change)
    });
    let partition_keys: Vec<Field> = options
        .granularity
        .keys()
        .iter()
        .map(|k| Field::new(*k, DataType::Int32, false))
        .collect();
    let files: Vec<FileWrite> = output
        .files
        .iter()
        .map(|(file, staging)| {
            let partition_location = format!("{}/{}", location, file.partition.path());
            FileWrite {
                path: format!("{partition_location}/{}", file.name),
                staging_path: staging.to_string(),
                partition_location,
                partition_values: file.partition.values(),
                rows: file.rows as i64,
                bytes: file.bytes as i64,
                schema_version: file.schema_version,
                sources: file
                    .sources
                    .iter()
                    .map(|(k, v)| (k.clone(), *v as i64))
                    .collect(),
            }
        })
        .collect();
    report.files = files.iter().map(|f| f.path.clone()).collect();
    report.bytes_written = files.iter().map(|f| f.bytes).sum();
    report.partitions = files
        .iter()
        .map(|f| f.partition_location.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    report.schema_version = new_versions
        .last()
        .map(|(v, _, _)| *v)
        .or(report.schema_version);
    if options.stops_at(FailPoint::BeforeCommit) {
        return Err(FailPoint::BeforeCommit.stopped());
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    let commit = ConversionCommit {
        run_id,
        catalog_db: options.catalog_db.clone(),
        source_table_id: table.id,
        source_version,
        curated: CuratedTableWrite {
            existing_id: curated.map(|c| c.id),
            name: report.curated_table.clone(),
            location: location.to_string(),
            partition_keys,
            new_versions,
        },
        files,
        bookmarks,
        replace: match (&report.reprocessed, options.mode.reprocess()) {
            (Some(scope), _) => Replace::Files {
                files: scope.files.clone(),
                sources: scope.sources.clone(),
            },
            (None, true) => Replace::All,
            (None, false) => Replace::Nothing,
        },
        duration_ms: report.duration_ms as i64,
        report: serde_json::to_value(&*report).expect("serializes"),
    };
    let curated_id = catalog.commit_conversion(&commit).await?;
    publish::after_commit(curated_lake, catalog, curated_id, |p| options.stops_at(p)).await?;
    if options.mode.reprocess() {
        vacuum(curated_lake, catalog, i64::MAX / 2).await?;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(())
}
