//! Decoding one landed object into Arrow batches of the table's schema.
//!
//! Records are split first (so each has a line and byte offset for quarantine), then decoded in
//! chunks: directly into Arrow buffers where every record is well typed (`direct`), else by
//! arrow-json in strict mode. A chunk that fails is decoded record by record: a record
//! with fields the schema lacks extends the schema (add-only: existing columns never change
//! type), any other failing record is quarantined with its reason. Every record read is either
//! written or quarantined.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Fields, Schema, SchemaRef, TimeUnit};
use arrow::json::ReaderBuilder;
use serde_json::Value;

use crate::crawler::infer::Node;
use crate::crawler::sniff::{JsonFraming, TextFormat, sniff_text};
use read_plan::ReadPlan;

mod direct;
pub mod explain;
pub mod parquet;
mod read_plan;
mod text_rows;
pub use text_rows::{LineFormat, TextRows, apache_log_to_json, delimited_to_json};

/// Records decoded together before falling back to one at a time.
const CHUNK_RECORDS: usize = 4096;

/// One record's place in its object.
#[derive(Debug, Clone, Copy)]
pub struct RecordSpan {
    pub line: u64,
    pub offset: usize,
    pub len: usize,
}

/// A record that could not be written, with why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Quarantined {
    pub source_key: String,
    pub line: u64,
    pub byte_offset: usize,
    pub reason: String,
    pub record: String,
}

/// What decoding an object produced.
#[derive(Debug)]
pub struct Decoded {
    /// Batches in `schema`.
    pub batches: Vec<RecordBatch>,
    /// The schema the batches have: the table's, possibly extended by new fields.
    pub schema: SchemaRef,
    pub quarantined: Vec<Quarantined>,
    pub records_read: u64,
    /// The records of the object, and for each batch the record each row came from.
    pub spans: Vec<RecordSpan>,
    pub row_spans: Vec<Vec<u32>>,
}

impl Decoded {
    /// An object with no records.
    pub fn empty(schema: SchemaRef) -> Self {
        Self {
            batches: Vec::new(),
            schema,
            quarantined: Vec::new(),
            records_read: 0,
            spans: Vec::new(),
            row_spans: Vec::new(),
        }
    }

    /// Applies a table's mapping to every batch; rows that cannot be cast are quarantined.
    pub fn apply_mapping(
        &mut self,
        mapping: &super::mapping::Mapping,
        text: &[u8],
        source_key: &str,
    ) -> crate::Result<()> {
        for (batch, rows) in self.batches.iter_mut().zip(&self.row_spans) {
            let mapped = mapping.apply(batch)?;
            for (row, reason) in mapped.rejected {
                let span = self.spans[rows[row] as usize];
                self.quarantined.push(Quarantined {
                    source_key: source_key.to_owned(),
                    line: span.line,
                    byte_offset: span.offset,
                    reason,
                    record: explain::escape_bytes(&text[span.offset..span.offset + span.len]),
                });
            }
            *batch = mapped.batch;
        }
        Ok(())
    }
}

/// Splits JSON text into records: one per line, back to back (`}{`) or array elements.
pub fn split_records(text: &[u8]) -> Result<Vec<RecordSpan>, String> {
    // Sniffed on the valid UTF-8 prefix: one record's invalid byte costs that record only.
    let head = &text[..text.len().min(1 << 20)];
    let as_text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(err) => std::str::from_utf8(&head[..err.valid_up_to()]).expect("a valid prefix"),
    };
    let framing = match sniff_text(as_text, text.len() <= 1 << 20) {
        TextFormat::Json(framing) => framing,
        other => {
            return Err(format!(
                "conversion reads JSON landings; this object is {other:?}"
            ));
        }
    };
    let mut spans = Vec::new();
    match framing {
        JsonFraming::Lines => {
            let mut start = 0;
            let ends = memchr::memchr_iter(b'\n', text).chain(std::iter::once(text.len()));
            for (line, end) in (1..).zip(ends) {
                let piece = &text[start..end];
                let trimmed = piece.trim_ascii();
                if !trimmed.is_empty() {
                    let offset = start + (trimmed.as_ptr() as usize - piece.as_ptr() as usize);
                    spans.push(RecordSpan {
                        line,
                        offset,
                        len: trimmed.len(),
                    });
                }
                start = end + 1;
            }
        }
        JsonFraming::Concatenated | JsonFraming::Array | JsonFraming::Separated => {
            let mut scanner = Scanner {
                text,
                pos: 0,
                line: 1,
            };
            if framing == JsonFraming::Array {
                scanner.skip_ws();
                scanner.pos += 1; // '['
            }
            loop {
                scanner.skip_separators(framing != JsonFraming::Concatenated);
                if scanner.pos >= text.len() {
                    break;
                }
                let (line, start) = (scanner.line, scanner.pos);
                scanner.value();
                spans.push(RecordSpan {
                    line,
                    offset: start,
                    len: scanner.pos - start,
                });
            }
        }
    }
    Ok(spans)
}

