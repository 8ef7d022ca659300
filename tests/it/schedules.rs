//! Cron schedules, on SQLite and Postgres: three scheduler replicas fire each tick exactly once,
//! the overlap policies skip or buffer a tick while the previous execution runs, and missed ticks
//! follow the catch-up policy; backfill starts past ticks once.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use ops::Ops;
use scheduler::config::Config;
use scheduler::orchestrator::engine::Engine;
use scheduler::orchestrator::queue::Queue;
use scheduler::orchestrator::schedules::{self, Schedule};
use scheduler::orchestrator::store;
use serde_json::json;
use tests::{Backend, TestDb};

async fn setup(db: &TestDb, workflow: serde_json::Value) -> (Engine, Queue) {
    let config = Config {
        database: db.url.clone(),
        lake: "memory://".into(),
        ..Config::default()
    };
    let engine = scheduler::tasks::Resources::engine(
        Ops::with_catalog(config.ops_settings(), db.catalog.clone()),
        db.catalog.pool().clone(),
    );
    store::put_workflow(&engine.pool, "job", &workflow)
        .await
        .unwrap();
    (engine, Queue::open(&db.url).await.unwrap())
}

fn every_second(name: &str, catchup: &str, window_seconds: i64, overlap: &str) -> Schedule {
    Schedule {
        name: name.into(),
        cron: "* * * * * *".into(),
        timezone: "UTC".into(),
        workflow: "job".into(),
        input: json!({"from": "schedule"}),
        catchup: catchup.into(),
        window_seconds,
        overlap: overlap.into(),
        paused: false,
        last_tick: 0,
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn outcomes(engine: &Engine, name: &str) -> Vec<String> {
    let mut ticks = schedules::ticks(&engine.pool, name, 10_000).await.unwrap();
    ticks.reverse();
    ticks.into_iter().map(|(_, outcome, _)| outcome).collect()
}

async fn three_replicas_fire_each_tick_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (engine, queue) = setup(
        &db,
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
    )
    .await;
    schedules::create(
        &engine.pool,
        &every_second("every", "skip", 0, "allow"),
        t0(),
    )
    .await
    .unwrap();
    for second in 1..=10 {
        let now = t0() + ChronoDuration::seconds(second);
        let replicas = (0..3).map(|_| {
            let (engine, queue) = (engine.clone(), queue.clone());
            tokio::spawn(async move { schedules::fire_due(&engine, &queue, now).await })
        });
        let started: usize = futures::future::join_all(replicas)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .sum();
        assert_eq!(started, 1, "second {second}: one start among the replicas");
    }
    assert_eq!(outcomes(&engine, "every").await, vec!["started"; 10]);
    let executions = store::executions(
        &engine.pool,
        &store::ExecutionFilter {
            workflow: Some("job"),
            ..Default::default()
        },
        100,
    )
    .await
    .unwrap();
    assert_eq!(executions.len(), 10);
    assert!(
        executions
            .iter()
            .all(|e| e.name.starts_with("every@2024-05-01T02-00-")
                && e.input == json!({"from": "schedule"}))
    );
}

async fn overlap_policies_skip_or_buffer_while_one_runs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (engine, queue) = setup(
        &db,
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
    )
    .await;
    schedules::create(
        &engine.pool,
        &every_second("skipper", "skip", 0, "skip"),
        t0(),
    )
    .await
    .unwrap();
    schedules::create(
        &engine.pool,
        &every_second("buffer", "skip", 0, "buffer-one"),
        t0(),
    )
    .await
    .unwrap();
    for second in 1..=3 {
        schedules::fire_due(&engine, &queue, t0() + ChronoDuration::seconds(second))
            .await
            .unwrap();
    }
    assert_eq!(
        outcomes(&engine, "skipper").await,
        ["started", "skipped-overlap", "skipped-overlap"]
    );
    assert_eq!(
        outcomes(&engine, "buffer").await,
        ["started", "buffered", "skipped-overlap"]
    );
    // Once the running execution ends, the buffered tick starts.
    let ticks = schedules::ticks(&engine.pool, "buffer", 10).await.unwrap();
    let running = ticks
        .iter()
        .find_map(|(_, outcome, id)| (outcome == "started").then(|| id.clone().unwrap()))
        .unwrap();
    engine.stop(&running).await.unwrap();
    schedules::fire_due(&engine, &queue, t0() + ChronoDuration::seconds(4))
        .await
        .unwrap();
    assert_eq!(
        outcomes(&engine, "buffer").await,
        ["started", "started", "skipped-overlap", "buffered"]
    );
}

async fn missed_ticks_follow_the_catch_up_policy_and_backfill_fills_gaps(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (engine, queue) = setup(
        &db,
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
    )
    .await;
    schedules::create(
        &engine.pool,
        &every_second("all", "all", 100, "allow"),
        t0(),
    )
    .await
    .unwrap();
    schedules::create(
        &engine.pool,
        &every_second("latest", "latest", 100, "allow"),
        t0(),
    )
    .await
    .unwrap();
    // The scheduler was down for 3 minutes: of the ticks at +1 s .. +180 s, those at +120 s and
    // later (61) are within the 60 s grace, and those at +80 s .. +119 s (40) within the window.
    let now = t0() + ChronoDuration::seconds(180);
    schedules::fire_due(&engine, &queue, now).await.unwrap();
    let all = outcomes(&engine, "all").await;
    assert_eq!(
        all.iter().filter(|o| *o == "started").count(),
        101,
        "missed ticks within the 100 s window, and the on-time ones"
    );
    assert_eq!(all.iter().filter(|o| *o == "skipped-missed").count(), 79);
    let latest = outcomes(&engine, "latest").await;
    assert_eq!(
        latest.iter().filter(|o| *o == "started").count(),
        62,
        "the latest missed tick and the 61 on time"
    );
    // Backfill starts the skipped ticks of a range once, however often it is asked.
    let from = t0() + ChronoDuration::seconds(1);
    let to = t0() + ChronoDuration::seconds(10);
    assert_eq!(
        schedules::backfill(&engine, &queue, "latest", from, to)
            .await
            .unwrap()
            .len(),
        0,
        "those ticks were claimed as missed"
    );
    schedules::create(&engine.pool, &every_second("late", "skip", 0, "allow"), now)
        .await
        .unwrap();
    assert_eq!(
        schedules::backfill(&engine, &queue, "late", from, to)
            .await
            .unwrap()
            .len(),
        10
    );
    assert_eq!(
        schedules::backfill(&engine, &queue, "late", from, to)
            .await
            .unwrap()
            .len(),
        0
    );
    schedules::set_paused(&engine.pool, "late", true)
        .await
        .unwrap();
    let started = schedules::fire_due(&engine, &queue, now + ChronoDuration::seconds(5))
        .await
        .unwrap();
    assert_eq!(started, 10, "all and latest fire their 5 new ticks each");
    assert_eq!(
        outcomes(&engine, "late").await.len(),
        10,
        "the paused schedule fires nothing"
    );
    assert!(schedules::delete(&engine.pool, "nope").await.is_err());
}

tests::on_both_backends!(
    three_replicas_fire_each_tick_once,
    overlap_policies_skip_or_buffer_while_one_runs,
    missed_ticks_follow_the_catch_up_policy_and_backfill_fills_gaps,
);
