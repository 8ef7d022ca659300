//! Decoding one landed object into Arrow batches of the table's schema.
//!
//! Records are split first (so each has a line and byte offset for quarantine), then decoded in
//! chunks: directly into Arrow buffers where every record is well typed (`direct`), else by
//! arrow-json in strict mode. A chunk that fails is decoded record by record: a record
//! with fields the schema lacks extends the schema (add-only: existing columns never change
//! type), any other failing record is quarantined with its reason. Every record read is either
//! written or quarantined.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::json::ReaderBuilder;
use serde_json::Value;

use crate::crawler::infer::{Node, TIMESTAMP_SOURCE};
use crate::crawler::sniff::{JsonFraming, TextFormat, sniff_text};

mod direct;
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
                    record: String::from_utf8_lossy(&text[span.offset..span.offset + span.len])
                        .into_owned(),
                });
            }
            *batch = mapped.batch;
        }
        Ok(())
    }
}

/// Splits JSON text into records: one per line, back to back (`}{`) or array elements.
pub fn split_records(text: &[u8]) -> Result<Vec<RecordSpan>, String> {
    let as_text = std::str::from_utf8(&text[..text.len().min(1 << 20)]).unwrap_or("");
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
        JsonFraming::Concatenated | JsonFraming::Array => {
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
                scanner.skip_separators(framing == JsonFraming::Array);
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

/// How a top-level column is read: epoch times are read as integers, then scaled.
fn read_schema(schema: &Schema) -> (SchemaRef, Vec<(usize, i64)>) {
    let mut scaled = Vec::new();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let factor = match field.metadata().get(TIMESTAMP_SOURCE).map(String::as_str) {
                Some("epoch_seconds") => 1_000_000,
                Some("epoch_millis") => 1_000,
                _ => return field.as_ref().clone(),
            };
            scaled.push((index, factor));
            Field::new(field.name(), DataType::Int64, true)
        })
        .collect();
    (Arc::new(Schema::new(fields)), scaled)
}

fn to_output(batch: RecordBatch, schema: &SchemaRef, scaled: &[(usize, i64)]) -> RecordBatch {
    if scaled.is_empty() {
        return batch.with_schema(schema.clone()).expect("same layout");
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for &(index, factor) in scaled {
        let ints = columns[index]
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("epoch columns are read as Int64");
        let micros: TimestampMicrosecondArray = ints.unary(|v| v.saturating_mul(factor));
        let tz = match schema.field(index).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        columns[index] = Arc::new(micros.with_timezone_opt(tz));
    }
    RecordBatch::try_new(schema.clone(), columns).expect("columns match the schema")
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

/// `base` with the fields of `extra` it lacks appended, recursively into structs; fields of `base`
/// keep their types.
pub fn merge_add_only(base: &Fields, extra: &Fields) -> Fields {
    let mut fields: Vec<Field> = base.iter().map(|f| f.as_ref().clone()).collect();
    for new in extra {
        match fields.iter_mut().find(|f| f.name() == new.name()) {
            None => fields.push(new.as_ref().clone()),
            Some(existing) => {
                if let (DataType::Struct(old), DataType::Struct(more)) =
                    (existing.data_type(), new.data_type())
                {
                    let merged = merge_add_only(old, more);
                    *existing = existing.clone().with_data_type(DataType::Struct(merged));
                }
            }
        }
    }
    fields.into()
}

/// `schema` extended (add-only) by what `node` observed.
fn add_only(schema: &Fields, node: &Node) -> Fields {
    let (observed, _) = node.resolve_schema();
    merge_add_only(schema, observed.fields())
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
        let (read, scaled) = read_schema(&schema);
        let mut batches = Vec::new();
        let mut row_spans: Vec<Vec<u32>> = Vec::new();
        let mut quarantined = Vec::new();
        for (chunk_index, chunk) in spans.chunks(CHUNK_RECORDS).enumerate() {
            let chunk_start = (chunk_index * CHUNK_RECORDS) as u32;
            let (first, last) = (chunk[0], chunk[chunk.len() - 1]);
            // Well-typed records decode directly; otherwise back-to-back records decode in one
            // arrow-json call; JSON arrays (commas between records) and chunks with a bad record
            // go record by record.
            let contiguous = &text[first.offset..last.offset + last.len];
            let decoded = direct::decode_records(text, chunk, &read)
                .or_else(|| decode(contiguous, chunk.len(), &read).ok().flatten());
            if let Some(batch) = decoded {
                batches.push(to_output(batch, &schema, &scaled));
                row_spans.push((chunk_start..chunk_start + chunk.len() as u32).collect());
                continue;
            }
            let records: Vec<&[u8]> = chunk
                .iter()
                .map(|s| &text[s.offset..s.offset + s.len])
                .collect();
            let mut unknown = Node::new();
            for (index, (span, record)) in chunk.iter().zip(&records).enumerate() {
                match decode(record, 1, &read) {
                    Ok(Some(batch)) => {
                        batches.push(to_output(batch, &schema, &scaled));
                        row_spans.push(vec![chunk_start + index as u32]);
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        let mut reason = reason;
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
                        quarantined.push(Quarantined {
                            source_key: source_key.to_owned(),
                            line: span.line,
                            byte_offset: span.offset,
                            reason,
                            record: String::from_utf8_lossy(record).into_owned(),
                        });
                    }
                }
            }
            if !unknown.is_empty() {
                schema = Arc::new(Schema::new(add_only(schema.fields(), &unknown)));
                continue 'attempt;
            }
        }
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
