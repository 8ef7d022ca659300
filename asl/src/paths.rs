//! JSONPath as Step Functions uses it: queries over the state input, the context object (`$$`)
//! and variables (`$name`), reference paths that place a result (`ResultPath`), and payload
//! templates whose `key.$` fields are paths or intrinsic functions.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use super::Failure;
use super::intrinsics;

/// What a path can see besides the input.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The context object, `$$`.
    pub context: &'a Value,
    /// `Assign`ed variables, `$name`.
    pub variables: &'a Map<String, Value>,
}

/// A path that may select several nodes (wildcards, slices, filters, descendants, unions).
fn is_multi(path: &str) -> bool {
    path.contains("..") || path.contains('*') || path.contains("?(") || path.contains("[?") || {
        let mut depth = 0;
        let mut multi = false;
        for c in path.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                ':' | ',' if depth > 0 => multi = true,
                _ => {}
            }
        }
        multi
    }
}

/// Evaluates a path against the input, `$$` or a variable.
pub fn query(path: &str, input: &Value, scope: Scope<'_>) -> Result<Value, Failure> {
    let (target, path) = if let Some(rest) = path.strip_prefix("$$") {
        (scope.context, format!("${rest}"))
    } else if path.len() > 1 && path.as_bytes()[1].is_ascii_alphabetic() {
        let name_end = path[1..].find(['.', '[']).map_or(path.len(), |i| i + 1);
        let name = &path[1..name_end];
        let value = scope
            .variables
            .get(name)
            .ok_or_else(|| Failure::runtime(format!("The variable '{name}' could not be found")))?;
        return query_value(&format!("${}", &path[name_end..]), value);
    } else {
        (input, path.to_owned())
    };
    query_value(&path, target)
}

/// Rewrites Step Functions' JSONPath (Jayway's dialect) into RFC 9535: dotted names that are
/// not RFC identifiers (`$.delivery-partner`) become `['…']`, and backslashes inside quoted
/// names are literal characters, as Step Functions reads them.
fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' if chars
                .get(i + 1)
                .is_some_and(|c| *c != '.' && *c != '[' && *c != '*')
                && !(i > 0 && chars[i - 1] == '.') =>
            {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                let plain = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                if plain {
                    out.push('.');
                    out.push_str(&name);
                } else {
                    out.push_str(&format!(
                        "['{}']",
                        name.replace('\\', "\\\\").replace('\'', "\\'")
                    ));
                }
                i = end;
            }
            '[' if matches!(chars.get(i + 1), Some('\'')) => {
                let mut j = i + 2;
                let mut name = String::new();
                while j < chars.len() && !(chars[j] == '\'' && chars.get(j + 1) == Some(&']')) {
                    name.push(chars[j]);
                    j += 1;
                }
                out.push_str(&format!("['{}']", name.replace('\\', "\\\\")));
                i = j + 2;
            }
            '[' => {
                // Indices, slices and filters are copied as they are, nested brackets included.
                let mut depth = 0;
                while i < chars.len() {
                    out.push(chars[i]);
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn query_value(path: &str, target: &Value) -> Result<Value, Failure> {
    let path = &normalize(path);
    let parsed = JsonPath::parse(path)
        .map_err(|err| Failure::runtime(format!("invalid JSONPath {path:?}: {err}")))?;
    let nodes = parsed.query(target);
    if is_multi(path) {
        return Ok(Value::Array(nodes.all().into_iter().cloned().collect()));
    }
    nodes.exactly_one().cloned().map_err(|_| {
        Failure::runtime(format!(
            "The JSONPath '{path}' could not be found in the input '{target}'"
        ))
    })
}

/// One step of a reference path.
#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn reference_segments(path: &str) -> Result<Vec<Segment>, Failure> {
    let invalid = || {
        Failure::new(
            "States.ResultPathMatchFailure",
            format!("invalid reference path {path:?}"),
        )
    };
    let rest = path.strip_prefix('$').ok_or_else(invalid)?;
    let bytes = rest.as_bytes();
    let mut segments = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                let end = rest[i + 1..]
                    .find(['.', '['])
                    .map_or(rest.len(), |e| e + i + 1);
                segments.push(Segment::Key(rest[i + 1..end].to_owned()));
                i = end;
            }
            b'[' => {
                let end = rest[i..].find(']').map(|e| e + i).ok_or_else(invalid)?;
                let inner = rest[i + 1..end].trim();
                if let Some(quoted) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    segments.push(Segment::Key(quoted.to_owned()));
                } else if let Some(quoted) =
                    inner.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
                {
                    segments.push(Segment::Key(quoted.to_owned()));
                } else {
                    segments.push(Segment::Index(inner.parse().map_err(|_| invalid())?));
                }
                i = end + 1;
            }
            _ => return Err(invalid()),
        }
    }
    Ok(segments)
}

