//! Why a record does not fit its table: the reason a quarantined record carries, naming the
//! column, the value and the type expected (`pm25: "high" is not a double`), or what made the
//! record unreadable (invalid UTF-8 at a byte, a number out of range, a lone surrogate).
//!
//! The decoders decide what is written; this only words their decision for people. Where it
//! finds nothing to say, the decoder's own message stands.

use arrow::datatypes::{DataType, Field, Schema};
use serde_json::Value;

use crate::catalog::schema::type_name;
use crate::crawler::infer::TIMESTAMP_SOURCE;

const MAX_VALUE_CHARS: usize = 80;

/// Epoch integers outside these magnitudes are no times a device writes: the crawler's rule for
/// calling an integer an epoch time, held at conversion too (seconds: 2001 to 2286).
pub const EPOCH_SECONDS: std::ops::Range<i64> = 1_000_000_000..10_000_000_000;
pub const EPOCH_MILLIS: std::ops::Range<i64> = 1_000_000_000_000..10_000_000_000_000;

/// A record's raw bytes as text: UTF-8 where they are, `\xNN` for every byte that is not.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// The reason `record` cannot be written with `schema`, if one can be named.
pub fn explain(record: &[u8], schema: &Schema) -> Option<String> {
    if let Err(err) = std::str::from_utf8(record) {
        let at = err.valid_up_to();
        return Some(format!(
            "not UTF-8 text: byte 0x{:02x} at offset {at} of the record",
            record[at]
        ));
    }
    let value: Value = match serde_json::from_slice(record) {
        Ok(value) => value,
        Err(err) => return Some(format!("invalid JSON: {err}")),
    };
    let Value::Object(map) = &value else {
        return Some(format!(
            "a record is a JSON object, this is {}",
            json_kind(&value)
        ));
    };
    schema.fields().iter().find_map(|field| {
        map.get(field.name())
            .and_then(|v| misfit(v, field, field.name()))
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > MAX_VALUE_CHARS {
        text.chars().take(MAX_VALUE_CHARS).collect::<String>() + "…"
    } else {
        text
    }
}

/// `Some(reason)` when `value` is not of `field`'s type.
fn misfit(value: &Value, field: &Field, path: &str) -> Option<String> {
    let not = |what: &str| Some(format!("{path}: {} is not {what}", shown(value)));
    let source = field.metadata().get(TIMESTAMP_SOURCE).map(String::as_str);
    match (field.data_type(), value) {
        (_, Value::Null) => None,
        (DataType::Boolean, Value::Bool(_)) => None,
        (DataType::Boolean, _) => not("a boolean"),
        (DataType::Timestamp(..), _)
            if matches!(source, Some("epoch_seconds" | "epoch_millis")) =>
        {
            let (range, unit) = match source {
                Some("epoch_seconds") => (EPOCH_SECONDS, "seconds"),
                _ => (EPOCH_MILLIS, "milliseconds"),
            };
            match value.as_i64() {
                Some(n) if range.contains(&n) => None,
                Some(_) => not(&format!("a timestamp in epoch {unit} (out of range)")),
                None => not(&format!("a timestamp in epoch {unit}")),
            }
        }
        (DataType::Timestamp(..), Value::String(text)) => {
            match arrow::compute::kernels::cast_utils::string_to_datetime(&chrono::Utc, text) {
                Ok(_) => None,
                Err(_) => not("a timestamp"),
            }
        }
        (DataType::Timestamp(..), _) => not("a timestamp"),
        (dt, Value::Number(n)) if dt.is_integer() => match n.as_i64() {
            Some(_) => None,
            None => not(&format!("a {}", type_name(dt))),
        },
        (dt, Value::String(s)) if dt.is_integer() => match s.trim().parse::<i64>() {
            Ok(_) => None,
            Err(_) => not(&format!("a {}", type_name(dt))),
        },
        (dt, Value::Number(n)) if dt.is_floating() => match n.as_f64() {
            Some(f) if f.is_finite() => None,
            _ => not(&format!("a finite {}", type_name(dt))),
        },
        (dt, Value::String(s)) if dt.is_floating() => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => None,
            _ => not(&format!("a {}", type_name(dt))),
        },
        (dt, _) if dt.is_numeric() => not(&format!("a {}", type_name(dt))),
        (DataType::Utf8 | DataType::LargeUtf8, Value::Array(_) | Value::Object(_)) => {
            not("a string")
        }
        (DataType::Utf8 | DataType::LargeUtf8, _) => None,
        (DataType::Struct(children), Value::Object(map)) => children.iter().find_map(|child| {
            map.get(child.name())
                .and_then(|v| misfit(v, child, &format!("{path}.{}", child.name())))
        }),
        (DataType::Struct(_), _) => not(&format!("a {}", type_name(field.data_type()))),
        (DataType::List(item), Value::Array(items)) => items
            .iter()
            .find_map(|v| misfit(v, item, &format!("{path}[]"))),
        (DataType::List(_), _) => not(&format!("a {}", type_name(field.data_type()))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawler::infer::source_metadata;
    use arrow::datatypes::TimeUnit;

    fn schema() -> Schema {
        let ts = |source: &str| {
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            )
            .with_metadata(source_metadata(source))
        };
        Schema::new(vec![
            Field::new("device_id", DataType::Utf8, true),
            ts("rfc3339"),
            ts("epoch_seconds").with_name("at"),
            Field::new("pm25", DataType::Float64, true),
            Field::new(
                "loc",
                DataType::Struct(vec![Field::new("alt", DataType::Int64, true)].into()),
                true,
            ),
        ])
    }

    fn check(record: &str, expect: Option<&str>) {
        assert_eq!(
            explain(record.as_bytes(), &schema()).as_deref(),
            expect,
            "{record}"
        );
    }

    #[test]
    fn reasons_name_the_column_the_value_and_the_type() {
        check(
            r#"{"pm25": "high"}"#,
            Some(r#"pm25: "high" is not a double"#),
        );
        check(r#"{"pm25": "12.5", "device_id": 7}"#, None);
        check(r#"{"ts": 12}"#, Some("ts: 12 is not a timestamp"));
        check(
            r#"{"ts": "2024-13-45T00:00:00Z"}"#,
            Some(r#"ts: "2024-13-45T00:00:00Z" is not a timestamp"#),
        );
        check(
            r#"{"at": 12}"#,
            Some("at: 12 is not a timestamp in epoch seconds (out of range)"),
        );
        check(
            r#"{"loc": {"alt": "up"}}"#,
            Some(r#"loc.alt: "up" is not a bigint"#),
        );
        check(
            r#"{"device_id": {"a": 1}}"#,
            Some(r#"device_id: {"a":1} is not a string"#),
        );
        check("[1]", Some("a record is a JSON object, this is an array"));
    }

    #[test]
    fn unreadable_records_say_why() {
        let reason = explain(br#"{"pm25": 1e400}"#, &schema()).unwrap();
        assert!(
            reason.starts_with("invalid JSON: number out of range"),
            "{reason}"
        );
        let reason = explain(br#"{"device_id": "\ud800"}"#, &schema()).unwrap();
        assert!(reason.starts_with("invalid JSON"), "{reason}");
        assert_eq!(
            explain(b"{\"device_id\": \"a\xff\"}", &schema()).as_deref(),
            Some("not UTF-8 text: byte 0xff at offset 16 of the record")
        );
        assert_eq!(escape_bytes(b"ok \xff\x00 \xc3\xa9"), "ok \\xff\u{0} é");
    }
}
