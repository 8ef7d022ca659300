//! Retention (`[retention]`, each server's pass, `sluice expire`), on SQLite and Postgres: an
//! execution whose root ended before the cutoff goes with its history, its Map's children and
//! runs, and the queue's records of its steps; a running execution stays however old, and so
//! does a recent one; forecast runs past their time go with their files, except the newest of
//! each group and source. A second pass finds nothing.

use std::sync::Arc;
use std::time::Duration;

use jobs::forecasts::{ForecastRows, Provenance, Source};
use jobs::lake::{Lake, LakeKey};
use ops::workflows::{StartRequest, Workflows};
use scheduler::config::{Config, RetentionConfig};
use scheduler::orchestrator::queue::Queue;
use scheduler::orchestrator::store::{self, ExecutionStatus};
use serde_json::json;
use tests::{Backend, TestDb};

const HOUR_MS: i64 = 3_600_000;

async fn count(pool: &sqlx::AnyPool, sql: &str, id: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Everything recorded for an execution and its children: (executions, events, map runs, map items).
async fn recorded(pool: &sqlx::AnyPool, root: &str) -> (i64, i64, i64, i64) {
    (
        count(pool, "SELECT count(*) FROM executions WHERE id = $1 OR parent_id = $1", root).await,
        count(
            pool,
            "SELECT count(*) FROM execution_events WHERE execution_id IN \
             (SELECT id FROM executions WHERE id = $1 OR parent_id = $1)",
            root,
        )
        .await,
        count(pool, "SELECT count(*) FROM map_runs WHERE execution_id = $1", root).await,
        count(
            pool,
            "SELECT count(*) FROM map_items WHERE run_id IN (SELECT id FROM map_runs WHERE execution_id = $1)",
            root,
        )
        .await,
    )
}

/// The queue's records, whatever their status.
async fn queued(pool: &sqlx::AnyPool, backend: Backend) -> i64 {
    let sql = match backend {
        Backend::Sqlite => "SELECT count(*) FROM Jobs",
        Backend::Postgres => "SELECT count(*) FROM apalis.jobs",
    };
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn rows(item: &str) -> ForecastRows {
    ForecastRows {
        item_id: vec![item.to_owned(); 2],
        timestamp_ms: vec![0, HOUR_MS],
        step: vec![1, 2],
        mean: vec![1.0, 2.0],
        quantiles: vec![(0.5, vec![1.0, 2.0])],
        history: jobs::forecasts::HistoryRows {
            item_id: vec![item.to_owned()],
            timestamp_ms: vec![-HOUR_MS],
            target: vec![0.5],
        },
    }
}

async fn exists(lake: &Lake, key: &str) -> bool {
    lake.get(&LakeKey::parse(key).unwrap()).await.is_ok()
}

async fn expired_with_their_history_and_files(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database: db.url.clone(),
        lake: format!("file://{}/lake", dir.path().display()),
        retention: RetentionConfig {
            executions: "1h".into(),
            forecasts: "1d".into(),
        },
        ..Config::default()
    };
    std::fs::create_dir_all(dir.path().join("lake")).unwrap();
    let engine = db.engine_with(config.clone());
    let ops = ops::Ops::with_catalog(config.ops_settings(), db.catalog.clone());
    let queue = Queue::open(&db.url).await.unwrap();
    let workflows = Workflows::new(engine.clone(), Arc::new(queue.clone()));
    let pool = engine.pool.clone();

    let mapped = json!({"StartAt": "Each", "States": {
        "Each": {"Type": "Map", "ItemsPath": "$.items", "ResultPath": "$.out", "End": true,
            "ItemProcessor": {"StartAt": "Echo", "States": {
                "Echo": {"Type": "Task", "Resource": "sluice:echo", "End": true}}}}}});
    let waits = json!({"StartAt": "Later", "States": {"Later": {"Type": "Wait", "Seconds": 86400, "End": true}}});
    workflows.put_workflow("mapped", &mapped).await.unwrap();
    workflows.put_workflow("waits", &waits).await.unwrap();
    let start = |workflow: &'static str, name: &'static str, input: serde_json::Value| {
        let workflows = workflows.clone();
        async move {
            workflows
                .start(
                    workflow,
                    StartRequest {
                        input: Some(input),
                        name: Some(name.to_owned()),
                    },
                )
                .await
                .unwrap()
                .execution
                .id
        }
    };
    let old = start("mapped", "old", json!({"items": [1, 2, 3]})).await;
    let recent = start("mapped", "recent", json!({"items": [4, 5]})).await;
    let running = start("waits", "running", json!({})).await;

    // A real worker runs them (the queue records each delivery), then stops.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(queue.clone().work(
        engine.clone(),
        "retention-worker".into(),
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for id in [&old, &recent] {
        while store::execution(&pool, id).await.unwrap().status == ExecutionStatus::Running {
            assert!(std::time::Instant::now() < deadline, "{id} never ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    let old_recorded = recorded(&pool, &old).await;
    assert_eq!(
        (old_recorded.0, old_recorded.2, old_recorded.3),
        (4, 1, 3),
        "a root, 3 children, a run of 3 items"
    );
    let recent_recorded = recorded(&pool, &recent).await;

    // `old` (and its children) ended two hours ago; `running` started two hours ago and still
    // waits; every delivery the worker ran ended two hours ago too.
    sqlx::query(
        "UPDATE executions SET stopped_at = stopped_at - $1 WHERE id = $2 OR parent_id = $2",
    )
    .bind(2 * HOUR_MS)
    .bind(&old)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE executions SET started_at = started_at - $1 WHERE id = $2")
        .bind(2 * HOUR_MS)
        .bind(&running)
        .execute(&pool)
        .await
        .unwrap();
    let done_jobs: i64 = match backend {
        Backend::Sqlite => {
            sqlx::query("UPDATE Jobs SET done_at = done_at - 7200 WHERE status = 'Done'")
                .execute(&pool)
                .await
                .unwrap()
                .rows_affected() as i64
        }
        Backend::Postgres => sqlx::query(
            "UPDATE apalis.jobs SET done_at = done_at - interval '2 hours' WHERE status = 'Done'",
        )
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected() as i64,
    };
    assert!(
        done_jobs >= 2,
        "the worker's deliveries are recorded: {done_jobs}"
    );
    let jobs_before = queued(&pool, backend).await;

    // Forecast runs of one group: three batch runs (three days, two days and an hour old) and
    // one served run three days old, the newest of its source.
    let lake = ops.curated_lake().unwrap();
    let mut batch = Vec::new();
    for (age, item) in [(72, "a"), (48, "b"), (1, "c")] {
        let run = jobs::forecasts::write(
            &pool,
            &lake,
            "g",
            1,
            &rows(item),
            Source::Batch,
            &Provenance::default(),
        )
        .await
        .unwrap();
        sqlx::query("UPDATE batch_forecasts SET created_at = created_at - $1 WHERE id = $2")
            .bind(age * HOUR_MS)
            .bind(&run.id)
            .execute(&pool)
            .await
            .unwrap();
        batch.push(run);
    }
    let served = jobs::forecasts::write(
        &pool,
        &lake,
        "g",
        1,
        &rows("s"),
        Source::Served,
        &Provenance::default(),
    )
    .await
    .unwrap();
    sqlx::query("UPDATE batch_forecasts SET created_at = created_at - $1 WHERE id = $2")
        .bind(72 * HOUR_MS)
        .bind(&served.id)
        .execute(&pool)
        .await
        .unwrap();

    let report = ops.expire(&workflows, chrono::Utc::now()).await.unwrap();
    assert_eq!(report.executions, 4, "{report:?}");
    assert_eq!(report.events, old_recorded.1 as u64, "{report:?}");
    assert_eq!(report.queue_tasks, done_jobs as u64, "{report:?}");
    assert_eq!(
        (report.forecast_runs, report.forecast_files),
        (2, 4),
        "{report:?}"
    );

    assert_eq!(recorded(&pool, &old).await, (0, 0, 0, 0));
    let gone = workflows.describe(&old).await.unwrap_err();
    assert!(gone.to_string().contains(&old), "{gone}");
    assert_eq!(
        recorded(&pool, &recent).await,
        recent_recorded,
        "a recent execution stays whole"
    );
    assert_eq!(
        store::execution(&pool, &running).await.unwrap().status,
        ExecutionStatus::Running,
        "a running execution is never expired"
    );
    assert_eq!(
        queued(&pool, backend).await,
        jobs_before - done_jobs,
        "the waiting execution's delayed step is still queued"
    );
    let kept: Vec<String> = jobs::forecasts::runs(&pool, "g")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(kept.len(), 2);
    assert!(
        kept.contains(&batch[2].id) && kept.contains(&served.id),
        "{kept:?}"
    );
    for run in &batch[..2] {
        assert!(!exists(&lake, &run.key).await, "{} deleted", run.key);
        assert!(!exists(&lake, run.history_key.as_ref().unwrap()).await);
    }
    for run in [&batch[2], &served] {
        assert!(
            exists(&lake, &run.key).await && exists(&lake, run.history_key.as_ref().unwrap()).await
        );
    }

    let again = ops.expire(&workflows, chrono::Utc::now()).await.unwrap();
    assert_eq!(
        again,
        ops::ExpiryReport::default(),
        "nothing left to expire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_with_their_history_and_files_on_sqlite() {
    expired_with_their_history_and_files(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_with_their_history_and_files_on_postgres() {
    expired_with_their_history_and_files(Backend::Postgres).await;
}

#[test]
fn retention_settings_are_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        "[retention]\nexecutions = \"soon\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = tests::run_sluice(dir.path(), &["expire"]);
    assert!(!ok);
    assert!(
        stderr.contains("retention.executions") && stderr.contains("soon"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("sluice.toml"),
        "[retention]\nexecutions = \"forever\"\nforecasts = \"10s\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = tests::run_sluice(dir.path(), &["expire"]);
    assert!(!ok);
    assert!(
        stderr.contains("retention.forecasts") && stderr.contains("at least a minute"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("sluice.toml"),
        "[retention]\nexecutions = \"90d\"\nforecasts = \"forever\"\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = tests::run_sluice(dir.path(), &["expire"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("deleted 0 ended executions"), "{stdout}");
}
