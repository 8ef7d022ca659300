//! The ingest write-ahead log: one directory per stream, one file per object to be
//! (`<segment>.wal`). Records are appended and fsync'd before they are acknowledged; when the
//! stream's buffer is full or old enough the segment is *sealed* (an entry naming the object's
//! key, fsync'd), its object is put into the lake under that key, and only then is the file
//! deleted. So after a crash every acknowledged record is in an open segment (buffered
//! again), in a sealed one (delivered again, under the same key: a put that had already
//! happened is repeated, not duplicated), or in the lake.
//!
//! An entry is `[u32 length][u32 CRC-32 of the payload][payload]`, little-endian. A payload is
//! `1` (records: arrival time in ms, the request id that dedupes retries, the records) or `2`
//! (seal: the object's key). A torn tail (a crash mid-write, never acknowledged) reads as the
//! end of the file and is cut off when the segment is reopened.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const RECORDS: u8 = 1;
const SEAL: u8 = 2;

/// One entry of records, as appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub arrival_ms: i64,
    /// The client's request id (Firehose's HTTP endpoint delivery retries with the same one).
    pub request_id: Option<String>,
    pub records: Vec<bytes::Bytes>,
}

impl Batch {
    /// The records' bytes.
    pub fn data_len(&self) -> u64 {
        self.records.iter().map(|r| r.len() as u64).sum()
    }
}

/// Appends `batch` as one entry to `out`.
pub fn encode_batch(batch: &Batch, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(batch.data_len() as usize + 16 + 4 * batch.records.len());
    payload.push(RECORDS);
    payload.extend_from_slice(&batch.arrival_ms.to_le_bytes());
    let id = batch.request_id.as_deref().unwrap_or_default().as_bytes();
    payload.extend_from_slice(&(id.len() as u16).to_le_bytes());
    payload.extend_from_slice(id);
    payload.extend_from_slice(&(batch.records.len() as u32).to_le_bytes());
    for record in &batch.records {
        payload.extend_from_slice(&(record.len() as u32).to_le_bytes());
        payload.extend_from_slice(record);
    }
    frame(&payload, out);
}

/// Appends a seal naming `key` to `out`.
pub fn encode_seal(key: &str, out: &mut Vec<u8>) {
    let mut payload = vec![SEAL];
    payload.extend_from_slice(key.as_bytes());
    frame(&payload, out);
}

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A segment as read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contents {
    pub batches: Vec<Batch>,
    /// The sealed object's key.
    pub sealed: Option<String>,
    /// Bytes of whole entries; anything after is a torn tail.
    pub valid_len: u64,
}

/// Reads entries until the end or the first torn or corrupt one.
pub fn decode(bytes: &[u8]) -> Contents {
    let mut contents = Contents::default();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        match parse(payload) {
            Some(Entry::Batch(batch)) => contents.batches.push(batch),
            Some(Entry::Seal(key)) => contents.sealed = Some(key),
            None => break,
        }
        at += 8 + len;
        contents.valid_len = at as u64;
        if contents.sealed.is_some() {
            break;
        }
    }
    contents
}

enum Entry {
    Batch(Batch),
    Seal(String),
}

fn parse(payload: &[u8]) -> Option<Entry> {
    let (&kind, mut rest) = payload.split_first()?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    match kind {
        RECORDS => {
            let arrival_ms = i64::from_le_bytes(take(8)?.try_into().ok()?);
            let id_len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
            let id = std::str::from_utf8(take(id_len)?).ok()?.to_owned();
            let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
            let mut records = Vec::with_capacity(count.min(1024) as usize);
            for _ in 0..count {
                let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
                records.push(bytes::Bytes::copy_from_slice(take(len)?));
            }
            Some(Entry::Batch(Batch {
                arrival_ms,
                request_id: (!id.is_empty()).then_some(id),
                records,
            }))
        }
        SEAL => Some(Entry::Seal(std::str::from_utf8(rest).ok()?.to_owned())),
        _ => None,
    }
}

/// A segment's file name.
pub fn file_name(segment: u64) -> String {
    format!("{segment:020}.wal")
}

