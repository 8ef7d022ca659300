//! `sluice-bench serve`: the prediction endpoint under load, beside GluonTS's predictor behind a
//! minimal Python HTTP server, in the same run and with the same client. Both models have the
//! same architecture (2 × 40 LSTM, Student-t, 24-step horizon) and are trained briefly on the
//! same series: latency depends on the architecture, not on the fit. Each request is one series,
//! 100 sample paths × 24 steps. Measured: latency at concurrency 1 (p50, p99), throughput at
//! saturation, and `/ping` latency while saturated.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use candle_core::Device;
use jobs::catalog::{Catalog, ConnectOptions};
use jobs::lake::Lake;
use models::deepar::series::read_json_lines;
use models::deepar::{Hyperparameters, TrainOptions, artifact, train};
use models::registry::{AliasName, Change, GroupName, NewVersion, Registry};
use serde_json::{Value, json};

use scheduler::output::{Report, table};
use scheduler::serving::endpoints::{self, EndpointSpec};

use crate::BenchServeArgs;

const P99_TARGET_MS: f64 = 20.0;
const THROUGHPUT_TARGET: f64 = 10.0;
const PING_TARGET_MS: f64 = 20.0;
const PEER: &str = include_str!("serve_peer.py");

/// What one server achieved.
#[derive(Debug, Clone, serde::Serialize)]
struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    throughput_rps: f64,
    saturated_errors: usize,
    ping_p99_ms: f64,
    pings: usize,
}

pub(crate) fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    values[((values.len() as f64 - 1.0) * q).round() as usize]
}

