//! `sluice convert` and `sluice vacuum`.

use jobs::convert::ConvertReport;
use ops::{CompactRequest, ConvertRequest, Observer, VacuumRequest};
use serde_json::json;

use super::Context;
use crate::cli::{CompactArgs, ConvertArgs, VacuumArgs};
use crate::output::{Report, bytes, table};

/// The conversion request the flags make, parsed as a task input is: one place (the request's
/// own parse) turns the flags into a `ConvertMode`.
pub fn convert_request(args: &ConvertArgs) -> anyhow::Result<ConvertRequest> {
    let partition_by = if args.partition_by.ends_with("hour") {
        "hour"
    } else {
        "day"
    };
    Ok(ops::request::from_json(json!({
        "table": args.table, "dest": args.dest, "partition_by": partition_by,
        "event_time": args.event_time, "dry_run": args.dry_run, "reprocess": args.reprocess,
        "from": args.from.map(|d| d.to_string()), "to": args.to.map(|d| d.to_string()),
        "target_file_mib": args.target_file_mib, "row_group_rows": args.row_group_rows,
        "catalog": args.catalog, "objects": args.objects,
    }))?)
}

pub async fn convert(args: &ConvertArgs, context: &Context) -> anyhow::Result<Report> {
    let request = convert_request(args)?;
    Ok(convert_report(
        &context.ops.convert(&request, &Observer::none()).await?,
    ))
}

pub fn convert_report(report: &ConvertReport) -> Report {
    let verb = if report.dry_run {
        "would convert"
    } else {
        "converted"
    };
    let mut text = if report.sources == 0 {
        format!("{}: nothing new to convert", report.table)
    } else if report.dry_run {
        format!(
            "{}: {verb} {} objects ({}) into {}",
            report.table,
            report.sources,
            bytes(report.source_bytes),
            report.curated_table
        )
    } else {
        format!(
            "{}: run {} {verb} {} objects ({}) into {}: {} files ({}) in {} partitions, event time {}, schema version {}, {} ms\n{}",
            report.table,
            report.run_id.unwrap_or_default(),
            report.sources,
            bytes(report.source_bytes),
            report.curated_table,
            report.files.len(),
            bytes(report.bytes_written),
            report.partitions.len(),
            report
                .event_time
                .as_deref()
                .unwrap_or("none (arrival time)"),
            report.schema_version.unwrap_or_default(),
            report.duration_ms,
            table(
                ["records read", "written", "quarantined", "reconciled"],
                [[
                    report.records_read.to_string(),
                    report.records_written.to_string(),
                    report.records_quarantined.to_string(),
                    if report.reconciled {
                        "yes: read = written + quarantined".to_owned()
                    } else {
                        "NO".to_owned()
                    }
                ]]
            )
        )
    };
    if !report.new_columns.is_empty() {
        text.push_str(&format!(
            "\nnew columns found beyond the crawl's sample: {}",
            report.new_columns.join(", ")
        ));
    }
    if let Some(quarantine) = &report.quarantine {
        text.push_str(&format!(
            "\nquarantined records, with their source, line and reason: {quarantine}"
        ));
    }
    for (key, reason) in &report.unreadable {
        text.push_str(&format!("\nunreadable object {key}: {reason}"));
    }
    if let Some(scope) = &report.reprocessed {
        text.push_str(&format!(
            "\nreprocessed {} to {}: {} files replaced in {} partitions (the range's, and those its objects also fed): {}",
            scope.from.map(|d| d.to_string()).unwrap_or_default(),
            scope.to.map(|d| d.to_string()).unwrap_or_default(),
            scope.files.len(),
            scope.partitions.len(),
            scope.partitions.join(", ")
        ));
    }
    Report::new(serde_json::to_value(report).expect("serializes"), text)
}

pub async fn compact(args: &CompactArgs, context: &Context) -> anyhow::Result<Report> {
    let request = CompactRequest {
        table: args.table.clone(),
        target_file_mib: args.target_file_mib,
        catalog: args.catalog.clone(),
    };
    let report = context.ops.compact(&request).await?;
    let text = if report.files_before == 0 {
        format!("{}: nothing to compact", report.table)
    } else {
        format!(
            "{}: {} files ({}) merged into {} ({}) in {} partitions; {} rows kept; {} ms",
            report.table,
            report.files_before,
            bytes(report.bytes_before),
            report.files_after,
            bytes(report.bytes_after),
            report.partitions_compacted,
            report.rows,
            report.duration_ms
        )
    };
    Ok(Report::new(json!(report), text))
}

pub async fn vacuum(args: &VacuumArgs, context: &Context) -> anyhow::Result<Report> {
    let request = VacuumRequest {
        grace_minutes: args.grace_minutes,
    };
    let report = context.ops.vacuum(&request).await?;
    let text = format!(
        "published {} stranded files; cleaned {} abandoned runs ({} objects); deleted {} replaced files",
        report.files_published,
        report.runs_cleaned.len(),
        report.objects_deleted,
        report.replaced_files_deleted
    );
    Ok(Report::new(json!(report), text))
}

/// `sluice expire`: one retention pass now, as each server runs every few minutes.
pub async fn expire(context: &Context) -> anyhow::Result<Report> {
    let (workflows, _) = context.workflows().await?;
    let report = context.ops.expire(&workflows, chrono::Utc::now()).await?;
    let text = format!(
        "deleted {} ended executions ({} history events), {} cron ticks and trigger firings, \
         {} queue records, {} notification deliveries, {} forecast runs ({} files)",
        report.executions,
        report.events,
        report.ticks,
        report.queue_tasks,
        report.notification_deliveries,
        report.forecast_runs,
        report.forecast_files
    );
    Ok(Report::new(json!(report), text))
}
