//! `/ui/executions`: the list (filters by workflow, status and start date; pages by cursor, so
//! the 1,000th page costs what the first does), and an execution's page: its graph coloured by
//! what each state did, its error, its history with each state's input and output, and Stop,
//! Redrive and Start again. Each is an adapter over one `Workflows` operation.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use ops::workflows::store::ExecutionStatus;
use ops::workflows::{ExecutionList, ExecutionView, HistoryEvent, StartRequest};

use super::graph;
use super::pretty::{Shown, show};
use super::session::Admin;
use super::{Chrome, Console, PageError, PageResult, encode, render, see};
use crate::http_error::HttpError;

/// Rows per page of the list.
const PAGE: i64 = 50;

fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A start time as the tables show it (UTC, to the second).
fn short(text: &str) -> String {
    time(text).map_or_else(
        || text.to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// `1h 02m`, `3m 07s`, `4.2 s`, `310 ms`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

fn took(execution: &ExecutionView) -> String {
    let start = time(&execution.started_at);
    let end = execution.stopped_at.as_deref().and_then(time);
    match (start, end) {
        (Some(s), Some(e)) => duration((e - s).num_milliseconds()),
        (Some(s), None) => format!("{} so far", duration((Utc::now() - s).num_milliseconds())),
        _ => String::new(),
    }
}

/// One row of the list.
pub struct Row {
    pub id: String,
    pub name: String,
    pub workflow: String,
    pub status: &'static str,
    pub started: String,
    pub took: String,
}

#[derive(Template)]
#[template(path = "console/executions.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    workflows: Vec<String>,
    statuses: [&'static str; 4],
    filter: Filter,
    /// The next page's address (None: this is the last).
    next: Option<String>,
    /// Whether this is a later page (a link back to the first).
    paged: bool,
}

/// The list's filters, as the form sends them (read and checked by `wire::console`).
pub use wire::console::ExecutionFilter as Filter;

/// The operation's request for the filters.
fn request(filter: &Filter) -> Result<ExecutionList, PageError> {
    let query = filter.query()?;
    Ok(ExecutionList {
        workflow: query.workflow,
        status: query.status,
        started_from: query.started_from,
        started_before: query.started_before,
        after: query.after,
        limit: Some(PAGE),
        parent: None,
    })
}

/// The list's address with these filters and another cursor.
fn address(filter: &Filter, after: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("workflow", &filter.workflow),
        ("status", &filter.status),
        ("from", &filter.from),
        ("to", &filter.to),
    ] {
        if !value.is_empty() {
            query.append_pair(key, value);
        }
    }
    if let Some(after) = after {
        query.append_pair("after", after);
    }
    let query = query.finish();
    if query.is_empty() {
        "/ui/executions".to_owned()
    } else {
        format!("/ui/executions?{query}")
    }
}

fn status_class(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Running => "running",
        ExecutionStatus::Succeeded => "succeeded",
        ExecutionStatus::Failed => "failed",
        ExecutionStatus::Aborted => "aborted",
    }
}

pub async fn list(
    State(console): State<Arc<Console>>,
    admin: Admin,
    query: Result<Query<Filter>, QueryRejection>,
) -> PageResult {
    let Query(filter) = query.map_err(HttpError::from)?;
    let page = console.flows()?.execution_page(&request(&filter)?).await?;
    let workflows = console.flows()?.workflows().await?;
    let rows = page
        .executions
        .iter()
        .map(|e| Row {
            id: e.id.clone(),
            name: e.name.clone(),
            workflow: e.workflow.clone(),
            status: status_class(e.status),
            started: short(&e.started_at),
            took: took(e),
        })
        .collect();
    Ok(render(&ListPage {
        chrome: admin.chrome("executions"),
        rows,
        workflows: workflows.into_iter().map(|w| w.name).collect(),
        statuses: ["running", "succeeded", "failed", "aborted"],
        next: page.next.as_deref().map(|n| address(&filter, Some(n))),
        paged: !filter.after.is_empty(),
        filter,
    }))
}

/// One event of the history table.
pub struct EventRow {
    pub id: i64,
    pub kind: String,
    pub state: String,
    /// The row's anchor, on the first event of each state (the graph's boxes link to it).
    pub anchor: Option<String>,
    pub at: String,
    pub since_start: String,
    pub details: Shown,
    pub failure: bool,
}

#[derive(Template)]
#[template(path = "console/execution.html")]
struct ExecutionPage {
    chrome: Chrome,
    execution: ExecutionView,
    status: &'static str,
    took: String,
    input: Shown,
    output: Option<Shown>,
    graph: Option<String>,
    events: Vec<EventRow>,
    /// The workflow's latest version, which a redrive runs.
    latest: i64,
    running: bool,
    failed: bool,
    /// The state the history says it failed in.
    failed_in: String,
    /// Its branches' and iterations' executions, in their order.
    children: Vec<ExecutionView>,
}

