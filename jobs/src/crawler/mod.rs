//! The Glue-style crawler: turns landed objects under a prefix into catalog tables.
//!
//! Decide, then do: [`plan::select`] picks the objects to read, [`sample::analyze`] learns each
//! object's compression, format, schema and record count (off the async runtime, in parallel),
//! [`group::group`] sorts them into tables, and one transaction ([`Catalog::commit_crawl`])
//! records the outcome. A bad object is recorded as failed with its reason; the crawl goes on.

pub mod decompress;
pub mod group;
pub mod infer;
pub mod layout;
pub mod plan;
pub(crate) mod records;
mod report;
pub mod sample;
pub mod sniff;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use tracing::{info, instrument, warn};

use crate::Result;
use crate::catalog::{Catalog, CatalogDbName, CrawlCommit, SchemaPolicy, TableKind, TableName};
use crate::lake::{Lake, LakeKey};
use group::{ExistingTable, GroupingOptions, Member};
use infer::Node;
use layout::KeyLayout;
use plan::ListedObject;
pub use report::{CrawlReport, Failure, PendingChange, Split, TableChange, TableConflict};
pub use sample::{ObjectAnalysis, ObjectFailure, SampleOptions};
use sniff::{Compression, Format};

/// Progress of a crawl, for progress bars.
#[derive(Debug, Clone)]
pub enum CrawlProgress {
    /// The objects to read are known.
    Planned { objects: usize },
    /// One object was read.
    ObjectDone { key: String },
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(CrawlProgress) + Send + Sync>;

/// What to crawl and how.
#[derive(Clone)]
pub struct CrawlOptions {
    pub catalog_db: CatalogDbName,
    /// Key prefix under the lake root (empty: the whole lake).
    pub prefix: LakeKey,
    /// Read every object again, not only new and changed ones.
    pub recrawl: bool,
    pub sample: SampleOptions,
    pub grouping: GroupingOptions,
    /// Schema-change policy of the tables this crawl creates.
    pub schema_policy: SchemaPolicy,
    /// The share of a column's values one type family needs to type the column
    /// ([`infer::DEFAULT_DOMINANT_SHARE`]); the rest are quarantined at conversion.
    pub dominant_share: f64,
    /// Prepended to the names of new tables.
    pub table_prefix: String,
    /// Objects read at once.
    pub concurrency: usize,
    pub progress: Option<ProgressFn>,
}

impl CrawlOptions {
    /// Defaults for a prefix: sampled and verified objects, `add_columns` policy, one object per core
    /// in flight (twice that, to overlap reads).
    pub fn new(catalog_db: CatalogDbName, prefix: LakeKey) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            catalog_db,
            prefix,
            recrawl: false,
            sample: SampleOptions::default(),
            grouping: GroupingOptions::default(),
            schema_policy: SchemaPolicy::AddColumns,
            dominant_share: infer::DEFAULT_DOMINANT_SHARE,
            table_prefix: String::new(),
            concurrency: cores * 2,
            progress: None,
        }
    }
}

/// One object after reading.
struct Read {
    object: ListedObject,
    outcome: std::result::Result<ObjectAnalysis, ObjectFailure>,
}

/// Crawls `options.prefix` and records what it finds in the catalog.
#[instrument(skip_all, fields(prefix = %options.prefix, catalog_db = %options.catalog_db))]
pub async fn crawl(lake: &Lake, catalog: &Catalog, options: &CrawlOptions) -> Result<CrawlReport> {
    let started = Instant::now();
    let crawl_id = catalog
        .begin_crawl(&options.catalog_db, options.prefix.as_str())
        .await?;
    match run(lake, catalog, options, crawl_id, started).await {
        Ok(report) => {
            info!(
                crawl = crawl_id,
                crawled = report.objects_crawled,
                failed = report.objects_failed,
                unchanged = report.objects_unchanged,
                tables_created = report.tables_created.len(),
                duration_ms = report.duration_ms,
                "crawl finished"
            );
            Ok(report)
        }
        Err(err) => {
            warn!(crawl = crawl_id, error = %err, "crawl failed");
            let elapsed = started.elapsed().as_millis() as i64;
            if let Err(record_err) = catalog
                .fail_crawl(crawl_id, &err.to_string(), elapsed)
                .await
            {
                warn!(crawl = crawl_id, error = %record_err, "could not record the crawl's failure");
            }
            Err(err)
        }
    }
}

