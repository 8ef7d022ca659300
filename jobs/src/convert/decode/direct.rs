//! Direct decoding: JSON records parsed straight into Arrow buffers of the table's schema, with
//! no intermediate tape and no per-field hashing: a record's keys are first matched against the
//! field that followed the previous key last time, since a device writes its fields in one order.
//!
//! It is an accelerator, not a second set of rules. It covers what the crawler infers (null,
//! boolean, Int64, Float64, UTF-8, microsecond timestamps from RFC 3339 text,
//! structs and lists of those) in the exact forms a device writes them, and *declines* (returns
//! `None`) anything else: an unknown or repeated key, a value of another JSON type than the
//! column's, an escaped key, a float in an integer column, a timestamp in another layout,
//! malformed JSON. The caller then decodes the chunk with arrow-json in strict mode, whose
//! result (rows, or the error that quarantines a record) is the reference; the tests compare the
//! two on every shape this module accepts.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBufferBuilder, Float64Array, Int64Array, ListArray, NullArray,
    RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields, SchemaRef, TimeUnit};

use super::RecordSpan;

mod scan;
mod time;

use scan::{Key, Parser, unescape};
use time::rfc3339_micros;

/// Decodes the records at `spans` of `text` into one batch of `schema`, or `None` where the
/// records hold anything this decoder leaves to arrow-json.
pub fn decode_records(
    text: &[u8],
    spans: &[RecordSpan],
    schema: &SchemaRef,
) -> Option<RecordBatch> {
    let mut root = StructColumn::new(schema.fields(), spans.len())?;
    for span in spans {
        let mut parser = Parser {
            text: &text[span.offset..span.offset + span.len],
            pos: 0,
        };
        parser.skip_ws();
        parser.expect(b'{')?;
        root.object(&mut parser)?;
        parser.skip_ws();
        if parser.pos != parser.text.len() {
            return None;
        }
    }
    let (_, columns) = root.finish_children()?;
    RecordBatch::try_new(schema.clone(), columns).ok()
}

/// Validity of the rows appended so far; no buffer until the first null.
#[derive(Default)]
struct Validity {
    len: usize,
    bits: Option<BooleanBufferBuilder>,
}

impl Validity {
    #[inline]
    fn push(&mut self, valid: bool) {
        if !valid && self.bits.is_none() {
            let mut bits = BooleanBufferBuilder::new(self.len.max(64) * 2);
            bits.append_n(self.len, true);
            self.bits = Some(bits);
        }
        if let Some(bits) = &mut self.bits {
            bits.append(valid);
        }
        self.len += 1;
    }

    fn finish(self) -> Option<NullBuffer> {
        self.bits.map(|mut bits| NullBuffer::new(bits.finish()))
    }
}

/// A column being built, by the Arrow type it produces.
enum Column {
    Null(usize),
    Bool(BooleanBufferBuilder, Validity),
    Int(Vec<i64>, Validity),
    Float(Vec<f64>, Validity),
    Text(Vec<i32>, Vec<u8>, Validity),
    /// Microseconds since the epoch, from RFC 3339 text.
    Time(Vec<i64>, Validity, DataType),
    Struct(Box<StructColumn>, Validity),
    List(FieldRef, Vec<i32>, Box<Column>, Validity),
}

