//! `sluice-bench forecast`: DeepAR on the forecasting benchmark's datasets with the peer's fixed
//! settings (2×40 LSTM, dropout 0.1, lr 1e-3, batch 32, 50 batches × 20 epochs, Student-t,
//! 100 paths), seed by seed, then GluonTS's `run_gluonts.py` and statsforecast's classical
//! models (`bench/peers/statsforecast_peer.py`) on the same data in the same run.
//! Prints accuracy, training CPU seconds and one-series forecast latency against the targets.

use anyhow::Context as _;
use serde_json::{Value, json};

use scheduler::output::{Report, table};

use crate::BenchForecastArgs;
use crate::forecast_peers::{CLASSICAL, Statsforecast, gluonts_runs};
use crate::forecast_sluice::sluice_runs;

const ACCURACY_TARGET: f64 = 0.95;
const CPU_TARGET: f64 = 0.5;
const LATENCY_TARGET_MS: f64 = 10.0;

/// One engine's results on one dataset, seed by seed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct Runs {
    pub(crate) mean_wql: Vec<f64>,
    pub(crate) naive_wql: Vec<f64>,
    pub(crate) train_cpu_s: Vec<f64>,
    pub(crate) train_wall_s: Vec<f64>,
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
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
