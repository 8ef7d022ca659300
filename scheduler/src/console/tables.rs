//! `/ui/tables`: the catalog's tables, and a table's page: its columns, its schema versions
//! with what each changed, the type conflicts its crawls resolved, the type changes waiting for
//! a person with their evidence (Accept makes a schema version, Dismiss keeps the type), its
//! conversion runs with their reconciliation (read = written + quarantined) and its partitions;
//! a run's quarantine, browsable by the kind of reason; the objects the crawler could not read.
//! Adapters over the catalog's operations (`ops::catalog`).

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use jobs::catalog::schema::type_name;
use ops::{QuarantineView, TypeChangeDecision};

use super::session::Admin;
use super::{Chrome, Console, PageResult, encode, render, see};
use crate::http_error::HttpError;
use crate::output::{bytes, time};

pub struct TableRow {
    pub name: String,
    pub kind: String,
    pub location: String,
    pub version: i64,
    pub columns: usize,
    pub partitions: i64,
    pub objects: i64,
    pub size: String,
    pub records: i64,
}

#[derive(Template)]
#[template(path = "console/tables.html")]
struct ListPage {
    chrome: Chrome,
    tables: Vec<TableRow>,
    /// Objects the crawler could not read: (key, size, reason).
    failed: Vec<(String, String, String)>,
}

pub async fn list(State(console): State<Arc<Console>>, admin: Admin) -> PageResult {
    let tables = console.ops.catalog_tables(None).await?;
    let failed = console
        .ops
        .failed_objects()
        .await?
        .into_iter()
        .map(|o| (o.key, bytes(o.size), o.failure_reason.unwrap_or_default()))
        .collect();
    Ok(render(&ListPage {
        chrome: admin.chrome("tables"),
        failed,
        tables: tables
            .iter()
            .map(|t| TableRow {
                name: t.name.clone(),
                kind: t.kind.as_str().to_owned(),
                location: t.location.clone(),
                version: t.current_version,
                columns: t.schema.fields().len(),
                partitions: t.partitions,
                objects: t.objects,
                size: bytes(t.bytes),
                records: t.records,
            })
            .collect(),
    }))
}

pub struct Column {
    pub name: String,
    pub type_name: String,
    pub partition_key: bool,
}

/// A schema version and what it changed, one line per change.
pub struct VersionRow {
    pub version: i64,
    pub created: String,
    pub crawl: String,
    pub changes: Vec<String>,
}

pub struct PendingRow {
    pub column: String,
    pub from: String,
    pub to: String,
    pub evidence: String,
    pub objects: Vec<String>,
    pub objects_total: i64,
    pub first_seen: String,
}

pub struct ConflictRow {
    pub column: String,
    pub crawl: i64,
    pub seen: String,
    pub examples: String,
    pub resolved: String,
}

pub struct RunRow {
    pub id: i64,
    pub status: String,
    pub started: String,
    pub took: String,
    pub sources: i64,
    pub read: i64,
    pub written: i64,
    pub quarantined: i64,
    pub reconciled: bool,
    pub files: i64,
    pub size: String,
    pub error: String,
    pub has_quarantine: bool,
}

pub struct PartitionRow {
    pub values: String,
    pub location: String,
    pub objects: i64,
    pub size: String,
    pub records: i64,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "console/table.html")]
