//! A distributed Map (`ProcessorConfig.Mode: DISTRIBUTED`), as Step Functions runs one: a Map
//! Run (`MapRunStarted`, `MapRunSucceeded` or `MapRunFailed` in the parent's history) whose items
//! come from the state's input or an `ItemReader` over the lake (a JSON array, JSON lines, CSV
//! with its header row or given headers, or a listing), grouped by an `ItemBatcher`, each item or
//! batch a child execution whose events are its own, within the tolerated failures. Also the
//! `ToleratedFailure*Path` fields, which inline Maps read too.

use serde_json::{Map, Value, json};

use super::Failure;
use super::definition::{State, StateMachine};
use super::durable::{ChildStart, Fanned, Fanout, FanoutKind};
use super::jsonata::{self, Bindings};
use super::paths::{Scope, payload, query};
use super::run::{Runner, iso};

/// The most items a reader yields (Step Functions' `MaxItems` ceiling).
const MAX_ITEMS: u64 = 100_000_000;

fn reader_failed(cause: impl Into<String>) -> Failure {
    Failure::new("States.ItemReaderFailed", cause)
}

/// A value read by a `*Path` field, as Step Functions shows it in errors.
fn shown(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// A JSON number, or a string holding one.
fn number(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// CSV rows as objects: by the first row's headers, or by `given` ones; a missing field is "",
/// an extra one dropped.
fn csv_items(
    bytes: &[u8],
    given: Option<Vec<String>>,
    delimiter: u8,
) -> Result<Vec<Value>, Failure> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(bytes);
    let mut rows = reader.records();
    let headers: Vec<String> = match given {
        Some(headers) => headers,
        None => match rows.next() {
            Some(row) => row
                .map_err(|e| reader_failed(format!("CSV header row: {e}")))?
                .iter()
                .map(str::to_owned)
                .collect(),
            None => return Ok(Vec::new()),
        },
    };
    rows.map(|row| {
        let row = row.map_err(|e| reader_failed(format!("CSV: {e}")))?;
        Ok(Value::Object(
            headers
                .iter()
                .enumerate()
                .map(|(i, h)| (h.clone(), json!(row.get(i).unwrap_or(""))))
                .collect(),
        ))
    })
    .collect()
}

impl Runner<'_> {
    /// `ToleratedFailureCountPath` and `ToleratedFailurePercentagePath`, read from the state's
    /// effective input (a literal stays when its path is absent).
    pub(super) fn tolerated_from_paths(
        paths: &(Option<String>, Option<String>),
        literal: (Option<u64>, Option<f64>),
        input: &Value,
        scope: Scope<'_>,
    ) -> Result<(Option<u64>, Option<f64>), Failure> {
        let (mut count, mut percentage) = literal;
        if let Some(path) = &paths.0 {
            let value = query(path, input, scope)?;
            let integer = number(&value).filter(|n| n.fract() == 0.0).ok_or_else(|| {
                Failure::runtime(format!(
                    "The ToleratedFailureCountPath field refers to value \"{}\" which is not a valid integer: {path}",
                    shown(&value)
                ))
            })?;
            if integer < 0.0 {
                return Err(Failure::runtime(
                    "ToleratedFailureCount cannot be negative.",
                ));
            }
            count = Some(integer as u64);
        }
        if let Some(path) = &paths.1 {
            let value = query(path, input, scope)?;
            let float = number(&value).ok_or_else(|| {
                Failure::runtime(format!(
                    "The ToleratedFailurePercentagePath field refers to value \"{}\" which is not a valid float: {path}",
                    shown(&value)
                ))
            })?;
            if !(0.0..=100.0).contains(&float) {
                return Err(Failure::runtime(
                    "ToleratedFailurePercentage must be between 0 and 100.",
                ));
            }
            percentage = Some(float);
        }
        Ok((count, percentage))
    }

    /// A field of a distributed Map's reader or batcher: a JSONata expression, a JSONPath
    /// `*Path` twin, or a literal.
    fn setting(
        &mut self,
        state: &State,
        config: &Value,
        field: &str,
        input: &Value,
        variables: &Map<String, Value>,
        context: &Value,
    ) -> Result<Option<Value>, Failure> {
        if let Some(path) = config.get(format!("{field}Path")).and_then(Value::as_str) {
            let scope = Scope { context, variables };
            return Ok(Some(query(path, input, scope)?));
        }
        match config.get(field) {
            Some(value) if state.jsonata.is_some() => {
                let states = jsonata::states(input, context);
                let bindings = Bindings {
                    states: &states,
                    variables,
                };
                Ok(Some(self.jsonata_value(
                    &state.name,
                    value,
                    field,
                    bindings,
                )?))
            }
            other => Ok(other.cloned()),
        }
    }

    /// An `ItemReader`'s or a `ResultWriter`'s `Arguments` (JSONata) or `Parameters` (JSONPath)
    /// over the state's input: what names the objects it reads or writes.
    pub(super) fn resource_arguments(
        &mut self,
        state: &State,
        (field, holder): (&str, &Value),
        input: &Value,
        variables: &Map<String, Value>,
        context: &Value,
    ) -> Result<Value, Failure> {
        Ok(match (holder.get("Arguments"), holder.get("Parameters")) {
            (Some(arguments), _) => {
                let states = jsonata::states(input, context);
                let bindings = Bindings {
                    states: &states,
                    variables,
                };
                let what = format!("{field}/Arguments");
                self.jsonata_value(&state.name, arguments, &what, bindings)?
            }
            (None, Some(parameters)) => payload(parameters, input, Scope { context, variables })?,
            (None, None) => json!({}),
        })
    }

    /// The items an `ItemReader` reads from the lake.
    fn read_items(
        &mut self,
        state: &State,
        reader: &Value,
        input: &Value,
        variables: &Map<String, Value>,
        context: &Value,
    ) -> Result<Vec<Value>, Failure> {
        let config = reader.get("ReaderConfig").cloned().unwrap_or(json!({}));
        let arguments =
            self.resource_arguments(state, ("ItemReader", reader), input, variables, context)?;
        let max_items = match self.setting(state, &config, "MaxItems", input, variables, context)? {
            None => MAX_ITEMS,
            Some(value) => match number(&value) {
                Some(n) if n < 0.0 => return Err(reader_failed("field MaxItems must be positive")),
                Some(0.0) => MAX_ITEMS,
                Some(n) => (n as u64).min(MAX_ITEMS),
                None => {
                    return Err(reader_failed(format!(
                        "field MaxItems is not a number: {}",
                        shown(&value)
                    )));
                }
            },
        };
        let text = |field: &str| arguments.get(field).and_then(Value::as_str).unwrap_or("");
        let bucket = text("Bucket");
        if bucket.is_empty() {
            return Err(reader_failed("the ItemReader names no Bucket"));
        }
        let resource = reader.get("Resource").and_then(Value::as_str).unwrap_or("");
        let mut items = if resource.ends_with(":listObjectsV2") {
            self.tasks
                .list_objects(bucket, text("Prefix"))
                .map_err(reader_failed)?
                .into_iter()
                .map(|o| {
                    json!({"Etag": o.etag, "LastModified": iso(o.last_modified), "Key": o.key,
                           "Size": o.size, "StorageClass": "STANDARD"})
                })
                .collect()
        } else {
            let key = text("Key");
            let bytes = self.tasks.get_object(bucket, key).map_err(reader_failed)?;
            let what = format!("s3://{bucket}/{key}");
            match config
                .get("InputType")
                .and_then(Value::as_str)
                .unwrap_or("JSON")
            {
                "CSV" => {
                    let given = match config.get("CSVHeaderLocation").and_then(Value::as_str) {
                        Some("GIVEN") => Some(
                            config
                                .get("CSVHeaders")
                                .and_then(Value::as_array)
                                .map(|h| h.iter().map(shown).collect())
                                .ok_or_else(|| {
                                    reader_failed("CSVHeaderLocation GIVEN needs CSVHeaders")
                                })?,
                        ),
                        _ => None,
                    };
                    let delimiter = match config.get("CSVDelimiter").and_then(Value::as_str) {
                        Some("PIPE") => b'|',
                        Some("SEMICOLON") => b';',
                        Some("SPACE") => b' ',
                        Some("TAB") => b'\t',
                        _ => b',',
                    };
                    csv_items(&bytes, given, delimiter)?
                }
                "PARQUET" => self
                    .tasks
                    .parquet_rows(bytes, usize::try_from(max_items).unwrap_or(usize::MAX))
                    .map_err(|e| reader_failed(format!("{what}: {e}")))?,
                "JSONL" => String::from_utf8_lossy(&bytes)
                    .lines()
                    .enumerate()
                    .filter(|(_, line)| !line.trim().is_empty())
                    .map(|(i, line)| {
                        serde_json::from_str(line).map_err(|e| {
                            reader_failed(format!("{what} line {}: not JSON: {e}", i + 1))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                _ => match serde_json::from_slice(&bytes) {
                    Ok(Value::Array(items)) => items,
                    Ok(_) => return Err(reader_failed(format!("{what} is not a JSON array"))),
                    Err(e) => return Err(reader_failed(format!("{what} is not JSON: {e}"))),
                },
            }
        };
        items.truncate(usize::try_from(max_items).unwrap_or(usize::MAX));
        Ok(items)
    }

    /// Items grouped as an `ItemBatcher` says: `{"Items": [...], "BatchInput"?: ...}` each.
    fn batches(
        &mut self,
        state: &State,
        batcher: &Value,
        items: Vec<Value>,
        input: &Value,
        variables: &Map<String, Value>,
        context: &Value,
    ) -> Result<Vec<Value>, Failure> {
        let limit = |value: Option<Value>, field: &str| -> Result<Option<usize>, Failure> {
            match value {
                None => Ok(None),
                Some(value) => match number(&value) {
                    Some(n) if n >= 1.0 => Ok(Some(n as usize)),
                    _ => Err(Failure::runtime(format!(
                        "ItemBatcher {field} must be a positive integer, not {}",
                        shown(&value)
                    ))),
                },
            }
        };
        let per_batch = self.setting(
            state,
            batcher,
            "MaxItemsPerBatch",
            input,
            variables,
            context,
        )?;
        let per_batch = limit(per_batch, "MaxItemsPerBatch")?.unwrap_or(usize::MAX);
        let bytes = self.setting(
            state,
            batcher,
            "MaxInputBytesPerBatch",
            input,
            variables,
            context,
        )?;
        let bytes = limit(bytes, "MaxInputBytesPerBatch")?.unwrap_or(usize::MAX);
        let batch_input = match (batcher.get("BatchInput"), state.jsonata.is_some()) {
            (None, _) => None,
            (Some(value), true) => {
                let states = jsonata::states(input, context);
                let bindings = Bindings {
                    states: &states,
                    variables,
                };
                Some(self.jsonata_value(&state.name, value, "ItemBatcher/BatchInput", bindings)?)
            }
            (Some(value), false) => Some(payload(value, input, Scope { context, variables })?),
        };
        let mut batches: Vec<Vec<Value>> = Vec::new();
        let mut size = 0;
        for item in items {
            let item_size = item.to_string().len();
            match batches.last_mut() {
                Some(batch) if batch.len() < per_batch && size + item_size <= bytes => {
                    size += item_size;
                    batch.push(item);
                }
                _ => {
                    size = item_size;
                    batches.push(vec![item]);
                }
            }
        }
        Ok(batches
            .into_iter()
            .map(|items| {
                let mut batch = json!({"Items": items});
                if let Some(batch_input) = &batch_input {
                    batch["BatchInput"] = batch_input.clone();
                }
                batch
            })
            .collect())
    }

    /// A distributed Map's run: `items` (or what its reader reads), batched, each a child
    /// execution of `processor` whose events are its own; the outputs in item order.
    #[allow(
        clippy::too_many_arguments,
        reason = "the Map's parts, read once by its caller"
    )]
    pub(super) fn map_run(
        &mut self,
        state: &State,
        processor: &StateMachine,
        (items, fanned, max_concurrency): (Vec<Value>, Option<Fanned>, u64),
        (reader, batcher, writer): (Option<&Value>, Option<&Value>, Option<&Value>),
        input: &Value,
        variables: &Map<String, Value>,
        context: &Value,
        tolerated: (Option<u64>, Option<f64>),
        select: &mut dyn FnMut(&mut Self, usize, &Value) -> Result<Value, Failure>,
    ) -> Result<Value, Failure> {
        let name = state.name.as_str();
        if let Some(fanned) = fanned {
            let outcome = self.map_run_ended(state, &fanned, tolerated);
            return match writer {
                Some(writer) => {
                    let written = (writer, &fanned);
                    let details = self.write_results(state, written, input, variables, context)?;
                    outcome.map(|_| details)
                }
                None => outcome,
            };
        }
        self.event("MapRunStarted", Some(name), json!({}));
        let prepared = (|| {
            let items = match reader {
                Some(reader) => self.read_items(state, reader, input, variables, context)?,
                None => items,
            };
            match batcher {
                Some(batcher) => self.batches(state, batcher, items, input, variables, context),
                None => Ok(items),
            }
        })();
        let items = match prepared {
            Ok(items) => items,
            Err(failure) => {
                self.event(
                    "MapRunFailed",
                    Some(name),
                    json!({"error": failure.error, "cause": failure.cause}),
                );
                return Err(failure);
            }
        };
        let (count, percentage) = tolerated;
        if self.holds(state) {
            let mut children = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                children.push(ChildStart {
                    branch: 0,
                    input: select(self, index, item)?,
                    map_item: Some((index, item.clone())),
                });
            }
            return Err(self.fan_out(
                state,
                Fanout {
                    kind: FanoutKind::Distributed,
                    children,
                    max_concurrency,
                    tolerated_count: count,
                    tolerated_percentage: percentage,
                    attempts: Vec::new(),
                },
            ));
        }
        let mut outputs = Vec::with_capacity(items.len());
        let mut failed = 0_u64;
        let mut first_failure = None;
        for (index, item) in items.iter().enumerate() {
            let child_input = select(self, index, item)?;
            let mut child_variables = variables.clone();
            let map_item = (index, item.clone());
            let (result, _child_events) = self.child(|runner| {
                runner.machine(
                    processor,
                    child_input,
                    &mut child_variables,
                    Some(&map_item),
                )
            });
            match result {
                Ok(output) => outputs.push(output),
                Err(failure) => {
                    failed += 1;
                    outputs.push(json!({"Error": failure.error, "Cause": failure.cause}));
                    first_failure.get_or_insert(failure);
                }
            }
        }
        let total = items.len() as u64;
        self.map_run_outcome(state, (outputs, total), failed, first_failure, tolerated)
    }
}
