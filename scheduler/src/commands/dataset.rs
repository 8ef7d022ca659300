//! `sluice dataset`: DeepAR series from a curated table, as JSON lines plus a manifest.

use ops::{DatasetManifest, DatasetRequest};

use super::Context;
use crate::cli::DatasetArgs;
use crate::output::{Report, table};

/// The dataset request the flags make.
pub fn dataset_request(args: &DatasetArgs) -> anyhow::Result<DatasetRequest> {
    Ok(DatasetRequest {
        table: args.table.clone(),
        item: args.items.clone(),
        target: args.target.clone(),
        prediction_length: args.prediction_length,
        out: args.out.clone(),
        timestamp: args.timestamp.clone(),
        freq: args.frequency.clone(),
        agg: args.aggregation.parse()?,
        dynamic: args.dynamic_features.clone(),
        cat: args.categorical_features.clone(),
        test_windows: args.test_windows,
        catalog: args.catalog.clone(),
        only_items: args.only_items.clone(),
    })
}

pub async fn build(args: &DatasetArgs, context: &Context) -> anyhow::Result<Report> {
    let manifest = context.ops.dataset(&dataset_request(args)?).await?;
    Ok(dataset_report(&manifest))
}

fn dataset_report(manifest: &DatasetManifest) -> Report {
    let text = format!(
        "dataset {} from {} ({} rows): {} items at {}, training up to {}, {} test window(s) of {}\n{}",
        manifest.snapshot_id,
        manifest.table,
        manifest.rows_read,
        manifest.items,
        manifest.time_freq,
        manifest.cut,
        manifest.spec.test_windows,
        manifest.spec.prediction_length,
        table(
            ["file", "lines"],
            [
                [
                    manifest.train.display().to_string(),
                    manifest.train_lines.to_string()
                ],
                [
                    manifest.test.display().to_string(),
                    manifest.test_lines.to_string()
                ],
            ]
        )
    );
    Report::new(
        serde_json::to_value(manifest).expect("manifests serialize"),
        text,
    )
}
