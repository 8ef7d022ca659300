//! How the decoders read a table's columns, and how what they read becomes the table's types,
//! row by row, at any depth (struct fields, list items): epoch integers are read as integers
//! and scaled (out of range: the row is rejected), text timestamps are read as text by
//! arrow-json and parsed here (so that a number in a timestamp column is a bad value, not
//! microseconds since 1970), and a double that overflowed (`1e400`) is rejected rather than
//! written as infinity.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, ListArray, StructArray, TimestampMicrosecondArray,
};
use arrow::compute::CastOptions;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type, Schema, SchemaRef};

use super::explain::{EPOCH_MILLIS, EPOCH_SECONDS};
use crate::crawler::infer::TIMESTAMP_SOURCE;

/// The schemas each decoder reads with, and what turns their batches into the table's.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    /// For the direct decoder: epoch times as Int64 (it parses RFC 3339 text itself).
    pub direct: SchemaRef,
    /// For arrow-json: epoch times as Int64, text timestamps as Utf8.
    pub json: SchemaRef,
}

/// A row that could not take the table's type, and the column's complaint.
pub type Rejected = (usize, String);

/// Which decoder a read type is for.
#[derive(Clone, Copy, PartialEq)]
enum Reader {
    Direct,
    Json,
}

fn epoch(field: &Field) -> Option<(i64, std::ops::Range<i64>)> {
    match field.metadata().get(TIMESTAMP_SOURCE).map(String::as_str) {
        Some("epoch_seconds") => Some((1_000_000, EPOCH_SECONDS)),
        Some("epoch_millis") => Some((1_000, EPOCH_MILLIS)),
        _ => None,
    }
}

/// The field a decoder reads for a table's field.
fn read_field(field: &FieldRef, reader: Reader) -> FieldRef {
    let data_type = match field.data_type() {
        DataType::Timestamp(..) if epoch(field).is_some() => DataType::Int64,
        DataType::Timestamp(..) if reader == Reader::Json => DataType::Utf8,
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .map(|child| read_field(child, reader))
                .collect(),
        ),
        DataType::List(item) => DataType::List(read_field(item, reader)),
        _ => return field.clone(),
    };
    if &data_type == field.data_type() {
        return field.clone();
    }
    Arc::new(field.as_ref().clone().with_data_type(data_type))
}

impl ReadPlan {
    pub fn new(schema: &Schema) -> Self {
        let read = |reader| {
            let fields: Fields = schema
                .fields()
                .iter()
                .map(|f| read_field(f, reader))
                .collect();
            Arc::new(Schema::new(fields))
        };
        Self {
            direct: read(Reader::Direct),
            json: read(Reader::Json),
        }
    }

    /// A decoded batch (of `self.direct` or `self.json`) in the table's `schema`, and the rows
    /// that cannot be written (their values stay in the batch; the caller filters them out).
    pub fn output(
        &self,
        batch: arrow::array::RecordBatch,
        schema: &SchemaRef,
    ) -> (arrow::array::RecordBatch, Vec<Rejected>) {
        let mut rejected: Vec<Rejected> = Vec::new();
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| {
                let mut bad = Vec::new();
                let out = convert(column, field, field.name(), &mut bad);
                rejected.extend(bad);
                out
            })
            .collect();
        rejected.sort_by_key(|(row, _)| *row);
        rejected.dedup_by_key(|(row, _)| *row);
        let batch = arrow::array::RecordBatch::try_new(schema.clone(), columns)
            .expect("columns match the schema");
        (batch, rejected)
    }
}

