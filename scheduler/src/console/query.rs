//! `/ui/query`: a SQL box over the catalog's tables, the same operation as `sluice query`
//! (polars' SQL, partitions pruned by the query's conditions): the first rows of the result,
//! and for each table how many of its files and partitions were read. A query is sent with
//! POST (it can be costly, so it carries the session's CSRF value like any form).

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ops::{QueryOutput, QueryRequest};
use serde_json::Value;

use super::session::Admin;
use super::{Chrome, Console, PageResult, render};

/// Rows shown at most.
const ROWS: usize = 500;

#[derive(Template)]
#[template(path = "console/query.html")]
struct QueryPage {
    chrome: Chrome,
    sql: String,
    tables: Vec<String>,
    output: Option<Shown>,
    error: Option<String>,
}

/// A result as the page shows it.
pub struct Shown {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub row_count: usize,
    pub truncated: bool,
    /// Per table: name, files read of total, partitions read of total, conditions.
    pub reads: Vec<String>,
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn shown(output: &QueryOutput) -> Shown {
    let columns: Vec<String> = output.columns.iter().map(|c| c.name.clone()).collect();
    Shown {
        rows: output
            .rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|c| row.get(c).map(cell).unwrap_or_default())
                    .collect()
            })
            .collect(),
        columns,
        row_count: output.row_count,
        truncated: output.truncated,
        reads: output
            .tables
            .iter()
            .map(|t| {
                let pruned = if t.pruned_by.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", t.pruned_by.join(" AND "))
                };
                format!(
                    "{}: {} of {} files, {} of {} partitions{pruned}",
                    t.table, t.files_read, t.files_total, t.partitions_read, t.partitions_total
                )
            })
            .collect(),
    }
}

async fn page(
    console: &Console,
    admin: &Admin,
    sql: String,
) -> Result<QueryPage, super::PageError> {
    let tables = console.ops.catalog_tables(None).await?;
    Ok(QueryPage {
        chrome: admin.chrome("query"),
        sql,
        tables: tables.into_iter().map(|t| t.name).collect(),
        output: None,
        error: None,
    })
}

pub async fn form(State(console): State<Arc<Console>>, admin: Admin) -> PageResult {
    Ok(render(&page(&console, &admin, String::new()).await?))
}

pub use wire::console::QueryForm;

pub async fn run(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Form(form): Form<QueryForm>,
) -> PageResult {
    admin.check(&form.csrf)?;
    let mut shown_page = page(&console, &admin, form.sql.clone()).await?;
    let request = QueryRequest {
        max_rows: ROWS,
        ..QueryRequest::new(form.sql)
    };
    let status = match console.ops.query(&request).await {
        Ok(output) => {
            shown_page.output = Some(shown(&output));
            StatusCode::OK
        }
        // A query the user wrote wrong is theirs to fix: shown beside it.
        Err(ops::Error::InvalidInput { reason, .. }) => {
            shown_page.error = Some(reason);
            StatusCode::BAD_REQUEST
        }
        Err(ops::Error::NotFound { what, .. }) => {
            shown_page.error = Some(what);
            StatusCode::NOT_FOUND
        }
        Err(other) => return Err(other.into()),
    };
    Ok((status, render(&shown_page)).into_response())
}
