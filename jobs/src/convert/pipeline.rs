//! The conversion pipeline: sources are fetched and decoded in parallel (off the async runtime),
//! and one writer thread routes rows into partition files and uploads finished files into the
//! run's staging prefix. CPU-bound work never runs on the async runtime, and memory is bounded by
//! the sources in flight and the open row groups.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, new_null_array};
use arrow::datatypes::{Schema, SchemaRef};
use object_store::{ObjectStoreExt, PutPayload};

use super::decode::{Decoded, Quarantined, decode_object};
use super::partition::{Granularity, PartitionKey, split_by_partition};
use super::stream::{map_parquet, stream_parquet};
use super::write::{FileOptions, SpooledFile, Writers};
use crate::catalog::conversion::SourceObject;
use crate::crawler::decompress::{decompress_into, zip_entries};
use crate::crawler::sniff::Compression;
use crate::lake::{Lake, LakeKey};
use crate::{Error, Result};

/// What the pipeline needs to know of the run.
pub struct PipelineSpec {
    pub schema: SchemaRef,
    pub event_column: Option<String>,
    pub granularity: Granularity,
    pub allow_new_fields: bool,
    /// The table's mapping, applied to every batch (the event column is named as it comes out).
    pub mapping: Option<super::mapping::Mapping>,
    pub files: FileOptions,
    pub concurrency: usize,
    /// The curated table's schema version of `schema`; later schemas of the run count up from it.
    pub base_version: i64,
    /// Where finished files are uploaded: `<dest>/<table>/_staging/run=<id>`.
    pub staging: LakeKey,
    pub on_source: Option<super::SourceDone>,
    /// A line-oriented table's format (CSV, TSV, Apache log): its objects are read as rows.
    pub line_format: Option<super::decode::LineFormat>,
}

/// One source's outcome.
#[derive(Debug, Default)]
pub struct SourceOutcome {
    pub read: u64,
    pub written: u64,
    pub quarantined: Vec<Quarantined>,
    /// The whole object could not be read (corrupt, not JSON): why.
    pub unreadable: Option<String>,
}

/// What the pipeline produced.
pub struct PipelineOutput {
    pub files: Vec<(SpooledFile, LakeKey)>,
    pub sources: BTreeMap<String, SourceOutcome>,
    /// Every schema rows were written with, oldest first (the first is the table's).
    pub schemas: Vec<SchemaRef>,
}

/// The arrival partition of an object: its Firehose folders, or its modification time.
fn fallback_partition(source: &SourceObject, granularity: Granularity) -> PartitionKey {
    let layout = crate::crawler::layout::layout(&source.key);
    let value = |name: &str| {
        layout
            .partition
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<u32>().ok())
    };
    match (value("year"), value("month"), value("day")) {
        (Some(year), Some(month), Some(day)) => PartitionKey {
            year: year as i32,
            month,
            day,
            hour: (granularity == Granularity::Hour).then(|| value("hour").unwrap_or(0)),
        },
        _ => PartitionKey::from_micros(source.last_modified.saturating_mul(1000), granularity)
            .expect("a valid time"),
    }
}

/// Pads a batch with null columns up to a wider schema of the same columns plus new ones.
pub(super) fn widen(batch: &RecordBatch, schema: &SchemaRef) -> Option<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(
            |field| match batch.schema().column_with_name(field.name()) {
                Some((index, existing)) if existing.data_type() == field.data_type() => {
                    Some(batch.column(index).clone())
                }
                Some(_) => None,
                None => Some(new_null_array(field.data_type(), batch.num_rows())),
            },
        )
        .collect::<Option<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns).ok()
}