/// A byte scanner that finds where JSON values end, tracking strings and nesting (not validity:
/// a malformed record is still one record, quarantined by the decoder).
struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
    line: u64,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        while let Some(&b) = self.text.get(self.pos) {
            if !b.is_ascii_whitespace() {
                break;
            }
            if b == b'\n' {
                self.line += 1;
            }
            self.pos += 1;
        }
    }

    fn skip_separators(&mut self, array: bool) {
        loop {
            self.skip_ws();
            match self.text.get(self.pos) {
                Some(b',') if array => self.pos += 1,
                Some(b']') if array => self.pos = self.text.len(),
                _ => return,
            }
        }
    }

    fn value(&mut self) {
        let mut depth = 0_i64;
        let mut in_string = false;
        while self.pos < self.text.len() {
            let b = self.text[self.pos];
            self.pos += 1;
            if in_string {
                match b {
                    b'\\' => self.pos += 1,
                    b'"' => in_string = false,
                    b'\n' => self.line += 1,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth <= 0 {
                        return;
                    }
                }
                b'\n' => {
                    self.line += 1;
                    if depth == 0 {
                        return;
                    }
                }
                b' ' | b'\t' | b'\r' | b',' if depth == 0 => return,
                _ => {}
            }
        }
        self.pos = self.pos.min(self.text.len());
    }
}

/// Decodes `count` records that lie back to back in `text` (whitespace between them only).
fn decode(text: &[u8], count: usize, read: &SchemaRef) -> Result<Option<RecordBatch>, String> {
    let mut decoder = ReaderBuilder::new(read.clone())
        .with_strict_mode(true)
        .with_coerce_primitive(true)
        .with_batch_size(count.max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let consumed = decoder.decode(text).map_err(|e| e.to_string())?;
    if !text[consumed..].trim_ascii().is_empty() {
        return Err("more values than records".into());
    }
    let batch = decoder.flush().map_err(|e| e.to_string())?;
    match &batch {
        Some(batch) if batch.num_rows() != count => {
            Err(format!("{} values for {count} records", batch.num_rows()))
        }
        _ => Ok(batch),
    }
}

pub use crate::catalog::evolve::merge_add_only;

/// `schema` extended (add-only) by what `node` observed.
fn add_only(schema: &Fields, node: &Node) -> Fields {
    let (observed, _) = node.resolve_schema();
    merge_add_only(schema, observed.fields())
}

/// Where decoded rows go: batches in the table's schema with the record of each row, and the
/// records that could not be written.
struct Sink<'a> {
    text: &'a [u8],
    spans: &'a [RecordSpan],
    source_key: &'a str,
    batches: Vec<RecordBatch>,
    row_spans: Vec<Vec<u32>>,
    quarantined: Vec<Quarantined>,
}

impl Sink<'_> {
    fn quarantine(&mut self, span: RecordSpan, reason: String) {
        let record = &self.text[span.offset..span.offset + span.len];
        self.quarantined.push(Quarantined {
            source_key: self.source_key.to_owned(),
            line: span.line,
            byte_offset: span.offset,
            reason,
            record: explain::escape_bytes(record),
        });
    }

    /// Takes a decoded batch whose rows are the records `rows`; rows the plan rejects are
    /// quarantined with the reason [`explain::explain`] gives (else the plan's).
    fn emit(&mut self, plan: &ReadPlan, schema: &SchemaRef, batch: RecordBatch, rows: Vec<u32>) {
        let (batch, rejected) = plan.output(batch, schema);
        if rejected.is_empty() {
            self.batches.push(batch);
            self.row_spans.push(rows);
            return;
        }
        let mut keep = vec![true; batch.num_rows()];
        for (row, fallback) in rejected {
            keep[row] = false;
            let span = self.spans[rows[row] as usize];
            let record = &self.text[span.offset..span.offset + span.len];
            // The plan knows the column; a parse error (an overflowing number) says the rest.
            let reason = match explain::explain(record, schema) {
                Some(detail) if detail.starts_with("invalid JSON") => {
                    format!("{fallback}; {detail}")
                }
                Some(reason) => reason,
                None => fallback,
            };
            self.quarantine(span, reason);
        }
        let kept: Vec<u32> = rows
            .iter()
            .zip(&keep)
            .filter_map(|(row, keep)| keep.then_some(*row))
            .collect();
        if !kept.is_empty() {
            let filtered = arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep))
                .expect("a mask of the batch's length");
            self.batches.push(filtered);
            self.row_spans.push(kept);
        }
    }
}

