//! `sluice-bench overload`: the prediction endpoint past its capacity, then its champion moved
//! back and forth under load (`scripts/drill.sh overload` runs it). `sluice serve` answers one
//! series, 100 paths × 24 steps, per request:
//!
//! 1. capacity: closed-loop clients for a while; what it completes a second;
//! 2. overload: requests sent at twice that rate, open loop (each on its own, whatever the
//!    others do), for `--seconds`: the excess must be refused at once with 503 and `Retry-After`,
//!    no request may time out, the accepted ones' p99 stays within the target, and the server's
//!    resident memory stays flat;
//! 3. hot swaps: at half the capacity, the champion alias moved `--swaps` times between two
//!    versions with the CLI (another process, as an operator would): no request may fail, and
//!    the answers must come from both versions.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use scheduler::output::{Report, table};

use crate::BenchOverloadArgs;
use crate::serve::{pedestrian, percentile, request_body, sluice_binary, start_sluice, wait_ready};

/// The accepted requests' p99 under overload: the queue bounds the wait to a few inferences.
const ACCEPTED_P99_TARGET_MS: f64 = 1_000.0;
/// Memory is flat when the last ten seconds' peak is within this of the first ten's.
const MEMORY_GROWTH_LIMIT: f64 = 1.10;
/// A request unanswered this long is a timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How one request ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Ok { ms: f64, version: Option<u32> },
    Refused { retry_after: bool },
    Failed,
    TimedOut,
}

async fn call(http: &reqwest::Client, url: &str, body: &Value) -> Outcome {
    let started = Instant::now();
    match http.post(url).json(body).timeout(TIMEOUT).send().await {
        Ok(response) if response.status().is_success() => {
            let version = response
                .headers()
                .get(scheduler::serving::routes::MODEL_VERSION)
                .and_then(|v| v.to_str().ok())
                // `group:vN`
                .and_then(|v| v.rsplit_once(":v"))
                .and_then(|(_, n)| n.parse().ok());
            match response.bytes().await {
                Ok(_) => Outcome::Ok {
                    ms: started.elapsed().as_secs_f64() * 1000.0,
                    version,
                },
                Err(_) => Outcome::Failed,
            }
        }
        Ok(response) if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
            Outcome::Refused {
                retry_after: response
                    .headers()
                    .contains_key(reqwest::header::RETRY_AFTER),
            }
        }
        Ok(_) => Outcome::Failed,
        Err(err) if err.is_timeout() => Outcome::TimedOut,
        Err(_) => Outcome::Failed,
    }
}

