//! `sluice catalog ...`: tables, one table, schema versions and diffs, partitions, objects, crawls.

use anyhow::Context as _;
use jobs::catalog::schema::{SchemaDiff, diff, type_name};
use jobs::catalog::{Catalog, CatalogDbName, SchemaPolicy, TableInfo};
use jobs::convert::mapping::Mapping;
use serde_json::{Value, json};

use super::Context;
use crate::cli::CatalogCommand;
use crate::output::{Report, bytes, table, time};

pub async fn run(command: &CatalogCommand, context: &Context) -> anyhow::Result<Report> {
    let catalog = context.catalog().await?;
    dispatch(command, context, &catalog).await
}

async fn dispatch(
    command: &CatalogCommand,
    context: &Context,
    catalog: &Catalog,
) -> anyhow::Result<Report> {
    match command {
        CatalogCommand::Tables(args) => tables(context, args.catalog.as_deref()).await,
        CatalogCommand::Show { table, args } => show(context, args.catalog.as_deref(), table).await,
        CatalogCommand::Versions { table, args } => {
            versions(
                catalog,
                &context.catalog_db(args.catalog.as_deref())?,
                table,
            )
            .await
        }
        CatalogCommand::Diff {
            table,
            from,
            to,
            args,
        } => {
            let db = context.catalog_db(args.catalog.as_deref())?;
            let (old, new) = (
                catalog.version(&db, table, *from).await?,
                catalog.version(&db, table, *to).await?,
            );
            let changes = diff(&old.schema, &new.schema);
            Ok(Report::new(
                json!({"table": table, "from": from, "to": to, "diff": changes}),
                diff_text(&changes, &format!("{table}: version {from} -> {to}")),
            ))
        }
        CatalogCommand::Partitions { table: name, args } => {
            let db = context.catalog_db(args.catalog.as_deref())?;
            let info = catalog.table(&db, name).await?;
            let partitions = catalog.partitions(&db, name).await?;
            let keys: Vec<&str> = info
                .partition_keys
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            let json = partitions
                .iter()
                .map(|p| json!({"location": p.location, "values": p.values, "objects": p.object_count, "bytes": p.bytes, "records": p.record_estimate}))
                .collect::<Vec<_>>();
            let text = table(
                ["partition", "location", "objects", "bytes", "records"],
                partitions.iter().map(|p| {
                    let values = keys
                        .iter()
                        .zip(&p.values)
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("/");
                    [
                        values,
                        p.location.clone(),
                        p.object_count.to_string(),
                        bytes(p.bytes),
                        p.record_estimate.to_string(),
                    ]
                }),
            );
            Ok(Report::new(
                json!({"table": name, "partition_keys": keys, "partitions": json}),
                format!("{text}\n{} partitions", partitions.len()),
            ))
        }
        CatalogCommand::Objects { failed } => {
            let objects = catalog.objects(*failed).await?;
            let json: Vec<Value> = objects
                .iter()
                .map(|o| json!({"key": o.key, "status": o.status, "table": o.table, "format": o.format, "compression": o.compression,
                    "size": o.size, "records": o.records, "records_exact": o.records_exact, "malformed_in_sample": o.malformed_records,
                    "failure_reason": o.failure_reason}))
                .collect();
            let text = table(
                ["key", "status", "table", "format", "records", "reason"],
                objects.iter().map(|o| {
                    [
                        o.key.clone(),
                        o.status.to_string(),
                        o.table.clone().unwrap_or_default(),
                        o.format.clone().unwrap_or_default(),
                        format!("{}{}", o.records, if o.records_exact { "" } else { "~" }),
                        o.failure_reason.clone().unwrap_or_default(),
                    ]
                }),
            );
            Ok(Report::new(
                Value::Array(json),
                format!("{text}\n{} objects", objects.len()),
            ))
        }
        CatalogCommand::Crawls { limit } => {
            let crawls = catalog.crawls(*limit).await?;
            let json: Vec<Value> = crawls
                .iter()
                .map(|c| json!({"id": c.id, "catalog": c.catalog_db, "prefix": c.prefix, "status": c.status, "started_at": time(c.started_at),
                    "listed": c.objects_listed, "crawled": c.objects_crawled, "failed": c.objects_failed, "skipped": c.objects_skipped,
                    "bytes_read": c.bytes_read, "duration_ms": c.duration_ms, "error": c.error}))
                .collect();
            let text = table(
                [
                    "id", "started", "prefix", "status", "listed", "crawled", "failed", "skipped",
                    "ms",
                ],
                crawls.iter().map(|c| {
                    [
                        c.id.to_string(),
                        time(c.started_at),
                        c.prefix.clone(),
                        c.status.to_string(),
                        c.objects_listed.to_string(),
                        c.objects_crawled.to_string(),
                        c.objects_failed.to_string(),
                        c.objects_skipped.to_string(),
                        c.duration_ms.to_string(),
                    ]
                }),
            );
            Ok(Report::new(Value::Array(json), text))
        }
        CatalogCommand::SetMapping {
            table: name,
            file,
            clear,
            args,
        } => {
            let db = context.catalog_db(args.catalog.as_deref())?;
            let mapping = match (file, clear) {
                (_, true) => None,
                (Some(path), false) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let mapping: Mapping = serde_json::from_str(&text)
                        .with_context(|| format!("invalid mapping in {}", path.display()))?;
                    mapping.validate(&catalog.table(&db, name).await?.schema)?;
                    Some(mapping)
                }
                (None, false) => anyhow::bail!("give a mapping file or --clear"),
            };
            let value = mapping
                .as_ref()
                .map(|m| serde_json::to_value(m).expect("serializes"));
            catalog
                .set_table_property(&db, name, "mapping", value.clone())
                .await?;
            let text = match &mapping {
                Some(_) => format!("table {name}: mapping set; the next conversion applies it"),
                None => format!("table {name}: mapping cleared"),
            };
            Ok(Report::new(json!({"table": name, "mapping": value}), text))
        }
        CatalogCommand::Conflicts { table, all, args } => {
            let request = ops::TypeChangesRequest {
                catalog: args.catalog.clone(),
                table: table.clone(),
                all: *all,
            };
            let output = context.ops.type_changes(&request).await?;
            Ok(type_changes_report(&output))
        }
        CatalogCommand::AcceptChange {
            table,
            column,
            to,
            reason,
            args,
        } => {
            let request = decision(table, column, to, reason, args);
            let change = context
                .ops
                .accept_type_change(&request, &decided_by())
                .await?;
            let text = format!(
                "table {table}: column {column} is {to} from schema version {}; the next conversion writes it so",
                change.applied_version.unwrap_or_default()
            );
            Ok(Report::new(json!(change), text))
        }
        CatalogCommand::DismissChange {
            table,
            column,
            to,
            reason,
            args,
        } => {
            let request = decision(table, column, to, reason, args);
            let change = context
                .ops
                .dismiss_type_change(&request, &decided_by())
                .await?;
            let text = format!(
                "table {table}: column {column} stays {}; values that are not are quarantined",
                change.from
            );
            Ok(Report::new(json!(change), text))
        }
        CatalogCommand::SetPolicy {
            table: name,
            policy,
            args,
        } => {
            let db = context.catalog_db(args.catalog.as_deref())?;
            let policy: SchemaPolicy = policy.parse()?;
            catalog.set_schema_policy(&db, name, policy).await?;
            Ok(Report::new(
                json!({"table": name, "schema_policy": policy.as_str()}),
                format!("table {name}: schema policy {}", policy.as_str()),
            ))
        }
    }
}

