//! What the interpreter runs, checked at validation: each state's query language (JSONPath or
//! JSONata, its own or its machine's), JSONata's fields refused in a JSONPath state and a
//! distributed Map refused, with the JSON pointer and a plain reason rather than run with other
//! semantics; and the walk over every Task's `Resource`, for the runner's own check.

use serde_json::{Map, Value};

use super::{Fields, ValidationError};

/// A machine's own fields: its query language (None: inherited), and whether it is a Map
/// processor in `DISTRIBUTED` mode.
pub(super) fn check_machine(fields: &Fields<'_>) -> Result<(Option<bool>, bool), ValidationError> {
    let jsonata = query_language(fields)?;
    let mut distributed = false;
    if let Some(config) = fields.map.get("ProcessorConfig") {
        match config
            .get("Mode")
            .and_then(Value::as_str)
            .unwrap_or("INLINE")
        {
            "INLINE" => {}
            "DISTRIBUTED" => distributed = true,
            mode => {
                return Err(fields.error(
                    "ProcessorConfig/Mode",
                    format!("{mode:?}: INLINE or DISTRIBUTED"),
                ));
            }
        }
    }
    Ok((jsonata, distributed))
}

/// An `ItemReader`: a resource that reads the lake (`s3:getObject`, `s3:listObjectsV2`) and a
/// reader configuration sluice reads (JSON, JSONL or CSV items).
pub(super) fn check_item_reader(reader: &Value, pointer: &str) -> Result<(), ValidationError> {
    let error = |field: &str, message: String| ValidationError {
        pointer: format!("{pointer}/{field}"),
        message,
    };
    let resource = reader.get("Resource").and_then(Value::as_str).unwrap_or("");
    if ![
        "arn:aws:states:::s3:getObject",
        "arn:aws:states:::s3:listObjectsV2",
    ]
    .contains(&resource)
    {
        return Err(error(
            "Resource",
            format!(
                "{resource:?}: an ItemReader reads the lake with arn:aws:states:::s3:getObject or arn:aws:states:::s3:listObjectsV2"
            ),
        ));
    }
    if let Some(kind) = reader
        .pointer("/ReaderConfig/InputType")
        .and_then(Value::as_str)
        && !["JSON", "JSONL", "CSV", "PARQUET"].contains(&kind)
    {
        return Err(error(
            "ReaderConfig/InputType",
            format!("{kind:?}: JSON, JSONL, CSV or PARQUET (manifests are not read yet)"),
        ));
    }
    Ok(())
}

/// A distributed Map's `ResultWriter`: the lake's `s3:putObject`, with a `Bucket` and a `Prefix`
/// (`Parameters`, or `Arguments` in JSONata); `WriterConfig` is not read yet.
pub(super) fn check_result_writer(writer: &Value, pointer: &str) -> Result<(), ValidationError> {
    let error = |field: &str, message: String| ValidationError {
        pointer: format!("{pointer}/{field}"),
        message,
    };
    let resource = writer.get("Resource").and_then(Value::as_str).unwrap_or("");
    if resource != "arn:aws:states:::s3:putObject" {
        return Err(error(
            "Resource",
            format!(
                "{resource:?}: a ResultWriter writes the lake with arn:aws:states:::s3:putObject"
            ),
        ));
    }
    if writer.get("WriterConfig").is_some() {
        return Err(error(
            "WriterConfig",
            "is not supported yet: the results are written as Step Functions writes them by default (a manifest, SUCCEEDED_0.json, FAILED_0.json, PENDING_0.json)".into(),
        ));
    }
    let (field, arguments) = match (writer.get("Parameters"), writer.get("Arguments")) {
        (Some(p), None) => ("Parameters", p),
        (None, Some(a)) => ("Arguments", a),
        _ => {
            return Err(error(
                "Parameters",
                "is required (or Arguments in JSONata), with a Bucket and a Prefix".into(),
            ));
        }
    };
    for name in ["Bucket", "Prefix"] {
        if arguments.get(name).is_none() && arguments.get(format!("{name}.$")).is_none() {
            return Err(error(field, format!("names no {name}")));
        }
    }
    Ok(())
}

