//! The MQTT phase of `sluice-bench ingest`: publishers send readings of about 300 bytes at
//! QoS 1 to the broker (Mosquitto on 127.0.0.1:1883 here) as fast as it takes them, and the
//! server's bridge lands them, acknowledging each to the broker only after its fsync. The rate
//! is what the server acknowledged over the window (`GET /ingest/stats`, sampled at its ends);
//! the latency is the server's wait for the fsync of each put, from the same figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};

/// The bridge's section of the server's configuration: `topic` prefix, stream `bench-mqtt`.
pub fn config(run: &str, connections: usize) -> String {
    format!(
        "\n[ingest.mqtt]\nbroker = \"mqtt://127.0.0.1:1883\"\nclient_id = \"sluice-bench-{run}\"\n\
         connections = {connections}\n\n[[ingest.mqtt.rules]]\ntopic = \"bench-{run}/+/telemetry\"\n\
         stream = \"bench-mqtt\"\ntopic_fields = {{ device_id = 2 }}\n"
    )
}

/// What the MQTT phase measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    pub messages_per_second: f64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub accepted: u64,
    /// What the publishers had acknowledged by the broker.
    pub published: u64,
}

async fn stream_stats(http: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<Value> {
    let all: Value = http
        .get(format!("{base}ingest/stats"))
        .bearer_auth(admin)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(all
        .as_array()
        .and_then(|streams| streams.iter().find(|s| s["stream"] == "bench-mqtt"))
        .cloned()
        .unwrap_or(Value::Null))
}

fn accepted(stats: &Value) -> u64 {
    stats["records_accepted"].as_u64().unwrap_or(0)
}

/// `publishers` publishers for `seconds` after a warm-up; then waits until the server has
/// taken everything published.
pub async fn phase(
    base: &str,
    admin: &str,
    run: &str,
    publishers: usize,
    seconds: f64,
) -> anyhow::Result<Figures> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..publishers {
        let (stop, run) = (stop.clone(), run.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut options = MqttOptions::new(format!("bench-pub-{run}-{n}"), "127.0.0.1", 1883);
            options.set_inflight(200).set_keep_alive(Duration::from_secs(30));
            let (client, mut events) = AsyncClient::new(options, 1024);
            let poll = tokio::spawn(async move { while events.poll().await.is_ok() {} });
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let reading = json!({
                    "ts": "2026-12-05T03:00:00.000Z", "firmware": "2.0.3",
                    "pm25": 12.5, "pm10": 20.25, "no2": 31.5, "o3": 44.0, "temperature_c": 3.5,
                    "humidity": 81.0, "pressure_hpa": 1013.2, "battery_v": 3.71, "rssi_dbm": -71,
                    "location": {"lat": 52.52001, "lon": 13.40495, "site": "site-07", "elevation_m": 34.0},
                    "status": "ok", "seq": sent, "pad": "x".repeat(40),
                });
                let topic = format!("bench-{run}/aq-{:04}/telemetry", (n as u64 * 97 + sent) % 2000);
                if client
                    .publish(topic, QoS::AtLeastOnce, false, reading.to_string())
                    .await
                    .is_err()
                {
                    break;
                }
                sent += 1;
            }
            // Let the last publishes reach the broker before disconnecting.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = client.disconnect().await;
            poll.abort();
            sent
        }));
    }
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (first, started) = (
        accepted(&stream_stats(&http, base, admin).await?),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (last, elapsed) = (
        accepted(&stream_stats(&http, base, admin).await?),
        started.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    let mut published = 0;
    for task in tasks {
        published += task.await?;
    }
    // The bridge drains what the broker still holds for it: until nothing more arrives for two
    // seconds. A broker whose queue for the bridge is full drops what is published beyond it
    // (Mosquitto's max_queued_messages, 1,000 by default), so publishers faster than the bridge
    // publish more than it can be given: that is the broker's bound, and it is reported.
    let mut stats = stream_stats(&http, base, admin).await?;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = stream_stats(&http, base, admin).await?;
        if accepted(&now) == accepted(&stats) {
            break;
        }
        stats = now;
    }
    Ok(Figures {
        messages_per_second: (last - first) as f64 / elapsed,
        ack_p50_ms: stats["ack_p50_ms"].as_f64().unwrap_or(f64::NAN),
        ack_p99_ms: stats["ack_p99_ms"].as_f64().unwrap_or(f64::NAN),
        accepted: accepted(&stats),
        published,
    })
}
