//! Parquet landings: read batch by batch (row group by row group), each of the table's columns
//! taken from the file by name and cast to the table's type. A row whose value cannot be cast is
//! quarantined with the column, the value and the type expected; a column the table lacks
//! extends the schema (add-only) or, under the `log` policy, quarantines its rows. A row's
//! "line" is its 1-based row number in the file, and its record is the row as JSON.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::CastOptions;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Decoded, Quarantined, RecordSpan, merge_add_only};
use crate::catalog::schema::type_name;

/// Rows per batch read from a Parquet landing.
pub const BATCH_ROWS: usize = 8192;

/// A row of a batch as one JSON object (for the quarantine).
fn row_json(batch: &RecordBatch, row: usize) -> String {
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    let one = batch.slice(row, 1);
    if writer.write(&one).is_err() || writer.finish().is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&writer.into_inner())
        .trim_end()
        .to_owned()
}

/// A Parquet landing's decoder: each batch's columns taken by name from the file and cast to
/// the table's types, rows that do not cast quarantined. It counts rows across the batches it
/// is given, so a file decoded row group by row group numbers its rows as one.
pub struct ParquetDecoder {
    schema: SchemaRef,
    /// The file's columns the table lacks.
    unknown: Vec<String>,
    allow_new_fields: bool,
    rows: u64,
}

impl ParquetDecoder {
    /// A decoder for a file of `file_schema` into a table of `table`; with `allow_new_fields`
    /// the file's other columns extend the output schema (add-only).
    pub fn new(file_schema: &Schema, table: &SchemaRef, allow_new_fields: bool) -> Self {
        let extended = merge_add_only(table.fields(), file_schema.fields());
        let unknown: Vec<String> = extended
            .iter()
            .skip(table.fields().len())
            .map(|f| f.name().clone())
            .collect();
        let schema: SchemaRef = if allow_new_fields && !unknown.is_empty() {
            Arc::new(Schema::new(extended))
        } else {
            table.clone()
        };
        Self {
            schema,
            unknown,
            allow_new_fields,
            rows: 0,
        }
    }

    /// The schema of what it decodes.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows given to it so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Quarantines rows it could not be given (an unreadable row group): `count` rows from the
    /// next row number on, each with `reason`.
    pub fn lose(&mut self, count: u64, source_key: &str, reason: &str, into: &mut Decoded) {
        for row in 0..count {
            into.quarantined.push(Quarantined {
                source_key: source_key.to_owned(),
                line: self.rows + row + 1,
                byte_offset: 0,
                reason: reason.to_owned(),
                record: String::new(),
            });
        }
        self.rows += count;
        into.records_read += count;
    }

    /// Decodes one batch of the file into `into` (a [`Decoded`] of [`Self::schema`]).
    pub fn decode(
        &mut self,
        batch: &RecordBatch,
        source_key: &str,
        into: &mut Decoded,
    ) -> Result<(), String> {
        let (schema, read) = (&self.schema, self.rows);
        let cast_options = CastOptions {
            safe: true,
            ..CastOptions::default()
        };
        let format_options = FormatOptions::default();
        let rows = batch.num_rows();
        let mut reasons: Vec<Option<String>> = vec![None; rows];
        if !self.allow_new_fields && !self.unknown.is_empty() {
            let reason = format!(
                "fields not in the table's schema (policy log): {}",
                self.unknown.join(", ")
            );
            reasons.iter_mut().for_each(|r| *r = Some(reason.clone()));
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = match batch.column_by_name(field.name()) {
                None => new_null_array(field.data_type(), rows),
                Some(column) if column.data_type() == field.data_type() => column.clone(),
                Some(column) => {
                    let cast =
                        arrow::compute::cast_with_options(column, field.data_type(), &cast_options)
                            .map_err(|e| {
                                format!(
                                    "column {} is {} in the file and cannot be read as {}: {e}",
                                    field.name(),
                                    type_name(column.data_type()),
                                    type_name(field.data_type())
                                )
                            })?;
                    let formatter = ArrayFormatter::try_new(column.as_ref(), &format_options)
                        .map_err(|e| e.to_string())?;
                    for (row, reason) in reasons.iter_mut().enumerate() {
                        if reason.is_none() && column.is_valid(row) && cast.is_null(row) {
                            *reason = Some(format!(
                                "{}: {} is not a {}",
                                field.name(),
                                formatter.value(row),
                                type_name(field.data_type())
                            ));
                        }
                    }
                    cast
                }
            };
            columns.push(column);
        }
        let out = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
        let first = into.spans.len() as u32;
        for row in 0..rows {
            into.spans.push(RecordSpan {
                line: read + row as u64 + 1,
                offset: 0,
                len: 0,
            });
        }
        let keep: Vec<bool> = reasons.iter().map(Option::is_none).collect();
        for (row, reason) in reasons.into_iter().enumerate() {
            if let Some(reason) = reason {
                into.quarantined.push(Quarantined {
                    source_key: source_key.to_owned(),
                    line: read + row as u64 + 1,
                    byte_offset: 0,
                    reason,
                    record: row_json(batch, row),
                });
            }
        }
        let kept: Vec<u32> = (0..rows as u32)
            .filter(|&row| keep[row as usize])
            .map(|row| first + row)
            .collect();
        if !kept.is_empty() {
            let out = if kept.len() == rows {
                out
            } else {
                arrow::compute::filter_record_batch(&out, &BooleanArray::from(keep))
                    .map_err(|e| e.to_string())?
            };
            into.batches.push(out);
            into.row_spans.push(kept);
        }
        into.records_read += rows as u64;
        self.rows += rows as u64;
        Ok(())
    }
}

/// Decodes a Parquet object held in memory with the table's `schema`.
pub fn decode_parquet(
    bytes: &bytes::Bytes,
    source_key: &str,
    schema: &SchemaRef,
    allow_new_fields: bool,
) -> Result<Decoded, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
        .map_err(|e| format!("parquet footer unreadable: {e}"))?;
    let mut decoder = ParquetDecoder::new(builder.schema(), schema, allow_new_fields);
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| format!("parquet unreadable: {e}"))?;
    let mut decoded = Decoded::empty(decoder.schema().clone());
    for batch in reader {
        let read = decoder.rows();
        let batch = batch.map_err(|e| format!("parquet unreadable after {read} rows: {e}"))?;
        decoder.decode(&batch, source_key, &mut decoded)?;
    }
    Ok(decoded)
}
