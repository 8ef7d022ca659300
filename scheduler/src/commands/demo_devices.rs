//! How the demo's devices send the next day: as Firehose would land it (objects written
//! straight into the lake), or to sluice itself, over MQTT through the bridge or through the
//! Firehose API, into a delivery stream whose objects land under the same prefix. Either way
//! crawl and convert see the same table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use jobs::generate::{Arrival, LandingsSpec, arrivals, generate_landings};
use jobs::lake::Lake;
use ops::ingest::Ingest;
use ops::ingest::rules::Rule;
use ops::ingest::streams::{Compression, StreamRequest};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};

use super::Context;
use super::crawl::generate_report;
use super::demo_show::say;
use crate::cli::DevicesVia;
use crate::ingest::mqtt::MqttConfig;
use crate::serving::Auth;

/// The delivery stream the devices send to (its objects land where the generator's do).
const STREAM: &str = "aq-telemetry";
/// Messages published before waiting for the bridge to take them (under Mosquitto's default
/// queue of 1,000 messages per session, so that none is dropped).
const MQTT_CHUNK: usize = 500;
/// Firehose's batch limit.
const FIREHOSE_BATCH: usize = 500;

/// What landed, for the report.
pub struct Landed {
    /// What landed (`records`: the records that reached the telemetry objects).
    pub json: Value,
    pub text: String,
}

/// Lands the records of `spec` (the next day) the way `via` says.
pub async fn land(
    demo: &Context,
    lake: &Lake,
    spec: &LandingsSpec,
    via: DevicesVia,
    broker: &str,
    auth: Arc<Auth>,
) -> anyhow::Result<Landed> {
    if via == DevicesVia::Files {
        let report = generate_report(&generate_landings(lake, spec).await?, lake.url(), spec);
        return Ok(Landed {
            json: json!({"via": "files", "generated": report.json,
                "records": report.json["records"], "malformed_records": report.json["malformed_records"]}),
            text: report.text,
        });
    }
    let sent = arrivals(spec)?;
    let malformed = sent.iter().filter(|a| a.malformed).count();
    let ingest = Ingest::open(demo.ops.clone(), demo.config.ingest_options())
        .await
        .context("cannot open the demo's ingest write-ahead log")?;
    if demo.ops.delivery_stream(STREAM).await.is_err() {
        demo.ops
            .create_delivery_stream(&StreamRequest {
                name: STREAM.into(),
                prefix: format!("{}/", spec.prefix),
                error_output_prefix: Some(format!("{}/", spec.error_prefix)),
                buffer_mib: 5,
                buffer_seconds: 60,
                compression: Compression::Gzip,
                append_newline: true,
            })
            .await?;
    }
    let started = Instant::now();
    let (records, how) = match via {
        DevicesVia::Mqtt => (
            (sent.len() - malformed) as u64,
            mqtt(&ingest, &sent, broker).await?,
        ),
        DevicesVia::Firehose => (
            sent.len() as u64,
            firehose(demo, &ingest, &sent, auth).await?,
        ),
        DevicesVia::Files => unreachable!("handled above"),
    };
    ingest.flush().await?;
    let seconds = started.elapsed().as_secs_f64();
    let stats = ingest.stats().await;
    let objects = stats
        .iter()
        .find(|s| s.stream == STREAM)
        .map_or(0, |s| s.objects_delivered);
    let text = format!(
        "{} devices sent {} records {how} in {seconds:.1} s ({malformed} malformed{}); the delivery stream {STREAM} landed {objects} object{} under {}/",
        spec.devices,
        sent.len(),
        if via == DevicesVia::Mqtt {
            ", which the bridge put under the error prefix: they are not JSON"
        } else {
            ", landed as sent"
        },
        if objects == 1 { "" } else { "s" },
        spec.prefix,
    );
    Ok(Landed {
        json: json!({"via": if via == DevicesVia::Mqtt { "mqtt" } else { "firehose" },
            "sent": sent.len(), "malformed_records": malformed, "records": records,
            "objects": objects, "seconds": seconds}),
        text,
    })
}

