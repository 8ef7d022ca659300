//! `/ui/schedules`: each cron schedule with its next ticks in its own time zone, its latest
//! ticks and what they started, and Pause, Resume and Backfill. Adapters over the schedule
//! operations of `ops::workflows::Workflows`.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};

use chrono::Utc;
use ops::workflows::ScheduleDetail;

use super::session::Admin;
use super::{Chrome, Console, PageResult, render, see};

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

/// A button's form: its CSRF value.
pub use wire::console::CsrfForm as Action;

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

pub use wire::console::BackfillForm;

pub async fn backfill(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<BackfillForm>,
) -> PageResult {
    admin.check(&form.csrf)?;
    let (from, to) = form.range()?;
    console.flows()?.backfill(&name, from, to).await?;
    Ok(see("/ui/schedules"))
}
