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

#[test]
fn a_byte_order_mark_is_skipped_whole_and_never_part_of_another_character() {
    // A JSON array whose first byte after '[' is not UTF-8: the lossy decoding makes it U+FFFD
    // (EF BF BD), whose first two bytes are also the mark's; skipping them alone cut the
    // character in two (found by the crawler_sample fuzz target).
    let mut text = vec![b'['];
    text.push(0xb3);
    text.extend_from_slice(b"f[f");
    text.extend(std::iter::repeat_n(b'T', 107));
    text.extend_from_slice(b"1g1");
    let options = SampleOptions {
        max_records: 200,
        max_bytes: 1 << 20,
        max_record_bytes: 64 << 10,
        verify: true,
    };
    let analysis = analyze(&text, &options);
    if let Ok(analysis) = analysis {
        assert_eq!(analysis.records, 0, "{analysis:?}");
    }
    // A real mark before a record is skipped.
    let marked = analyze(b"\xef\xbb\xbf{\"a\":1}{\"a\":2}", &SampleOptions::default()).unwrap();
    assert_eq!(marked.sampled_records, 2, "{marked:?}");
}
