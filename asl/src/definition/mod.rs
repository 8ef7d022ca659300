//! Parsing and validating a definition: raw JSON becomes a typed [`StateMachine`] in one
//! function, or a [`ValidationError`] naming the JSON pointer of the offending field.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::choice::{Choice, parse_rule};

mod fields;
mod handlers;
mod support;
use fields::Fields;
pub use handlers::{Catcher, Retrier};

/// A definition that breaks a rule of the language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct ValidationError {
    /// JSON pointer of the offending field (`/States/Load/Next`).
    pub pointer: String,
    pub message: String,
}

/// `InputPath`, `OutputPath`, `ResultPath` and `ItemsPath`: absent (default `$`), null, or a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathField {
    Default,
    Null,
    Path(String),
}

/// What a state does.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task {
        resource: String,
        timeout_seconds: Option<f64>,
        heartbeat_seconds: Option<f64>,
    },
    Choice {
        choices: Vec<Choice>,
        default: Option<String>,
    },
    Wait {
        seconds: Option<f64>,
        timestamp: Option<String>,
        seconds_path: Option<String>,
        timestamp_path: Option<String>,
    },
    Succeed,
    Fail {
        error: Option<String>,
        cause: Option<String>,
        error_path: Option<String>,
        cause_path: Option<String>,
    },
    Parallel {
        branches: Vec<StateMachine>,
    },
    Map {
        processor: Box<StateMachine>,
        items_path: PathField,
        item_selector: Option<Value>,
        max_concurrency: u32,
        max_concurrency_path: Option<String>,
        tolerated_failure_percentage: Option<f64>,
        tolerated_failure_count: Option<u64>,
        /// What is read as the Map runs.
        run: Box<MapRun>,
    },
}

/// A Map's fields read as it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct MapRun {
    /// `ToleratedFailureCountPath` and `ToleratedFailurePercentagePath`.
    pub tolerated_failure_paths: (Option<String>, Option<String>),
    /// A distributed Map's `ItemReader`, `ItemBatcher` and `ResultWriter`, as written.
    pub item_reader: Option<Value>,
    pub item_batcher: Option<Value>,
    pub result_writer: Option<Value>,
}

impl Kind {
    /// The `Type` name, as history events use it (`Pass`, `Task`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "Pass",
            Kind::Task { .. } => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Wait { .. } => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Parallel { .. } => "Parallel",
            Kind::Map { .. } => "Map",
        }
    }
}

/// One state.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub name: String,
    pub kind: Kind,
    /// None for terminal states (`End`, Succeed, Fail) and Choice.
    pub next: Option<String>,
    pub input_path: PathField,
    pub output_path: PathField,
    pub result_path: PathField,
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    pub assign: Option<Value>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    /// The state's JSONata fields, when it is written in JSONata (its own `QueryLanguage`, or its
    /// machine's); None for a JSONPath state.
    pub jsonata: Option<Box<Jsonata>>,
}

/// What a JSONata state takes besides the fields both languages share.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Jsonata {
    /// A Task's or Parallel's input (default: the state's input).
    pub arguments: Option<Value>,
    /// The state's output (default: the result, or the input where there is none).
    pub output: Option<Value>,
    /// A Map's items (default: the state's input).
    pub items: Option<Value>,
    /// `{% %}` expressions given where ASL takes a number or a time (`Seconds`, `Timestamp`,
    /// `MaxConcurrency`, `ToleratedFailureCount`, `ToleratedFailurePercentage`), by field.
    pub expressions: Map<String, Value>,
}

/// A validated state machine (or Parallel branch, or Map item processor).
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub start_at: String,
    pub states: HashMap<String, State>,
    pub timeout_seconds: Option<f64>,
    /// A Map's item processor with `ProcessorConfig.Mode: DISTRIBUTED`: each item (or batch) is
    /// a child execution, with its own history.
    pub distributed: bool,
}

impl StateMachine {
    /// Parses and validates a definition.
    pub fn parse(definition: &Value) -> Result<Self, ValidationError> {
        parse_machine(definition, "", false)
    }