async fn list(lake: &Lake, prefix: &LakeKey) -> Result<Vec<ListedObject>> {
    let path = (!prefix.as_str().is_empty()).then(|| lake.path(prefix));
    let metas: Vec<object_store::ObjectMeta> =
        lake.store().list(path.as_ref()).try_collect().await?;
    Ok(metas
        .into_iter()
        .map(|meta| ListedObject {
            key: meta.location.to_string(),
            size: meta.size,
            etag: meta.e_tag,
            last_modified_ms: meta.last_modified.timestamp_millis(),
        })
        .collect())
}

async fn read_object(lake: &Lake, object: ListedObject, sample: SampleOptions) -> Result<Read> {
    let path = object_store::path::Path::from(object.key.as_str());
    if is_parquet_key(&object.key) {
        let outcome = parquet_footer(lake, &path, object.size).await;
        return Ok(Read { object, outcome });
    }
    let bytes = lake.store().get(&path).await?.bytes().await?;
    let outcome = tokio::task::spawn_blocking(move || {
        if bytes.starts_with(b"PAR1") {
            parquet_analysis(bytes)
        } else {
            sample::analyze(&bytes, &sample)
        }
    })
    .await?;
    Ok(Read { object, outcome })
}

/// Keys named as Parquet: their footer is read with range requests, not the whole object.
fn is_parquet_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.ends_with(".parquet") || lower.ends_with(".parq")
}

/// A Parquet object's footer, read with range requests.
async fn parquet_footer(
    lake: &Lake,
    path: &object_store::path::Path,
    size: u64,
) -> std::result::Result<ObjectAnalysis, ObjectFailure> {
    let metadata = crate::lake::ParquetRanges::new(lake, path.clone(), size)
        .metadata()
        .await
        .map_err(|e| ObjectFailure::Parquet {
            detail: e.to_string(),
        })?;
    footer_analysis(&metadata, size)
}

/// A Parquet object in memory: the schema and row count come from its footer.
fn parquet_analysis(bytes: bytes::Bytes) -> std::result::Result<ObjectAnalysis, ObjectFailure> {
    let failure = |detail: String| ObjectFailure::Parquet { detail };
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&bytes)
        .map_err(|e| failure(e.to_string()))?;
    footer_analysis(&metadata, bytes.len() as u64)
}

fn footer_analysis(
    metadata: &parquet::file::metadata::ParquetMetaData,
    size: u64,
) -> std::result::Result<ObjectAnalysis, ObjectFailure> {
    let failure = |detail: String| ObjectFailure::Parquet { detail };
    let file = metadata.file_metadata();
    let schema =
        parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
            .map_err(|e| failure(e.to_string()))?;
    Ok(ObjectAnalysis {
        compression: Compression::None,
        format: Format::Parquet,
        schema: Node::from_schema(&schema),
        raw_data_schema: None,
        sampled_records: 0,
        malformed_records: 0,
        malformed_examples: Vec::new(),
        records: file.num_rows().max(0) as u64,
        records_exact: true,
        error_codes: BTreeMap::new(),
        decompressed_bytes: size,
    })
}

