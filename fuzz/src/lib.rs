//! The fuzz targets' bodies: one function per parser of outside input, each asserting what must
//! hold for any input (no panic; the invariants named in each). `fuzz_targets/` hands them
//! libFuzzer's inputs (`cargo fuzz`, `scripts/fuzz.sh`); the test suite replays the seeds and
//! every input a fuzzer ever crashed on (`fuzz/regressions/<target>/`) through them.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use jobs::crawler::sample::{SampleOptions, analyze};
use serde_json::{Map, Value, json};

/// A target's body: the checks one input goes through.
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("asl_definition", asl_definition),
    ("asl_paths", asl_paths),
    ("crawler_sample", crawler_sample),
    ("convert_decode", convert_decode),
    ("inference_request", inference_request),
    ("dataset_series", dataset_series),
    ("firehose_request", firehose_request),
    ("sigv4", sigv4),
    ("console_forms", console_forms),
];

/// The ASL definition parser and validator on any JSON document: it accepts or refuses with a
/// JSON pointer, never panics; what it accepts it accepts again from its own JSON.
pub fn asl_definition(data: &[u8]) {
    let Ok(definition) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match asl::definition::StateMachine::parse(&definition) {
        Ok(machine) => assert!(machine.states.contains_key(&machine.start_at)),
        Err(refused) => assert!(
            refused.pointer.is_empty() || refused.pointer.starts_with('/'),
            "a refusal names a JSON pointer: {refused}"
        ),
    }
}

/// JSONPath, reference paths, intrinsic functions and JSONata on arbitrary documents: the first
/// line is the expression, the rest the input document. Each evaluates or fails with an ASL
/// error (`States.Runtime`, `States.IntrinsicFailure`, `States.QueryEvaluationError`), never
/// panics.
pub fn asl_paths(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (expression, document) = text.split_once('\n').unwrap_or((text, "{}"));
    let Ok(input) = serde_json::from_str::<Value>(document) else {
        return;
    };
    let context = json!({"Execution": {"Id": "x", "Input": input}, "State": {"Name": "S"}});
    let mut variables = Map::new();
    variables.insert("v".into(), json!([1, "two", {"three": 3}]));
    let scope = asl::paths::Scope {
        context: &context,
        variables: &variables,
    };
    let failed = |failure: asl::Failure| assert!(failure.error.starts_with("States."), "{failure}");
    if expression.starts_with("States.") {
        let _ = asl::intrinsics::evaluate(expression, &input, scope).map_err(failed);
    } else if expression.starts_with('$') {
        let _ = asl::paths::query(expression, &input, scope).map_err(failed);
        let _ = asl::paths::set(expression, input.clone(), json!("placed")).map_err(failed);
    }
    let template = json!({"a.$": expression, "b": [expression]});
    let _ = asl::paths::payload(&template, &input, scope).map_err(failed);
    if let Some(inner) = asl::jsonata::expression(expression) {
        let states = asl::jsonata::states(&input, &context);
        let bindings = asl::jsonata::Bindings {
            states: &states,
            variables: &variables,
        };
        let _ = asl::jsonata::evaluate(inner, "Output", bindings).map_err(failed);
    }
}

/// The crawler's sniffing and sampling of an object's bytes, whatever they are: every
/// compression (gzip, zstd, snappy, zip, none) and format it recognises. An object is
/// analysed or fails with a reason; the crawl never panics on what landed.
pub fn crawler_sample(data: &[u8]) {
    let options = SampleOptions {
        max_records: 200,
        max_bytes: 1 << 20,
        max_record_bytes: 64 << 10,
        verify: true,
    };
    let _ = analyze(data, &options);
    let _ = jobs::crawler::sniff::Compression::sniff(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = jobs::crawler::sniff::sniff_text(text, true);
    }
}

fn telemetry() -> SchemaRef {
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
    Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, true),
        Field::new("ts", utc, true),
        Field::new("seq", DataType::Int64, true),
        Field::new("pm25", DataType::Float64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new(
            "location",
            DataType::Struct(vec![Field::new("lat", DataType::Float64, true)].into()),
            true,
        ),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
    ]))
}

/// The conversion's record decoders on any object text against a telemetry schema: the direct
/// decoder, where it accepts records, decodes exactly what arrow-json (the reference) decodes;
/// the whole object decodes with every record written or quarantined, none lost.
pub fn convert_decode(data: &[u8]) {
    let schema = telemetry();
    if let Err(disagreement) = jobs::convert::decode::direct_agrees_with_reference(data, &schema) {
        panic!("{disagreement}");
    }
    for allow_new_fields in [true, false] {
        if let Ok(decoded) =
            jobs::convert::decode::decode_object(data, "fuzz/object", &schema, allow_new_fields)
        {
            let written: usize = decoded.batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(
                written as u64 + decoded.quarantined.len() as u64,
                decoded.records_read,
                "read = written + quarantined"
            );
        }
    }
}

