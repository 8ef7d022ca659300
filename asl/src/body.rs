//! What each state type does with its input: Pass, Succeed, Fail, Wait and Choice here; Task,
//! Parallel and Map through their retries (`task.rs`). Also the input and output processing
//! (`InputPath`, `ResultPath`, `OutputPath`) every state type shares.

use serde_json::{Map, Value, json};

use super::Failure;
use super::choice::evaluate;
use super::definition::{Catcher, Kind, PathField, State};
use super::paths::{Scope, expression_value, payload, query, set};
use super::run::{Runner, state_error};

/// The effective input of a state: `InputPath`, then `Parameters` (or `ItemSelector`).
pub(super) fn path_input(
    field: &PathField,
    raw: &Value,
    scope: Scope<'_>,
) -> Result<Value, Failure> {
    match field {
        PathField::Default => Ok(raw.clone()),
        PathField::Null => Ok(json!({})),
        PathField::Path(path) => query(path, raw, scope),
    }
}

pub(super) fn output_of(
    field: &PathField,
    value: Value,
    scope: Scope<'_>,
) -> Result<Value, Failure> {
    match field {
        PathField::Default => Ok(value),
        PathField::Null => Ok(json!({})),
        PathField::Path(path) => query(path, &value, scope).map_err(|_| {
            let bracketed: String = path
                .trim_start_matches('$')
                .split('.')
                .filter(|s| !s.is_empty())
                .map(|s| format!("['{s}']"))
                .collect();
            Failure::runtime(format!(
                "Invalid path '{path}' : No results for path: ${bracketed}"
            ))
        }),
    }
}

pub(super) fn place_result(
    field: &PathField,
    raw: &Value,
    result: Value,
) -> Result<Value, Failure> {
    match field {
        PathField::Default => Ok(result),
        PathField::Null => Ok(raw.clone()),
        PathField::Path(path) => set(path, raw.clone(), result),
    }
}

