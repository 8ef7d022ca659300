//! A stream's delivery: sealed segments become objects in the lake, one at a time, in the
//! order they were sealed. A put that fails is retried with backoff for as long as it takes
//! (the records are on disk meanwhile, and count against the stream's buffer, so a lake that
//! stays down ends in refused puts, not in lost records). Only after the put is the segment's
//! file deleted; the request ids it held go to the stream's journal first, so that a retried
//! request is still recognised after its records left the log.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jobs::lake::{Lake, LakeKey};

use super::streams::{Compression, StreamDefinition};
use super::wal::{self, Contents};
use super::writer::Sealed;

/// What a delivery task needs.
pub(super) struct Delivery {
    pub stream: String,
    pub dir: PathBuf,
    pub lake: Lake,
    pub definition: StreamDefinition,
    /// Bytes accepted and not yet delivered (shared with the stream's handle).
    pub buffered: Arc<AtomicU64>,
    /// The number of segments delivered so far (flushes wait on it).
    pub delivered: tokio::sync::watch::Sender<u64>,
}

/// The journal of request ids whose records were delivered: `<ms> <id>` per line.
pub(super) const JOURNAL: &str = "delivered-requests";

impl Delivery {
    pub async fn run(self, mut sealed: tokio::sync::mpsc::UnboundedReceiver<Sealed>) {
        while let Some(segment) = sealed.recv().await {
            self.deliver(&segment).await;
            self.buffered.fetch_sub(segment.bytes, Ordering::AcqRel);
            self.delivered.send_modify(|n| *n += 1);
        }
    }

    async fn deliver(&self, segment: &Sealed) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.try_deliver(segment).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(stream = %self.stream, key = %segment.key, error = %err, retry_in_ms = backoff.as_millis() as u64, "delivery failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn try_deliver(&self, segment: &Sealed) -> Result<(), String> {
        let path = segment.path.clone();
        let definition = self.definition.clone();
        let read = tokio::task::spawn_blocking(move || match wal::read(&path) {
            Ok(contents) => {
                let body = object_body(&contents, &definition);
                Ok(Some((contents, body)))
            }
            // Retired already (its put and deletion happened, then something failed after).
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(format!("{}: {err}", path.display())),
        })
        .await
        .map_err(|e| e.to_string())??;
        let Some((contents, body)) = read else {
            return Ok(());
        };
        let key = LakeKey::parse(&segment.key).map_err(|e| e.to_string())?;
        self.lake
            .put(&key, body.into())
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(stream = %self.stream, key = %segment.key, records = contents.batches.iter().map(|b| b.records.len()).sum::<usize>(), "delivered");
        let dir = self.dir.clone();
        let path = segment.path.clone();
        tokio::task::spawn_blocking(move || retire(&dir, &path, &contents))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{}: {e}", segment.path.display()))
    }
}

/// The object's bytes: the records back to back (each followed by a newline when the stream
/// appends one), gzipped when the stream compresses.
pub(super) fn object_body(contents: &Contents, definition: &StreamDefinition) -> Vec<u8> {
    let mut raw = Vec::new();
    for record in contents.batches.iter().flat_map(|b| &b.records) {
        raw.extend_from_slice(record);
        if definition.append_newline {
            raw.push(b'\n');
        }
    }
    match definition.compression {
        Compression::Uncompressed => raw,
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 4),
                flate2::Compression::default(),
            );
            encoder.write_all(&raw).expect("writes to memory");
            encoder.finish().expect("writes to memory")
        }
    }
}

/// Journals a delivered segment's request ids, then deletes it.
fn retire(dir: &Path, path: &Path, contents: &Contents) -> std::io::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let ids: String = contents
        .batches
        .iter()
        .filter_map(|b| b.request_id.as_deref())
        .map(|id| format!("{now} {id}\n"))
        .collect();
    if !ids.is_empty() {
        let mut journal = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(JOURNAL))?;
        journal.write_all(ids.as_bytes())?;
        journal.sync_data()?;
    }
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    wal::sync_dir(dir)
}

/// The journal's ids younger than `since_ms`; the journal is rewritten with only those.
pub(super) fn recent_requests(dir: &Path, since_ms: i64) -> std::io::Result<Vec<String>> {
    let path = dir.join(JOURNAL);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let kept: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(ms, _)| ms.parse::<i64>().is_ok_and(|ms| ms >= since_ms))
        .collect();
    let rewritten: String = kept.iter().map(|(ms, id)| format!("{ms} {id}\n")).collect();
    let temporary = dir.join(format!("{JOURNAL}.new"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(rewritten.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    wal::sync_dir(dir)?;
    Ok(kept.into_iter().map(|(_, id)| id.to_owned()).collect())
}
