//! Direct decoding: JSON records parsed straight into Arrow buffers of the table's schema, with
//! no intermediate tape and no per-field hashing: a record's keys are first matched against the
//! field that followed the previous key last time, since a device writes its fields in one order.
//!
//! It is an accelerator, not a second set of rules. It covers what the crawler infers (null,
//! boolean, Int64, Float64, UTF-8, microsecond timestamps from RFC 3339 text or integers,
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

/// A byte cursor over one record.
struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-blank byte, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.text.get(self.pos).copied()
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.text.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// A string's raw bytes (between the quotes) and whether it holds escapes; the cursor is on
    /// the opening quote. Eight bytes are tested at a time for a quote, a backslash or a control
    /// character (which JSON forbids inside strings).
    #[inline]
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let text = self.text;
        let start = self.pos + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            let found = match text.get(at..at + 8) {
                Some(word) => {
                    let mask = string_specials(u64::from_le_bytes(word.try_into().ok()?));
                    if mask == 0 {
                        at += 8;
                        continue;
                    }
                    at + (mask.trailing_zeros() / 8) as usize
                }
                None => {
                    at + text
                        .get(at..)?
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?
                }
            };
            match text[found] {
                b'"' => {
                    self.pos = found + 1;
                    return Some((&text[start..found], escaped));
                }
                b'\\' => {
                    escaped = true;
                    at = found + 2;
                }
                _ => return None,
            }
        }
    }

    /// Whether the text at the cursor is `key` (a field's name in quotes); if so, steps over it.
    #[inline]
    fn key(&mut self, key: &Key) -> bool {
        let matched = match (&key.head, self.text.get(self.pos..self.pos + 16)) {
            (Some((head, mask)), Some(window)) => {
                let window = u128::from_le_bytes(window.try_into().expect("16 bytes"));
                window & mask == *head
            }
            _ => self.text[self.pos..].starts_with(&key.quoted),
        };
        if matched {
            self.pos += key.quoted.len();
        }
        matched
    }

    /// A number token, checked against JSON's grammar; the cursor is on its first byte.
    #[inline]
    fn number(&mut self) -> Option<Number<'a>> {
        let start = self.pos;
        let text = self.text;
        let mut at = start;
        let negative = text.get(at) == Some(&b'-');
        if negative {
            at += 1;
        }
        let digits_start = at;
        let mut mantissa: u64 = 0;
        let mut digits = 0_usize;
        while let Some(&b) = text.get(at).filter(|b| b.is_ascii_digit()) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
            digits += 1;
            at += 1;
        }
        let int_digits = at - digits_start;
        if int_digits == 0 || (int_digits > 1 && text[digits_start] == b'0') {
            return None;
        }
        let mut fraction_digits = 0_usize;
        if text.get(at) == Some(&b'.') {
            at += 1;
            while let Some(&b) = text.get(at).filter(|b| b.is_ascii_digit()) {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                digits += 1;
                fraction_digits += 1;
                at += 1;
            }
            if fraction_digits == 0 {
                return None;
            }
        }
        let mut exponent: Option<i64> = None;
        if let Some(b'e' | b'E') = text.get(at) {
            at += 1;
            let sign = match text.get(at) {
                Some(b'-') => {
                    at += 1;
                    -1
                }
                Some(b'+') => {
                    at += 1;
                    1
                }
                _ => 1,
            };
            let exp_start = at;
            let mut value: i64 = 0;
            while let Some(&b) = text.get(at).filter(|b| b.is_ascii_digit()) {
                value = value.saturating_mul(10).saturating_add(i64::from(b - b'0'));
                at += 1;
            }
            if at == exp_start {
                return None;
            }
            exponent = Some(sign * value);
        }
        self.pos = at;
        Some(Number {
            text: &text[start..at],
            negative,
            mantissa,
            digits,
            fraction_digits,
            exponent,
        })
    }
}

/// The bytes of a little-endian word that are a quote, a backslash or below 0x20, as their high
/// bits. Bits above the lowest may be false alarms (borrows); the lowest is always right.
#[inline]
fn string_specials(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        | (word.wrapping_sub(ONES * 0x20) & !word & HIGH)
}

/// A field's name as it appears in a record: in quotes, and (when it fits) as the first 16 bytes
/// with a mask, compared as one integer.
struct Key {
    quoted: Box<[u8]>,
    head: Option<(u128, u128)>,
}

