//! `sluice-bench forecast`: DeepAR on the forecasting benchmark's datasets with the peer's fixed
//! settings (2×40 LSTM, dropout 0.1, lr 1e-3, batch 32, 50 batches × 20 epochs, Student-t,
//! 100 paths), seed by seed, then GluonTS's `run_gluonts.py` and statsforecast's classical
//! models (`bench/peers/statsforecast_peer.py`) on the same data in the same run.
//! Prints accuracy, training CPU seconds and one-series forecast latency against the targets.

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

use scheduler::output::{Report, table};

use crate::BenchForecastArgs;
use crate::forecast_blend::{BlendRun, Members, blend_run};
use crate::forecast_peers::{CLASSICAL, Statsforecast, gluonts_runs};

const ACCURACY_TARGET: f64 = 0.95;
const CPU_TARGET: f64 = 0.5;
const LATENCY_TARGET_MS: f64 = 10.0;

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

/// One engine's results on one dataset, seed by seed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct Runs {
    pub(crate) mean_wql: Vec<f64>,
    pub(crate) naive_wql: Vec<f64>,
    pub(crate) train_cpu_s: Vec<f64>,
    pub(crate) train_wall_s: Vec<f64>,
}

/// The classical challengers and the champion chosen among every candidate on validation
/// windows, seed by seed.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Contest {
    /// The rolling validation windows held out of each training series.
    validation_windows: usize,
    /// (family, test mean_wQuantileLoss by seed).
    challengers: Vec<(String, Vec<f64>)>,
    /// The champion's test mean_wQuantileLoss by seed, and the family chosen each seed.
    champion: Vec<f64>,
    chosen: Vec<String>,
    /// Each candidate's validation mean_wQuantileLoss by seed, (family, values); the blend's is
    /// NaN in a seed where no mix beat its members.
    validation: Vec<(String, Vec<f64>)>,
    /// The blend of DeepAR and the best classical challenger by seed, as the nightly's blend
    /// step makes it.
    blend: Vec<BlendRun>,
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn sluice_runs(
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
    for seed in 0..args.seeds {
        let (cpu, wall) = (process_cpu_seconds()?, Instant::now());
        let options = TrainOptions {
            seed,
            device: Device::Cpu,
            source: "train.jsonl",
            on_epoch: None,
        };
        let (model, _) = train(&hp, &train_set, options)?;
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
        let train_options = TrainOptions {
            seed,
            device: Device::Cpu,
            source: "train.jsonl",
            on_epoch: None,
        };
        let (held_out, _) = train(&hp, &validation_train, train_options)?;
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

pub async fn run(args: &BenchForecastArgs) -> anyhow::Result<Report> {
    let mut text = String::new();
    let mut results = Vec::new();
    for dataset in &args.datasets {
        let dir = args.data.join(dataset);
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("metadata.json"))
                .with_context(|| format!("{}: no metadata.json", dir.display()))?,
        )?;
        // statsforecast (one process, one thread) runs beside sluice's runs on the other core;
        // GluonTS after them, alone beside it, since its CPU seconds are compared with sluice's.
        // An early return (sluice's runs failed) drops the child, which kills it.
        let classical = Statsforecast::start(&dir, args)?;
        let (sluice, latency_ms, contest) = {
            let (dir, meta) = (dir.clone(), meta.clone());
            let args = BenchForecastArgs {
                datasets: vec![],
                ..args.clone()
            };
            tokio::task::spawn_blocking(move || sluice_runs(&dir, &meta, &args)).await??
        };
        let mut peers = Vec::new();
        for &threads in &args.gluonts_threads {
            let (dataset, args) = (dataset.clone(), args.clone());
            if let Some(runs) =
                tokio::task::spawn_blocking(move || gluonts_runs(&dataset, threads, &args))
                    .await??
            {
                peers.push((threads, runs));
            }
        }
        let classical = match classical {
            Some(peer) => Some(peer.finish().await?),
            None => None,
        };
        let seeds = |r: &Runs| {
            r.mean_wql
                .iter()
                .map(|v| format!("{v:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut rows = vec![[
            "sluice (1 thread)".to_string(),
            seeds(&sluice),
            format!("{:.4}", mean(&sluice.mean_wql)),
            format!("{:.4}", mean(&sluice.naive_wql)),
            format!("{:.1}", mean(&sluice.train_cpu_s)),
        ]];
        for (family, values) in &contest.challengers {
            rows.push([
                format!("sluice {family} (challenger)"),
                format!(
                    "{:.3} (deterministic)",
                    values.first().copied().unwrap_or(f64::NAN)
                ),
                format!("{:.4}", mean(values)),
                "-".to_string(),
                "- (fitted per series)".to_string(),
            ]);
        }
        rows.push([
            "sluice blend (DeepAR + the best challenger)".to_string(),
            contest
                .blend
                .iter()
                .map(|b| match b.test {
                    Some(test) => format!("{test:.4} ({} {:.1})", b.local, 1.0 - b.deepar_weight),
                    None => format!(
                        "none ({} alone)",
                        if b.deepar_weight == 1.0 {
                            "deepar"
                        } else {
                            &b.local
                        }
                    ),
                })
                .collect::<Vec<_>>()
                .join(" "),
            format!(
                "{:.4}",
                mean(
                    &contest
                        .blend
                        .iter()
                        .filter_map(|b| b.test)
                        .collect::<Vec<_>>()
                )
            ),
            "-".to_string(),
            "-".to_string(),
        ]);
        rows.push([
            format!(
                "sluice champion (chosen on {} validation window{})",
                contest.validation_windows,
                if contest.validation_windows == 1 {
                    ""
                } else {
                    "s"
                }
            ),
            contest
                .champion
                .iter()
                .zip(&contest.chosen)
                .map(|(v, f)| format!("{v:.4} ({f})"))
                .collect::<Vec<_>>()
                .join(" "),
            format!("{:.4}", mean(&contest.champion)),
            "-".to_string(),
            "-".to_string(),
        ]);
        for (threads, runs) in &peers {
            rows.push([
                format!(
                    "GluonTS ({threads} thread{})",
                    if *threads == 1 { "" } else { "s" }
                ),
                seeds(runs),
                format!("{:.4}", mean(&runs.mean_wql)),
                format!("{:.4}", mean(&runs.naive_wql)),
                format!("{:.1}", mean(&runs.train_cpu_s)),
            ]);
        }
        if let Some(classical) = &classical {
            for name in CLASSICAL {
                let wql = classical[name]["mean_wQuantileLoss"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                let scores = match classical[name]["timed_out_after_s"].as_u64() {
                    Some(limit) => format!("not finished in {limit} s"),
                    None => format!("{wql:.3} (deterministic)"),
                };
                rows.push([
                    format!("statsforecast {name}"),
                    scores,
                    format!("{wql:.4}"),
                    "-".to_string(),
                    format!(
                        "{:.1} (fit and forecast)",
                        classical[name]["fit_cpu_s"].as_f64().unwrap_or(f64::NAN)
                    ),
                ]);
            }
        }
        text.push_str(&format!("{dataset}\n"));
        text.push_str(&table(
            [
                "engine",
                "mean_wQuantileLoss by seed",
                "mean",
                "seasonal naive",
                "train CPU s (mean)",
            ],
            rows,
        ));
        let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
        let best_peer = peers
            .iter()
            .min_by(|a, b| mean(&a.1.train_cpu_s).total_cmp(&mean(&b.1.train_cpu_s)));
        let mut summary = json!({
            "dataset": dataset, "sluice": sluice, "latency_ms_one_series_100_paths": latency_ms,
            "contest": contest,
            "gluonts": peers.iter().map(|(t, r)| json!({"threads": t, "runs": r})).collect::<Vec<_>>(),
            "statsforecast": classical,
        });
        if let Some((threads, peer)) = best_peer {
            let accuracy = mean(&sluice.mean_wql) / mean(&peer.mean_wql);
            let cpu = mean(&sluice.train_cpu_s) / mean(&peer.train_cpu_s);
            text.push_str(&format!(
                "\naccuracy: sluice/GluonTS mean_wQuantileLoss {accuracy:.2} (target <= {ACCURACY_TARGET}: {})\n\
                 training CPU: sluice/GluonTS ({threads} thread(s), its cheapest) {cpu:.2} (target <= {CPU_TARGET}: {})\n",
                verdict(accuracy <= ACCURACY_TARGET),
                verdict(cpu <= CPU_TARGET),
            ));
            summary["accuracy_ratio"] = json!(accuracy);
            summary["cpu_ratio"] = json!(cpu);
        } else {
            text.push_str("\n(GluonTS not run: pass --gluonts-python and --gluonts-script)\n");
        }
        if let Some(classical) = &classical {
            let sluice_wql = mean(&sluice.mean_wql);
            let (best, best_wql) = CLASSICAL
                .iter()
                .filter_map(|name| {
                    classical[*name]["mean_wQuantileLoss"]
                        .as_f64()
                        .map(|wql| (*name, wql))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or(("none", f64::NAN));
            text.push_str(&format!(
                "classical: statsforecast's best is {best} at {best_wql:.4}; sluice DeepAR/{best} {:.2}\n",
                sluice_wql / best_wql
            ));
            summary["classical_ratio"] = json!(sluice_wql / best_wql);
            // Seed by seed: the champion against GluonTS's run with the same seed (every
            // thread setting), statsforecast's best (deterministic) and seasonal naive.
            let best_peers: Vec<f64> = (0..contest.champion.len())
                .map(|seed| {
                    peers
                        .iter()
                        .filter_map(|(_, r)| r.mean_wql.get(seed).copied())
                        .chain([best_wql, sluice.naive_wql[seed]])
                        .fold(f64::INFINITY, f64::min)
                })
                .collect();
            let champion = mean(&contest.champion);
            let every_seed = contest.champion.iter().zip(&best_peers).all(|(c, p)| c < p);
            text.push_str(&format!(
                "champion by seed: {} against the best peer's {} (target: beats every peer with every seed: {})\n",
                contest
                    .champion
                    .iter()
                    .map(|v| format!("{v:.5}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                best_peers
                    .iter()
                    .map(|v| format!("{v:.5}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                verdict(every_seed)
            ));
            summary["champion_mean"] = json!(champion);
            summary["best_peer_by_seed"] = json!(best_peers);
            summary["champion_beats_every_peer"] = json!(every_seed);
        } else {
            text.push_str(
                "(statsforecast not run: pass --statsforecast-python and --statsforecast-script)\n",
            );
        }
        text.push_str(&format!(
            "forecast, one series, 100 paths x {} steps: {latency_ms:.2} ms median (target <= {LATENCY_TARGET_MS} ms: {})\n\n",
            meta["prediction_length"],
            verdict(latency_ms <= LATENCY_TARGET_MS)
        ));
        results.push(summary);
    }
    Ok(Report::new(
        json!({ "datasets": results }),
        text.trim_end().to_string(),
    ))
}
