//! Workflows from the command line: in-process runs, durable executions with their worker
//! processes (stopped by SIGTERM, replaced after SIGKILL), and schedules fired by a server.

use tests::{run_sluice, wait_for_execution};

/// `sluice workflow run` of a definition on an input, which must succeed: its JSON outcome.
fn run_workflow(dir: &std::path::Path, definition: &str, input: &str) -> serde_json::Value {
    let (ok, stdout, stderr) = run_sluice(
        dir,
        &[
            "workflow",
            "run",
            "--definition",
            definition,
            "--input",
            input,
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let outcome: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outcome["status"], "SUCCEEDED", "{outcome}");
    outcome
}

#[test]
fn workflows_validate_and_run_jobs_as_task_states() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = format!(
        "{}/../scheduler/workflows/ingest.asl.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, stdout, _) = run_sluice(dir.path(), &["workflow", "validate", &ingest]);
    assert!(ok && stdout.contains("valid, 5 states"), "{stdout}");
    let (ok, _, stderr) = run_sluice(
        dir.path(),
        &["generate", "landings", "--devices", "2", "--days", "1"],
    );
    assert!(ok, "{stderr}");
    let input = r#"{"prefix": "landing", "table": "telemetry"}"#;
    let outcome = run_workflow(dir.path(), &ingest, input);
    let output = &outcome["output"];
    assert!(output["crawl"]["crawled"].as_u64().unwrap() > 0);
    assert_eq!(
        output["convert"]["read"].as_u64().unwrap(),
        output["convert"]["written"].as_u64().unwrap()
            + output["convert"]["quarantined"].as_u64().unwrap()
    );
    let events: Vec<&str> = outcome["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        events[..3],
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled"
        ]
    );
    assert!(
        events.contains(&"ChoiceStateEntered") && events.last() == Some(&"ExecutionSucceeded"),
        "{events:?}"
    );

    // Nothing new the second time: the Choice goes to NothingNew.
    let again = run_workflow(dir.path(), &ingest, input);
    assert!(again["output"].get("convert").is_none(), "{again}");
    // A job's error is an ASL error name that Catch sees.
    let missing = r#"{"prefix": "landing", "table": "nope"}"#;
    std::fs::write(
        dir.path().join("lake/landing/telemetry/new.json"),
        "{\"device_id\":\"x\",\"ts\":\"2024-05-01T00:00:00Z\"}\n",
    )
    .unwrap();
    let (_, stdout, _) = run_sluice(
        dir.path(),
        &[
            "workflow",
            "run",
            "--definition",
            &ingest,
            "--input",
            missing,
            "--output",
            "json",
        ],
    );
    let failed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (failed["status"].as_str(), failed["error"].as_str()),
        (Some("FAILED"), Some("Sluice.TableNotFound")),
        "{failed}"
    );

    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}"#,
    )
    .unwrap();
    let (ok, _, stderr) = run_sluice(dir.path(), &["workflow", "validate", "bad.json"]);
    assert!(
        !ok && stderr
            .contains("bad.json is not a valid workflow: /States/A/Next: names no state: \"B\""),
        "{stderr}"
    );
}

