//! A running step's beat: while a step runs, its execution is marked as moving, so that the
//! stall sweep (which re-enqueues executions that have not moved) only takes steps whose worker
//! died, never a long Task that still runs.

use std::time::Duration;

use sqlx::AnyPool;

use super::engine::StepTask;
use super::store;

/// How often a step that runs marks its execution as moving (`updated_at`), for as long as it
/// runs. The stall sweep re-enqueues executions that have not moved for longer than its stall:
/// without the beat, a Task that runs longer (a training of minutes) was taken for stalled and
/// started again beside itself, once a sweep, each copy slowing the others. A step whose worker
/// died stops beating, and the sweep takes it after the stall. A sweep's stall must be several
/// beats long.
pub const RUNNING_BEAT: Duration = Duration::from_secs(20);

/// The beat of a running step, stopped when the step has run or when its future is dropped (a
/// worker stopped mid-step): a step whose result will never be committed must not look alive,
/// or the sweep would never take it.
pub(super) struct Beating(tokio::task::JoinHandle<()>);

impl Beating {
    /// Starts beating for `task` every `every`.
    pub(super) fn start(pool: AnyPool, task: StepTask, every: Duration) -> Self {
        Beating(tokio::spawn(beat_while_running(pool, task, every)))
    }
}

impl Drop for Beating {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Marks `task`'s execution as moving every `every` until aborted (when the step has run) or
/// until the execution has moved on; a failed mark is logged and tried again at the next beat.
async fn beat_while_running(pool: AnyPool, task: StepTask, every: Duration) {
    let mut beats = tokio::time::interval(every);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beats.tick().await;
    loop {
        beats.tick().await;
        match store::still_running(&pool, &task.execution, task.step).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(execution = %task.execution, step = task.step, error = %err, "could not mark a running step as moving");
            }
        }
    }
}
