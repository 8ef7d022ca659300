//! Starting, advancing, stopping and redriving executions. [`Engine::advance`] is one step:
//! decide (run the state with the interpreter), then commit, then say what runs next.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::callbacks::{Wait, deadline};
use super::store::{self, Execution, ExecutionStatus, StepUpdate, earliest};
use super::{Error, Resources};
use asl::definition::{Kind, StateMachine};
use asl::run::{
    Callback, Event, ExecutionInfo, MAX_HISTORY_EVENTS, Position, StateStep, SystemClock,
    VirtualClock, history_limit, run_state,
};

/// The queue's payload: run step `step` of an execution. A persisted format: fields are only added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTask {
    pub execution: String,
    pub step: i64,
}

/// What to enqueue after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    pub task: StepTask,
    pub delay: Duration,
}

/// Parsed definitions by (workflow, version): versions never change once stored.
type Definitions = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<(String, i64), std::sync::Arc<StateMachine>>>,
>;

/// What drives executions: the catalog's pool, the operations the jobs call and the Task
/// resources this process runs.
#[derive(Clone)]
pub struct Engine {
    pub ops: crate::Ops,
    pub pool: sqlx::AnyPool,
    resources: std::sync::Arc<dyn Resources>,
    definitions: Definitions,
}

impl Engine {
    pub fn new(
        ops: crate::Ops,
        pool: sqlx::AnyPool,
        resources: std::sync::Arc<dyn Resources>,
    ) -> Self {
        Self {
            ops,
            pool,
            resources,
            definitions: Definitions::default(),
        }
    }

    /// Parses a definition and checks that this process runs each of its Task resources.
    pub fn runnable(&self, definition: &Value) -> Result<StateMachine, Error> {
        Ok(self.resources.runnable(&self.ops, definition)?)
    }

    async fn machine(
        &self,
        workflow: &str,
        version: i64,
    ) -> Result<std::sync::Arc<StateMachine>, Error> {
        let key = (workflow.to_owned(), version);
        if let Some(machine) = self.definitions.lock().expect("not poisoned").get(&key) {
            return Ok(machine.clone());
        }
        let (_, definition) = store::workflow(&self.pool, workflow, Some(version)).await?;
        let machine = std::sync::Arc::new(StateMachine::parse(&definition)?);
        self.definitions
            .lock()
            .expect("not poisoned")
            .insert(key, machine.clone());
        Ok(machine)
    }

    /// Starts an execution of a workflow's latest version; returns it and the first step to
    /// enqueue. A name starts one execution, as in Step Functions: starting it again returns
    /// the execution (and no step) while it runs with the same input, and is refused
    /// otherwise ([`Error::AlreadyExists`]).
    pub async fn start(
        &self,
        workflow: &str,
        input: Value,
        name: Option<String>,
    ) -> Result<(Execution, Option<Next>), Error> {
        let (version, definition) = store::workflow(&self.pool, workflow, None).await?;
        let machine = self.runnable(&definition)?;
        let name = name.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        check_name(&name)?;
        let (execution, created) = store::insert_execution(
            &self.pool,
            workflow,
            version,
            &name,
            &input,
            &machine.start_at,
        )
        .await?;
        if !created && (execution.status != ExecutionStatus::Running || execution.input != input) {
            return Err(Error::AlreadyExists {
                workflow: workflow.to_owned(),
                name,
                id: execution.id,
                status: execution.status.to_string(),
            });
        }
        let next = created.then(|| Next {
            task: StepTask {
                execution: execution.id.clone(),
                step: 0,
            },
            delay: Duration::ZERO,
        });
        Ok((execution, next))
    }

