use super::*;
use crate::crawler::infer::source_metadata;
use arrow::datatypes::Field;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        )
        .with_metadata(source_metadata("rfc3339")),
        Field::new(
            "at_ms",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        )
        .with_metadata(source_metadata("epoch_millis")),
        Field::new("v", DataType::Float64, true),
    ]))
}

fn rows(decoded: &Decoded) -> usize {
    decoded.batches.iter().map(RecordBatch::num_rows).sum()
}

#[test]
fn records_are_split_with_lines_and_offsets() {
    let spans = split_records(b"{\"a\":1}\n\n{\"a\":2}\n").unwrap();
    assert_eq!(
        spans
            .iter()
            .map(|s| (s.line, s.offset, s.len))
            .collect::<Vec<_>>(),
        [(1, 0, 7), (3, 9, 7)]
    );
    let spans = split_records(b"{\"a\":\"}{\"}{\"a\":NaN}\n{\"b\":[1,{\"c\":2}]}").unwrap();
    assert_eq!(
        spans.iter().map(|s| (s.line, s.offset)).collect::<Vec<_>>(),
        [(1, 0), (1, 10), (2, 20)]
    );
    let spans = split_records(b"[{\"a\":1}, {\"a\":2}]").unwrap();
    assert_eq!(spans.len(), 2);
}

#[test]
fn every_record_is_written_or_quarantined_with_its_reason() {
    let text = b"{\"id\":1,\"ts\":\"2024-05-30T00:00:01Z\",\"at_ms\":1717027201000,\"v\":1.5}\n\
                 {\"id\":2,\"v\":\"n/a\"}\n{\"id\":3,\"v\":NaN}\n{\"id\":4,\"v\":2}\n";
    let decoded = decode_object(text, "k", &schema(), true).unwrap();
    assert_eq!(
        (
            decoded.records_read,
            rows(&decoded),
            decoded.quarantined.len()
        ),
        (4, 2, 2)
    );
    assert_eq!(decoded.quarantined[0].line, 2);
    assert!(
        decoded.quarantined[0].reason.contains("v"),
        "{}",
        decoded.quarantined[0].reason
    );
    assert_eq!(decoded.quarantined[1].record, "{\"id\":3,\"v\":NaN}");
    let batch = &decoded.batches[0];
    let at = batch
        .column(2)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        at.value(0),
        1_717_027_201_000_000,
        "epoch millis become microseconds"
    );
}

#[test]
fn a_field_first_seen_in_the_last_record_extends_the_schema() {
    let mut text: String = (0..10_000)
        .map(|i| format!("{{\"id\":{i},\"v\":1.0}}\n"))
        .collect();
    text.push_str("{\"id\":10000,\"v\":1.0,\"extra\":{\"deep\":true}}\n");
    let decoded = decode_object(text.as_bytes(), "k", &schema(), true).unwrap();
    assert_eq!((rows(&decoded), decoded.quarantined.len()), (10_001, 0));
    let extra = decoded.schema.field_with_name("extra").unwrap();
    assert_eq!(extra.data_type().to_string(), "Struct(\"deep\": Boolean)");
    assert_eq!(
        decoded.schema.field_with_name("v").unwrap().data_type(),
        &DataType::Float64,
        "existing columns keep their type"
    );
    let logged = decode_object(text.as_bytes(), "k", &schema(), false).unwrap();
    assert_eq!((rows(&logged), logged.quarantined.len()), (10_000, 1));
    assert!(
        logged.quarantined[0]
            .reason
            .starts_with("fields not in the table's schema (policy log): extra"),
        "{}",
        logged.quarantined[0].reason
    );
}

#[test]
fn delimited_rows_are_typed_by_the_schema_and_keep_their_csv_lines() {
    let mut csv = String::from("id,ts,at_ms,v\n1,2024-05-30T10:00:00Z,,1.5\n");
    csv.push_str("nope,2024-05-30T10:05:00Z,,2\n");
    csv.push_str("3\n"); // a short row among the first: the table's delimiter is known
    for i in 3..25 {
        csv.push_str(&format!("{i},2024-05-30T10:{i:02}:00Z,,{i}.25\n"));
    }
    csv.push_str("25,x\n");
    let rows_in = delimited_to_json(csv.as_bytes(), &schema(), b',');
    assert_eq!(rows_in.positions.len(), 24);
    assert_eq!(rows_in.positions[1].0, 3);
    assert_eq!(rows_in.rejected.len(), 2, "the short rows");
    let mut decoded = decode_object(&rows_in.json, "k", &schema(), false).unwrap();
    rows_in.restore(&mut decoded, "k");
    assert_eq!((rows(&decoded), decoded.records_read), (23, 26));
    let mut lines: Vec<(u64, &str)> = decoded
        .quarantined
        .iter()
        .map(|q| (q.line, q.reason.as_str()))
        .collect();
    lines.sort();
    assert_eq!(lines[0].0, 3, "\"nope\" is not an id: {lines:?}");
    assert_eq!(lines[1].0, 4, "{lines:?}");
    assert!(lines[1].1.contains("1 fields, expected 4"), "{lines:?}");
    assert_eq!(lines[2].0, 27, "{lines:?}");
    assert!(lines[2].1.contains("2 fields, expected 4"), "{lines:?}");
}

