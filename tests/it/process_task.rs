//! Commands of the operator's own as workflow steps (`sluice:process:NAME`): only allow-listed
//! ones (a definition naming any other is refused at validation, with its pointer), argv from
//! the configuration then the definition, no shell, stdin the request's JSON, stdout the output,
//! a non-zero exit and the time limit as task failures that Catch sees.

use std::time::Duration;

use scheduler::config::Config;
use scheduler::orchestrator::store::{self, ExecutionStatus};
use serde_json::json;
use tests::{Backend, TestDb, run_sluice};

/// A Python one-liner as an allow-listed command.
fn python(code: &str, timeout: f64) -> ops::ProcessCommand {
    ops::ProcessCommand {
        argv: vec!["python3".into(), "-c".into(), code.into()],
        timeout_seconds: timeout,
    }
}

async fn allow_listed_commands_run_as_steps(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut config = Config {
        lake: "memory://".into(),
        ..Config::default()
    };
    config.process.commands.insert(
        "sum".into(),
        python(
            "import json, sys; d = json.load(sys.stdin); print(json.dumps({'sum': sum(d['xs']), 'args': sys.argv[1:]}))",
            30.0,
        ),
    );
    config.process.commands.insert(
        "fail".into(),
        python(
            "import sys; sys.stderr.write('disk full'); sys.exit(3)",
            30.0,
        ),
    );
    config
        .process
        .commands
        .insert("hang".into(), python("import time; time.sleep(30)", 0.5));
    let engine = db.engine_with(config);
    let catch = |next: &str| json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": next}]);
    let definition = json!({"StartAt": "Sum", "States": {
        "Sum": {"Type": "Task", "Resource": "sluice:process:sum",
                "Parameters": {"args": ["--day", "$(rm -rf /)"], "stdin": {"xs.$": "$.xs"}},
                "ResultPath": "$.summed", "Next": "Fail"},
        "Fail": {"Type": "Task", "Resource": "sluice:process:fail", "Parameters": {}, "ResultPath": "$.failed",
                 "Catch": catch("Hang"), "Next": "Hang"},
        "Hang": {"Type": "Task", "Resource": "sluice:process:hang", "Parameters": {}, "ResultPath": "$.hung",
                 "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.hang", "Next": "Done"}], "Next": "Done"},
        "Done": {"Type": "Succeed"}}});
    store::put_workflow(&engine.pool, "own", &definition)
        .await
        .unwrap();
    let (execution, first) = engine
        .start("own", json!({"xs": [1, 2, 3.5]}), None)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    tests::run_to_end(&engine, first.unwrap()).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the hung command was killed at its limit"
    );
    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let output = done.output.unwrap();
    assert_eq!(
        output["summed"],
        json!({"sum": 6.5, "args": ["--day", "$(rm -rf /)"]}),
        "arguments reach the command as they are: no shell"
    );
    assert_eq!(output["error"]["Error"], "States.TaskFailed");
    let cause = output["error"]["Cause"].as_str().unwrap();
    assert!(
        cause.contains("exited with 3") && cause.ends_with("disk full"),
        "{cause}"
    );
    let hang = output["hang"]["Cause"].as_str().unwrap();
    assert!(hang.contains("past its 0.5 s limit"), "{hang}");

    // A command that is not allow-listed is refused when the workflow is started.
    let other = json!({"StartAt": "X", "States": {"X": {"Type": "Task", "Resource": "sluice:process:rm", "End": true}}});
    store::put_workflow(&engine.pool, "other", &other)
        .await
        .unwrap();
    let refused = engine
        .start("other", json!({}), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("/States/X/Resource")
            && refused.contains(
                "command \"rm\" is not allow-listed; the configuration allows fail, hang, sum"
            ),
        "{refused}"
    );
}

tests::on_both_backends!(allow_listed_commands_run_as_steps);

/// The allow-list comes from the configuration file; with none, every command is refused.
#[test]
fn validation_reads_the_allow_list_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let definition = path.join("flow.asl.json");
    std::fs::write(
        &definition,
        json!({"StartAt": "X", "States": {"X": {"Type": "Task", "Resource": "sluice:process:score", "End": true}}})
            .to_string(),
    )
    .unwrap();
    let validate = || {
        run_sluice(
            path,
            &["workflow", "validate", definition.to_str().unwrap()],
        )
    };
    let (ok, _, stderr) = validate();
    assert!(!ok);
    assert!(
        stderr.contains("/States/X/Resource") && stderr.contains("no command is"),
        "{stderr}"
    );
    std::fs::write(
        path.join("sluice.toml"),
        "[process.commands.score]\nargv = [\"python3\", \"score.py\"]\ntimeout_seconds = 60\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = validate();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
}
