use super::super::sample::{SampleOptions, analyze};
use super::super::sniff::Format;

#[test]
fn concatenated_json_resynchronises_after_a_bad_record() {
    let text = b"{\"a\":1}{\"a\":2,}{\"a\":3}";
    let analysis = analyze(text, &SampleOptions::default()).unwrap();
    assert_eq!(analysis.format, Format::ConcatenatedJson);
    assert_eq!(
        (analysis.sampled_records, analysis.malformed_records),
        (2, 1)
    );
}

#[test]
fn ndjson_reports_bad_lines_by_number() {
    let text = b"{\"a\":1}\n{\"a\":\n{\"a\":3}\n[1]\n";
    let analysis = analyze(text, &SampleOptions::default()).unwrap();
    assert_eq!(
        (analysis.sampled_records, analysis.malformed_records),
        (2, 2)
    );
    assert!(
        analysis.malformed_examples[0].starts_with("line 2:"),
        "{:?}",
        analysis.malformed_examples
    );
    assert_eq!(
        analysis.malformed_examples[1],
        "line 4: expected a JSON object, found an array"
    );
}

#[test]
fn json_arrays_yield_their_elements() {
    let analysis = analyze(b"[{\"a\":1},\n {\"a\":2}]", &SampleOptions::default()).unwrap();
    assert_eq!((analysis.format, analysis.records), (Format::JsonArray, 2));
}

#[test]
fn csv_header_follows_glues_rule() {
    let with_header = analyze(
        b"id,name,score\n1,ann,2.5\n2,bob,3\n",
        &SampleOptions::default(),
    )
    .unwrap();
    assert_eq!(
        with_header.format,
        Format::Csv {
            delimiter: b',',
            header: true
        }
    );
    assert_eq!(
        with_header.schema.field_names().collect::<Vec<_>>(),
        ["id", "name", "score"]
    );
    assert_eq!(with_header.records, 2);
    let all_strings = analyze(b"a,b\nc,d\ne,f\n", &SampleOptions::default()).unwrap();
    assert_eq!(
        all_strings.format,
        Format::Csv {
            delimiter: b',',
            header: false
        }
    );
    assert_eq!(
        all_strings.schema.field_names().collect::<Vec<_>>(),
        ["col0", "col1"]
    );
    assert_eq!(all_strings.records, 3);
}

#[test]
fn apache_logs_become_typed_records() {
    let line = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 "http://x/" "Mozilla/4.08""#;
    let text = format!("{line}\n{line}\n");
    let analysis = analyze(text.as_bytes(), &SampleOptions::default()).unwrap();
    assert_eq!(
        (analysis.format, analysis.records),
        (Format::ApacheCombined, 2)
    );
    let (schema, _) = analysis.schema.resolve_schema();
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "clientip",
            "ident",
            "auth",
            "timestamp",
            "verb",
            "request",
            "httpversion",
            "response",
            "bytes",
            "referrer",
            "agent"
        ]
    );
    assert!(matches!(
        schema.field(3).data_type(),
        arrow::datatypes::DataType::Timestamp(..)
    ));
}
