//! What the interpreter runs, checked at validation: JSONata and a distributed Map are refused
//! with the JSON pointer and a plain reason rather than run with other semantics; and the walk
//! over every Task's `Resource`, for the runner's own check.

use serde_json::Value;

use super::{Fields, ValidationError};

/// A machine's own fields: its query language, and a Map processor's mode (INLINE only).
pub(super) fn check_machine(fields: &Fields<'_>) -> Result<(), ValidationError> {
    check_query_language(fields)?;
    if let Some(config) = fields.map.get("ProcessorConfig") {
        let mode = config
            .get("Mode")
            .and_then(Value::as_str)
            .unwrap_or("INLINE");
        if mode != "INLINE" {
            return Err(fields.error(
                "ProcessorConfig/Mode",
                format!("{mode:?}: only INLINE Map processing is supported yet"),
            ));
        }
    }
    Ok(())
}

/// The query language a machine or state asks for: JSONPath is run; JSONata is refused until the
/// interpreter runs it, rather than run with JSONPath semantics.
pub(super) fn check_query_language(fields: &Fields<'_>) -> Result<(), ValidationError> {
    match fields.string("QueryLanguage")?.as_deref() {
        None | Some("JSONPath") => Ok(()),
        Some("JSONata") => Err(fields.error(
            "QueryLanguage",
            "JSONata is not supported yet: use JSONPath (the default)",
        )),
        Some(other) => Err(fields.error(
            "QueryLanguage",
            format!("{other:?}: use JSONPath or JSONata"),
        )),
    }
}

/// Fields of a state that the interpreter does not run yet: refused with a plain reason, never
/// ignored.
pub(super) fn check_state(fields: &Fields<'_>) -> Result<(), ValidationError> {
    check_query_language(fields)?;
    for field in ["Arguments", "Output", "Items"] {
        if fields.map.contains_key(field) {
            return Err(fields.error(
                field,
                "is a JSONata field, and JSONata is not supported yet: use Parameters, ResultSelector and ItemsPath",
            ));
        }
    }
    for field in ["ItemReader", "ItemBatcher", "ResultWriter"] {
        if fields.map.contains_key(field) {
            return Err(fields.error(
                field,
                "belongs to a distributed Map, which is not supported yet: pass the items in the state's input",
            ));
        }
    }
    Ok(())
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
