//! The direct decoder against arrow-json, the reference: whatever it accepts must decode to the
//! same batch, and it must accept the shapes devices write (or it would be no accelerator).

use super::*;
use arrow::datatypes::{Field, Schema};
use proptest::prelude::*;

use crate::convert::decode::split_records;

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

/// A telemetry table: every type the direct decoder builds.
fn telemetry() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, true),
        Field::new("ts", utc(), true),
        Field::new("seq", DataType::Int64, true),
        Field::new("temperature", DataType::Float64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new(
            "location",
            DataType::Struct(
                vec![
                    Field::new("lat", DataType::Float64, true),
                    Field::new("alt", DataType::Float64, true),
                ]
                .into(),
            ),
            true,
        ),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new(
            "naive",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new("unused", DataType::Null, true),
    ]))
}

/// Decodes `text` both ways. Returns whether the direct decoder accepted it; where it did, the
/// reference must have decoded the same rows.
fn check(schema: &SchemaRef, text: &str) -> bool {
    let spans = split_records(text.as_bytes()).expect("JSON text");
    let direct = decode_records(text.as_bytes(), &spans, schema);
    let Some(direct) = direct else {
        return false;
    };
    let contiguous = &text.as_bytes()[spans[0].offset..];
    let reference = super::super::decode(contiguous, spans.len(), schema)
        .unwrap_or_else(|e| panic!("direct accepted what arrow-json rejects ({e}): {text}"))
        .expect("rows");
    assert_eq!(direct, reference, "{text}");
    true
}

#[test]
fn device_records_decode_directly_as_arrow_json_decodes_them() {
    let text = r#"{"device_id":"dev-00001","ts":"2024-05-30T12:34:56.789Z","seq":1,"temperature":21.5,"ok":true,"location":{"lat":40.123456,"alt":12.5},"tags":["a","b"],"naive":"2024-05-30T12:00:00"}
{"device_id":"dev-00002","ts":"2024-05-30T23:59:59.5+02:00","seq":-2,"temperature":-3,"ok":false,"location":{"lat":41.0},"tags":[]}
{"seq":3,"location":null,"tags":null,"temperature":1e-3,"device_id":"caf\u00e9 \"x\"\n","unused":null}
{"device_id":"\ud83d\ude00","ts":"1969-12-31T23:59:59.999999Z","temperature":12345678901234567890.5,"naive":"2000-02-29T00:00:00.123456789"}
{"device_id":42,"seq":9223372036854775807,"temperature":-0.0}
{"device_id":true}
{}
"#;
    assert!(check(&telemetry(), text));
}