/// `array` (as a decoder read it) as `field`'s type; rows of it that cannot be are added to
/// `rejected` (row indexes of `array`).
fn convert(array: &ArrayRef, field: &Field, path: &str, rejected: &mut Vec<Rejected>) -> ArrayRef {
    match (array.data_type(), field.data_type()) {
        (DataType::Int64, DataType::Timestamp(_, tz)) => {
            let (factor, range) = epoch(field).unwrap_or((1, i64::MIN..i64::MAX));
            let ints = array.as_primitive::<Int64Type>();
            for (row, value) in ints.iter().enumerate() {
                if value.is_some_and(|v| !range.contains(&v)) {
                    rejected.push((row, format!("{path}: not an epoch time in range")));
                }
            }
            let micros: TimestampMicrosecondArray = ints.unary(|v| v.saturating_mul(factor));
            Arc::new(micros.with_timezone_opt(tz.clone()))
        }
        (DataType::Utf8, DataType::Timestamp(..)) => {
            let options = CastOptions {
                safe: true,
                ..CastOptions::default()
            };
            let parsed = arrow::compute::cast_with_options(array, field.data_type(), &options)
                .expect("text casts to a timestamp");
            for row in 0..array.len() {
                if array.is_valid(row) && parsed.is_null(row) {
                    rejected.push((row, format!("{path}: not a timestamp")));
                }
            }
            parsed
        }
        (DataType::Float64, DataType::Float64) => {
            let floats: &Float64Array = array.as_primitive();
            if !floats.values().iter().all(|v| v.is_finite()) {
                for (row, value) in floats.iter().enumerate() {
                    if value.is_some_and(|v| !v.is_finite()) {
                        rejected.push((row, format!("{path}: a number out of range")));
                    }
                }
            }
            array.clone()
        }
        (DataType::Struct(_), DataType::Struct(targets))
            if array.data_type() != field.data_type() || has_checks(field) =>
        {
            let parts: &StructArray = array.as_struct();
            let mut bad = Vec::new();
            let children: Vec<ArrayRef> = parts
                .columns()
                .iter()
                .zip(targets)
                .map(|(child, target)| {
                    convert(
                        child,
                        target,
                        &format!("{path}.{}", target.name()),
                        &mut bad,
                    )
                })
                .collect();
            // A bad value under a null parent is no value at all.
            rejected.extend(bad.into_iter().filter(|(row, _)| parts.is_valid(*row)));
            Arc::new(StructArray::new(
                targets.clone(),
                children,
                parts.nulls().cloned(),
            ))
        }
        (DataType::List(_), DataType::List(target))
            if array.data_type() != field.data_type() || has_checks(field) =>
        {
            let list: &ListArray = array.as_list();
            let mut bad = Vec::new();
            let values = convert(list.values(), target, &format!("{path}[]"), &mut bad);
            let offsets = list.value_offsets();
            for (item, reason) in bad {
                // The row whose range of items holds `item`.
                let row = offsets
                    .partition_point(|&o| o as usize <= item)
                    .saturating_sub(1);
                if list.is_valid(row) {
                    rejected.push((row, reason));
                }
            }
            Arc::new(ListArray::new(
                target.clone(),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            ))
        }
        _ => array.clone(),
    }
}

/// Whether a nested type holds a column checked row by row (doubles).
fn has_checks(field: &Field) -> bool {
    match field.data_type() {
        DataType::Float64 => true,
        DataType::Struct(children) => children.iter().any(|c| has_checks(c)),
        DataType::List(item) => has_checks(item),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::decode::decode_object;
    use crate::crawler::infer::source_metadata;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn nested_times_are_checked_as_top_level_ones_are() {
        let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
        let meta = DataType::Struct(
            vec![
                Field::new("at", utc(), true).with_metadata(source_metadata("rfc3339")),
                Field::new("at_ms", utc(), true).with_metadata(source_metadata("epoch_millis")),
                Field::new("v", DataType::Float64, true),
            ]
            .into(),
        );
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("meta", meta.clone(), true),
            Field::new(
                "readings",
                DataType::List(Arc::new(Field::new("item", meta, true))),
                true,
            ),
        ]));
        let text = br#"{"id":1,"meta":{"at":"2024-05-30T00:00:01Z","at_ms":1717027201000,"v":1.5},"readings":[{"at":"2024-05-30T00:00:02Z"}]}
{"id":2,"meta":{"at":12}}
{"id":3,"meta":{"at_ms":12}}
{"id":4,"readings":[{"v":1.0},{"at":"not a time"}]}
{"id":5,"meta":{"v":1e400}}
{"id":6,"meta":null,"readings":null}
"#;
        let decoded = decode_object(text, "k", &schema, false).unwrap();
        let reasons: Vec<(u64, &str)> = decoded
            .quarantined
            .iter()
            .map(|q| (q.line, q.reason.as_str()))
            .collect();
        assert_eq!(
            reasons[..3],
            [
                (2, "meta.at: 12 is not a timestamp"),
                (
                    3,
                    "meta.at_ms: 12 is not a timestamp in epoch milliseconds (out of range)"
                ),
                (4, "readings[].at: \"not a time\" is not a timestamp"),
            ]
        );
        assert_eq!(reasons[3].0, 5);
        assert!(reasons[3].1.contains("number out of range"), "{reasons:?}");
        assert_eq!(reasons.len(), 4);
        let batch = &decoded.batches[0];
        let meta = batch.column(1).as_struct();
        let at_ms = meta
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(at_ms.value(0), 1_717_027_201_000_000, "epoch millis scaled");
    }
}
