//! Callback tasks (`.waitForTaskToken`) on SQLite and Postgres, driven step by step: the job gets
//! `$$.Task.Token`, the execution then waits holding no worker (no step is due, the stall sweep
//! leaves it alone), and `SendTaskSuccess` / `SendTaskFailure` resume it once; Retry and Catch
//! see a failure; `HeartbeatSeconds` and `TimeoutSeconds` run out as `States.HeartbeatTimeout`
//! and `States.Timeout`; an answer that comes while the job still runs is not lost. The same
//! across real process restarts is in `callback_restarts`.

use std::time::Duration;

use scheduler::asl::Failure;
use scheduler::orchestrator::Error;
use scheduler::orchestrator::engine::{Engine, Next};
use scheduler::orchestrator::store::{self, Answer, ExecutionStatus, TokenStatus};
use serde_json::{Value, json};
use tests::{Backend, TestDb, only};

fn engine(db: &TestDb) -> Engine {
    db.engine()
}

/// `Ask` hands its token to `sluice:echo` and waits; `extra` adds fields to it (Retry, Catch,
/// limits).
fn asking(extra: Value) -> Value {
    let mut definition = json!({"StartAt": "Ask", "States": {
        "Ask": {"Type": "Task", "Resource": "sluice:echo.waitForTaskToken",
                "Parameters": {"token.$": "$$.Task.Token", "question": "ship it?"},
                "ResultPath": "$.answer", "Next": "Done"},
        "Caught": {"Type": "Pass", "End": true},
        "Done": {"Type": "Pass", "End": true}}});
    if let Value::Object(extra) = extra {
        definition["States"]["Ask"]
            .as_object_mut()
            .unwrap()
            .extend(extra);
    }
    definition
}

/// Runs steps that are due now until one waits or the execution ends; returns what is next.
async fn drive(engine: &Engine, first: Next) -> Option<Next> {
    let mut next = Some(first);
    for _ in 0..50 {
        match next {
            Some(current) if current.delay.is_zero() => {
                next = only(engine.advance(&current.task).await.unwrap());
            }
            other => return other,
        }
    }
    panic!("runaway execution");
}