async fn run(
    lake: &Lake,
    catalog: &Catalog,
    options: &CrawlOptions,
    crawl_id: i64,
    started: Instant,
) -> Result<CrawlReport> {
    let prefix = options.prefix.as_str();
    let key_prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let listed = list(lake, &options.prefix).await?;
    let objects_listed = listed.len();
    let known = catalog.known_objects(&key_prefix).await?;
    let selection = plan::select(listed, &known, &key_prefix, options.recrawl);
    if let Some(progress) = &options.progress {
        progress(CrawlProgress::Planned {
            objects: selection.to_crawl.len(),
        });
    }

    let mut reads: Vec<Read> = futures::stream::iter(selection.to_crawl.iter().cloned())
        .map(|object| read_object(lake, object, options.sample.clone()))
        .buffer_unordered(options.concurrency.max(1))
        .inspect_ok(|read| {
            if let Some(progress) = &options.progress {
                progress(CrawlProgress::ObjectDone {
                    key: read.object.key.clone(),
                });
            }
        })
        .try_collect()
        .await?;
    reads.sort_by(|a, b| a.object.key.cmp(&b.object.key));

    let existing_tables = catalog.tables(&options.catalog_db).await?;
    let existing: Vec<ExistingTable> = existing_tables
        .iter()
        .map(|table| ExistingTable {
            id: table.id,
            name: table.name.clone(),
            location: table.location.clone(),
            envelopes: table.kind == TableKind::FirehoseErrors,
            format_family: sniff::family_of(&table.format).to_owned(),
            partition_keys: table
                .partition_keys
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            columns: table
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        })
        .collect();

    let layouts: Vec<KeyLayout> = reads
        .iter()
        .map(|read| layout::layout(&read.object.key))
        .collect();
    let ok: Vec<usize> = (0..reads.len())
        .filter(|&i| reads[i].outcome.is_ok())
        .collect();
    let members: Vec<Member<'_>> = ok
        .iter()
        .map(|&i| {
            let analysis = reads[i].outcome.as_ref().expect("filtered to successes");
            Member {
                layout: &layouts[i],
                format: analysis.format,
                schema: &analysis.schema,
            }
        })
        .collect();
    let base_name = |root: &str, envelopes: bool| {
        // Named after the path below the crawl prefix; a root at or above the prefix (a crawl of
        // one day's folder, say) is named after its last segment.
        let relative = root
            .strip_prefix(&key_prefix)
            .unwrap_or_default()
            .trim_matches('/');
        let text = if !relative.is_empty() {
            relative
        } else if !root.is_empty() {
            root.rsplit('/').next().unwrap_or(root)
        } else {
            lake.root_name().unwrap_or("landing")
        };
        let mut name = TableName::sanitize(&format!("{}{text}", options.table_prefix)).to_string();
        if envelopes && !name.contains("fail") {
            name.push_str("_processing_failed");
        }
        name
    };
    let groups = group::group(&members, &existing, &options.grouping, base_name);

    let mut report = CrawlReport {
        format: 1,
        crawl_id,
        catalog_db: options.catalog_db.to_string(),
        prefix: prefix.to_owned(),
        objects_listed,
        objects_hidden: selection.hidden,
        objects_unchanged: selection.unchanged,
        objects_new: selection.to_crawl.len() - selection.changed,
        objects_changed: selection.changed,
        objects_gone: selection.gone.len(),
        objects_crawled: 0,
        objects_failed: 0,
        tables_created: Vec::new(),
        tables_updated: Vec::new(),
        schema_versions: Vec::new(),
        logged_changes: Vec::new(),
        splits: Vec::new(),
        conflicts: Vec::new(),
        pending_changes: Vec::new(),
        failures: Vec::new(),
        partitions: 0,
        records: 0,
        malformed_in_sample: 0,
        bytes_read: reads.iter().map(|r| r.object.size).sum(),
        duration_ms: 0,
    };

    let by_id: HashMap<i64, &crate::catalog::TableInfo> =
        existing_tables.iter().map(|t| (t.id, t)).collect();
    let mut tables = Vec::new();
    for group in &groups {
        let current = group.existing.and_then(|id| by_id.get(&id).copied());
        let indices: Vec<usize> = group.members.iter().map(|&m| ok[m]).collect();
        tables.push(write::table_write(
            group,
            current,
            &reads,
            &layouts,
            &indices,
            options,
            &mut report,
        ));
    }

    let mut failed_objects = Vec::new();
    for read in &reads {
        if let Err(failure) = &read.outcome {
            report.failures.push(Failure {
                key: read.object.key.clone(),
                reason: failure.to_string(),
            });
            failed_objects.push(write::object_write(&read.object, Err(failure), None));
        }
    }
    report.objects_failed = failed_objects.len();
    report.duration_ms = started.elapsed().as_millis() as u64;

    let commit = CrawlCommit {
        crawl_id,
        catalog_db: options.catalog_db.clone(),
        tables,
        failed_objects,
        gone_objects: selection.gone.clone(),
        objects_listed: objects_listed as i64,
        objects_skipped: (selection.unchanged + selection.hidden) as i64,
        bytes_read: report.bytes_read as i64,
        duration_ms: report.duration_ms as i64,
        report: serde_json::to_value(&report).expect("reports serialize"),
    };
    catalog.commit_crawl(&commit).await?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