    /// Runs one step; returns what to enqueue next (None: the execution ended, or the task was
    /// a duplicate or stale).
    pub async fn advance(&self, task: &StepTask) -> Result<Option<Next>, Error> {
        let execution = store::execution(&self.pool, &task.execution).await?;
        if execution.status != ExecutionStatus::Running || execution.step != task.step {
            return Ok(None);
        }
        // A retry delivered before it is due (the stall sweep re-enqueues waiting steps) waits.
        let now = chrono::Utc::now().timestamp_millis();
        if execution.retry_attempts.is_some() && execution.entered_at > now {
            return Ok(Some(Next {
                task: task.clone(),
                delay: Duration::from_millis((execution.entered_at - now) as u64),
            }));
        }
        let machine = self.machine(&execution.workflow, execution.version).await?;
        let callback = match &execution.callback_token {
            Some(token) => match self.callback_wait(&machine, &execution, token).await? {
                Wait::Answered(answer) => Some(Callback::Answered(answer)),
                // The state fails the execution, uncaught, as it runs.
                Wait::ExecutionTimedOut => None,
                // Still waiting: look again when the wait runs out (an answer enqueues sooner).
                Wait::Waiting(due) => {
                    return Ok(due.map(|delay| Next {
                        task: task.clone(),
                        delay,
                    }));
                }
            },
            None => self.issue(&machine, &execution).await?,
        };
        let position = Position {
            execution_input: execution.input.clone(),
            started_at_ms: execution.started_at,
            state: execution.state.clone(),
            input: execution.state_input.clone(),
            variables: execution.variables.clone(),
            attempts: execution.retry_attempts.clone(),
            callback,
        };
        let info = ExecutionInfo {
            name: execution.name.clone(),
            state_machine: execution.workflow.clone(),
        };
        let is_wait = machine
            .states
            .get(&execution.state)
            .is_some_and(|s| matches!(s.kind, Kind::Wait { .. }));
        let ops = self.ops.clone();
        let resources = self.resources.clone();
        let handle = tokio::runtime::Handle::current();
        let entered_at = execution.entered_at;
        let execution_deadline = deadline(&machine, &execution);
        let (step, waited_until) = tokio::task::spawn_blocking(move || {
            let mut tasks = resources.runner(&ops, handle);
            if is_wait {
                // A Wait runs on a clock frozen at its entry: its end is known without sleeping.
                let mut clock = VirtualClock::starting_at(entered_at);
                let step = run_state(&machine, &position, &info, tasks.as_mut(), &mut clock);
                (step, Some(clock.now_ms))
            } else {
                let first = run_state(&machine, &position, &info, tasks.as_mut(), &mut SystemClock);
                (then_pure_states(&machine, &position, &info, first), None)
            }
        })
        .await?;
        let now = chrono::Utc::now().timestamp_millis();
        if let Some(until) = waited_until
            && until > now
        {
            let delay = Duration::from_millis((until - now) as u64);
            return Ok(Some(Next {
                task: task.clone(),
                delay,
            }));
        }
        // Step Functions' limit on a history: the step that would pass it fails the execution.
        let recorded = store::event_count(&self.pool, &task.execution).await?;
        let step = if recorded + step.events.len() as i64 + 1 > MAX_HISTORY_EVENTS {
            let mut events = step.events;
            events.truncate((MAX_HISTORY_EVENTS - recorded - 1).max(0) as usize);
            StateStep {
                events,
                result: Err(history_limit()),
                retrying: None,
                waiting: None,
                variables: step.variables,
            }
        } else {
            step
        };
        let mut events = step.events;
        // The next step and its delay; a retry is a step of its own, due after its backoff, so
        // no worker waits through it.
        let waiting_for = step.waiting.as_ref().map(|w| w.token.clone());
        let (update, delay) = match (step.retrying, step.result) {
            _ if step.waiting.is_some() => {
                let waiting = step.waiting.expect("checked");
                (
                    StepUpdate::Wait {
                        token: waiting.token,
                        input: waiting.input,
                        attempts: waiting.attempts,
                    },
                    None,
                )
            }
            (Some(retrying), _) => (
                StepUpdate::Retry {
                    attempts: retrying.attempts,
                    due_at: now + retrying.delay_ms.max(0),
                },
                Some(Duration::from_millis(retrying.delay_ms.max(0) as u64)),
            ),
            (None, Ok((output, Some(next)))) => (
                StepUpdate::Advance {
                    state: next,
                    input: output,
                    variables: step.variables,
                },
                Some(Duration::ZERO),
            ),
            (None, Ok((output, None))) => {
                events.push(Event::execution(
                    "ExecutionSucceeded",
                    serde_json::json!({"output": output}),
                ));
                let update = StepUpdate::Succeed {
                    output,
                    variables: step.variables,
                };
                (update, None)
            }
            (None, Err(failure)) => {
                events.push(Event::execution(
                    "ExecutionFailed",
                    serde_json::json!({"error": failure.error, "cause": failure.cause}),
                ));
                let update = StepUpdate::Fail {
                    failure,
                    variables: step.variables,
                };
                (update, None)
            }
        };
        let committed = store::commit_step(
            &self.pool,
            &task.execution,
            task.step,
            entered_at,
            &events,
            update,
        )
        .await?;
        let next = |delay| Next {
            task: StepTask {
                execution: task.execution.clone(),
                step: task.step + 1,
            },
            delay,
        };
        if let (Some(token), true) = (waiting_for, committed) {
            // The answer may have come while the job ran: then resume at once.
            let stored = store::task_token(&self.pool, &token).await?;
            let due = match stored.answer() {
                Some(_) => Some(now),
                None => earliest(stored.due_at, execution_deadline),
            };
            return Ok(due.map(|due| next(Duration::from_millis((due - now).max(0) as u64))));
        }
        Ok(delay.filter(|_| committed).map(next))
    }

