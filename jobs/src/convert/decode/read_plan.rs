//! How the decoders read a table's top-level columns, and how what they read becomes the
//! table's types, row by row: epoch integers are read as integers and scaled (out of range: the
//! row is rejected), text timestamps are read as text by arrow-json and parsed here (so that a
//! number in a timestamp column is a bad value, not microseconds since 1970), and a double that
//! overflowed (`1e400`) is rejected rather than written as infinity.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StructArray, TimestampMicrosecondArray,
};
use arrow::compute::CastOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::explain::{EPOCH_MILLIS, EPOCH_SECONDS};
use crate::crawler::infer::TIMESTAMP_SOURCE;

/// How one top-level column is read.
#[derive(Debug, Clone, PartialEq)]
enum ColumnRead {
    /// As the table types it.
    AsIs,
    /// An integer of epoch seconds or milliseconds: microseconds per unit, and the valid range.
    Epoch(i64, std::ops::Range<i64>),
    /// Text parsed into the column's timestamp type (arrow-json reads it as text).
    TextTime,
}

/// The schemas each decoder reads with, and what turns their batches into the table's.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    /// For the direct decoder: epoch columns as Int64.
    pub direct: SchemaRef,
    /// For arrow-json: epoch columns as Int64, text timestamps as Utf8.
    pub json: SchemaRef,
    columns: Vec<ColumnRead>,
}

/// A row that could not take the table's type, and the column's complaint.
pub type Rejected = (usize, String);

impl ReadPlan {
    pub fn new(schema: &Schema) -> Self {
        let mut columns = Vec::with_capacity(schema.fields().len());
        let mut direct = Vec::with_capacity(schema.fields().len());
        let mut json = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let source = field.metadata().get(TIMESTAMP_SOURCE).map(String::as_str);
            let read = match (field.data_type(), source) {
                (DataType::Timestamp(..), Some("epoch_seconds")) => {
                    ColumnRead::Epoch(1_000_000, EPOCH_SECONDS)
                }
                (DataType::Timestamp(..), Some("epoch_millis")) => {
                    ColumnRead::Epoch(1_000, EPOCH_MILLIS)
                }
                (DataType::Timestamp(..), _) => ColumnRead::TextTime,
                _ => ColumnRead::AsIs,
            };
            let as_type = |data_type| Field::new(field.name(), data_type, true);
            let (for_direct, for_json) = match read {
                ColumnRead::AsIs => (field.as_ref().clone(), field.as_ref().clone()),
                ColumnRead::Epoch(..) => (as_type(DataType::Int64), as_type(DataType::Int64)),
                ColumnRead::TextTime => (field.as_ref().clone(), as_type(DataType::Utf8)),
            };
            columns.push(read);
            direct.push(for_direct);
            json.push(for_json);
        }
        Self {
            direct: Arc::new(Schema::new(direct)),
            json: Arc::new(Schema::new(json)),
            columns,
        }
    }

    /// A decoded batch (of `self.direct` or `self.json`) in the table's `schema`, and the rows
    /// that cannot be written (their values stay in the batch; the caller filters them out).
    pub fn output(&self, batch: RecordBatch, schema: &SchemaRef) -> (RecordBatch, Vec<Rejected>) {
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        let mut rejected: Vec<Rejected> = Vec::new();
        for (index, read) in self.columns.iter().enumerate() {
            let field = schema.field(index);
            let column = &columns[index];
            let name = field.name();
            match read {
                ColumnRead::AsIs => non_finite(column, name, &mut rejected),
                ColumnRead::Epoch(factor, range) => {
                    let ints = column
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("epoch columns are read as Int64");
                    for (row, value) in ints.iter().enumerate() {
                        if value.is_some_and(|v| !range.contains(&v)) {
                            rejected.push((row, format!("{name}: not an epoch time in range")));
                        }
                    }
                    let micros: TimestampMicrosecondArray =
                        ints.unary(|v| v.saturating_mul(*factor));
                    let tz = match field.data_type() {
                        DataType::Timestamp(_, tz) => tz.clone(),
                        _ => None,
                    };
                    columns[index] = Arc::new(micros.with_timezone_opt(tz));
                }
                ColumnRead::TextTime if column.data_type() == &DataType::Utf8 => {
                    let options = CastOptions {
                        safe: true,
                        ..CastOptions::default()
                    };
                    let parsed =
                        arrow::compute::cast_with_options(column, field.data_type(), &options)
                            .expect("text casts to a timestamp");
                    for row in 0..column.len() {
                        if column.is_valid(row) && parsed.is_null(row) {
                            rejected.push((row, format!("{name}: not a timestamp")));
                        }
                    }
                    columns[index] = parsed;
                }
                ColumnRead::TextTime => {}
            }
        }
        rejected.sort_by_key(|(row, _)| *row);
        rejected.dedup_by_key(|(row, _)| *row);
        let batch =
            RecordBatch::try_new(schema.clone(), columns).expect("columns match the schema");
        (batch, rejected)
    }
}

/// Rows holding an infinite double (a JSON number past f64's range), in a column or a struct's.
fn non_finite(column: &ArrayRef, path: &str, rejected: &mut Vec<Rejected>) {
    match column.data_type() {
        DataType::Float64 => {
            let floats = column
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("a Float64 column");
            if floats.values().iter().all(|v| v.is_finite()) {
                return;
            }
            for (row, value) in floats.iter().enumerate() {
                if value.is_some_and(|v| !v.is_finite()) {
                    rejected.push((row, format!("{path}: a number out of range")));
                }
            }
        }
        DataType::Struct(_) => {
            let fields = column
                .as_any()
                .downcast_ref::<StructArray>()
                .expect("a struct column");
            for (child, field) in fields.columns().iter().zip(fields.fields()) {
                non_finite(child, &format!("{path}.{}", field.name()), rejected);
            }
        }
        _ => {}
    }
}
