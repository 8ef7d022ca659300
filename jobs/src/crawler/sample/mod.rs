//! Sampling one landed object: decompress, sniff the format, parse a bounded sample of records
//! into a schema [`Node`], then (optionally) read the rest of the stream to prove it is intact
//! and to count its records. Pure and blocking: the crawler runs it off the async runtime.

use std::collections::BTreeMap;
use std::io::{self, Read};

use base64::Engine;
use serde_json::{Map, Value};

use super::decompress::{decompressor, gzip_size_hint};
use super::infer::{Node, ObserveSeed};
use super::records;
use late_keys::LateKeys;
use zip_archive::analyze_zip;

mod late_keys;
mod zip_archive;
use super::sniff::{Compression, Format, JsonFraming, TextFormat, sniff_text};
use serde::de::DeserializeSeed;

/// Bounds on how much of each object the crawler reads.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// Records parsed per object for inference.
    pub max_records: usize,
    /// Decompressed bytes read for the sample.
    pub max_bytes: usize,
    /// A record longer than this fails the object (Firehose's own limit is 1,000 KiB).
    pub max_record_bytes: usize,
    /// Read every object to its end: detects truncated or corrupt streams and counts records.
    pub verify: bool,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            max_records: 1000,
            max_bytes: 4 << 20,
            max_record_bytes: 1_024_000,
            verify: true,
        }
    }
}

/// Why an object could not be catalogued. The crawl records it on the object and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectFailure {
    #[error("empty object")]
    Empty,
    #[error(
        "{compression} stream is truncated or corrupt after {offset} decompressed bytes: {detail}"
    )]
    Corrupt {
        compression: Compression,
        offset: u64,
        detail: String,
    },
    #[error("binary content (a NUL byte at decompressed byte {offset}) in no supported format")]
    Binary { offset: usize },
    #[error("invalid UTF-8 at decompressed byte {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("record at line {line} is larger than the {limit}-byte record limit")]
    RecordTooLarge { line: u64, limit: usize },
    #[error("unrecognised format: not JSON, CSV/TSV, Apache log or Parquet")]
    Unrecognised,
    #[error("no record could be parsed; line {line}: {reason}")]
    NoRecords { line: u64, reason: String },
    #[error("zip file {name:?}: {detail}")]
    ZipEntry { name: String, detail: String },
    #[error("parquet footer unreadable: {detail}")]
    Parquet { detail: String },
}

/// What sampling learnt about one object.
#[derive(Debug, Clone)]
pub struct ObjectAnalysis {
    pub compression: Compression,
    pub format: Format,
    /// The record shape seen in the sample.
    pub schema: Node,
    /// For Firehose error envelopes: the shape of the decoded `rawData` records.
    pub raw_data_schema: Option<Node>,
    pub sampled_records: u64,
    pub malformed_records: u64,
    /// The first few malformed records: `line N: reason`.
    pub malformed_examples: Vec<String>,
    /// Records in the whole object, counted when `records_exact`, estimated otherwise.
    pub records: u64,
    pub records_exact: bool,
    /// For Firehose error envelopes: records per `errorCode` in the sample.
    pub error_codes: BTreeMap<String, u64>,
    pub decompressed_bytes: u64,
}

/// Decompressed bytes of the first look at an object.
const INITIAL_SAMPLE_BYTES: usize = 256 << 10;

/// How far the sample reads next: where the wanted records should end at the density seen so
/// far, with a quarter more for margin; 4× when no record is complete yet. At least a quarter
/// more than now (so it ends), at most 4× and `max_bytes`.
fn next_sample_target(target: usize, sampled: usize, seen: u64, options: &SampleOptions) -> usize {
    let wanted = match seen {
        0 => target.saturating_mul(4),
        seen => (sampled as f64 / seen as f64 * options.max_records as f64 * 1.25) as usize,
    };
    wanted
        .clamp(target + target / 4, target.saturating_mul(4))
        .min(options.max_bytes)
}

