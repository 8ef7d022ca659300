//! `/ui/forecasts`: stored forecast runs (batch runs of the nightly workflow and what endpoints
//! served), newest first, of every group or of one; and a run's page, one series at a time:
//! the history kept beside the forecast, the median and the 80 % band, and the actuals that
//! landed for the window since, drawn as SVG and listed point by point, with the band's
//! coverage of the actuals. Adapters over `Ops::forecast_runs` and `Ops::forecast_series`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use models::registry::GroupName;
use ops::{ActualsSource, SeriesForecast};

use super::models::group_name;
use super::session::Admin;
use super::{Chrome, Console, PageError, PageResult, render};
use crate::chart::{Panel, svg};
use crate::http_error::HttpError;
use crate::output::time;

/// Runs listed per page.
const LISTED: usize = 200;

pub struct RunRow {
    pub group: String,
    pub id: String,
    pub version: u32,
    pub source: String,
    pub items: usize,
    pub rows: usize,
    pub created: String,
    /// The dataset's table, or the input file, or nothing (served).
    pub made_from: String,
}

#[derive(Template)]
#[template(path = "console/forecasts.html")]
struct ListPage {
    chrome: Chrome,
    group: Option<String>,
    runs: Vec<RunRow>,
}

fn made_from(run: &jobs::forecasts::BatchRun) -> String {
    match (&run.dataset, &run.input) {
        (Some(d), _) => format!("table {} (dataset {})", d.table, d.snapshot_id),
        (None, Some(input)) => input.clone(),
        (None, None) if run.source == "served" => "requests to the endpoint".into(),
        (None, None) => String::new(),
    }
}

async fn runs_page(console: &Console, admin: Admin, group: Option<GroupName>) -> PageResult {
    let runs = console.ops.forecast_runs(group.as_ref(), LISTED).await?;
    Ok(render(&ListPage {
        chrome: admin.chrome("forecasts"),
        group: group.map(|g| g.to_string()),
        runs: runs
            .iter()
            .map(|run| RunRow {
                group: run.model_group.clone(),
                id: run.id.clone(),
                version: run.model_version,
                source: run.source.clone(),
                items: run.items,
                rows: run.rows,
                created: time(run.created_at),
                made_from: made_from(run),
            })
            .collect(),
    }))
}

pub async fn list(State(console): State<Arc<Console>>, admin: Admin) -> PageResult {
    runs_page(&console, admin, None).await
}

pub async fn group(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(group): Path<String>,
) -> PageResult {
    runs_page(&console, admin, Some(group_name(&group)?)).await
}

/// One point as the table lists it.
pub struct PointRow {
    pub at: String,
    pub step: u32,
    pub mean: String,
    pub low: String,
    pub median: String,
    pub high: String,
    pub actual: String,
    /// Whether the actual fell outside the band.
    pub outside: bool,
}

#[derive(Template)]
#[template(path = "console/forecast.html")]
struct RunPage {
    chrome: Chrome,
    group: String,
    run: String,
    version: u32,
    source: String,
    created: String,
    made_from: String,
    item: String,
    items: Vec<String>,
    /// The chart, an SVG document.
    chart: String,
    band: String,
    actuals_from: String,
    coverage: String,
    points: Vec<PointRow>,
}

pub use wire::console::ItemQuery;

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}"))
}

/// The chart of a series forecast.
fn panel(series: &SeriesForecast) -> Panel {
    let (low, high) = series.band().unwrap_or((0.5, 0.5));
    let median = |p: &ops::ForecastPoint| p.quantile(0.5).unwrap_or(p.mean);
    Panel {
        title: format!("{} · run {}", series.item, series.run.id),
        y_label: String::new(),
        history: series
            .history
            .iter()
            .map(|(at, v)| (*at, f64::from(*v)))
            .collect(),
        median: series
            .points
            .iter()
            .map(|p| (p.at_ms, f64::from(median(p))))
            .collect(),
        band: series
            .points
            .iter()
            .filter_map(|p| {
                Some((
                    p.at_ms,
                    f64::from(p.quantile(low)?),
                    f64::from(p.quantile(high)?),
                ))
            })
            .collect(),
        band_label: band_label(series.band()),
        actuals: series
            .points
            .iter()
            .map(|p| (p.at_ms, p.actual.unwrap_or(f64::NAN)))
            .collect(),
    }
}

fn band_label(band: Option<(f64, f64)>) -> String {
    match band {
        Some((low, high)) => format!(
            "{:.0} % interval (q{:.0} to q{:.0})",
            (high - low) * 100.0,
            low * 100.0,
            high * 100.0
        ),
        None => "no interval".into(),
    }
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path((group, run)): Path<(String, String)>,
    Query(query): Query<ItemQuery>,
) -> PageResult {
    let name = group_name(&group)?;
    let item = query.item.filter(|i| !i.is_empty());
    let series = console
        .ops
        .forecast_series(&name, &run, item.as_deref())
        .await?;
    let chart = svg(&panel(&series), (960, 380))
        .map_err(|e| PageError(HttpError::internal(e)))?
        // The chart is an image with a name for screen readers.
        .replacen(
            "<svg ",
            &format!(
                "<svg role=\"img\" aria-label=\"Forecast of {} with its history and actuals\" ",
                attribute_text(&series.item)
            ),
            1,
        );
    let band = series.band();
    let (landed, inside) = series.coverage();
    let coverage = match (landed, band) {
        (0, _) => "no actuals have landed for the forecast window yet".to_owned(),
        (n, Some(_)) => format!(
            "{n} of {} points landed; {inside} of them inside the {} ({:.0} %)",
            series.points.len(),
            band_label(band),
            inside as f64 * 100.0 / n as f64
        ),
        (n, None) => format!("{n} of {} points landed", series.points.len()),
    };
    let actuals_from = match &series.actuals {
        ActualsSource::Table { table, catalog } => format!(
            "read from table {table}{}, bucketed as the dataset was",
            catalog
                .as_deref()
                .map(|c| format!(" (catalog {c})"))
                .unwrap_or_default()
        ),
        ActualsSource::LaterRuns { runs } => format!(
            "read from the histories kept by the group's {runs} later run{}",
            if *runs == 1 { "" } else { "s" }
        ),
        ActualsSource::Unavailable { reason } => format!("not available: {reason}"),
    };
    let (low, high) = band.unwrap_or((0.1, 0.9));
    let points = series
        .points
        .iter()
        .map(|p| {
            let (l, h) = (p.quantile(low), p.quantile(high));
            PointRow {
                at: time(p.at_ms),
                step: p.step,
                mean: number(Some(f64::from(p.mean))),
                low: number(l.map(f64::from)),
                median: number(p.quantile(0.5).map(f64::from)),
                high: number(h.map(f64::from)),
                actual: number(p.actual),
                outside: matches!((p.actual, l, h), (Some(a), Some(l), Some(h)) if a < f64::from(l) || a > f64::from(h)),
            }
        })
        .collect();
    Ok(render(&RunPage {
        chrome: admin.chrome("forecasts"),
        group: name.to_string(),
        run: series.run.id.clone(),
        version: series.run.model_version,
        source: series.run.source.clone(),
        created: time(series.run.created_at),
        made_from: made_from(&series.run),
        item: series.item.clone(),
        items: series.items.clone(),
        chart,
        band: band_label(band),
        actuals_from,
        coverage,
        points,
    }))
}

/// Text for an attribute of the chart's opening tag.
fn attribute_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
