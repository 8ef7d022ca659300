//! Training: DeepAR on SageMaker-style JSON lines, or a classical challenger's settings (MSTL,
//! AutoETS: local models, fitted per series when they forecast), the model directory, and its
//! backtest beside seasonal naive (`sluice train`, `sluice:train`).

use std::path::{Path, PathBuf};

use candle_core::Device;
use models::classical::{Classical, Family};
use models::deepar::artifact::{self, Lineage};
use models::deepar::evaluate::{backtest, hold_out, validation_windows};
use models::deepar::series::read_json_lines;
use models::deepar::{EpochReport, ForecastOptions, Hyperparameters, TrainOptions, train};
use models::forecaster::Forecasting;
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

/// The model family a training produces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// DeepAR: a network trained on every series.
    #[default]
    Deepar,
    /// MSTL with an AutoETS trend, fitted per series.
    Mstl,
    /// AutoETS (error, trend and season by AICc), fitted per series.
    Ets,
    /// AutoARIMA (stepwise order search), fitted per series.
    Arima,
    /// AutoTheta (the best theta model by in-sample error), fitted per series.
    Theta,
    /// The classical families fitted per series and their quantiles averaged, each weighted by
    /// its loss on the series' own last season.
    Ensemble,
}

impl Algorithm {
    /// The name requests and outputs spell it with.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Deepar => "deepar",
            Algorithm::Mstl => "mstl",
            Algorithm::Ets => "ets",
            Algorithm::Arima => "arima",
            Algorithm::Theta => "theta",
            Algorithm::Ensemble => "ensemble",
        }
    }

    fn classical(self) -> Option<Family> {
        match self {
            Algorithm::Deepar => None,
            Algorithm::Mstl => Some(Family::Mstl),
            Algorithm::Ets => Some(Family::Ets),
            Algorithm::Arima => Some(Family::Arima),
            Algorithm::Theta => Some(Family::Theta),
            Algorithm::Ensemble => Some(Family::Ensemble),
        }
    }
}

/// `{"train", "test"?, "model_dir", "algorithm"?: "deepar", "hyperparameters"?: {...},
/// "seed"?: 0, "device"?: "cpu", "snapshot_id"?}`. Hyperparameters use SageMaker DeepAR's
/// names; values are numbers or strings. A classical `algorithm` reads `time_freq`,
/// `prediction_length`, `season_lengths`, `num_eval_samples` and `test_quantiles`, and
/// ignores DeepAR's other names.
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
    pub algorithm: Algorithm,
    #[serde(default)]
    pub hyperparameters: Map<String, Value>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub device: DeviceKind,
    /// Hold out rolling windows of `prediction_length` points at the end of every training
    /// series: a model trained the same way on what comes before them is scored on them
    /// (`validation_metrics`, `validation.json`), so that candidates of different families are
    /// chosen on windows none of them saw, never on the test windows; the model kept is
    /// trained on all the data (DeepAR trains twice).
    #[serde(default)]
    pub validation: bool,
    /// With `validation`: how many windows, one horizon apart (default: enough to score about
    /// 1,000 points, one to seven, at most a quarter of the median series; four long hourly
    /// series hold out a week).
    #[serde(default)]
    pub validation_windows: Option<usize>,
    /// With `validation`: train the kept model on all the data (the default), or keep the
    /// model that was scored (`false`: a tuning trial's model, trained once, never served).
    #[serde(default = "refit_default")]
    pub refit: bool,
    /// The dataset snapshot the training file belongs to (a dataset manifest's `snapshot_id`);
    /// default: the manifest beside the training file, else the file's SHA-256.
    #[serde(default)]
    pub snapshot_id: Option<String>,
}

fn refit_default() -> bool {
    true
}

/// The backtest's figures.
#[derive(Debug, Clone, Serialize)]
pub struct TestMetrics {
    /// The model's family (`deepar`, `mstl`, `ets`).
    pub family: &'static str,
    /// The model's figures, whatever its family.
    pub model: Metrics,
    /// The same figures under the name they had before there were challengers (DeepAR only),
    /// so that definitions reading `$.test_metrics.deepar` keep working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deepar: Option<Metrics>,
    pub seasonal_naive: Metrics,
}

impl TestMetrics {
    fn new(backtest: models::deepar::evaluate::Backtest) -> Self {
        Self {
            family: backtest.family,
            deepar: (backtest.family == "deepar").then(|| backtest.model.clone()),
            model: backtest.model,
            seasonal_naive: backtest.seasonal_naive,
        }
    }
}

