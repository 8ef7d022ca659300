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