/// The shipped daily-aggregates workflow: crawl, convert, and `sluice:transform` building
/// `telemetry_daily`, rebuilt only when its source changed; `sluice transform` and `sluice query`
/// see the same table.
#[test]
fn a_workflow_builds_a_daily_aggregate_with_a_transform() {
    let dir = tempfile::tempdir().unwrap();
    let flow = format!(
        "{}/../scheduler/workflows/daily-aggregates.asl.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, _, stderr) = run_sluice(
        dir.path(),
        &["generate", "landings", "--devices", "3", "--days", "2"],
    );
    assert!(ok, "{stderr}");
    let input = r#"{"prefix": "landing", "table": "telemetry", "item": "device_id", "target": "pm25", "timestamp": "ts"}"#;
    let run = || run_workflow(dir.path(), &flow, input)["output"].clone();
    let first = run();
    let aggregate = &first["aggregate"];
    assert_eq!(aggregate["table"], "telemetry_daily", "{first}");
    assert_eq!(aggregate["status"], "built", "{first}");
    let days = aggregate["partitions"].as_u64().unwrap();
    assert!((2..=3).contains(&days), "two days of readings: {first}");
    assert_eq!(
        aggregate["rows"].as_u64().unwrap(),
        3 * days,
        "three devices a day: {first}"
    );

    // Every converted reading is counted once in the aggregate.
    let (ok, stdout, stderr) = run_sluice(
        dir.path(),
        &[
            "query",
            "SELECT SUM(readings) AS n FROM telemetry_daily",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let counted: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        counted["rows"][0]["n"], first["convert"]["written"],
        "{counted}"
    );

    // Nothing new: the aggregate is not rebuilt.
    let second = run();
    assert_eq!(second["aggregate"]["status"], "unchanged", "{second}");
    assert_eq!(
        second["aggregate"]["run_id"], aggregate["run_id"],
        "{second}"
    );

    // The command line names the same table and input.
    let sql = "SELECT item, date, COUNT(*) AS readings, AVG(value) AS mean, MIN(value) AS min, MAX(value) AS max FROM (SELECT device_id AS item, CAST(ts AS DATE) AS date, pm25 AS value FROM telemetry_curated) AS r GROUP BY item, date ORDER BY date, item";
    let (ok, stdout, stderr) = run_sluice(
        dir.path(),
        &[
            "transform",
            "telemetry_daily",
            sql,
            "--partition-by",
            "date",
        ],
    );
    assert!(
        ok && stdout.contains("telemetry_daily is up to date: built by run"),
        "{stdout}{stderr}"
    );
}

#[test]
fn durable_workflows_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let flow = r#"{"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Result": 1, "ResultPath": "$.a", "Next": "B"},
        "B": {"Type": "Task", "Resource": "sluice:echo", "End": true}}}"#;
    std::fs::write(dir.path().join("flow.json"), flow).unwrap();
    let (ok, stdout, stderr) = run_sluice(
        dir.path(),
        &["workflow", "create", "flow", "--definition", "flow.json"],
    );
    assert!(
        ok && stdout.contains("workflow flow version 1"),
        "{stdout}{stderr}"
    );

    let start = [
        "workflow",
        "start",
        "flow",
        "--input",
        r#"{"x": 1}"#,
        "--name",
        "first",
        "--wait",
        "--output",
        "json",
    ];
    let (ok, stdout, stderr) = run_sluice(dir.path(), &start);
    assert!(ok, "{stderr}");
    let execution: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (execution["status"].as_str(), &execution["output"]),
        (Some("SUCCEEDED"), &serde_json::json!({"x": 1, "a": 1}))
    );
    let id = execution["id"].as_str().unwrap().to_owned();
    // One execution per name: a finished one is not started again (Step Functions'
    // ExecutionAlreadyExists), and the refusal names it.
    let (ok, _, refused) = run_sluice(dir.path(), &start);
    assert!(
        !ok && refused.contains("already exists") && refused.contains(&id),
        "{refused}"
    );
    let (ok, stdout, _) = run_sluice(
        dir.path(),
        &["workflow", "history", &id, "--output", "json"],
    );
    let kinds: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&stdout)
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ok && kinds.first().map(String::as_str) == Some("ExecutionStarted")
            && kinds.last().map(String::as_str) == Some("ExecutionSucceeded"),
        "{kinds:?}"
    );

    // Fail, fix the definition, redrive from the failed state.
    std::fs::write(
        dir.path().join("broken.json"),
        flow.replace("sluice:echo", "sluice:fail"),
    )
    .unwrap();
    run_sluice(
        dir.path(),
        &["workflow", "create", "flaky", "--definition", "broken.json"],
    );
    let (_, stdout, _) = run_sluice(
        dir.path(),
        &["workflow", "start", "flaky", "--wait", "--output", "json"],
    );
    let failed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (failed["status"].as_str(), failed["state"].as_str()),
        (Some("FAILED"), Some("B")),
        "{failed}"
    );
    run_sluice(
        dir.path(),
        &["workflow", "update", "flaky", "--definition", "flow.json"],
    );
    let (ok, stdout, stderr) = run_sluice(
        dir.path(),
        &[
            "workflow",
            "redrive",
            failed["id"].as_str().unwrap(),
            "--wait",
            "--output",
            "json",
        ],
    );
    let redriven: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
    assert!(
        ok && redriven["status"] == "SUCCEEDED" && redriven["redrive_count"] == 1,
        "{stdout}{stderr}"
    );

    // A separate worker process runs what is started without --wait, and stops on SIGTERM.
    let mut worker = std::process::Command::new(tests::sluice_binary())
        .args(["worker"])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let (_, stdout, _) = run_sluice(
        dir.path(),
        &["workflow", "start", "flow", "--output", "json"],
    );
    let id = serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = wait_for_execution(dir.path(), &id, std::time::Duration::from_secs(60));
    assert_eq!(status, "SUCCEEDED");
    std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(
        worker.wait().unwrap().success(),
        "the worker stops cleanly on SIGTERM"
    );
    let (ok, _, stderr) = run_sluice(dir.path(), &["workflow", "describe", "nope"]);
    assert!(
        !ok && stderr.contains("execution \"nope\" not found"),
        "{stderr}"
    );
}