/// Samples a whole object held in memory (everything but Parquet, whose footer is read apart).
pub fn analyze(bytes: &[u8], options: &SampleOptions) -> Result<ObjectAnalysis, ObjectFailure> {
    if bytes.is_empty() {
        return Err(ObjectFailure::Empty);
    }
    let compression = Compression::sniff(bytes);
    if compression == Compression::Zip {
        return analyze_zip(bytes, options);
    }
    let mut reader = decompressor(compression, bytes)?;
    let corrupt = |offset: usize, err: io::Error| ObjectFailure::Corrupt {
        compression,
        offset: offset as u64,
        detail: err.to_string(),
    };

    // The sample grows (from 256 KiB up to `max_bytes`) only while it holds fewer records than
    // wanted: most objects need a fraction of the byte budget.
    let mut sample = Vec::with_capacity(INITIAL_SAMPLE_BYTES.min(options.max_bytes));
    let mut target = INITIAL_SAMPLE_BYTES.min(options.max_bytes);
    let (at_end, text_format, mut sink, parsed) = loop {
        let at_end =
            read_up_to(&mut reader, &mut sample, target).map_err(|(n, e)| corrupt(n, e))?;
        // A NUL or an invalid byte inside one record costs that record (a malformed line);
        // an object dense with them is binary.
        if let Some(offset) = binary_at(&sample) {
            return Err(ObjectFailure::Binary { offset });
        }
        let lossy;
        let text = match std::str::from_utf8(&sample) {
            Ok(text) => text,
            Err(err) if err.error_len().is_none() && !at_end => {
                std::str::from_utf8(&sample[..err.valid_up_to()]).expect("valid prefix")
            }
            Err(err) => {
                let invalid: usize = sample.utf8_chunks().map(|c| c.invalid().len()).sum();
                if invalid * 100 > sample.len() {
                    return Err(ObjectFailure::InvalidUtf8 {
                        offset: err.valid_up_to(),
                    });
                }
                lossy = String::from_utf8_lossy(&sample);
                &lossy
            }
        };
        let blank = text.trim().is_empty();
        if blank && at_end {
            return Err(ObjectFailure::Empty);
        }
        let text_format = sniff_text(text, at_end);
        let mut sink = Sink::new(options.max_records);
        let parsed = match text_format {
            TextFormat::Unrecognised
                if !at_end
                    && !blank
                    && sample.len() < options.max_bytes
                    && !text.contains('\n') =>
            {
                // Not even one complete line yet: read more before judging.
                records::Parsed {
                    complete: false,
                    header: false,
                    consumed: 0,
                }
            }
            TextFormat::Unrecognised => return Err(ObjectFailure::Unrecognised),
            TextFormat::Json(framing) => {
                let parsed =
                    records::json(text, framing, at_end, options.max_record_bytes, &mut sink)?;
                if sink.polluted {
                    sink = Sink::new(options.max_records);
                    sink.direct = false;
                    records::json(text, framing, at_end, options.max_record_bytes, &mut sink)?
                } else {
                    parsed
                }
            }
            TextFormat::ApacheCommon | TextFormat::ApacheCombined => {
                let combined = text_format == TextFormat::ApacheCombined;
                records::apache_log(text, combined, at_end, options.max_record_bytes, &mut sink)?
            }
            TextFormat::Delimited(delimiter) => {
                records::delimited(text, delimiter, at_end, &mut sink)?
            }
        };
        if at_end || sink.full() || sample.len() >= options.max_bytes {
            break (at_end, text_format, sink, parsed);
        }
        target = next_sample_target(target, sample.len(), sink.sampled + sink.malformed, options);
    };
    if text_format == TextFormat::Unrecognised {
        return Err(ObjectFailure::Unrecognised);
    }
    if sink.sampled == 0 {
        return Err(match sink.first_malformed.take() {
            Some((line, reason)) => ObjectFailure::NoRecords { line, reason },
            None => ObjectFailure::Empty,
        });
    }

    let format = match text_format {
        TextFormat::Json(_) if sink.envelopes => Format::FirehoseErrors,
        TextFormat::Json(JsonFraming::Lines) => Format::Ndjson,
        TextFormat::Json(JsonFraming::Concatenated) => Format::ConcatenatedJson,
        TextFormat::Json(JsonFraming::Array) => Format::JsonArray,
        TextFormat::Json(JsonFraming::Separated) => Format::SeparatedJson,
        TextFormat::ApacheCommon => Format::ApacheCommon,
        TextFormat::ApacheCombined => Format::ApacheCombined,
        TextFormat::Delimited(delimiter) => Format::Csv {
            delimiter,
            header: parsed.header,
        },
        TextFormat::Unrecognised => unreachable!("returned above"),
    };

    let seen = sink.sampled + sink.malformed;
    let (records, records_exact, decompressed_bytes) = if at_end && parsed.complete {
        (seen, true, sample.len() as u64)
    } else if options.verify {
        let mut counter = StreamCounter::default();
        counter.feed(&sample);
        // JSON lines past the sample are scanned for field names the sample did not see.
        let mut late = (format == Format::Ndjson).then(|| LateKeys::new(&sink.schema));
        if let Some(late) = &mut late {
            late.feed(
                &sample[parsed.consumed.min(sample.len())..],
                &mut sink.schema,
            );
        }
        let mut chunk = vec![0_u8; 256 << 10];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    counter.feed(&chunk[..n]);
                    if let Some(late) = &mut late {
                        late.feed(&chunk[..n], &mut sink.schema);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(corrupt(counter.bytes as usize, err)),
            }
        }
        if let Some(late) = &mut late {
            late.finish(&mut sink.schema);
        }
        counter.records(format, parsed.header)
    } else {
        // Records per parsed byte, scaled to the decompressed size: gzip's trailer tells it (for
        // a single member), otherwise the share of compressed input the sample took.
        let total = gzip_size_hint(compression, bytes, sample.len()).unwrap_or_else(|| {
            sample.len() as f64 / reader.fraction_consumed(bytes.len()).max(1e-9)
        });
        let estimate = (seen as f64 * total / parsed.consumed.max(1) as f64).round() as u64;
        (estimate.max(seen), false, total as u64)
    };

    Ok(ObjectAnalysis {
        compression,
        format,
        schema: sink.schema,
        raw_data_schema: sink.envelopes.then_some(sink.raw_data),
        sampled_records: sink.sampled,
        malformed_records: sink.malformed,
        malformed_examples: sink.malformed_examples,
        records,
        records_exact,
        error_codes: sink.error_codes,
        decompressed_bytes,
    })
}