    /// Parses and validates a definition whose Task resources must each pass `resource` (the
    /// runner's check: a Task that would fail at run time for its resource is refused now).
    pub fn parse_with_resources(
        definition: &Value,
        resource: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Self, ValidationError> {
        let machine = parse_machine(definition, "", false)?;
        let mut tasks = Vec::new();
        support::task_resources(definition, "", &mut tasks);
        for (pointer, name) in tasks {
            resource(&name).map_err(|message| ValidationError { pointer, message })?;
        }
        Ok(machine)
    }
}

/// Parses a machine; `jsonata` is the query language it inherits (a nested machine inherits its
/// enclosing machine's).
fn parse_machine(
    value: &Value,
    pointer: &str,
    jsonata: bool,
) -> Result<StateMachine, ValidationError> {
    let root = value.as_object().ok_or_else(|| ValidationError {
        pointer: pointer.to_owned(),
        message: "a state machine is an object".into(),
    })?;
    let fields = Fields { map: root, pointer };
    let (own_language, distributed) = support::check_machine(&fields)?;
    let jsonata = own_language.unwrap_or(jsonata);
    let start_at = fields
        .string("StartAt")?
        .ok_or_else(|| fields.error("StartAt", "is required"))?;
    let states_value = root
        .get("States")
        .and_then(Value::as_object)
        .ok_or_else(|| fields.error("States", "is a required object"))?;
    if states_value.is_empty() {
        return Err(fields.error("States", "has at least one state"));
    }
    let mut states = HashMap::new();
    for (name, state) in states_value {
        let state_pointer = format!(
            "{pointer}/States/{}",
            name.replace('~', "~0").replace('/', "~1")
        );
        if name.chars().count() > 80 {
            return Err(ValidationError {
                pointer: state_pointer,
                message: "state names have at most 80 characters".into(),
            });
        }
        states.insert(
            name.clone(),
            parse_state(name, state, &state_pointer, jsonata)?,
        );
    }
    if !states.contains_key(&start_at) {
        return Err(fields.error("StartAt", format!("names no state: {start_at:?}")));
    }
    for state in states.values() {
        let state_pointer = format!("{pointer}/States/{}", state.name);
        let mut targets: Vec<(String, &String)> = Vec::new();
        if let Some(next) = &state.next {
            targets.push((format!("{state_pointer}/Next"), next));
        }
        if let Kind::Choice { choices, default } = &state.kind {
            targets.extend(
                choices
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (format!("{state_pointer}/Choices/{i}/Next"), &c.next)),
            );
            targets.extend(
                default
                    .iter()
                    .map(|d| (format!("{state_pointer}/Default"), d)),
            );
        }
        targets.extend(
            state
                .catch
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("{state_pointer}/Catch/{i}/Next"), &c.next)),
        );
        for (target_pointer, target) in targets {
            if !states.contains_key(target) {
                return Err(ValidationError {
                    pointer: target_pointer,
                    message: format!("names no state: {target:?}"),
                });
            }
        }
    }
    let timeout_seconds = fields.number("TimeoutSeconds")?;
    Ok(StateMachine {
        distributed,
        start_at,
        states,
        timeout_seconds,
    })
}

const COMMON: &[&str] = &[
    "Type",
    "Comment",
    "Next",
    "End",
    "InputPath",
    "OutputPath",
    "Assign",
    "QueryLanguage",
];

