//! Cron schedules of workflows. Decide, then do: [`due_ticks`] and [`on_overlap`] are pure; the
//! IO shell ([`fire_due`]) claims each tick in the database (one replica wins a tick) and starts
//! its execution under a name derived from the tick (so a repeated start starts one execution).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::{AnyPool, Row};

use super::Error;
use super::engine::Engine;
use super::queue::Queue;

/// A tick this old when first seen was missed (the scheduler was down): the catch-up policy decides.
pub const GRACE: Duration = Duration::from_secs(60);
/// At most this many ticks are considered at once.
const MAX_TICKS: usize = 1000;

/// What to do with ticks missed while no scheduler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catchup {
    Skip,
    Latest,
    All,
}

/// What to do when a tick comes while the schedule's previous execution still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    Skip,
    BufferOne,
    Allow,
}

impl FromStr for Catchup {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "skip" => Ok(Catchup::Skip),
            "latest" => Ok(Catchup::Latest),
            "all" => Ok(Catchup::All),
            other => Err(Error::Invalid(format!(
                "catch-up policy {other:?}: skip, latest or all"
            ))),
        }
    }
}

impl FromStr for Overlap {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "skip" => Ok(Overlap::Skip),
            "buffer-one" => Ok(Overlap::BufferOne),
            "allow" => Ok(Overlap::Allow),
            other => Err(Error::Invalid(format!(
                "overlap policy {other:?}: skip, buffer-one or allow"
            ))),
        }
    }
}

/// A schedule's timing: cron expression (5 fields, or 6 with seconds) in a time zone.
#[derive(Debug, Clone)]
pub struct Timing {
    pub cron: cron::Schedule,
    pub timezone: chrono_tz::Tz,
    pub catchup: Catchup,
    pub window: Duration,
}

impl Timing {
    pub fn parse(
        cron: &str,
        timezone: &str,
        catchup: Catchup,
        window: Duration,
    ) -> Result<Self, Error> {
        let fields = cron.split_whitespace().count();
        let expression = if fields == 5 {
            format!("0 {cron}")
        } else {
            cron.to_owned()
        };
        let cron = cron::Schedule::from_str(&expression)
            .map_err(|e| Error::Invalid(format!("cron expression {cron:?}: {e}")))?;
        let timezone = chrono_tz::Tz::from_str(timezone)
            .map_err(|e| Error::Invalid(format!("time zone {timezone:?}: {e}")))?;
        Ok(Self {
            cron,
            timezone,
            catchup,
            window,
        })
    }

    /// The ticks in (after, until], in order.
    pub fn ticks(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.cron
            .after(&after.with_timezone(&self.timezone))
            .map(|t| t.with_timezone(&Utc))
            .take_while(|t| *t <= until)
            .take(MAX_TICKS)
            .collect()
    }
}

/// The ticks after `last` that are due at `now`: (to fire, to skip as missed). On-time ticks
/// (within [`GRACE`]) always fire; missed ones follow the catch-up policy.
pub fn due_ticks(
    timing: &Timing,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) {
    let grace = chrono::Duration::from_std(GRACE).expect("small");
    let window = chrono::Duration::from_std(timing.window).unwrap_or(chrono::Duration::MAX);
    let (on_time, missed): (Vec<_>, Vec<_>) = timing
        .ticks(last, now)
        .into_iter()
        .partition(|t| now - *t <= grace);
    let (mut fire, skip) = match timing.catchup {
        Catchup::Skip => (Vec::new(), missed),
        Catchup::Latest => {
            let mut missed = missed;
            let latest = missed.pop();
            (
                latest.into_iter().filter(|t| now - *t <= window).collect(),
                missed,
            )
        }
        Catchup::All => missed.into_iter().partition(|t| now - *t <= window),
    };
    fire.extend(on_time);
    (fire, skip)
}

/// What a tick does, given the schedule's running and buffered executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickAction {
    Start,
    Skip,
    Buffer,
}