impl Runner<'_> {
    /// What a state produced before its exit event.
    pub(super) fn body(
        &mut self,
        state: &State,
        raw: &Value,
        variables: &mut Map<String, Value>,
        context: &Value,
        map_item: Option<&(usize, Value)>,
        entered_id: usize,
    ) -> Result<Step, Failure> {
        if let Some(fields) = &state.jsonata {
            return self.jsonata_body(state, fields, raw, variables, context, map_item, entered_id);
        }
        let scope = Scope { context, variables };
        let at = |message: String| state_error("States.Runtime", &state.name, entered_id, &message);
        match &state.kind {
            Kind::Pass { result } => {
                let input = path_input(&state.input_path, raw, scope)?;
                let input = match &state.parameters {
                    Some(parameters) => payload(parameters, &input, scope)?,
                    None => input,
                };
                let result = result.clone().unwrap_or(input);
                let output = output_of(
                    &state.output_path,
                    place_result(&state.result_path, raw, result.clone())?,
                    scope,
                )?;
                Ok(Step::Next(output, state.next.clone(), result))
            }
            Kind::Succeed => {
                let input = path_input(&state.input_path, raw, scope)?;
                let output = output_of(&state.output_path, input, scope)?;
                Ok(Step::Next(output.clone(), None, output))
            }
            Kind::Fail {
                error,
                cause,
                error_path,
                cause_path,
            } => {
                let pick = |literal: &Option<String>,
                            path: &Option<String>,
                            field: &str|
                 -> Result<String, Failure> {
                    Ok(match (literal, path) {
                        (Some(text), _) => text.clone(),
                        (None, Some(path)) => match expression_value(path, raw, scope).map_err(|failure| {
                            if failure.cause.starts_with("The JSONPath") {
                                Failure::runtime(format!("The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{raw}'"))
                            } else {
                                failure
                            }
                        })? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                        (None, None) => String::new(),
                    })
                };
                Err(Failure::new(
                    pick(error, error_path, "ErrorPath")?,
                    pick(cause, cause_path, "CausePath")?,
                ))
            }
            Kind::Wait {
                seconds,
                timestamp,
                seconds_path,
                timestamp_path,
            } => {
                let input = path_input(&state.input_path, raw, scope)?;
                let until = match (seconds, timestamp, seconds_path, timestamp_path) {
                    (Some(s), ..) => self.clock.now_ms() + (s * 1000.0) as i64,
                    (_, Some(t), ..) => {
                        parse_time(t).ok_or_else(|| at(format!("invalid Timestamp {t}")))?
                    }
                    (_, _, Some(path), _) => {
                        let value = query(path, &input, scope)
                            .map_err(|_| at(format!("The SecondsPath parameter does not reference an input value: {path}")))?;
                        let seconds = value.as_i64().ok_or_else(|| {
                            at(format!("The SecondsPath parameter cannot be parsed as a long value: {path} == {value}"))
                        })?;
                        if seconds < 0 {
                            return Err(at(format!(
                                "The SecondsPath parameter references a negative value: {path} == {value}"
                            )));
                        }
                        self.clock.now_ms() + seconds * 1000
                    }
                    (_, _, _, Some(path)) => {
                        let value = query(path, &input, scope)
                            .map_err(|_| at(format!("The TimestampPath parameter does not reference an input value: {path}")))?;
                        let text = value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned);
                        parse_time(&text).ok_or_else(|| {
                            at(format!(
                                "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {path} == {text}"
                            ))
                        })?
                    }
                    _ => self.clock.now_ms(),
                };
                let wait = until - self.clock.now_ms();
                if wait > 0 {
                    self.clock.sleep_ms(wait);
                }
                let output = output_of(&state.output_path, input, scope)?;
                Ok(Step::Next(output.clone(), state.next.clone(), output))
            }
            Kind::Choice { choices, default } => {
                let input = path_input(&state.input_path, raw, scope)?;
                let mut next = None;
                for choice in choices {
                    if evaluate(&choice.rule, &input, scope)? {
                        next = Some(choice.next.clone());
                        if let Some(assign) = &choice.assign
                            && let Value::Object(values) = payload(assign, &input, scope)?
                        {
                            variables.extend(values);
                        }
                        break;
                    }
                }
                let scope = Scope { context, variables };
                let next = next.or_else(|| default.clone()).ok_or_else(|| {
                    Failure::new(
                        "States.NoChoiceMatched",
                        format!(
                            "no choice rule matched and there is no Default in state {}",
                            state.name
                        ),
                    )
                })?;
                let output = output_of(&state.output_path, input, scope)?;
                Ok(Step::Next(output.clone(), Some(next), output))
            }
            Kind::Map {
                max_concurrency_path: Some(path),
                ..
            } => {
                let input = path_input(&state.input_path, raw, scope)?;
                let value = query(path, &input, scope).map_err(|_| {
                    at(format!(
                        "The MaxConcurrencyPath field does not reference an input value: {path}"
                    ))
                })?;
                let integer = value
                    .as_u64()
                    .or_else(|| value.as_str().and_then(|s| s.parse::<u64>().ok()));
                if integer.is_none() {
                    let shown = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    return Err(at(format!(
                        "The MaxConcurrencyPath field refers to value \"{shown}\" which is not a valid integer: {path}"
                    )));
                }
                self.with_retries(state, raw, variables, context, map_item)
            }
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map { .. } => {
                self.with_retries(state, raw, variables, context, map_item)
            }
        }
    }
}

/// What a state's body produced.
pub(super) enum Step {
    /// The output, the next state, and what `Assign` sees as `$`.
    Next(Value, Option<String>, Value),
    /// A Catch rule caught a failure: the output and the rule.
    Caught(Value, Catcher),
}

/// An ISO-8601 extended offset date-time (`2024-05-30T00:00:00Z`): a `T`, and an offset.
pub(super) fn parse_time(text: &str) -> Option<i64> {
    if text.as_bytes().get(10).is_some_and(|b| *b != b'T') {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}