/// Where a sample is binary, not text with a bad byte in a record: a NUL in its first 512
/// bytes, or more than one NUL in a thousand bytes.
fn binary_at(sample: &[u8]) -> Option<usize> {
    let first = memchr::memchr(0, sample)?;
    let count = memchr::memchr_iter(0, sample).count();
    (first < 512 || count * 1000 > sample.len()).then_some(first)
}

/// Reads until `limit` bytes or the end; returns whether the end was reached.
fn read_up_to(
    reader: &mut impl Read,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, (usize, io::Error)> {
    let mut chunk = vec![0_u8; 64 << 10];
    while buf.len() < limit {
        let want = chunk.len().min(limit - buf.len());
        match reader.read(&mut chunk[..want]) {
            Ok(0) => return Ok(true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err((buf.len(), err)),
        }
    }
    // Exactly at the limit: peek one byte to tell a full sample from the end of the stream.
    match reader.read(&mut chunk[..1]) {
        Ok(0) => Ok(true),
        Ok(_) => {
            buf.push(chunk[0]);
            Ok(false)
        }
        Err(err) => Err((buf.len(), err)),
    }
}

/// Counts bytes, non-empty lines and `}{` boundaries over a whole stream, chunk by chunk.
#[derive(Default)]
struct StreamCounter {
    bytes: u64,
    lines: u64,
    boundaries: u64,
    /// `},{` and `},\n{`: record boundaries of comma-separated JSON (an estimate: a nested
    /// object followed by another can look the same).
    separators: u64,
    last: Option<u8>,
}

impl StreamCounter {
    fn feed(&mut self, chunk: &[u8]) {
        for position in memchr::memchr_iter(b'\n', chunk) {
            let before = if position == 0 {
                self.last
            } else {
                Some(chunk[position - 1])
            };
            if before.is_some_and(|b| b != b'\n') {
                self.lines += 1;
            }
        }
        self.boundaries += memchr::memmem::find_iter(chunk, b"}{").count() as u64;
        self.separators += memchr::memmem::find_iter(chunk, b"},{").count() as u64
            + memchr::memmem::find_iter(chunk, b"},\n{").count() as u64;
        if self.last == Some(b'}') && chunk.first() == Some(&b'{') {
            self.boundaries += 1;
        }
        self.bytes += chunk.len() as u64;
        if let Some(&b) = chunk.last() {
            self.last = Some(b);
        }
    }

    /// (records, exact, decompressed bytes) for the format.
    fn records(&self, format: Format, header: bool) -> (u64, bool, u64) {
        let lines = self.lines + u64::from(self.last.is_some_and(|b| b != b'\n'));
        match format {
            Format::Ndjson
            | Format::FirehoseErrors
            | Format::ApacheCommon
            | Format::ApacheCombined => (lines, true, self.bytes),
            Format::Csv { .. } => (lines.saturating_sub(u64::from(header)), false, self.bytes),
            Format::ConcatenatedJson => (self.boundaries + 1, false, self.bytes),
            Format::SeparatedJson => (self.separators + 1, false, self.bytes),
            Format::JsonArray | Format::Parquet => (lines.max(1), false, self.bytes),
        }
    }
}

/// Collects parsed records into schema nodes.
pub(super) struct Sink {
    max_records: usize,
    schema: Node,
    raw_data: Node,
    envelopes: bool,
    decided: bool,
    sampled: u64,
    malformed: u64,
    malformed_examples: Vec<String>,
    first_malformed: Option<(u64, String)>,
    error_codes: BTreeMap<String, u64>,
    /// JSON lines may be observed straight from their text (see `record_json`).
    direct: bool,
    /// A line failed half-way through a direct observation: the schema may hold part of it, so
    /// the sample is parsed again without direct observation.
    polluted: bool,
}

impl Sink {
    fn new(max_records: usize) -> Self {
        Self {
            max_records,
            schema: Node::new(),
            raw_data: Node::new(),
            envelopes: false,
            decided: false,
            sampled: 0,
            malformed: 0,
            malformed_examples: Vec::new(),
            first_malformed: None,
            error_codes: BTreeMap::new(),
            direct: true,
            polluted: false,
        }
    }

    fn observe_envelope(&mut self, record: &Map<String, Value>) {
        if let Some(Value::String(code)) = record.get("errorCode") {
            *self.error_codes.entry(code.clone()).or_default() += 1;
        }
        let raw = record
            .get("rawData")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(raw)
            && let Ok(value) = serde_json::from_slice::<Value>(&decoded)
        {
            self.raw_data.observe(&value, "");
        }
    }
}

impl Sink {
    pub(super) fn capacity(&self) -> usize {
        self.max_records
    }

    pub(super) fn full(&self) -> bool {
        self.sampled + self.malformed >= self.max_records as u64
    }

    /// A JSON line. Once the first record shows the object holds plain records (not Firehose
    /// error envelopes, whose values are needed), a line is validated without allocating and
    /// then observed straight from its text; otherwise it is parsed into a `Value`.
    pub(super) fn record_json(&mut self, line: &str) -> Result<(), String> {
        if self.direct && self.decided && !self.envelopes && line.starts_with('{') {
            serde_json::from_str::<serde::de::IgnoredAny>(line).map_err(|e| e.to_string())?;
            let mut deserializer = serde_json::Deserializer::from_str(line);
            let observed = ObserveSeed {
                node: &mut self.schema,
                name: "",
            }
            .deserialize(&mut deserializer);
            // A lone surrogate or an out-of-range number passes the validation but not a parse.
            return match observed {
                Ok(()) => {
                    self.sampled += 1;
                    Ok(())
                }
                Err(err) => {
                    self.polluted = true;
                    Err(err.to_string())
                }
            };
        }
        match serde_json::from_str::<Value>(line) {
            Ok(record @ Value::Object(_)) => {
                self.record(record);
                Ok(())
            }
            Ok(other) => Err(format!(
                "expected a JSON object, found {}",
                records::json_kind(&other)
            )),
            Err(err) => Err(err.to_string()),
        }
    }

    pub(super) fn record(&mut self, record: Value) {
        let Value::Object(map) = &record else {
            unreachable!("records are objects")
        };
        if !self.decided {
            self.decided = true;
            self.envelopes = map.contains_key("errorCode") && map.contains_key("rawData");
        }
        if self.envelopes {
            self.observe_envelope(map);
        }
        self.schema.observe(&record, "");
        self.sampled += 1;
    }

    pub(super) fn malformed(&mut self, line: u64, reason: String) {
        self.malformed += 1;
        if self.malformed_examples.len() < 5 {
            self.malformed_examples
                .push(format!("line {line}: {reason}"));
        }
        if self.first_malformed.is_none() {
            self.first_malformed = Some((line, reason));
        }
    }
}

#[cfg(test)]
mod tests;