/// Places `value` at a reference path inside `target` (`ResultPath`), creating objects on the way.
pub fn set(path: &str, target: Value, value: Value) -> Result<Value, Failure> {
    let segments = reference_segments(path)?;
    if segments.is_empty() {
        return Ok(value);
    }
    let mut root = target;
    let mut node = &mut root;
    for (i, segment) in segments.iter().enumerate() {
        let last = i == segments.len() - 1;
        match segment {
            Segment::Key(key) => {
                if !node.is_object() {
                    return Err(Failure::new(
                        "States.ResultPathMatchFailure",
                        format!("Unable to apply ResultPath {path:?} to input {node}"),
                    ));
                }
                let map = node.as_object_mut().expect("checked");
                if last {
                    map.insert(key.clone(), value);
                    return Ok(root);
                }
                node = map
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
            }
            Segment::Index(index) => {
                let slot = node
                    .as_array_mut()
                    .and_then(|a| a.get_mut(*index))
                    .ok_or_else(|| {
                        Failure::new(
                            "States.ResultPathMatchFailure",
                            format!("Unable to apply ResultPath {path:?}"),
                        )
                    })?;
                if last {
                    *slot = value;
                    return Ok(root);
                }
                node = slot;
            }
        }
    }
    Ok(root)
}

/// Evaluates a payload template: `key.$` fields take the value of their path or intrinsic
/// function; other fields are copied; nested objects and arrays are evaluated too.
pub fn payload(template: &Value, input: &Value, scope: Scope<'_>) -> Result<Value, Failure> {
    match template {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, value) in map {
                match (key.strip_suffix(".$"), value) {
                    (Some(name), Value::String(expression)) => {
                        let value = expression_value(expression, input, scope).map_err(|failure| {
                            if failure.error == "States.Runtime" && failure.cause.starts_with("The JSONPath") {
                                Failure::runtime(format!(
                                    "The JSONPath '{expression}' specified for the field '{key}' could not be found in the input '{input}'"
                                ))
                            } else {
                                failure
                            }
                        })?;
                        out.insert(name.to_owned(), value);
                    }
                    _ => {
                        out.insert(key.clone(), payload(value, input, scope)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => Ok(Value::Array(
            items
                .iter()
                .map(|v| payload(v, input, scope))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other.clone()),
    }
}

/// The value of a `.$` field: an intrinsic function call or a path.
pub fn expression_value(
    expression: &str,
    input: &Value,
    scope: Scope<'_>,
) -> Result<Value, Failure> {
    if expression.starts_with("States.") {
        intrinsics::evaluate(expression, input, scope)
    } else {
        query(expression, input, scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope_with<'a>(context: &'a Value, variables: &'a Map<String, Value>) -> Scope<'a> {
        Scope { context, variables }
    }

    #[test]
    fn queries_reach_input_context_and_variables() {
        let context = json!({"Execution": {"Name": "run-1"}});
        let variables: Map<String, Value> = [("x".to_owned(), json!({"y": [1, 2]}))]
            .into_iter()
            .collect();
        let scope = scope_with(&context, &variables);
        let input = json!({"a": {"b": [10, 20, 30]}});
        assert_eq!(query("$.a.b[1]", &input, scope).unwrap(), json!(20));
        assert_eq!(
            query("$.a.b[*]", &input, scope).unwrap(),
            json!([10, 20, 30])
        );
        assert_eq!(query("$.a.b[0:2]", &input, scope).unwrap(), json!([10, 20]));
        assert_eq!(
            query("$$.Execution.Name", &input, scope).unwrap(),
            json!("run-1")
        );
        assert_eq!(query("$x.y[1]", &input, scope).unwrap(), json!(2));
        assert_eq!(
            query("$.missing", &input, scope).unwrap_err().error,
            "States.Runtime"
        );
        let odd = json!({"delivery-partner": 1, "Test\\\"\"Name\"": 2});
        assert_eq!(query("$.delivery-partner", &odd, scope).unwrap(), json!(1));
        let users = json!({"users": [{"s": 0}, {"s": 1}]});
        assert_eq!(
            query("$.users[?(@.s == 0)]", &users, scope).unwrap(),
            json!([{"s": 0}])
        );
        assert_eq!(
            query("$['Test\\\"\"Name\"']", &odd, scope).unwrap(),
            json!(2)
        );
    }

    #[test]
    fn result_paths_place_values() {
        assert_eq!(set("$", json!({"a": 1}), json!(2)).unwrap(), json!(2));
        assert_eq!(
            set("$.r.s", json!({"a": 1}), json!(2)).unwrap(),
            json!({"a": 1, "r": {"s": 2}})
        );
        assert_eq!(set("$['r']", json!({}), json!(2)).unwrap(), json!({"r": 2}));
        assert_eq!(
            set("$.a.b", json!({"a": 1}), json!(2)).unwrap_err().error,
            "States.ResultPathMatchFailure"
        );
    }

    #[test]
    fn payloads_evaluate_paths_and_intrinsics() {
        let context = json!({});
        let variables = Map::new();
        let template = json!({"x.$": "$.a", "n": {"y.$": "States.Format('{}-{}', $.a, 'b')"}, "list": [{"z.$": "$.a"}]});
        let out = payload(
            &template,
            &json!({"a": 1}),
            scope_with(&context, &variables),
        )
        .unwrap();
        assert_eq!(out, json!({"x": 1, "n": {"y": "1-b"}, "list": [{"z": 1}]}));
    }
}
