//! The sluice side of `sluice-bench forecast`: DeepAR trained seed by seed on each dataset, and
//! the contest the nightly runs (the classical challengers, the blend, the champion chosen on
//! validation windows cut from the training data).

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use candle_core::Device;
use models::classical::{Classical, Family};
use models::deepar::evaluate::{backtest, hold_out, split_test, validation_windows};
use models::deepar::series::read_json_lines;
use models::deepar::{ForecastOptions, Hyperparameters, TrainOptions, forecast, train};
use models::registry::{Entry, select};
use serde_json::{Value, json};

use crate::BenchForecastArgs;
use crate::forecast::Runs;
use crate::forecast_blend::{BlendRun, Members, blend_run};

/// CPU seconds this process has used (all threads), from /proc.
fn process_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, in clock ticks of 1/100 s on Linux.
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// The classical challengers and the champion chosen among every candidate on validation
/// windows, seed by seed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct Contest {
    /// The rolling validation windows held out of each training series.
    pub(crate) validation_windows: usize,
    /// (family, test mean_wQuantileLoss by seed).
    pub(crate) challengers: Vec<(String, Vec<f64>)>,
    /// The champion's test mean_wQuantileLoss by seed, and the family chosen each seed.
    pub(crate) champion: Vec<f64>,
    pub(crate) chosen: Vec<String>,
    /// Each candidate's validation mean_wQuantileLoss by seed, (family, values); the blend's is
    /// NaN in a seed where no mix beat its members.
    pub(crate) validation: Vec<(String, Vec<f64>)>,
    /// The blend of DeepAR and the best classical challenger by seed, as the nightly's blend
    /// step makes it.
    pub(crate) blend: Vec<BlendRun>,
}