fn parse_state(
    name: &str,
    value: &Value,
    pointer: &str,
    machine_jsonata: bool,
) -> Result<State, ValidationError> {
    let original = value.as_object().ok_or_else(|| ValidationError {
        pointer: pointer.to_owned(),
        message: "a state is an object".into(),
    })?;
    let jsonata = support::check_state(
        &Fields {
            map: original,
            pointer,
        },
        machine_jsonata,
    )?;
    // In a JSONata state, a number or a time may be an expression: it is evaluated when the
    // state runs, and the typed parse below does not see it.
    let support::Split {
        typed: filtered,
        expressions,
    } = if jsonata {
        support::split_expressions(&Fields {
            map: original,
            pointer,
        })?
    } else {
        support::Split {
            typed: Map::new(),
            expressions: Map::new(),
        }
    };
    let map = if jsonata { &filtered } else { original };
    let fields = Fields { map, pointer };
    let type_name = fields
        .string("Type")?
        .ok_or_else(|| fields.error("Type", "is required"))?;
    let mut allowed: Vec<&str> = COMMON.to_vec();
    let terminal = matches!(type_name.as_str(), "Succeed" | "Fail" | "Choice");
    let kind = match type_name.as_str() {
        "Pass" => {
            allowed.extend(["Result", "ResultPath", "Parameters", "Output"]);
            Kind::Pass {
                result: map.get("Result").cloned(),
            }
        }
        "Task" => {
            allowed.extend([
                "Resource",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "TimeoutSeconds",
                "HeartbeatSeconds",
                "TimeoutSecondsPath",
                "HeartbeatSecondsPath",
                "Credentials",
                "Arguments",
                "Output",
            ]);
            let resource = fields
                .string("Resource")?
                .ok_or_else(|| fields.error("Resource", "is required"))?;
            let timeout_seconds = fields.number("TimeoutSeconds")?;
            let heartbeat_seconds = fields.number("HeartbeatSeconds")?;
            if let (Some(timeout), Some(heartbeat)) = (timeout_seconds, heartbeat_seconds)
                && heartbeat >= timeout
            {
                return Err(fields.error("HeartbeatSeconds", "must be smaller than TimeoutSeconds"));
            }
            Kind::Task {
                resource,
                timeout_seconds,
                heartbeat_seconds,
            }
        }
        "Choice" => {
            allowed.extend(["Choices", "Default", "Output"]);
            let items = map
                .get("Choices")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| fields.error("Choices", "is a non-empty array"))?;
            let mut choices = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let rule_pointer = format!("{pointer}/Choices/{i}");
                let next =
                    item.get("Next")
                        .and_then(Value::as_str)
                        .ok_or_else(|| ValidationError {
                            pointer: format!("{rule_pointer}/Next"),
                            message: "a choice names its Next state".into(),
                        })?;
                choices.push(Choice {
                    rule: parse_rule(item, &rule_pointer, jsonata)?,
                    next: next.to_owned(),
                    assign: item.get("Assign").cloned(),
                    output: item.get("Output").cloned(),
                });
            }
            Kind::Choice {
                choices,
                default: fields.string("Default")?,
            }
        }
        "Wait" => {
            allowed.extend([
                "Seconds",
                "Timestamp",
                "SecondsPath",
                "TimestampPath",
                "Output",
            ]);
            let kind = Kind::Wait {
                seconds: fields.number("Seconds")?,
                timestamp: fields.string("Timestamp")?,
                seconds_path: fields.string("SecondsPath")?,
                timestamp_path: fields.string("TimestampPath")?,
            };
            let given = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
                .iter()
                .filter(|k| original.contains_key(**k))
                .count();
            if given != 1 {
                return Err(fields.error("", "a Wait state has exactly one of Seconds, Timestamp, SecondsPath, TimestampPath"));
            }
            if let Kind::Wait {
                timestamp: Some(t), ..
            } = &kind
                && chrono::DateTime::parse_from_rfc3339(t).is_err()
            {
                return Err(fields.error("Timestamp", "is an RFC 3339 timestamp"));
            }
            kind
        }
        "Succeed" => {
            allowed.push("Output");
            Kind::Succeed
        }
        "Fail" => {
            allowed = vec![
                "Type",
                "Comment",
                "Error",
                "Cause",
                "ErrorPath",
                "CausePath",
                "QueryLanguage",
            ];
            if jsonata {
                for field in ["ErrorPath", "CausePath"] {
                    if map.contains_key(field) {
                        return Err(fields.error(
                            field,
                            "is a JSONPath field; a JSONata Fail state gives Error and Cause, as expressions if need be",
                        ));
                    }
                }
            }
            Kind::Fail {
                error: fields.string("Error")?,
                cause: fields.string("Cause")?,
                error_path: fields.string("ErrorPath")?,
                cause_path: fields.string("CausePath")?,
            }
        }
        "Parallel" => {
            allowed.extend([
                "Branches",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "Arguments",
                "Output",
            ]);
            let branches = map
                .get("Branches")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| fields.error("Branches", "is a non-empty array"))?;
            Kind::Parallel {
                branches: branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| parse_machine(b, &format!("{pointer}/Branches/{i}"), jsonata))
                    .collect::<Result<_, _>>()?,
            }
        }
        "Map" => {
            allowed.extend([
                "ItemProcessor",
                "Iterator",
                "ItemsPath",
                "ItemSelector",
                "Parameters",
                "MaxConcurrency",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "ToleratedFailurePercentage",
                "ToleratedFailureCount",
                "Label",
                "Items",
                "ItemReader",
                "ItemBatcher",
                "ResultWriter",
                "MaxConcurrencyPath",
                "ToleratedFailurePercentagePath",
                "ToleratedFailureCountPath",
                "Output",
            ]);
            let (key, processor) = match (map.get("ItemProcessor"), map.get("Iterator")) {
                (Some(p), _) => ("ItemProcessor", p),
                (None, Some(p)) => ("Iterator", p),
                (None, None) => return Err(fields.error("ItemProcessor", "is required")),
            };
            let percentage = fields.number("ToleratedFailurePercentage")?;
            if percentage.is_some_and(|p| p > 100.0) {
                return Err(fields.error("ToleratedFailurePercentage", "is between 0 and 100"));
            }
            let processor = parse_machine(processor, &format!("{pointer}/{key}"), jsonata)?;
            for field in ["ItemReader", "ItemBatcher", "ResultWriter"] {
                if map.contains_key(field) && !processor.distributed {
                    return Err(fields.error(
                        field,
                        format!(
                            "belongs to a distributed Map: set \"ProcessorConfig\": {{\"Mode\": \"DISTRIBUTED\"}} in its {key}"
                        ),
                    ));
                }
            }
            if let Some(reader) = map.get("ItemReader") {
                support::check_item_reader(reader, &format!("{pointer}/ItemReader"))?;
            }
            if let Some(writer) = map.get("ResultWriter") {
                support::check_result_writer(writer, &format!("{pointer}/ResultWriter"))?;
            }
            Kind::Map {
                processor: Box::new(processor),
                items_path: fields.path("ItemsPath")?,
                item_selector: map
                    .get("ItemSelector")
                    .or_else(|| map.get("Parameters"))
                    .cloned(),
                max_concurrency: fields.number("MaxConcurrency")?.unwrap_or(0.0) as u32,
                max_concurrency_path: fields.string("MaxConcurrencyPath")?,
                tolerated_failure_percentage: percentage,
                tolerated_failure_count: fields.number("ToleratedFailureCount")?.map(|c| c as u64),
                run: Box::new(MapRun {
                    tolerated_failure_paths: (
                        fields.string("ToleratedFailureCountPath")?,
                        fields.string("ToleratedFailurePercentagePath")?,
                    ),
                    item_reader: map.get("ItemReader").cloned(),
                    item_batcher: map.get("ItemBatcher").cloned(),
                    result_writer: map.get("ResultWriter").cloned(),
                }),
            }
        }
        other => return Err(fields.error("Type", format!("unknown state type {other:?}"))),
    };
    if !jsonata {
        allowed.retain(|f| !["Arguments", "Output", "Items"].contains(f));
    }
    fields.only(&allowed)?;
    let end = map.get("End").and_then(Value::as_bool).unwrap_or(false);
    let next = fields.string("Next")?;
    if terminal {
        if next.is_some() || map.contains_key("End") {
            return Err(fields.error(
                if next.is_some() { "Next" } else { "End" },
                format!("a {type_name} state has neither Next nor End"),
            ));
        }
    } else if next.is_some() == end {
        return Err(fields.error("Next", "a state has exactly one of Next and End: true"));
    }
    let (retry, catch) = handlers::parse(map, pointer, jsonata)?;
    Ok(State {
        name: name.to_owned(),
        kind,
        next,
        input_path: fields.path("InputPath")?,
        output_path: fields.path("OutputPath")?,
        result_path: fields.path("ResultPath")?,
        parameters: map.get("Parameters").cloned(),
        result_selector: map.get("ResultSelector").cloned(),
        assign: map.get("Assign").cloned(),
        retry,
        catch,
        jsonata: jsonata.then(|| {
            Box::new(Jsonata {
                arguments: map.get("Arguments").cloned(),
                output: map.get("Output").cloned(),
                items: map.get("Items").cloned(),
                expressions,
            })
        }),
    })
}

#[cfg(test)]
mod tests;
