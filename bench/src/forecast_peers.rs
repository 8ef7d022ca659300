//! The forecasting benchmark's peers, run as child processes on the same data in the same run:
//! GluonTS's DeepAR (`run_gluonts.py`, seed by seed) and statsforecast's classical models
//! (`bench/peers/statsforecast_peer.py`, deterministic, each within a time limit).

use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use crate::BenchForecastArgs;
use crate::forecast::Runs;

pub(crate) fn gluonts_runs(
    dataset: &str,
    threads: u32,
    args: &BenchForecastArgs,
) -> anyhow::Result<Option<Runs>> {
    let (Some(python), Some(script)) = (&args.gluonts_python, &args.gluonts_script) else {
        return Ok(None);
    };
    let out = tempfile::tempdir()?;
    let mut runs = Runs::default();
    for seed in 0..args.seeds {
        let status = std::process::Command::new(python)
            .arg(script)
            .args([
                "--dataset",
                dataset,
                "--seed",
                &seed.to_string(),
                "--threads",
                &threads.to_string(),
            ])
            .args(["--epochs", &args.epochs.to_string()])
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .env("SLUICE_BENCH_OUT", out.path())
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", python.display()))?;
        anyhow::ensure!(
            status.success(),
            "GluonTS on {dataset} seed {seed} failed ({status})"
        );
        let path = out
            .path()
            .join("results")
            .join(format!("{dataset}_studentt_seed{seed}.json"));
        let result: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        runs.mean_wql.push(
            result["deepar"]["mean_wQuantileLoss"]
                .as_f64()
                .context("mean_wQuantileLoss")?,
        );
        runs.naive_wql.push(
            result["seasonal_naive"]["mean_wQuantileLoss"]
                .as_f64()
                .unwrap_or(f64::NAN),
        );
        runs.train_cpu_s
            .push(result["train_cpu_s"].as_f64().context("train_cpu_s")?);
        runs.train_wall_s
            .push(result["train_wall_s"].as_f64().unwrap_or(f64::NAN));
        tracing::info!(dataset, seed, threads, "GluonTS run done");
    }
    Ok(Some(runs))
}

/// statsforecast's classical models, in the order they are printed.
pub(crate) const CLASSICAL: [&str; 5] =
    ["AutoETS", "AutoARIMA", "AutoTheta", "MSTL", "SeasonalNaive"];

/// statsforecast's models on one dataset (deterministic: one run stands for every seed), as
/// `bench/peers/statsforecast_peer.py` scores them, running in a child process of its own
/// from [`Statsforecast::start`]. The child is killed if the run is dropped before it is
/// finished (sluice's runs beside it failed, say), so no peer outlives the benchmark.
pub(crate) struct Statsforecast {
    child: tokio::process::Child,
    dir: std::path::PathBuf,
    /// Holds the result file until it is read.
    out: tempfile::TempDir,
}

impl Statsforecast {
    /// Starts the peer on `dir`, or nothing when no peer is configured.
    pub(crate) fn start(dir: &Path, args: &BenchForecastArgs) -> anyhow::Result<Option<Self>> {
        let (Some(python), Some(script)) = (&args.statsforecast_python, &args.statsforecast_script)
        else {
            return Ok(None);
        };
        let out = tempfile::tempdir()?;
        let child = tokio::process::Command::new(python)
            .arg(script)
            .arg("--data")
            .arg(dir)
            .arg("--out")
            .arg(out.path().join("statsforecast.json"))
            .args(["--models", &CLASSICAL.join(",")])
            .args(["--time-limit", &args.statsforecast_time_limit.to_string()])
            .env("OMP_NUM_THREADS", "1")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", python.display()))?;
        Ok(Some(Self {
            child,
            dir: dir.to_path_buf(),
            out,
        }))
    }

    /// Waits for the peer and reads its scores.
    pub(crate) async fn finish(mut self) -> anyhow::Result<Value> {
        let status = self.child.wait().await?;
        anyhow::ensure!(
            status.success(),
            "statsforecast on {} failed ({status})",
            self.dir.display()
        );
        let result = self.out.path().join("statsforecast.json");
        Ok(serde_json::from_str(&std::fs::read_to_string(&result)?)?)
    }
}
