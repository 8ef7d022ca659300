//! The MQTT bridge: subscribes to a broker's topic filters and lands each message as a record
//! of the delivery stream its rule names (`ops::ingest::rules`: fields kept, topic segments
//! added). Delivery is at least once: subscriptions are QoS 1 in a persistent session (the
//! broker keeps messages while the bridge is down), and a message is acknowledged to the broker
//! only once its record is fsync'd in the write-ahead log, or, when it cannot become a record,
//! once its processing-failed envelope is in the lake. With `connections` above one the
//! connections share the subscriptions (`$share/<client_id>/<filter>`), so the broker spreads
//! messages over them and more are in flight at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ops::ingest::rules::{Rule, route};
use ops::ingest::{Failed, Ingest, MAX_RECORD_BYTES};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use serde::{Deserialize, Serialize};

/// `[ingest.mqtt]`: the broker, the session and the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port`.
    pub broker: String,
    /// The session's client id (each connection appends `-<n>`); keep it stable, so that the
    /// broker keeps messages for the bridge while it is down.
    #[serde(default = "client_id")]
    pub client_id: String,
    /// Connections sharing the subscriptions.
    #[serde(default = "one")]
    pub connections: usize,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The rules, first match wins; a message no rule matches is acknowledged and dropped
    /// (with a warning).
    pub rules: Vec<Rule>,
}

fn client_id() -> String {
    "sluice-ingest".into()
}
fn one() -> usize {
    1
}

impl MqttConfig {
    /// Checks the rules and the broker's address.
    pub fn check(&self) -> anyhow::Result<(String, u16)> {
        anyhow::ensure!(
            !self.rules.is_empty(),
            "ingest.mqtt.rules: at least one rule is needed"
        );
        for (i, rule) in self.rules.iter().enumerate() {
            rule.check()
                .map_err(|e| anyhow::anyhow!("ingest.mqtt.rules[{i}].{e}"))?;
        }
        anyhow::ensure!(
            (1..=64).contains(&self.connections),
            "ingest.mqtt.connections: {} is outside 1 to 64",
            self.connections
        );
        let url = url::Url::parse(&self.broker)
            .with_context(|| format!("ingest.mqtt.broker: {:?} is not a URL", self.broker))?;
        anyhow::ensure!(
            url.scheme() == "mqtt" || url.scheme() == "tcp",
            "ingest.mqtt.broker: {} brokers are not supported yet; use mqtt://host:port",
            url.scheme()
        );
        let host = url
            .host_str()
            .context("ingest.mqtt.broker: no host")?
            .to_owned();
        Ok((host, url.port().unwrap_or(1883)))
    }
}

/// Runs the bridge until `stop` resolves.
pub async fn run(
    ingest: Ingest,
    config: MqttConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (host, port) = config.check()?;
    let config = Arc::new(config);
    let mut connections = Vec::new();
    for n in 0..config.connections {
        let mut options = MqttOptions::new(format!("{}-{n}", config.client_id), &host, port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MAX_RECORD_BYTES + 64 * 1024, 64 * 1024);
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            options.set_credentials(user, password);
        }
        connections.push(tokio::spawn(connection(
            options,
            ingest.clone(),
            config.clone(),
        )));
    }
    tracing::info!(broker = %config.broker, connections = config.connections, "bridging MQTT");
    stop.await;
    for connection in connections {
        connection.abort();
    }
    Ok(())
}

/// One connection: the event loop polled here, the messages batched and landed by a task.
async fn connection(options: MqttOptions, ingest: Ingest, config: Arc<MqttConfig>) {
    let (client, mut events) = AsyncClient::new(options, 4096);
    let (messages, inbox) = tokio::sync::mpsc::channel(4096);
    tokio::spawn(land(inbox, client.clone(), ingest, config.clone()));
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // Subscribe on every connection: a broker that lost the session forgot them.
                for rule in &config.rules {
                    let filter = if config.connections > 1 {
                        format!("$share/{}/{}", config.client_id, rule.topic)
                    } else {
                        rule.topic.clone()
                    };
                    if let Err(err) = client.subscribe(filter, QoS::AtLeastOnce).await {
                        tracing::warn!(error = %err, "cannot subscribe");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if messages.send(publish).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(broker = %config.broker, error = %err, "MQTT connection lost; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Lands messages in batches (what is waiting, up to 500) and acknowledges them after.
async fn land(
    mut inbox: tokio::sync::mpsc::Receiver<Publish>,
    client: AsyncClient,
    ingest: Ingest,
    config: Arc<MqttConfig>,
) {
    while let Some(first) = inbox.recv().await {
        let mut batch = vec![first];
        while batch.len() < 500 {
            match inbox.try_recv() {
                Ok(publish) => batch.push(publish),
                Err(_) => break,
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut records: HashMap<&str, Vec<bytes::Bytes>> = HashMap::new();
        let mut failed: HashMap<&str, Vec<Failed>> = HashMap::new();
        for publish in &batch {
            let Some(rule) = route(&config.rules, &publish.topic) else {
                tracing::warn!(topic = %publish.topic, "no rule matches the topic; the message is dropped");
                continue;
            };
            let outcome = if publish.payload.len() > MAX_RECORD_BYTES {
                Err((
                    "MQTT.RecordTooLarge",
                    format!(
                        "{} bytes: at most {MAX_RECORD_BYTES}",
                        publish.payload.len()
                    ),
                ))
            } else {
                rule.record(&publish.topic, &publish.payload)
                    .map_err(|reason| ("MQTT.PayloadNotAnObject", reason))
            };
            match outcome {
                Ok(record) => records.entry(&rule.stream).or_default().push(record.into()),
                Err((code, reason)) => failed.entry(&rule.stream).or_default().push(Failed {
                    data: publish.payload.clone(),
                    error_code: code.to_owned(),
                    error_message: format!("topic {}: {reason}", publish.topic),
                    arrival_ms: now,
                }),
            }
        }
        for (stream, records) in records {
            retry(stream, || ingest.put(stream, records.clone(), None)).await;
        }
        for (stream, failed) in failed {
            retry(stream, || ingest.put_failed(stream, &failed)).await;
        }
        for publish in &batch {
            if let Err(err) = client.ack(publish).await {
                tracing::warn!(error = %err, "cannot acknowledge a message; the broker sends it again");
            }
        }
    }
}

/// Retries a landing until it succeeds: the messages stay unacknowledged meanwhile, so the
/// broker holds them (a stream that does not exist yet, a full buffer, a lake that is down).
async fn retry<T, F, Fut>(stream: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ops::Result<T>>,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        match attempt().await {
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(stream, error = %err, retry_in_ms = backoff.as_millis() as u64, "cannot land MQTT messages yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
