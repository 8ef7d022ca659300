//! Decompression of landed objects by their magic bytes: gzip (multi-member), zstd, snappy
//! framing, zip (every file, one after the other) or none. Used by sampling and by conversion.

use std::io::{self, Read};

use super::sample::ObjectFailure;
use super::sniff::Compression;

/// Decompresses a whole object into `out` (cleared first; reusing one buffer across objects
/// spares the allocator and the kernel a fresh multi-megabyte buffer per object).
pub fn decompress_into(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), ObjectFailure> {
    out.clear();
    if bytes.is_empty() {
        return Err(ObjectFailure::Empty);
    }
    let compression = Compression::sniff(bytes);
    let mut reader = decompressor(compression, bytes)?;
    out.reserve(bytes.len().saturating_mul(6));
    reader
        .read_to_end(out)
        .map_err(|err| ObjectFailure::Corrupt {
            compression,
            offset: out.len() as u64,
            detail: err.to_string(),
        })?;
    Ok(())
}

/// The decompressed size a gzip object's trailer (ISIZE) records, when it is plausible.
pub(super) fn gzip_size_hint(
    compression: Compression,
    bytes: &[u8],
    sampled: usize,
) -> Option<f64> {
    if compression != Compression::Gzip || bytes.len() < 18 {
        return None;
    }
    let trailer: [u8; 4] = bytes[bytes.len() - 4..].try_into().ok()?;
    let size = u32::from_le_bytes(trailer) as usize;
    (size >= sampled).then_some(size as f64)
}

/// A decompressing reader that knows how much compressed input it consumed.
pub(super) struct Decompressor<'a> {
    inner: Box<dyn Read + 'a>,
    consumed: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Decompressor<'_> {
    pub(super) fn fraction_consumed(&self, total: usize) -> f64 {
        self.consumed.get() as f64 / total.max(1) as f64
    }
}

impl Read for Decompressor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

struct CountingSlice<'a> {
    rest: &'a [u8],
    consumed: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Read for CountingSlice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.rest.read(buf)?;
        self.consumed.set(self.consumed.get() + n);
        Ok(n)
    }
}

pub(super) fn decompressor(
    compression: Compression,
    bytes: &[u8],
) -> Result<Decompressor<'_>, ObjectFailure> {
    let consumed = std::rc::Rc::new(std::cell::Cell::new(0));
    let input = CountingSlice {
        rest: bytes,
        consumed: consumed.clone(),
    };
    let corrupt = |detail: String| ObjectFailure::Corrupt {
        compression,
        offset: 0,
        detail,
    };
    let inner: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(input).map_err(|e| corrupt(e.to_string()))?)
        }
        Compression::Snappy => Box::new(snap::read::FrameDecoder::new(input)),
        Compression::Zip => {
            consumed.set(bytes.len());
            Box::new(io::Cursor::new(unzip_entries(bytes).map_err(corrupt)?))
        }
    };
    Ok(Decompressor { inner, consumed })
}

/// The files of a zip archive, one after the other, each ending in a line break.
fn unzip_entries(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| e.to_string())?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        entry
            .read_to_end(&mut out)
            .map_err(|e| format!("{name}: {e}"))?;
        if out.last().is_some_and(|&b| b != b'\n') {
            out.push(b'\n');
        }
    }
    Ok(out)
}
