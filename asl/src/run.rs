//! Running an execution: states in order, with their input and output processing, Retry and
//! Catch, Parallel branches and Map iterations, producing the execution's history.
//!
//! Tasks run through an injected [`TaskRunner`] and time through a [`Clock`], so the same logic
//! serves tests (a virtual clock, no sleeping) and the durable executor.

use serde_json::{Map, Value, json};

use super::Failure;
use super::body::Step;
use super::definition::{Kind, State, StateMachine};
use super::durable::Durable;
pub use super::durable::{
    Callback, ChildResult, ChildStart, Fanned, Fanout, FanoutKind, Retrying, Waiting,
    callback_base, tolerated,
};
use super::paths::{Scope, payload};
pub use super::runtime::{
    Clock, Limits, ObjectEntry, ObjectTasks, SystemClock, TaskRunner, TestTasks, VirtualClock,
};

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
        }
    }
}

/// One history event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: String,
    pub state: Option<String>,
    pub details: Value,
}

impl Event {
    /// An event of the execution itself (`ExecutionStarted`, `ExecutionRedriven`, ...), of no state.
    pub fn execution(kind: &str, details: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            state: None,
            details,
        }
    }
}

/// A finished execution.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub output: Option<Value>,
    pub failure: Option<Failure>,
    pub events: Vec<Event>,
}

/// Names an execution: what `$$.Execution` and `$$.StateMachine` show.
#[derive(Debug, Clone)]
pub struct ExecutionInfo {
    pub name: String,
    pub state_machine: String,
}

/// The most a state's output may weigh, as in Step Functions.
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The most events an execution's history holds, as in Step Functions.
pub const MAX_HISTORY_EVENTS: i64 = 25_000;

/// The failure of an execution whose history would pass [`MAX_HISTORY_EVENTS`].
pub fn history_limit() -> Failure {
    Failure::runtime(format!(
        "The execution reached the limit of {MAX_HISTORY_EVENTS} events in its history; split the work (a Map over fewer items, or several executions)"
    ))
}

pub(super) struct Runner<'a> {
    pub(super) tasks: &'a mut dyn TaskRunner,
    pub(super) clock: &'a mut dyn Clock,
    events: Vec<Event>,
    pub(super) info: &'a ExecutionInfo,
    input: Value,
    start_time: String,
    /// The execution's `TimeoutSeconds`, as a time: no state starts after it.
    deadline_ms: Option<i64>,
    /// Durable execution: the top-level state's retries are handed back (see [`Retrying`])
    /// instead of slept through.
    pub(super) durable: Option<Durable>,
    /// An in-process run's history reached its limit: later events are not kept, and the
    /// execution fails at the next check.
    overflowed: bool,
    /// How deep in nested machines the runner is (0: the step's own state).
    pub(super) depth: usize,
}

/// A failure of a state, worded as Step Functions words it: the state and the event that
/// entered it, then what went wrong.
pub(super) fn state_error(error: &str, state: &str, entered_id: usize, message: &str) -> Failure {
    Failure::new(
        error,
        format!(
            "An error occurred while executing the state '{state}' (entered at the event id #{entered_id}). {message}"
        ),
    )
}

pub(super) fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    })
}

/// Runs an execution of `machine` on `input` to its end.
pub fn run(
    machine: &StateMachine,
    input: Value,
    info: &ExecutionInfo,
    tasks: &mut dyn TaskRunner,
    clock: &mut dyn Clock,
) -> Outcome {
    let start_time = iso(clock.now_ms());
    let deadline_ms = machine
        .timeout_seconds
        .map(|s| clock.now_ms() + (s * 1000.0) as i64);
    let mut runner = Runner {
        tasks,
        clock,
        events: Vec::new(),
        info,
        input: input.clone(),
        start_time,
        deadline_ms,
        durable: None,
        overflowed: false,
        depth: 0,
    };
    runner.event("ExecutionStarted", None, json!({"input": input}));
    let mut variables = Map::new();
    let result = runner.machine(machine, input, &mut variables, None);
    let result = result.and_then(|output| runner.check_history().map(|()| output));
    // The closing event is always kept: room for it is left under the limit.
    let (status, output, failure) = match result {
        Ok(output) => {
            runner.events.push(Event::execution(
                "ExecutionSucceeded",
                json!({"output": output}),
            ));
            (Status::Succeeded, Some(output), None)
        }
        Err(failure) => {
            runner.events.push(Event::execution(
                "ExecutionFailed",
                json!({"error": failure.error, "cause": failure.cause}),
            ));
            (Status::Failed, None, Some(failure))
        }
    };
    Outcome {
        status,
        output,
        failure,
        events: runner.events,
    }
}

