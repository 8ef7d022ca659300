//! Durable executions, on SQLite and Postgres: steps driven one by one (duplicates harmless), the
//! same history as the in-process interpreter, Waits and retries as scheduled steps, redrive with an edited
//! definition, stop, start by name with Step Functions' rules, the history's limit, and a real
//! apalis worker running an execution to its end.

use std::time::Duration;

use scheduler::asl::definition::StateMachine;
use scheduler::asl::run::{ExecutionInfo, TestTasks, VirtualClock, run};
use scheduler::orchestrator::Error;
use scheduler::orchestrator::engine::{Engine, Next};
use scheduler::orchestrator::queue::Queue;
use scheduler::orchestrator::store::{self, ExecutionStatus};
use serde_json::{Value, json};
use tests::{Backend, TestDb, only};

fn engine(db: &TestDb) -> Engine {
    db.engine()
}

fn definition() -> Value {
    json!({
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Result": {"n": 3}, "ResultPath": "$.job", "Next": "Echo"},
            "Echo": {"Type": "Task", "Resource": "sluice:echo", "Parameters": {"n.$": "$.job.n"}, "ResultPath": "$.echoed", "Next": "Big"},
            "Big": {"Type": "Choice", "Choices": [{"Variable": "$.echoed.n", "NumericGreaterThan": 2, "Next": "Pause"}], "Default": "Done"},
            "Pause": {"Type": "Wait", "Timestamp": "2020-01-01T00:00:00Z", "Next": "Done"},
            "Done": {"Type": "Succeed"}
        }
    })
}

/// Runs steps until the execution ends; returns how many ran.
async fn drive(engine: &Engine, first: Next) -> usize {
    let mut next = Some(first);
    let mut steps = 0;
    while let Some(current) = next {
        assert_eq!(current.delay, Duration::ZERO, "no step here waits");
        next = only(engine.advance(&current.task).await.unwrap());
        steps += 1;
        assert!(steps < 50, "runaway execution");
    }
    steps
}

