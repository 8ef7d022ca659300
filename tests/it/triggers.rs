//! Triggers on SQLite and Postgres, with three servers' passes racing at every moment: a landing
//! trigger counts each new object once, waits its window out, and starts one execution per
//! window with the window's keys in its input (objects from before it existed never count); a
//! drift trigger starts one execution per drift report at once, at most one per window, and only
//! for its subject. A firing's execution is named after its window, so a repeated start is one
//! execution. The same landing trigger over a lake on the S3-compatible server, whose
//! last-modified times are whole seconds.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ops::workflows::Workflows;
use ops::workflows::triggers::{On, TriggerRequest};
use scheduler::orchestrator::queue::Queue;
use scheduler::orchestrator::store;
use serde_json::{Value, json};
use tests::{Backend, TestDb};

struct Setup {
    workflows: Workflows,
    lake: jobs::lake::Lake,
    _dir: tempfile::TempDir,
}

async fn setup(db: &TestDb) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let lake_url = format!("file://{}/lake", dir.path().display());
    let engine = db.engine_with(scheduler::config::Config {
        lake: lake_url.clone(),
        ..scheduler::config::Config::default()
    });
    store::put_workflow(
        &engine.pool,
        "retrain",
        &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
    )
    .await
    .unwrap();
    let queue = Queue::open(&db.url).await.unwrap();
    Setup {
        workflows: Workflows::new(engine, Arc::new(queue)),
        lake: jobs::lake::Lake::open(&lake_url, &Default::default()).unwrap(),
        _dir: dir,
    }
}

/// Three servers' passes at `now`; returns the executions they started together.
async fn three_passes(workflows: &Workflows, now: DateTime<Utc>) -> usize {
    let passes = (0..3).map(|_| {
        let workflows = workflows.clone();
        tokio::spawn(async move { workflows.fire_triggers(now).await })
    });
    futures::future::join_all(passes)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .sum()
}

async fn inputs(workflows: &Workflows) -> Vec<Value> {
    let mut executions = store::executions(
        &workflows.engine().pool,
        &store::ExecutionFilter {
            workflow: Some("retrain"),
            ..Default::default()
        },
        100,
    )
    .await
    .unwrap();
    executions.sort_by_key(|e| e.started_at);
    executions.into_iter().map(|e| e.input).collect()
}

fn landing(name: &str, prefix: &str, window: u64) -> TriggerRequest {
    TriggerRequest {
        name: name.into(),
        workflow: "retrain".into(),
        on: On::Landing,
        prefix: Some(prefix.into()),
        subject: None,
        window_seconds: Some(window),
        input: Some(json!({"table": "telemetry"})),
    }
}

