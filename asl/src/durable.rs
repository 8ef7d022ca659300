//! The durable executor's hold on the one top-level state a step runs: what a step hands back
//! instead of waiting in the worker. A due retry is handed back ([`Retrying`]: the executor runs
//! the state again after the delay), and so is a callback task (`.waitForTaskToken`) once its
//! job has submitted the work ([`Waiting`]: the execution waits for its token, holding no
//! worker, and a later step resumes the state with the answer, [`Callback::Answered`]). So are a
//! Parallel's branches and a Map's iterations ([`Fanout`]): each runs as an execution of its
//! own, step by step on whichever worker takes it, and the state resumes with how each ended
//! ([`ChildResult`]).

use serde_json::{Value, json};

use super::Failure;
use super::definition::State;
use super::run::Runner;

/// The suffix of a callback Task's resource: the job runs, then the state waits for its token.
pub const CALLBACK_SUFFIX: &str = ".waitForTaskToken";

/// The job a callback resource runs (`sluice:approval.waitForTaskToken` → `sluice:approval`);
/// None for a plain resource.
pub fn callback_base(resource: &str) -> Option<&str> {
    resource.strip_suffix(CALLBACK_SUFFIX)
}

pub(super) struct Durable {
    /// The state's name (names are unique across a whole state machine).
    pub(super) state: String,
    /// Its retriers' attempts so far, when the step resumes it (after a retry or a callback).
    pub(super) resumed: Option<Vec<u32>>,
    /// Set when a retry is due: the step ends, and the executor runs the state again later.
    pub(super) retrying: Option<Retrying>,
    /// A callback task's token for this step, or the answer it is resumed with.
    pub(super) callback: Option<Callback>,
    /// Set when a callback task's job has submitted the work: the step ends, waiting.
    pub(super) waiting: Option<Waiting>,
    /// Set when a Parallel or Map hands its branches or iterations back: the step ends.
    pub(super) fanout: Option<Fanout>,
    /// How the branches or iterations a fan-out started ended, when the step resumes it.
    pub(super) children: Option<Fanned>,
}

impl Durable {
    pub(super) fn new(
        state: &str,
        resumed: Option<Vec<u32>>,
        callback: Option<Callback>,
        children: Option<Fanned>,
    ) -> Self {
        Self {
            state: state.to_owned(),
            resumed,
            retrying: None,
            callback,
            waiting: None,
            fanout: None,
            children,
        }
    }
}

/// What a fan-out's children are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutKind {
    /// A Parallel's branches: child `i` runs branch `i` on the state's input.
    Parallel,
    /// An inline Map's iterations: every child runs the item processor on its item.
    Map,
    /// A distributed Map's child executions (a Map Run): the item processor on an item or a batch.
    Distributed,
}

impl FanoutKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parallel => "PARALLEL",
            Self::Map => "MAP",
            Self::Distributed => "DISTRIBUTED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "PARALLEL" => Self::Parallel,
            "MAP" => Self::Map,
            "DISTRIBUTED" => Self::Distributed,
            _ => return None,
        })
    }
}

/// A Parallel's branches or a Map's iterations handed back to the durable executor: each runs
/// as an execution of its own (its machine the branch or the item processor), on any worker,
/// and the state resumes once they have ended ([`ChildResult`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Fanout {
    pub kind: FanoutKind,
    pub children: Vec<ChildStart>,
    /// At most this many children run at once (0: all of them).
    pub max_concurrency: u64,
    /// The failures the state tolerates (a Map's `ToleratedFailureCount` and
    /// `ToleratedFailurePercentage`; none: the first failure fails it).
    pub tolerated_count: Option<u64>,
    pub tolerated_percentage: Option<f64>,
    /// The state's retriers' attempts so far, to resume it with.
    pub attempts: Vec<u32>,
}

/// One child of a fan-out.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildStart {
    /// The Parallel's branch it runs (0 for a Map's iterations).
    pub branch: usize,
    pub input: Value,
    /// What `$$.Map.Item` shows inside it.
    pub map_item: Option<(usize, Value)>,
}

