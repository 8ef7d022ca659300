//! Durable Parallel and Map in one step: the fan-out handed back, and the resume with the
//! children's results.

use serde_json::{Value, json};

use super::super::Failure;
use super::super::definition::StateMachine;
use super::super::run::{
    ChildResult, ExecutionInfo, Fanned, FanoutKind, Position, StateStep, TestTasks, VirtualClock,
    run_state,
};

fn step(definition: &Value, input: Value, children: Option<Fanned>) -> StateStep {
    let machine = StateMachine::parse(definition).unwrap();
    let position = Position {
        execution_input: input.clone(),
        started_at_ms: 0,
        state: "M".into(),
        input,
        variables: serde_json::Map::new(),
        attempts: children.as_ref().map(|_| Vec::new()),
        callback: None,
        map_item: None,
        children,
    };
    let info = ExecutionInfo {
        name: "t".into(),
        state_machine: "t".into(),
    };
    run_state(
        &machine,
        &position,
        &info,
        &mut TestTasks,
        &mut VirtualClock::starting_at(0),
    )
}

fn kinds(step: &StateStep) -> Vec<&str> {
    step.events.iter().map(|e| e.kind.as_str()).collect()
}

fn ended(results: Vec<Result<Value, Failure>>) -> Fanned {
    let children = results
        .into_iter()
        .enumerate()
        .map(|(i, result)| ChildResult {
            execution: format!("child-{i}"),
            result: Some(result),
            ..ChildResult::default()
        })
        .collect();
    Fanned {
        run: "run".into(),
        children,
    }
}

#[test]
fn a_durable_map_hands_its_iterations_back_and_resumes_with_their_results() {
    let definition = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.out",
        "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "k.$": "$.k"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}});
    let input = json!({"items": ["a", "b", "c"], "k": 7});
    let handed = step(&definition, input.clone(), None);
    assert_eq!(kinds(&handed), ["MapStateEntered", "MapStateStarted"]);
    assert!(handed.result.is_err(), "the state is not left");
    let fanout = handed.fanout.expect("handed back");
    assert_eq!(fanout.kind, FanoutKind::Map);
    assert_eq!(fanout.max_concurrency, 2);
    let inputs: Vec<&Value> = fanout.children.iter().map(|c| &c.input).collect();
    assert_eq!(
        inputs,
        [
            &json!({"v": "a", "i": 0, "k": 7}),
            &json!({"v": "b", "i": 1, "k": 7}),
            &json!({"v": "c", "i": 2, "k": 7})
        ]
    );
    assert_eq!(fanout.children[1].map_item, Some((1, json!("b"))));

    let resumed = step(
        &definition,
        input,
        Some(ended(vec![Ok(json!(1)), Ok(json!(2)), Ok(json!(3))])),
    );
    assert!(resumed.fanout.is_none());
    assert_eq!(
        kinds(&resumed),
        [
            "MapIterationStarted",
            "MapIterationSucceeded",
            "MapIterationStarted",
            "MapIterationSucceeded",
            "MapIterationStarted",
            "MapIterationSucceeded",
            "MapStateSucceeded",
            "MapStateExited"
        ]
    );
    let (output, next) = resumed.result.unwrap();
    assert_eq!((output["out"].clone(), next), (json!([1, 2, 3]), None));
}

#[test]
fn a_resumed_map_fails_past_its_tolerance_and_is_caught() {
    let definition = |tolerance: Value| {
        let mut d = json!({"StartAt": "M", "States": {
            "M": {"Type": "Map", "End": true,
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}},
            "Caught": {"Type": "Pass", "End": true}}});
        d["States"]["M"]
            .as_object_mut()
            .unwrap()
            .extend(tolerance.as_object().unwrap().clone());
        d
    };
    let results = || {
        ended(vec![
            Ok(json!(1)),
            Err(Failure::new("Boom", "one failed")),
            Ok(json!(3)),
        ])
    };
    // Without a threshold the iteration's own error fails the Map.
    let caught = step(&definition(json!({})), json!([1, 2, 3]), Some(results()));
    let (output, next) = caught.result.unwrap();
    assert_eq!(
        (output["Error"].clone(), next.as_deref()),
        (json!("Boom"), Some("Caught"))
    );
    assert!(caught.events.iter().any(|e| e.kind == "MapStateFailed"));
    // One of three tolerated: the Map succeeds with the failure in its output.
    let tolerated = step(
        &definition(json!({"ToleratedFailureCount": 1})),
        json!([1, 2, 3]),
        Some(results()),
    );
    let (output, _) = tolerated.result.unwrap();
    assert_eq!(output[1]["Error"], "Boom");
    // 10 % is less than one of three.
    let exceeded = step(
        &definition(json!({"ToleratedFailurePercentage": 10})),
        json!([1, 2, 3]),
        Some(results()),
    );
    let (output, _) = exceeded.result.unwrap();
    assert_eq!(output["Error"], "States.ExceedToleratedFailureThreshold");
}

#[test]
fn a_durable_parallel_hands_back_one_child_per_branch() {
    let branch = |r: Value| json!({"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": r, "End": true}}});
    let definition = json!({"StartAt": "M", "States": {"M": {"Type": "Parallel", "End": true,
        "Branches": [branch(json!(1)), branch(json!(2))]}}});
    let handed = step(&definition, json!({"x": 1}), None);
    let fanout = handed.fanout.unwrap();
    assert_eq!(fanout.kind, FanoutKind::Parallel);
    let branches: Vec<(usize, &Value)> = fanout
        .children
        .iter()
        .map(|c| (c.branch, &c.input))
        .collect();
    assert_eq!(branches, [(0, &json!({"x": 1})), (1, &json!({"x": 1}))]);
    let resumed = step(
        &definition,
        json!({"x": 1}),
        Some(ended(vec![Ok(json!("one")), Ok(json!("two"))])),
    );
    assert_eq!(kinds(&resumed), ["ParallelStateExited"]);
    assert_eq!(resumed.result.unwrap().0, json!(["one", "two"]));
    let failed = step(
        &definition,
        json!({"x": 1}),
        Some(ended(vec![
            Ok(json!("one")),
            Err(Failure::new("Nope", "b")),
        ])),
    );
    assert_eq!(failed.result.unwrap_err().error, "Nope");
}
