//! `sluice train` and `sluice forecast`: DeepAR from SageMaker-style files, the model directory,
//! and SageMaker's request/response JSON. Training and sampling run off the async runtime.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use candle_core::Device;
use models::deepar::artifact::{self, Lineage};
use models::deepar::evaluate::{Backtest, backtest};
use models::deepar::series::read_json_lines;
use models::deepar::{
    EpochReport, ForecastOptions, Hyperparameters, TrainOptions, train as train_model,
};
use models::inference::{parse_request, predict};
use models::metrics::Metrics;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::Context;
use crate::cli::{DeviceKind, ForecastArgs, TrainArgs};
use crate::output::{Report, table};

/// The device `--device` names.
pub fn device(kind: DeviceKind) -> anyhow::Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => Ok(Device::new_cuda(0).context("cannot open CUDA device 0")?),
        #[cfg(not(feature = "cuda"))]
        DeviceKind::Cuda => {
            anyhow::bail!(
                "this sluice was built without CUDA; rebuild with `cargo build --release --features cuda`"
            )
        }
    }
}

/// The hyperparameters of a file (a JSON object) with `NAME=VALUE` overrides.
pub fn hyperparameters(
    file: Option<&Path>,
    overrides: &[String],
) -> anyhow::Result<Hyperparameters> {
    let mut map = match file {
        None => Map::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            match serde_json::from_str::<Value>(&text)
                .with_context(|| format!("{}: invalid JSON", path.display()))?
            {
                Value::Object(map) => map,
                _ => anyhow::bail!(
                    "{}: expected a JSON object of hyperparameters",
                    path.display()
                ),
            }
        }
    };
    for pair in overrides {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--set {pair:?}: expected NAME=VALUE"))?;
        map.insert(
            name.trim().to_string(),
            Value::String(value.trim().to_string()),
        );
    }
    Ok(Hyperparameters::from_map(&map)?)
}

/// `sha256:<hex>` of a file: the training data's identity in the model's lineage.
fn snapshot_id(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("sha256:{hex}"))
}

fn metric_rows(deepar: &Metrics, naive: &Metrics) -> Vec<[String; 3]> {
    let row = |name: &str, a: f64, b: f64| [name.to_string(), format!("{a:.4}"), format!("{b:.4}")];
    let mut rows = vec![
        row(
            "mean_wQuantileLoss",
            deepar.mean_weighted_quantile_loss,
            naive.mean_weighted_quantile_loss,
        ),
        row("ND", deepar.nd, naive.nd),
        row("NRMSE", deepar.nrmse, naive.nrmse),
        row("RMSE", deepar.rmse, naive.rmse),
        row("MASE", deepar.mase, naive.mase),
        row("sMAPE", deepar.smape, naive.smape),
        row("MSIS", deepar.msis, naive.msis),
    ];
    for ((q, a), (_, b)) in deepar
        .weighted_quantile_loss
        .iter()
        .zip(&naive.weighted_quantile_loss)
    {
        rows.push(row(&format!("wQuantileLoss[{q}]"), *a, *b));
    }
    for ((q, a), (_, b)) in deepar.coverage.iter().zip(&naive.coverage) {
        rows.push(row(&format!("Coverage[{q}]"), *a, *b));
    }
    rows
}

pub async fn train(args: &TrainArgs, context: &Context) -> anyhow::Result<Report> {
    let hp = hyperparameters(args.hyperparameters.as_deref(), &args.set)?;
    let run = TrainRun {
        train: args.train.clone(),
        test: args.test.clone(),
        model_dir: args.model_dir.clone(),
        seed: args.seed,
        device: device(args.device)?,
        progress: context.progress,
        heartbeat: None,
    };
    train_to(hp, run).await
}

/// One training run's files and settings.
pub struct TrainRun {
    pub train: PathBuf,
    pub test: Option<PathBuf>,
    pub model_dir: PathBuf,
    pub seed: u64,
    pub device: Device,
    /// Draw a progress bar.
    pub progress: bool,
    /// Beaten after every epoch (a Task state's `HeartbeatSeconds`).
    pub heartbeat: Option<crate::tasks::Heartbeat>,
}

