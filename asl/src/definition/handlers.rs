//! A state's error handlers: its Retry and Catch rules, with AWS's defaults and the rule that
//! `States.ALL` stands alone and last.

use serde_json::{Map, Value};

use super::{Fields, PathField, ValidationError};

/// A Retry rule, with AWS's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub full_jitter: bool,
}

/// A Catch rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: PathField,
    pub assign: Option<Value>,
    /// A JSONata catcher's output (default: the error output).
    pub output: Option<Value>,
}

/// Parses the `Retry` and `Catch` arrays of the state at `pointer`.
pub(super) fn parse(
    map: &Map<String, Value>,
    pointer: &str,
    jsonata: bool,
) -> Result<(Vec<Retrier>, Vec<Catcher>), ValidationError> {
    let mut retry = Vec::new();
    for (i, item) in map
        .get("Retry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let retry_pointer = format!("{pointer}/Retry/{i}");
        let f = Fields {
            map: item.as_object().ok_or_else(|| ValidationError {
                pointer: retry_pointer.clone(),
                message: "a retrier is an object".into(),
            })?,
            pointer: &retry_pointer,
        };
        let backoff_rate = f.number("BackoffRate")?.unwrap_or(2.0);
        if backoff_rate < 1.0 {
            return Err(f.error("BackoffRate", "is at least 1.0"));
        }
        retry.push(Retrier {
            error_equals: error_equals(item, &retry_pointer)?,
            interval_seconds: f.number("IntervalSeconds")?.unwrap_or(1.0),
            max_attempts: f.number("MaxAttempts")?.unwrap_or(3.0) as u32,
            backoff_rate,
            max_delay_seconds: f.number("MaxDelaySeconds")?,
            full_jitter: f.string("JitterStrategy")?.as_deref() == Some("FULL"),
        });
    }
    let mut catch = Vec::new();
    for (i, item) in map
        .get("Catch")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let catch_pointer = format!("{pointer}/Catch/{i}");
        let f = Fields {
            map: item.as_object().ok_or_else(|| ValidationError {
                pointer: catch_pointer.clone(),
                message: "a catcher is an object".into(),
            })?,
            pointer: &catch_pointer,
        };
        if jsonata && item.get("ResultPath").is_some() {
            return Err(f.error(
                "ResultPath",
                "is a JSONPath field; a JSONata catcher takes Output and Assign",
            ));
        }
        if !jsonata && item.get("Output").is_some() {
            return Err(f.error(
                "Output",
                "is a JSONata field: set \"QueryLanguage\": \"JSONata\" on the state, or use ResultPath",
            ));
        }
        catch.push(Catcher {
            error_equals: error_equals(item, &catch_pointer)?,
            next: f
                .string("Next")?
                .ok_or_else(|| f.error("Next", "is required"))?,
            result_path: f.path("ResultPath")?,
            assign: item.get("Assign").cloned(),
            output: item.get("Output").cloned(),
        });
    }
    for (list, field) in [
        (
            retry.iter().map(|r| &r.error_equals).collect::<Vec<_>>(),
            "Retry",
        ),
        (
            catch.iter().map(|c| &c.error_equals).collect::<Vec<_>>(),
            "Catch",
        ),
    ] {
        if let Some(position) = list
            .iter()
            .position(|names| names.iter().any(|n| n == "States.ALL"))
            && position + 1 != list.len()
        {
            return Err(ValidationError {
                pointer: format!("{pointer}/{field}/{position}/ErrorEquals"),
                message: "States.ALL must be in the last rule".into(),
            });
        }
    }
    Ok((retry, catch))
}

fn error_equals(value: &Value, pointer: &str) -> Result<Vec<String>, ValidationError> {
    let error = |message: &str| ValidationError {
        pointer: format!("{pointer}/ErrorEquals"),
        message: message.to_owned(),
    };
    let names: Vec<String> = value
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| error("is a non-empty array of error names"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| error("holds strings"))
        })
        .collect::<Result<_, _>>()?;
    if names.iter().any(|n| n == "States.ALL") && names.len() > 1 {
        return Err(error("States.ALL must appear alone"));
    }
    Ok(names)
}
