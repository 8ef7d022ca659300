//! `sluice-bench ingest`: sustained acknowledged records per second through the Firehose API
//! of a real `sluice server` (a process of its own, so that its peak RSS is its own), from
//! several clients sending `PutRecordBatch` calls of 500 records of about 300 bytes, with the
//! latency of each acknowledgement (an acknowledgement means fsync'd). Once bearer tokens and
//! once SigV4-signed, as AWS SDKs send. Then every acknowledged record is counted in the lake.
//! Then the same through the MQTT bridge (`ingest_mqtt.rs`). The targets are the issue's: at
//! least 100,000 records/s through the API and 20,000 messages/s through MQTT, peak RSS at most
//! 300 MB. (For scale: a Firehose stream's default quota is a few thousand records per second.)

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use scheduler::output::{Report, table};

use crate::BenchIngestArgs;
use crate::serve::{Running, free_port, percentile, sluice_binary};

const RECORDS_TARGET: f64 = 100_000.0;
const MQTT_TARGET: f64 = 20_000.0;
const RSS_TARGET_MB: f64 = 300.0;

/// One phase's figures.
#[derive(Debug, Clone, serde::Serialize)]
struct Figures {
    auth: &'static str,
    records_per_second: f64,
    megabytes_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    acknowledged: u64,
    refused: u64,
}

fn sluice(dir: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let output = std::process::Command::new(sluice_binary()?)
        .args(args)
        .args(["--output", "json"])
        .current_dir(dir)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "sluice {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// A batch of 500 readings of about 300 bytes each, as a PutRecordBatch body.
fn body(client: usize) -> String {
    let records: Vec<Value> = (0..500)
        .map(|i| {
            let reading = json!({
                "device_id": format!("aq-{:04}", (client * 500 + i) % 2000),
                "ts": "2026-12-05T03:00:00.000Z",
                "firmware": "2.0.3",
                "pm25": 12.5 + i as f64 / 10.0, "pm10": 20.25, "no2": 31.5, "o3": 44.0,
                "temperature_c": 3.5, "humidity": 81.0, "pressure_hpa": 1013.2,
                "battery_v": 3.71, "rssi_dbm": -71,
                "location": {"lat": 52.52001, "lon": 13.40495, "site": "site-07", "elevation_m": 34.0},
                "status": "ok", "seq": i, "pad": "x".repeat(12),
            });
            json!({"Data": base64::engine::general_purpose::STANDARD.encode(reading.to_string())})
        })
        .collect();
    json!({"DeliveryStreamName": "bench", "Records": records}).to_string()
}

fn record_bytes(body: &str) -> anyhow::Result<usize> {
    let parsed: Value = serde_json::from_str(body)?;
    let mut total = 0;
    for record in parsed["Records"].as_array().into_iter().flatten() {
        total += base64::engine::general_purpose::STANDARD
            .decode(record["Data"].as_str().unwrap_or_default())?
            .len();
    }
    Ok(total)
}

/// `clients` clients for `seconds`, each sending its batch again and again.
async fn phase(
    base: &str,
    token: &str,
    keys: Option<(&str, &str)>,
    args: &BenchIngestArgs,
) -> anyhow::Result<Figures> {
    let stop = Arc::new(AtomicBool::new(false));
    let bodies: Vec<String> = (0..args.clients).map(body).collect();
    let per_batch = record_bytes(&bodies[0])? as f64;
    let started = Instant::now();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (stop, base, token) = (stop.clone(), base.to_owned(), token.to_owned());
            let keys = keys.map(|(k, s)| (k.to_owned(), s.to_owned()));
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let host = base
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned();
                let (mut latencies, mut refused) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let mut request = http
                        .post(&base)
                        .header("x-amz-target", "Firehose_20150804.PutRecordBatch")
                        .header("content-type", "application/x-amz-json-1.1");
                    match &keys {
                        Some((key, secret)) => {
                            let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
                            let headers = [
                                ("host", host.as_str()),
                                ("x-amz-date", date.as_str()),
                                ("x-amz-target", "Firehose_20150804.PutRecordBatch"),
                            ];
                            let signed = ops::serving::sigv4::sign(
                                &ops::serving::sigv4::Request {
                                    method: "POST",
                                    path: "/",
                                    query: "",
                                    headers: &headers,
                                    body: body.as_bytes(),
                                },
                                key,
                                secret,
                                "us-east-1",
                                "firehose",
                                &["host", "x-amz-date", "x-amz-target"],
                            )
                            .expect("the headers are there");
                            request = request
                                .header("x-amz-date", date)
                                .header("authorization", signed);
                        }
                        None => request = request.bearer_auth(&token),
                    }
                    let answer = request.body(body.clone()).send().await;
                    match answer {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.bytes().await;
                            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                        }
                        Ok(response) => {
                            let _ = response.bytes().await;
                            refused += 1;
                        }
                        Err(_) => refused += 1,
                    }
                }
                (latencies, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (l, r) = task.await?;
        latencies.extend(l);
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let batches = latencies.len() as f64;
    Ok(Figures {
        auth: if keys.is_some() { "SigV4" } else { "bearer" },
        records_per_second: batches * 500.0 / elapsed,
        megabytes_per_second: batches * per_batch / elapsed / 1e6,
        p50_ms: percentile(&mut latencies.clone(), 0.5),
        p99_ms: percentile(&mut latencies, 0.99),
        acknowledged: latencies.len() as u64 * 500,
        refused,
    })
}