/// The segments in `dir`, oldest first.
pub fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let segment = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(segment) = segment {
            found.push((segment, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Reads a segment file.
pub fn read(path: &Path) -> std::io::Result<Contents> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(decode(&bytes))
}

/// An open segment that batches are appended to.
#[derive(Debug)]
pub struct Segment {
    pub id: u64,
    pub path: PathBuf,
    file: File,
}

impl Segment {
    /// Creates segment `id` in `dir` (and makes its name durable).
    pub fn create(dir: &Path, id: u64) -> std::io::Result<Self> {
        let path = dir.join(file_name(id));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        sync_dir(dir)?;
        Ok(Self { id, path, file })
    }

    /// Reopens segment `id` for appending, cutting a torn tail off at `valid_len`.
    pub fn reopen(path: PathBuf, id: u64, valid_len: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new().write(true).open(&path)?;
        file.set_len(valid_len)?;
        file.sync_all()?;
        drop(file);
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Self { id, path, file })
    }

    /// Appends encoded entries and waits until they are on disk. When that fails the file is
    /// cut back to where it was, so that a later entry never follows a torn one.
    pub fn append_durably(&mut self, entries: &[u8]) -> std::io::Result<()> {
        let before = self.file.metadata()?.len();
        let written = self
            .file
            .write_all(entries)
            .and_then(|()| self.file.sync_data());
        if written.is_err() {
            let _ = self.file.set_len(before);
        }
        written
    }
}

/// Makes a directory's entries (a created or removed file) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, id: Option<&str>) -> Batch {
        Batch {
            arrival_ms: 1_764_900_000_000 + n as i64,
            request_id: id.map(str::to_owned),
            records: (0..n)
                .map(|i| bytes::Bytes::from(format!("{{\"i\":{i}}}")))
                .collect(),
        }
    }

    #[test]
    fn entries_read_back_and_a_torn_or_corrupt_tail_ends_the_segment() {
        let mut bytes = Vec::new();
        encode_batch(&batch(3, None), &mut bytes);
        encode_batch(&batch(2, Some("req-1")), &mut bytes);
        let whole = bytes.len();
        encode_batch(&batch(5, None), &mut bytes);
        let contents = decode(&bytes);
        assert_eq!(
            contents.batches,
            vec![batch(3, None), batch(2, Some("req-1")), batch(5, None)]
        );
        assert_eq!(contents.sealed, None);
        // Every cut inside the last entry leaves the first two.
        for cut in whole..bytes.len() {
            let torn = decode(&bytes[..cut]);
            assert_eq!(torn.batches.len(), 2, "cut at {cut}");
            assert_eq!(torn.valid_len, whole as u64);
        }
        // A flipped bit in the last entry is caught by its checksum.
        let mut corrupt = bytes.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&corrupt).batches.len(), 2);
        encode_seal(
            "landing/t/2026/12/05/03/t-1-2026-12-05-03-00-00-x",
            &mut bytes,
        );
        let sealed = decode(&bytes);
        assert_eq!(sealed.batches.len(), 3);
        assert_eq!(
            sealed.sealed.as_deref(),
            Some("landing/t/2026/12/05/03/t-1-2026-12-05-03-00-00-x")
        );
        assert_eq!(sealed.valid_len, bytes.len() as u64);
    }

    #[test]
    fn a_reopened_segment_loses_its_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = Segment::create(dir.path(), 7).unwrap();
        let mut bytes = Vec::new();
        encode_batch(&batch(2, None), &mut bytes);
        segment.append_durably(&bytes).unwrap();
        let mut torn = Vec::new();
        encode_batch(&batch(4, None), &mut torn);
        segment.append_durably(&torn[..torn.len() - 3]).unwrap();
        drop(segment);
        let contents = read(&dir.path().join(file_name(7))).unwrap();
        assert_eq!(contents.batches.len(), 1);
        let mut segment =
            Segment::reopen(dir.path().join(file_name(7)), 7, contents.valid_len).unwrap();
        segment.append_durably(&torn).unwrap();
        let contents = read(&segment.path).unwrap();
        assert_eq!(contents.batches, vec![batch(2, None), batch(4, None)]);
        assert_eq!(
            segments(dir.path()).unwrap(),
            vec![(7, segment.path.clone())]
        );
    }
}
