//! An execution's own limits: its TimeoutSeconds and the 25,000 events of its history.

use super::*;

fn execute(definition: Value, input: Value) -> (Outcome, VirtualClock) {
    let machine = StateMachine::parse(&definition).unwrap();
    let info = ExecutionInfo {
        name: "t".into(),
        state_machine: "t".into(),
    };
    let mut clock = VirtualClock::starting_at(0);
    let outcome = run(&machine, input, &info, &mut TestTasks, &mut clock);
    (outcome, clock)
}

#[test]
fn an_execution_past_its_timeout_fails_with_states_timeout() {
    let definition = json!({"TimeoutSeconds": 10, "StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 20, "Next": "After"},
        "After": {"Type": "Pass", "End": true}}});
    let (outcome, _) = execute(definition, json!({}));
    let failure = outcome.failure.unwrap();
    assert_eq!(failure.error, "States.Timeout");
    assert!(
        !outcome.events.iter().any(|e| e.kind == "PassStateEntered"),
        "no state starts past the deadline"
    );
}

#[test]
fn a_history_past_25000_events_fails_the_execution() {
    let definition = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}});
    let items: Vec<u32> = (0..7_000).collect();
    let (outcome, _) = execute(definition.clone(), json!(items));
    let failure = outcome.failure.unwrap();
    assert_eq!(failure.error, "States.Runtime");
    assert!(
        failure.cause.contains("limit of 25000 events"),
        "{}",
        failure.cause
    );
    assert!(outcome.events.len() <= 25_000, "{}", outcome.events.len());
    let items: Vec<u32> = (0..100).collect();
    assert_eq!(
        execute(definition, json!(items)).0.status,
        Status::Succeeded
    );
}
