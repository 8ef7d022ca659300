//! Durable Parallel and Map on SQLite and Postgres, driven step by step: each branch and each
//! iteration is an execution of its own (a child, with its own history), started by the state's
//! step and run by whichever worker takes it; `MaxConcurrency` holds however the children's
//! steps interleave; a failure past what the Map tolerates stops the children still running;
//! a redrive runs again only the children that did not succeed; a callback inside a Map waits
//! like any; stopping the parent stops its children. The same across worker processes killed
//! mid-Map is in `fanout_workers`.

use std::collections::VecDeque;

use scheduler::orchestrator::engine::{Engine, Next};
use scheduler::orchestrator::store::{self, Answer, ExecutionStatus};
use serde_json::{Value, json};
use tests::{Backend, TestDb};

/// Runs due steps in the order they became ready (a queue, as workers take them) until none is
/// due now; after each, checks the run's running children against `limit`. Returns the steps
/// left for later.
async fn drive(engine: &Engine, first: Vec<Next>, limit: Option<(&str, i64)>) -> Vec<Next> {
    let mut ready: VecDeque<Next> = first.into();
    let mut later = Vec::new();
    for _ in 0..20_000 {
        let Some(next) = ready.pop_front() else {
            return later;
        };
        if !next.delay.is_zero() {
            later.push(next);
            continue;
        }
        ready.extend(engine.advance(&next.task).await.unwrap());
        if let Some((parent, max)) = limit {
            for run in store::map_runs(&engine.pool, parent).await.unwrap() {
                assert!(run.running <= max, "{} running, at most {max}", run.running);
            }
        }
    }
    panic!("runaway execution");
}

async fn start(
    engine: &Engine,
    name: &str,
    definition: &Value,
    input: Value,
) -> (String, Vec<Next>) {
    store::put_workflow(&engine.pool, name, definition)
        .await
        .unwrap();
    let (execution, first) = engine.start(name, input, None).await.unwrap();
    (execution.id, first.into_iter().collect())
}

async fn children(engine: &Engine, parent: &str) -> Vec<store::Execution> {
    let mut children = store::executions(
        &engine.pool,
        &store::ExecutionFilter {
            parent: Some(parent),
            ..Default::default()
        },
        10_000,
    )
    .await
    .unwrap();
    children.sort_by_key(|c| c.child_index);
    children
}