fn rows(history: &[HistoryEvent]) -> Vec<EventRow> {
    let start = history.first().map_or(0, |e| e.at_ms);
    let mut anchored = std::collections::HashSet::new();
    history
        .iter()
        .map(|e| {
            let state = e.state.clone().unwrap_or_default();
            let anchor = (!state.is_empty() && anchored.insert(state.clone()))
                .then(|| format!("state-{}", graph::slug(&state)));
            EventRow {
                id: e.id,
                kind: e.kind.clone(),
                anchor,
                at: short(&e.timestamp),
                since_start: format!("+{}", duration(e.at_ms - start)),
                details: show(&e.details),
                failure: e.kind.ends_with("Failed")
                    || e.kind.ends_with("TimedOut")
                    || e.kind.ends_with("Aborted"),
                state,
            }
        })
        .collect()
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(id): Path<String>,
) -> PageResult {
    let flows = console.flows()?;
    let execution = flows.describe(&id).await?;
    let history = flows.history(&id).await?;
    let outcomes = graph::outcomes(&history);
    let ran = flows
        .definition(&execution.workflow, Some(execution.version))
        .await?;
    // A stored definition always parsed once; a newer sluice that reads it differently
    // shows the page without its graph rather than no page.
    let graph = asl::definition::StateMachine::parse(&ran.definition)
        .ok()
        .and_then(|machine| {
            let title = format!("{} version {}", execution.workflow, execution.version);
            graph::svg(&machine, &outcomes.states, &title)
        });
    let latest = flows.definition(&execution.workflow, None).await?.version;
    let mut children = match execution.map_runs.is_empty() {
        true => Vec::new(),
        false => {
            flows
                .executions(&ExecutionList {
                    parent: Some(execution.id.clone()),
                    limit: Some(200),
                    ..ExecutionList::default()
                })
                .await?
        }
    };
    children.sort_by_key(|c| c.index);
    let failed_in = outcomes
        .failed_in
        .clone()
        .unwrap_or_else(|| execution.state.clone());
    Ok(render(&ExecutionPage {
        failed_in,
        chrome: admin.chrome("executions"),
        status: status_class(execution.status),
        took: took(&execution),
        input: show(&execution.input),
        output: execution.output.as_ref().map(show),
        graph,
        events: rows(&history),
        latest,
        running: execution.status == ExecutionStatus::Running,
        failed: execution.status == ExecutionStatus::Failed,
        children,
        execution,
    }))
}

/// A button's form: its CSRF value.
pub use wire::console::CsrfForm as Action;

fn execution_address(id: &str) -> String {
    format!("/ui/executions/{}", encode(id))
}

pub async fn stop(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(id): Path<String>,
    Form(form): Form<Action>,
) -> PageResult {
    admin.check(&form.csrf)?;
    console.flows()?.stop(&id).await?;
    Ok(see(&execution_address(&id)))
}

pub async fn redrive(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(id): Path<String>,
    Form(form): Form<Action>,
) -> PageResult {
    admin.check(&form.csrf)?;
    console.flows()?.redrive(&id).await?;
    Ok(see(&execution_address(&id)))
}

/// Start again: a new execution of the workflow's latest version with this one's input.
pub async fn restart(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(id): Path<String>,
    Form(form): Form<Action>,
) -> Result<Response, super::PageError> {
    admin.check(&form.csrf)?;
    let execution = console.flows()?.describe(&id).await?;
    let started = console
        .flows()?
        .start(
            &execution.workflow,
            StartRequest {
                input: Some(execution.input),
                name: None,
            },
        )
        .await?;
    Ok(see(&execution_address(&started.execution.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(310), "310 ms");
        assert_eq!(duration(4_210), "4.2 s");
        assert_eq!(duration(187_000), "3m 07s");
        assert_eq!(duration(3_720_000), "1h 02m");
    }

    #[test]
    fn filters_become_the_operations_request_and_keep_to_their_pages() {
        let filter = Filter {
            workflow: "nightly".into(),
            status: "failed".into(),
            from: "2026-12-01".into(),
            to: "2026-12-04".into(),
            after: String::new(),
        };
        let list = request(&filter).unwrap();
        assert_eq!(list.started_before.as_deref(), Some("2026-12-05"));
        assert_eq!(list.status.as_deref(), Some("failed"));
        assert_eq!(list.after, None);
        assert_eq!(
            address(&filter, Some("17_x")),
            "/ui/executions?workflow=nightly&status=failed&from=2026-12-01&to=2026-12-04&after=17_x"
        );
        assert_eq!(address(&Filter::default(), None), "/ui/executions");
        let bad = Filter {
            to: "yesterday".into(),
            ..Filter::default()
        };
        assert!(request(&bad).is_err());
    }
}