/// The query language a machine or state names: JSONata (true), JSONPath (false), or none.
fn query_language(fields: &Fields<'_>) -> Result<Option<bool>, ValidationError> {
    match fields.string("QueryLanguage")?.as_deref() {
        None => Ok(None),
        Some("JSONPath") => Ok(Some(false)),
        Some("JSONata") => Ok(Some(true)),
        Some(other) => Err(fields.error(
            "QueryLanguage",
            format!("{other:?}: use JSONPath or JSONata"),
        )),
    }
}

/// A state's query language (its own, else its machine's), and the fields the interpreter does
/// not run in it: refused with a plain reason, never ignored.
pub(super) fn check_state(
    fields: &Fields<'_>,
    machine_jsonata: bool,
) -> Result<bool, ValidationError> {
    let jsonata = match query_language(fields)? {
        Some(false) if machine_jsonata => {
            return Err(fields.error(
                "QueryLanguage",
                "a state of a JSONata state machine cannot be JSONPath",
            ));
        }
        Some(own) => own,
        None => machine_jsonata,
    };
    if !jsonata {
        for field in ["Arguments", "Output", "Items"] {
            if fields.map.contains_key(field) {
                return Err(fields.error(
                    field,
                    "is a JSONata field: set \"QueryLanguage\": \"JSONata\" on the state or the state machine, or use Parameters, ResultSelector and ItemsPath",
                ));
            }
        }
    }
    Ok(jsonata)
}

/// Fields whose value a JSONata state may give as an expression instead of a number or a time.
const EXPRESSION_FIELDS: &[&str] = &[
    "Seconds",
    "Timestamp",
    "MaxConcurrency",
    "ToleratedFailureCount",
    "ToleratedFailurePercentage",
];

/// Fields only a JSONPath state has.
const JSONPATH_FIELDS: &[&str] = &[
    "InputPath",
    "OutputPath",
    "ResultPath",
    "Parameters",
    "ResultSelector",
    "ItemsPath",
];

/// A JSONata state's fields: those the typed parse reads, and the expressions by field.
pub(super) struct Split {
    pub(super) typed: Map<String, Value>,
    pub(super) expressions: Map<String, Value>,
}

/// A JSONata state's fields split in two: those the typed parse reads, and the `{% %}`
/// expressions given where ASL takes a number or a time (evaluated when the state runs). A
/// JSONPath-only field is refused.
pub(super) fn split_expressions(fields: &Fields<'_>) -> Result<Split, ValidationError> {
    if let Some(field) = JSONPATH_FIELDS
        .iter()
        .find(|f| fields.map.contains_key(**f))
    {
        return Err(fields.error(
            field,
            "is a JSONPath field; a JSONata state takes Arguments, Output and Assign",
        ));
    }
    let (mut typed, mut expressions) = (Map::new(), Map::new());
    for (key, value) in fields.map {
        let expression = EXPRESSION_FIELDS.contains(&key.as_str())
            && value
                .as_str()
                .is_some_and(|s| crate::jsonata::expression(s).is_some());
        if expression {
            expressions.insert(key.clone(), value.clone());
        } else {
            typed.insert(key.clone(), value.clone());
        }
    }
    Ok(Split { typed, expressions })
}

/// Every Task state's `Resource` in a (valid) definition, with its JSON pointer, nested
/// Parallel branches and Map processors included.
pub(super) fn task_resources(machine: &Value, pointer: &str, out: &mut Vec<(String, String)>) {
    let Some(states) = machine.get("States").and_then(Value::as_object) else {
        return;
    };
    for (name, state) in states {
        let at = format!(
            "{pointer}/States/{}",
            name.replace('~', "~0").replace('/', "~1")
        );
        if state.get("Type").and_then(Value::as_str) == Some("Task")
            && let Some(resource) = state.get("Resource").and_then(Value::as_str)
        {
            out.push((format!("{at}/Resource"), resource.to_owned()));
        }
        for (i, branch) in state
            .get("Branches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            task_resources(branch, &format!("{at}/Branches/{i}"), out);
        }
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(processor) = state.get(key) {
                task_resources(processor, &format!("{at}/{key}"), out);
            }
        }
    }
}
