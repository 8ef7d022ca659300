//! `sluice models batch-forecast` and the `sluice:batch-forecast` task: forecasts every series
//! of a file with a group's version (the champion by default) and writes them to the curated
//! lake as Parquet (`forecasts/<group>/run=<id>/`), recorded for accuracy monitoring.

use std::path::PathBuf;

use anyhow::Context as _;
use candle_core::Device;
use jobs::forecasts::{ForecastRows, write};
use models::deepar::series::read_json_lines;
use models::deepar::{ForecastOptions, forecast};
use models::registry::{GroupName, Registry, Target};
use serde_json::json;

use super::Context;
use crate::output::Report;

/// What a batch forecast needs.
pub struct BatchSpec {
    pub group: GroupName,
    /// The version: an alias (champion) or a number.
    pub target: Target,
    /// Series in SageMaker JSON lines: each is forecast past its end.
    pub input: PathBuf,
    pub num_samples: usize,
    pub quantiles: Vec<f64>,
    pub seed: u64,
}

pub async fn batch_forecast(spec: &BatchSpec, context: &Context) -> anyhow::Result<Report> {
    let catalog = context.catalog().await?;
    let registry = Registry::new(catalog.pool().clone());
    let info = registry
        .resolve(&spec.group, &spec.target)
        .await?
        .with_context(|| {
            format!(
                "{}:{} is not set: publish a version first",
                spec.group, spec.target
            )
        })?;
    let lake = context.lake()?;
    let model = super::registry::load_version(&lake, &info, Device::Cpu).await?;
    let (input, quantiles) = (spec.input.clone(), spec.quantiles.clone());
    let options = ForecastOptions {
        num_samples: spec.num_samples,
        seed: spec.seed,
        ..ForecastOptions::default()
    };
    let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<ForecastRows> {
        let series = read_json_lines(&input)?;
        let source = input.display().to_string();
        let forecasts = forecast(&model, &series, options, &source)?;
        let mut rows = ForecastRows {
            quantiles: quantiles.iter().map(|q| (*q, Vec::new())).collect(),
            ..ForecastRows::default()
        };
        for (line, (s, f)) in series.iter().zip(&forecasts).enumerate() {
            let item = s
                .item_id
                .clone()
                .unwrap_or_else(|| format!("line {}", line + 1));
            let mean = f.mean();
            let bands: Vec<Vec<f32>> = quantiles.iter().map(|q| f.quantile(*q)).collect();
            for (step, value) in mean.iter().enumerate() {
                let at = model.layout.freq.add(f.start, step as i64);
                rows.item_id.push(item.clone());
                rows.timestamp_ms.push(at.and_utc().timestamp_millis());
                rows.step.push(step as u32 + 1);
                rows.mean.push(*value);
                for (column, band) in rows.quantiles.iter_mut().zip(&bands) {
                    column.1.push(band[step]);
                }
            }
        }
        Ok(rows)
    })
    .await??;
    let curated = context.curated_lake(&lake)?;
    let run = write(
        catalog.pool(),
        &curated,
        spec.group.as_str(),
        info.version,
        &rows,
        jobs::forecasts::Source::Batch,
    )
    .await?;
    let text = format!(
        "{} v{}: {} items × {} steps forecast into {}",
        spec.group,
        info.version,
        run.items,
        run.rows / run.items.max(1),
        run.key
    );
    Ok(Report::new(json!(run), text))
}
