//! Callback tasks on the engine's side: the token a step issues before its job runs, where a
//! waiting task stands (answered, timed out, or still waiting and until when), and the answers
//! and heartbeats `SendTask*` bring.

use std::time::Duration;

use serde_json::Value;

use super::Error;
use super::engine::{Engine, Next, StepTask};
use super::store::{self, Answer, Execution, ExecutionStatus, earliest};
use asl::definition::{Kind, State, StateMachine};
use asl::run::{Callback, callback_base};

impl Engine {
    /// Issues the token of a callback task about to run (None for any other state).
    pub(super) async fn issue(
        &self,
        machine: &StateMachine,
        execution: &Execution,
    ) -> Result<Option<Callback>, Error> {
        let Some(State {
            kind:
                Kind::Task {
                    resource,
                    timeout_seconds,
                    heartbeat_seconds,
                },
            ..
        }) = machine.states.get(&execution.state)
        else {
            return Ok(None);
        };
        if callback_base(resource).is_none() {
            return Ok(None);
        }
        let ms = |seconds: &Option<f64>| seconds.map(|s| (s * 1000.0) as i64);
        let token = store::issue_token(
            &self.pool,
            &execution.id,
            execution.step,
            &execution.state,
            ms(timeout_seconds),
            ms(heartbeat_seconds),
        )
        .await?;
        Ok(Some(Callback::Issued(token)))
    }

    /// Where a waiting callback stands: answered (or its wait ran out, which times it out now),
    /// or still waiting.
    pub(super) async fn callback_wait(
        &self,
        machine: &StateMachine,
        execution: &Execution,
        token: &str,
    ) -> Result<Wait, Error> {
        let stored = store::task_token(&self.pool, token).await?;
        if let Some(answer) = stored.answer() {
            return Ok(Wait::Answered(answer));
        }
        let now = chrono::Utc::now().timestamp_millis();
        let execution_deadline = deadline(machine, execution);
        if execution_deadline.is_some_and(|at| at <= now) {
            return Ok(Wait::ExecutionTimedOut);
        }
        match stored.due_at {
            Some(due) if due <= now => {
                let failure = stored.lapse(now);
                if store::time_out_token(&self.pool, token, &failure).await? {
                    return Ok(Wait::Answered(Err(failure)));
                }
                // Answered meanwhile: that answer stands.
                let stored = store::task_token(&self.pool, token).await?;
                Ok(stored.answer().map_or(Wait::Waiting(None), Wait::Answered))
            }
            due => Ok(Wait::Waiting(
                earliest(due, execution_deadline)
                    .map(|at| Duration::from_millis((at - now).max(0) as u64)),
            )),
        }
    }

    /// Answers a callback task's token (`SendTaskSuccess`, `SendTaskFailure`); returns the step
    /// that resumes its execution, when the execution already waits for it (otherwise the step
    /// that is running the task sees the answer as it commits).
    pub async fn answer(&self, token: &str, answer: Answer) -> Result<Option<Next>, Error> {
        match &answer {
            Answer::Success(output) if output.to_string().len() > MAX_ANSWER_BYTES => {
                return Err(Error::Invalid(format!(
                    "output: {} bytes, over Step Functions' limit of {MAX_ANSWER_BYTES} (256 KiB)",
                    output.to_string().len()
                )));
            }
            Answer::Failure(failure) if failure.error.chars().count() > 256 => {
                return Err(Error::Invalid(
                    "error: at most 256 characters, as in Step Functions".to_owned(),
                ));
            }
            Answer::Failure(failure) if failure.cause.chars().count() > 32_768 => {
                return Err(Error::Invalid(
                    "cause: at most 32,768 characters, as in Step Functions".to_owned(),
                ));
            }
            _ => {}
        }
        let stored = store::answer_token(&self.pool, token, &answer).await?;
        let execution = store::execution(&self.pool, &stored.execution_id).await?;
        Ok((execution.status == ExecutionStatus::Running
            && execution.callback_token.as_deref() == Some(token))
        .then(|| Next {
            task: StepTask {
                execution: execution.id.clone(),
                step: execution.step,
            },
            delay: Duration::ZERO,
        }))
    }

    /// `SendTaskHeartbeat`: the token's heartbeat deadline starts again.
    pub async fn heartbeat(&self, token: &str) -> Result<store::TaskToken, Error> {
        store::heartbeat_token(&self.pool, token).await
    }
}

/// Where a callback task's wait stands.
pub(super) enum Wait {
    Answered(Result<Value, asl::Failure>),
    /// The execution ran past its own `TimeoutSeconds` while the task waited.
    ExecutionTimedOut,
    /// No answer yet: look again after this long (None: only an answer ends the wait).
    Waiting(Option<Duration>),
}

/// The most an answer's output may weigh (Step Functions' payload limit).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// When an execution runs past its `TimeoutSeconds` (None: it has none).
pub(super) fn deadline(machine: &StateMachine, execution: &Execution) -> Option<i64> {
    machine
        .timeout_seconds
        .map(|s| execution.started_at + (s * 1000.0) as i64)
}
