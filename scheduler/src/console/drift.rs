//! `/ui/drift`: drift reports, newest first, and a report's page: the verdict and its reasons,
//! each series' and feature's test (method, score against its threshold, PSI, means before and
//! after), the schema changes seen, and the accuracy of the forecasts served since. Adapters over
//! the drift operations of `ops`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use serde_json::Value;

use super::pretty::{Shown, show};
use super::session::Admin;
use super::{Chrome, Console, PageResult, render};
use crate::output::time;

pub struct ReportRow {
    pub id: String,
    pub subject: String,
    pub at: String,
    pub detected: bool,
    pub reasons: String,
}

#[derive(Template)]
#[template(path = "console/drifts.html")]
struct ListPage {
    chrome: Chrome,
    reports: Vec<ReportRow>,
}

pub async fn list(State(console): State<Arc<Console>>, admin: Admin) -> PageResult {
    let reports = console.ops.drift_reports(200).await?;
    Ok(render(&ListPage {
        chrome: admin.chrome("drift"),
        reports: reports
            .into_iter()
            .map(|r| ReportRow {
                id: r.id,
                subject: r.subject,
                at: time(r.created_at),
                detected: r.detected,
                reasons: r.reasons.join("; "),
            })
            .collect(),
    }))
}

/// One series' test of one feature.
pub struct FeatureRow {
    pub series: String,
    pub feature: String,
    pub method: String,
    pub score: String,
    pub threshold: String,
    pub drifted: bool,
    pub psi: String,
    pub means: String,
    pub points: String,
}

fn number(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "—".to_owned(), |x| format!("{x:.4}"))
}

fn feature(f: &Value) -> FeatureRow {
    let text = |key: &str| f[key].as_str().unwrap_or_default().to_owned();
    FeatureRow {
        series: text("series"),
        feature: text("feature"),
        method: text("method"),
        score: number(&f["score"]),
        threshold: number(&f["threshold"]),
        drifted: f["drifted"].as_bool().unwrap_or(false),
        psi: number(&f["psi"]),
        means: format!(
            "{} → {}",
            number(&f["reference_mean"]),
            number(&f["current_mean"])
        ),
        points: format!("{} / {}", f["reference_points"], f["current_points"]),
    }
}

#[derive(Template)]
#[template(path = "console/drift.html")]
struct ReportPage {
    chrome: Chrome,
    id: String,
    subject: String,
    at: String,
    detected: bool,
    reasons: Vec<String>,
    series: String,
    /// Drifted first, then by series and feature.
    features: Vec<FeatureRow>,
    schema: Shown,
    accuracy: Shown,
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(id): Path<String>,
) -> PageResult {
    let stored = console.ops.drift_report(Some(&id), None).await?;
    let data = &stored.report["data"];
    let mut features: Vec<FeatureRow> = data["features"]
        .as_array()
        .map(|all| all.iter().map(feature).collect())
        .unwrap_or_default();
    features.sort_by(|a, b| {
        b.drifted
            .cmp(&a.drifted)
            .then_with(|| a.series.cmp(&b.series))
            .then_with(|| a.feature.cmp(&b.feature))
    });
    Ok(render(&ReportPage {
        chrome: admin.chrome("drift"),
        series: format!(
            "{} of {} series drifted ({:.0} %)",
            data["drifted_series"],
            data["series"],
            data["share_drifted"].as_f64().unwrap_or(0.) * 100.
        ),
        schema: show(&stored.report["schema"]),
        accuracy: show(&stored.report["accuracy"]),
        features,
        id: stored.id,
        subject: stored.subject,
        at: time(stored.created_at),
        detected: stored.detected,
        reasons: stored.reasons,
    }))
}