async fn kinds(engine: &Engine, id: &str) -> Vec<String> {
    store::history(&engine.pool, id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn a_map_runs_each_iteration_as_a_child_within_max_concurrency(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = db.engine();
    let definition = json!({"StartAt": "Each", "States": {
    "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 3, "ResultPath": "$.out", "End": true,
        "ItemSelector": {"n.$": "$$.Map.Item.Value", "at.$": "$$.Map.Item.Index", "run.$": "$$.Execution.Name"},
        "ItemProcessor": {"StartAt": "Echo", "States": {
            "Echo": {"Type": "Task", "Resource": "sluice:echo", "Next": "Twice"},
            "Twice": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, $.n)", "at.$": "$$.Map.Item.Index", "run.$": "$$.Execution.Name"}, "End": true}}}},
    }});
    let items: Vec<i64> = (0..20).collect();
    let (id, first) = start(&engine, "map", &definition, json!({"items": items})).await;
    let left = drive(&engine, first, Some((&id, 3))).await;
    assert!(left.is_empty(), "{left:?}");

    let done = store::execution(&engine.pool, &id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.cause);
    let out = done.output.unwrap()["out"].clone();
    let name = done.name.clone();
    let expected: Vec<Value> = (0..20)
        .map(|n| json!({"n": 2 * n, "at": n, "run": name}))
        .collect();
    assert_eq!(
        out,
        json!(expected),
        "in item order, with the root's context"
    );

    // Twenty children, each with its own history, none left running.
    let children = children(&engine, &id).await;
    assert_eq!(children.len(), 20);
    for (index, child) in children.iter().enumerate() {
        assert_eq!(child.child_index, Some(index as i64));
        assert_eq!(child.status, ExecutionStatus::Succeeded);
        assert_eq!(
            kinds(&engine, &child.id).await,
            [
                "ExecutionStarted",
                "TaskStateEntered",
                "LambdaFunctionScheduled",
                "LambdaFunctionStarted",
                "LambdaFunctionSucceeded",
                "TaskStateExited",
                "PassStateEntered",
                "PassStateExited",
                "ExecutionSucceeded"
            ]
        );
    }
    let runs = store::map_runs(&engine.pool, &id).await.unwrap();
    assert_eq!(
        (runs.len(), runs[0].status.as_str(), runs[0].succeeded),
        (1, "SUCCEEDED", 20)
    );
    // The parent's history: the Map's events, an iteration's per child, no child's states.
    let parent = kinds(&engine, &id).await;
    assert_eq!(
        parent
            .iter()
            .filter(|k| *k == "MapIterationSucceeded")
            .count(),
        20
    );
    assert!(
        !parent
            .iter()
            .any(|k| k.starts_with("Task") || k.starts_with("Lambda"))
    );
    // The listing shows top-level executions unless asked for a parent's children.
    let top = store::executions(&engine.pool, &Default::default(), 100)
        .await
        .unwrap();
    assert_eq!(top.len(), 1);
}

async fn a_parallel_runs_its_branches_as_children_and_a_nested_map_as_theirs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = db.engine();
    let definition = json!({"StartAt": "Both", "States": {
        "Both": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "Echo", "States": {"Echo": {"Type": "Task", "Resource": "sluice:echo", "End": true}}},
            {"StartAt": "Inner", "States": {"Inner": {"Type": "Map", "ItemsPath": "$.xs", "End": true,
                "ItemProcessor": {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": true}}}}}}]}}});
    let (id, first) = start(&engine, "par", &definition, json!({"xs": [1, 2, 3]})).await;
    assert!(drive(&engine, first, None).await.is_empty());
    let done = store::execution(&engine.pool, &id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.cause);
    assert_eq!(done.output.unwrap(), json!([{"xs": [1, 2, 3]}, [1, 2, 3]]));
    let branches = children(&engine, &id).await;
    assert_eq!(branches.len(), 2);
    assert_eq!(branches[1].machine_path, [("Both".to_owned(), 1)]);
    let items = children(&engine, &branches[1].id).await;
    assert_eq!(
        items.len(),
        3,
        "the nested Map's iterations are the branch's children"
    );
    assert_eq!(
        items[2].machine_path,
        [("Both".to_owned(), 1), ("Inner".to_owned(), 0)]
    );
}

/// Items 2 and 4 fail until version 2 of the workflow fixes them.
fn failing(fixed: bool) -> Value {
    let bad = if fixed {
        json!({"Type": "Pass", "Result": "fixed", "End": true})
    } else {
        json!({"Type": "Task", "Resource": "sluice:fail", "Parameters": {"Error": "Sluice.Bad", "Cause": "item failed"}, "End": true})
    };
    json!({"StartAt": "Each", "States": {
        "Each": {"Type": "Map", "MaxConcurrency": 1, "End": true,
            "ItemProcessor": {"StartAt": "Which", "States": {
                "Which": {"Type": "Choice", "Choices": [{"Or": [{"Variable": "$", "NumericEquals": 2}, {"Variable": "$", "NumericEquals": 4}], "Next": "Bad"}], "Default": "Good"},
                "Good": {"Type": "Task", "Resource": "sluice:echo", "End": true},
                "Bad": bad}}}}})
}

async fn a_failed_map_stops_its_children_and_a_redrive_reruns_only_those_that_did_not_succeed(
    backend: Backend,
) {
    let db = TestDb::new(backend).await;
    let engine = db.engine();
    let (id, first) = start(&engine, "items", &failing(false), json!([1, 2, 3, 4, 5])).await;
    assert!(drive(&engine, first, Some((&id, 1))).await.is_empty());
    let failed = store::execution(&engine.pool, &id).await.unwrap();
    assert_eq!(
        (
            failed.status,
            failed.error.as_deref(),
            failed.state.as_str()
        ),
        (ExecutionStatus::Failed, Some("Sluice.Bad"), "Each")
    );
    // One at a time: item 1 succeeded, item 2 failed the run, 3 to 5 never started.
    let before = children(&engine, &id).await;
    let statuses: Vec<ExecutionStatus> = before.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [ExecutionStatus::Succeeded, ExecutionStatus::Failed]
    );

    store::put_workflow(&engine.pool, "items", &failing(true))
        .await
        .unwrap();
    let steps = engine.redrive(&id).await.unwrap();
    assert_eq!(steps.len(), 1, "the failed child, alone (MaxConcurrency 1)");
    assert_eq!(
        steps[0].task.execution, before[1].id,
        "the failed child runs again"
    );
    assert!(drive(&engine, steps, Some((&id, 1))).await.is_empty());
    let done = store::execution(&engine.pool, &id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.cause);
    assert_eq!(done.output.unwrap(), json!([1, "fixed", 3, "fixed", 5]));
    let after = children(&engine, &id).await;
    assert_eq!(after.len(), 5);
    assert_eq!(after[0].id, before[0].id);
    assert_eq!(
        (
            after[0].redrive_count,
            after[1].redrive_count,
            after[1].id == before[1].id
        ),
        (0, 1, true),
        "the succeeded child kept its result; the failed one was redriven, not replaced"
    );
    assert_eq!(
        kinds(&engine, &after[0].id)
            .await
            .iter()
            .filter(|k| *k == "LambdaFunctionSucceeded")
            .count(),
        1,
        "item 1 ran once"
    );
    assert!(
        kinds(&engine, &id)
            .await
            .contains(&"ExecutionRedriven".to_owned())
    );
}

async fn a_failure_past_the_tolerated_ones_stops_the_running_children(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = db.engine();
    let mut definition = failing(false);
    let map = definition["States"]["Each"].as_object_mut().unwrap();
    map.remove("MaxConcurrency");
    map.insert("ToleratedFailureCount".into(), json!(1));
    map.insert(
        "Catch".into(),
        json!([{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "Over"}]),
    );
    map.remove("End");
    map.insert("Next".into(), json!("Fine"));
    definition["States"]["Over"] = json!({"Type": "Pass", "End": true});
    definition["States"]["Fine"] = json!({"Type": "Pass", "End": true});
    // Within the threshold: one failure of five.
    let (id, first) = start(&engine, "tolerant", &definition, json!([1, 2, 3, 5, 6])).await;
    drive(&engine, first, None).await;
    let done = store::execution(&engine.pool, &id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(
        done.output.unwrap()[1]["Error"],
        "Sluice.Bad",
        "through Fine"
    );
    // Past it: the second failure decides the run and stops the children still running.
    let (id, first) = start(&engine, "tolerant", &definition, json!([2, 4, 1, 3, 5])).await;
    // The Map's step starts all five; run the two failing children only.
    let started = only_children(engine.advance(&first[0].task).await.unwrap(), 5);
    for next in &started[..2] {
        drive(&engine, vec![next.clone()], None).await;
    }
    let kids = children(&engine, &id).await;
    let statuses: Vec<ExecutionStatus> = kids.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            ExecutionStatus::Failed,
            ExecutionStatus::Failed,
            ExecutionStatus::Aborted,
            ExecutionStatus::Aborted,
            ExecutionStatus::Aborted
        ]
    );
    // The stopped children's steps do nothing now.
    drive(&engine, started[2..].to_vec(), None).await;
    let done = store::execution(&engine.pool, &id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(
        done.output.unwrap()["Error"],
        "States.ExceedToleratedFailureThreshold",
        "caught, through Over"
    );
}

fn only_children(steps: Vec<Next>, n: usize) -> Vec<Next> {
    assert_eq!(steps.len(), n, "{steps:?}");
    steps
}

async fn a_callback_inside_a_map_waits_for_each_token_and_a_stop_reaches_the_children(
    backend: Backend,
) {
    let db = TestDb::new(backend).await;
    let engine = db.engine();
    let definition = json!({"StartAt": "Ask", "States": {"Ask": {"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "Wait", "States": {"Wait": {"Type": "Task",
            "Resource": "sluice:echo.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token", "item.$": "$"}, "End": true}}}}}});
    let (id, first) = start(&engine, "ask", &definition, json!(["a", "b"])).await;
    assert!(drive(&engine, first, None).await.is_empty(), "all wait");
    let tokens: Vec<store::TaskToken> = store::waiting_tokens(&engine.pool, 100).await.unwrap();
    assert_eq!(tokens.len(), 2);
    for token in &tokens {
        let item = token.input.as_ref().unwrap()["item"].clone();
        let next = engine
            .answer(&token.token, Answer::Success(json!({"answered": item})))
            .await
            .unwrap();
        drive(&engine, next.into_iter().collect(), None).await;
    }
    let done = store::execution(&engine.pool, &id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.cause);
    assert_eq!(
        done.output.unwrap(),
        json!([{"answered": "a"}, {"answered": "b"}])
    );

    // Stopping a parent stops its waiting children; their tokens are refused after.
    let (id, first) = start(&engine, "ask", &definition, json!(["c"])).await;
    drive(&engine, first, None).await;
    engine.stop(&id).await.unwrap();
    let kids = children(&engine, &id).await;
    assert_eq!(kids[0].status, ExecutionStatus::Aborted);
    let token = store::waiting_tokens(&engine.pool, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.execution_id == kids[0].id);
    if let Some(token) = token {
        assert!(
            engine
                .answer(&token.token, Answer::Success(json!(1)))
                .await
                .is_err()
        );
    }
}

tests::on_both_backends!(
    a_map_runs_each_iteration_as_a_child_within_max_concurrency,
    a_parallel_runs_its_branches_as_children_and_a_nested_map_as_theirs,
    a_failed_map_stops_its_children_and_a_redrive_reruns_only_those_that_did_not_succeed,
    a_failure_past_the_tolerated_ones_stops_the_running_children,
    a_callback_inside_a_map_waits_for_each_token_and_a_stop_reaches_the_children,
);
