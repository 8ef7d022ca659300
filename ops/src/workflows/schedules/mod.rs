//! Cron schedules of workflows. Decide, then do: [`due_ticks`] and [`on_overlap`] are pure; the
//! IO shell ([`fire_due`]) claims each tick in the database (one replica wins a tick) and starts
//! its execution under a name derived from the tick (so a repeated start starts one execution).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::{AnyPool, Row};

use super::Dispatch;
use super::Error;
use super::engine::Engine;

mod plan;
pub use plan::{Catchup, GRACE, Overlap, TickAction, Timing, due_ticks, on_overlap};

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Schedule {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub workflow: String,
    pub input: Value,
    pub catchup: String,
    pub window_seconds: i64,
    pub overlap: String,
    pub paused: bool,
    pub last_tick: i64,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn schedule_of(row: &sqlx::any::AnyRow) -> Result<Schedule, Error> {
    Ok(Schedule {
        name: row.try_get("name")?,
        cron: row.try_get("cron")?,
        timezone: row.try_get("timezone")?,
        workflow: row.try_get("workflow")?,
        input: serde_json::from_str(&row.try_get::<String, _>("input")?).unwrap_or(Value::Null),
        catchup: row.try_get("catchup")?,
        window_seconds: row.try_get("window_seconds")?,
        overlap: row.try_get("overlap")?,
        paused: row.try_get::<i64, _>("paused")? != 0,
        last_tick: row.try_get("last_tick")?,
    })
}

/// Stores a schedule; its ticks start after `since`.
pub async fn create(
    pool: &AnyPool,
    schedule: &Schedule,
    since: DateTime<Utc>,
) -> Result<(), Error> {
    Timing::parse(
        &schedule.cron,
        &schedule.timezone,
        schedule.catchup.parse()?,
        Duration::from_secs(schedule.window_seconds.max(0) as u64),
    )?;
    schedule.overlap.parse::<Overlap>()?;
    super::store::workflow(pool, &schedule.workflow, None).await?;
    sqlx::query(
        "INSERT INTO schedules (name, cron, timezone, workflow, input, catchup, window_seconds, overlap, paused, last_tick, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $10)",
    )
    .bind(&schedule.name)
    .bind(&schedule.cron)
    .bind(&schedule.timezone)
    .bind(&schedule.workflow)
    .bind(schedule.input.to_string())
    .bind(&schedule.catchup)
    .bind(schedule.window_seconds)
    .bind(&schedule.overlap)
    .bind(since.timestamp_millis())
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

/// Every schedule, by name.
pub async fn list(pool: &AnyPool) -> Result<Vec<Schedule>, Error> {
    let rows = sqlx::query("SELECT * FROM schedules ORDER BY name")
        .fetch_all(pool)
        .await?;
    rows.iter().map(schedule_of).collect()
}

/// Pauses or resumes a schedule; a resumed schedule's missed ticks follow its catch-up policy.
pub async fn set_paused(pool: &AnyPool, name: &str, paused: bool) -> Result<(), Error> {
    let updated = sqlx::query("UPDATE schedules SET paused = $1, updated_at = $2 WHERE name = $3")
        .bind(i64::from(paused))
        .bind(now_ms())
        .bind(name)
        .execute(pool)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound {
            what: "schedule",
            id: name.to_owned(),
        });
    }
    Ok(())
}

/// Deletes a schedule (its executions stay).
pub async fn delete(pool: &AnyPool, name: &str) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM schedule_ticks WHERE schedule = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM schedules WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound {
            what: "schedule",
            id: name.to_owned(),
        });
    }
    tx.commit().await?;
    Ok(())
}

/// Claims a tick: true for the one caller that records it.
async fn claim(pool: &AnyPool, schedule: &str, tick: i64, outcome: &str) -> Result<bool, Error> {
    Ok(sqlx::query("INSERT INTO schedule_ticks (schedule, tick, outcome, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (schedule, tick) DO NOTHING")
        .bind(schedule)
        .bind(tick)
        .bind(outcome)
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

async fn record(
    pool: &AnyPool,
    schedule: &str,
    tick: i64,
    outcome: &str,
    execution: Option<&str>,
) -> Result<(), Error> {
    sqlx::query("UPDATE schedule_ticks SET outcome = $1, execution_id = $2 WHERE schedule = $3 AND tick = $4")
        .bind(outcome)
        .bind(execution)
        .bind(schedule)
        .bind(tick)
        .execute(pool)
        .await?;
    Ok(())
}

/// The execution name of a tick.
pub fn tick_name(schedule: &str, tick: DateTime<Utc>) -> String {
    format!("{schedule}@{}", tick.format("%Y-%m-%dT%H-%M-%SZ"))
}

async fn start_tick(
    engine: &Engine,
    queue: &dyn Dispatch,
    schedule: &Schedule,
    tick: DateTime<Utc>,
) -> Result<String, Error> {
    let started = engine
        .start(
            &schedule.workflow,
            schedule.input.clone(),
            Some(tick_name(&schedule.name, tick)),
        )
        .await;
    match started {
        Ok((execution, first)) => {
            if let Some(first) = first {
                queue.push(&first).await?;
            }
            Ok(execution.id)
        }
        // The tick was started before (a pass that stopped before recording it): its
        // execution stands for it, finished or not.
        Err(Error::AlreadyExists { id, .. }) => Ok(id),
        Err(err) => Err(err),
    }
}

/// Running executions of a schedule, and its buffered ticks.
async fn in_flight(pool: &AnyPool, schedule: &str) -> Result<(usize, Vec<i64>), Error> {
    let running: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM executions e JOIN schedule_ticks t ON t.execution_id = e.id \
         WHERE t.schedule = $1 AND e.status = 'RUNNING'",
    )
    .bind(schedule)
    .fetch_one(pool)
    .await?;
    let buffered = sqlx::query("SELECT tick FROM schedule_ticks WHERE schedule = $1 AND outcome = 'buffered' ORDER BY tick")
        .bind(schedule)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get("tick"))
        .collect::<Result<Vec<i64>, _>>()?;
    Ok((running as usize, buffered))
}

