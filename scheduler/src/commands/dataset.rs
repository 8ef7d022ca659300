//! `sluice dataset`: DeepAR series from a curated table, as JSON lines plus a manifest.

use anyhow::Context as _;
use jobs::dataset::{DatasetSpec, build as build_dataset, format_start, load};
use serde_json::{Value, json};

use super::Context;
use crate::cli::DatasetArgs;
use crate::output::{Report, table};

fn write_lines(path: &std::path::Path, lines: &[Value]) -> anyhow::Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&serde_json::to_string(line)?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

pub async fn build(args: &DatasetArgs, context: &Context) -> anyhow::Result<Report> {
    let spec = DatasetSpec {
        item_columns: args.items.clone(),
        timestamp: args.timestamp.clone(),
        target: args.target.clone(),
        frequency: args.frequency.clone(),
        aggregation: args.aggregation.parse()?,
        dynamic_features: args.dynamic_features.clone(),
        categorical_features: args.categorical_features.clone(),
        prediction_length: args.prediction_length,
        test_windows: args.test_windows,
    };
    build_to(
        &spec,
        &args.table,
        args.catalog.as_deref(),
        &args.out,
        context,
    )
    .await
}

/// Builds the dataset of `table_name` into `out` (the `sluice dataset` command and the
/// `sluice:dataset` task); the report's JSON is the manifest.
pub async fn build_to(
    spec: &DatasetSpec,
    table_name: &str,
    catalog_db: Option<&str>,
    out: &std::path::Path,
    context: &Context,
) -> anyhow::Result<Report> {
    let lake = context.lake()?;
    let curated_lake = context.curated_lake(&lake)?;
    let catalog = context.catalog().await?;
    let db = context.catalog_db(catalog_db)?;
    let loaded = load(&curated_lake, &catalog, &db, table_name, spec).await;
    catalog.close().await;
    let (frame, snapshot) = loaded?;
    let rows = frame.height();
    let dataset = {
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || build_dataset(frame, &spec, snapshot)).await??
    };
    let (train, test) = dataset.export();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_lines(&out.join("train.jsonl"), &train)?;
    write_lines(&out.join("test.jsonl"), &test)?;
    let manifest = json!({
        "snapshot_id": dataset.snapshot_id,
        "table": table_name,
        "train": out.join("train.jsonl"),
        "test": out.join("test.jsonl"),
        "spec": dataset.spec,
        "time_freq": dataset.time_freq,
        "cut": format_start(dataset.cut_ms),
        "rows_read": rows,
        "items": dataset.items.len(),
        "train_lines": train.len(),
        "test_lines": test.len(),
        "categories": dataset.categories,
        "dropped": dataset.dropped.iter().map(|(item, why)| json!({"item": item, "reason": why})).collect::<Vec<_>>(),
    });
    std::fs::write(
        out.join("dataset.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    let text = format!(
        "dataset {} from {} ({} rows): {} items at {}, training up to {}, {} test window(s) of {}\n{}",
        dataset.snapshot_id,
        table_name,
        rows,
        dataset.items.len(),
        dataset.time_freq,
        format_start(dataset.cut_ms),
        spec.test_windows,
        spec.prediction_length,
        table(
            ["file", "lines"],
            [
                [
                    out.join("train.jsonl").display().to_string(),
                    train.len().to_string()
                ],
                [
                    out.join("test.jsonl").display().to_string(),
                    test.len().to_string()
                ],
            ]
        )
    );
    Ok(Report::new(manifest, text))
}
