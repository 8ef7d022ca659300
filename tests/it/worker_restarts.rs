//! Workers killed (-9) in the middle of a task, through the real binary: another worker, or the
//! same command started again under the same name, finishes the execution, and the task's
//! effect happens once. A worker restarted under its name takes back its predecessor's step at
//! once, on SQLite and on Postgres.

use tests::{run_sluice, wait_for_execution};

#[test]
fn a_worker_killed_mid_task_is_replaced_and_the_effect_happens_once() {
    killed_mid_task_then_replaced(None, &["worker"], std::time::Duration::from_secs(120));
}

/// A worker of a fixed name (a systemd unit's, a StatefulSet pod's) restarted under the same
/// name takes back the step it held when killed at once: neither apalis's heartbeat timeout
/// (the name looks alive again) nor the two-minute stall sweep is waited for. On SQLite it waits
/// out its predecessor's last heartbeat first (apalis refuses a name seen within one).
#[test]
fn a_worker_restarted_under_its_name_takes_back_its_step_at_once() {
    killed_mid_task_then_replaced(
        None,
        &["worker", "--name", "steady"],
        std::time::Duration::from_secs(45),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_worker_restarted_under_its_name_takes_back_its_step_at_once() {
    let db = tests::TestDb::new(tests::Backend::Postgres).await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        killed_mid_task_then_replaced(
            Some(&url),
            &["worker", "--name", "steady"],
            std::time::Duration::from_secs(45),
        )
    })
    .await
    .unwrap();
}

/// Starts a slow task under a worker started with `worker` (on `database`, SQLite by default),
/// kills it (-9) mid-task, starts the same command again, and checks that the execution ends
/// within `within`, its effect once.
fn killed_mid_task_then_replaced(
    database: Option<&str>,
    worker: &[&str],
    within: std::time::Duration,
) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(url) = database {
        std::fs::write(
            dir.path().join("sluice.toml"),
            format!("database = \"{url}\"\n"),
        )
        .unwrap();
    }
    let started = dir.path().join("started");
    let effect = dir.path().join("effect");
    let flow = serde_json::json!({"StartAt": "Slow", "States": {
        "Slow": {"Type": "Task", "Resource": "sluice:sleep", "End": true,
                 "Parameters": {"seconds": 4, "started": started, "effect": effect}}}});
    std::fs::write(dir.path().join("slow.json"), flow.to_string()).unwrap();
    run_sluice(
        dir.path(),
        &["workflow", "create", "slow", "--definition", "slow.json"],
    );
    // Workers are killed when the test ends, whatever happens.
    struct Worker(std::process::Child);
    impl Drop for Worker {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let spawn_worker = || {
        Worker(
            std::process::Command::new(tests::sluice_binary())
                .args(worker)
                .current_dir(dir.path())
                .spawn()
                .unwrap(),
        )
    };
    let mut first = spawn_worker();
    let (_, stdout, _) = run_sluice(
        dir.path(),
        &["workflow", "start", "slow", "--output", "json"],
    );
    let id = serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the task never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    first.0.kill().unwrap(); // SIGKILL, mid-task
    first.0.wait().unwrap();
    assert!(
        !effect.exists(),
        "the killed attempt never reached its effect"
    );
    let mut second = spawn_worker();
    let status = wait_for_execution(dir.path(), &id, within);
    std::process::Command::new("kill")
        .args(["-TERM", &second.0.id().to_string()])
        .status()
        .unwrap();
    assert!(
        second.0.wait().unwrap().success(),
        "the second worker stops cleanly on SIGTERM"
    );
    assert_eq!(status, "SUCCEEDED", "another worker finished the execution");
    assert_eq!(
        std::fs::read_to_string(&effect).unwrap(),
        "done\n",
        "the effect happened once"
    );
}