/// Records in the lake under `root`: newline-delimited, gzip'd objects.
fn count_landed(root: &Path) -> anyhow::Result<u64> {
    let mut count = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "gz") {
                let mut text = Vec::new();
                flate2::read::GzDecoder::new(std::fs::File::open(&path)?).read_to_end(&mut text)?;
                count += memchr::memchr_iter(b'\n', &text).count() as u64;
            }
        }
    }
    Ok(count)
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub async fn run(args: &BenchIngestArgs) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let path = dir.path();
    let port = free_port()?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    std::fs::write(
        path.join("sluice.toml"),
        format!(
            "database = \"sqlite://sluice.db\"\nlake = \"file://lake\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n{}",
            crate::ingest_mqtt::config(&run, args.mqtt_connections)
        ),
    )?;
    let admin = sluice(path, &["token", "create", "--scope", "admin"])?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let keys = sluice(
        path,
        &["token", "create", "--scope", "ingest", "--name", "bench"],
    )?;
    let token = keys["token"].as_str().unwrap_or_default().to_owned();
    let key = keys["access_key_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let secret = keys["secret_access_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for (stream, prefix) in [
        ("bench", "landing/bench/"),
        ("bench-mqtt", "landing/bench-mqtt/"),
    ] {
        sluice(
            path,
            &[
                "ingest",
                "stream",
                "create",
                stream,
                "--prefix",
                prefix,
                "--buffer-mib",
                "5",
                "--buffer-seconds",
                "60",
                "--gzip",
                "--append-newline",
            ],
        )?;
    }
    let child = std::process::Command::new(sluice_binary()?)
        .args(["server", "--no-worker"])
        .current_dir(path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    let server = Running(child);
    let base = format!("http://127.0.0.1:{port}/");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}health")).send().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "sluice server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bearer = phase(&base, &token, None, args).await?;
    let signed = phase(&base, &token, Some((&key, &secret)), args).await?;
    let mqtt =
        crate::ingest_mqtt::phase(&base, &admin, &run, args.publishers, args.seconds).await?;
    let rss = peak_rss_mb(pid);
    // A graceful stop delivers what is buffered; then count it all.
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let mut server = server;
    let stopped = Instant::now();
    while server.0.try_wait()?.is_none() {
        anyhow::ensure!(
            stopped.elapsed() < Duration::from_secs(60),
            "the server did not stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acknowledged = bearer.acknowledged + signed.acknowledged;
    let landed = count_landed(&path.join("lake/landing/bench"))?;
    let landed_mqtt = count_landed(&path.join("lake/landing/bench-mqtt"))?;
    let rows = [&bearer, &signed].map(|f| {
        [
            f.auth.to_owned(),
            args.clients.to_string(),
            format!("{:.0}", f.records_per_second),
            format!("{:.1}", f.megabytes_per_second),
            format!("{:.1} ms", f.p50_ms),
            format!("{:.1} ms", f.p99_ms),
            f.refused.to_string(),
        ]
    });
    let mut text = table(
        [
            "auth",
            "clients",
            "records/s",
            "MB/s of data",
            "p50 ack",
            "p99 ack",
            "refused",
        ],
        rows,
    );
    let best = bearer.records_per_second.max(signed.records_per_second);
    text.push_str(&format!(
        "\ntarget ≥ {RECORDS_TARGET:.0} records/s: {:.2}× (bearer), {:.2}× (SigV4)\
         \nserver peak RSS {rss:.0} MB (target ≤ {RSS_TARGET_MB:.0} MB)\
         \nacknowledged {acknowledged}, in the lake after a graceful stop {landed}{}",
        bearer.records_per_second / RECORDS_TARGET,
        signed.records_per_second / RECORDS_TARGET,
        if landed == acknowledged {
            " (all of them, once)"
        } else {
            " (MISMATCH)"
        }
    ));
    text.push_str(&format!(
        "\nMQTT bridge ({} publishers, {} connections): {:.0} messages/s acknowledged, \
         server-side ack wait p50 ≤ {:.1} ms, p99 ≤ {:.1} ms; target ≥ {MQTT_TARGET:.0}: {:.2}×\
         \nMQTT messages published {} (what the broker did not drop of them reached the bridge), \
         taken {}, in the lake after a graceful stop {landed_mqtt}",
        args.publishers,
        args.mqtt_connections,
        mqtt.messages_per_second,
        mqtt.ack_p50_ms,
        mqtt.ack_p99_ms,
        mqtt.messages_per_second / MQTT_TARGET,
        mqtt.published,
        mqtt.accepted,
    ));
    anyhow::ensure!(
        landed == acknowledged && landed_mqtt == mqtt.accepted,
        "{text}\n{landed} records landed for {acknowledged} acknowledged, {landed_mqtt} MQTT \
         messages for {} taken",
        mqtt.accepted
    );
    Ok(Report::new(
        json!({"phases": [bearer, signed], "best_records_per_second": best, "mqtt": mqtt,
               "server_peak_rss_mb": rss, "acknowledged": acknowledged, "landed": landed,
               "landed_mqtt": landed_mqtt}),
        text,
    ))
}
