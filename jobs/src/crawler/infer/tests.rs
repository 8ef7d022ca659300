use super::*;
use arrow::datatypes::TimeUnit;
use serde_json::json;

fn infer(records: &[Value]) -> (Schema, Vec<Conflict>) {
    let mut node = Node::new();
    for record in records {
        node.observe(record, "");
    }
    node.resolve_schema()
}

fn types(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect()
}

#[test]
fn ints_widen_to_double_and_fields_are_never_dropped() {
    let (schema, conflicts) = infer(&[
        json!({"a": 1}),
        json!({"a": 2.5, "b": true}),
        json!({"c": null}),
    ]);
    assert_eq!(types(&schema), ["a: Float64", "b: Boolean", "c: Null"]);
    assert!(conflicts.is_empty());
}

#[test]
fn timestamps_are_detected_in_strings_and_epoch_fields() {
    let (schema, _) = infer(&[json!({
        "ts": "2024-05-30T00:00:01.123Z",
        "local": "2024-05-30 10:00:00",
        "arrivalTimestamp": 1717027201000_i64,
        "created_at": 1717027201,
        "count": 1717027201,
        "name": "2024 was a year"
    })]);
    let source = |i: usize| schema.field(i).metadata().get(TIMESTAMP_SOURCE).cloned();
    assert_eq!(
        schema.field(0).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
    );
    assert_eq!(source(0).as_deref(), Some("rfc3339"));
    assert_eq!(
        schema.field(1).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(source(2).as_deref(), Some("epoch_millis"));
    assert_eq!(source(3).as_deref(), Some("epoch_seconds"));
    assert_eq!(schema.field(4).data_type(), &DataType::Int64);
    assert_eq!(schema.field(5).data_type(), &DataType::Utf8);
}

#[test]
fn conflicts_become_strings_with_examples() {
    let (schema, conflicts) = infer(&[
        json!({"t": 1.5, "loc": {"alt": 3}}),
        json!({"t": "n/a", "loc": {"alt": {"m": 1}}}),
    ]);
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(conflicts.len(), 2);
    assert_eq!(conflicts[0].path, "t");
    assert_eq!(conflicts[0].types, ["double", "string"]);
    assert_eq!(
        conflicts[0].examples,
        [
            ("double".to_owned(), "1.5".to_owned()),
            ("string".to_owned(), "\"n/a\"".to_owned())
        ]
    );
    assert_eq!(conflicts[1].path, "loc.alt");
}

#[test]
fn nested_structs_and_lists_merge() {
    let (schema, _) = infer(&[
        json!({"loc": {"lat": 1}, "tags": ["a"]}),
        json!({"loc": {"lat": 1.5, "alt": 2}, "tags": []}),
    ]);
    assert_eq!(
        types(&schema),
        [
            r#"loc: Struct("lat": Float64, "alt": Int64)"#,
            r#"tags: List(Utf8)"#
        ]
    );
}

#[test]
fn a_stored_schema_round_trips_through_a_node() {
    let (schema, _) = infer(&[json!({
        "ts": "2024-05-30T00:00:01Z", "e": 1717027201000_i64, "x": [1.5], "s": {"a": "b"}, "n": null
    })]);
    let (again, _) = Node::from_schema(&schema).resolve_schema();
    assert_eq!(schema, again);
}

#[test]
fn merging_is_order_independent() {
    let a = json!({"x": 1, "y": "2024-05-30T00:00:01Z"});
    let b = json!({"x": 2.0, "y": "2024-05-30T00:00:01"});
    let (mut left, mut right) = (Node::new(), Node::new());
    left.observe(&a, "");
    left.observe(&b, "");
    right.observe(&b, "");
    right.observe(&a, "");
    let (l, _) = left.resolve_schema();
    let (r, _) = right.resolve_schema();
    assert_eq!(types(&l), ["x: Float64", "y: Timestamp(µs, \"+00:00\")"]);
    assert_eq!(
        l.fields().iter().map(|f| f.data_type()).collect::<Vec<_>>(),
        r.fields().iter().map(|f| f.data_type()).collect::<Vec<_>>()
    );
}
