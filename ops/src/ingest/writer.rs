//! A stream's writer: one thread that owns the stream's open segment. It appends the batches
//! it is handed, several at a time with one fsync (group commit), answers each only once its
//! entry is on disk, and seals the segment when it holds the stream's buffer size or its first
//! record is the buffer interval old, handing the sealed segment to the delivery task.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::layout::{Prefix, new_object_key};
use super::streams::{Compression, StreamDefinition};
use super::wal::{self, Batch, Segment};

/// What the writer is asked.
pub(super) enum Command {
    /// Append a batch; the answer is where its records start (segment, index).
    Append {
        batch: Batch,
        reply: oneshot::Sender<std::io::Result<(u64, u32)>>,
    },
    /// Seal the open segment now (a flush), answered once it is sealed.
    Seal {
        reply: oneshot::Sender<std::io::Result<()>>,
    },
}

/// A sealed segment, for delivery.
#[derive(Debug, Clone)]
pub(super) struct Sealed {
    pub path: PathBuf,
    pub key: String,
    /// Bytes of its records.
    pub bytes: u64,
}

/// The writer's state: the open segment and what it holds.
pub(super) struct Writer {
    pub dir: PathBuf,
    pub stream: String,
    pub version: i64,
    pub definition: StreamDefinition,
    pub prefix: Prefix,
    pub segment: Segment,
    /// Records in the open segment.
    pub count: u32,
    /// Bytes of records in the open segment.
    pub bytes: u64,
    /// Arrival of the open segment's first record (ms), and when it is due.
    pub first: Option<(i64, Instant)>,
    pub next_segment: u64,
    pub deliveries: tokio::sync::mpsc::UnboundedSender<Sealed>,
}

/// A batch waiting for its answer.
type Waiting = (Batch, oneshot::Sender<std::io::Result<(u64, u32)>>);

/// The most batches one fsync covers.
const GROUP: usize = 256;

impl Writer {
    /// Runs until every sender is gone; an IO error on the segment stops it (the stream then
    /// refuses records, and a restart replays what is on disk).
    pub fn run(mut self, commands: Receiver<Command>) {
        let mut carried = None;
        loop {
            let first = match carried.take() {
                Some(command) => command,
                None => match commands.recv_timeout(self.wait()) {
                    Ok(command) => command,
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(err) = self.seal_if_due() {
                            tracing::error!(stream = %self.stream, error = %err, "cannot seal a segment: the stream stops taking records");
                            return;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            };
            let (batch, reply) = match first {
                Command::Seal { reply } => {
                    let sealed = self.seal();
                    let stop = sealed.is_err();
                    let _ = reply.send(sealed);
                    if stop {
                        return;
                    }
                    continue;
                }
                Command::Append { batch, reply } => (batch, reply),
            };
            // A batch that would overflow a segment with records in it starts the next one.
            if self.count > 0
                && self.bytes + batch.data_len() > self.definition.buffer_bytes
                && let Err(err) = self.seal()
            {
                let _ = reply.send(Err(err));
                return;
            }
            let mut group = vec![(batch, reply)];
            let mut group_bytes = group[0].0.data_len();
            while group.len() < GROUP {
                match commands.try_recv() {
                    Ok(Command::Append { batch, reply })
                        if self.bytes + group_bytes + batch.data_len()
                            <= self.definition.buffer_bytes =>
                    {
                        group_bytes += batch.data_len();
                        group.push((batch, reply));
                    }
                    Ok(other) => {
                        carried = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if let Err(err) = self.append(group) {
                tracing::error!(stream = %self.stream, error = %err, "cannot append to the write-ahead log: the stream stops taking records");
                return;
            }
            if self.bytes >= self.definition.buffer_bytes
                && let Err(err) = self.seal()
            {
                tracing::error!(stream = %self.stream, error = %err, "cannot seal a segment: the stream stops taking records");
                return;
            }
        }
    }

    fn wait(&self) -> Duration {
        match self.first {
            Some((_, due)) => due.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        }
    }

    fn seal_if_due(&mut self) -> std::io::Result<()> {
        match self.first {
            Some((_, due)) if due <= Instant::now() => self.seal(),
            _ => Ok(()),
        }
    }

    /// Appends the group with one fsync, then answers each batch.
    fn append(&mut self, group: Vec<Waiting>) -> std::io::Result<()> {
        let mut entries = Vec::new();
        for (batch, _) in &group {
            wal::encode_batch(batch, &mut entries);
        }
        if let Err(err) = self.segment.append_durably(&entries) {
            for (_, reply) in group {
                let _ = reply.send(Err(std::io::Error::new(err.kind(), err.to_string())));
            }
            return Err(err);
        }
        for (batch, reply) in group {
            if self.first.is_none() {
                let due = Instant::now() + Duration::from_secs(self.definition.buffer_seconds);
                self.first = Some((batch.arrival_ms, due));
            }
            let start = self.count;
            self.count += batch.records.len() as u32;
            self.bytes += batch.data_len();
            let _ = reply.send(Ok((self.segment.id, start)));
        }
        Ok(())
    }

    /// Seals the open segment (when it holds records) under its object's key and opens the
    /// next one.
    fn seal(&mut self) -> std::io::Result<()> {
        let Some((arrival_ms, _)) = self.first else {
            return Ok(());
        };
        let key = new_object_key(
            &self.prefix,
            &self.stream,
            self.version,
            arrival_ms,
            self.definition.compression == Compression::Gzip,
        );
        let mut entry = Vec::new();
        wal::encode_seal(&key, &mut entry);
        self.segment.append_durably(&entry)?;
        let sealed = Sealed {
            path: self.segment.path.clone(),
            key,
            bytes: self.bytes,
        };
        self.segment = Segment::create(&self.dir, self.next_segment)?;
        self.next_segment += 1;
        self.count = 0;
        self.bytes = 0;
        self.first = None;
        // The delivery task is gone only when the process stops; a restart delivers it.
        let _ = self.deliveries.send(sealed);
        Ok(())
    }
}