/// Decodes an object's text with `schema`; see the module doc. Without `allow_new_fields` (the
/// table's schema policy is `log`), records with unknown fields are quarantined instead.
pub fn decode_object(
    text: &[u8],
    source_key: &str,
    schema: &SchemaRef,
    allow_new_fields: bool,
) -> Result<Decoded, String> {
    let spans = split_records(text)?;
    let mut schema = schema.clone();
    'attempt: loop {
        let plan = ReadPlan::new(&schema);
        let mut sink = Sink {
            text,
            spans: &spans,
            source_key,
            batches: Vec::new(),
            row_spans: Vec::new(),
            quarantined: Vec::new(),
        };
        for (chunk_index, chunk) in spans.chunks(CHUNK_RECORDS).enumerate() {
            let chunk_start = (chunk_index * CHUNK_RECORDS) as u32;
            let (first, last) = (chunk[0], chunk[chunk.len() - 1]);
            // Well-typed records decode directly; otherwise back-to-back records decode in one
            // arrow-json call; JSON arrays (commas between records) and chunks with a bad record
            // go record by record.
            let contiguous = &text[first.offset..last.offset + last.len];
            let decoded = direct::decode_records(text, chunk, &plan.direct)
                .or_else(|| decode(contiguous, chunk.len(), &plan.json).ok().flatten());
            if let Some(batch) = decoded {
                let rows = (chunk_start..chunk_start + chunk.len() as u32).collect();
                sink.emit(&plan, &schema, batch, rows);
                continue;
            }
            let mut unknown = Node::new();
            for (index, span) in chunk.iter().enumerate() {
                let record = &text[span.offset..span.offset + span.len];
                match decode(record, 1, &plan.json) {
                    Ok(Some(batch)) => {
                        sink.emit(&plan, &schema, batch, vec![chunk_start + index as u32]);
                    }
                    Ok(None) => {}
                    Err(decoder_reason) => {
                        let mut reason =
                            explain::explain(record, &schema).unwrap_or(decoder_reason);
                        if let Ok(value @ Value::Object(_)) =
                            serde_json::from_slice::<Value>(record)
                        {
                            let mut node = Node::new();
                            node.observe(&value, "");
                            let extended = add_only(schema.fields(), &node);
                            if extended != *schema.fields() {
                                if allow_new_fields {
                                    unknown.merge(&node);
                                    continue;
                                }
                                let new: Vec<&str> = extended
                                    .iter()
                                    .skip(schema.fields().len())
                                    .map(|f| f.name().as_str())
                                    .collect();
                                reason = format!(
                                    "fields not in the table's schema (policy log): {}; {reason}",
                                    new.join(", ")
                                );
                            }
                        }
                        sink.quarantine(*span, reason);
                    }
                }
            }
            if !unknown.is_empty() {
                schema = Arc::new(Schema::new(add_only(schema.fields(), &unknown)));
                continue 'attempt;
            }
        }
        let Sink {
            batches,
            row_spans,
            quarantined,
            ..
        } = sink;
        return Ok(Decoded {
            batches,
            schema,
            quarantined,
            records_read: spans.len() as u64,
            spans,
            row_spans,
        });
    }
}

/// For the fuzzers (and a test): the direct decoder against arrow-json, the reference, reading
/// the same schema (the direct decoder's read schema), on `text`'s records in the chunks
/// conversion decodes them in. `Ok(n)`: the chunks the direct decoder accepted, each equal to
/// the reference's batch; `Err` when the reference rejects what it accepted, or decodes it
/// differently.
pub fn direct_agrees_with_reference(text: &[u8], schema: &SchemaRef) -> Result<usize, String> {
    let Ok(spans) = split_records(text) else {
        return Ok(0);
    };
    let plan = ReadPlan::new(schema);
    let mut accepted = 0;
    for chunk in spans.chunks(CHUNK_RECORDS) {
        let Some(direct) = direct::decode_records(text, chunk, &plan.direct) else {
            continue;
        };
        let (first, last) = (chunk[0], chunk[chunk.len() - 1]);
        let contiguous = &text[first.offset..last.offset + last.len];
        // Records separated by commas (a JSON array) are not one arrow-json stream: record by
        // record there.
        let reference = match decode(contiguous, chunk.len(), &plan.direct) {
            Ok(Some(batch)) => batch,
            _ => {
                let mut batches = Vec::new();
                for span in chunk {
                    let record = &text[span.offset..span.offset + span.len];
                    match decode(record, 1, &plan.direct) {
                        Ok(Some(batch)) => batches.push(batch),
                        Ok(None) => {}
                        Err(e) => {
                            return Err(format!(
                                "the direct decoder accepted a record arrow-json rejects ({e}): {}",
                                String::from_utf8_lossy(record)
                            ));
                        }
                    }
                }
                arrow::compute::concat_batches(&direct.schema(), &batches)
                    .map_err(|e| e.to_string())?
            }
        };
        if direct != reference {
            return Err(format!(
                "the direct decoder and arrow-json disagree on {}",
                String::from_utf8_lossy(contiguous)
            ));
        }
        accepted += 1;
    }
    Ok(accepted)
}

/// A timestamp column's rows as microseconds since the epoch (`None` if it is no timestamp).
pub fn timestamp_micros(column: &ArrayRef) -> Option<TimestampMicrosecondArray> {
    if !matches!(column.data_type(), DataType::Timestamp(..)) {
        return None;
    }
    let cast =
        arrow::compute::cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None)).ok()?;
    cast.as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .cloned()
}

#[cfg(test)]
mod tests;