/// Sends requests at `rate` a second for `seconds`, each on its own task; returns every outcome.
async fn open_loop(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    rate: f64,
    seconds: f64,
) -> Vec<Outcome> {
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        ticker.tick().await;
        let (http, url, body, outcomes) =
            (http.clone(), url.to_owned(), body.clone(), outcomes.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = call(&http, &url, &body).await;
            outcomes.lock().expect("not poisoned").push(outcome);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Arc::try_unwrap(outcomes)
        .map(|m| m.into_inner().expect("not poisoned"))
        .unwrap_or_default()
}

/// Completed requests a second with `clients` closed-loop clients for `seconds`.
async fn capacity(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    clients: usize,
    seconds: f64,
) -> f64 {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, body) = (http.clone(), url.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0_usize;
            while Instant::now() < end {
                if matches!(call(&http, &url, &body).await, Outcome::Ok { .. }) {
                    done += 1;
                }
            }
            done
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap_or(0);
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// The server's resident memory in MiB (Linux), sampled every second until `stop`.
fn sample_memory(
    pid: u32,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<f64>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                && let Some(kib) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            {
                samples.push(kib / 1024.0);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        samples
    })
}

#[derive(Debug, Default, serde::Serialize)]
struct Counts {
    sent: usize,
    accepted: usize,
    refused: usize,
    refused_without_retry_after: usize,
    failed: usize,
    timed_out: usize,
    accepted_p99_ms: f64,
    versions: Vec<u32>,
}

fn count(outcomes: &[Outcome]) -> Counts {
    let mut counts = Counts {
        sent: outcomes.len(),
        ..Counts::default()
    };
    let mut latencies = Vec::new();
    for outcome in outcomes {
        match *outcome {
            Outcome::Ok { ms, version } => {
                counts.accepted += 1;
                latencies.push(ms);
                if let Some(v) = version
                    && !counts.versions.contains(&v)
                {
                    counts.versions.push(v);
                }
            }
            Outcome::Refused { retry_after } => {
                counts.refused += 1;
                counts.refused_without_retry_after += usize::from(!retry_after);
            }
            Outcome::Failed => counts.failed += 1,
            Outcome::TimedOut => counts.timed_out += 1,
        }
    }
    counts.versions.sort_unstable();
    counts.accepted_p99_ms = if latencies.is_empty() {
        0.0
    } else {
        percentile(&mut latencies, 0.99)
    };
    counts
}

pub async fn run(args: &BenchOverloadArgs) -> anyhow::Result<Report> {
    let train_path = pedestrian(&args.data)?;
    let dir = tempfile::tempdir()?;
    let body = request_body(&train_path, 168)?;
    // The server follows the registry every 200 ms, so that each move is seen before the next.
    let served = start_sluice(
        dir.path(),
        &train_path,
        1,
        2,
        &[("SLUICE_SERVE__REFRESH_MS", "200")],
    )
    .await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    wait_ready(&http, &served.base, Duration::from_secs(60)).await?;
    let url = format!("{}/invocations", served.base);

    // 1. Capacity.
    // A few seconds first, not counted: the model's first inferences and the connections warm up.
    capacity(&http, &url, &body, args.clients, 3.0).await;
    let capacity_rps = capacity(&http, &url, &body, args.clients, args.capacity_seconds).await;
    anyhow::ensure!(capacity_rps > 0.0, "the endpoint answered nothing");

    // 2. Twice the capacity, open loop, memory sampled.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let memory = sample_memory(served.process.0.id(), stop.clone());
    let overload = count(&open_loop(&http, &url, &body, 2.0 * capacity_rps, args.seconds).await);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let memory = memory.join().unwrap_or_default();
    let window = 10.min(memory.len() / 2).max(1);
    let peak = |samples: &[f64]| samples.iter().copied().fold(0.0_f64, f64::max);
    let (early, late) = (
        peak(&memory[..window.min(memory.len())]),
        peak(&memory[memory.len().saturating_sub(window)..]),
    );
    let growth = if early > 0.0 { late / early } else { 1.0 };

    // 3. Hot swaps under half the capacity's load, moved by the CLI.
    let swaps = {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        let seconds = args.swaps as f64 + 2.0;
        let rate = (capacity_rps / 2.0).max(1.0);
        tokio::spawn(async move { open_loop(&http, &url, &body, rate, seconds).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sluice = sluice_binary()?;
    for swap in 0..args.swaps {
        let version = if swap % 2 == 0 { "2" } else { "1" };
        let moved = tokio::process::Command::new(&sluice)
            .args(["--database", &served.database, "--lake", &served.lake])
            .args([
                "models",
                "promote",
                "bench",
                version,
                "--reason",
                "overload drill",
            ])
            .output()
            .await
            .context("sluice models promote")?;
        anyhow::ensure!(
            moved.status.success(),
            "swap {swap}: {}",
            String::from_utf8_lossy(&moved.stderr)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let swapped = count(&swaps.await?);

    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let overload_ok = overload.timed_out == 0
        && overload.failed == 0
        && overload.refused_without_retry_after == 0
        && overload.refused > 0
        && overload.accepted_p99_ms <= ACCEPTED_P99_TARGET_MS
        && growth <= MEMORY_GROWTH_LIMIT;
    let swaps_ok = swapped.failed == 0
        && swapped.timed_out == 0
        && swapped.refused == 0
        && swapped.versions == [1, 2];
    let rows = vec![
        [
            "capacity".to_owned(),
            format!("{capacity_rps:.1} req/s ({} clients)", args.clients),
            "-".into(),
        ],
        [
            format!(
                "overload: {:.1} req/s for {} s",
                2.0 * capacity_rps,
                args.seconds
            ),
            format!(
                "{} sent, {} accepted, {} refused (503; {} without Retry-After), {} timed out, {} failed",
                overload.sent,
                overload.accepted,
                overload.refused,
                overload.refused_without_retry_after,
                overload.timed_out,
                overload.failed
            ),
            format!("no timeout, the excess refused: {}", verdict(overload_ok)),
        ],
        [
            "accepted p99 under overload".to_owned(),
            format!("{:.0} ms", overload.accepted_p99_ms),
            format!("≤ {ACCEPTED_P99_TARGET_MS} ms"),
        ],
        [
            "server memory under overload".to_owned(),
            format!("{early:.0} MiB → {late:.0} MiB ({growth:.2}×)"),
            format!("≤ {MEMORY_GROWTH_LIMIT}×"),
        ],
        [
            format!(
                "{} hot swaps at {:.1} req/s",
                args.swaps,
                capacity_rps / 2.0
            ),
            format!(
                "{} sent, {} answered, {} refused, {} failed, {} timed out; versions seen {:?}",
                swapped.sent,
                swapped.accepted,
                swapped.refused,
                swapped.failed,
                swapped.timed_out,
                swapped.versions
            ),
            format!("zero failed requests: {}", verdict(swaps_ok)),
        ],
    ];
    let text = format!(
        "one series, 100 paths × 24 steps per request\n{}\ndrill  runs  failures  rows exp vs found  lost  duplicates\noverload  {} requests  {}  -  0  0",
        table(["", "sluice serve", "target"], rows),
        overload.sent + swapped.sent,
        overload.timed_out
            + overload.failed
            + overload.refused_without_retry_after
            + swapped.failed
            + swapped.timed_out
            + swapped.refused
            + usize::from(!overload_ok || !swaps_ok),
    );
    Ok(Report::new(
        json!({"capacity_rps": capacity_rps, "overload": overload, "memory_mib": {"early": early, "late": late, "growth": growth},
               "swaps": swapped, "met": overload_ok && swaps_ok}),
        text,
    ))
}
