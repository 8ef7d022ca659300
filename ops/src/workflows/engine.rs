//! Starting, advancing, stopping and redriving executions. [`Engine::advance`] is one step:
//! decide (run the state with the interpreter), then commit, then say what runs next.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::callbacks::{Wait, deadline};
use super::chain::then_pure_states;
pub use super::names::check_name;
use super::running::Beating;
pub use super::running::RUNNING_BEAT;
use super::store::{self, Execution, ExecutionStatus, StepUpdate, earliest};
use super::{Error, Resources};
use asl::definition::{Kind, StateMachine};
use asl::run::{
    Callback, Event, ExecutionInfo, FanoutKind, MAX_HISTORY_EVENTS, Position, StateStep,
    SystemClock, VirtualClock, history_limit, run_state,
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

/// A machine in a workflow's definition: the top one (an empty path), or a branch's or an item
/// processor's, by (state, branch) from the top.
type MachinePath = Vec<(String, usize)>;

/// Parsed definitions by (workflow, version, machine): versions never change once stored.
type Definitions = std::sync::Arc<
    std::sync::Mutex<
        std::collections::HashMap<(String, i64, MachinePath), std::sync::Arc<StateMachine>>,
    >,
>;

/// What drives executions: the catalog's pool, the operations the jobs call and the Task
/// resources this process runs.
#[derive(Clone)]
pub struct Engine {
    pub ops: crate::Ops,
    pub pool: sqlx::AnyPool,
    resources: std::sync::Arc<dyn Resources>,
    definitions: Definitions,
    /// How often a running step says it still runs ([`RUNNING_BEAT`]).
    running_beat: Duration,
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
            running_beat: RUNNING_BEAT,
        }
    }

    /// The engine with running steps beating every `every` instead of [`RUNNING_BEAT`] (tests
    /// that sweep with a short stall).
    pub fn with_running_beat(self, every: Duration) -> Self {
        Self {
            running_beat: every,
            ..self
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
        path: &[(String, usize)],
    ) -> Result<std::sync::Arc<StateMachine>, Error> {
        let key = (workflow.to_owned(), version, path.to_vec());
        if let Some(machine) = self.definitions.lock().expect("not poisoned").get(&key) {
            return Ok(machine.clone());
        }
        let machine = match path.split_last() {
            None => {
                let (_, definition) = store::workflow(&self.pool, workflow, Some(version)).await?;
                std::sync::Arc::new(StateMachine::parse(&definition)?)
            }
            Some(((state, branch), outer)) => {
                let outer = Box::pin(self.machine(workflow, version, outer)).await?;
                let nested = match outer.states.get(state).map(|s| &s.kind) {
                    Some(Kind::Parallel { branches }) => branches.get(*branch),
                    Some(Kind::Map { processor, .. }) => Some(processor.as_ref()),
                    _ => None,
                };
                let nested = nested.ok_or_else(|| {
                    Error::Invalid(format!(
                        "workflow {workflow} version {version} has no branch {branch} of a Parallel or Map state {state:?}"
                    ))
                })?;
                std::sync::Arc::new(nested.clone())
            }
        };
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

    /// Runs one step; returns what to enqueue next: the execution's next step, the children
    /// it started, the parent its end woke (nothing: it ended or waits, or the task was a
    /// duplicate or stale).
    pub async fn advance(&self, task: &StepTask) -> Result<Vec<Next>, Error> {
        let execution = store::execution(&self.pool, &task.execution).await?;
        if execution.status != ExecutionStatus::Running || execution.step != task.step {
            return Ok(Vec::new());
        }
        // A retry delivered before it is due (the stall sweep re-enqueues waiting steps) waits.
        let now = chrono::Utc::now().timestamp_millis();
        if execution.retry_attempts.is_some()
            && execution.entered_at > now
            && execution.waiting_run.is_none()
        {
            return Ok(vec![Next {
                task: task.clone(),
                delay: Duration::from_millis((execution.entered_at - now) as u64),
            }]);
        }
        let machine = self
            .machine(
                &execution.workflow,
                execution.version,
                &execution.machine_path,
            )
            .await?;
        let children = match &execution.waiting_run {
            Some(run) => match store::run_status(&self.pool, run).await?.as_str() {
                // The children still run (this is a stale or early delivery): the child whose
                // end decides the run wakes this step; the execution's timeout still ends it.
                "RUNNING" => match deadline(&machine, &execution) {
                    Some(due) if due <= now => None,
                    due => {
                        return Ok(due
                            .map(|due| Next {
                                task: task.clone(),
                                delay: Duration::from_millis((due - now).max(0) as u64),
                            })
                            .into_iter()
                            .collect());
                    }
                },
                _ => Some(store::run_children(&self.pool, run).await?),
            },
            None => None,
        };
        let callback = match &execution.callback_token {
            Some(token) => match self.callback_wait(&machine, &execution, token).await? {
                Wait::Answered(answer) => Some(Callback::Answered(answer)),
                // The state fails the execution, uncaught, as it runs.
                Wait::ExecutionTimedOut => None,
                // Still waiting: look again when the wait runs out (an answer enqueues sooner).
                Wait::Waiting(due) => {
                    return Ok(due
                        .map(|delay| Next {
                            task: task.clone(),
                            delay,
                        })
                        .into_iter()
                        .collect());
                }
            },
            None if children.is_some() => None,
            None => self.issue(&machine, &execution).await?,
        };
        // A child shows its root execution as `$$.Execution`.
        let (execution_input, started_at_ms, root_name) = match &execution.context {
            Some(root) => (
                root["input"].clone(),
                root["started_at"].as_i64().unwrap_or(execution.started_at),
                root["name"].as_str().unwrap_or(&execution.name).to_owned(),
            ),
            None => (
                execution.input.clone(),
                execution.started_at,
                execution.name.clone(),
            ),
        };
        let position = Position {
            execution_input,
            started_at_ms,
            state: execution.state.clone(),
            input: execution.state_input.clone(),
            variables: execution.variables.clone(),
            attempts: execution.retry_attempts.clone(),
            callback,
            map_item: execution.map_item.clone(),
            children,
        };
        let info = ExecutionInfo {
            name: root_name,
            state_machine: execution.workflow.clone(),
        };
        let is_wait = machine
            .states
            .get(&execution.state)
            .is_some_and(|s| matches!(s.kind, Kind::Wait { .. }));
        // Where a fan-out's children start: each branch's StartAt, or the item processor's.
        let starts: Vec<String> = match machine.states.get(&execution.state).map(|s| &s.kind) {
            Some(Kind::Parallel { branches }) => {
                branches.iter().map(|b| b.start_at.clone()).collect()
            }
            Some(Kind::Map { processor, .. }) => vec![processor.start_at.clone()],
            _ => Vec::new(),
        };
        let ops = self.ops.clone();
        let resources = self.resources.clone();
        let handle = tokio::runtime::Handle::current();
        let entered_at = execution.entered_at;
        let execution_deadline = deadline(&machine, &execution);
        let beat = Beating::start(self.pool.clone(), task.clone(), self.running_beat);
        let ran = tokio::task::spawn_blocking(move || {
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
        .await;
        drop(beat);
        let (step, waited_until) = ran?;
        let now = chrono::Utc::now().timestamp_millis();
        if let Some(until) = waited_until
            && until > now
        {
            let delay = Duration::from_millis((until - now) as u64);
            return Ok(vec![Next {
                task: task.clone(),
                delay,
            }]);
        }
        // Step Functions' limit on a history: the step that would pass it fails the execution. A
        // Map that fans out will record two events per iteration when it resumes (its
        // iterations' own events are in their histories): one too large fails now.
        let recorded = store::event_count(&self.pool, &task.execution).await?;
        let resume = match &step.fanout {
            Some(fanout) if fanout.kind == FanoutKind::Map => 2 * fanout.children.len() as i64 + 2,
            _ => 0,
        };
        let step = if recorded + step.events.len() as i64 + resume + 1 > MAX_HISTORY_EVENTS {
            let mut events = step.events;
            events.truncate((MAX_HISTORY_EVENTS - recorded - 1).max(0) as usize);
            StateStep {
                events,
                result: Err(history_limit()),
                retrying: None,
                waiting: None,
                fanout: None,
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
            _ if step.fanout.is_some() => (
                StepUpdate::Fanout {
                    run: store::RunStart {
                        parent: &execution,
                        step: task.step,
                        state: &execution.state,
                        starts,
                        variables: &execution.variables,
                    },
                    fanout: step.fanout.expect("checked"),
                },
                None,
            ),
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
        let fanned_out = matches!(update, StepUpdate::Fanout { .. });
        let Some(woken) = store::commit_step(
            &self.pool, &execution, task.step, entered_at, &events, update,
        )
        .await?
        else {
            return Ok(Vec::new());
        };
        let next = |delay| Next {
            task: StepTask {
                execution: task.execution.clone(),
                step: task.step + 1,
            },
            delay,
        };
        let mut steps: Vec<Next> = woken
            .into_iter()
            .map(|(execution, step)| Next {
                task: StepTask { execution, step },
                delay: Duration::ZERO,
            })
            .collect();
        if let Some(token) = waiting_for {
            // The answer may have come while the job ran: then resume at once.
            let stored = store::task_token(&self.pool, &token).await?;
            let due = match stored.answer() {
                Some(_) => Some(now),
                None => earliest(stored.due_at, execution_deadline),
            };
            steps.extend(due.map(|due| next(Duration::from_millis((due - now).max(0) as u64))));
        } else if fanned_out {
            // The children wake this step when they end; the execution's timeout, if sooner.
            steps.extend(
                execution_deadline
                    .map(|due| next(Duration::from_millis((due - now).max(0) as u64))),
            );
        } else {
            steps.extend(delay.map(next));
        }
        Ok(steps)
    }

    /// Stops a running execution, with the children its Parallel and Map states run.
    pub async fn stop(&self, id: &str) -> Result<(), Error> {
        refuse_child(&store::execution(&self.pool, id).await?, "stop")?;
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

    /// Redrives a failed execution from its failed state with the workflow's latest version;
    /// in a Parallel or Map, only the branches or iterations that did not succeed run again.
    pub async fn redrive(&self, id: &str) -> Result<Vec<Next>, Error> {
        let execution = store::execution(&self.pool, id).await?;
        refuse_child(&execution, "redrive")?;
        let (version, definition) = store::workflow(&self.pool, &execution.workflow, None).await?;
        self.runnable(&definition)?;
        match store::redrive(&self.pool, id, version).await? {
            Some(steps) => Ok(steps
                .into_iter()
                .map(|(execution, step)| Next {
                    task: StepTask { execution, step },
                    delay: Duration::ZERO,
                })
                .collect()),
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

/// A child (a Parallel's branch, a Map's iteration) is stopped and redriven through its parent:
/// its run counts its end, and a redrive of the parent reruns the children that did not succeed.
fn refuse_child(execution: &Execution, action: &str) -> Result<(), Error> {
    match &execution.parent_id {
        Some(parent) => Err(Error::Invalid(format!(
            "execution {} is a branch or iteration of execution {parent}: {action} the parent instead ({action} reaches its children)",
            execution.id
        ))),
        None => Ok(()),
    }
}