/// The overlap policy's decision.
pub fn on_overlap(policy: Overlap, running: usize, buffered: usize) -> TickAction {
    match (policy, running) {
        (Overlap::Allow, _) | (_, 0) => TickAction::Start,
        (Overlap::Skip, _) => TickAction::Skip,
        (Overlap::BufferOne, _) if buffered == 0 => TickAction::Buffer,
        (Overlap::BufferOne, _) => TickAction::Skip,
    }
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq)]
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
    queue: &Queue,
    schedule: &Schedule,
    tick: DateTime<Utc>,
) -> Result<String, Error> {
    let (execution, first) = engine
        .start(
            &schedule.workflow,
            schedule.input.clone(),
            Some(tick_name(&schedule.name, tick)),
        )
        .await?;
    if let Some(first) = first {
        queue.push(&first).await?;
    }
    Ok(execution.id)
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
pub async fn fire_due(engine: &Engine, queue: &Queue, now: DateTime<Utc>) -> Result<usize, Error> {
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
    queue: &Queue,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn nightly_ticks_follow_the_time_zone_across_dst() {
        let timing =
            Timing::parse("0 2 * * *", "Europe/Madrid", Catchup::Skip, Duration::ZERO).unwrap();
        let ticks: Vec<String> = timing
            .ticks(at("2024-03-29T12:00:00Z"), at("2024-04-01T12:00:00Z"))
            .iter()
            .map(|t| t.to_rfc3339())
            .collect();
        // 02:00 in Madrid: UTC+1 before the change on 31 March, UTC+2 after (02:00 that day does not exist).
        assert_eq!(
            ticks,
            ["2024-03-30T01:00:00+00:00", "2024-04-01T00:00:00+00:00"]
        );
        assert!(Timing::parse("61 * * * *", "UTC", Catchup::Skip, Duration::ZERO).is_err());
        assert!(Timing::parse("0 2 * * *", "Mars/Olympus", Catchup::Skip, Duration::ZERO).is_err());
    }

    #[test]
    fn catch_up_policies_decide_missed_ticks() {
        let hourly = |catchup, window| Timing::parse("0 * * * *", "UTC", catchup, window).unwrap();
        let (last, now) = (at("2024-05-01T00:00:00Z"), at("2024-05-01T05:00:30Z"));
        let hours = |ts: &[DateTime<Utc>]| {
            ts.iter()
                .map(|t| t.format("%H").to_string())
                .collect::<Vec<_>>()
        };
        let (fire, skip) = due_ticks(&hourly(Catchup::Skip, Duration::ZERO), last, now);
        assert_eq!(
            (hours(&fire), hours(&skip)),
            (
                vec!["05".to_owned()],
                ["01", "02", "03", "04"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            )
        );
        let (fire, _) = due_ticks(
            &hourly(Catchup::Latest, Duration::from_secs(7200)),
            last,
            now,
        );
        assert_eq!(hours(&fire), ["04", "05"]);
        let (fire, skip) = due_ticks(
            &hourly(Catchup::All, Duration::from_secs(3 * 3600)),
            last,
            now,
        );
        assert_eq!(
            (hours(&fire), hours(&skip)),
            (
                vec!["03".to_owned(), "04".into(), "05".into()],
                vec!["01".to_owned(), "02".into()]
            )
        );
    }

    #[test]
    fn overlap_policies_decide_a_tick_while_one_runs() {
        assert_eq!(on_overlap(Overlap::Skip, 0, 0), TickAction::Start);
        assert_eq!(on_overlap(Overlap::Skip, 1, 0), TickAction::Skip);
        assert_eq!(on_overlap(Overlap::Allow, 3, 0), TickAction::Start);
        assert_eq!(on_overlap(Overlap::BufferOne, 1, 0), TickAction::Buffer);
        assert_eq!(on_overlap(Overlap::BufferOne, 1, 1), TickAction::Skip);
    }
}
