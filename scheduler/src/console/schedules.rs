//! `/ui/schedules`: each cron schedule with its next ticks in its own time zone, its latest
//! ticks and what they started, and Pause, Resume and Backfill. Adapters over the schedule
//! operations of `ops::workflows::Workflows`.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use chrono::{DateTime, NaiveDateTime, Utc};
use ops::workflows::ScheduleDetail;
use serde::Deserialize;

use super::session::Admin;
use super::{Chrome, Console, PageError, PageResult, render, see};
use crate::http_error::HttpError;

/// Ticks to come shown per schedule.
const NEXT: usize = 3;

#[derive(Template)]
#[template(path = "console/schedules.html")]
struct SchedulesPage {
    chrome: Chrome,
    schedules: Vec<ScheduleDetail>,
}

pub async fn list(State(console): State<Arc<Console>>, admin: Admin) -> PageResult {
    let now = Utc::now();
    let mut schedules = Vec::new();
    for schedule in console.flows()?.schedules().await? {
        let mut detail = console.flows()?.schedule(&schedule.name, now, NEXT).await?;
        detail.recent.truncate(5);
        schedules.push(detail);
    }
    Ok(render(&SchedulesPage {
        chrome: admin.chrome("schedules"),
        schedules,
    }))
}

#[derive(Deserialize)]
pub struct Action {
    #[serde(default)]
    csrf: String,
}

pub async fn pause(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<Action>,
) -> PageResult {
    set_paused(&console, &admin, &name, &form, true).await
}

pub async fn resume(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<Action>,
) -> PageResult {
    set_paused(&console, &admin, &name, &form, false).await
}

async fn set_paused(
    console: &Console,
    admin: &Admin,
    name: &str,
    form: &Action,
    paused: bool,
) -> PageResult {
    admin.check(&form.csrf)?;
    console.flows()?.set_paused(name, paused).await?;
    Ok(see("/ui/schedules"))
}

#[derive(Deserialize)]
pub struct BackfillForm {
    #[serde(default)]
    csrf: String,
    from: String,
    to: String,
}

/// A `datetime-local` input's value (or RFC 3339), read as UTC.
fn utc(field: &str, text: &str) -> Result<DateTime<Utc>, PageError> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
                .map(|t| t.and_utc())
        })
        .map_err(|_| {
            PageError(HttpError::BadRequest(format!(
                "{field}: a time, 2026-12-01T00:00 (UTC)"
            )))
        })
}

pub async fn backfill(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<BackfillForm>,
) -> PageResult {
    admin.check(&form.csrf)?;
    let (from, to) = (utc("from", &form.from)?, utc("to", &form.to)?);
    console.flows()?.backfill(&name, from, to).await?;
    Ok(see("/ui/schedules"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backfill_times_are_read_as_utc() {
        assert_eq!(
            utc("from", "2026-12-01T02:00").unwrap().to_rfc3339(),
            "2026-12-01T02:00:00+00:00"
        );
        assert_eq!(
            utc("to", "2026-12-01T02:00:00+01:00").unwrap().to_rfc3339(),
            "2026-12-01T01:00:00+00:00"
        );
        assert!(utc("to", "tomorrow").is_err());
    }
}
