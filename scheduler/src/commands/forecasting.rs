//! `sluice train` and `sluice forecast`: DeepAR from SageMaker-style files, the model directory,
//! and SageMaker's request/response JSON, over the operations of the same names.

use std::io::Read;
use std::path::Path;

use anyhow::Context as _;
use models::metrics::Metrics;
use ops::{ForecastRequest, Observer, Progress, TrainOutput, TrainRequest};
use serde_json::{Map, Value};

use super::Context;
use crate::cli::{Algorithm, DeviceKind, ForecastArgs, TrainArgs};
use crate::output::{Report, table};

/// The device kind `--device` names.
pub fn device_kind(kind: DeviceKind) -> ops::DeviceKind {
    match kind {
        DeviceKind::Cpu => ops::DeviceKind::Cpu,
        DeviceKind::Cuda => ops::DeviceKind::Cuda,
    }
}

/// The hyperparameters of a file (a JSON object) with `NAME=VALUE` overrides, as SageMaker
/// names them (checked by the operation).
pub fn hyperparameters(
    file: Option<&Path>,
    overrides: &[String],
) -> anyhow::Result<Map<String, Value>> {
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
    Ok(map)
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

/// The training request the flags make.
pub fn train_request(args: &TrainArgs) -> anyhow::Result<TrainRequest> {
    Ok(TrainRequest {
        train: args.train.clone(),
        test: args.test.clone(),
        model_dir: args.model_dir.clone(),
        algorithm: match args.algorithm {
            Algorithm::Deepar => ops::Algorithm::Deepar,
            Algorithm::Mstl => ops::Algorithm::Mstl,
            Algorithm::Ets => ops::Algorithm::Ets,
            Algorithm::Arima => ops::Algorithm::Arima,
            Algorithm::Theta => ops::Algorithm::Theta,
            Algorithm::Ensemble => ops::Algorithm::Ensemble,
        },
        hyperparameters: hyperparameters(args.hyperparameters.as_deref(), &args.set)?,
        seed: args.seed,
        device: device_kind(args.device),
        validation: args.validation,
        validation_windows: args.validation_windows.map(|w| w as usize),
        refit: true,
        snapshot_id: None,
    })
}

/// A progress bar over the epochs.
fn epoch_bar() -> Observer {
    let bar = indicatif::ProgressBar::hidden();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "training {bar:30} epoch {pos}/{len} {msg} ({elapsed})",
        )
        .expect("a valid template"),
    );
    Observer::new(move |event| {
        if let Progress::Epoch {
            epoch,
            epochs,
            loss,
        } = event
        {
            if bar.is_hidden() {
                bar.set_length(epochs as u64);
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            bar.set_position(epoch as u64);
            bar.set_message(format!("loss {loss:.4}"));
            if epoch == epochs {
                bar.finish_and_clear();
            }
        }
    })
}

pub async fn train(args: &TrainArgs, context: &Context) -> anyhow::Result<Report> {
    let observer = context.observer(epoch_bar);
    let output = context.ops.train(&train_request(args)?, &observer).await?;
    Ok(train_report(&output))
}

fn train_report(output: &TrainOutput) -> Report {
    let mut text = match output.best_loss {
        Some(loss) => format!(
            "trained {} epochs in {:.1} s (best epoch {}, loss {loss:.4}){}; model in {}",
            output.epochs,
            output.train_seconds,
            output.best_epoch,
            if output.stopped_early {
                ", stopped early"
            } else {
                ""
            },
            output.model_dir.display()
        ),
        None => format!(
            "{} checked on every training series in {:.1} s (it is fitted per series when it forecasts); model in {}",
            output.algorithm.name(),
            output.train_seconds,
            output.model_dir.display()
        ),
    };
    if let Some(metrics) = &output.validation_metrics {
        text.push_str(&format!(
            "\nvalidation (rolling windows held out at the end of every training series): mean_wQuantileLoss {:.4}, seasonal naive {:.4}",
            metrics.model.mean_weighted_quantile_loss,
            metrics.seasonal_naive.mean_weighted_quantile_loss
        ));
    }
    if let Some(metrics) = &output.test_metrics {
        let family = match metrics.family {
            "deepar" => "DeepAR",
            "mstl" => "MSTL",
            "ets" => "AutoETS",
            other => other,
        };
        text.push_str(&format!(
            "\n{}",
            table(
                ["metric (test)", family, "seasonal naive"],
                metric_rows(&metrics.model, &metrics.seasonal_naive)
            )
        ));
    }
    Report::new(
        serde_json::to_value(output).expect("outputs serialize"),
        text,
    )
}

pub async fn forecast(args: &ForecastArgs, context: &Context) -> anyhow::Result<Report> {
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
    let request = ForecastRequest {
        model_dir: args.model_dir.clone(),
        request: serde_json::from_str(&body)
            .with_context(|| format!("{}: invalid JSON", args.input.display()))?,
        seed: args.seed,
        device: device_kind(args.device),
    };
    let response = context.ops.forecast(&request).await?;
    let text = serde_json::to_string_pretty(&response)?;
    Ok(Report::new(response, text))
}
