//! A Task state's time limits, through `sluice workflow run`: `TimeoutSeconds` cuts the job, and
//! `HeartbeatSeconds` cuts a job that stops beating while one that beats runs on.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::run_sluice;

/// Runs a definition in-process with `sluice workflow run`; returns the outcome and how long
/// it took.
fn run_flow(dir: &std::path::Path, flow: &Value) -> (Value, Duration) {
    std::fs::write(dir.join("flow.json"), flow.to_string()).unwrap();
    let started = Instant::now();
    let (ok, stdout, stderr) = run_sluice(
        dir,
        &[
            "workflow",
            "run",
            "--definition",
            "flow.json",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    (serde_json::from_str(&stdout).unwrap(), started.elapsed())
}

fn timed_out_event(outcome: &Value) -> bool {
    outcome["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "LambdaFunctionTimedOut")
}

#[test]
fn a_task_past_its_timeout_fails_with_states_timeout_that_catch_sees() {
    let dir = tempfile::tempdir().unwrap();
    let flow = json!({"StartAt": "Slow", "States": {
        "Slow": {"Type": "Task", "Resource": "sluice:sleep", "Parameters": {"seconds": 5}, "TimeoutSeconds": 1,
                 "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "TimedOut"}], "End": true},
        "TimedOut": {"Type": "Pass", "End": true}}});
    let (outcome, took) = run_flow(dir.path(), &flow);
    assert!(
        took < Duration::from_secs(4),
        "the task was cut at its timeout"
    );
    assert_eq!(outcome["status"], "SUCCEEDED");
    assert_eq!(outcome["output"]["error"]["Error"], "States.Timeout");
    assert!(timed_out_event(&outcome), "{outcome}");
}

#[test]
fn a_task_that_stops_beating_fails_with_heartbeat_timeout_and_one_that_beats_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |parameters: Value| {
        let flow = json!({"StartAt": "Long", "States": {
            "Long": {"Type": "Task", "Resource": "sluice:sleep", "Parameters": parameters,
                     "HeartbeatSeconds": 1, "TimeoutSeconds": 30,
                     "Catch": [{"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.error", "Next": "Stalled"}],
                     "End": true},
            "Stalled": {"Type": "Pass", "End": true}}});
        run_flow(dir.path(), &flow)
    };
    // Silent for 4 s: cut after 1 s without a heartbeat, and Catch sees the error.
    let (silent, took) = run(json!({"seconds": 4}));
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(silent["status"], "SUCCEEDED", "{silent}");
    assert_eq!(
        silent["output"]["error"]["Error"], "States.HeartbeatTimeout",
        "{silent}"
    );
    assert!(timed_out_event(&silent), "{silent}");
    // Beating every 0.3 s, a 2.5 s job outlives its 1 s HeartbeatSeconds.
    let (beating, took) = run(json!({"seconds": 2.5, "beat_seconds": 0.3}));
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    assert_eq!(beating["status"], "SUCCEEDED", "{beating}");
    assert!(beating["output"].get("error").is_none(), "{beating}");
}
