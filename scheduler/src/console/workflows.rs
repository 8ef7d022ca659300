//! `/ui/workflows`: every workflow with its latest version, and a workflow's page: its versions
//! with a line diff between any two, the graph of a version, an editor that validates (errors
//! at their JSON pointer) and saves a new version, and a form that starts an execution. Each
//! button is an adapter over one `Workflows` operation.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ops::workflows::{StartRequest, VersionEntry, WorkflowSummary};
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::session::Admin;
use super::{Chrome, Console, PageError, PageResult, encode, render, see};
use crate::http_error::HttpError;

#[derive(Template)]
#[template(path = "console/workflows.html")]
struct ListPage {
    chrome: Chrome,
    workflows: Vec<WorkflowSummary>,
}

pub async fn list(State(console): State<Arc<Console>>, admin: Admin) -> PageResult {
    Ok(render(&ListPage {
        chrome: admin.chrome("workflows"),
        workflows: console.flows()?.workflows().await?,
    }))
}

/// One line of a diff.
pub struct DiffLine {
    /// `+`, `-`, ` `, or `@` for a hunk's header.
    pub sign: char,
    pub class: &'static str,
    pub text: String,
}

/// The lines that differ between two texts, with three lines of context.
pub fn diff(old: &str, new: &str) -> Vec<DiffLine> {
    let diff = TextDiff::from_lines(old, new);
    let mut lines = Vec::new();
    for group in diff.grouped_ops(3) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let (old_range, new_range) = (
            first.old_range().start..last.old_range().end,
            first.new_range().start..last.new_range().end,
        );
        lines.push(DiffLine {
            sign: '@',
            class: "hunk",
            text: format!(
                "lines {}-{} → {}-{}",
                old_range.start + 1,
                old_range.end,
                new_range.start + 1,
                new_range.end
            ),
        });
        for op in &group {
            for change in diff.iter_changes(op) {
                let (sign, class) = match change.tag() {
                    ChangeTag::Delete => ('-', "del"),
                    ChangeTag::Insert => ('+', "ins"),
                    ChangeTag::Equal => (' ', "same"),
                };
                lines.push(DiffLine {
                    sign,
                    class,
                    text: change.value().trim_end_matches('\n').to_owned(),
                });
            }
        }
    }
    lines
}

/// What the page's query may ask for: a version to show, two to compare.
pub use wire::console::ShownQuery as Shown;
pub use wire::console::{DefinitionForm, StartForm};

/// The result of Validate, Save or Start, shown on the page.
pub struct Notice {
    pub ok: bool,
    pub text: String,
    /// The JSON pointer an invalid definition is wrong at.
    pub pointer: Option<String>,
}