pub(super) async fn upload(lake: &Lake, file: &SpooledFile, key: &LakeKey) -> Result<()> {
    const PART: usize = 8 << 20;
    let path = lake.path(key);
    if file.bytes as usize <= PART {
        let bytes = tokio::fs::read(&file.local).await.map_err(spool_error)?;
        lake.store().put(&path, PutPayload::from(bytes)).await?;
        return Ok(());
    }
    let mut upload = lake.store().put_multipart(&path).await?;
    let mut local = tokio::fs::File::open(&file.local)
        .await
        .map_err(spool_error)?;
    loop {
        let mut part = vec![0_u8; PART];
        let mut filled = 0;
        while filled < PART {
            let n = tokio::io::AsyncReadExt::read(&mut local, &mut part[filled..])
                .await
                .map_err(spool_error)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        part.truncate(filled);
        upload.put_part(PutPayload::from(part)).await?;
    }
    upload.complete().await?;
    Ok(())
}

/// The spool is local disk: its IO errors surface as object-store errors of the "spool" store.
fn spool_error(err: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "spool",
        source: Box::new(err),
    }
}

/// The run's schemas (pre-mapping), shared by the workers: the first is the table's, each later
/// one adds columns that decoding found.
struct Schemas {
    all: Vec<SchemaRef>,
}

impl Schemas {
    /// Records an object's schema; returns the widest schema (for widening batches).
    fn merge(&mut self, object: &SchemaRef) -> SchemaRef {
        let current = self.all.last().expect("the table's schema").clone();
        if object.fields() != current.fields() {
            let merged = Schema::new(super::decode::merge_add_only(
                current.fields(),
                object.fields(),
            ));
            if merged.fields() != current.fields() {
                self.all.push(Arc::new(merged));
            }
        }
        self.all.last().expect("one schema").clone()
    }

    fn index_of(&mut self, schema: &SchemaRef) -> usize {
        self.all
            .iter()
            .position(|s| s.fields() == schema.fields())
            .unwrap_or_else(|| {
                self.all.push(schema.clone());
                self.all.len() - 1
            })
    }
}

/// Decodes an object's decompressed text (`text` may be replaced by the JSON lines a
/// line-oriented format becomes), its mapping applied.
fn decode_text(
    spec: &PipelineSpec,
    text: &mut Vec<u8>,
    key: &str,
    latest: &SchemaRef,
) -> std::result::Result<Decoded, String> {
    // Line-oriented landings are read as JSON lines typed by the table's schema.
    let rows = spec.line_format.map(|format| format.to_json(text, latest));
    if let Some(rows) = &rows {
        text.clear();
        text.extend_from_slice(&rows.json);
    }
    let mut object = if rows.as_ref().is_some_and(|r| r.json.is_empty()) {
        Decoded::empty(latest.clone())
    } else {
        decode_object(text, key, latest, spec.allow_new_fields)?
    };
    if let Some(mapping) = &spec.mapping {
        object
            .apply_mapping(mapping, text, key)
            .map_err(|e| e.to_string())?;
    }
    if let Some(rows) = rows {
        rows.restore(&mut object, key);
    }
    Ok(object)
}

/// A zip archive: each file decoded as its own source, the object the sum of them. A
/// quarantined record names its file (`zip file "a.json": ...`), with its line in that file.
fn decode_zip(
    spec: &PipelineSpec,
    bytes: &[u8],
    key: &str,
    latest: &SchemaRef,
    text: &mut Vec<u8>,
) -> std::result::Result<Decoded, String> {
    let mut parts = Vec::new();
    for (name, data) in zip_entries(bytes).map_err(|f| f.to_string())? {
        if data.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        decompress_into(&data, text).map_err(|f| format!("zip file {name:?}: {f}"))?;
        let mut part =
            decode_text(spec, text, key, latest).map_err(|e| format!("zip file {name:?}: {e}"))?;
        for entry in &mut part.quarantined {
            entry.reason = format!("zip file {name:?}: {}", entry.reason);
        }
        parts.push(part);
    }
    let mut schema = latest.clone();
    for part in &parts {
        schema = Arc::new(Schema::new(super::decode::merge_add_only(
            schema.fields(),
            part.schema.fields(),
        )));
    }
    let mut total = Decoded::empty(schema.clone());
    for part in parts {
        let offset = total.spans.len() as u32;
        for (batch, rows) in part.batches.iter().zip(part.row_spans) {
            // A file that found fewer new columns is widened to the archive's schema (mapped
            // batches are widened by the run, to its mapped schema).
            let batch = widen(batch, &schema).unwrap_or_else(|| batch.clone());
            total.batches.push(batch);
            total
                .row_spans
                .push(rows.into_iter().map(|r| r + offset).collect());
        }
        total.spans.extend(part.spans);
        total.quarantined.extend(part.quarantined);
        total.records_read += part.records_read;
    }
    Ok(total)
}

