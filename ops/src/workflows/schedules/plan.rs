//! The pure part of scheduling: which ticks are due (the catch-up policy) and what a tick does
//! while the schedule's previous execution runs (the overlap policy).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::super::Error;

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