#[derive(Template)]
#[template(path = "console/workflow.html")]
struct WorkflowPage {
    chrome: Chrome,
    name: String,
    versions: Vec<VersionEntry>,
    shown: i64,
    latest: i64,
    graph: Option<String>,
    /// The editor's text: the shown version, or what was submitted.
    editor: String,
    notice: Option<Notice>,
    /// The compared versions and their diff.
    compared: Option<(i64, i64)>,
    diff: Vec<DiffLine>,
    /// Where Save goes back to (an execution's page, to redrive it).
    return_to: String,
    start_input: String,
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Only a console page is a place to go back to.
fn safe_return(to: &str) -> String {
    wire::console::console_address(to)
        .filter(|to| to.starts_with("/ui/"))
        .unwrap_or_default()
        .to_owned()
}

async fn workflow_page(
    console: &Console,
    admin: &Admin,
    name: &str,
    shown: &Shown,
) -> Result<WorkflowPage, PageError> {
    let flows = console.flows()?;
    let versions = flows.workflow_versions(name).await?;
    let latest = versions.first().map_or(1, |v| v.version);
    let definition = flows.definition(name, shown.version).await?;
    let graph = asl::definition::StateMachine::parse(&definition.definition)
        .ok()
        .and_then(|machine| {
            let title = format!("{name} version {}", definition.version);
            super::graph::svg(&machine, &Default::default(), &title)
        });
    let (compared, diff) = match (shown.from, shown.to) {
        (Some(from), Some(to)) => {
            let old = flows.definition(name, Some(from)).await?;
            let new = flows.definition(name, Some(to)).await?;
            (
                Some((from, to)),
                diff(&pretty(&old.definition), &pretty(&new.definition)),
            )
        }
        _ => (None, Vec::new()),
    };
    Ok(WorkflowPage {
        chrome: admin.chrome("workflows"),
        name: name.to_owned(),
        versions,
        shown: definition.version,
        latest,
        graph,
        editor: pretty(&definition.definition),
        notice: None,
        compared,
        diff,
        return_to: safe_return(&shown.return_to),
        start_input: "{}".to_owned(),
    })
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(name): Path<String>,
    query: Result<Query<Shown>, QueryRejection>,
) -> PageResult {
    let Query(shown) = query.map_err(HttpError::from)?;
    Ok(render(
        &workflow_page(&console, &admin, &name, &shown).await?,
    ))
}

/// The editor's text as JSON, or a notice naming the line and column.
fn parse_definition(form: &DefinitionForm) -> Result<Value, Notice> {
    form.definition().map_err(|refused| Notice {
        ok: false,
        text: refused.reason,
        pointer: None,
    })
}

fn refused(err: ops::Error) -> Result<Notice, PageError> {
    match err {
        ops::Error::InvalidInput { field, reason } => Ok(Notice {
            ok: false,
            text: reason,
            pointer: (!field.is_empty()).then_some(field),
        }),
        other => Err(other.into()),
    }
}

/// The page again with what was submitted and what became of it.
async fn answer(
    console: &Console,
    admin: &Admin,
    name: &str,
    form: &DefinitionForm,
    notice: Notice,
) -> PageResult {
    let mut page = workflow_page(console, admin, name, &Shown::default()).await?;
    page.editor = form.definition.clone();
    page.return_to = safe_return(&form.return_to);
    let status = if notice.ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    page.notice = Some(notice);
    Ok((status, render(&page)).into_response())
}

pub async fn validate(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<DefinitionForm>,
) -> PageResult {
    admin.check(&form.csrf)?;
    let notice = match parse_definition(&form) {
        Err(notice) => notice,
        Ok(definition) => match console.flows()?.validate(&definition) {
            Ok(valid) => Notice {
                ok: true,
                text: format!(
                    "valid: {} states, starting at {}",
                    valid.states, valid.start_at
                ),
                pointer: None,
            },
            Err(err) => refused(err)?,
        },
    };
    answer(&console, &admin, &name, &form, notice).await
}

pub async fn save(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<DefinitionForm>,
) -> PageResult {
    admin.check(&form.csrf)?;
    let definition = match parse_definition(&form) {
        Ok(definition) => definition,
        Err(notice) => return answer(&console, &admin, &name, &form, notice).await,
    };
    match console.flows()?.put_workflow(&name, &definition).await {
        Ok(stored) => {
            let back = safe_return(&form.return_to);
            if back.is_empty() {
                Ok(see(&format!(
                    "/ui/workflows/{}?version={}",
                    encode(&name),
                    stored.version
                )))
            } else {
                Ok(see(&back))
            }
        }
        Err(err) => {
            let notice = refused(err)?;
            answer(&console, &admin, &name, &form, notice).await
        }
    }
}

pub async fn start(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(workflow): Path<String>,
    Form(form): Form<StartForm>,
) -> PageResult {
    admin.check(&form.csrf)?;
    let (input, name) = (form.input()?, form.name());
    let started = console
        .flows()?
        .start(&workflow, StartRequest { input, name })
        .await?;
    Ok(see(&format!(
        "/ui/executions/{}",
        encode(&started.execution.id)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_shows_what_changed_with_its_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        let lines = diff(old, new);
        let signs: String = lines.iter().map(|l| l.sign).collect();
        assert_eq!(signs, "@   -+   ");
        assert_eq!(lines[0].text, "lines 2-8 → 2-8");
        assert_eq!(lines[4].text, "e");
        assert_eq!(lines[5].text, "E");
        assert!(diff("same\n", "same\n").is_empty());
    }

    #[test]
    fn only_console_pages_are_returned_to() {
        assert_eq!(safe_return("/ui/executions/abc"), "/ui/executions/abc");
        assert_eq!(safe_return("https://evil.example"), "");
        assert_eq!(safe_return("//evil.example/ui/"), "");
    }
}