/// Publishes every arrival to `aq/<device>/telemetry` (QoS 1) through the MQTT broker, with the
/// bridge running in this process; returns how they went.
async fn mqtt(ingest: &Ingest, sent: &[Arrival], broker: &str) -> anyhow::Result<String> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let topic = |device: &str| format!("sluice-demo-{run}/{device}/telemetry");
    let config = MqttConfig {
        broker: format!("mqtt://{broker}"),
        client_id: format!("sluice-demo-bridge-{run}"),
        connections: 1,
        username: None,
        password: None,
        rules: vec![Rule {
            topic: format!("sluice-demo-{run}/+/telemetry"),
            stream: STREAM.into(),
            fields: Vec::new(),
            topic_fields: Default::default(),
        }],
    };
    let (host, port) = config.check()?;
    subscribe_ahead(&config, &host, port).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bridge = tokio::spawn(crate::ingest::mqtt::run(ingest.clone(), config, async {
        let _ = stopped.await;
    }));
    let mut options = MqttOptions::new(format!("sluice-demo-devices-{run}"), host, port);
    options
        .set_inflight(100)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 1024);
    let poll = tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            drop(event);
        }
    });
    let accepted = || async move {
        ingest
            .stats()
            .await
            .iter()
            .find(|s| s.stream == STREAM)
            .map_or(0, |s| s.records_accepted)
    };
    let before = accepted().await;
    let mut good = 0;
    for chunk in sent.chunks(MQTT_CHUNK) {
        for arrival in chunk {
            client
                .publish(
                    topic(&arrival.device),
                    QoS::AtLeastOnce,
                    false,
                    arrival.line.clone(),
                )
                .await?;
            good += u64::from(!arrival.malformed);
        }
        let waited = Instant::now();
        while accepted().await < before + good {
            anyhow::ensure!(
                waited.elapsed() < Duration::from_secs(60),
                "the MQTT bridge stopped taking messages from {broker}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let _ = client.disconnect().await;
    poll.abort();
    let _ = stop.send(());
    bridge.await??;
    Ok(format!("over MQTT ({broker}) through the bridge"))
}

/// Makes the bridge's persistent session and its subscription before the devices publish (as
/// a deployment's bridge has long had them): the broker keeps what arrives for the bridge until
/// it connects, so that the first messages are not published to nobody.
async fn subscribe_ahead(config: &MqttConfig, host: &str, port: u16) -> anyhow::Result<()> {
    let mut options = MqttOptions::new(format!("{}-0", config.client_id), host, port);
    options.set_clean_session(false);
    let (client, mut events) = AsyncClient::new(options, 16);
    for rule in &config.rules {
        client
            .subscribe(rule.topic.clone(), QoS::AtLeastOnce)
            .await?;
    }
    let subscribed = async {
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(err) => return Err(err),
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), subscribed).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => anyhow::bail!(
            "cannot reach the MQTT broker at {}: {err} (is one running? --mqtt-broker)",
            config.broker
        ),
        Err(_) => anyhow::bail!(
            "the MQTT broker at {} did not answer in 10 s",
            config.broker
        ),
    }
    client.disconnect().await?;
    // Drive the connection until the disconnect is sent.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while events.poll().await.is_ok() {}
    })
    .await;
    Ok(())
}

/// Sends every arrival through the Firehose API (`PutRecordBatch`, 500 records a call, an
/// ingest token) on a loopback listener of this process; returns how they went.
async fn firehose(
    demo: &Context,
    ingest: &Ingest,
    sent: &[Arrival],
    auth: Arc<Auth>,
) -> anyhow::Result<String> {
    let pool = demo.ops.catalog().await?.pool().clone();
    let token =
        ops::serving::auth::create(&pool, ops::serving::auth::Scope::Ingest, "demo-devices")
            .await?
            .token;
    let state = Arc::new(crate::ingest::IngestState {
        ingest: ingest.clone(),
        ops: demo.ops.clone(),
        auth,
    });
    let listener = crate::process::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let server = tokio::spawn(axum::serve(listener, crate::ingest::router(state)).into_future());
    jobs::install_tls();
    let http = reqwest::Client::new();
    let mut calls = 0;
    for batch in sent.chunks(FIREHOSE_BATCH) {
        let mut pending: Vec<&Arrival> = batch.iter().collect();
        for attempt in 0.. {
            anyhow::ensure!(attempt < 10, "the Firehose API kept refusing records");
            let records: Vec<Value> = pending
                .iter()
                .map(|a| json!({"Data": base64::engine::general_purpose::STANDARD.encode(&a.line)}))
                .collect();
            let answer: Value = http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amz-target", "Firehose_20150804.PutRecordBatch")
                .body(json!({"DeliveryStreamName": STREAM, "Records": records}).to_string())
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            calls += 1;
            // Firehose's contract: retry the records whose entry has an ErrorCode.
            let responses = answer["RequestResponses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            pending = pending
                .into_iter()
                .zip(responses)
                .filter(|(_, r)| r.get("ErrorCode").is_some())
                .map(|(a, _)| a)
                .collect();
            if pending.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    server.abort();
    say(&format!(
        "    (PutRecordBatch to {url} with an ingest token, {calls} calls)"
    ));
    Ok(format!(
        "through the Firehose API ({calls} PutRecordBatch calls)"
    ))
}