pub(crate) fn sluice_runs(
    dir: &Path,
    meta: &Value,
    args: &BenchForecastArgs,
) -> anyhow::Result<(Runs, f64, Contest)> {
    let freq = meta["freq"].as_str().context("metadata.json: freq")?;
    let horizon = meta["prediction_length"]
        .as_u64()
        .context("metadata.json: prediction_length")?;
    let context = meta["context_length"].as_u64().unwrap_or(horizon);
    let map = json!({
        "time_freq": freq, "context_length": context.to_string(), "prediction_length": horizon.to_string(),
        "epochs": args.epochs.to_string(), "num_cells": "40", "num_layers": "2", "dropout_rate": "0.1",
        "learning_rate": "0.001", "mini_batch_size": "32", "num_batches_per_epoch": "50",
        "likelihood": "student-T", "num_eval_samples": "100",
    });
    let hp = Hyperparameters::from_map(map.as_object().expect("an object"))?;
    let train_set = read_json_lines(&dir.join("train.jsonl"))?;
    let test_set = read_json_lines(&dir.join("test.jsonl"))?;
    let mut runs = Runs::default();
    let mut latency_ms = f64::NAN;
    let horizon = hp.prediction_length;
    let windows = args
        .validation_windows
        .map_or_else(|| validation_windows(&train_set, horizon), |n| n as usize);
    let (validation_train, validation_lines) = hold_out(&train_set, horizon, windows);
    let challengers: Vec<Classical> = Family::ALL
        .iter()
        .map(|family| Classical::from_map(*family, map.as_object().expect("an object")))
        .collect::<Result<_, _>>()?;
    let mut contest = Contest {
        challengers: challengers
            .iter()
            .map(|c| (c.family.name().to_owned(), vec![]))
            .collect(),
        validation: std::iter::once("deepar".to_owned())
            .chain(challengers.iter().map(|c| c.family.name().to_owned()))
            .chain(std::iter::once("blend".to_owned()))
            .map(|f| (f, vec![]))
            .collect(),
        validation_windows: windows,
        ..Contest::default()
    };
    // The classical fits are deterministic (a series' fit depends on its history alone), so
    // their test and validation scores are computed once, from seed 0's paths, and stand for
    // every seed, as statsforecast's do.
    let validate = |options: ForecastOptions| ForecastOptions {
        seed: options.seed + 2000,
        ..options
    };
    let classical_options = ForecastOptions {
        num_samples: 100,
        seed: 1000,
        ..ForecastOptions::default()
    };
    // Their forecasts are kept for the blend (test, validation).
    let mut classical_scores = Vec::with_capacity(challengers.len());
    let mut classical_forecasts = Vec::with_capacity(challengers.len());
    for challenger in &challengers {
        let started = Instant::now();
        let test_run = backtest(challenger, &test_set, classical_options, "test.jsonl")?;
        let test = test_run.model.mean_weighted_quantile_loss;
        let validation_run = backtest(
            challenger,
            &validation_lines,
            validate(classical_options),
            "validation",
        )?;
        let validation = validation_run.model.mean_weighted_quantile_loss;
        classical_forecasts.push((test_run.forecasts, validation_run.forecasts));
        tracing::info!(
            family = challenger.family.name(),
            test,
            validation,
            seconds = started.elapsed().as_secs_f64(),
            "challenger scored"
        );
        classical_scores.push((test, validation));
    }
    // DeepAR is trained twice a seed, the same way: on all the data, and without the validation
    // windows for the contest.
    let train_options = |seed| TrainOptions {
        seed,
        device: Device::Cpu,
        source: "train.jsonl",
        on_epoch: None,
    };
    for seed in 0..args.seeds {
        let (cpu, wall) = (process_cpu_seconds()?, Instant::now());
        let (model, _) = train(&hp, &train_set, train_options(seed))?;
        runs.train_cpu_s.push(process_cpu_seconds()? - cpu);
        runs.train_wall_s.push(wall.elapsed().as_secs_f64());
        let options = ForecastOptions {
            num_samples: 100,
            seed: seed + 1000,
            ..ForecastOptions::default()
        };
        let result = backtest(&model, &test_set, options, "test.jsonl")?;
        runs.mean_wql.push(result.model.mean_weighted_quantile_loss);
        runs.naive_wql
            .push(result.seasonal_naive.mean_weighted_quantile_loss);
        tracing::info!(
            seed,
            wql = result.model.mean_weighted_quantile_loss,
            "sluice run done"
        );
        // The contest, as the nightly runs it: every candidate made without the validation
        // windows and scored on them; the lowest wins, and the test score of the winner made
        // from all the data is the champion's.
        let (held_out, _) = train(&hp, &validation_train, train_options(seed))?;
        let deepar_validation = backtest(
            &held_out,
            &validation_lines,
            validate(options),
            "validation",
        )?;
        let mut entries = vec![Entry {
            family: "deepar".into(),
            model_dir: String::new(),
            mean_wql: deepar_validation.model.mean_weighted_quantile_loss,
            naive_mean_wql: f64::NAN,
        }];
        // A chosen DeepAR is refitted on all the data before it serves: the model above.
        let mut tests = vec![result.model.mean_weighted_quantile_loss];
        for ((challenger, (_, row)), &(test, validation)) in challengers
            .iter()
            .zip(contest.challengers.iter_mut())
            .zip(&classical_scores)
        {
            row.push(test);
            tests.push(test);
            entries.push(Entry {
                family: challenger.family.name().into(),
                model_dir: String::new(),
                mean_wql: validation,
                naive_mean_wql: f64::NAN,
            });
        }
        let blend = blend_run(
            &Members {
                deepar: (&result.forecasts, &deepar_validation.forecasts),
                classical: &classical_forecasts,
                classical_validation: &classical_scores.iter().map(|s| s.1).collect::<Vec<_>>(),
                names: &challengers
                    .iter()
                    .map(|c| c.family.name())
                    .collect::<Vec<_>>(),
            },
            &validation_lines,
            &test_set,
            &hp,
        )?;
        let (blend_test, blend_validation) = (blend.test, blend.validation);
        contest.blend.push(blend);
        if let Some(test) = blend_test {
            entries.push(Entry {
                family: "blend".into(),
                model_dir: String::new(),
                mean_wql: blend_validation,
                naive_mean_wql: f64::NAN,
            });
            tests.push(test);
        }
        for ((family, row), entry) in contest.validation.iter_mut().zip(&entries) {
            debug_assert_eq!(family, &entry.family);
            row.push(entry.mean_wql);
        }
        if blend_test.is_none()
            && let Some((_, row)) = contest.validation.last_mut()
        {
            row.push(f64::NAN);
        }
        let chosen = select(&entries).context("no candidate has a finite validation score")?;
        contest.champion.push(tests[chosen.winner]);
        contest.chosen.push(entries[chosen.winner].family.clone());
        tracing::info!(
            seed,
            chosen = %entries[chosen.winner].family,
            wql = tests[chosen.winner],
            "champion chosen"
        );
        if seed + 1 == args.seeds {
            // One series, 100 paths over the horizon: the median of 50 timed calls after 5 warm-ups.
            let (history, _) =
                split_test(model.layout.prediction_length, &test_set[..1], "test.jsonl")?;
            let mut times = Vec::new();
            for call in 0..55 {
                let options = ForecastOptions {
                    num_samples: 100,
                    seed: call,
                    ..ForecastOptions::default()
                };
                let started = Instant::now();
                forecast(&model, &history, options, "test.jsonl")?;
                if call >= 5 {
                    times.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            times.sort_by(f64::total_cmp);
            latency_ms = times[times.len() / 2];
        }
    }
    Ok((runs, latency_ms, contest))
}
