use super::*;
use std::io::Write;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn ndjson(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"i\":{i},\"ts\":\"2024-05-30T00:00:01Z\"}}\n"))
        .collect()
}

#[test]
fn small_objects_are_counted_exactly() {
    let analysis = analyze(&gzip(ndjson(10).as_bytes()), &SampleOptions::default()).unwrap();
    assert_eq!(
        (analysis.compression, analysis.format),
        (Compression::Gzip, Format::Ndjson)
    );
    assert_eq!(
        (
            analysis.records,
            analysis.records_exact,
            analysis.sampled_records
        ),
        (10, true, 10)
    );
}

#[test]
fn large_objects_are_sampled_then_verified_and_counted() {
    let options = SampleOptions {
        max_records: 100,
        max_bytes: 4096,
        ..SampleOptions::default()
    };
    let analysis = analyze(&gzip(ndjson(5000).as_bytes()), &options).unwrap();
    assert_eq!(analysis.sampled_records, 100);
    assert_eq!((analysis.records, analysis.records_exact), (5000, true));
    let unverified = SampleOptions {
        verify: false,
        ..options
    };
    let estimate = analyze(&gzip(ndjson(5000).as_bytes()), &unverified).unwrap();
    assert!(!estimate.records_exact);
    assert!(
        (1000..20000).contains(&estimate.records),
        "{}",
        estimate.records
    );
}

#[test]
fn a_truncated_gzip_fails_the_object_even_past_the_sample() {
    let options = SampleOptions {
        max_records: 10,
        max_bytes: 4096,
        ..SampleOptions::default()
    };
    let full = gzip(ndjson(50_000).as_bytes());
    let failure = analyze(&full[..full.len() / 2], &options).unwrap_err();
    assert!(
        matches!(
            failure,
            ObjectFailure::Corrupt {
                compression: Compression::Gzip,
                ..
            }
        ),
        "{failure}"
    );
}

#[test]
fn bad_objects_fail_with_a_reason() {
    let options = SampleOptions::default();
    assert_eq!(analyze(b"", &options).unwrap_err(), ObjectFailure::Empty);
    assert_eq!(
        analyze(&gzip(b""), &options).unwrap_err(),
        ObjectFailure::Empty
    );
    assert!(matches!(
        analyze(b"\x89PNG\r\n\x1a\n\0\0", &options).unwrap_err(),
        ObjectFailure::Binary { .. }
    ));
    assert_eq!(
        analyze(b"{\"a\":\"\xff\xfe\"}\n", &options).unwrap_err(),
        ObjectFailure::InvalidUtf8 { offset: 6 }
    );
    let long_line = format!("{{\"a\":\"{}\"}}\n", "x".repeat(10 << 20));
    assert_eq!(
        analyze(long_line.as_bytes(), &options).unwrap_err(),
        ObjectFailure::RecordTooLarge {
            line: 1,
            limit: 1_024_000
        }
    );
    let deep = format!("{}{}\n", "{\"a\":".repeat(1000), "}".repeat(1000));
    let failure = analyze(deep.as_bytes(), &options).unwrap_err();
    assert!(
        matches!(&failure, ObjectFailure::NoRecords { line: 1, reason } if reason.contains("recursion")),
        "{failure}"
    );
}

#[test]
fn other_compressions_decode() {
    let data = ndjson(3);
    let zstd = zstd::encode_all(data.as_bytes(), 3).unwrap();
    let mut snappy = snap::write::FrameEncoder::new(Vec::new());
    snappy.write_all(data.as_bytes()).unwrap();
    let snappy = snappy.into_inner().unwrap();
    let mut zipped = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    zipped
        .start_file("a.json", zip::write::SimpleFileOptions::default())
        .unwrap();
    zipped.write_all(data.as_bytes()).unwrap();
    let zipped = zipped.finish().unwrap().into_inner();
    for (bytes, compression) in [
        (zstd, Compression::Zstd),
        (snappy, Compression::Snappy),
        (zipped, Compression::Zip),
    ] {
        let analysis = analyze(&bytes, &SampleOptions::default()).unwrap();
        assert_eq!((analysis.compression, analysis.records), (compression, 3));
    }
}

#[test]
fn a_line_that_fails_half_way_leaves_no_field_in_the_schema() {
    // The second line is valid JSON to a validator but not to a parser (a lone surrogate after
    // a field only it has): observed straight from its text, it would leave `ghost` behind.
    let text = "{\"a\":1}\n{\"ghost\":1,\"s\":\"\\ud800\"}\n{\"a\":2,\"b\":\"x\"}\n";
    let analysis = analyze(text.as_bytes(), &SampleOptions::default()).unwrap();
    assert_eq!(
        (analysis.sampled_records, analysis.malformed_records),
        (2, 1)
    );
    assert_eq!(
        analysis.schema.field_names().collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(
        analysis.malformed_examples[0].starts_with("line 2: "),
        "{:?}",
        analysis.malformed_examples
    );
}
