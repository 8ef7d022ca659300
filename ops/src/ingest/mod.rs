//! Ingest: records sent to sluice directly (the Firehose API, Firehose's HTTP endpoint
//! delivery, the MQTT bridge) land in the lake as a Firehose delivery stream would land them:
//! the same keys, the same objects, so crawling and conversion are unchanged.
//!
//! - [`streams`]: delivery stream definitions (operations of [`Ops`]);
//! - [`layout`]: the keys of objects (pure);
//! - [`rules`]: how a broker's messages become records (pure);
//! - [`wal`]: the write-ahead log a record is on before it is acknowledged;
//! - `writer`: the thread per stream that appends with group commit and seals segments;
//! - `delivery`: the task per stream that puts sealed segments into the lake.
//!
//! [`Ingest`] is the running service a server holds: [`Ingest::put`] answers only once the
//! records are fsync'd; a stream holding more than its share of undelivered bytes refuses
//! puts ([`crate::Error::Unavailable`], Firehose's `ServiceUnavailableException`) instead of
//! growing; [`Ingest::open`] replays what a previous process left on disk. One process owns a
//! log directory at a time (a lock file).

pub mod layout;
pub mod rules;
pub mod stats;
pub mod streams;
pub mod wal;

mod delivery;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobs::lake::Lake;
use tokio::sync::oneshot;

pub use stats::StreamStats;
pub use streams::{Compression, StreamDefinition, StreamRequest, StreamView};

use crate::{Error, Ops, Result};

/// Firehose's limits on `PutRecordBatch`: records and bytes of data (4 MiB) per call.
pub use wire::firehose::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS};
/// Bytes of data per record (1,000 KiB).
pub const MAX_RECORD_BYTES: usize = 1000 << 10;

/// Where and how much a server ingests.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The write-ahead log's directory (one process at a time).
    pub wal_dir: PathBuf,
    /// Bytes a stream may hold undelivered before puts are refused.
    pub max_buffered_bytes: u64,
    /// How long a request id is remembered to deduplicate retries.
    pub dedup_window: Duration,
}

/// What a put was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// One id per record, in order (empty for a retried request already taken).
    pub record_ids: Vec<String>,
    /// The request id was seen before: nothing was written again.
    pub duplicate: bool,
}

/// The running ingest service (cheap to clone).
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    ops: Ops,
    lake: Lake,
    options: IngestOptions,
    streams: tokio::sync::Mutex<HashMap<String, Arc<Stream>>>,
    /// Held for the process's life: the log directory is this process's.
    _lock: std::fs::File,
}

/// A record that cannot be delivered, and why: it lands under the stream's error output
/// prefix as Firehose's processing-failed envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub data: bytes::Bytes,
    /// `MQTT.PayloadNotJson`, ...
    pub error_code: String,
    pub error_message: String,
    pub arrival_ms: i64,
}

/// A stream's handle: its writer's inbox and its accounting.
struct Stream {
    view: StreamView,
    error_prefix: layout::Prefix,
    commands: std::sync::mpsc::SyncSender<writer::Command>,
    buffered: Arc<AtomicU64>,
    delivered: tokio::sync::watch::Receiver<u64>,
    seen: std::sync::Mutex<HashMap<String, Instant>>,
    counters: stats::Counters,
}