async fn landing_windows_fire_once_across_servers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let Setup {
        workflows, lake, ..
    } = setup(&db).await;
    tests::put(&lake, "landing/telemetry/2024/05/01/00/old.gz", "{}").await;
    // Last-modified times are kept to the second by S3: the trigger starts in the next one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    workflows
        .create_trigger(&landing("landed", "landing/telemetry", 60))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for key in ["b", "a", "c"] {
        tests::put(
            &lake,
            &format!("landing/telemetry/2024/05/02/00/{key}.gz"),
            "{}",
        )
        .await;
    }
    tests::put(&lake, "landing/elsewhere/x.gz", "{}").await;

    let t0 = Utc::now();
    assert_eq!(three_passes(&workflows, t0).await, 0, "the window is open");
    assert_eq!(workflows.trigger("landed").await.unwrap().pending, 3);
    assert_eq!(
        three_passes(&workflows, t0 + Duration::seconds(30)).await,
        0
    );
    assert_eq!(
        three_passes(&workflows, t0 + Duration::seconds(61)).await,
        1,
        "one execution among the servers when the window closes"
    );
    let first = &inputs(&workflows).await[0];
    assert_eq!(first["table"], "telemetry", "the trigger's input is kept");
    let trigger = &first["trigger"];
    assert_eq!(trigger["name"], "landed");
    assert_eq!(trigger["on"], "landing");
    assert_eq!(trigger["prefix"], "landing/telemetry/");
    assert_eq!(trigger["objects"], 3);
    assert_eq!(trigger["bytes"], 6);
    assert_eq!(trigger["truncated"], false);
    assert_eq!(
        trigger["keys"],
        json!([
            "landing/telemetry/2024/05/02/00/a.gz",
            "landing/telemetry/2024/05/02/00/b.gz",
            "landing/telemetry/2024/05/02/00/c.gz"
        ]),
        "the window's new keys, not the one from before the trigger nor another prefix's"
    );

    // Nothing new: later passes (the rescan included) start nothing.
    assert_eq!(
        three_passes(&workflows, t0 + Duration::seconds(200)).await,
        0
    );
    tests::put(&lake, "landing/telemetry/2024/05/02/01/d.gz", "{}").await;
    tests::put(&lake, "landing/telemetry/2024/05/02/01/e.gz", "{}").await;
    let t1 = t0 + Duration::seconds(201);
    assert_eq!(three_passes(&workflows, t1).await, 0);
    assert_eq!(
        three_passes(&workflows, t1 + Duration::seconds(60)).await,
        1
    );
    let all = inputs(&workflows).await;
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[1]["trigger"]["keys"],
        json!([
            "landing/telemetry/2024/05/02/01/d.gz",
            "landing/telemetry/2024/05/02/01/e.gz"
        ])
    );
    let fires = workflows.trigger_fires("landed", 10).await.unwrap();
    assert_eq!(fires.len(), 2);
    assert!(fires.iter().all(|f| f.outcome == "started"));
    let executions = store::executions(
        &workflows.engine().pool,
        &store::ExecutionFilter {
            workflow: Some("retrain"),
            ..Default::default()
        },
        10,
    )
    .await
    .unwrap();
    for fire in &fires {
        let execution = executions
            .iter()
            .find(|e| Some(&e.id) == fire.execution_id.as_ref())
            .expect("the firing's execution");
        assert_eq!(execution.name, fire.fire);
        assert!(execution.name.starts_with("landed@"), "{}", execution.name);
    }

    // A paused trigger counts nothing, and what landed meanwhile does not count on resume.
    workflows.set_trigger_paused("landed", true).await.unwrap();
    tests::put(&lake, "landing/telemetry/2024/05/02/02/f.gz", "{}").await;
    let t2 = t1 + Duration::seconds(500);
    assert_eq!(three_passes(&workflows, t2).await, 0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let resumed = workflows.set_trigger_paused("landed", false).await.unwrap();
    assert!(!resumed.paused);
    assert_eq!(
        three_passes(&workflows, t2 + Duration::seconds(120)).await,
        0
    );
    assert_eq!(workflows.trigger("landed").await.unwrap().pending, 0);

    // Bad requests name their field; a second trigger of one name is a conflict.
    let bad = |change: fn(&mut TriggerRequest)| {
        let mut request = landing("other", "landing/telemetry", 60);
        change(&mut request);
        request
    };
    for (request, field) in [
        (bad(|r| r.prefix = None), "prefix"),
        (bad(|r| r.input = Some(json!([1]))), "input"),
        (
            bad(|r| r.window_seconds = Some(8 * 86_400)),
            "window_seconds",
        ),
        (bad(|r| r.name = "has space".into()), "name"),
        (bad(|r| r.subject = Some("x".into())), "subject"),
    ] {
        match workflows.create_trigger(&request).await {
            Err(ops::Error::InvalidInput { field: named, .. }) => assert_eq!(named, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(matches!(
        workflows
            .create_trigger(&landing("landed", "landing", 1))
            .await,
        Err(ops::Error::Conflict(_))
    ));
    let mut unknown = landing("nowhere", "landing", 1);
    unknown.workflow = "missing".into();
    assert!(matches!(
        workflows.create_trigger(&unknown).await,
        Err(ops::Error::NotFound { .. })
    ));
    workflows.delete_trigger("landed").await.unwrap();
    assert!(workflows.triggers().await.unwrap().is_empty());
}

async fn report(db: &TestDb, id: &str, subject: &str, detected: bool) {
    sqlx::query(
        "INSERT INTO drift_reports (id, subject, detected, reasons, report, created_at) VALUES ($1, $2, $3, $4, '{}', $5)",
    )
    .bind(id)
    .bind(subject)
    .bind(i64::from(detected))
    .bind(json!(["pm25 shifted"]).to_string())
    .bind(Utc::now().timestamp_millis())
    .execute(db.catalog.pool())
    .await
    .unwrap();
}

async fn drift_starts_one_retraining_per_window(backend: Backend) {
    let db = TestDb::new(backend).await;
    let Setup { workflows, .. } = setup(&db).await;
    report(&db, "before", "air-quality", true).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    workflows
        .create_trigger(&TriggerRequest {
            name: "drifted".into(),
            workflow: "retrain".into(),
            on: On::Drift,
            prefix: None,
            subject: Some("air-quality".into()),
            window_seconds: None,
            input: None,
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    report(&db, "quiet", "air-quality", false).await;
    report(&db, "elsewhere", "traffic", true).await;
    let t0 = Utc::now();
    assert_eq!(
        three_passes(&workflows, t0).await,
        0,
        "no drift of its subject"
    );

    report(&db, "smoke", "air-quality", true).await;
    assert_eq!(
        three_passes(&workflows, t0 + Duration::seconds(1)).await,
        1,
        "drift starts a retraining at once, once"
    );
    let first = &inputs(&workflows).await[0];
    assert_eq!(first["trigger"]["on"], "drift");
    assert_eq!(first["trigger"]["subject"], "air-quality");
    assert_eq!(first["trigger"]["reports"], json!(["smoke"]));

    // The retraining's own report finds drift again: no second run within the window (an hour
    // by default), one after it.
    report(&db, "again", "air-quality", true).await;
    assert_eq!(
        three_passes(&workflows, t0 + Duration::seconds(60)).await,
        0
    );
    assert_eq!(
        three_passes(&workflows, t0 + Duration::seconds(3602)).await,
        1
    );
    let all = inputs(&workflows).await;
    assert_eq!(all[1]["trigger"]["reports"], json!(["again"]));
    let list = workflows.triggers().await.unwrap();
    assert_eq!(list[0].definition.window_seconds, 3600);
    assert_eq!(list[0].definition.on, On::Drift);
}

tests::on_both_backends!(
    landing_windows_fire_once_across_servers,
    drift_starts_one_retraining_per_window,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landing_trigger_watches_an_s3_lake() {
    let endpoint = std::env::var("SLUICE_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_S3_ENDPOINT is not set: the S3 lake tests need the S3-compatible server scripts/test.sh starts")
    });
    let bucket = std::env::var("SLUICE_TEST_S3_BUCKET").unwrap_or_else(|_| "sluice-test".into());
    let db = TestDb::new(Backend::Sqlite).await;
    let url = format!("s3://{bucket}/triggers/{}", uuid::Uuid::new_v4().simple());
    let engine = db.engine_with(scheduler::config::Config {
        lake: url.clone(),
        s3: scheduler::config::S3Config {
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            allow_http: true,
        },
        ..scheduler::config::Config::default()
    });
    let lake = engine.ops.lake().unwrap();
    store::put_workflow(
        &engine.pool,
        "retrain",
        &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
    )
    .await
    .unwrap();
    let workflows = Workflows::new(engine, Arc::new(Queue::open(&db.url).await.unwrap()));
    workflows
        .create_trigger(&landing("s3-landed", "landing/telemetry", 10))
        .await
        .unwrap();
    // Put in the same second as the trigger's start: S3 says the second, and it still counts.
    for key in ["x", "y"] {
        tests::put(
            &lake,
            &format!("landing/telemetry/2024/05/02/00/{key}.gz"),
            "{}",
        )
        .await;
    }
    let t0 = Utc::now();
    assert_eq!(three_passes(&workflows, t0).await, 0);
    assert_eq!(
        three_passes(&workflows, t0 + Duration::seconds(11)).await,
        1
    );
    assert_eq!(
        inputs(&workflows).await[0]["trigger"]["keys"],
        json!([
            "landing/telemetry/2024/05/02/00/x.gz",
            "landing/telemetry/2024/05/02/00/y.gz"
        ])
    );
    assert_eq!(
        three_passes(&workflows, t0 + Duration::seconds(100)).await,
        0,
        "listed again, the same objects do not count twice"
    );
}
