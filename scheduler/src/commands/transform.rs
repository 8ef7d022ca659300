//! `sluice transform TABLE SQL`: the transform operation's report as text.

use super::Context;
use crate::cli::TransformArgs;
use crate::output::Report;

pub fn request(args: &TransformArgs) -> ops::TransformRequest {
    ops::TransformRequest {
        partition_by: args.partition_by.clone(),
        dest: args.dest.clone(),
        force: args.force,
        catalog: args.catalog.clone(),
        ..ops::TransformRequest::new(&args.table, &args.sql)
    }
}

pub async fn run(args: &TransformArgs, context: &Context) -> anyhow::Result<Report> {
    let report = context.ops.transform(&request(args)).await?;
    let reads: Vec<String> = report
        .sources
        .iter()
        .map(|s| format!("{} ({} of {} files)", s.table, s.files_read, s.files_total))
        .collect();
    let text = match report.status {
        jobs::transform::TransformStatus::Built => format!(
            "built {}: {} rows in {} files ({} bytes, {} partitions) at {}, schema version {}{}\nread {}\ninput {} (run {}), {} ms",
            report.table,
            report.rows,
            report.files,
            report.bytes,
            report.partitions,
            report.location,
            report.schema_version,
            if report.schema_changed { " (new)" } else { "" },
            reads.join(", "),
            report.input_id,
            report.run_id,
            report.duration_ms
        ),
        jobs::transform::TransformStatus::Unchanged => format!(
            "{} is up to date: built by run {} from the same input {} ({} rows in {} files); nothing written (--force rebuilds)",
            report.table, report.run_id, report.input_id, report.rows, report.files
        ),
    };
    Ok(Report::new(serde_json::to_value(&report)?, text))
}