#[test]
fn it_declines_what_arrow_json_would_decode_differently_or_reject() {
    let schema = telemetry();
    for record in [
        r#"{"extra":1}"#,
        r#"{"seq":1,"seq":2}"#,
        r#"{"seq":1.5}"#,
        r#"{"seq":"1"}"#,
        r#"{"temperature":"21.5"}"#,
        r#"{"temperature":NaN}"#,
        r#"{"ts":"2024-05-30 12:00:00"}"#,
        // A number in a text timestamp column is a bad value, not microseconds.
        r#"{"ts":1717027201000000}"#,
        r#"{"ts":"2024-02-30T00:00:00Z"}"#,
        r#"{"ts":"2024-05-30T12:00:00.1234567891Z"}"#,
        r#"{"location":[1]}"#,
        r#"{"device_id":{"a":1}}"#,
        r#"{"unused":1}"#,
        r#"{"seq":01}"#,
        r#"{"seq":1,}"#,
        r#"{"seq":1"#,
        r#"{"d\u0065vice_id":"x"}"#,
        r#"{"device_id":"\ud800"}"#,
        "[1]",
    ] {
        assert!(!check(&schema, record), "accepted {record}");
    }
    let map = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
    assert!(!check(&map, r#"{"n":1}"#), "a type it does not build");
}

#[test]
fn a_non_nullable_field_that_is_missing_is_declined() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Int64, true),
    ]));
    assert!(check(&schema, r#"{"a":1}"#));
    assert!(!check(&schema, r#"{"b":1}"#));
}

#[test]
fn timestamps_agree_with_chrono_across_offsets_and_centuries() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    runner
        .run(
            &(
                -62_135_596_800_i64..253_402_300_799,
                0_u32..1_000_000_000,
                -1439_i32..1440,
            ),
            |(seconds, nanos, offset_minutes)| {
                let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).expect("offset");
                let time = chrono::DateTime::from_timestamp(seconds, nanos)
                    .expect("in range")
                    .with_timezone(&offset);
                let text = time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
                prop_assert_eq!(
                    rfc3339_micros(text.as_bytes()),
                    Some(time.timestamp_micros()),
                    "{}",
                    text
                );
                Ok(())
            },
        )
        .expect("every layout chrono writes");
}

/// JSON values of every sort, valid or not for the columns they land in.
fn value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| v.to_string()),
        (-1e6_f64..1e6).prop_map(|v| format!("{v:e}")),
        "-?[0-9]{1,22}(\\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?",
        "\"[a-z\\\\\"é\\\\n]{0,6}\"",
        Just("\"2024-05-30T12:34:56.789Z\"".to_owned()),
        Just("\"2024-05-30T12:34:56-07:30\"".to_owned()),
        Just("\"2024-05-30T12:34:56\"".to_owned()),
        Just("\"\\u00e9\\ud83d\\ude00\"".to_owned()),
        Just("NaN".to_owned()),
    ];
    scalar.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("lat|alt|x", inner), 0..3).prop_map(|members| {
                let body: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

fn record() -> impl Strategy<Value = String> {
    let key = "device_id|ts|seq|temperature|ok|location|tags|naive|unused|extra";
    prop::collection::vec((key, value()), 0..6).prop_map(|members| {
        let body: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        format!("{{{}}}", body.join(", "))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn whatever_it_accepts_arrow_json_decodes_the_same(records in prop::collection::vec(record(), 1..4)) {
        check(&telemetry(), &records.join("\n"));
    }
}

/// A record whose every value has its column's JSON type, in any order and subset.
fn typed_record() -> impl Strategy<Value = String> {
    let text =
        "\"[ -~é]{0,8}\"".prop_filter("no escapes", |s| !s[1..s.len() - 1].contains(['"', '\\']));
    let float = any::<f64>()
        .prop_filter("finite", |v| v.is_finite())
        .prop_map(|v| v.to_string());
    let time = (0_i64..4_102_444_800, 0_u32..1000).prop_map(|(s, ms)| {
        let time = chrono::DateTime::from_timestamp(s, ms * 1_000_000).expect("in range");
        format!(
            "\"{}\"",
            time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    });
    let members = (
        text.clone(),
        time,
        any::<i64>(),
        float.clone(),
        any::<bool>(),
        (float.clone(), prop::option::of(float)),
        prop::collection::vec(text, 0..3),
    )
        .prop_map(|(device, ts, seq, temperature, ok, (lat, alt), tags)| {
            vec![
                format!("\"device_id\":{device}"),
                format!("\"ts\":{ts}"),
                format!("\"seq\":{seq}"),
                format!("\"temperature\":{temperature}"),
                format!("\"ok\":{ok}"),
                format!(
                    "\"location\":{{\"lat\":{lat},\"alt\":{}}}",
                    alt.unwrap_or_else(|| "null".into())
                ),
                format!("\"tags\":[{}]", tags.join(",")),
            ]
        });
    (members, prop::collection::vec(any::<bool>(), 7))
        .prop_flat_map(|(members, keep)| {
            let kept: Vec<String> = members
                .into_iter()
                .zip(keep)
                .filter_map(|(m, k)| k.then_some(m))
                .collect();
            Just(kept).prop_shuffle()
        })
        .prop_map(|members| format!("{{{}}}", members.join(",")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn well_typed_records_in_any_order_are_decoded_directly(records in prop::collection::vec(typed_record(), 1..8)) {
        prop_assert!(check(&telemetry(), &records.join("\n")));
    }
}
