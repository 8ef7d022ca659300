//! `sluice query SQL`: the query operation's rows as a table or CSV, the whole result as
//! Parquet on request, and what it read (files and partitions, and the conditions that pruned).

use anyhow::Context as _;

use super::Context;
use crate::cli::{QueryArgs, QueryFormat};
use crate::output::{Report, table_of};

pub async fn run(args: &QueryArgs, context: &Context) -> anyhow::Result<Report> {
    let request = ops::QueryRequest {
        catalog: args.catalog.clone(),
        max_rows: args.max_rows,
        ..ops::QueryRequest::new(&args.sql)
    };
    let (output, frame) = context.ops.query_frame(&request).await?;
    if let Some(path) = &args.parquet {
        let bytes = jobs::query::to_parquet(&frame)?;
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut text = match args.format {
        QueryFormat::Csv => jobs::query::to_csv(&frame.head(Some(args.max_rows)))?,
        QueryFormat::Table => {
            let headers: Vec<String> = output.columns.iter().map(|c| c.name.clone()).collect();
            let rows = jobs::query::rows_text(&frame, args.max_rows);
            format!("{}\n", table_of(&headers, &rows))
        }
    };
    if args.format == QueryFormat::Table {
        text.push_str(&format!(
            "{} rows{}; read {} of {} files",
            output.row_count,
            if output.truncated {
                format!(" ({} shown)", args.max_rows)
            } else {
                String::new()
            },
            output.files_read,
            output.files_total
        ));
        for table in &output.tables {
            if !table.pruned_by.is_empty() {
                text.push_str(&format!(
                    "\n{}: {} of {} partitions ({})",
                    table.table,
                    table.partitions_read,
                    table.partitions_total,
                    table.pruned_by.join(" AND ")
                ));
            }
        }
        if let Some(path) = &args.parquet {
            text.push_str(&format!("\nresult written to {}", path.display()));
        }
    }
    Ok(Report::new(serde_json::to_value(&output)?, text))
}