impl Ingest {
    /// Opens the log directory and starts every stream it holds segments of, so that what a
    /// previous process acknowledged is delivered whether or not anything is sent again.
    pub async fn open(ops: Ops, options: IngestOptions) -> Result<Self> {
        let dir = options.wal_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = std::fs::File::create(dir.join("LOCK")).map_err(|e| Error::io(&dir, e))?;
        lock.try_lock().map_err(|_| {
            Error::Conflict(format!(
                "{}: another sluice process ingests into this directory",
                dir.display()
            ))
        })?;
        let lake = ops.lake()?;
        let ingest = Self {
            inner: Arc::new(Inner {
                ops,
                lake,
                options,
                streams: tokio::sync::Mutex::new(HashMap::new()),
                _lock: lock,
            }),
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            if entry.path().is_dir()
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(name.to_owned());
            }
        }
        for name in names {
            match ingest.stream(&name).await {
                Ok(_) => {}
                Err(Error::NotFound { .. }) => {
                    tracing::warn!(stream = %name, "the write-ahead log holds records of a stream that no longer exists; they stay on disk")
                }
                Err(err) => return Err(err),
            }
        }
        Ok(ingest)
    }

    /// Takes `records` into `stream`: answered once they are on disk. A retried request (the
    /// same `request_id` within the dedup window) is answered without writing again.
    pub async fn put(
        &self,
        stream: &str,
        records: Vec<bytes::Bytes>,
        request_id: Option<String>,
    ) -> Result<Accepted> {
        check_limits(&records)?;
        let handle = self.stream(stream).await?;
        if let Some(id) = &request_id
            && handle.seen.lock().expect("not poisoned").contains_key(id)
        {
            handle.counters.duplicate();
            return Ok(Accepted {
                record_ids: Vec::new(),
                duplicate: true,
            });
        }
        let bytes: u64 = records.iter().map(|r| r.len() as u64).sum();
        let limit = self.inner.options.max_buffered_bytes;
        let before = handle.buffered.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > limit && before > 0 {
            handle.buffered.fetch_sub(bytes, Ordering::AcqRel);
            handle.counters.refused();
            return Err(Error::Unavailable(format!(
                "delivery stream {stream} holds {} MiB not yet delivered (its limit is {} MiB): slow down and retry",
                before >> 20,
                limit >> 20
            )));
        }
        let count = records.len();
        let (reply, answer) = oneshot::channel();
        let batch = wal::Batch {
            arrival_ms: chrono::Utc::now().timestamp_millis(),
            request_id: request_id.clone(),
            records,
        };
        let started = Instant::now();
        let refused = |reason: String| {
            handle.buffered.fetch_sub(bytes, Ordering::AcqRel);
            handle.counters.refused();
            Err(Error::Unavailable(format!(
                "delivery stream {stream}: {reason}"
            )))
        };
        match handle
            .commands
            .try_send(writer::Command::Append { batch, reply })
        {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                return refused(
                    "too many requests are waiting for the disk: slow down and retry".into(),
                );
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return refused("its write-ahead log failed; see the server's log".into());
            }
        }
        let (segment, start) = match answer.await {
            Ok(Ok(at)) => at,
            Ok(Err(err)) => return refused(format!("cannot write the write-ahead log: {err}")),
            Err(_) => return refused("its write-ahead log failed; see the server's log".into()),
        };
        handle.counters.accepted(count, bytes, started.elapsed());
        if let Some(id) = request_id {
            let mut seen = handle.seen.lock().expect("not poisoned");
            let window = self.inner.options.dedup_window;
            if seen.len() > 100_000 {
                seen.retain(|_, at| at.elapsed() < window);
            }
            seen.insert(id, Instant::now());
        }
        Ok(Accepted {
            record_ids: (0..count as u32)
                .map(|i| format!("{segment:020}{:010}", start + i))
                .collect(),
            duplicate: false,
        })
    }

    /// Lands records that cannot be delivered under `stream`'s error output prefix, as
    /// Firehose's processing-failed envelopes: one object, in the lake before this returns (so
    /// that a caller may acknowledge them). Returns its key.
    pub async fn put_failed(&self, stream: &str, failed: &[Failed]) -> Result<String> {
        use base64::Engine as _;
        let handle = self.stream(stream).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut text = Vec::new();
        for record in failed {
            let envelope = serde_json::json!({
                "attemptsMade": 1,
                "arrivalTimestamp": record.arrival_ms,
                "errorCode": record.error_code,
                "errorMessage": record.error_message,
                "attemptEndingTimestamp": now,
                "rawData": base64::engine::general_purpose::STANDARD.encode(&record.data),
            });
            text.extend_from_slice(envelope.to_string().as_bytes());
            text.push(b'\n');
        }
        let first = failed.iter().map(|f| f.arrival_ms).min().unwrap_or(now);
        let at = chrono::DateTime::from_timestamp_millis(first).unwrap_or_default();
        let random = uuid::Uuid::new_v4();
        let gzip = handle.view.definition.compression == Compression::Gzip;
        let key = format!(
            "{}{}",
            handle
                .error_prefix
                .render(at, "processing-failed", &random.simple().to_string()[..11]),
            layout::object_name(
                &handle.view.name,
                handle.view.version,
                at,
                &random.to_string(),
                gzip
            )
        );
        let contents = wal::Contents {
            batches: vec![wal::Batch {
                arrival_ms: first,
                request_id: None,
                records: vec![text.into()],
            }],
            ..Default::default()
        };
        let mut definition = handle.view.definition.clone();
        definition.append_newline = false;
        let body = delivery::object_body(&contents, &definition);
        let lake_key = jobs::lake::LakeKey::parse(&key)?;
        self.inner.lake.put(&lake_key, body.into()).await?;
        Ok(key)
    }

    /// Every started stream's figures, by name.
    pub async fn stats(&self) -> Vec<StreamStats> {
        let streams = self.inner.streams.lock().await;
        let mut stats: Vec<StreamStats> = streams
            .iter()
            .map(|(name, stream)| {
                stream.counters.snapshot(
                    name,
                    stream.buffered.load(Ordering::Acquire),
                    *stream.delivered.borrow(),
                )
            })
            .collect();
        stats.sort_by(|a, b| a.stream.cmp(&b.stream));
        stats
    }

    /// Seals every stream's open segment and waits until all of them are in the lake (tests,
    /// the demo, a graceful stop).
    pub async fn flush(&self) -> Result<()> {
        let streams: Vec<Arc<Stream>> = self.inner.streams.lock().await.values().cloned().collect();
        for stream in streams {
            let (reply, answer) = oneshot::channel();
            if stream
                .commands
                .send(writer::Command::Seal { reply })
                .is_err()
            {
                return Err(Error::Unavailable(
                    "a stream's write-ahead log failed".into(),
                ));
            }
            answer
                .await
                .map_err(|_| Error::Unavailable("a stream's write-ahead log failed".into()))?
                .map_err(|e| Error::Unavailable(format!("cannot seal a segment: {e}")))?;
            let mut delivered = stream.delivered.clone();
            let buffered = stream.buffered.clone();
            delivered
                .wait_for(|_| buffered.load(Ordering::Acquire) == 0)
                .await
                .map_err(|_| Error::Unavailable("a stream's delivery stopped".into()))?;
        }
        Ok(())
    }

    /// The handle of `name`, started (and its log replayed) on first use.
    async fn stream(&self, name: &str) -> Result<Arc<Stream>> {
        let mut streams = self.inner.streams.lock().await;
        if let Some(stream) = streams.get(name) {
            return Ok(stream.clone());
        }
        streams::check_name(name)?;
        let view = self.inner.ops.delivery_stream(name).await?;
        let stream = Arc::new(self.start(view)?);
        streams.insert(name.to_owned(), stream.clone());
        Ok(stream)
    }

    /// Replays `view`'s log directory and starts its writer and delivery.
    fn start(&self, view: StreamView) -> Result<Stream> {
        let dir = self.inner.options.wal_dir.join(&view.name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let (prefix, error_prefix) = view.definition.prefixes()?;
        let (deliveries, sealed) = tokio::sync::mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicU64::new(0));
        let mut open = None;
        let mut last = 0u64;
        let mut seen = HashMap::new();
        let segments = wal::segments(&dir).map_err(|e| Error::io(&dir, e))?;
        let newest = segments.last().map(|(id, _)| *id);
        for (id, path) in segments {
            last = id;
            let contents = wal::read(&path).map_err(|e| Error::io(&path, e))?;
            let bytes: u64 = contents.batches.iter().map(wal::Batch::data_len).sum();
            buffered.fetch_add(bytes, Ordering::AcqRel);
            for id in contents.batches.iter().filter_map(|b| b.request_id.clone()) {
                seen.insert(id, Instant::now());
            }
            match contents.sealed {
                Some(key) => {
                    let _ = deliveries.send(writer::Sealed { path, key, bytes });
                }
                None if Some(id) == newest => open = Some((id, path, contents, bytes)),
                None => {
                    // Left unsealed by a crash between two segments: its records become an
                    // object of their own.
                    tracing::warn!(stream = %view.name, segment = id, "sealing a segment left open");
                    let mut segment = wal::Segment::reopen(path.clone(), id, contents.valid_len)
                        .map_err(|e| Error::io(&path, e))?;
                    let key = layout::new_object_key(
                        &prefix,
                        &view.name,
                        view.version,
                        contents.batches.first().map_or(0, |b| b.arrival_ms),
                        view.definition.compression == Compression::Gzip,
                    );
                    let mut entry = Vec::new();
                    wal::encode_seal(&key, &mut entry);
                    segment
                        .append_durably(&entry)
                        .map_err(|e| Error::io(&path, e))?;
                    let _ = deliveries.send(writer::Sealed { path, key, bytes });
                }
            }
        }
        let since = chrono::Utc::now().timestamp_millis()
            - self.inner.options.dedup_window.as_millis() as i64;
        for id in delivery::recent_requests(&dir, since).map_err(|e| Error::io(&dir, e))? {
            seen.insert(id, Instant::now());
        }
        let next = last.max(chrono::Utc::now().timestamp_micros() as u64) + 1;
        let (segment, count, bytes, first, next_segment) = match open {
            Some((id, path, contents, bytes)) => {
                let segment = wal::Segment::reopen(path.clone(), id, contents.valid_len)
                    .map_err(|e| Error::io(&path, e))?;
                let count = contents
                    .batches
                    .iter()
                    .map(|b| b.records.len() as u32)
                    .sum();
                let first = contents.batches.first().map(|b| {
                    let age = chrono::Utc::now().timestamp_millis() - b.arrival_ms;
                    let left = (view.definition.buffer_seconds as i64 * 1000 - age).max(0);
                    (
                        b.arrival_ms,
                        Instant::now() + Duration::from_millis(left as u64),
                    )
                });
                (segment, count, bytes, first, next)
            }
            None => {
                let segment = wal::Segment::create(&dir, next).map_err(|e| Error::io(&dir, e))?;
                (segment, 0, 0, None, next + 1)
            }
        };
        let (commands, inbox) = std::sync::mpsc::sync_channel(1024);
        let (delivered_tx, delivered) = tokio::sync::watch::channel(0);
        let writer = writer::Writer {
            dir: dir.clone(),
            stream: view.name.clone(),
            version: view.version,
            definition: view.definition.clone(),
            prefix,
            segment,
            count,
            bytes,
            first,
            next_segment,
            deliveries,
        };
        std::thread::Builder::new()
            .name(format!("ingest-{}", view.name))
            .spawn(move || writer.run(inbox))
            .map_err(|e| Error::Failed(format!("cannot start a writer thread: {e}")))?;
        let delivery = delivery::Delivery {
            stream: view.name.clone(),
            dir,
            lake: self.inner.lake.clone(),
            definition: view.definition.clone(),
            buffered: buffered.clone(),
            delivered: delivered_tx,
        };
        tokio::spawn(delivery.run(sealed));
        Ok(Stream {
            view,
            error_prefix,
            commands,
            buffered,
            delivered,
            seen: std::sync::Mutex::new(seen),
            counters: stats::Counters::default(),
        })
    }
}

/// The most bytes of data one put may carry: Firehose's HTTP endpoint delivery sends up to
/// 64 MiB at once (the Firehose API's own limit, [`MAX_BATCH_BYTES`], is its adapter's).
pub const MAX_PUT_BYTES: usize = 64 << 20;

/// The limits of any put, refused naming the record.
fn check_limits(records: &[bytes::Bytes]) -> Result<()> {
    if records.is_empty() {
        return Err(Error::invalid("Records", "at least one record is required"));
    }
    let mut total = 0;
    for (i, record) in records.iter().enumerate() {
        if record.len() > MAX_RECORD_BYTES {
            return Err(Error::invalid(
                format!("Records[{i}].Data"),
                format!(
                    "{} bytes: at most {MAX_RECORD_BYTES} (1,000 KiB)",
                    record.len()
                ),
            ));
        }
        total += record.len();
    }
    if total > MAX_PUT_BYTES {
        return Err(Error::invalid(
            "Records",
            format!("{total} bytes of data: at most {MAX_PUT_BYTES} (64 MiB) at once"),
        ));
    }
    Ok(())
}