/// What training did (the `sluice:train` task's output).
#[derive(Debug, Clone, Serialize)]
pub struct TrainOutput {
    pub model_dir: PathBuf,
    pub algorithm: Algorithm,
    /// Zero for a classical model (nothing is trained ahead of forecasting).
    pub epochs: usize,
    pub best_epoch: usize,
    /// The best epoch's training loss; none for a classical model.
    pub best_loss: Option<f64>,
    pub stopped_early: bool,
    pub train_seconds: f64,
    /// The dataset snapshot recorded in the model's lineage.
    pub dataset_snapshot: String,
    pub test_metrics: Option<TestMetrics>,
    /// The scores on the held-out validation windows (a request with `validation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_metrics: Option<TestMetrics>,
}

/// The file validation scores are written to in the model directory.
pub const VALIDATION_FILE: &str = "validation.json";
/// The file the validation forecasts are written to in the model directory: every window's
/// sample paths, for a blend of candidates to be weighted on the same windows
/// ([`crate::blend`]).
pub const VALIDATION_FORECASTS_FILE: &str = "validation_forecasts.safetensors";

/// A candidate directory's `validation.json`, refused by path when training wrote none.
pub(crate) fn read_validation(dir: &Path) -> Result<Value> {
    let path = dir.join(VALIDATION_FILE);
    let text = std::fs::read(&path).map_err(|e| {
        Error::invalid(
            "candidates",
            format!(
                "{}: {e}; train each candidate with \"validation\": true",
                path.display()
            ),
        )
    })?;
    serde_json::from_slice(&text).map_err(|e| Error::io(&path, e))
}

/// `validation.json`: the backtest on the validation windows and how many windows each
/// series held out (a blend cuts the same windows again to score its members' forecasts).
#[derive(Serialize)]
struct Validation<'a> {
    #[serde(flatten)]
    backtest: &'a models::deepar::evaluate::Backtest,
    windows: usize,
}

/// The held-out split: what a model is fitted on, the scored lines, and how many windows.
pub(crate) type Split = (
    Vec<models::deepar::Series>,
    Vec<models::deepar::Series>,
    usize,
);

/// [`hold_out`]'s split into the request's windows (or as many as [`validation_windows`]
/// says), refusing a training set with no series long enough for it.
fn validation_split(
    train: &[models::deepar::Series],
    horizon: usize,
    request: &TrainRequest,
    source: &str,
) -> Result<Split> {
    let windows = match request.validation_windows {
        Some(0) => return Err(Error::invalid("validation_windows", "at least 1")),
        Some(windows) => windows,
        None => validation_windows(train, horizon),
    };
    let (trimmed, scored) = hold_out(train, horizon, windows);
    if scored.is_empty() {
        return Err(Error::invalid(
            "validation",
            format!(
                "{source}: no series has {} x prediction_length ({horizon}) points, so none can hold out {windows} validation window(s) and keep a horizon to fit on",
                windows + 1
            ),
        ));
    }
    Ok((trimmed, scored, windows))
}

/// Scores a model on the validation windows, writing `validation.json` and the forecasts.
fn validate(
    model: &dyn Forecasting,
    request: &TrainRequest,
    scored: &[models::deepar::Series],
    windows: usize,
) -> Result<TestMetrics> {
    let options = ForecastOptions {
        num_samples: model.num_eval_samples(),
        seed: request.seed.wrapping_add(2000),
        ..ForecastOptions::default()
    };
    let source = format!("{} (validation windows)", request.train.display());
    let result = backtest(model, scored, options, &source)?;
    models::blend::save_paths(
        &request.model_dir.join(VALIDATION_FORECASTS_FILE),
        &result.forecasts,
    )?;
    artifact::write_json(
        &request.model_dir,
        VALIDATION_FILE,
        &Validation {
            backtest: &result,
            windows,
        },
    )?;
    Ok(TestMetrics::new(result))
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
        if let Some(family) = request.algorithm.classical() {
            let model = Classical::from_map(family, &request.hyperparameters)?;
            let request = request.clone();
            return tokio::task::spawn_blocking(move || classical_blocking(&model, &request))
                .await?;
        }
        let hp = Hyperparameters::from_map(&request.hyperparameters)?;
        let device = device(request.device)?;
        let request = request.clone();
        let observer = observer.clone();
        tokio::task::spawn_blocking(move || train_blocking(&hp, &request, device, &observer))
            .await?
    }
}

/// The snapshot the training file belongs to: the request's, the manifest's beside it, or the
/// file's digest.
fn snapshot_of(request: &TrainRequest) -> Result<String> {
    Ok(match &request.snapshot_id {
        Some(id) => id.clone(),
        None => match DatasetManifest::beside(&request.train) {
            Some(manifest) => manifest.snapshot_id,
            None => file_digest(&request.train)?,
        },
    })
}