async fn kinds(engine: &Engine, id: &str) -> Vec<String> {
    store::history(&engine.pool, id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// The one waiting token of an execution.
async fn waiting_token(engine: &Engine, id: &str) -> store::TaskToken {
    let tokens: Vec<_> = store::waiting_tokens(&engine.pool, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.execution_id == id)
        .collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    tokens.into_iter().next().unwrap()
}

async fn a_callback_waits_holding_nothing_and_resumes_once_on_success(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    store::put_workflow(&engine.pool, "ask", &asking(json!({})))
        .await
        .unwrap();
    let (execution, first) = engine.start("ask", json!({"x": 1}), None).await.unwrap();
    let first = first.unwrap();
    assert_eq!(
        drive(&engine, first.clone()).await,
        None,
        "no step is due while it waits, with no deadline"
    );
    let waiting = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(
        (waiting.status, waiting.state.as_str()),
        (ExecutionStatus::Running, "Ask")
    );
    let token = waiting_token(&engine, &execution.id).await;
    assert_eq!(
        waiting.callback_token.as_deref(),
        Some(token.token.as_str())
    );
    assert_eq!(
        token.input,
        Some(json!({"token": token.token, "question": "ship it?"})),
        "the job was given the token"
    );
    assert!(token.token.len() >= 64, "an unguessable token");
    assert_eq!(
        kinds(&engine, &execution.id).await,
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted"
        ]
    );
    // The stall sweep does not take a waiting execution for a stalled one.
    assert!(
        engine
            .sweep(Duration::ZERO)
            .await
            .unwrap()
            .iter()
            .all(|n| n.task.execution != execution.id)
    );
    // A duplicate delivery of the first step, and an early one of the next, change nothing.
    assert_eq!(only(engine.advance(&first.task).await.unwrap()), None);
    let mut early = first.task.clone();
    early.step = waiting.step;
    assert_eq!(only(engine.advance(&early).await.unwrap()), None);

    let resume = engine
        .answer(&token.token, Answer::Success(json!({"approved": true})))
        .await
        .unwrap()
        .expect("the waiting execution resumes");
    assert_eq!(resume.task.step, waiting.step);
    assert_eq!(drive(&engine, resume).await, None);
    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(
        done.output,
        Some(json!({"x": 1, "answer": {"approved": true}}))
    );
    let history = kinds(&engine, &execution.id).await;
    assert_eq!(
        history[5..],
        [
            "TaskSucceeded",
            "TaskStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ],
        "resumed without a second TaskStateEntered"
    );

    // A token is answered once; an unknown one does not exist.
    let again = engine
        .answer(&token.token, Answer::Success(json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&again, Error::TokenClosed { status, .. } if status == "SUCCEEDED"),
        "{again}"
    );
    assert!(!again.to_string().contains(&token.token), "{again}");
    let unknown = engine
        .answer("no-such-token", Answer::Success(json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            unknown,
            Error::NotFound {
                what: "task token",
                ..
            }
        ),
        "{unknown}"
    );
    let big = "x".repeat(300 * 1024);
    assert!(matches!(
        engine.answer(&token.token, Answer::Success(json!(big))).await,
        Err(Error::Invalid(message)) if message.starts_with("output: ")
    ));
}

async fn a_failure_answer_is_retried_with_a_new_token_then_caught(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    let flow = asking(json!({
        "Retry": [{"ErrorEquals": ["Sluice.Rejected"], "IntervalSeconds": 0, "MaxAttempts": 1}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.refusal", "Next": "Caught"}]}));
    store::put_workflow(&engine.pool, "ask", &flow)
        .await
        .unwrap();
    let (execution, first) = engine.start("ask", json!({}), None).await.unwrap();
    assert_eq!(drive(&engine, first.unwrap()).await, None);
    let reject = |token: String| {
        let engine = engine.clone();
        async move {
            engine
                .answer(
                    &token,
                    Answer::Failure(Failure::new("Sluice.Rejected", "not tonight")),
                )
                .await
                .unwrap()
                .expect("resumes")
        }
    };
    let first_token = waiting_token(&engine, &execution.id).await.token;
    assert_eq!(
        drive(&engine, reject(first_token.clone()).await).await,
        None
    );
    // The retry runs the task again: its job gets a new token.
    let second_token = waiting_token(&engine, &execution.id).await.token;
    assert_ne!(first_token, second_token);
    assert_eq!(
        store::task_token(&engine.pool, &first_token)
            .await
            .unwrap()
            .status,
        TokenStatus::Failed
    );
    assert_eq!(drive(&engine, reject(second_token).await).await, None);
    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(
        done.output.unwrap()["refusal"],
        json!({"Error": "Sluice.Rejected", "Cause": "not tonight"})
    );
    let history = kinds(&engine, &execution.id).await;
    assert_eq!(
        history.iter().filter(|k| *k == "TaskFailed").count(),
        2,
        "{history:?}"
    );
    assert_eq!(
        history.iter().filter(|k| *k == "TaskStateEntered").count(),
        1,
        "{history:?}"
    );
}

async fn a_wait_without_heartbeats_fails_with_states_heartbeat_timeout(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    store::put_workflow(
        &engine.pool,
        "ask",
        &asking(json!({"HeartbeatSeconds": 1, "TimeoutSeconds": 60})),
    )
    .await
    .unwrap();
    let (execution, first) = engine.start("ask", json!({}), None).await.unwrap();
    let check = drive(&engine, first.unwrap())
        .await
        .expect("a step is due when the heartbeat runs out");
    assert!(check.delay <= Duration::from_secs(1), "{:?}", check.delay);
    let token = waiting_token(&engine, &execution.id).await;
    // A heartbeat moves the deadline: the check that comes at the old one waits on.
    tokio::time::sleep(Duration::from_millis(600)).await;
    engine.heartbeat(&token.token).await.unwrap();
    tokio::time::sleep(check.delay.saturating_sub(Duration::from_millis(600))).await;
    let later =
        only(engine.advance(&check.task).await.unwrap()).expect("still waiting, due again later");
    assert_eq!(later.task, check.task);
    assert!(
        later.delay > Duration::from_millis(100) && later.delay <= Duration::from_secs(1),
        "{:?}",
        later.delay
    );
    tokio::time::sleep(later.delay + Duration::from_millis(50)).await;
    assert_eq!(only(engine.advance(&later.task).await.unwrap()), None);
    let failed = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (ExecutionStatus::Failed, Some("States.HeartbeatTimeout"))
    );
    assert!(
        kinds(&engine, &execution.id)
            .await
            .contains(&"TaskTimedOut".to_owned())
    );
    // Too late: the token timed out.
    let late = engine
        .answer(&token.token, Answer::Success(json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&late, Error::TokenClosed { status, .. } if status == "TIMED_OUT"),
        "{late}"
    );
    assert!(engine.heartbeat(&token.token).await.is_err());
}

async fn a_timeout_is_caught_like_any_task_error(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    let flow = asking(json!({"TimeoutSeconds": 1,
        "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.refusal", "Next": "Caught"}]}));
    store::put_workflow(&engine.pool, "ask", &flow)
        .await
        .unwrap();
    let (execution, first) = engine.start("ask", json!({}), None).await.unwrap();
    let check = drive(&engine, first.unwrap())
        .await
        .expect("due at the timeout");
    // Answering past the deadline, before the check ran, is refused as timed out.
    tokio::time::sleep(check.delay + Duration::from_millis(50)).await;
    let token = waiting_token(&engine, &execution.id).await;
    let late = engine
        .answer(&token.token, Answer::Success(json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&late, Error::TokenClosed { status, .. } if status == "TIMED_OUT"),
        "{late}"
    );
    // Timed out, caught, and the catcher (a Pass) ends the execution in the same step.
    assert_eq!(only(engine.advance(&check.task).await.unwrap()), None);
    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.output.unwrap()["refusal"]["Error"], "States.Timeout");
}

async fn an_answer_that_comes_while_the_job_runs_is_not_lost(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = engine(&db);
    store::put_workflow(&engine.pool, "ask", &asking(json!({})))
        .await
        .unwrap();
    let (execution, first) = engine.start("ask", json!({}), None).await.unwrap();
    let first = first.unwrap();
    // The step's token, as its job would have it (a step run again gets the same one), is
    // answered before the step commits its wait: the commit sees the answer and resumes.
    let token = store::issue_token(
        &engine.pool,
        &execution.id,
        first.task.step,
        "Ask",
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        engine
            .answer(&token, Answer::Success(json!("early")))
            .await
            .unwrap(),
        None,
        "the execution does not wait yet"
    );
    let resume = only(engine.advance(&first.task).await.unwrap()).expect("resumes at once");
    assert_eq!(resume.delay, Duration::ZERO);
    assert_eq!(drive(&engine, resume).await, None);
    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.output.unwrap()["answer"], "early");
    // An aborted execution's token cannot be answered.
    let (other, first) = engine.start("ask", json!({}), None).await.unwrap();
    drive(&engine, first.unwrap()).await;
    let token = waiting_token(&engine, &other.id).await;
    engine.stop(&other.id).await.unwrap();
    let refused = engine
        .answer(&token.token, Answer::Success(json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::TokenClosed { status, .. } if status.contains("ABORTED")),
        "{refused}"
    );
}

tests::on_both_backends!(
    a_callback_waits_holding_nothing_and_resumes_once_on_success,
    a_failure_answer_is_retried_with_a_new_token_then_caught,
    a_wait_without_heartbeats_fails_with_states_heartbeat_timeout,
    a_timeout_is_caught_like_any_task_error,
    an_answer_that_comes_while_the_job_runs_is_not_lost,
);