impl Column {
    /// A builder for `data_type`, or `None` for a type this decoder leaves to arrow-json.
    fn new(data_type: &DataType, capacity: usize) -> Option<Self> {
        Some(match data_type {
            DataType::Null => Column::Null(0),
            DataType::Boolean => {
                Column::Bool(BooleanBufferBuilder::new(capacity), Validity::default())
            }
            DataType::Int64 => Column::Int(Vec::with_capacity(capacity), Validity::default()),
            DataType::Float64 => Column::Float(Vec::with_capacity(capacity), Validity::default()),
            DataType::Utf8 => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                Column::Text(
                    offsets,
                    Vec::with_capacity(capacity * 8),
                    Validity::default(),
                )
            }
            // Only the zones in which a text without an offset means UTC.
            DataType::Timestamp(TimeUnit::Microsecond, tz)
                if tz.as_deref().is_none_or(|tz| tz == "+00:00" || tz == "UTC") =>
            {
                Column::Time(
                    Vec::with_capacity(capacity),
                    Validity::default(),
                    data_type.clone(),
                )
            }
            DataType::Struct(fields) => Column::Struct(
                Box::new(StructColumn::new(fields, capacity)?),
                Validity::default(),
            ),
            DataType::List(item) => Column::List(
                item.clone(),
                vec![0],
                Box::new(Column::new(item.data_type(), capacity)?),
                Validity::default(),
            ),
            _ => return None,
        })
    }

    /// Appends a null row (a null value, or a missing key).
    fn push_null(&mut self) {
        match self {
            Column::Null(len) => *len += 1,
            Column::Bool(values, validity) => {
                values.append(false);
                validity.push(false);
            }
            Column::Int(values, validity) => {
                values.push(0);
                validity.push(false);
            }
            Column::Float(values, validity) => {
                values.push(0.0);
                validity.push(false);
            }
            Column::Text(offsets, _, validity) => {
                offsets.push(*offsets.last().expect("offsets start at 0"));
                validity.push(false);
            }
            Column::Time(values, validity, _) => {
                values.push(0);
                validity.push(false);
            }
            Column::Struct(inner, validity) => {
                inner.push_null_children();
                validity.push(false);
            }
            Column::List(_, offsets, _, validity) => {
                offsets.push(*offsets.last().expect("offsets start at 0"));
                validity.push(false);
            }
        }
    }

    /// Parses one value at the cursor into this column.
    fn value(&mut self, parser: &mut Parser<'_>) -> Option<()> {
        let first = parser.peek()?;
        if first == b'n' {
            parser.literal(b"null")?;
            self.push_null();
            return Some(());
        }
        match self {
            Column::Null(_) => return None,
            Column::Bool(values, validity) => {
                let value = match first {
                    b't' => parser.literal(b"true").map(|()| true)?,
                    b'f' => parser.literal(b"false").map(|()| false)?,
                    _ => return None,
                };
                values.append(value);
                validity.push(true);
            }
            Column::Int(values, validity) => {
                values.push(parser.number()?.as_i64()?);
                validity.push(true);
            }
            Column::Float(values, validity) => {
                if !(first == b'-' || first.is_ascii_digit()) {
                    return None;
                }
                values.push(parser.number()?.as_f64()?);
                validity.push(true);
            }
            Column::Text(offsets, bytes, validity) => {
                match first {
                    b'"' => {
                        let (raw, escaped) = parser.string()?;
                        if escaped {
                            unescape(raw, bytes)?;
                        } else {
                            bytes.extend_from_slice(raw);
                        }
                    }
                    // arrow-json's coerce_primitive: scalars are kept as they are written.
                    b't' => parser
                        .literal(b"true")
                        .map(|()| bytes.extend_from_slice(b"true"))?,
                    b'f' => parser
                        .literal(b"false")
                        .map(|()| bytes.extend_from_slice(b"false"))?,
                    b'-' | b'0'..=b'9' => bytes.extend_from_slice(parser.number()?.text),
                    _ => return None,
                }
                offsets.push(i32::try_from(bytes.len()).ok()?);
                validity.push(true);
            }
            Column::Time(values, validity, _) => {
                let micros = match first {
                    b'"' => match parser.string()? {
                        (raw, false) => rfc3339_micros(raw)?,
                        (_, true) => return None,
                    },
                    // A number in a text timestamp column is a bad value: arrow-json's path
                    // rejects it (it would read it as microseconds).
                    _ => return None,
                };
                values.push(micros);
                validity.push(true);
            }
            Column::Struct(inner, validity) => {
                if first != b'{' {
                    return None;
                }
                parser.pos += 1;
                inner.object(parser)?;
                validity.push(true);
            }
            Column::List(_, offsets, item, validity) => {
                if first != b'[' {
                    return None;
                }
                parser.pos += 1;
                let mut count = 0_i32;
                if parser.peek()? == b']' {
                    parser.pos += 1;
                } else {
                    loop {
                        item.value(parser)?;
                        count += 1;
                        if parser.separator(b']')? {
                            break;
                        }
                    }
                }
                let last = *offsets.last().expect("offsets start at 0");
                offsets.push(last.checked_add(count)?);
                validity.push(true);
            }
        }
        Some(())
    }

    fn len(&self) -> usize {
        match self {
            Column::Null(len) => *len,
            Column::Bool(_, validity)
            | Column::Int(_, validity)
            | Column::Float(_, validity)
            | Column::Text(_, _, validity)
            | Column::Time(_, validity, _)
            | Column::Struct(_, validity)
            | Column::List(_, _, _, validity) => validity.len,
        }
    }

    fn finish(self) -> Option<ArrayRef> {
        Some(match self {
            Column::Null(len) => Arc::new(NullArray::new(len)),
            Column::Bool(mut values, validity) => {
                Arc::new(BooleanArray::new(values.finish(), validity.finish()))
            }
            Column::Int(values, validity) => Arc::new(Int64Array::new(
                ScalarBuffer::from(values),
                validity.finish(),
            )),
            Column::Float(values, validity) => Arc::new(Float64Array::new(
                ScalarBuffer::from(values),
                validity.finish(),
            )),
            Column::Text(offsets, bytes, validity) => Arc::new(
                StringArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    bytes.into(),
                    validity.finish(),
                )
                .ok()?,
            ),
            Column::Time(values, validity, data_type) => {
                let tz = match data_type {
                    DataType::Timestamp(_, tz) => tz,
                    _ => None,
                };
                Arc::new(
                    TimestampMicrosecondArray::new(ScalarBuffer::from(values), validity.finish())
                        .with_timezone_opt(tz),
                )
            }
            Column::Struct(inner, validity) => {
                let (fields, columns) = inner.finish_children()?;
                Arc::new(StructArray::try_new(fields, columns, validity.finish()).ok()?)
            }
            Column::List(field, offsets, item, validity) => Arc::new(
                ListArray::try_new(
                    field,
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    item.finish()?,
                    validity.finish(),
                )
                .ok()?,
            ),
        })
    }
}