#[test]
fn apache_log_lines_become_records_and_bad_lines_keep_their_place() {
    let log = "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /a.gif HTTP/1.0\" 200 2326\n\
               \n\
               garbage\n\
               10.1.1.1 - - [10/Oct/2000:13:56:00 -0700] \"POST /b HTTP/1.1\" 201 -\n";
    let rows = apache_log_to_json(log.as_bytes(), false);
    assert_eq!(rows.positions, [(1, 0), (4, 87)]);
    assert_eq!(rows.rejected.len(), 1);
    let (line, offset, reason, record) = &rows.rejected[0];
    assert_eq!((*line, *offset, record.as_str()), (3, 79, "garbage"));
    assert!(reason.contains("Apache common log format"), "{reason}");
    let first: serde_json::Value =
        serde_json::from_slice(rows.json.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["timestamp"], "2000-10-10T13:55:36-07:00");
    assert_eq!(first["bytes"], 2326);
}

mod dirty {
    //! The property of the dirty-data issue: for any mix of well-typed records and a small share
    //! of malformed ones, inference keeps every column's type, and decoding reads = written +
    //! quarantined with a reason on every quarantined record.

    use super::*;
    use proptest::prelude::*;

    fn good(i: u32) -> Vec<u8> {
        format!(
            "{{\"id\":{i},\"ts\":\"2024-05-30T{:02}:{:02}:00Z\",\"at_ms\":{},\"v\":{}.25}}",
            i / 60 % 24,
            i % 60,
            1_717_027_200_000_i64 + i64::from(i) * 1000,
            i % 97
        )
        .into_bytes()
    }

    /// Bad records: a wrong type in each column, an impossible date, an overflowing number, a
    /// lone surrogate, a raw NUL, an invalid byte, broken JSON, a non-object.
    fn bad(kind: u8) -> Vec<u8> {
        let text: &[u8] = match kind % 10 {
            0 => br#"{"id":1,"v":"high"}"#,
            1 => br#"{"id":"seven","v":1.5}"#,
            2 => br#"{"id":1,"ts":12}"#,
            3 => br#"{"id":1,"ts":"2024-13-45T00:00:00Z"}"#,
            4 => br#"{"id":1,"v":1e400}"#,
            5 => br#"{"id":1,"v":1.5,"s":"\ud800"}"#,
            6 => b"{\"id\":1,\"v\":\"a\x00b\"}",
            7 => b"{\"id\":1,\"v\":\"\xff\"}",
            8 => br#"{"id":1,"v":"#,
            _ => b"[1,2]",
        };
        text.to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn bad_records_cost_only_themselves_and_never_a_type(
            goods in 200_u32..600,
            bads in proptest::collection::vec((any::<u8>(), any::<proptest::sample::Index>()), 0..3),
        ) {
            let mut records: Vec<Vec<u8>> = (0..goods).map(good).collect();
            for (kind, at) in &bads {
                // Not first: a first record sets the object's framing (an array there is a JSON array).
                records.insert(1 + at.index(records.len()), bad(*kind));
            }
            let mut text = Vec::new();
            for record in &records {
                text.extend_from_slice(record);
                text.push(b'\n');
            }

            // Inference over the whole mix types every column as the good records do.
            let mut clean = Node::new();
            let mut mixed = Node::new();
            for record in &records {
                if let Ok(value) = serde_json::from_slice::<Value>(record) {
                    mixed.observe(&value, "");
                }
            }
            for i in 0..goods {
                clean.observe(&serde_json::from_slice::<Value>(&good(i)).unwrap(), "");
            }
            let (expected, _) = clean.resolve_schema();
            let (resolved, _) = mixed.resolve_schema();
            for field in expected.fields() {
                let got = resolved.field_with_name(field.name()).unwrap();
                prop_assert_eq!(got.data_type(), field.data_type(), "{}", field.name());
            }

            // Decoding reconciles, and every quarantined record says why.
            let schema: SchemaRef = Arc::new(expected);
            let decoded = decode_object(&text, "k", &schema, false).unwrap();
            prop_assert_eq!(decoded.records_read, records.len() as u64);
            prop_assert_eq!(rows(&decoded) + decoded.quarantined.len(), records.len());
            prop_assert_eq!(decoded.quarantined.len(), bads.len());
            prop_assert_eq!(decoded.schema.fields(), schema.fields());
            for q in &decoded.quarantined {
                prop_assert!(!q.reason.is_empty());
            }
        }
    }
}