struct TablePage {
    chrome: Chrome,
    name: String,
    facts: Vec<(&'static str, String)>,
    columns: Vec<Column>,
    versions: Vec<VersionRow>,
    pending: Vec<PendingRow>,
    conflicts: Vec<ConflictRow>,
    partitions: Vec<PartitionRow>,
    runs: Vec<RunRow>,
    /// Partitions not shown (past the first 200).
    more_partitions: usize,
}

fn counted(counts: &[(String, u64)]) -> String {
    counts
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn page(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(name): Path<String>,
) -> PageResult {
    let detail = console.ops.catalog_table(None, &name).await?;
    let info = &detail.info;
    let mut columns: Vec<Column> = info
        .schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name().clone(),
            type_name: type_name(f.data_type()),
            partition_key: false,
        })
        .collect();
    columns.extend(info.partition_keys.iter().map(|f| Column {
        name: f.name().clone(),
        type_name: type_name(f.data_type()),
        partition_key: true,
    }));
    let facts = vec![
        ("Catalog database", info.catalog_db.clone()),
        ("Kind", info.kind.as_str().to_owned()),
        ("Location", info.location.clone()),
        ("Format", format!("{} ({})", info.format, info.compression)),
        (
            "Schema",
            format!(
                "version {} (policy {})",
                info.current_version,
                info.schema_policy.as_str()
            ),
        ),
        (
            "Objects",
            format!("{} ({})", info.objects, bytes(info.bytes)),
        ),
        ("Records", info.records.to_string()),
        ("Partitions", info.partitions.to_string()),
        ("Updated (UTC)", time(info.updated_at)),
    ];
    const SHOWN: usize = 200;
    Ok(render(&TablePage {
        chrome: admin.chrome("tables"),
        name: info.name.clone(),
        facts,
        columns,
        versions: detail
            .versions
            .iter()
            .map(|v| VersionRow {
                version: v.version,
                created: time(v.created_at),
                crawl: v.crawl_id.map(|c| c.to_string()).unwrap_or_default(),
                changes: v.diff.lines(),
            })
            .collect(),
        pending: detail
            .pending
            .iter()
            .map(|c| PendingRow {
                column: c.column.clone(),
                from: c.from.clone(),
                to: c.to.clone(),
                evidence: counted(&c.counts),
                objects: c.objects.iter().take(5).cloned().collect(),
                objects_total: c.objects_total,
                first_seen: time(c.first_seen),
            })
            .collect(),
        conflicts: detail
            .conflicts
            .iter()
            .map(|(crawl, c)| ConflictRow {
                column: c.path.clone(),
                crawl: *crawl,
                seen: if c.counts.is_empty() {
                    c.types.join(", ")
                } else {
                    counted(&c.counts)
                },
                examples: c
                    .examples
                    .iter()
                    .map(|(t, e)| format!("{t}: {e}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                resolved: c.resolved.clone(),
            })
            .collect(),
        partitions: detail
            .partitions
            .iter()
            .take(SHOWN)
            .map(|p| PartitionRow {
                values: p.values.join(" / "),
                location: p.location.clone(),
                objects: p.object_count,
                size: bytes(p.bytes),
                records: p.record_estimate,
                updated: time(p.updated_at),
            })
            .collect(),
        more_partitions: detail.partitions.len().saturating_sub(SHOWN),
        runs: detail
            .runs
            .iter()
            .map(|r| RunRow {
                id: r.id,
                status: r.status.clone(),
                started: time(r.started_at),
                took: super::executions::duration(r.duration_ms),
                sources: r.sources,
                read: r.records_read,
                written: r.records_written,
                quarantined: r.records_quarantined,
                reconciled: r.reconciled(),
                files: r.files,
                size: bytes(r.bytes_written),
                error: r.error.clone().unwrap_or_default(),
                has_quarantine: r.quarantine.is_some(),
            })
            .collect(),
    }))
}

#[derive(Template)]
#[template(path = "console/quarantine.html")]
struct QuarantinePage {
    chrome: Chrome,
    view: QuarantineView,
    /// The kind shown, when one was chosen.
    reason: Option<String>,
    records: Vec<super::pretty::Shown>,
}

pub use wire::console::ReasonQuery;

/// Records shown on a quarantine page.
const RECORDS: usize = 200;

pub async fn quarantine(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path((name, run)): Path<(String, i64)>,
    query: Result<axum::extract::Query<ReasonQuery>, axum::extract::rejection::QueryRejection>,
) -> PageResult {
    let axum::extract::Query(query) = query.map_err(HttpError::from)?;
    let reason = query.reason.filter(|r| !r.is_empty());
    let view = console
        .ops
        .quarantine(None, &name, run, reason.as_deref(), RECORDS)
        .await?;
    Ok(render(&QuarantinePage {
        chrome: admin.chrome("tables"),
        records: view.records.iter().map(super::pretty::show).collect(),
        view,
        reason,
    }))
}

use wire::console::Decision;
pub use wire::console::DecisionForm;

/// Accept or Dismiss a pending type change.
pub async fn decide(
    State(console): State<Arc<Console>>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<DecisionForm>,
) -> PageResult {
    admin.check(&form.csrf)?;
    let decision = form.decision()?;
    let request = TypeChangeDecision {
        catalog: None,
        table: name.clone(),
        reason: form.reason(),
        column: form.column,
        to: form.to,
    };
    let by = format!("console:{}", admin.name);
    match decision {
        Decision::Accept => console.ops.accept_type_change(&request, &by).await?,
        Decision::Dismiss => console.ops.dismiss_type_change(&request, &by).await?,
    };
    Ok(see(&format!("/ui/tables/{}", encode(&name))))
}
