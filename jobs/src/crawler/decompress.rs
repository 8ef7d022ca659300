//! Decompression of landed objects by their magic bytes: gzip (multi-member), zstd, snappy
//! framing, zip or none. Used by sampling and by conversion, which read a zip archive's files
//! each as its own source ([`zip_entries`]); an entry's name is only ever shown, never a path.

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
    if compression == Compression::Gzip && gzip_in_one_call(bytes, out).is_some() {
        return Ok(());
    }
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

/// A gzip object of one member, decompressed by libdeflate in one call (more than twice as fast
/// as streaming inflate here). `None`, with `out` cleared, where libdeflate refuses it or the
/// object may hold more members: the streaming reader then takes over, with its error offsets.
///
/// libdeflate checks the first member against its own trailer (CRC-32 and size) but does not say
/// where that member ends. Its trailer's eight bytes are somewhere in the object; if their first
/// occurrence is the object's last eight bytes, the member ends there and there is no other.
fn gzip_in_one_call(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let trailer = bytes.len().checked_sub(8).filter(|_| bytes.len() >= 18)?;
    let size = u32::from_le_bytes(bytes[trailer + 4..].try_into().ok()?) as usize;
    // Deflate expands at most about 1032:1; a trailer that claims more is not believed.
    if size > bytes.len().saturating_mul(1032) {
        return None;
    }
    out.resize(size, 0);
    let decoded = libdeflater::Decompressor::new().gzip_decompress(bytes, out);
    let mut member_trailer = [0_u8; 8];
    member_trailer[..4].copy_from_slice(&libdeflater::crc32(out).to_le_bytes());
    member_trailer[4..].copy_from_slice(&(size as u32).to_le_bytes());
    if decoded != Ok(size) || memchr::memmem::find(bytes, &member_trailer) != Some(trailer) {
        out.clear();
        return None;
    }
    Some(())
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

/// The files of a zip archive (directories left out): each name and its bytes, in order.
pub fn zip_entries(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ObjectFailure> {
    let corrupt = |detail: String| ObjectFailure::Corrupt {
        compression: Compression::Zip,
        offset: 0,
        detail,
    };
    let mut archive =
        zip::ZipArchive::new(io::Cursor::new(bytes)).map_err(|e| corrupt(e.to_string()))?;
    let mut entries = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| corrupt(e.to_string()))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| corrupt(format!("{name}: {e}")))?;
        entries.push((name, data));
    }
    Ok(entries)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    }

    fn decompressed(bytes: &[u8]) -> Result<Vec<u8>, ObjectFailure> {
        let mut out = b"left over from the last object".to_vec();
        decompress_into(bytes, &mut out).map(|()| out)
    }

    #[test]
    fn one_member_is_decompressed_in_one_call() {
        let text: Vec<u8> = (0..50_000)
            .flat_map(|i| format!("{{\"i\":{i}}}\n").into_bytes())
            .collect();
        let object = gzip(&text);
        let mut out = Vec::new();
        assert!(gzip_in_one_call(&object, &mut out).is_some());
        assert_eq!(out, text);
        assert_eq!(decompressed(&object).unwrap(), text);
        assert_eq!(decompressed(&gzip(b"")).unwrap(), b"");
    }

    #[test]
    fn every_member_is_read_even_when_the_members_are_identical() {
        for (first, second) in [
            (&b"{\"a\":1}\n"[..], &b"{\"a\":2}\n"[..]),
            (b"{\"a\":1}\n", b"{\"a\":1}\n"),
        ] {
            let object = [gzip(first), gzip(second)].concat();
            let mut out = Vec::new();
            assert!(gzip_in_one_call(&object, &mut out).is_none(), "two members");
            assert!(out.is_empty());
            assert_eq!(decompressed(&object).unwrap(), [first, second].concat());
        }
    }

    #[test]
    fn a_corrupt_or_lying_object_fails_with_the_streaming_reader_error() {
        let text = b"{\"a\":1}\n".repeat(1000);
        let mut object = gzip(&text);
        let middle = object.len() / 2;
        object[middle] ^= 0xff;
        assert!(matches!(
            decompressed(&object),
            Err(ObjectFailure::Corrupt {
                compression: Compression::Gzip,
                ..
            })
        ));
        // A trailer that claims far more than deflate can expand to is not believed.
        let mut lying = gzip(&text);
        let end = lying.len();
        lying[end - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(gzip_in_one_call(&lying, &mut Vec::new()).is_none());
        assert!(decompressed(&lying).is_err());
    }
}
