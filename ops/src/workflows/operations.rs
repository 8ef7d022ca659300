//! Workflow, execution, callback and schedule management as operations: typed requests in,
//! typed views out ([`super::views`]), [`crate::Error`] for every failure. `sluice
//! workflow|task|schedule`, the HTTP API and (next) the console are adapters over
//! [`Workflows`]; none of them reads the store or pushes to the queue itself.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Dispatch;
use super::engine::Engine;
use super::schedules::{self, Schedule};
use super::store::{self, Answer, show_time};
use super::triggers::{self, FireView, TriggerRequest, TriggerView};
use super::views::*;
use crate::{Error, Result};

/// The workflow operations of a process: its engine, and the queue its steps go to.
#[derive(Clone)]
pub struct Workflows {
    engine: Engine,
    dispatch: Arc<dyn Dispatch>,
}

impl Workflows {
    pub fn new(engine: Engine, dispatch: Arc<dyn Dispatch>) -> Self {
        Self { engine, dispatch }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The queue steps go to.
    pub fn dispatch(&self) -> &dyn Dispatch {
        self.dispatch.as_ref()
    }

    fn pool(&self) -> &sqlx::AnyPool {
        &self.engine.pool
    }

    async fn push(&self, next: Option<&super::engine::Next>) -> Result<()> {
        if let Some(next) = next {
            self.dispatch.push(next).await?;
        }
        Ok(())
    }

    /// Validates a definition that this process can run.
    pub fn validate(&self, definition: &Value) -> Result<Validated> {
        let machine = self.engine.runnable(definition)?;
        Ok(Validated {
            valid: true,
            start_at: machine.start_at,
            states: machine.states.len(),
        })
    }

    /// Stores a definition as the workflow's next version (its first when it is new).
    pub async fn put_workflow(&self, name: &str, definition: &Value) -> Result<WorkflowVersion> {
        if name.is_empty() {
            return Err(Error::invalid("name", "a workflow needs a name"));
        }
        self.engine.runnable(definition)?;
        let version = store::put_workflow(self.pool(), name, definition).await?;
        Ok(WorkflowVersion {
            workflow: name.to_owned(),
            version,
        })
    }

    /// Every workflow with its latest version, by name.
    pub async fn workflows(&self) -> Result<Vec<WorkflowSummary>> {
        Ok(store::workflows(self.pool())
            .await?
            .into_iter()
            .map(|(name, version, updated_at)| WorkflowSummary {
                name,
                version,
                updated_at,
            })
            .collect())
    }

    /// A workflow's versions, newest first.
    pub async fn workflow_versions(&self, name: &str) -> Result<Vec<VersionEntry>> {
        Ok(store::workflow_versions(self.pool(), name)
            .await?
            .into_iter()
            .map(|(version, at)| VersionEntry {
                version,
                stored_at: show_time(at),
            })
            .collect())
    }

    /// A workflow's definition: the given version, or the latest.
    pub async fn definition(&self, name: &str, version: Option<i64>) -> Result<WorkflowDefinition> {
        let (version, definition) = store::workflow(self.pool(), name, version).await?;
        Ok(WorkflowDefinition {
            workflow: name.to_owned(),
            version,
            definition,
        })
    }

    /// Starts an execution of a workflow's latest version and queues its first step.
    pub async fn start(&self, workflow: &str, request: StartRequest) -> Result<Started> {
        let input = request.input.unwrap_or_else(empty_object);
        let (execution, first) = self.engine.start(workflow, input, request.name).await?;
        self.push(first.as_ref()).await?;
        Ok(Started {
            execution: ExecutionView::from(&execution),
            created: first.is_some(),
        })
    }

    /// Executions, newest first (the first page of [`Self::execution_page`]).
    pub async fn executions(&self, request: &ExecutionList) -> Result<Vec<ExecutionView>> {
        Ok(self.execution_page(request).await?.executions)
    }

    /// A page of executions, newest first, with the cursor of the next page.
    pub async fn execution_page(&self, request: &ExecutionList) -> Result<ExecutionPage> {
        let limit = request.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(Error::invalid("limit", "1 to 1,000"));
        }
        let status = request
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                store::ExecutionStatus::parse(&s.to_ascii_uppercase())
                    .map_err(|_| Error::invalid("status", "RUNNING, SUCCEEDED, FAILED or ABORTED"))
            })
            .transpose()?;
        let after = request
            .after
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(parse_cursor)
            .transpose()?;
        let filter = store::ExecutionFilter {
            workflow: request.workflow.as_deref().filter(|w| !w.is_empty()),
            status,
            started_from: instant("started_from", request.started_from.as_deref())?,
            started_before: instant("started_before", request.started_before.as_deref())?,
            after,
            parent: request.parent.as_deref().filter(|p| !p.is_empty()),
        };
        // One more than asked says whether a next page exists.
        let mut rows = store::executions(self.pool(), &filter, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = more
            .then(|| rows.last().map(|e| format!("{}_{}", e.started_at, e.id)))
            .flatten();
        Ok(ExecutionPage {
            executions: rows.iter().map(ExecutionView::from).collect(),
            next,
        })
    }

    /// An execution.
    pub async fn describe(&self, id: &str) -> Result<ExecutionView> {
        let mut view = ExecutionView::from(&store::execution(self.pool(), id).await?);
        view.map_runs = store::map_runs(self.pool(), id).await?;
        Ok(view)
    }

    /// An execution's history, in order.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>> {
        store::execution(self.pool(), id).await?;
        Ok(store::history(self.pool(), id)
            .await?
            .into_iter()
            .map(|e| HistoryEvent {
                id: e.seq + 1,
                kind: e.kind,
                state: e.state,
                details: e.details,
                timestamp: show_time(e.at),
                at_ms: e.at,
            })
            .collect())
    }

    /// Stops a running execution (`ABORTED`).
    pub async fn stop(&self, id: &str) -> Result<ExecutionView> {
        self.engine.stop(id).await?;
        self.describe(id).await
    }

    /// Redrives a failed execution from its failed state, with the workflow's latest version (in
    /// a Parallel or Map, the branches or iterations that did not succeed run again).
    pub async fn redrive(&self, id: &str) -> Result<ExecutionView> {
        for next in self.engine.redrive(id).await? {
            self.push(Some(&next)).await?;
        }
        self.describe(id).await
    }

    /// Callback tasks waiting for their token, oldest first.
    pub async fn waiting_tasks(&self) -> Result<Vec<TokenView>> {
        Ok(store::waiting_tokens(self.pool(), 1000)
            .await?
            .iter()
            .map(TokenView::from)
            .collect())
    }

    async fn answer(&self, token: &str, answer: Answer) -> Result<Answered> {
        let next = self.engine.answer(token, answer).await?;
        self.push(next.as_ref()).await?;
        Ok(Answered {
            token: TokenView::from(&store::task_token(self.pool(), token).await?),
            resumed: next.is_some(),
        })
    }

    /// `SendTaskSuccess`: the callback task succeeds with `output`.
    pub async fn send_task_success(&self, request: &TaskSuccessRequest) -> Result<Answered> {
        let output: Value = serde_json::from_str(&request.output)
            .map_err(|e| Error::invalid("output", format!("not JSON text: {e}")))?;
        self.answer(&request.task_token, Answer::Success(output))
            .await
    }

    /// `SendTaskFailure`: the callback task fails with `error` and `cause`.
    pub async fn send_task_failure(&self, request: &TaskFailureRequest) -> Result<Answered> {
        let failure = asl::Failure::new(
            request.error.as_deref().unwrap_or("States.TaskFailed"),
            request.cause.clone().unwrap_or_default(),
        );
        self.answer(&request.task_token, Answer::Failure(failure))
            .await
    }

    /// `SendTaskHeartbeat`: the task's `HeartbeatSeconds` start again.
    pub async fn send_task_heartbeat(&self, request: &TaskHeartbeatRequest) -> Result<TokenView> {
        Ok(TokenView::from(
            &self.engine.heartbeat(&request.task_token).await?,
        ))
    }

    /// Creates a schedule; its first tick is the first after now.
    pub async fn create_schedule(&self, request: &ScheduleRequest) -> Result<ScheduleView> {
        if request.window_seconds < 0 {
            return Err(Error::invalid("window_seconds", "not negative"));
        }
        let schedule = Schedule {
            name: request.name.clone(),
            cron: request.cron.clone(),
            timezone: request.timezone.clone(),
            workflow: request.workflow.clone(),
            input: request.input.clone(),
            catchup: request.catchup.clone(),
            window_seconds: request.window_seconds,
            overlap: request.overlap.clone(),
            paused: false,
            last_tick: 0,
        };
        let now = Utc::now();
        schedules::create(self.pool(), &schedule, now).await?;
        Ok(Schedule {
            last_tick: now.timestamp_millis(),
            ..schedule
        })
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleView>> {
        Ok(schedules::list(self.pool()).await?)
    }

    /// A schedule, its next `count` ticks after `now` and its latest ticks.
    pub async fn schedule(
        &self,
        name: &str,
        now: DateTime<Utc>,
        count: usize,
    ) -> Result<ScheduleDetail> {
        let schedule = schedules::list(self.pool())
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::NotFound {
                missing: crate::Missing::Other,
                what: format!("no schedule {name}"),
            })?;
        let timing = schedules::Timing::parse(
            &schedule.cron,
            &schedule.timezone,
            schedules::Catchup::Skip,
            std::time::Duration::ZERO,
        )?;
        let next = timing
            .ticks(now, now + chrono::Duration::days(366))
            .into_iter()
            .take(count)
            .map(|t| NextTick {
                at: show_time(t.timestamp_millis()),
                local: t
                    .with_timezone(&timing.timezone)
                    .format("%Y-%m-%d %H:%M %Z")
                    .to_string(),
            })
            .collect();
        let recent = schedules::ticks(self.pool(), name, 20)
            .await?
            .into_iter()
            .map(|(tick, outcome, execution)| TickView {
                tick: show_time(tick),
                outcome,
                execution,
            })
            .collect();
        Ok(ScheduleDetail {
            schedule,
            next,
            recent,
        })
    }

    /// Pauses or resumes a schedule; a resumed schedule's missed ticks follow its catch-up.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<()> {
        Ok(schedules::set_paused(self.pool(), name, paused).await?)
    }

    /// Deletes a schedule; its executions stay.
    pub async fn delete_schedule(&self, name: &str) -> Result<()> {
        Ok(schedules::delete(self.pool(), name).await?)
    }

    /// Starts an execution for each tick of a schedule in `[from, to]` not yet fired; returns
    /// their ids.
    pub async fn backfill(
        &self,
        name: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        if to < from {
            return Err(Error::invalid("to", "before from"));
        }
        Ok(schedules::backfill(&self.engine, self.dispatch(), name, from, to).await?)
    }

    /// One pass of the cron loop at `now`: every due tick fired once.
    pub async fn fire_due(&self, now: DateTime<Utc>) -> Result<usize> {
        Ok(schedules::fire_due(&self.engine, self.dispatch(), now).await?)
    }

    /// Creates a trigger; what lands or drifts from now on counts.
    pub async fn create_trigger(&self, request: &TriggerRequest) -> Result<TriggerView> {
        triggers::create(self.pool(), request, Utc::now().timestamp_millis()).await
    }

    /// Every trigger, by name.
    pub async fn triggers(&self) -> Result<Vec<TriggerView>> {
        triggers::list(self.pool()).await
    }

    /// One trigger.
    pub async fn trigger(&self, name: &str) -> Result<TriggerView> {
        triggers::get(self.pool(), name).await
    }

    /// Pauses a trigger or resumes it (what happened while it was paused does not count).
    pub async fn set_trigger_paused(&self, name: &str, paused: bool) -> Result<TriggerView> {
        triggers::set_paused(self.pool(), name, paused, Utc::now().timestamp_millis()).await
    }

    /// Deletes a trigger; its executions stay.
    pub async fn delete_trigger(&self, name: &str) -> Result<()> {
        triggers::delete(self.pool(), name).await
    }

    /// A trigger's firings, newest first (at most `limit`, 1 to 1,000).
    pub async fn trigger_fires(&self, name: &str, limit: i64) -> Result<Vec<FireView>> {
        if !(1..=1000).contains(&limit) {
            return Err(Error::invalid("limit", "1 to 1,000"));
        }
        triggers::fires(self.pool(), name, limit).await
    }

    /// One pass of the triggers at `now`: new landings and drift counted, due windows fired
    /// once across servers; returns the executions this pass started.
    pub async fn fire_triggers(&self, now: DateTime<Utc>) -> Result<usize> {
        triggers::fire_due(&self.engine, self.dispatch(), now.timestamp_millis()).await
    }

    /// Retention: deletes the executions whose root ended before `before` (with their
    /// histories, tokens, map runs and children), the cron ticks and trigger firings of that
    /// age, and the queue's record of the deliveries that ended then. Running executions stay.
    pub async fn expire(&self, before: DateTime<Utc>) -> Result<store::HistoryExpired> {
        let mut expired = store::expire(self.pool(), before.timestamp_millis()).await?;
        expired.queue_tasks = self.dispatch.expire(before).await?;
        Ok(expired)
    }
}

/// A page cursor, `<started at, ms>_<id>`.
fn parse_cursor(text: &str) -> Result<(i64, &str)> {
    text.split_once('_')
        .and_then(|(at, id)| Some((at.parse().ok()?, id)))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| Error::invalid("after", "not a cursor this API returned"))
}

/// An instant given as RFC 3339 or a UTC date, in ms (an empty text is none).
fn instant(field: &str, text: Option<&str>) -> Result<Option<i64>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(at.timestamp_millis()));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc().timestamp_millis()))
        .ok_or_else(|| Error::invalid(field, "an RFC 3339 time or a date, 2026-12-05"))
}