/// Routes a decoded object (or a row group of one) into the writers of its rows' partitions:
/// its counts go to `outcome`, finished files to `ship`.
fn route(
    shared: &Shared<'_>,
    source: &SourceObject,
    object: Decoded,
    outcome: &mut SourceOutcome,
    writers: &mut Writers,
    ship: &mut dyn FnMut(Vec<SpooledFile>) -> Result<()>,
) -> Result<()> {
    let spec = shared.spec;
    outcome.read += object.records_read;
    outcome.quarantined.extend(object.quarantined);
    let (target, object_index) = {
        let mut schemas = shared.schemas.lock().expect("not poisoned");
        let target = schemas.merge(&object.schema);
        (target, schemas.index_of(&object.schema))
    };
    let target_index = shared
        .schemas
        .lock()
        .expect("not poisoned")
        .index_of(&target);
    // Batches are widened to the run's widest schema (as it comes out of the mapping) so that a
    // partition's file does not roll at every narrower object.
    let target_out = match &spec.mapping {
        Some(mapping) => mapping.schema(&target).ok(),
        None => Some(target.clone()),
    };
    let fallback = fallback_partition(source, spec.granularity);
    for batch in object.batches {
        let (batch, index) = match target_out.as_ref().and_then(|t| widen(&batch, t)) {
            Some(widened) => (widened, target_index),
            None => (batch, object_index),
        };
        let event_column = spec
            .event_column
            .as_deref()
            .and_then(|name| batch.schema().index_of(name).ok());
        outcome.written += batch.num_rows() as u64;
        for (partition, rows) in
            split_by_partition(&batch, event_column, spec.granularity, fallback)
        {
            let finished = writers
                .write(
                    partition,
                    &rows,
                    spec.base_version + index as i64,
                    &source.key,
                )
                .map_err(|e| Error::InvalidArgument {
                    field: "parquet output",
                    reason: e.to_string(),
                })?;
            ship(finished)?;
        }
    }
    Ok(())
}

/// What every worker shares.
struct Shared<'a> {
    spec: &'a PipelineSpec,
    queue: std::sync::Mutex<std::collections::VecDeque<SourceObject>>,
    schemas: std::sync::Mutex<Schemas>,
    failed: std::sync::atomic::AtomicBool,
}

/// A worker's files (with their staging keys) and its sources' outcomes.
type WorkerOutput = (Vec<(SpooledFile, LakeKey)>, Vec<(String, SourceOutcome)>);