/// One pass of the scheduler at `now`: every due tick of every running schedule is claimed and
/// fired (or skipped, or buffered) once, whatever the number of replicas doing the same.
pub async fn fire_due(
    engine: &Engine,
    queue: &dyn Dispatch,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let pool = &engine.pool;
    let mut started = 0;
    for schedule in list(pool).await?.into_iter().filter(|s| !s.paused) {
        let overlap: Overlap = schedule.overlap.parse()?;
        let timing = Timing::parse(
            &schedule.cron,
            &schedule.timezone,
            schedule.catchup.parse()?,
            Duration::from_secs(schedule.window_seconds.max(0) as u64),
        )?;
        let last = Utc
            .timestamp_millis_opt(schedule.last_tick)
            .single()
            .unwrap_or(now);
        // A buffered tick starts once nothing runs.
        let (running, buffered) = in_flight(pool, &schedule.name).await?;
        if running == 0
            && let Some(&tick) = buffered.first()
        {
            let at = Utc.timestamp_millis_opt(tick).single().unwrap_or(now);
            let id = start_tick(engine, queue, &schedule, at).await?;
            record(pool, &schedule.name, tick, "started", Some(&id)).await?;
            started += 1;
        }
        let (fire, skip) = due_ticks(&timing, last, now);
        for tick in &skip {
            claim(
                pool,
                &schedule.name,
                tick.timestamp_millis(),
                "skipped-missed",
            )
            .await?;
        }
        for tick in &fire {
            if !claim(pool, &schedule.name, tick.timestamp_millis(), "claimed").await? {
                continue; // another replica has it
            }
            let (running, buffered) = in_flight(pool, &schedule.name).await?;
            match on_overlap(overlap, running, buffered.len()) {
                TickAction::Start => {
                    let id = start_tick(engine, queue, &schedule, *tick).await?;
                    record(
                        pool,
                        &schedule.name,
                        tick.timestamp_millis(),
                        "started",
                        Some(&id),
                    )
                    .await?;
                    started += 1;
                }
                TickAction::Skip => {
                    record(
                        pool,
                        &schedule.name,
                        tick.timestamp_millis(),
                        "skipped-overlap",
                        None,
                    )
                    .await?
                }
                TickAction::Buffer => {
                    record(
                        pool,
                        &schedule.name,
                        tick.timestamp_millis(),
                        "buffered",
                        None,
                    )
                    .await?
                }
            }
        }
        if let Some(latest) = fire.iter().chain(&skip).max() {
            sqlx::query("UPDATE schedules SET last_tick = $1, updated_at = $2 WHERE name = $3 AND last_tick < $1")
                .bind(latest.timestamp_millis())
                .bind(now_ms())
                .bind(&schedule.name)
                .execute(pool)
                .await?;
        }
    }
    Ok(started)
}

/// Starts an execution for every tick in [from, to] not yet fired (the overlap policy aside).
pub async fn backfill(
    engine: &Engine,
    queue: &dyn Dispatch,
    name: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<String>, Error> {
    let schedule = list(&engine.pool)
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| Error::NotFound {
            what: "schedule",
            id: name.to_owned(),
        })?;
    let timing = Timing::parse(
        &schedule.cron,
        &schedule.timezone,
        Catchup::All,
        Duration::MAX,
    )?;
    let mut started = Vec::new();
    for tick in timing.ticks(from - chrono::Duration::milliseconds(1), to) {
        if claim(&engine.pool, name, tick.timestamp_millis(), "claimed").await? {
            let id = start_tick(engine, queue, &schedule, tick).await?;
            record(
                &engine.pool,
                name,
                tick.timestamp_millis(),
                "started",
                Some(&id),
            )
            .await?;
            started.push(id);
        }
    }
    Ok(started)
}

/// Ticks of a schedule: (tick, outcome, execution), newest first.
pub async fn ticks(
    pool: &AnyPool,
    name: &str,
    limit: i64,
) -> Result<Vec<(i64, String, Option<String>)>, Error> {
    let rows = sqlx::query("SELECT tick, outcome, execution_id FROM schedule_ticks WHERE schedule = $1 ORDER BY tick DESC LIMIT $2")
        .bind(name)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("tick")?,
                r.try_get("outcome")?,
                r.try_get("execution_id")?,
            ))
        })
        .collect()
}
