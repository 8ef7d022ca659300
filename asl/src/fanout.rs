//! Parallel branches and Map iterations: each runs a nested state machine over the state's
//! input (a branch) or one item (an iteration), with its own copy of the variables.

use serde_json::{Map, Value, json};

use super::Failure;
use super::definition::{Kind, PathField, State, StateMachine};
use super::paths::{Scope, payload, query};
use super::run::{Runner, iso};

impl Runner<'_> {
    /// A Parallel state's work: every branch on the same input; the outputs, in branch order.
    pub(super) fn parallel(
        &mut self,
        state: &State,
        branches: &[StateMachine],
        input: &Value,
        variables: &mut Map<String, Value>,
        context: &Value,
        map_item: Option<&(usize, Value)>,
    ) -> Result<Value, Failure> {
        let scope = Scope { context, variables };
        let name = state.name.as_str();
        let input = match (&state.jsonata, &state.parameters) {
            (Some(fields), _) => {
                self.jsonata_arguments(state, fields, input, variables, context)?
            }
            (None, Some(parameters)) => payload(parameters, input, scope)?,
            (None, None) => input.clone(),
        };
        self.event("ParallelStateStarted", Some(name), json!({}));
        let mut outputs = Vec::with_capacity(branches.len());
        for branch in branches {
            let mut branch_variables = variables.clone();
            match self.machine(branch, input.clone(), &mut branch_variables, map_item) {
                Ok(output) => outputs.push(output),
                Err(failure) => return Err(failure),
            }
        }
        Ok(Value::Array(outputs))
    }

    /// A Map state's work: the item processor over each item, within the tolerated failures
    /// (a distributed Map's items are child executions, `distributed.rs`).
    pub(super) fn map(
        &mut self,
        state: &State,
        input: &Value,
        variables: &mut Map<String, Value>,
        context: &Value,
    ) -> Result<Value, Failure> {
        let Kind::Map {
            processor,
            items_path,
            tolerated_failure_percentage,
            tolerated_failure_count,
            run,
            ..
        } = &state.kind
        else {
            unreachable!("called for Map states")
        };
        let (item_reader, item_batcher) = (&run.item_reader, &run.item_batcher);
        let scope = Scope { context, variables };
        let name = state.name.as_str();
        let (items, tolerated_failure_count, tolerated_failure_percentage) = match &state.jsonata {
            Some(fields) => {
                let states = super::jsonata::states(input, context);
                let bindings = super::jsonata::Bindings {
                    states: &states,
                    variables,
                };
                let items = match item_reader {
                    Some(_) => Vec::new(),
                    None => self.jsonata_items(state, fields, input, bindings)?,
                };
                let count = self.jsonata_number(
                    state,
                    fields,
                    "ToleratedFailureCount",
                    tolerated_failure_count.map(|c| c as f64),
                    bindings,
                )?;
                let percentage = self.jsonata_number(
                    state,
                    fields,
                    "ToleratedFailurePercentage",
                    *tolerated_failure_percentage,
                    bindings,
                )?;
                self.jsonata_number(state, fields, "MaxConcurrency", None, bindings)?;
                (items, count.map(|c| c as u64), percentage)
            }
            // Items an ItemReader reads are read in the Map Run.
            None if item_reader.is_some() => (
                Vec::new(),
                *tolerated_failure_count,
                *tolerated_failure_percentage,
            ),
            None => {
                let items = match items_path {
                    PathField::Default | PathField::Null => input.clone(),
                    PathField::Path(path) => query(path, input, scope)?,
                };
                let items = items.as_array().cloned().ok_or_else(|| {
                    Failure::runtime(format!("Map items are not an array: {items}"))
                })?;
                (
                    items,
                    *tolerated_failure_count,
                    *tolerated_failure_percentage,
                )
            }
        };
        self.event(
            "MapStateStarted",
            Some(name),
            json!({"length": items.len()}),
        );
        let (tolerated_failure_count, tolerated_failure_percentage) = Self::tolerated_from_paths(
            &run.tolerated_failure_paths,
            (tolerated_failure_count, tolerated_failure_percentage),
            input,
            scope,
        )?;
        if processor.distributed {
            let output = self.map_run(
                state,
                processor,
                items,
                (item_reader.as_ref(), item_batcher.as_ref()),
                input,
                variables,
                context,
                (tolerated_failure_count, tolerated_failure_percentage),
                &mut |runner, index, item| runner.item_input(state, input, variables, index, item),
            )?;
            self.event("MapStateSucceeded", Some(name), json!({}));
            return Ok(output);
        }
        let (tolerated_failure_count, tolerated_failure_percentage) =
            (&tolerated_failure_count, &tolerated_failure_percentage);
        let mut outputs = Vec::with_capacity(items.len());
        let mut failures = 0_u64;
        let mut last_failure = None;
        for (index, item) in items.iter().enumerate() {
            let map_item = (index, item.clone());
            let item_input = self.item_input(state, input, variables, index, item)?;
            self.check_history()?;
            self.event("MapIterationStarted", Some(name), json!({"index": index}));
            let mut item_variables = variables.clone();
            match self.machine(processor, item_input, &mut item_variables, Some(&map_item)) {
                Ok(output) => {
                    self.event("MapIterationSucceeded", Some(name), json!({"index": index}));
                    outputs.push(output);
                }
                Err(failure) => {
                    self.event("MapIterationFailed", Some(name), json!({"index": index}));
                    failures += 1;
                    outputs.push(json!({"Error": failure.error, "Cause": failure.cause}));
                    let tolerated = tolerated_failure_count.is_some_and(|c| failures <= c)
                        || tolerated_failure_percentage
                            .is_some_and(|p| failures as f64 * 100.0 <= p * items.len() as f64);
                    if !tolerated {
                        last_failure = Some(failure);
                        break;
                    }
                }
            }
        }
        if let Some(failure) = last_failure {
            let failure =
                if tolerated_failure_count.is_some() || tolerated_failure_percentage.is_some() {
                    Failure::new(
                        "States.ExceedToleratedFailureThreshold",
                        "The specified tolerated failure threshold was exceeded",
                    )
                } else {
                    failure
                };
            return Err(failure);
        }
        self.event("MapStateSucceeded", Some(name), json!({}));
        Ok(Value::Array(outputs))
    }

    /// An item's input: the `ItemSelector` (or `Parameters`) over it, or the item itself.
    fn item_input(
        &mut self,
        state: &State,
        input: &Value,
        variables: &Map<String, Value>,
        index: usize,
        item: &Value,
    ) -> Result<Value, Failure> {
        let Kind::Map { item_selector, .. } = &state.kind else {
            unreachable!("called for Map states")
        };
        let name = state.name.as_str();
        let map_item = (index, item.clone());
        let item_context = self.context(name, &iso(self.clock.now_ms()), Some(0), Some(&map_item));
        match (item_selector, &state.jsonata) {
            (Some(selector), Some(_)) => {
                let states = super::jsonata::states(input, &item_context);
                let bindings = super::jsonata::Bindings {
                    states: &states,
                    variables,
                };
                self.jsonata_value(name, selector, "ItemSelector", bindings)
            }
            (Some(selector), None) => payload(
                selector,
                input,
                Scope {
                    context: &item_context,
                    variables,
                },
            ),
            (None, _) => Ok(item.clone()),
        }
    }
}