/// One worker: takes sources off the queue until it is empty, and does everything for each
/// (fetch, decompress, decode, map, route, encode, upload) into writers of its own, so that the
/// CPU-heavy encoding runs on every core.
fn worker(
    shared: &Shared<'_>,
    source_lake: &Lake,
    curated_lake: &Lake,
    handle: &tokio::runtime::Handle,
) -> Result<WorkerOutput> {
    use std::sync::atomic::Ordering;
    let spec = shared.spec;
    let parquet = |e: parquet::errors::ParquetError| Error::InvalidArgument {
        field: "parquet output",
        reason: e.to_string(),
    };
    let mut writers = Writers::new(spec.files.clone()).map_err(spool_error)?;
    let mut uploaded = Vec::new();
    let mut outcomes = Vec::new();
    let mut text = Vec::new();
    let ship =
        |finished: Vec<SpooledFile>, uploaded: &mut Vec<(SpooledFile, LakeKey)>| -> Result<()> {
            for file in finished {
                let key = spec
                    .staging
                    .join(&format!("{}/{}", file.partition.path(), file.name))?;
                handle.block_on(upload(curated_lake, &file, &key))?;
                std::fs::remove_file(&file.local).ok();
                uploaded.push((file, key));
            }
            Ok(())
        };
    loop {
        if shared.failed.load(Ordering::Relaxed) {
            break;
        }
        let Some(source) = shared.queue.lock().expect("not poisoned").pop_front() else {
            break;
        };
        let latest = shared
            .schemas
            .lock()
            .expect("not poisoned")
            .all
            .last()
            .expect("one schema")
            .clone();
        let mut outcome = SourceOutcome::default();
        let mut write = |object: Decoded, outcome: &mut SourceOutcome| -> Result<()> {
            route(
                shared,
                &source,
                object,
                outcome,
                &mut writers,
                &mut |finished| ship(finished, &mut uploaded),
            )
        };
        if source.parquet {
            // Parquet landings: row group by row group, with range requests.
            let streamed =
                stream_parquet(handle, source_lake, &source, &latest, spec, &mut |part| {
                    write(part, &mut outcome)
                })?;
            if let Err(reason) = streamed {
                outcome.unreadable = Some(reason);
            }
        } else {
            let bytes = handle.block_on(source_lake.get(&LakeKey::parse(&source.key)?))?;
            let decoded = if bytes.starts_with(b"PAR1") {
                // Parquet the crawler did not recognise (a failed object): in memory.
                super::decode::parquet::decode_parquet(
                    &bytes,
                    &source.key,
                    &latest,
                    spec.allow_new_fields,
                )
                .and_then(|object| map_parquet(spec, object, &source.key))
            } else if Compression::sniff(&bytes) == Compression::Zip {
                decode_zip(spec, &bytes, &source.key, &latest, &mut text)
            } else {
                decompress_into(&bytes, &mut text)
                    .map_err(|failure| failure.to_string())
                    .and_then(|()| decode_text(spec, &mut text, &source.key, &latest))
            };
            match decoded {
                Err(reason) => outcome.unreadable = Some(reason),
                Ok(object) => write(object, &mut outcome)?,
            }
        }
        outcomes.push((source.key.clone(), outcome));
        if let Some(done) = &spec.on_source {
            (done.0)(&source.key);
        }
    }
    let rest = writers.finish_all().map_err(parquet)?;
    ship(rest, &mut uploaded)?;
    Ok((uploaded, outcomes))
}

/// Runs the pipeline over `sources` on `spec.concurrency` workers.
pub async fn run(
    source_lake: &Lake,
    curated_lake: &Lake,
    sources: &[SourceObject],
    spec: &PipelineSpec,
) -> Result<PipelineOutput> {
    let shared = Shared {
        spec,
        queue: std::sync::Mutex::new(sources.iter().cloned().collect()),
        schemas: std::sync::Mutex::new(Schemas {
            all: vec![spec.schema.clone()],
        }),
        failed: std::sync::atomic::AtomicBool::new(false),
    };
    let handle = tokio::runtime::Handle::current();
    // Scoped threads may borrow the spec and lakes; each blocks on I/O through the runtime's
    // handle, and none runs on the runtime's own threads.
    let results = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..spec.concurrency.max(1))
                .map(|_| {
                    scope.spawn(|| {
                        let result = worker(&shared, source_lake, curated_lake, &handle);
                        if result.is_err() {
                            shared
                                .failed
                                .store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        result
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a conversion worker panicked"))
                .collect::<Vec<_>>()
        })
    });
    let mut files = Vec::new();
    let mut outcomes = BTreeMap::new();
    for result in results {
        let (uploaded, sources) = result?;
        files.extend(uploaded);
        outcomes.extend(sources);
    }
    let schemas = shared.schemas.into_inner().expect("not poisoned").all;
    Ok(PipelineOutput {
        files,
        sources: outcomes,
        schemas,
    })
}
