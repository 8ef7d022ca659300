//! The MQTT bridge against the real Mosquitto broker on 127.0.0.1:1883, messages published
//! with `mosquitto_pub`: they land as records of the rule's stream with the topic's segments
//! as fields, a payload that is not a JSON object lands as a processing-failed envelope under
//! the error prefix, and after a kill -9 of the bridge (messages published meanwhile wait at
//! the broker, in the bridge's persistent session) every message lands.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Process, free_port, run_sluice};

/// Publishes one message per line, QoS 1 (`mosquitto_pub -l`).
fn publish(topic: &str, lines: &[String]) {
    let mut child = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "1883",
            "-q",
            "1",
            "-t",
            topic,
            "-l",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (Debian's mosquitto-clients) is needed for the MQTT tests");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(
        child.wait().unwrap().success(),
        "mosquitto_pub failed: is Mosquitto running on 127.0.0.1:1883?"
    );
}

fn landed(dir: &Path, prefix: &str) -> Vec<Value> {
    tests::lake_records(dir, prefix)
}

async fn wait_for(dir: &Path, prefix: &str, what: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = landed(dir, prefix);
        if what(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{} records under {prefix}: {:?}",
            records.len(),
            records.last()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start(dir: &Path, port: u16) -> Process {
    tests::spawn_server(dir, port, &["server", "--no-worker"]).await
}

fn readings(range: std::ops::Range<u64>) -> Vec<String> {
    range
        .map(|seq| {
            json!({"ts": "2026-12-05T03:00:00.000Z", "seq": seq, "pm25": 10.5, "battery": 3.7})
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_messages_land_and_survive_a_kill_9_of_the_bridge() {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::fs::write(
        path.join("sluice.toml"),
        format!(
            r#"database = "sqlite://sluice.db"
lake = "file://lake"

[api]
listen = "127.0.0.1:{port}"

[ingest.mqtt]
broker = "mqtt://127.0.0.1:1883"
client_id = "sluice-test-{run}"
connections = 2

[[ingest.mqtt.rules]]
topic = "test-{run}/+/devices/+/telemetry"
stream = "telemetry"
fields = ["ts", "seq", "pm25"]
topic_fields = {{ site = 2, device_id = 4 }}
"#
        ),
    )
    .unwrap();
    let (ok, _, stderr) = run_sluice(
        path,
        &[
            "ingest",
            "stream",
            "create",
            "telemetry",
            "--prefix",
            "landing/telemetry/",
            "--error-output-prefix",
            "landing/errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/",
            "--buffer-seconds",
            "1",
            "--append-newline",
        ],
    );
    assert!(ok, "{stderr}");
    let topic = format!("test-{run}/berlin/devices/aq-0001/telemetry");

    let server = start(path, port).await;
    // The bridge subscribes once connected: publish a probe until one lands.
    let deadline = Instant::now() + Duration::from_secs(30);
    while landed(path, "landing/telemetry").is_empty() {
        assert!(Instant::now() < deadline, "the bridge never subscribed");
        publish(&topic, &readings(1_000_000..1_000_001));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    publish(&topic, &readings(0..500));
    publish(&topic, &["not json".to_owned()]);
    let records = wait_for(path, "landing/telemetry", |r| {
        r.iter()
            .filter(|v| v["seq"].as_u64() < Some(1_000_000))
            .count()
            >= 500
    })
    .await;
    let first = records.iter().find(|v| v["seq"] == 0).unwrap();
    assert_eq!(
        first,
        &json!({"ts": "2026-12-05T03:00:00.000Z", "seq": 0, "pm25": 10.5, "site": "berlin", "device_id": "aq-0001"}),
        "fields kept, topic segments added, the rest dropped"
    );
    let errors = wait_for(path, "landing/errors/processing-failed", |r| !r.is_empty()).await;
    assert_eq!(
        errors[0]["errorCode"], "MQTT.PayloadNotAnObject",
        "{errors:?}"
    );
    assert_eq!(
        errors[0]["rawData"], "bm90IGpzb24=",
        "base64 of the payload"
    );
    assert!(errors[0]["errorMessage"].as_str().unwrap().contains(&topic));

    // kill -9 the bridge; what is published meanwhile waits at the broker.
    server.kill();
    publish(&topic, &readings(500..900));
    let _server = start(path, port).await;
    publish(&topic, &readings(900..1200));
    let records = wait_for(path, "landing/telemetry", |r| {
        let seqs: std::collections::HashSet<u64> = r
            .iter()
            .filter_map(|v| v["seq"].as_u64())
            .filter(|s| *s < 1_000_000)
            .collect();
        seqs.len() >= 1200
    })
    .await;
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for record in &records {
        *seen.entry(record["seq"].as_u64().unwrap()).or_default() += 1;
    }
    assert!(
        (0..1200).all(|s| seen.contains_key(&s)),
        "every message landed"
    );
    // At least once: a message is redelivered only if its acknowledgement was lost in the kill.
    let again = seen
        .iter()
        .filter(|(s, n)| **s < 1_000_000 && **n > 1)
        .count();
    assert!(again <= 500, "{again} messages landed twice");
}