/// Kills a child process when dropped.
pub(crate) struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) async fn wait_ready(
    http: &reqwest::Client,
    base: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(response) = http.get(format!("{base}/ping")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{base} did not come up in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The load: sequential requests, then `concurrency` clients for `seconds` with a pinger.
async fn measure(base: &str, body: &Value, args: &BenchServeArgs) -> anyhow::Result<Figures> {
    let http = reqwest::Client::new();
    let url = format!("{base}/invocations");
    let call = |http: reqwest::Client, url: String, body: Value| async move {
        let started = Instant::now();
        let ok = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        (ok, started.elapsed().as_secs_f64() * 1000.0)
    };
    for _ in 0..10 {
        let (ok, _) = call(http.clone(), url.clone(), body.clone()).await;
        anyhow::ensure!(ok, "{url} does not answer the benchmark's request");
    }
    let mut sequential = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let (ok, ms) = call(http.clone(), url.clone(), body.clone()).await;
        anyhow::ensure!(ok, "{url} failed during the sequential run");
        sequential.push(ms);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
            let (http, url, body) = (http.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (ok, _) = call(http.clone(), url.clone(), body.clone()).await;
                    if ok { &answered } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let pinger = {
        let (stop, http, ping) = (stop.clone(), http.clone(), format!("{base}/ping"));
        tokio::spawn(async move {
            // Let the clients saturate the server first.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                if http.get(&ping).send().await.is_ok() {
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            latencies
        })
    };
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let count = answered.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    let mut pings = pinger.await?;
    Ok(Figures {
        p50_ms: percentile(&mut sequential.clone(), 0.5),
        p99_ms: percentile(&mut sequential, 0.99),
        throughput_rps: count as f64 / elapsed,
        saturated_errors: failed.load(Ordering::Relaxed),
        ping_p99_ms: percentile(&mut pings, 0.99),
        pings: pings.len(),
    })
}

/// The server a benchmark or drill starts: the process, its address, and the database and lake
/// (`--database`, `--lake`) the CLI reaches its registry with.
pub(crate) struct Served {
    pub process: Running,
    pub base: String,
    pub database: String,
    pub lake: String,
}

/// Trains sluice's model, registers it as the champion of an endpoint (group `bench`), and
/// starts `sluice serve` with `env` added to its environment. With `versions` above one, the
/// same artifact is registered again as versions 2, 3, ... (for hot swaps), version 1 champion.
pub(crate) async fn start_sluice(
    dir: &Path,
    train_path: &Path,
    epochs: usize,
    versions: usize,
    env: &[(&str, &str)],
) -> anyhow::Result<Served> {
    let hp = Hyperparameters::from_map(
        json!({"time_freq": "H", "context_length": "24", "prediction_length": "24",
               "epochs": epochs.to_string(), "num_cells": "40", "num_layers": "2",
               "likelihood": "student-T", "mini_batch_size": "32", "num_batches_per_epoch": "10",
               "learning_rate": "0.001", "dropout_rate": "0.1"})
        .as_object()
        .expect("an object"),
    )?;
    let (series_path, model_dir) = (train_path.to_owned(), dir.join("model"));
    let saved = model_dir.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let series = read_json_lines(&series_path)?;
        let options = TrainOptions {
            seed: 0,
            device: Device::Cpu,
            source: "train",
            on_epoch: None,
        };
        let (model, _) = train(&hp, &series, options)?;
        artifact::save(&model, &saved, &artifact::Lineage::default())?;
        Ok(())
    })
    .await??;
    let database = format!("sqlite://{}/sluice.db", dir.display());
    let lake_url = format!("file://{}/lake", dir.display());
    let catalog = Catalog::connect(&database, &ConnectOptions::default()).await?;
    let lake = Lake::open(&lake_url, &jobs::lake::S3Options::default())?;
    let group = GroupName::parse("bench")?;
    let artifact_key = ops::upload_model(&lake, &group, &model_dir).await?;
    let registry = Registry::new(catalog.pool().clone());
    let mut registered = Vec::new();
    for _ in 0..versions.max(1) {
        registered.push(
            registry
                .register(
                    &group,
                    &NewVersion {
                        artifact: artifact_key.clone(),
                        dataset_snapshot: None,
                        training_execution: None,
                        hyperparameters: json!({}),
                        metrics: json!({}),
                        baseline_metrics: json!({}),
                        actor: "bench".into(),
                    },
                )
                .await?,
        );
    }
    let version = &registered[0];
    let change = Change {
        actor: "bench".into(),
        reason: "benchmark".into(),
    };
    registry
        .move_alias(&group, &AliasName::champion(), version.version, &change)
        .await?;
    endpoints::put(
        catalog.pool(),
        &EndpointSpec::new("default", group, vec![])?,
    )
    .await?;
    catalog.close().await;
    let port = free_port()?;
    let child = Command::new(sluice_binary()?)
        .args([
            "--database",
            &database,
            "--lake",
            &lake_url,
            "serve",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env("SLUICE_AUTH__ANONYMOUS_PREDICT", "true")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start sluice serve")?;
    Ok(Served {
        process: Running(child),
        base: format!("http://127.0.0.1:{port}"),
        database,
        lake: lake_url,
    })
}

/// Starts the Python peer; waits for it to train and listen.
async fn start_peer(
    dir: &Path,
    python: &Path,
    train_path: &Path,
    epochs: usize,
) -> anyhow::Result<(Running, String)> {
    let script = dir.join("gluonts_server.py");
    std::fs::write(&script, PEER)?;
    let port_file = dir.join("gluonts.port");
    let child = Command::new(python)
        .arg(&script)
        .arg(train_path)
        .arg(&port_file)
        .arg(epochs.to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("gluonts.log"))?)
        .spawn()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if let Ok(port) = std::fs::read_to_string(&port_file) {
            return Ok((running, format!("http://127.0.0.1:{}", port.trim())));
        }
        if let Some(status) = running.0.try_wait()? {
            let log = std::fs::read_to_string(dir.join("gluonts.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            anyhow::bail!(
                "the GluonTS server exited ({status}):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the GluonTS server did not start in 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The request every call sends: the last `history` hours of the first training series.
pub(crate) fn request_body(train_path: &Path, history: usize) -> anyhow::Result<Value> {
    let series = read_json_lines(train_path)?;
    let first = series.first().context("no series")?;
    let skip = first.target.len().saturating_sub(history);
    let start = first.start + chrono::Duration::hours(skip as i64);
    Ok(json!({
        "instances": [{"start": start.format("%Y-%m-%d %H:%M:%S").to_string(), "target": first.target[skip..]}],
        "configuration": {"num_samples": 100, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.5", "0.9"]},
    }))
}

/// The `sluice` binary built beside this one (the scripts build both).
pub(crate) fn sluice_binary() -> anyhow::Result<PathBuf> {
    let here = std::env::current_exe()?;
    let sluice = here.with_file_name("sluice");
    anyhow::ensure!(
        sluice.is_file(),
        "{} not found: build it beside sluice-bench (cargo build --release -p scheduler -p bench)",
        sluice.display()
    );
    Ok(sluice)
}

/// The pedestrian series the serving benchmarks train on and ask about.
pub(crate) fn pedestrian(data: &Path) -> anyhow::Result<PathBuf> {
    let train_path = data.join("train.jsonl");
    anyhow::ensure!(
        train_path.is_file(),
        "{} not found (the hourly pedestrian data of ../shared/bench/forecast)",
        train_path.display()
    );
    Ok(train_path)
}

pub async fn run(args: &BenchServeArgs) -> anyhow::Result<Report> {
    let train_path = pedestrian(&args.data)?;
    let dir = tempfile::tempdir()?;
    let body = request_body(&train_path, args.history)?;
    let http = reqwest::Client::new();
    let served = start_sluice(dir.path(), &train_path, args.epochs, 1, &[]).await?;
    let (sluice_server, sluice_base) = (served.process, served.base);
    wait_ready(&http, &sluice_base, Duration::from_secs(60)).await?;
    let sluice = measure(&sluice_base, &body, args).await?;
    drop(sluice_server);
    let peer = match &args.gluonts_python {
        Some(python) => {
            let (server, base) = start_peer(dir.path(), python, &train_path, args.epochs).await?;
            wait_ready(&http, &base, Duration::from_secs(60)).await?;
            let figures = measure(&base, &body, args).await?;
            drop(server);
            Some(figures)
        }
        None => None,
    };
    let ms = |v: f64| format!("{v:.2} ms");
    let peer_cell =
        |f: &dyn Fn(&Figures) -> String| peer.as_ref().map_or_else(|| "-".to_owned(), f);
    let ratio = peer
        .as_ref()
        .map(|p| sluice.throughput_rps / p.throughput_rps);
    let rows = vec![
        [
            "p50 latency, concurrency 1".to_owned(),
            ms(sluice.p50_ms),
            peer_cell(&|p| ms(p.p50_ms)),
            "-".into(),
        ],
        [
            "p99 latency, concurrency 1".to_owned(),
            ms(sluice.p99_ms),
            peer_cell(&|p| ms(p.p99_ms)),
            format!(
                "≤ {P99_TARGET_MS} ms: {}",
                if sluice.p99_ms <= P99_TARGET_MS {
                    "met"
                } else {
                    "NOT met"
                }
            ),
        ],
        [
            format!("throughput, {} clients", args.concurrency),
            format!("{:.1} req/s", sluice.throughput_rps),
            peer_cell(&|p| format!("{:.1} req/s", p.throughput_rps)),
            match ratio {
                Some(r) => format!(
                    "≥ {THROUGHPUT_TARGET}× peer: {r:.1}× {}",
                    if r >= THROUGHPUT_TARGET {
                        "met"
                    } else {
                        "NOT met"
                    }
                ),
                None => "needs --gluonts-python".into(),
            },
        ],
        [
            "errors while saturated".to_owned(),
            sluice.saturated_errors.to_string(),
            peer_cell(&|p| p.saturated_errors.to_string()),
            "-".into(),
        ],
        [
            "/ping p99, saturated".to_owned(),
            ms(sluice.ping_p99_ms),
            peer_cell(&|p| ms(p.ping_p99_ms)),
            format!(
                "≤ {PING_TARGET_MS} ms: {}",
                if sluice.ping_p99_ms <= PING_TARGET_MS {
                    "met"
                } else {
                    "NOT met"
                }
            ),
        ],
    ];
    let text = format!(
        "one series ({} h of history), 100 paths × 24 steps; {} sequential requests, then {} clients for {} s\n{}",
        args.history,
        args.requests,
        args.concurrency,
        args.seconds,
        table(
            ["", "sluice", "GluonTS + Python http.server", "target"],
            rows
        )
    );
    Ok(Report::new(
        json!({"sluice": sluice, "gluonts": peer, "throughput_ratio": ratio,
               "targets": {"p99_ms": P99_TARGET_MS, "throughput_ratio": THROUGHPUT_TARGET, "ping_p99_ms": PING_TARGET_MS}}),
        text,
    ))
}