async fn executions_advance_step_by_step_with_the_interpreters_history(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    assert_eq!(
        store::put_workflow(&engine.pool, "flow", &definition())
            .await
            .unwrap(),
        1
    );
    let (execution, first) = engine
        .start("flow", json!({"x": 1}), Some("run-1".into()))
        .await
        .unwrap();
    let first = first.expect("a new execution has a first step");
    // A second start with the same name and input, while it runs, returns the same execution
    // and enqueues nothing; with another input it is refused, as in Step Functions.
    let (again, none) = engine
        .start("flow", json!({"x": 1}), Some("run-1".into()))
        .await
        .unwrap();
    assert_eq!((again.id.as_str(), none), (execution.id.as_str(), None));
    let other = engine
        .start("flow", json!({"x": 2}), Some("run-1".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&other, Error::AlreadyExists { id, status, .. } if *id == execution.id && status == "RUNNING"),
        "{other}"
    );

    // Delivering a step twice: the duplicate finds the step taken and changes nothing.
    let second = only(engine.advance(&first.task).await.unwrap()).expect("more steps");
    assert_eq!(only(engine.advance(&first.task).await.unwrap()), None);
    // Echo with the Choice after it (pure states commit with the state before them), the Wait,
    // then Done.
    assert_eq!(drive(&engine, second).await, 3);

    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    let machine = StateMachine::parse(&definition()).unwrap();
    let info = ExecutionInfo {
        name: "run-1".into(),
        state_machine: "flow".into(),
    };
    let reference = run(
        &machine,
        json!({"x": 1}),
        &info,
        &mut TestTasks,
        &mut VirtualClock::starting_at(0),
    );
    assert_eq!(done.output, reference.output);
    let stored: Vec<String> = store::history(&engine.pool, &execution.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let expected: Vec<String> = reference.events.into_iter().map(|e| e.kind).collect();
    assert_eq!(stored, expected, "the durable history is the interpreter's");
}

async fn a_wait_is_a_scheduled_step_not_a_sleep(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    let flow = json!({"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 3600, "End": true}}});
    store::put_workflow(&engine.pool, "nap", &flow)
        .await
        .unwrap();
    let (execution, first) = engine.start("nap", json!({}), None).await.unwrap();
    let next =
        only(engine.advance(&first.unwrap().task).await.unwrap()).expect("the wait is rescheduled");
    assert_eq!(next.task.step, 0, "the same step, later");
    assert!(
        next.delay > Duration::from_secs(3590) && next.delay <= Duration::from_secs(3600),
        "{:?}",
        next.delay
    );
    let waiting = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(
        (waiting.status.as_str(), waiting.state.as_str()),
        ("RUNNING", "Nap")
    );
    engine.stop(&execution.id).await.unwrap();
    assert_eq!(
        only(engine.advance(&next.task).await.unwrap()),
        None,
        "a stopped execution takes no step"
    );
    let stopped = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(stopped.status, ExecutionStatus::Aborted);
    assert!(engine.stop(&execution.id).await.is_err());
}

async fn an_execution_past_its_timeout_fails(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    // Started "long ago": its 60 s TimeoutSeconds has passed before the first step runs.
    let flow = json!({"TimeoutSeconds": 60, "StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
    store::put_workflow(&engine.pool, "late", &flow)
        .await
        .unwrap();
    let (execution, first) = engine.start("late", json!({}), None).await.unwrap();
    sqlx::query("UPDATE executions SET started_at = started_at - 3600000 WHERE id = $1")
        .bind(&execution.id)
        .execute(&engine.pool)
        .await
        .unwrap();
    assert_eq!(
        only(engine.advance(&first.unwrap().task).await.unwrap()),
        None
    );
    let failed = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.error.as_deref()),
        ("FAILED", Some("States.Timeout"))
    );
}

async fn redrive_runs_the_fixed_definition_from_the_failed_state(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    let broken = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Result": "a", "ResultPath": "$.a", "Next": "B"},
        "B": {"Type": "Task", "Resource": "sluice:fail", "Parameters": {"Error": "Boom", "Cause": "broken"}, "Next": "C"},
        "C": {"Type": "Pass", "Result": "c", "ResultPath": "$.c", "End": true}}});
    store::put_workflow(&engine.pool, "fix", &broken)
        .await
        .unwrap();
    let (execution, first) = engine.start("fix", json!({}), None).await.unwrap();
    drive(&engine, first.unwrap()).await;
    let failed = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(
        (
            failed.status.as_str(),
            failed.error.as_deref(),
            failed.state.as_str()
        ),
        ("FAILED", Some("Boom"), "B")
    );
    assert!(engine.redrive("nope").await.is_err());

    let mut fixed = broken.clone();
    fixed["States"]["B"] =
        json!({"Type": "Task", "Resource": "sluice:echo", "ResultPath": "$.b", "Next": "C"});
    assert_eq!(
        store::put_workflow(&engine.pool, "fix", &fixed)
            .await
            .unwrap(),
        2
    );
    let next = only(engine.redrive(&execution.id).await.unwrap()).unwrap();
    drive(&engine, next).await;
    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(
        (done.status.as_str(), done.redrive_count, done.version),
        ("SUCCEEDED", 1, 2)
    );
    assert_eq!(done.output.unwrap()["c"], "c");
    let kinds: Vec<String> = store::history(&engine.pool, &execution.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let redriven = kinds
        .iter()
        .position(|k| k == "ExecutionRedriven")
        .expect("a redrive event");
    assert_eq!(kinds[redriven - 1], "ExecutionFailed");
    assert_eq!(
        kinds[redriven + 1],
        "TaskStateEntered",
        "the failed state runs again"
    );
    assert!(
        engine.redrive(&execution.id).await.is_err(),
        "only a failed execution is redriven"
    );
}

async fn an_apalis_worker_runs_an_execution_to_its_end(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    store::put_workflow(&engine.pool, "flow", &definition())
        .await
        .unwrap();
    let queue = Queue::open(&db.url).await.unwrap();
    let (execution, first) = engine.start("flow", json!({}), None).await.unwrap();
    queue.push(&first.unwrap()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        queue.work(engine.clone(), "test-worker".into(), async move {
            let _ = stopped.await;
        }),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let current = store::execution(&engine.pool, &execution.id).await.unwrap();
        if current.status != ExecutionStatus::Running || std::time::Instant::now() > deadline {
            break current.status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    assert_eq!(status, ExecutionStatus::Succeeded);
}

async fn a_retry_is_a_scheduled_step_that_keeps_its_attempts(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    let flow = json!({"StartAt": "Flaky", "States": {
        "Flaky": {"Type": "Task", "Resource": "sluice:fail", "Parameters": {"Error": "Sluice.Flaky", "Cause": "down"},
                  "Retry": [{"ErrorEquals": ["Sluice.Flaky"], "IntervalSeconds": 3600, "MaxAttempts": 2, "BackoffRate": 2}],
                  "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "GaveUp"}], "End": true},
        "GaveUp": {"Type": "Pass", "End": true}}});
    store::put_workflow(&engine.pool, "flaky", &flow)
        .await
        .unwrap();
    let (execution, first) = engine.start("flaky", json!({}), None).await.unwrap();
    let due = |engine: &Engine| {
        let (pool, id) = (engine.pool.clone(), execution.id.clone());
        async move {
            // Time passes: the retry is due now.
            sqlx::query("UPDATE executions SET entered_at = 0 WHERE id = $1")
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    let mut next = first.unwrap();
    for (attempt, hours) in [(1_u32, 1_u64), (2, 2)] {
        next = only(engine.advance(&next.task).await.unwrap()).expect("the retry is a step");
        let waiting = store::execution(&engine.pool, &execution.id).await.unwrap();
        assert_eq!(
            (waiting.status.as_str(), waiting.state.as_str()),
            ("RUNNING", "Flaky")
        );
        assert_eq!(waiting.retry_attempts, Some(vec![attempt]));
        let backoff = Duration::from_secs(3600 * hours);
        assert!(
            next.delay > backoff - Duration::from_secs(10) && next.delay <= backoff,
            "attempt {attempt}: {:?}",
            next.delay
        );
        // Delivered early (the stall sweep re-enqueues waiting steps): it waits again.
        let early = only(engine.advance(&next.task).await.unwrap()).unwrap();
        assert_eq!(early.task, next.task);
        assert!(early.delay > backoff - Duration::from_secs(10));
        due(&engine).await;
    }
    // The last attempt fails, is caught, and GaveUp (a Pass) ends the execution in that step.
    assert_eq!(only(engine.advance(&next.task).await.unwrap()), None);
    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.output.unwrap()["error"]["Error"], "Sluice.Flaky");
    let stored: Vec<String> = store::history(&engine.pool, &execution.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let reference = run(
        &StateMachine::parse(&flow).unwrap(),
        json!({}),
        &ExecutionInfo {
            name: "x".into(),
            state_machine: "flaky".into(),
        },
        &mut TestTasks,
        &mut VirtualClock::starting_at(0),
    );
    let expected: Vec<String> = reference.events.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        stored, expected,
        "the same history as a retry slept through"
    );
}

/// Step Functions' limits on executions: names, their reuse once finished, and 25,000 events
/// of history (a step that would pass it fails the execution with `States.Runtime`).
async fn names_and_histories_have_step_functions_limits(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    store::put_workflow(&engine.pool, "flow", &definition())
        .await
        .unwrap();
    for bad in ["", "has space", "a/b", "semi;colon", &"x".repeat(81)] {
        let refused = engine
            .start("flow", json!({}), Some(bad.to_owned()))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, Error::Invalid(ref m) if m.starts_with("execution name")),
            "{bad:?}: {refused}"
        );
    }
    let (execution, first) = engine
        .start(
            "flow",
            json!({"x": 1}),
            Some("nightly@2024-05-30T00-00-00Z".into()),
        )
        .await
        .unwrap();
    drive(&engine, first.unwrap()).await;
    let reused = engine
        .start(
            "flow",
            json!({"x": 1}),
            Some("nightly@2024-05-30T00-00-00Z".into()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&reused, Error::AlreadyExists { id, status, .. } if *id == execution.id && status == "SUCCEEDED"),
        "a finished execution's name is not started again: {reused}"
    );

    // A Map's iterations are executions of their own, and the Map records two events for each
    // as it resumes: one of 13,000 items would pass the limit, and fails as it starts.
    let big = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}});
    store::put_workflow(&engine.pool, "big", &big)
        .await
        .unwrap();
    let items: Vec<u32> = (0..13_000).collect();
    let (execution, first) = engine.start("big", json!(items), None).await.unwrap();
    assert_eq!(
        only(engine.advance(&first.unwrap().task).await.unwrap()),
        None
    );
    let failed = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("States.Runtime"));
    assert!(
        failed
            .cause
            .as_deref()
            .unwrap_or_default()
            .contains("limit of 25000 events"),
        "{:?}",
        failed.cause
    );
    assert!(
        store::map_runs(&engine.pool, &execution.id)
            .await
            .unwrap()
            .is_empty(),
        "no child started"
    );
    let history = store::history(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(history.last().unwrap().kind, "ExecutionFailed");
}

