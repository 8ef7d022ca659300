//! `/ui/models`: model groups, and a group's page: its versions with lineage (dataset
//! snapshot, training execution, hyperparameters), each version's backtest beside seasonal
//! naive's on the same windows, its aliases and statuses, the alias history, and Promote and
//! Rollback with a reason. Adapters over the registry's operations (`ops::registry`).

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use models::registry::{AliasName, GroupName};
use ops::{PromoteRequest, RollbackRequest};
use serde_json::Value;

use super::pretty::{Shown, show};
use super::session::Admin;
use super::{Chrome, Console, PageError, PageResult, encode, render, see};
use crate::http_error::HttpError;
use crate::output::time;
use wire::console::reason;

pub(super) fn group_name(text: &str) -> Result<GroupName, PageError> {
    GroupName::parse(text).map_err(|err| PageError(HttpError::BadRequest(format!("group: {err}"))))
}

/// The actor a console change is recorded under.
fn actor(admin: &Admin) -> String {
    format!("console:{}", admin.name)
}

pub struct GroupRow {
    pub name: String,
    pub generation: i64,
}

#[derive(Template)]
#[template(path = "console/models.html")]
struct ListPage {
    chrome: Chrome,
    groups: Vec<GroupRow>,
}

pub async fn list(State(console): State<Arc<Console>>, admin: Admin) -> PageResult {
    let groups = console.ops.model_groups().await?;
    Ok(render(&ListPage {
        chrome: admin.chrome("models"),
        groups: groups
            .into_iter()
            .map(|(name, generation)| GroupRow {
                name: name.to_string(),
                generation,
            })
            .collect(),
    }))
}

/// A version as the page lists it.
pub struct VersionRow {
    pub version: u32,
    pub status: String,
    pub status_reason: String,
    pub aliases: String,
    pub created: String,
    pub created_by: String,
    /// mean_wQuantileLoss of the version and of seasonal naive on its backtest windows.
    pub wql: String,
    pub naive: String,
    /// The version's loss as a share of seasonal naive's (below 1: better).
    pub ratio: String,
    pub snapshot: String,
    pub execution: Option<String>,
    pub hyperparameters: Shown,
}

pub struct HistoryRow {
    pub generation: i64,
    pub kind: String,
    pub version: String,
    pub alias: String,
    pub status: String,
    pub actor: String,
    pub reason: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "console/model.html")]
struct GroupPage {
    chrome: Chrome,
    group: String,
    versions: Vec<VersionRow>,
    history: Vec<HistoryRow>,
    champion: String,
}

fn loss(metrics: &Value) -> Option<f64> {
    metrics.get("mean_wQuantileLoss").and_then(Value::as_f64)
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(group): Path<String>,
) -> PageResult {
    let name = group_name(&group)?;
    let versions = console.ops.model_versions(&name).await?;
    let history = console.ops.model_history(&name).await?;
    let champion = versions
        .iter()
        .find(|v| {
            v.aliases
                .iter()
                .any(|a| a == AliasName::champion().as_str())
        })
        .map_or_else(|| "none".to_owned(), |v| format!("version {}", v.version));
    let fmt = |x: Option<f64>| x.map_or_else(|| "—".to_owned(), |x| format!("{x:.4}"));
    let rows = versions
        .iter()
        .rev()
        .map(|v| {
            let (mine, naive) = (loss(&v.metrics), loss(&v.baseline_metrics));
            VersionRow {
                version: v.version,
                status: v.status.as_str().to_owned(),
                status_reason: v.status_reason.clone().unwrap_or_default(),
                aliases: v.aliases.join(", "),
                created: time(v.created_at),
                created_by: v.created_by.clone(),
                wql: fmt(mine),
                naive: fmt(naive),
                ratio: match (mine, naive) {
                    (Some(m), Some(n)) if n > 0. => format!("{:.2}×", m / n),
                    _ => "—".to_owned(),
                },
                snapshot: v.dataset_snapshot.clone().unwrap_or_default(),
                execution: v.training_execution.clone(),
                hyperparameters: show(&v.hyperparameters),
            }
        })
        .collect();
    let history = history
        .iter()
        .rev()
        .map(|e| HistoryRow {
            generation: e.generation,
            kind: e.kind.clone(),
            version: match (e.from_version, e.version) {
                (Some(from), Some(to)) => format!("v{from} → v{to}"),
                (None, Some(to)) => format!("v{to}"),
                _ => String::new(),
            },
            alias: e.alias.clone().unwrap_or_default(),
            status: e.status.clone().unwrap_or_default(),
            actor: e.actor.clone(),
            reason: e.reason.clone(),
            at: time(e.at),
        })
        .collect();
    Ok(render(&GroupPage {
        chrome: admin.chrome("models"),
        group: name.to_string(),
        versions: rows,
        history,
        champion,
    }))
}

pub use wire::console::{PromoteForm, RollbackForm};

fn alias(text: &str) -> Result<AliasName, PageError> {
    AliasName::parse(&wire::console::alias(text))
        .map_err(|err| PageError(HttpError::BadRequest(format!("alias: {err}"))))
}

pub async fn promote(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(group): Path<String>,
    Form(form): Form<PromoteForm>,
) -> PageResult {
    admin.check(&form.csrf)?;
    let request = PromoteRequest {
        group: group_name(&group)?,
        version: form.version()?,
        alias: alias(&form.alias)?,
        reason: reason(&form.reason)?,
    };
    console.ops.promote(&request, &actor(&admin)).await?;
    Ok(see(&format!("/ui/models/{}", encode(&group))))
}

pub async fn rollback(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(group): Path<String>,
    Form(form): Form<RollbackForm>,
) -> PageResult {
    admin.check(&form.csrf)?;
    let request = RollbackRequest {
        group: group_name(&group)?,
        alias: alias(&form.alias)?,
        reason: reason(&form.reason)?,
    };
    console.ops.rollback(&request, &actor(&admin)).await?;
    Ok(see(&format!("/ui/models/{}", encode(&group))))
}