impl Key {
    /// `None` for a name that JSON must escape: such keys take the slow path.
    fn new(name: &str) -> Option<Self> {
        if name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            return None;
        }
        let quoted: Box<[u8]> = format!("\"{name}\"").into_bytes().into();
        let head = (quoted.len() <= 16).then(|| {
            let mut bytes = [0_u8; 16];
            bytes[..quoted.len()].copy_from_slice(&quoted);
            let mask = if quoted.len() == 16 {
                u128::MAX
            } else {
                (1_u128 << (quoted.len() * 8)) - 1
            };
            (u128::from_le_bytes(bytes), mask)
        });
        Some(Self { quoted, head })
    }
}

/// A JSON number as written, with what the fast float path needs.
struct Number<'a> {
    text: &'a [u8],
    negative: bool,
    mantissa: u64,
    digits: usize,
    fraction_digits: usize,
    exponent: Option<i64>,
}

impl Number<'_> {
    /// The value of an integer literal (no fraction, no exponent) that fits an i64.
    fn as_i64(&self) -> Option<i64> {
        if self.fraction_digits > 0 || self.exponent.is_some() || self.digits > 19 {
            return None;
        }
        if self.negative {
            0_i64.checked_sub_unsigned(self.mantissa)
        } else {
            i64::try_from(self.mantissa).ok()
        }
    }

    /// The correctly rounded f64: exact small mantissas scaled by an exact power of ten take
    /// one IEEE operation (Clinger's fast path); the rest go through the standard library's
    /// parser, which rounds correctly too, so the bits equal any correct parser's.
    fn as_f64(&self) -> Option<f64> {
        const POWERS: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        let scale = self.exponent.unwrap_or(0) - self.fraction_digits as i64;
        if self.digits <= 15 && self.mantissa < (1 << 53) && (-22..=22).contains(&scale) {
            let magnitude = self.mantissa as f64;
            let value = if scale < 0 {
                magnitude / POWERS[(-scale) as usize]
            } else {
                magnitude * POWERS[scale as usize]
            };
            return Some(if self.negative { -value } else { value });
        }
        std::str::from_utf8(self.text).ok()?.parse().ok()
    }
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
    /// Microseconds since the epoch, from RFC 3339 text or integers as written.
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
                    _ => parser.number()?.as_i64()?,
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
                        match parser.peek()? {
                            b',' => parser.pos += 1,
                            b']' => {
                                parser.pos += 1;
                                break;
                            }
                            _ => return None,
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
                match parser.peek()? {
                    b',' => parser.pos += 1,
                    b'}' => {
                        parser.pos += 1;
                        break;
                    }
                    _ => return None,
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

/// Appends the unescaped form of a JSON string's raw bytes.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut at = 0;
    while at < raw.len() {
        let Some(offset) = memchr::memchr(b'\\', &raw[at..]) else {
            out.extend_from_slice(&raw[at..]);
            break;
        };
        out.extend_from_slice(&raw[at..at + offset]);
        at += offset + 1;
        let byte = match *raw.get(at)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = hex4(raw.get(at + 1..at + 5)?)?;
                at += 5;
                let code = if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate must be followed by an escaped low one.
                    if raw.get(at..at + 2)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(raw.get(at + 2..at + 6)?)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    at += 6;
                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    unit
                };
                let ch = char::from_u32(code)?;
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            _ => return None,
        };
        out.push(byte);
        at += 1;
    }
    Some(())
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0_u32, |acc, &d| {
        Some(acc * 16 + char::from(d).to_digit(16)?)
    })
}

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|±HH:MM]` (no offset: UTC),
/// the layout devices and Firehose write; any other text is left to arrow-json.
fn rfc3339_micros(text: &[u8]) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        text.get(range)?.iter().try_fold(0_i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    if text.len() < 19
        || text[4] != b'-'
        || text[7] != b'-'
        || text[10] != b'T'
        || text[13] != b':'
        || text[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0_i64;
    if text.get(at) == Some(&b'.') {
        let start = at + 1;
        at = start;
        while text.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let count = at - start;
        if count == 0 || count > 9 {
            return None;
        }
        nanos = digits(start..at)? * 10_i64.pow((9 - count) as u32);
    }
    let offset_seconds = match &text[at..] {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours =
                digits(at + 1..at + 3).filter(|_| h1.is_ascii_digit() && h2.is_ascii_digit())?;
            let minutes =
                digits(at + 4..at + 6).filter(|_| m1.is_ascii_digit() && m2.is_ascii_digit())?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    Some(seconds * 1_000_000 + nanos / 1_000)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests;