fn decision(
    table: &str,
    column: &str,
    to: &str,
    reason: &Option<String>,
    args: &crate::cli::CatalogArgs,
) -> ops::TypeChangeDecision {
    ops::TypeChangeDecision {
        catalog: args.catalog.clone(),
        table: table.to_owned(),
        column: column.to_owned(),
        to: to.to_owned(),
        reason: reason.clone(),
    }
}

/// Who decides at the command line: the login user.
fn decided_by() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

fn counts_text(counts: &[(String, u64)]) -> String {
    counts
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn type_changes_report(output: &ops::TypeChangesOutput) -> Report {
    let text = table(
        [
            "table",
            "column",
            "change",
            "status",
            "values seen",
            "objects",
            "since",
        ],
        output.changes.iter().map(|c| {
            [
                c.table.clone(),
                c.column.clone(),
                format!("{} -> {}", c.from, c.to),
                c.status.to_string(),
                counts_text(&c.counts),
                c.objects_total.to_string(),
                time(c.first_seen),
            ]
        }),
    );
    let hint = if output.changes.is_empty() {
        "no type changes are pending".to_owned()
    } else {
        format!(
            "{} type changes; accept one with `sluice catalog accept-change TABLE COLUMN TYPE`",
            output.changes.len()
        )
    };
    Report::new(json!(output), format!("{text}\n{hint}"))
}

async fn tables(context: &Context, catalog: Option<&str>) -> anyhow::Result<Report> {
    let db = context.catalog_db(catalog)?;
    let tables = context.ops.catalog_tables(catalog).await?;
    let json: Vec<Value> = tables.iter().map(table_json).collect();
    let text = table(
        [
            "table",
            "kind",
            "location",
            "format",
            "compression",
            "version",
            "columns",
            "partitions",
            "objects",
            "bytes",
            "records",
        ],
        tables.iter().map(|t| {
            [
                t.name.clone(),
                t.kind.as_str().to_owned(),
                t.location.clone(),
                t.format.clone(),
                t.compression.clone(),
                t.current_version.to_string(),
                t.schema.fields().len().to_string(),
                t.partitions.to_string(),
                t.objects.to_string(),
                bytes(t.bytes),
                t.records.to_string(),
            ]
        }),
    );
    Ok(Report::new(
        Value::Array(json),
        format!("{text}\n{} tables in catalog database {db}", tables.len()),
    ))
}

fn table_json(t: &TableInfo) -> Value {
    json!({
        "name": t.name, "catalog": t.catalog_db, "kind": t.kind.as_str(), "location": t.location, "format": t.format,
        "compression": t.compression, "schema_policy": t.schema_policy.as_str(), "version": t.current_version,
        "columns": t.schema.fields().iter().map(|f| json!({"name": f.name(), "type": type_name(f.data_type())})).collect::<Vec<_>>(),
        "partition_keys": t.partition_keys.iter().map(|f| json!({"name": f.name(), "type": type_name(f.data_type())})).collect::<Vec<_>>(),
        "partitions": t.partitions, "objects": t.objects, "bytes": t.bytes, "records": t.records,
        "properties": t.properties, "created_at": time(t.created_at), "updated_at": time(t.updated_at),
    })
}

async fn show(context: &Context, catalog: Option<&str>, name: &str) -> anyhow::Result<Report> {
    let ops::TableDetail {
        info,
        conflicts,
        pending,
        ..
    } = context.ops.catalog_table(catalog, name).await?;
    let mut json = table_json(&info);
    json["conflicts"] = conflicts
        .iter()
        .map(|(crawl_id, c)| {
            json!({"column": c.path, "types": c.types, "counts": c.counts, "examples": c.examples,
                "type": c.resolved, "resolution": c.resolution, "crawl_id": crawl_id})
        })
        .collect();
    json["pending_changes"] = json!(pending);
    let mut text = format!(
        "table {}.{} ({}) at {}\nformat {} ({}), schema version {} (policy {}), {} objects, {}, {} records in {} partitions\n",
        info.catalog_db,
        info.name,
        info.kind.as_str(),
        info.location,
        info.format,
        info.compression,
        info.current_version,
        info.schema_policy.as_str(),
        info.objects,
        bytes(info.bytes),
        info.records,
        info.partitions
    );
    let mut rows: Vec<[String; 3]> = info
        .schema
        .fields()
        .iter()
        .map(|f| [f.name().clone(), type_name(f.data_type()), String::new()])
        .collect();
    rows.extend(info.partition_keys.iter().map(|f| {
        [
            f.name().clone(),
            type_name(f.data_type()),
            "partition key".to_owned(),
        ]
    }));
    text.push_str(&table(["column", "type", ""], rows));
    if let Some(codes) = info.properties.get("error_codes") {
        text.push_str(&format!("\nerror codes: {codes}"));
    }
    for (_, c) in &conflicts {
        let fate = match c.resolution {
            jobs::crawler::infer::Resolution::Quarantined => "the others are quarantined",
            jobs::crawler::infer::Resolution::WrittenAsText => "every value is written as text",
        };
        text.push_str(&format!(
            "\nconflict: {} saw {} ({}); it is {}, {fate}",
            c.path,
            if c.counts.is_empty() {
                c.types.join(" and ")
            } else {
                counts_text(&c.counts)
            },
            c.examples
                .iter()
                .map(|(t, e)| format!("{t}: {e}"))
                .collect::<Vec<_>>()
                .join(", "),
            c.resolved,
        ));
    }
    for change in &pending {
        text.push_str(&format!(
            "\npending: {} {} -> {} ({} in {} objects since {}); `sluice catalog accept-change {name} {} {}`",
            change.column,
            change.from,
            change.to,
            counts_text(&change.counts),
            change.objects_total,
            time(change.first_seen),
            change.column,
            change.to,
        ));
    }
    Ok(Report::new(json, text))
}

async fn versions(catalog: &Catalog, db: &CatalogDbName, name: &str) -> anyhow::Result<Report> {
    let versions = catalog.versions(db, name).await?;
    let logged = catalog.schema_changes(db, name).await?;
    let json = json!({
        "table": name,
        "versions": versions.iter().map(|v| json!({"version": v.version, "crawl": v.crawl_id, "created_at": time(v.created_at),
            "columns": v.schema.fields().len(), "diff": v.diff})).collect::<Vec<_>>(),
        "logged_changes": logged.iter().map(|c| json!({"crawl": c.crawl_id, "against_version": c.version, "created_at": time(c.created_at), "diff": c.diff})).collect::<Vec<_>>(),
    });
    let mut text = table(
        [
            "version", "created", "crawl", "columns", "added", "widened", "changed", "removed",
        ],
        versions.iter().map(|v| {
            [
                v.version.to_string(),
                time(v.created_at),
                v.crawl_id.map(|c| c.to_string()).unwrap_or_default(),
                v.schema.fields().len().to_string(),
                v.diff.added.len().to_string(),
                v.diff.widened.len().to_string(),
                v.diff.changed.len().to_string(),
                v.diff.removed.len().to_string(),
            ]
        }),
    );
    for change in &logged {
        text.push('\n');
        text.push_str(&diff_text(
            &change.diff,
            &format!(
                "logged (not applied) against version {} by crawl {}",
                change.version, change.crawl_id
            ),
        ));
    }
    Ok(Report::new(json, text))
}

fn diff_text(d: &SchemaDiff, title: &str) -> String {
    let mut lines = vec![title.to_owned()];
    lines.extend(d.lines().into_iter().map(|line| format!("  {line}")));
    if d.is_empty() {
        lines.push("  (no changes)".into());
    }
    lines.join("\n")
}