/// The SageMaker DeepAR inference request parser on any body: a request, or an error naming the
/// field, never a panic.
pub fn inference_request(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = models::inference::parse_request(&body, 100);
}

/// The dataset's JSON lines reader (a series per line: start, target, cat, dynamic_feat) on any
/// line: a series, or an error naming the line and field, never a panic.
pub fn dataset_series(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (index, line) in text.lines().enumerate() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let origin = models::deepar::series::Origin {
            source: "fuzz.jsonl",
            line: index + 1,
        };
        let _ = models::deepar::series::parse_series(&value, origin);
    }
}

/// The Firehose API's PutRecord and PutRecordBatch bodies and an HTTP endpoint delivery's
/// (plain or gzip'd), as the ingest routes read them; the first byte picks which. A body is
/// refused with AWS's error type and the field at fault, or its records decode to bytes whose
/// base64 is exactly what was sent, within Firehose's limits.
pub fn firehose_request(data: &[u8]) {
    use base64::Engine as _;
    use wire::firehose::{
        MAX_BATCH_BYTES, PutRecordBatchInput, PutRecordInput, decode, delivered, delivery, parse,
    };
    let Some((mode, body)) = data.split_first() else {
        return;
    };
    let same = |sent: &[&str], decoded: &[Vec<u8>]| {
        assert_eq!(sent.len(), decoded.len());
        for (text, bytes) in sent.iter().zip(decoded) {
            assert_eq!(
                base64::engine::general_purpose::STANDARD.encode(bytes),
                *text
            );
        }
    };
    let api = |records: Result<Vec<Vec<u8>>, wire::firehose::Rejected>, field: &str| match records {
        Ok(records) => assert!(records.iter().map(Vec::len).sum::<usize>() <= MAX_BATCH_BYTES),
        Err(refused) => {
            assert_eq!(refused.kind, "InvalidArgumentException");
            assert!(refused.message.starts_with(field), "{refused}");
        }
    };
    match mode % 4 {
        0 => match parse::<PutRecordInput>(body) {
            Ok(input) => {
                let records = decode(std::slice::from_ref(&input.record), "Record");
                if let Ok(decoded) = &records {
                    same(&[input.record.data.as_str()], decoded);
                }
                api(records, "Record");
            }
            Err(refused) => assert_eq!(refused.kind, "SerializationException", "{refused}"),
        },
        1 => match parse::<PutRecordBatchInput>(body) {
            Ok(input) => {
                let records = decode(&input.records, "Records");
                if let Ok(decoded) = &records {
                    let sent: Vec<&str> = input.records.iter().map(|r| r.data.as_str()).collect();
                    same(&sent, decoded);
                }
                api(records, "Records");
            }
            Err(refused) => assert_eq!(refused.kind, "SerializationException", "{refused}"),
        },
        mode => match delivery(body, mode == 3) {
            Ok(read) => match delivered(&read.records) {
                Ok(decoded) => {
                    let sent: Vec<&str> = read.records.iter().map(|r| r.data.as_str()).collect();
                    same(&sent, &decoded);
                }
                Err(message) => assert!(message.starts_with("records["), "{message}"),
            },
            Err(message) => assert!(!message.is_empty()),
        },
    }
}