/// Trains, saves the model directory and backtests (the `sluice train` command and the
/// `sluice:train` task).
pub async fn train_to(hp: Hyperparameters, run: TrainRun) -> anyhow::Result<Report> {
    let TrainRun {
        train: train_path,
        test: test_path,
        model_dir,
        seed,
        device,
        progress,
        heartbeat,
    } = run;
    let model_dir_shown = model_dir.clone();
    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let source = train_path.display().to_string();
        let train_set = read_json_lines(&train_path)?;
        let test_set = test_path.as_deref().map(read_json_lines).transpose()?;
        let bar = progress.then(|| {
            let bar = indicatif::ProgressBar::new(hp.epochs as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "training {bar:30} epoch {pos}/{len} {msg} ({elapsed})",
                )
                .expect("a valid template"),
            );
            bar
        });
        let mut on_epoch = |e: &EpochReport| {
            if let Some(heartbeat) = &heartbeat {
                heartbeat.beat();
            }
            if let Some(bar) = &bar {
                bar.set_position(e.epoch as u64);
                bar.set_message(format!("loss {:.4}", e.loss));
            }
            tracing::info!(
                epoch = e.epoch,
                loss = e.loss,
                learning_rate = e.learning_rate,
                "epoch done"
            );
        };
        let options = TrainOptions {
            seed,
            device,
            source: &source,
            on_epoch: Some(&mut on_epoch),
        };
        let (model, report) = train_model(&hp, &train_set, options)?;
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let lineage = Lineage {
            seed,
            train: source.clone(),
            dataset_snapshot: Some(snapshot_id(&train_path)?),
        };
        artifact::save(&model, &model_dir, &lineage)?;
        artifact::write_json(&model_dir, "training.json", &report)?;
        let backtest = match &test_set {
            Some(test) => {
                let options = ForecastOptions {
                    num_samples: model.hyperparameters.num_eval_samples,
                    seed: seed.wrapping_add(1000),
                    ..ForecastOptions::default()
                };
                let test_source = test_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let result = backtest(&model, test, options, &test_source)?;
                artifact::write_json(&model_dir, "metrics.json", &result)?;
                Some(result)
            }
            None => None,
        };
        Ok((report, backtest))
    })
    .await??;
    let (report, backtest): (_, Option<Backtest>) = outcome;
    let mut text = format!(
        "trained {} epochs in {:.1} s (best epoch {}, loss {:.4}){}; model in {}",
        report.epochs.len(),
        report.seconds,
        report.best_epoch,
        report.best_loss,
        if report.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        model_dir_shown.display()
    );
    if let Some(b) = &backtest {
        text.push_str(&format!(
            "\n{}",
            table(
                ["metric (test)", "DeepAR", "seasonal naive"],
                metric_rows(&b.deepar, &b.seasonal_naive)
            )
        ));
    }
    let json = json!({
        "model_dir": model_dir_shown,
        "epochs": report.epochs.len(),
        "best_epoch": report.best_epoch,
        "best_loss": report.best_loss,
        "stopped_early": report.stopped_early,
        "train_seconds": report.seconds,
        "test_metrics": backtest.as_ref().map(|b| json!({"deepar": b.deepar, "seasonal_naive": b.seasonal_naive})),
    });
    Ok(Report::new(json, text))
}

pub async fn forecast(args: &ForecastArgs) -> anyhow::Result<Report> {
    let body = if args.input == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the request from stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))?
    };
    let body: Value = serde_json::from_str(&body)
        .with_context(|| format!("{}: invalid JSON", args.input.display()))?;
    let (dir, seed, device) = (args.model_dir.clone(), args.seed, device(args.device)?);
    let response = tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
        let (model, _) = artifact::load(&dir, &device)?;
        let request = parse_request(&body, model.hyperparameters.num_eval_samples)?;
        Ok(predict(&model, &request, seed)?)
    })
    .await??;
    let text = serde_json::to_string_pretty(&response)?;
    Ok(Report::new(response, text))
}