/// The children of a struct (or of the record), with the keys they are found by.
struct StructColumn {
    fields: Fields,
    names: Vec<Box<[u8]>>,
    /// Per field, its quoted name for the fast match (`None`: the name needs escapes).
    keys: Vec<Option<Key>>,
    children: Vec<Column>,
    /// The field expected first, and after each field the one that followed it last time.
    first: usize,
    follows: Vec<usize>,
    /// `seen[i] == stamp` when field `i` was given in the current object.
    seen: Vec<u32>,
    stamp: u32,
}

impl StructColumn {
    fn new(fields: &Fields, capacity: usize) -> Option<Self> {
        Some(Self {
            names: fields.iter().map(|f| f.name().as_bytes().into()).collect(),
            keys: fields.iter().map(|f| Key::new(f.name())).collect(),
            children: fields
                .iter()
                .map(|f| Column::new(f.data_type(), capacity))
                .collect::<Option<_>>()?,
            first: 0,
            follows: (1..=fields.len()).collect(),
            seen: vec![0; fields.len()],
            stamp: 0,
            fields: fields.clone(),
        })
    }

    /// The field whose key is at the cursor, stepping over it; `None` for a key that is not
    /// the schema's (strict mode rejects it) or that is written with escapes.
    fn find_key(&self, parser: &mut Parser<'_>) -> Option<usize> {
        if let Some(index) =
            (0..self.keys.len()).find(|&i| self.keys[i].as_ref().is_some_and(|key| parser.key(key)))
        {
            return Some(index);
        }
        let (key, escaped) = parser.string()?;
        if escaped {
            return None;
        }
        self.names.iter().position(|n| **n == *key)
    }

    fn push_null_children(&mut self) {
        for child in &mut self.children {
            child.push_null();
        }
    }

    /// Parses an object's members (the cursor is past its `{`) and its closing brace; fields
    /// it does not give are null.
    fn object(&mut self, parser: &mut Parser<'_>) -> Option<()> {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.seen.fill(0);
            self.stamp = 1;
        }
        let mut given = 0;
        let mut guess = self.first;
        let mut previous: Option<usize> = None;
        if parser.peek()? == b'}' {
            parser.pos += 1;
        } else {
            loop {
                if parser.peek()? != b'"' {
                    return None;
                }
                let index = match self.keys.get(guess) {
                    Some(Some(key)) if parser.key(key) => guess,
                    _ => {
                        let found = self.find_key(parser)?;
                        // Learn the order this source writes its fields in.
                        match previous {
                            Some(previous) => self.follows[previous] = found,
                            None => self.first = found,
                        }
                        found
                    }
                };
                previous = Some(index);
                if self.seen[index] == self.stamp {
                    return None;
                }
                self.seen[index] = self.stamp;
                given += 1;
                guess = self.follows[index];
                parser.expect(b':')?;
                self.children[index].value(parser)?;
                if parser.separator(b'}')? {
                    break;
                }
            }
        }
        if given < self.children.len() {
            for (index, child) in self.children.iter_mut().enumerate() {
                if self.seen[index] != self.stamp {
                    if !self.fields[index].is_nullable() {
                        return None;
                    }
                    child.push_null();
                }
            }
        }
        Some(())
    }

    fn finish_children(self) -> Option<(Fields, Vec<ArrayRef>)> {
        let lengths: Vec<usize> = self.children.iter().map(Column::len).collect();
        if lengths.windows(2).any(|pair| pair[0] != pair[1]) {
            return None;
        }
        let columns = self
            .children
            .into_iter()
            .map(Column::finish)
            .collect::<Option<Vec<_>>>()?;
        Some((self.fields, columns))
    }
}

#[cfg(test)]
mod tests;
