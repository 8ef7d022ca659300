//! Forecasts, with a model of any family: a SageMaker DeepAR request against a model directory
//! (`sluice forecast`), and batch
//! forecasts of every series of a file with a registered version, written to the curated lake
//! (`sluice models batch-forecast`, `sluice:batch-forecast`).

use std::path::PathBuf;

use candle_core::Device;
use jobs::forecasts::{BatchRun, DatasetRef, ForecastRows, Provenance, Source, write};
use models::deepar::ForecastOptions;
use models::deepar::series::read_json_lines;
use models::forecaster::{self, Forecasting};
use models::inference::{parse_request, predict};
use models::registry::{GroupName, Target};
use serde::Deserialize;
use serde_json::Value;

use crate::dataset::DatasetManifest;
use crate::train::{DeviceKind, device};
use crate::{Error, Missing, Ops, Result, load_version};

/// A SageMaker DeepAR request (`{"instances": [...], "configuration": {...}}`) against a model
/// directory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    pub model_dir: PathBuf,
    pub request: Value,
    /// Seed of the sample paths.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub device: DeviceKind,
}

/// `{"group", "input", "version"?: "champion", "num_samples"?: 100, "quantiles"?: [0.1, 0.5,
/// 0.9], "seed"?: 0}`; `version` is an alias or a number (`3`, `v3`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchForecastRequest {
    #[serde(deserialize_with = "crate::registry::group")]
    pub group: GroupName,
    /// Series in SageMaker JSON lines: each is forecast past its end.
    pub input: PathBuf,
    #[serde(
        default = "crate::registry::champion_target",
        deserialize_with = "crate::registry::target"
    )]
    pub version: Target,
    #[serde(default = "default_samples")]
    pub num_samples: usize,
    #[serde(default = "default_quantiles", deserialize_with = "quantiles")]
    pub quantiles: Vec<f64>,
    #[serde(default)]
    pub seed: u64,
    /// The execution whose step asks (`$$.Execution.Id`): the step run again after its worker
    /// died returns the run it made rather than making a second.
    #[serde(default)]
    pub execution: Option<String>,
}

fn default_samples() -> usize {
    100
}

fn default_quantiles() -> Vec<f64> {
    vec![0.1, 0.5, 0.9]
}

fn quantiles<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<f64>, D::Error> {
    let values = Vec::<f64>::deserialize(de)?;
    if values.is_empty() || !values.iter().all(|q| *q > 0.0 && *q < 1.0) {
        return Err(serde::de::Error::custom(format!(
            "expected numbers in (0, 1): {values:?}"
        )));
    }
    Ok(values)
}

impl Ops {
    /// Answers a SageMaker DeepAR request with a model directory.
    pub async fn forecast(&self, request: &ForecastRequest) -> Result<Value> {
        let device = device(request.device)?;
        let request = request.clone();
        tokio::task::spawn_blocking(move || -> Result<Value> {
            let (model, _) = forecaster::load(&request.model_dir, &device)?;
            let parsed = parse_request(&request.request, model.num_eval_samples())?;
            Ok(predict(&model, &parsed, request.seed)?)
        })
        .await?
    }

    /// Forecasts every series of the input with the group's version and records the run.
    pub async fn batch_forecast(&self, request: &BatchForecastRequest) -> Result<BatchRun> {
        let catalog = self.catalog().await?;
        if let Some(execution) = &request.execution
            && let Some(made) =
                jobs::forecasts::by_execution(catalog.pool(), request.group.as_str(), execution)
                    .await?
        {
            return Ok(made);
        }
        let registry = self.registry().await?;
        let info = registry
            .resolve(&request.group, &request.version)
            .await?
            .ok_or_else(|| Error::NotFound {
                missing: Missing::Other,
                what: format!(
                    "{}:{} is not set: publish a version first",
                    request.group, request.version
                ),
            })?;
        let lake = self.lake()?;
        let model = load_version(&lake, &info, Device::Cpu).await?;
        let (input, quantiles) = (request.input.clone(), request.quantiles.clone());
        let options = ForecastOptions {
            num_samples: request.num_samples,
            seed: request.seed,
            ..ForecastOptions::default()
        };
        let rows = tokio::task::spawn_blocking(move || -> Result<ForecastRows> {
            let series = read_json_lines(&input)?;
            let source = input.display().to_string();
            let forecasts = model.forecast(&series, options, &source)?;
            let freq = model.freq();
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
                rows.history.keep(&item, &s.target, mean.len(), |i| {
                    freq.add(s.start, i as i64).and_utc().timestamp_millis()
                });
                let bands: Vec<Vec<f32>> = quantiles.iter().map(|q| f.quantile(*q)).collect();
                for (step, value) in mean.iter().enumerate() {
                    let at = freq.add(f.start, step as i64);
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
        let provenance = Provenance {
            input: Some(request.input.display().to_string()),
            dataset: DatasetManifest::of_file(&request.input).map(|m| DatasetRef {
                table: m.table,
                catalog: m.catalog,
                snapshot_id: m.snapshot_id,
                spec: m.spec,
            }),
            execution: request.execution.clone(),
        };
        let curated = self.curated_lake()?;
        Ok(write(
            catalog.pool(),
            &curated,
            request.group.as_str(),
            info.version,
            &rows,
            Source::Batch,
            &provenance,
        )
        .await?)
    }
}