    /// Stops a running execution.
    pub async fn stop(&self, id: &str) -> Result<(), Error> {
        if !store::abort(&self.pool, id).await? {
            let execution = store::execution(&self.pool, id).await?;
            return Err(Error::WrongStatus {
                id: id.to_owned(),
                status: execution.status.to_string(),
                action: "stop",
                needed: "RUNNING",
            });
        }
        Ok(())
    }

    /// Redrives a failed execution from its failed state with the workflow's latest version.
    pub async fn redrive(&self, id: &str) -> Result<Next, Error> {
        let execution = store::execution(&self.pool, id).await?;
        let (version, definition) = store::workflow(&self.pool, &execution.workflow, None).await?;
        self.runnable(&definition)?;
        match store::redrive(&self.pool, id, version).await? {
            Some(step) => Ok(Next {
                task: StepTask {
                    execution: id.to_owned(),
                    step,
                },
                delay: Duration::ZERO,
            }),
            None => Err(Error::WrongStatus {
                id: id.to_owned(),
                status: execution.status.to_string(),
                action: "redrive",
                needed: "FAILED",
            }),
        }
    }

    /// Steps of running executions that have not moved for `stall`: to enqueue again.
    pub async fn sweep(&self, stall: Duration) -> Result<Vec<Next>, Error> {
        let before = chrono::Utc::now().timestamp_millis() - stall.as_millis() as i64;
        Ok(store::stalled(&self.pool, before)
            .await?
            .into_iter()
            .map(|(execution, step)| Next {
                task: StepTask { execution, step },
                delay: Duration::ZERO,
            })
            .collect())
    }
}

/// At most this many events in one step's commit (pure states chained after a state).
const CHAIN_EVENTS: usize = 200;

/// Runs the pure states (Pass, Choice, Succeed, Fail) that follow a step's state in the same
/// step, so that they commit together with it: running one again after a crash only repeats
/// its arithmetic, and the history is the same. A Task, Parallel, Map or Wait state is always
/// a step of its own.
fn then_pure_states(
    machine: &StateMachine,
    position: &Position,
    info: &ExecutionInfo,
    mut step: StateStep,
) -> StateStep {
    loop {
        let (Ok((output, Some(next))), None, None) = (&step.result, &step.retrying, &step.waiting)
        else {
            return step;
        };
        let pure = machine.states.get(next).is_some_and(|s| {
            matches!(
                s.kind,
                Kind::Pass { .. } | Kind::Choice { .. } | Kind::Succeed | Kind::Fail { .. }
            )
        });
        if !pure || step.events.len() > CHAIN_EVENTS {
            return step;
        }
        let at = Position {
            state: next.clone(),
            input: output.clone(),
            variables: step.variables.clone(),
            attempts: None,
            callback: None,
            ..position.clone()
        };
        // Pure states run no task: the test runner stands in for the real one.
        let more = run_state(
            machine,
            &at,
            info,
            &mut asl::run::TestTasks,
            &mut SystemClock,
        );
        step.events.extend(more.events);
        step = StateStep {
            events: step.events,
            ..more
        };
    }
}

/// Step Functions' rules for an execution name: 1 to 80 characters, none of them whitespace,
/// a bracket, a wildcard, a control character or one of `" # % \ ^ | ~ ` $ & , ; : /`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let count = name.chars().count();
    if count == 0 || count > 80 {
        return Err(Error::Invalid(format!(
            "execution name {name:?}: 1 to 80 characters, not {count}"
        )));
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_whitespace()
            || c.is_control()
            || ('\u{7f}'..='\u{9f}').contains(c)
            || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(*c)
    }) {
        return Err(Error::Invalid(format!(
            "execution name {name:?}: {c:?} is not allowed (no whitespace, brackets, wildcards, control characters or \" # % \\ ^ | ~ ` $ & , ; : /)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn execution_names_follow_step_functions_rules() {
        for good in [
            "nightly@2024-05-30T00-00-00Z",
            "run-1",
            "a_b.c",
            &"x".repeat(80),
        ] {
            assert!(super::check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a:b",
            "a*",
            "{x}",
            "tab\t",
            "\u{85}",
            &"x".repeat(81),
        ] {
            assert!(super::check_name(bad).is_err(), "{bad:?}");
        }
    }
}