/// A fan-out's run, ended: its id and its children, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fanned {
    pub run: String,
    pub children: Vec<ChildResult>,
}

/// How one child of a fan-out ended: None when it did not run to an end (the fan-out failed
/// before it started, or it was stopped).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChildResult {
    pub execution: String,
    pub name: String,
    pub input: Value,
    pub result: Option<Result<Value, Failure>>,
    pub redrive_count: i64,
    /// Milliseconds since the epoch.
    pub started_at: i64,
    pub stopped_at: Option<i64>,
}

/// Whether `failed` failures of `total` children are within what a state tolerates: none
/// without a threshold, else within the count or the percentage (either suffices).
pub fn tolerated(
    failed: u64,
    total: u64,
    tolerated_count: Option<u64>,
    tolerated_percentage: Option<f64>,
) -> bool {
    failed == 0
        || tolerated_count.is_some_and(|c| failed <= c)
        || tolerated_percentage.is_some_and(|p| failed as f64 * 100.0 <= p * total as f64)
}

/// A retry handed back to the durable executor: run the state again after `delay_ms`, with
/// these attempts counted per retrier.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrying {
    pub delay_ms: i64,
    pub attempts: Vec<u32>,
}

/// A callback task's side of a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Callback {
    /// The step runs the task: the token its job gets as `$$.Task.Token`.
    Issued(String),
    /// The token was answered (`SendTaskSuccess`, `SendTaskFailure`) or ran out of time
    /// (`States.Timeout`, `States.HeartbeatTimeout`): the task's result.
    Answered(Result<Value, Failure>),
}

/// A callback task whose job has run: the execution waits for `token`.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub token: String,
    /// The task's effective input (what the job was given, and an approver is asked).
    pub input: Value,
    /// The state's retriers' attempts so far, to resume it with.
    pub attempts: Vec<u32>,
}

/// The error a step's work stops with while a retry is handed back; never an execution's.
pub(super) const RETRY_HANDED_BACK: &str = "Sluice.RetryHandedBack";
/// The error a step's work stops with while a callback task waits; never an execution's.
pub(super) const CALLBACK_HANDED_BACK: &str = "Sluice.CallbackHandedBack";
/// The error a step's work stops with while its branches or iterations run; never an execution's.
pub(super) const FANOUT_HANDED_BACK: &str = "Sluice.FanoutHandedBack";

