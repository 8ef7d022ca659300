//! A Map of 1,000 iterations shared by two `sluice worker` processes on Postgres: each runs a
//! fair share of the iterations, one is killed with SIGKILL in the middle, and every iteration
//! still completes exactly once (one child execution per item, each succeeded once), the Map's
//! output in item order.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Backend, TestDb, run_sluice, spawn, wait_for_execution};

const ITEMS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_a_map_of_1000_iterations_and_finish_it_after_one_is_killed() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::fs::write(
        path.join("sluice.toml"),
        format!("database = \"{}\"\n", db.url),
    )
    .unwrap();
    let effects = path.join("effects");
    std::fs::create_dir(&effects).unwrap();
    // Each iteration sleeps a moment and appends a line to a file of its own as it ends.
    let flow = json!({"StartAt": "Each", "States": {"Each": {"Type": "Map", "End": true,
        "ItemSelector": {"seconds": 0.1,
            "effect.$": "States.Format('{}/{}', $$.Execution.Input.effects, $$.Map.Item.Value)"},
        "ItemsPath": "$.items",
        "ItemProcessor": {"StartAt": "Work", "States": {
            "Work": {"Type": "Task", "Resource": "sluice:sleep", "End": true}}}}}});
    std::fs::write(path.join("map.json"), flow.to_string()).unwrap();
    let (ok, _, stderr) = run_sluice(
        path,
        &["workflow", "create", "map", "--definition", "map.json"],
    );
    assert!(ok, "{stderr}");
    let mut workers = [
        Some(spawn(path, &["worker", "--name", "w1"])),
        Some(spawn(path, &["worker", "--name", "w2"])),
    ];
    // Both workers are up (registered with the queue) before the Map starts.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM apalis.workers WHERE id IN ('w1', 'w2')")
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
        if up == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the workers never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let items: Vec<usize> = (0..ITEMS).collect();
    let input = json!({"items": items, "effects": effects});
    let (ok, stdout, stderr) = run_sluice(
        path,
        &[
            "workflow",
            "start",
            "map",
            "--input",
            &input.to_string(),
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let id = serde_json::from_str::<Value>(&stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // In the middle of the Map, kill one worker.
    let succeeded = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM executions WHERE parent_id = $1 AND status = 'SUCCEEDED'",
        )
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while succeeded().await < (ITEMS as i64) * 6 / 10 {
        assert!(Instant::now() < deadline, "the Map never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done_by = |worker: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM apalis.jobs WHERE lock_by = $1 AND status = 'Done'",
            )
            .bind(worker)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let before_kill = succeeded().await;
    let (w1, w2_before) = (done_by("w1").await, done_by("w2").await);
    workers[0].take().unwrap().kill();

    let (dir_path, waited) = (path.to_owned(), id.clone());
    let status = tokio::task::spawn_blocking(move || {
        wait_for_execution(&dir_path, &waited, Duration::from_secs(240))
    })
    .await
    .unwrap();
    assert_eq!(status, "SUCCEEDED");
    let w2 = done_by("w2").await;
    // Both shared the Map before the kill: each had run at least a fifth of the steps done.
    let shared = w1 + w2_before;
    assert!(
        w1 * 5 >= shared && w2_before * 5 >= shared,
        "before the kill ({before_kill} iterations done) w1 ran {w1} steps and w2 {w2_before}"
    );
    assert!(w2 > w2_before, "w2 finished the rest: {w2} steps in all");

    // Once per iteration: one child per item, each succeeded once, the output in order.
    let (ok, stdout, stderr) = run_sluice(path, &["workflow", "describe", &id, "--output", "json"]);
    assert!(ok, "{stderr}");
    let parent: Value = serde_json::from_str(&stdout).unwrap();
    let output = parent["output"].as_array().expect("the Map's output");
    assert_eq!(output.len(), ITEMS);
    for (index, item) in output.iter().enumerate() {
        let effect = effects.join(index.to_string());
        assert_eq!(item["effect"], json!(effect), "item {index} in its place");
        assert!(effect.exists(), "item {index} ran");
    }
    let children: Vec<(String, i64)> = sqlx::query_as(
        "SELECT e.status, (SELECT COUNT(*) FROM execution_events v WHERE v.execution_id = e.id AND v.kind = 'ExecutionSucceeded') \
         FROM executions e WHERE e.parent_id = $1",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(children.len(), ITEMS, "one child per item");
    assert!(
        children
            .iter()
            .all(|(status, succeeded)| status == "SUCCEEDED" && *succeeded == 1),
        "each child succeeded once"
    );
    let items_started: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT i.execution_id) FROM map_items i JOIN map_runs r ON r.id = i.run_id WHERE r.execution_id = $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(items_started, ITEMS as i64);
    let run: (String, i64, i64) =
        sqlx::query_as("SELECT status, succeeded, failed FROM map_runs WHERE execution_id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(run, ("SUCCEEDED".to_owned(), ITEMS as i64, 0));
    // An iteration whose worker died between its effect and its commit ran twice: the effects
    // of those in flight at the kill, at most.
    let twice = (0..ITEMS)
        .filter(|i| {
            std::fs::read_to_string(effects.join(i.to_string()))
                .unwrap()
                .lines()
                .count()
                > 1
        })
        .count();
    assert!(twice <= 10, "{twice} effects repeated");
    drop(workers);
}
