//! Notifications on SQLite and Postgres, against a local HTTP receiver, with two servers'
//! passes racing: a failed and a timed-out execution are each queued once per rule, retried
//! with backoff after a 503 until the receiver takes them, signed so that the receiver can
//! check the body and its time; a refusal (400) fails a delivery at once, and a retry sends it
//! again; the Slack body is Slack's; drift, a conversion's quarantine share past the rule's
//! threshold and a deployment's rollback reach the rules that ask for them, and nothing else does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Duration, Utc};
use ops::notifications::{BodyFormat, DeliveryList, DeliveryView, RuleRequest, signature};
use scheduler::orchestrator::engine::Engine;
use scheduler::orchestrator::store;
use serde_json::{Value, json};
use tests::{Backend, TestDb};

/// A webhook receiver on loopback: what it got, in order; it answers 503 to the first attempt
/// of each delivery when `flaky`, and `refuse` (when set) to everything.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    flaky: bool,
    refuse: Arc<Mutex<Option<u16>>>,
}

impl Receiver {
    async fn start(flaky: bool) -> (Self, String) {
        let receiver = Self {
            flaky,
            ..Self::default()
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let mut got = state.got.lock().unwrap();
                    let delivery = headers["x-sluice-delivery"].clone();
                    let first = !got.iter().any(|(h, _)| h["x-sluice-delivery"] == delivery);
                    got.push((headers, body));
                    if let Some(status) = *state.refuse.lock().unwrap() {
                        return StatusCode::from_u16(status).unwrap();
                    }
                    if state.flaky && first {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn got(&self) -> Vec<(HeaderMap, Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b)| (h.clone(), serde_json::from_str(b).unwrap()))
            .collect()
    }
}

fn rule(name: &str, url: &str, events: &[&str]) -> RuleRequest {
    RuleRequest {
        name: name.into(),
        url: url.into(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        format: BodyFormat::Json,
        subject: None,
        min_quarantine_share: 0.01,
        connection: None,
        secret: None,
        max_attempts: 8,
    }
}

/// Two servers' passes at `now`: (queued, delivered, retrying, failed) together.
async fn two_passes(ops: &ops::Ops, now: DateTime<Utc>) -> (usize, usize, usize, usize) {
    let passes = (0..2).map(|_| {
        let ops = ops.clone();
        tokio::spawn(async move { ops.notify(now).await })
    });
    futures::future::join_all(passes)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .fold((0, 0, 0, 0), |(q, d, r, f), p| {
            (q + p.queued, d + p.delivered, r + p.retrying, f + p.failed)
        })
}

async fn run(engine: &Engine, workflow: &str, definition: Value) {
    store::put_workflow(&engine.pool, workflow, &definition)
        .await
        .unwrap();
    let (_, first) = engine.start(workflow, json!({}), None).await.unwrap();
    tests::run_to_end(engine, first.unwrap()).await;
}

async fn deliveries(ops: &ops::Ops, rule: &str) -> BTreeMap<String, DeliveryView> {
    ops.notification_deliveries(&DeliveryList {
        rule: Some(rule.into()),
        ..DeliveryList::default()
    })
    .await
    .unwrap()
    .into_iter()
    .map(|d| (d.kind.clone(), d))
    .collect()
}

async fn failures_are_delivered_once_with_retries(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = db.engine();
    let ops = engine.ops.clone();
    let (on_call, on_call_url) = Receiver::start(true).await;
    let (slack, slack_url) = Receiver::start(false).await;
    let secret = "0123456789abcdef-signing";
    ops.put_notification_rule(&RuleRequest {
        secret: Some(secret.into()),
        ..rule(
            "on-call",
            &on_call_url,
            &["execution.failed", "execution.timed_out"],
        )
    })
    .await
    .unwrap();
    ops.put_notification_rule(&RuleRequest {
        format: BodyFormat::Slack,
        subject: Some("breaks".into()),
        ..rule("chat", &slack_url, &["execution.failed"])
    })
    .await
    .unwrap();
    *slack.refuse.lock().unwrap() = Some(400);

    run(
        &engine,
        "breaks",
        json!({"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Sluice.Broken", "Cause": "the sensor feed is <gone>"}}}),
    )
    .await;
    run(
        &engine,
        "slow",
        json!({"TimeoutSeconds": 1, "StartAt": "Wait", "States": {
            "Wait": {"Type": "Wait", "Seconds": 2, "Next": "Done"}, "Done": {"Type": "Pass", "End": true}}}),
    )
    .await;
    run(
        &engine,
        "fine",
        json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}),
    )
    .await;

    let t0 = Utc::now();
    assert_eq!(
        two_passes(&ops, t0).await,
        (3, 0, 2, 1),
        "queued once each: on-call's two answered 503, chat's refused"
    );
    assert_eq!(
        two_passes(&ops, t0 + Duration::seconds(5)).await,
        (0, 0, 0, 0),
        "the retries wait 10 s"
    );
    assert_eq!(
        two_passes(&ops, t0 + Duration::seconds(11)).await,
        (0, 2, 0, 0)
    );
    assert_eq!(
        two_passes(&ops, t0 + Duration::seconds(600)).await,
        (0, 0, 0, 0),
        "the rescan queues nothing twice"
    );

    let got = on_call.got();
    assert_eq!(got.len(), 4, "two attempts of each delivery");
    for (headers, body) in &got {
        let timestamp: i64 = headers["x-sluice-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let raw = serde_json::to_string(body).unwrap();
        assert_eq!(
            headers["x-sluice-signature"].to_str().unwrap(),
            signature(secret, timestamp, &raw),
            "the signature covers the body as sent"
        );
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-sluice-event"], body["kind"].as_str().unwrap());
        assert_eq!(body["rule"], "on-call");
    }
    let failed = got
        .iter()
        .find(|(_, b)| b["kind"] == "execution.failed")
        .unwrap();
    assert_eq!(failed.1["subject"], "breaks");
    assert_eq!(failed.1["detail"]["error"], "Sluice.Broken");
    assert_eq!(failed.1["detail"]["state"], "Boom");
    assert!(
        failed.1["summary"]
            .as_str()
            .unwrap()
            .contains("failed in state Boom: Sluice.Broken: the sensor feed is <gone>")
    );
    let timed_out = got
        .iter()
        .find(|(_, b)| b["kind"] == "execution.timed_out")
        .unwrap();
    assert_eq!(timed_out.1["subject"], "slow");
    assert_eq!(timed_out.1["detail"]["error"], "States.Timeout");

    let on_call_deliveries = deliveries(&ops, "on-call").await;
    assert_eq!(on_call_deliveries.len(), 2);
    for delivery in on_call_deliveries.values() {
        assert_eq!(
            (
                delivery.status.as_str(),
                delivery.attempts,
                delivery.last_status
            ),
            ("delivered", 2, Some(204))
        );
        assert!(delivery.delivered_at.is_some() && delivery.last_error.is_none());
    }

    // Chat's delivery was refused at once; sent again once retried.
    let chat = deliveries(&ops, "chat").await["execution.failed"].clone();
    assert_eq!((chat.status.as_str(), chat.attempts), ("failed", 1));
    assert_eq!(chat.last_status, Some(400));
    assert!(
        chat.last_error.as_deref().unwrap().contains("400"),
        "{chat:?}"
    );
    let slack_body = &slack.got()[0].1;
    assert!(
        slack_body["text"]
            .as_str()
            .unwrap()
            .starts_with("sluice execution.failed: execution ")
    );
    assert!(
        slack_body["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("the sensor feed is &lt;gone&gt;")
    );
    *slack.refuse.lock().unwrap() = None;
    let retried = ops.retry_notification(chat.id).await.unwrap();
    assert_eq!(retried.status, "pending");
    assert_eq!(
        two_passes(&ops, t0 + Duration::seconds(700)).await,
        (0, 1, 0, 0)
    );
    let chat = deliveries(&ops, "chat").await["execution.failed"].clone();
    assert_eq!((chat.status.as_str(), chat.attempts), ("delivered", 2));
    assert!(matches!(
        ops.retry_notification(chat.id).await,
        Err(ops::Error::Conflict(_))
    ));

    // The rules as listed never show the secret.
    let listed = serde_json::to_value(ops.notification_rules().await.unwrap()).unwrap();
    assert!(!listed.to_string().contains(secret));
    assert_eq!(listed[1]["name"], "on-call");
    assert_eq!(listed[1]["signed"], true);
    ops.delete_notification_rule("chat").await.unwrap();
    assert!(deliveries(&ops, "chat").await.is_empty());
}

/// A day of two devices' readings, `bad` of them malformed, as one landed object.
fn landing(good: usize, bad: usize) -> Vec<u8> {
    let mut lines = Vec::new();
    for i in 0..good {
        lines.push(
            json!({"device_id": format!("aq-{:04}", i % 2), "ts": format!("2024-05-01T{:02}:00:00Z", i % 24), "pm25": 10.5})
                .to_string(),
        );
    }
    for _ in 0..bad {
        lines.push(r#"{"device_id": "aq-0000", "ts": "2024-05-01T03:00:00Z", "pm25": NaN}"#.into());
    }
    tests::gzip((lines.join("\n") + "\n").as_bytes())
}

async fn drift_quarantine_and_rollbacks_reach_their_rules(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = db.engine_with(scheduler::config::Config {
        lake: format!("file://{}/lake", dir.path().display()),
        ..scheduler::config::Config::default()
    });
    let ops = engine.ops.clone();
    let (receiver, url) = Receiver::start(false).await;
    ops.put_notification_rule(&rule(
        "data",
        &url,
        &[
            "drift.detected",
            "conversion.quarantined",
            "deployment.rolled_back",
        ],
    ))
    .await
    .unwrap();
    ops.put_notification_rule(&RuleRequest {
        min_quarantine_share: 0.5,
        ..rule("loose", &url, &["conversion.quarantined"])
    })
    .await
    .unwrap();
    ops.put_notification_rule(&RuleRequest {
        subject: Some("traffic".into()),
        ..rule("traffic", &url, &["drift.detected"])
    })
    .await
    .unwrap();

    let now = Utc::now().timestamp_millis();
    let pool = db.catalog.pool();
    sqlx::query("INSERT INTO drift_reports (id, subject, detected, reasons, report, created_at) VALUES ('d1', 'air-quality', 1, '[\"pm25 shifted\"]', '{}', $1), ('d0', 'air-quality', 0, '[]', '{}', $1)")
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO model_groups (name, generation, created_at, updated_at) VALUES ('air-quality', 0, $1, $1)")
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO endpoints (name, model_group, variants, generation, created_at, updated_at) VALUES ('aq', 'air-quality', '[]', 0, $1, $1)")
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO deployments (id, endpoint, from_version, to_version, settings, original_variants, status, weight, step_started_at, reason, created_at, updated_at) \
                 VALUES ('dep-1', 'aq', 1, 2, '{}', '[]', 'rolled-back', 0, $1, 'p99 520 ms over 250 ms', $1, $1), \
                        ('dep-2', 'aq', 2, 3, '{}', '[]', 'succeeded', 100, $1, NULL, $1, $1)")
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    let lake = ops.lake().unwrap();
    tests::put(
        &lake,
        "landing/telemetry/2024/05/01/00/aq-1-2024-05-01-00-00-00-a.gz",
        landing(8, 2),
    )
    .await;
    let crawl: ops::CrawlRequest = ops::request::from_json(json!({"prefix": "landing"})).unwrap();
    ops.crawl(&crawl, &ops::Observer::none()).await.unwrap();
    let convert: ops::ConvertRequest =
        ops::request::from_json(json!({"table": "telemetry"})).unwrap();
    let report = ops.convert(&convert, &ops::Observer::none()).await.unwrap();
    assert_eq!(report.records_quarantined, 2, "{report:?}");

    let (queued, delivered, _, failed) = two_passes(&ops, Utc::now()).await;
    assert_eq!((queued, delivered, failed), (3, 3, 0));
    let mut kinds: Vec<(String, String)> = receiver
        .got()
        .into_iter()
        .map(|(_, b)| {
            (
                b["rule"].as_str().unwrap().to_owned(),
                b["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("data", "conversion.quarantined"),
            ("data", "deployment.rolled_back"),
            ("data", "drift.detected"),
        ]
        .map(|(r, k)| (r.to_owned(), k.to_owned())),
        "the loose rule's threshold is not reached and the traffic rule's subject is another"
    );
    let bodies: BTreeMap<String, Value> = receiver
        .got()
        .into_iter()
        .map(|(_, b)| (b["kind"].as_str().unwrap().to_owned(), b))
        .collect();
    let quarantine = &bodies["conversion.quarantined"];
    assert_eq!(quarantine["subject"], "telemetry");
    assert_eq!(quarantine["detail"]["records_read"], 10);
    assert_eq!(quarantine["detail"]["records_quarantined"], 2);
    assert_eq!(quarantine["detail"]["quarantine_share"], 0.2);
    assert_eq!(bodies["drift.detected"]["detail"]["report_id"], "d1");
    assert_eq!(
        bodies["drift.detected"]["detail"]["reasons"],
        json!(["pm25 shifted"])
    );
    let rollback = &bodies["deployment.rolled_back"];
    assert_eq!(rollback["subject"], "aq");
    assert_eq!(rollback["detail"]["deployment"], "dep-1");
    assert!(
        rollback["summary"]
            .as_str()
            .unwrap()
            .contains("rolled back: p99 520 ms over 250 ms")
    );
}

tests::on_both_backends!(
    failures_are_delivered_once_with_retries,
    drift_quarantine_and_rollbacks_reach_their_rules,
);