/// A Task that runs longer than the sweep's stall is not taken for a stalled step while it runs:
/// it marks its execution as moving, so no sweep starts it again beside itself (a nightly's
/// ten-minute ensemble ran in up to nine copies at once before); once it ends, the execution
/// has moved on.
async fn a_step_that_runs_past_the_stall_is_not_swept_while_it_runs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db).with_running_beat(Duration::from_millis(100));
    let nap = json!({"StartAt": "Nap", "States": {
        "Nap": {"Type": "Task", "Resource": "sluice:sleep", "Parameters": {"seconds": 2}, "End": true}}});
    store::put_workflow(&engine.pool, "nap", &nap)
        .await
        .unwrap();
    let (execution, first) = engine.start("nap", json!({}), None).await.unwrap();
    let first = first.unwrap();
    let running = {
        let (engine, task) = (engine.clone(), first.task.clone());
        tokio::spawn(async move { engine.advance(&task).await })
    };
    let swept = |stall| {
        let (engine, id) = (engine.clone(), execution.id.clone());
        async move {
            engine
                .sweep(stall)
                .await
                .unwrap()
                .into_iter()
                .any(|n| n.task.execution == id)
        }
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        !swept(Duration::from_millis(600)).await,
        "a step 1.2 s into its run, beating every 0.1 s, is not stalled for 0.6 s"
    );
    assert!(running.await.unwrap().unwrap().is_empty());
    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert!(
        !swept(Duration::ZERO).await,
        "an ended execution is never swept"
    );
}

tests::on_both_backends!(
    a_step_that_runs_past_the_stall_is_not_swept_while_it_runs,
    names_and_histories_have_step_functions_limits,
    a_retry_is_a_scheduled_step_that_keeps_its_attempts,
    executions_advance_step_by_step_with_the_interpreters_history,
    a_wait_is_a_scheduled_step_not_a_sleep,
    redrive_runs_the_fixed_definition_from_the_failed_state,
    an_execution_past_its_timeout_fails,
    an_apalis_worker_runs_an_execution_to_its_end,
);
