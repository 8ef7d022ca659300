//! `/ui/endpoints`: endpoints, and an endpoint's page: its variants with their targets and
//! weights, its deployments with their steps and automatic rollbacks, and what the fleet
//! answered in the last five minutes, by model version (requests a second, error rate, p99).
//! Adapters over `ops::serving`'s operations.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use ops::serving::{EndpointView, VersionFigures};

use super::pretty::{Shown, show};
use super::session::Admin;
use super::{Chrome, Console, PageError, PageResult, render};
use crate::http_error::HttpError;

/// The window of the live figures.
const WINDOW_MS: i64 = 5 * 60_000;

#[derive(Template)]
#[template(path = "console/endpoints.html")]
struct ListPage {
    chrome: Chrome,
    endpoints: Vec<EndpointView>,
}

pub async fn list(State(console): State<Arc<Console>>, admin: Admin) -> PageResult {
    Ok(render(&ListPage {
        chrome: admin.chrome("endpoints"),
        endpoints: console.ops.endpoints().await?,
    }))
}

pub struct DeploymentRow {
    pub id: String,
    pub versions: String,
    pub status: String,
    pub weight: u32,
    pub reason: String,
    pub settings: Shown,
}

pub struct FigureRow {
    pub version: u32,
    pub requests: u64,
    pub rate: String,
    pub error_rate: String,
    pub p99: String,
}

#[derive(Template)]
#[template(path = "console/endpoint.html")]
struct EndpointPage {
    chrome: Chrome,
    endpoint: EndpointView,
    deployments: Vec<DeploymentRow>,
    figures: Vec<FigureRow>,
}

fn row(f: &VersionFigures) -> FigureRow {
    FigureRow {
        version: f.version,
        requests: f.requests,
        rate: format!("{:.2}", f.requests as f64 / (WINDOW_MS as f64 / 1000.)),
        error_rate: format!("{:.2} %", f.error_rate * 100.),
        p99: if f.requests == 0 {
            "—".into()
        } else {
            format!("{:.0} ms", f.p99_ms)
        },
    }
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(name): Path<String>,
) -> PageResult {
    let endpoint = console
        .ops
        .endpoints()
        .await?
        .into_iter()
        .find(|e| e.endpoint == name)
        .ok_or_else(|| PageError(HttpError::NotFound(format!("no endpoint {name}"))))?;
    let deployments = console.ops.deployments(Some(&name)).await?;
    let since = chrono::Utc::now().timestamp_millis() - WINDOW_MS;
    let figures = console.ops.endpoint_figures(&name, since).await?;
    Ok(render(&EndpointPage {
        chrome: admin.chrome("endpoints"),
        deployments: deployments
            .iter()
            .map(|d| DeploymentRow {
                id: d.id.clone(),
                versions: match d.from_version {
                    Some(from) => format!("v{from} → v{}", d.to_version),
                    None => format!("→ v{}", d.to_version),
                },
                status: d.status.clone(),
                weight: d.weight,
                reason: d.reason.clone().unwrap_or_default(),
                settings: show(&d.settings),
            })
            .collect(),
        figures: figures.iter().map(row).collect(),
        endpoint,
    }))
}