/// Where an execution stands between two states (the durable executor's position).
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// The execution's own input (`$$.Execution.Input`) and start time.
    pub execution_input: Value,
    pub started_at_ms: i64,
    pub state: String,
    pub input: Value,
    pub variables: Map<String, Value>,
    /// The state's retriers' attempts when a retry or a callback resumes it (None: it is
    /// entered afresh).
    pub attempts: Option<Vec<u32>>,
    /// A callback task's token for this step, or the answer it resumes with.
    pub callback: Option<Callback>,
    /// What `$$.Map.Item` shows: set in an execution that is a Map's iteration.
    pub map_item: Option<(usize, Value)>,
    /// How the children of the state's fan-out ended, when the step resumes it.
    pub children: Option<Fanned>,
}

/// What running one state did: its events, and its output with the next state (None: the
/// execution ends), or the failure that ends the execution; or, with `retrying`, a retry to
/// run later, or with `waiting`, a callback task waiting for its token, or with `fanout`, the
/// branches or iterations to run as executions of their own (the state is neither left nor
/// failed).
pub struct StateStep {
    pub events: Vec<Event>,
    pub result: Result<(Value, Option<String>), Failure>,
    pub variables: Map<String, Value>,
    pub retrying: Option<Retrying>,
    pub waiting: Option<Waiting>,
    pub fanout: Option<Fanout>,
}

/// Runs one top-level state of `machine` from `position` (the durable executor's unit of work).
pub fn run_state(
    machine: &StateMachine,
    position: &Position,
    info: &ExecutionInfo,
    tasks: &mut dyn TaskRunner,
    clock: &mut dyn Clock,
) -> StateStep {
    let state = match machine.states.get(&position.state) {
        Some(state) => state,
        None => {
            return StateStep {
                events: Vec::new(),
                result: Err(Failure::runtime(format!(
                    "the workflow has no state {:?}",
                    position.state
                ))),
                variables: position.variables.clone(),
                retrying: None,
                waiting: None,
                fanout: None,
            };
        }
    };
    let mut runner = Runner {
        tasks,
        clock,
        events: Vec::new(),
        info,
        input: position.execution_input.clone(),
        start_time: iso(position.started_at_ms),
        deadline_ms: machine
            .timeout_seconds
            .map(|s| position.started_at_ms + (s * 1000.0) as i64),
        durable: Some(Durable::new(
            &position.state,
            position.attempts.clone(),
            position.callback.clone(),
            position.children.clone(),
        )),
        overflowed: false,
        depth: 0,
    };
    let mut variables = position.variables.clone();
    let past_deadline = runner
        .deadline_ms
        .is_some_and(|deadline| runner.clock.now_ms() > deadline);
    let result = if past_deadline {
        Err(Failure::new(
            "States.Timeout",
            "the execution ran past its TimeoutSeconds",
        ))
    } else {
        runner.state(
            state,
            position.input.clone(),
            &mut variables,
            position.map_item.as_ref(),
        )
    };
    let (retrying, waiting, fanout) = runner
        .durable
        .map_or((None, None, None), |d| (d.retrying, d.waiting, d.fanout));
    StateStep {
        events: runner.events,
        result,
        variables,
        retrying,
        waiting,
        fanout,
    }
}

