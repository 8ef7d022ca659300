//! The conversion pipeline: sources are fetched and decoded in parallel (off the async runtime),
//! and one writer thread routes rows into partition files and uploads finished files into the
//! run's staging prefix. CPU-bound work never runs on the async runtime, and memory is bounded by
//! the sources in flight and the open row groups.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, new_null_array};
use arrow::datatypes::{Schema, SchemaRef};
use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::mpsc;

use super::decode::{Quarantined, decode_object};
use super::partition::{Granularity, PartitionKey, split_by_partition};
use super::write::{FileOptions, SpooledFile, Writers};
use crate::catalog::conversion::SourceObject;
use crate::crawler::sample::decompress;
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

enum Message {
    Rows {
        partition: PartitionKey,
        batch: RecordBatch,
        version_index: usize,
        source: Arc<str>,
    },
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
        let bytes = tokio::fs::read(&file.local)
            .await
            .map_err(object_store::Error::from_io)?;
        lake.store().put(&path, PutPayload::from(bytes)).await?;
        return Ok(());
    }
    let mut upload = lake.store().put_multipart(&path).await?;
    let mut local = tokio::fs::File::open(&file.local)
        .await
        .map_err(object_store::Error::from_io)?;
    loop {
        let mut part = vec![0_u8; PART];
        let mut filled = 0;
        while filled < PART {
            let n = tokio::io::AsyncReadExt::read(&mut local, &mut part[filled..])
                .await
                .map_err(object_store::Error::from_io)?;
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

trait FromIo {
    fn from_io(err: std::io::Error) -> object_store::Error;
}

impl FromIo for object_store::Error {
    fn from_io(err: std::io::Error) -> object_store::Error {
        object_store::Error::Generic {
            store: "spool",
            source: Box::new(err),
        }
    }
}

/// Runs the pipeline over `sources`.
pub async fn run(
    source_lake: &Lake,
    curated_lake: &Lake,
    sources: &[SourceObject],
    spec: &PipelineSpec,
) -> Result<PipelineOutput> {
    let (sender, mut receiver) = mpsc::channel::<Message>(spec.concurrency.max(1) * 4);
    let handle = tokio::runtime::Handle::current();
    let writer_lake = curated_lake.clone();
    let staging = spec.staging.clone();
    let files = spec.files.clone();
    let base_version = spec.base_version;
    // The writer thread: owns the open files; versions are indices into the run's schemas.
    let writer = tokio::task::spawn_blocking(move || -> Result<Vec<(SpooledFile, LakeKey)>> {
        let mut writers = Writers::new(files).map_err(object_store::Error::from_io)?;
        let mut uploaded = Vec::new();
        let ship = |finished: Vec<SpooledFile>,
                    uploaded: &mut Vec<(SpooledFile, LakeKey)>|
         -> Result<()> {
            for file in finished {
                let key = staging.join(&format!("{}/{}", file.partition.path(), file.name))?;
                handle.block_on(upload(&writer_lake, &file, &key))?;
                std::fs::remove_file(&file.local).ok();
                uploaded.push((file, key));
            }
            Ok(())
        };
        while let Some(Message::Rows {
            partition,
            batch,
            version_index,
            source,
        }) = receiver.blocking_recv()
        {
            let finished = writers
                .write(
                    partition,
                    &batch,
                    base_version + version_index as i64,
                    &source,
                )
                .map_err(|e| Error::InvalidArgument {
                    field: "parquet output",
                    reason: e.to_string(),
                })?;
            ship(finished, &mut uploaded)?;
        }
        let rest = writers.finish_all().map_err(|e| Error::InvalidArgument {
            field: "parquet output",
            reason: e.to_string(),
        })?;
        ship(rest, &mut uploaded)?;
        Ok(uploaded)
    });

    let mut schemas: Vec<SchemaRef> = vec![spec.schema.clone()];
    // New decodes start from the widest schema seen so far.
    let latest = std::sync::Mutex::new(spec.schema.clone());
    let mut outcomes = BTreeMap::new();
    let mut decoded = futures::stream::iter(sources.iter().cloned())
        .map(|source| {
            let schema = latest.lock().expect("not poisoned").clone();
            let allow_new_fields = spec.allow_new_fields;
            let mapping = spec.mapping.clone();
            async move {
                let bytes = source_lake.get(&LakeKey::parse(&source.key)?).await?;
                let key = source.key.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let text = decompress(&bytes).map_err(|failure| failure.to_string())?;
                    let mut object = decode_object(&text, &key, &schema, allow_new_fields)?;
                    if let Some(mapping) = &mapping {
                        object
                            .apply_mapping(mapping, &text, &key)
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(object)
                })
                .await?;
                Ok::<_, Error>((source, result))
            }
        })
        .buffered(spec.concurrency.max(1));
    while let Some(item) = decoded.next().await {
        let (source, result) = item?;
        let mut outcome = SourceOutcome::default();
        match result {
            Err(reason) => outcome.unreadable = Some(reason),
            Ok(object) => {
                outcome.read = object.records_read;
                outcome.quarantined = object.quarantined;
                let schema = object.schema.clone();
                let current = schemas.last().expect("one schema").clone();
                if schema.fields() != current.fields() {
                    let merged = Schema::new(super::decode::merge_add_only(
                        current.fields(),
                        schema.fields(),
                    ));
                    if merged.fields() != current.fields() {
                        let merged = Arc::new(merged);
                        *latest.lock().expect("not poisoned") = merged.clone();
                        schemas.push(merged);
                    }
                }
                let target = schemas.last().expect("one schema").clone();
                // Batches are widened to the run's widest schema (as it comes out of the mapping)
                // so that one partition's file does not roll at every narrower object.
                let target_out = match &spec.mapping {
                    Some(mapping) => mapping.schema(&target).ok(),
                    None => Some(target.clone()),
                };
                let fallback = fallback_partition(&source, spec.granularity);
                let source_name: Arc<str> = Arc::from(source.key.as_str());
                for batch in object.batches {
                    let (batch, version_index) =
                        match target_out.as_ref().and_then(|t| widen(&batch, t)) {
                            Some(widened) => (widened, schemas.len() - 1),
                            None => {
                                let index = schemas
                                    .iter()
                                    .position(|s| s.fields() == schema.fields())
                                    .unwrap_or_else(|| {
                                        schemas.push(schema.clone());
                                        schemas.len() - 1
                                    });
                                (batch, index)
                            }
                        };
                    let event_column = spec
                        .event_column
                        .as_deref()
                        .and_then(|name| batch.schema().index_of(name).ok());
                    outcome.written += batch.num_rows() as u64;
                    for (partition, rows) in
                        split_by_partition(&batch, event_column, spec.granularity, fallback)
                    {
                        let message = Message::Rows {
                            partition,
                            batch: rows,
                            version_index,
                            source: source_name.clone(),
                        };
                        if sender.send(message).await.is_err() {
                            break; // the writer failed: its error is returned below
                        }
                    }
                }
            }
        }
        outcomes.insert(source.key.clone(), outcome);
    }
    drop(decoded);
    drop(sender);
    let files = writer.await??;
    Ok(PipelineOutput {
        files,
        sources: outcomes,
        schemas,
    })
}
