//! Training: DeepAR on SageMaker-style JSON lines, the model directory, and its backtest beside
//! seasonal naive (`sluice train`, `sluice:train`).

use std::path::{Path, PathBuf};

use candle_core::Device;
use models::deepar::artifact::{self, Lineage};
use models::deepar::evaluate::backtest;
use models::deepar::series::read_json_lines;
use models::deepar::{EpochReport, ForecastOptions, Hyperparameters, TrainOptions, train};
use models::metrics::Metrics;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::dataset::DatasetManifest;
use crate::{Error, Observer, Ops, Progress, Result};

/// Where tensors live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    #[default]
    Cpu,
    /// An NVIDIA GPU (needs a build with the `cuda` feature).
    Cuda,
}

/// The device a [`DeviceKind`] names.
pub fn device(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => Device::new_cuda(0)
            .map_err(|e| Error::Unavailable(format!("cannot open CUDA device 0: {e}"))),
        #[cfg(not(feature = "cuda"))]
        DeviceKind::Cuda => Err(Error::invalid(
            "device",
            "this sluice was built without CUDA; rebuild with `cargo build --release --features cuda`",
        )),
    }
}

/// `{"train", "test"?, "model_dir", "hyperparameters"?: {...}, "seed"?: 0, "device"?: "cpu",
/// "snapshot_id"?}`. Hyperparameters use SageMaker DeepAR's names; values are numbers or
/// strings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// Training series (JSON lines).
    pub train: PathBuf,
    /// Test series: the model is backtested on them beside seasonal naive.
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// Where the model directory is written.
    pub model_dir: PathBuf,
    #[serde(default)]
    pub hyperparameters: Map<String, Value>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub device: DeviceKind,
    /// The dataset snapshot the training file belongs to (a dataset manifest's `snapshot_id`);
    /// default: the manifest beside the training file, else the file's SHA-256.
    #[serde(default)]
    pub snapshot_id: Option<String>,
}

/// The backtest's figures.
#[derive(Debug, Clone, Serialize)]
pub struct TestMetrics {
    pub deepar: Metrics,
    pub seasonal_naive: Metrics,
}

/// What training did (the `sluice:train` task's output).
#[derive(Debug, Clone, Serialize)]
pub struct TrainOutput {
    pub model_dir: PathBuf,
    pub epochs: usize,
    pub best_epoch: usize,
    pub best_loss: f64,
    pub stopped_early: bool,
    pub train_seconds: f64,
    /// The dataset snapshot recorded in the model's lineage.
    pub dataset_snapshot: String,
    pub test_metrics: Option<TestMetrics>,
}

/// `sha256:<hex>` of a file: a training file's identity when no manifest names its snapshot.
fn file_digest(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("sha256:{hex}"))
}

impl Ops {
    /// Trains, saves the model directory and backtests on the test series.
    pub async fn train(&self, request: &TrainRequest, observer: &Observer) -> Result<TrainOutput> {
        let hp = Hyperparameters::from_map(&request.hyperparameters)?;
        let device = device(request.device)?;
        let request = request.clone();
        let observer = observer.clone();
        tokio::task::spawn_blocking(move || train_blocking(&hp, &request, device, &observer))
            .await?
    }
}

fn train_blocking(
    hp: &Hyperparameters,
    request: &TrainRequest,
    device: Device,
    observer: &Observer,
) -> Result<TrainOutput> {
    let source = request.train.display().to_string();
    let train_set = read_json_lines(&request.train)?;
    let test_set = request.test.as_deref().map(read_json_lines).transpose()?;
    let snapshot = match &request.snapshot_id {
        Some(id) => id.clone(),
        None => match DatasetManifest::beside(&request.train) {
            Some(manifest) => manifest.snapshot_id,
            None => file_digest(&request.train)?,
        },
    };
    let epochs = hp.epochs;
    let mut on_epoch = |e: &EpochReport| {
        observer.report(Progress::Epoch {
            epoch: e.epoch,
            epochs,
            loss: e.loss,
        });
        tracing::info!(
            epoch = e.epoch,
            loss = e.loss,
            learning_rate = e.learning_rate,
            "epoch done"
        );
    };
    let options = TrainOptions {
        seed: request.seed,
        device,
        source: &source,
        on_epoch: Some(&mut on_epoch),
    };
    let (model, report) = train(hp, &train_set, options)?;
    let lineage = Lineage {
        seed: request.seed,
        train: source.clone(),
        dataset_snapshot: Some(snapshot.clone()),
    };
    artifact::save(&model, &request.model_dir, &lineage)?;
    artifact::write_json(&request.model_dir, "training.json", &report)?;
    let test_metrics = match &test_set {
        Some(test) => {
            let options = ForecastOptions {
                num_samples: model.hyperparameters.num_eval_samples,
                seed: request.seed.wrapping_add(1000),
                ..ForecastOptions::default()
            };
            let test_source = request
                .test
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let result = backtest(&model, test, options, &test_source)?;
            artifact::write_json(&request.model_dir, "metrics.json", &result)?;
            Some(TestMetrics {
                deepar: result.deepar,
                seasonal_naive: result.seasonal_naive,
            })
        }
        None => None,
    };
    Ok(TrainOutput {
        model_dir: request.model_dir.clone(),
        epochs: report.epochs.len(),
        best_epoch: report.best_epoch,
        best_loss: report.best_loss,
        stopped_early: report.stopped_early,
        train_seconds: report.seconds,
        dataset_snapshot: snapshot,
        test_metrics,
    })
}