impl Runner<'_> {
    pub(super) fn event(&mut self, kind: &str, state: Option<&str>, details: Value) {
        if self.durable.is_none() && self.events.len() as i64 >= MAX_HISTORY_EVENTS - 1 {
            self.overflowed = true;
            return;
        }
        self.events.push(Event {
            kind: kind.to_owned(),
            state: state.map(str::to_owned),
            details,
        });
    }

    pub(super) fn context(
        &self,
        state: &str,
        entered: &str,
        retry_count: Option<u32>,
        map_item: Option<&(usize, Value)>,
    ) -> Value {
        let mut context = json!({
            "Execution": {
                "Id": format!("arn:sluice:states:local:000000000000:execution:{}:{}", self.info.state_machine, self.info.name),
                "Input": self.input,
                "Name": self.info.name,
                "StartTime": self.start_time,
                "RoleArn": "arn:sluice:role:sluice",
                "RedriveCount": 0,
            },
            "State": {"EnteredTime": entered, "Name": state},
            "StateMachine": {"Id": format!("arn:sluice:states:local:000000000000:stateMachine:{}", self.info.state_machine), "Name": self.info.state_machine},
        });
        if let Some(count) = retry_count {
            context["State"]["RetryCount"] = json!(count);
        }
        if let Some((index, value)) = map_item {
            context["Map"] = json!({"Item": {"Index": index, "Value": value}});
        }
        context
    }

    pub(super) fn machine(
        &mut self,
        machine: &StateMachine,
        input: Value,
        variables: &mut Map<String, Value>,
        map_item: Option<&(usize, Value)>,
    ) -> Result<Value, Failure> {
        self.depth += 1;
        let result = self.nested_machine(machine, input, variables, map_item);
        self.depth -= 1;
        result
    }

    fn nested_machine(
        &mut self,
        machine: &StateMachine,
        input: Value,
        variables: &mut Map<String, Value>,
        map_item: Option<&(usize, Value)>,
    ) -> Result<Value, Failure> {
        let mut current = machine.start_at.clone();
        let mut raw = input;
        loop {
            if self
                .deadline_ms
                .is_some_and(|deadline| self.clock.now_ms() > deadline)
            {
                return Err(Failure::new(
                    "States.Timeout",
                    "the execution ran past its TimeoutSeconds",
                ));
            }
            let state = &machine.states[&current];
            let result = self.state(state, raw, variables, map_item)?;
            self.check_history()?;
            match result {
                (output, Some(next)) => {
                    raw = output;
                    current = next;
                }
                (output, None) => return Ok(output),
            }
        }
    }

    /// Runs one state; returns its output and the next state (None: the machine ends).
    pub(super) fn state(
        &mut self,
        state: &State,
        raw: Value,
        variables: &mut Map<String, Value>,
        map_item: Option<&(usize, Value)>,
    ) -> Result<(Value, Option<String>), Failure> {
        let type_name = state.kind.type_name();
        let name = state.name.as_str();
        let entered = iso(self.clock.now_ms());
        // A retry resumes the state it was entered in: no second Entered event.
        let resumed = self
            .durable
            .as_ref()
            .is_some_and(|d| d.state == name && d.resumed.is_some());
        if !resumed {
            self.event(
                &format!("{type_name}StateEntered"),
                Some(name),
                json!({"input": raw}),
            );
        }
        let entered_id = self.events.len();
        let retryable = matches!(
            state.kind,
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map { .. }
        );
        let mut context = self.context(name, &entered, retryable.then_some(0), map_item);
        if let Some(token) = self.task_token(name) {
            context["Task"] = json!({"Token": token});
        }
        let exited = format!("{type_name}StateExited");
        let outcome = self.body(state, &raw, variables, &context, map_item, entered_id);
        match outcome {
            Ok(Step::Next(output, next, assign_from)) => {
                if output.to_string().len() > MAX_PAYLOAD_BYTES {
                    return Err(Failure::new(
                        "States.DataLimitExceeded",
                        format!(
                            "The state/task '{name}' returned a result with a size exceeding the maximum number of bytes service limit."
                        ),
                    ));
                }
                if let Some(assign) = &state.assign
                    && state.jsonata.is_none()
                {
                    let values = payload(
                        assign,
                        &assign_from,
                        Scope {
                            context: &context,
                            variables,
                        },
                    )?;
                    if let Value::Object(values) = values {
                        variables.extend(values);
                    }
                }
                if !matches!(state.kind, Kind::Fail { .. }) {
                    self.event(&exited, Some(name), json!({"output": output}));
                }
                Ok((output, next))
            }
            Ok(Step::Caught(output, catcher)) => {
                if let Some(assign) = &catcher.assign
                    && state.jsonata.is_none()
                    && let Value::Object(values) = payload(
                        assign,
                        &output,
                        Scope {
                            context: &context,
                            variables,
                        },
                    )?
                {
                    variables.extend(values);
                }
                self.event(&exited, Some(name), json!({"output": output}));
                Ok((output, Some(catcher.next.clone())))
            }
            // Runtime errors name the state and the event that entered it, as Step Functions does.
            Err(failure)
                if (failure.error == "States.Runtime"
                    || failure.error == super::jsonata::ERROR)
                    && !failure.cause.starts_with("An error occurred") =>
            {
                Err(state_error(
                    &failure.error,
                    name,
                    entered_id,
                    &failure.cause,
                ))
            }
            Err(failure) => Err(failure),
        }
    }

    /// Runs `work` as a child execution's: the events it records are returned, not kept in
    /// this history.
    pub(super) fn child<T>(&mut self, work: impl FnOnce(&mut Self) -> T) -> (T, Vec<Event>) {
        let parent = std::mem::take(&mut self.events);
        let overflowed = std::mem::replace(&mut self.overflowed, false);
        let result = work(self);
        self.overflowed = overflowed;
        (result, std::mem::replace(&mut self.events, parent))
    }

    /// Records how a task ended in failure: `<prefix>TimedOut` for a timeout (`States.Timeout`,
    /// `States.HeartbeatTimeout`), `<prefix>Failed` otherwise, with the error and cause.
    pub(super) fn task_failed(&mut self, prefix: &str, state: &str, failure: &Failure) {
        let outcome = match failure.error.as_str() {
            "States.Timeout" | "States.HeartbeatTimeout" => "TimedOut",
            _ => "Failed",
        };
        self.event(
            &format!("{prefix}{outcome}"),
            Some(state),
            json!({"error": failure.error, "cause": failure.cause}),
        );
    }

    /// Fails once the history passes [`MAX_HISTORY_EVENTS`] (an in-process run's whole
    /// history; the durable executor checks each step against what is stored).
    pub(super) fn check_history(&self) -> Result<(), Failure> {
        if self.overflowed {
            return Err(history_limit());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