/// Backtests a saved model on the request's test series, writing `metrics.json`.
fn test_model(
    model: &dyn Forecasting,
    request: &TrainRequest,
    test_set: Option<&[models::deepar::Series]>,
) -> Result<Option<TestMetrics>> {
    let (Some(test), Some(path)) = (test_set, &request.test) else {
        return Ok(None);
    };
    let options = ForecastOptions {
        num_samples: model.num_eval_samples(),
        seed: request.seed.wrapping_add(1000),
        ..ForecastOptions::default()
    };
    let result = backtest(model, test, options, &path.display().to_string())?;
    artifact::write_json(&request.model_dir, "metrics.json", &result)?;
    Ok(Some(TestMetrics::new(result)))
}

/// A classical model: its settings checked against the training series (each is fitted once,
/// so a series the family cannot use is named now rather than at forecast time), the model
/// directory, and the backtest.
fn classical_blocking(model: &Classical, request: &TrainRequest) -> Result<TrainOutput> {
    let started = std::time::Instant::now();
    let source = request.train.display().to_string();
    let train_set = read_json_lines(&request.train)?;
    let test_set = request.test.as_deref().map(read_json_lines).transpose()?;
    let snapshot = snapshot_of(request)?;
    model.forecast(
        &train_set,
        ForecastOptions {
            num_samples: 1,
            seed: request.seed,
            ..ForecastOptions::default()
        },
        &source,
    )?;
    let lineage = Lineage {
        seed: request.seed,
        train: source,
        dataset_snapshot: Some(snapshot.clone()),
    };
    model.save(&request.model_dir, &lineage)?;
    let validation_metrics = if request.validation {
        let (_, scored, windows) =
            validation_split(&train_set, model.prediction_length, request, &lineage.train)?;
        Some(validate(model, request, &scored, windows)?)
    } else {
        None
    };
    let test_metrics = test_model(model, request, test_set.as_deref())?;
    Ok(TrainOutput {
        model_dir: request.model_dir.clone(),
        algorithm: request.algorithm,
        validation_metrics,
        epochs: 0,
        best_epoch: 0,
        best_loss: None,
        stopped_early: false,
        train_seconds: started.elapsed().as_secs_f64(),
        dataset_snapshot: snapshot,
        test_metrics,
    })
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
    let snapshot = snapshot_of(request)?;
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
    // Validation: a model trained the same way without the held-out windows is scored on them
    // (the estimate of how the procedure does on data it has not seen); the model kept is then
    // trained on all the data, as a chosen candidate is refitted before it serves.
    let held_out = if request.validation {
        let (trimmed, scored, windows) =
            validation_split(&train_set, hp.prediction_length, request, &source)?;
        let options = TrainOptions {
            seed: request.seed,
            device: device.clone(),
            source: &source,
            on_epoch: None,
        };
        let (model, report) = train(hp, &trimmed, options)?;
        Some((model, report, (scored, windows)))
    } else {
        None
    };
    // `held_out`: the scored model when it is not the one kept, and the windows it is scored on.
    let (model, report, held_out) = match held_out {
        // A tuning trial: the scored model is the one kept.
        Some((model, report, scored)) if !request.refit => {
            for epoch in &report.epochs {
                on_epoch(epoch);
            }
            (model, report, Some((None, scored)))
        }
        held_out => {
            let options = TrainOptions {
                seed: request.seed,
                device,
                source: &source,
                on_epoch: Some(&mut on_epoch),
            };
            let (model, report) = train(hp, &train_set, options)?;
            (
                model,
                report,
                held_out.map(|(scored_model, _, scored)| (Some(scored_model), scored)),
            )
        }
    };
    let lineage = Lineage {
        seed: request.seed,
        train: source.clone(),
        dataset_snapshot: Some(snapshot.clone()),
    };
    artifact::save(&model, &request.model_dir, &lineage)?;
    artifact::write_json(&request.model_dir, "training.json", &report)?;
    let validation_metrics = held_out
        .map(|(scored_model, (scored, windows))| {
            validate(
                scored_model.as_ref().unwrap_or(&model),
                request,
                &scored,
                windows,
            )
        })
        .transpose()?;
    let test_metrics = test_model(&model, request, test_set.as_deref())?;
    Ok(TrainOutput {
        model_dir: request.model_dir.clone(),
        algorithm: request.algorithm,
        validation_metrics,
        epochs: report.epochs.len(),
        best_epoch: report.best_epoch,
        best_loss: Some(report.best_loss),
        stopped_early: report.stopped_early,
        train_seconds: report.seconds,
        dataset_snapshot: snapshot,
        test_metrics,
    })
}