impl Runner<'_> {
    /// The durable hold on `state`: only the step's own top-level state, never a state of a
    /// machine nested in it (a distributed Map's children run in-process).
    fn hold(&mut self, state: &State) -> Option<&mut Durable> {
        if self.depth > 0 {
            return None;
        }
        self.durable.as_mut().filter(|d| d.state == state.name)
    }

    /// Whether the state is the top-level state of a durable step (its branches, iterations,
    /// retries and waits are handed back rather than run or slept through here).
    pub(super) fn holds(&mut self, state: &State) -> bool {
        self.hold(state).is_some()
    }

    /// The children's ends a fan-out resumes with (None: the state is entered afresh).
    pub(super) fn fanned(&mut self, state: &State) -> Option<Fanned> {
        self.hold(state)?.children.take()
    }

    /// Hands a fan-out back to the durable executor: the error the state's work stops with.
    pub(super) fn fan_out(&mut self, state: &State, fanout: Fanout) -> Failure {
        if let Some(durable) = self.hold(state) {
            durable.fanout = Some(fanout);
        }
        Failure::new(FANOUT_HANDED_BACK, "the branches or iterations run")
    }

    /// Records the retriers' attempts on a fan-out being handed back.
    pub(super) fn fanned_out_with(&mut self, state: &State, attempts: &[u32]) {
        if let Some(fanout) = self.hold(state).and_then(|d| d.fanout.as_mut()) {
            fanout.attempts = attempts.to_vec();
        }
    }

    /// The attempts a top-level state's retriers start from: those of the step being resumed.
    pub(super) fn resumed_attempts(&mut self, state: &State) -> Option<Vec<u32>> {
        self.hold(state)?.resumed.take()
    }

    /// Hands a due retry of the top-level state back to the durable executor (true), or leaves
    /// it to be slept through here (false: in-process runs, and states inside Parallel or Map).
    pub(super) fn hand_back_retry(
        &mut self,
        state: &State,
        delay_ms: i64,
        attempts: &[u32],
    ) -> bool {
        match self.hold(state) {
            Some(durable) => {
                durable.retrying = Some(Retrying {
                    delay_ms,
                    attempts: attempts.to_vec(),
                });
                true
            }
            None => false,
        }
    }

    /// The token a callback state's context shows as `$$.Task.Token`.
    pub(super) fn task_token(&self, state: &str) -> Option<&str> {
        match self.durable.as_ref().filter(|d| d.state == state)?.callback {
            Some(Callback::Issued(ref token)) => Some(token),
            _ => None,
        }
    }

    /// A callback Task resumed with its token's answer: the answer is its result (None: the
    /// step runs the task afresh).
    pub(super) fn answered(&mut self, state: &State) -> Option<Result<Value, Failure>> {
        let name = state.name.as_str();
        let answer = match self.hold(state)?.callback.take() {
            Some(Callback::Answered(answer)) => answer,
            other => {
                self.hold(state)?.callback = other;
                return None;
            }
        };
        match &answer {
            Ok(output) => self.event("TaskSucceeded", Some(name), json!({"output": output})),
            Err(failure) => self.task_failed("Task", name, failure),
        }
        Some(answer)
    }

    /// A callback Task (`<job>.waitForTaskToken`) entered afresh: its job runs on `input` (which
    /// holds the token where the definition put it), then the step hands the wait back to the
    /// executor.
    pub(super) fn submit(
        &mut self,
        state: &State,
        resource: &str,
        input: &Value,
        run_job: impl FnOnce(&mut Self) -> Result<Value, Failure>,
    ) -> Result<Value, Failure> {
        let name = state.name.as_str();
        let Some(token) = self.task_token(name).map(str::to_owned) else {
            return Err(Failure::runtime(format!(
                "the callback task {name:?} ({resource}) needs a durable execution: start the workflow (sluice workflow start) rather than running it in-process"
            )));
        };
        self.event(
            "TaskScheduled",
            Some(name),
            json!({"resource": resource, "input": input}),
        );
        self.event("TaskStarted", Some(name), json!({}));
        match run_job(self) {
            Ok(output) => {
                self.event("TaskSubmitted", Some(name), json!({"output": output}));
                if let Some(durable) = self.hold(state) {
                    durable.waiting = Some(Waiting {
                        token,
                        input: input.clone(),
                        attempts: Vec::new(),
                    });
                }
                Err(Failure::new(
                    CALLBACK_HANDED_BACK,
                    "the task waits for its token",
                ))
            }
            Err(failure) => {
                self.task_failed("Task", name, &failure);
                Err(failure)
            }
        }
    }

    /// Records the retriers' attempts on a wait being handed back (the state resumes with them).
    pub(super) fn waiting_with(&mut self, state: &State, attempts: &[u32]) {
        if let Some(waiting) = self.hold(state).and_then(|d| d.waiting.as_mut()) {
            waiting.attempts = attempts.to_vec();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::Failure;
    use super::super::definition::StateMachine;
    use super::super::run::{
        Callback, ExecutionInfo, Position, StateStep, TestTasks, VirtualClock, run, run_state,
    };

    fn info() -> ExecutionInfo {
        ExecutionInfo {
            name: "t".into(),
            state_machine: "t".into(),
        }
    }

    fn step(definition: &Value, callback: Callback, attempts: Option<Vec<u32>>) -> StateStep {
        let machine = StateMachine::parse(definition).unwrap();
        let position = Position {
            execution_input: json!({}),
            started_at_ms: 0,
            state: "Ask".into(),
            input: json!({"q": 1}),
            variables: serde_json::Map::new(),
            attempts,
            callback: Some(callback),
            map_item: None,
            children: None,
        };
        run_state(
            &machine,
            &position,
            &info(),
            &mut TestTasks,
            &mut VirtualClock::starting_at(0),
        )
    }

    #[test]
    fn the_job_gets_the_token_in_either_language_and_the_step_waits() {
        for (language, arguments) in [
            (
                "JSONPath",
                json!({"Parameters": {"token.$": "$$.Task.Token", "q.$": "$.q"}}),
            ),
            (
                "JSONata",
                json!({"QueryLanguage": "JSONata",
                "Arguments": {"token": "{% $states.context.Task.Token %}", "q": "{% $states.input.q %}"}}),
            ),
        ] {
            let mut definition = json!({"StartAt": "Ask", "States": {"Ask": {
                "Type": "Task", "Resource": "sluice:echo.waitForTaskToken", "End": true}}});
            definition["States"]["Ask"]
                .as_object_mut()
                .unwrap()
                .extend(arguments.as_object().unwrap().clone());
            let waited = step(&definition, Callback::Issued("tok".into()), None);
            let waiting = waited.waiting.expect(language);
            assert_eq!(waiting.token, "tok");
            assert_eq!(waiting.input, json!({"token": "tok", "q": 1}), "{language}");
            assert!(waited.result.is_err(), "{language}: the state is not left");
            let kinds: Vec<&str> = waited.events.iter().map(|e| e.kind.as_str()).collect();
            assert_eq!(
                kinds,
                [
                    "TaskStateEntered",
                    "TaskScheduled",
                    "TaskStarted",
                    "TaskSubmitted"
                ],
                "{language}"
            );

            // Resumed with the answer: no second Entered event, the answer is the result.
            let resumed = step(
                &definition,
                Callback::Answered(Ok(json!({"yes": true}))),
                Some(waiting.attempts),
            );
            let (output, next) = resumed.result.expect(language);
            assert_eq!((output, next), (json!({"yes": true}), None), "{language}");
            let kinds: Vec<&str> = resumed.events.iter().map(|e| e.kind.as_str()).collect();
            assert_eq!(kinds, ["TaskSucceeded", "TaskStateExited"], "{language}");
        }
    }

    #[test]
    fn a_timed_out_wait_is_recorded_as_such_and_caught() {
        let definition = json!({"StartAt": "Ask", "States": {
            "Ask": {"Type": "Task", "Resource": "sluice:echo.waitForTaskToken", "HeartbeatSeconds": 5,
                    "Catch": [{"ErrorEquals": ["States.HeartbeatTimeout"], "Next": "Late"}], "End": true},
            "Late": {"Type": "Pass", "End": true}}});
        let resumed = step(
            &definition,
            Callback::Answered(Err(Failure::new("States.HeartbeatTimeout", "no heartbeat"))),
            Some(vec![]),
        );
        let (output, next) = resumed.result.unwrap();
        assert_eq!(next.as_deref(), Some("Late"));
        assert_eq!(output["Error"], "States.HeartbeatTimeout");
        assert!(resumed.events.iter().any(|e| e.kind == "TaskTimedOut"));
    }

    #[test]
    fn a_callback_run_in_process_fails_with_why() {
        let definition = json!({"StartAt": "Ask", "States": {"Ask": {
            "Type": "Task", "Resource": "sluice:echo.waitForTaskToken", "End": true}}});
        let machine = StateMachine::parse(&definition).unwrap();
        let outcome = run(
            &machine,
            json!({}),
            &info(),
            &mut TestTasks,
            &mut VirtualClock::starting_at(0),
        );
        let failure = outcome.failure.unwrap();
        assert_eq!(failure.error, "States.Runtime");
        assert!(
            failure.cause.contains("needs a durable execution"),
            "{}",
            failure.cause
        );
    }
}