#[test]
fn a_server_fires_schedules_and_runs_their_executions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tick.json"),
        r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#,
    )
    .unwrap();
    run_sluice(
        dir.path(),
        &["workflow", "create", "tick", "--definition", "tick.json"],
    );
    let create = [
        "schedule",
        "create",
        "often",
        "--cron",
        "* * * * * *",
        "--tz",
        "Europe/Madrid",
        "--workflow",
        "tick",
        "--overlap",
        "allow",
        "--input",
        r#"{"k": 1}"#,
    ];
    let (ok, stdout, stderr) = run_sluice(dir.path(), &create);
    assert!(
        ok && stdout.contains("schedule often created"),
        "{stdout}{stderr}"
    );
    let (ok, _, stderr) = run_sluice(
        dir.path(),
        &[
            "schedule",
            "create",
            "bad",
            "--cron",
            "0 2 * * *",
            "--tz",
            "Nowhere/Land",
            "--workflow",
            "tick",
        ],
    );
    assert!(
        !ok && stderr.contains("time zone \"Nowhere/Land\""),
        "{stderr}"
    );

    let mut server = std::process::Command::new(tests::sluice_binary())
        .args(["server", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let succeeded = loop {
        let (_, stdout, _) = run_sluice(dir.path(), &["workflow", "list", "--output", "json"]);
        let list: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
        let done = list["executions"].as_array().map_or(0, |e| {
            e.iter().filter(|x| x["status"] == "SUCCEEDED").count()
        });
        if done >= 2 || std::time::Instant::now() > deadline {
            break (done, list);
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(
        server.wait().unwrap().success(),
        "the server stops cleanly on SIGTERM"
    );
    assert!(succeeded.0 >= 2, "{}", succeeded.1);
    let names: Vec<&str> = succeeded.1["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("often@")),
        "executions are named after their ticks: {names:?}"
    );
    let (ok, stdout, _) = run_sluice(dir.path(), &["schedule", "pause", "often"]);
    assert!(ok && stdout.contains("paused"));
    let (ok, stdout, _) = run_sluice(dir.path(), &["schedule", "list"]);
    assert!(
        ok && stdout.contains("Europe/Madrid") && stdout.contains("true"),
        "{stdout}"
    );
    let (ok, _, _) = run_sluice(dir.path(), &["schedule", "delete", "often"]);
    assert!(ok);
}