/// AWS Signature Version 4 on any `Authorization` header (the first line) and any request (the
/// next lines: method, path, query, then the body): parsing never panics and what it accepts is
/// well formed; checking a fuzzed signature never panics; a request signed with a secret
/// verifies with it, and no longer once its body or its secret changes.
pub fn sigv4(data: &[u8]) {
    use wire::sigv4::{Authorization, Request, SignatureError, sign, verify};
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(5, '\n');
    let header = lines.next().unwrap_or_default();
    let method = lines.next().unwrap_or("POST");
    let path = lines.next().unwrap_or("/");
    let query = lines.next().unwrap_or_default();
    let body = lines.next().unwrap_or_default().as_bytes();
    let headers = [
        ("Host", "firehose.us-east-1.amazonaws.com"),
        ("X-Amz-Date", "20261205T120000Z"),
        ("Content-Type", "application/x-amz-json-1.1"),
    ];
    let request = Request {
        method,
        path,
        query,
        headers: &headers,
        body,
    };
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-05T12:01:00Z")
        .expect("a time")
        .to_utc();
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    if let Ok(parsed) = Authorization::parse(header) {
        assert_eq!(parsed.signature.len(), 64);
        assert!(
            parsed
                .signature
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(parsed.date.bytes().all(|b| b.is_ascii_digit()) && parsed.date.len() == 8);
        assert!(parsed.signed_headers.iter().any(|h| h == "host"));
        let _ = verify(&request, &parsed, secret, now);
    }
    let signed = sign(
        &request,
        "AKIDEXAMPLE",
        secret,
        "us-east-1",
        "firehose",
        &["host", "x-amz-date", "content-type"],
    )
    .expect("a request with its signed headers signs");
    let parsed = Authorization::parse(&signed).expect("a signature sluice made parses");
    assert_eq!(verify(&request, &parsed, secret, now), Ok(()));
    assert_eq!(
        verify(&request, &parsed, "another secret", now),
        Err(SignatureError::Mismatch)
    );
    let mut changed = body.to_vec();
    changed.push(b'!');
    let tampered = Request {
        body: &changed,
        ..request
    };
    assert_eq!(
        verify(&tampered, &parsed, secret, now),
        Err(SignatureError::Mismatch)
    );
}

/// The console's forms and query strings on any body (the first byte picks which form), read as
/// its extractors read them, then checked: each refusal names a field; what is accepted is
/// typed (a day range whose end is a day after its start's form, UTC times, a version number,
/// JSON that reads back the same, a decision, a reason with no surrounding space), and no
/// address a page sends a person back to leaves the console.
pub fn console_forms(data: &[u8]) {
    use wire::console::{
        BackfillForm, DecisionForm, DefinitionForm, ExecutionFilter, LoginForm, PromoteForm,
        Refused, StartForm, alias, console_address, next_address, read, reason,
    };
    let Some((which, body)) = data.split_first() else {
        return;
    };
    let named = |refused: Refused| assert!(!refused.field.is_empty() && !refused.reason.is_empty());
    let stays_inside = |to: &str| {
        assert!(
            to == "/ui" || to.starts_with("/ui/") || to.starts_with("/ui?"),
            "{to:?}"
        );
        assert!(
            !to.contains('\\') && !to.chars().any(char::is_control),
            "{to:?}"
        );
    };
    let json_again = |value: &Value| {
        let text = value.to_string();
        assert_eq!(
            &serde_json::from_str::<Value>(&text).expect("JSON reads back"),
            value
        );
    };
    match which % 7 {
        0 => match read::<LoginForm>(body) {
            Ok(form) => stays_inside(&next_address(form.next.as_deref())),
            Err(refused) => named(refused),
        },
        1 => match read::<ExecutionFilter>(body).and_then(|f| f.query()) {
            Ok(query) => {
                if let (Some(from), Some(before)) = (&query.started_from, &query.started_before) {
                    let parse =
                        |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("a day");
                    let _ = (parse(from), parse(before));
                }
                for text in [&query.workflow, &query.status, &query.after]
                    .into_iter()
                    .flatten()
                {
                    assert!(!text.is_empty() && text.trim() == text);
                }
            }
            Err(refused) => named(refused),
        },
        2 => match read::<DefinitionForm>(body) {
            Ok(form) => {
                if let Ok(definition) = form.definition() {
                    json_again(&definition);
                }
                if let Some(to) = form.return_to() {
                    stays_inside(to);
                }
                if let Some(to) = console_address(&form.return_to) {
                    stays_inside(to);
                }
            }
            Err(refused) => named(refused),
        },
        3 => match read::<StartForm>(body) {
            Ok(form) => {
                match form.input() {
                    Ok(Some(input)) => json_again(&input),
                    Ok(None) => assert!(form.input.trim().is_empty()),
                    Err(refused) => named(refused),
                }
                if let Some(name) = form.name() {
                    assert!(!name.is_empty() && name.trim() == name);
                }
            }
            Err(refused) => named(refused),
        },
        4 => match read::<BackfillForm>(body).and_then(|f| f.range()) {
            Ok((from, to)) => {
                let _ = (from.to_rfc3339(), to.to_rfc3339());
            }
            Err(refused) => named(refused),
        },
        5 => match read::<PromoteForm>(body) {
            Ok(form) => {
                if let Ok(version) = form.version() {
                    assert_eq!(
                        form.version.trim().trim_start_matches('v').parse::<u32>(),
                        Ok(version)
                    );
                }
                match reason(&form.reason) {
                    Ok(text) => assert!(!text.is_empty() && text.trim() == text),
                    Err(refused) => named(refused),
                }
                let _ = models::registry::AliasName::parse(&alias(&form.alias));
            }
            Err(refused) => named(refused),
        },
        _ => match read::<DecisionForm>(body) {
            Ok(form) => match form.decision() {
                Ok(_) => assert!(form.decision == "accept" || form.decision == "dismiss"),
                Err(refused) => named(refused),
            },
            Err(refused) => named(refused),
        },
    }
}
