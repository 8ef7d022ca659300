//! Parallel branches and Map iterations: each runs a nested state machine over the state's
//! input (a branch) or one item (an iteration), with its own copy of the variables. In a durable
//! step they are handed back instead ([`Fanout`]): each runs as an execution of its own, and the
//! state resumes with how they ended.

use serde_json::{Map, Value, json};

use super::Failure;
use super::definition::{Kind, PathField, State, StateMachine};
use super::durable::{ChildResult, ChildStart, Fanned, Fanout, FanoutKind, tolerated};
use super::paths::{Scope, payload, query};
use super::run::{Runner, iso};

/// The first failure among ended children, in their order.
fn first_failure(children: &[ChildResult]) -> Option<&Failure> {
    children
        .iter()
        .find_map(|c| c.result.as_ref().and_then(|r| r.as_ref().err()))
}

/// A child that did not run to an end while the state did not fail: it was stopped.
fn unfinished(children: &[ChildResult]) -> Option<Failure> {
    children.iter().find(|c| c.result.is_none()).map(|c| {
        Failure::runtime(format!(
            "the child execution {} did not run to its end",
            c.execution
        ))
    })
}

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
        let fanned = self.fanned(state);
        if fanned.is_none() {
            self.event("ParallelStateStarted", Some(name), json!({}));
        }
        if let Some(Fanned { children, .. }) = fanned {
            if let Some(failure) = first_failure(&children) {
                return Err(failure.clone());
            }
            if let Some(failure) = unfinished(&children) {
                return Err(failure);
            }
            let outputs = children.into_iter().filter_map(|c| c.result?.ok());
            return Ok(Value::Array(outputs.collect()));
        }
        if self.holds(state) {
            let children = (0..branches.len()).map(|branch| ChildStart {
                branch,
                input: input.clone(),
                map_item: map_item.cloned(),
            });
            return Err(self.fan_out(
                state,
                Fanout {
                    kind: FanoutKind::Parallel,
                    children: children.collect(),
                    max_concurrency: 0,
                    tolerated_count: None,
                    tolerated_percentage: None,
                    attempts: Vec::new(),
                },
            ));
        }
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
            max_concurrency,
            max_concurrency_path,
            run,
            ..
        } = &state.kind
        else {
            unreachable!("called for Map states")
        };
        let fanned = self.fanned(state);
        let mut max_concurrency = u64::from(*max_concurrency);
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
                if let Some(limit) =
                    self.jsonata_number(state, fields, "MaxConcurrency", None, bindings)?
                {
                    max_concurrency = limit as u64;
                }
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
        if let Some(path) = max_concurrency_path
            && state.jsonata.is_none()
        {
            // Checked to be an integer as the state began (body.rs).
            let value = query(path, input, scope).unwrap_or(Value::Null);
            max_concurrency = value
                .as_u64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
        }
        if fanned.is_none() {
            self.event(
                "MapStateStarted",
                Some(name),
                json!({"length": items.len()}),
            );
        }
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
                (items, fanned, max_concurrency),
                (
                    item_reader.as_ref(),
                    item_batcher.as_ref(),
                    run.result_writer.as_ref(),
                ),
                input,
                variables,
                context,
                (tolerated_failure_count, tolerated_failure_percentage),
                &mut |runner, index, item| runner.item_input(state, input, variables, index, item),
            )?;
            self.event("MapStateSucceeded", Some(name), json!({}));
            return Ok(output);
        }
        if let Some(Fanned { children, .. }) = fanned {
            return self.map_ended(
                state,
                children,
                (tolerated_failure_count, tolerated_failure_percentage),
            );
        }
        if self.holds(state) {
            let mut children = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                children.push(ChildStart {
                    branch: 0,
                    input: self.item_input(state, input, variables, index, item)?,
                    map_item: Some((index, item.clone())),
                });
            }
            return Err(self.fan_out(
                state,
                Fanout {
                    kind: FanoutKind::Map,
                    children,
                    max_concurrency,
                    tolerated_count: tolerated_failure_count,
                    tolerated_percentage: tolerated_failure_percentage,
                    attempts: Vec::new(),
                },
            ));
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

    /// An inline Map resumed with how its iterations ended: their events in item order, then
    /// its output, or its failure (the first iteration's, or the threshold's when it has one).
    fn map_ended(
        &mut self,
        state: &State,
        children: Vec<ChildResult>,
        (count, percentage): (Option<u64>, Option<f64>),
    ) -> Result<Value, Failure> {
        let name = state.name.as_str();
        let total = children.len() as u64;
        let mut failed = 0_u64;
        let mut outputs = Vec::with_capacity(children.len());
        for (index, child) in children.iter().enumerate() {
            let Some(result) = &child.result else {
                continue;
            };
            self.event(
                "MapIterationStarted",
                Some(name),
                json!({"index": index, "execution": child.execution}),
            );
            match result {
                Ok(output) => {
                    self.event("MapIterationSucceeded", Some(name), json!({"index": index}));
                    outputs.push(output.clone());
                }
                Err(failure) => {
                    self.event("MapIterationFailed", Some(name), json!({"index": index}));
                    failed += 1;
                    outputs.push(json!({"Error": failure.error, "Cause": failure.cause}));
                }
            }
        }
        if !tolerated(failed, total, count, percentage) {
            let first = first_failure(&children).expect("a failure was counted");
            return Err(if count.is_some() || percentage.is_some() {
                Failure::new(
                    "States.ExceedToleratedFailureThreshold",
                    "The specified tolerated failure threshold was exceeded",
                )
            } else {
                first.clone()
            });
        }
        if let Some(failure) = unfinished(&children) {
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

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
