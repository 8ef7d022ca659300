use super::*;
use serde_json::json;

fn error_of(definition: Value) -> String {
    StateMachine::parse(&definition).unwrap_err().to_string()
}

#[test]
fn valid_definitions_parse() {
    let machine = StateMachine::parse(&json!({
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": "sluice:echo", "Retry": [{"ErrorEquals": ["States.ALL"]}], "Next": "B"},
            "B": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "C"}], "Default": "D"},
            "C": {"Type": "Succeed"},
            "D": {"Type": "Fail", "Error": "E"}
        }
    }))
    .unwrap();
    let retrier = &machine.states["A"].retry[0];
    assert_eq!(
        (
            retrier.interval_seconds,
            retrier.max_attempts,
            retrier.backoff_rate
        ),
        (1.0, 3, 2.0)
    );
}

#[test]
fn errors_name_the_json_pointer() {
    assert_eq!(
        error_of(json!({"StartAt": "X", "States": {"A": {"Type": "Succeed"}}})),
        "/StartAt: names no state: \"X\""
    );
    assert_eq!(
        error_of(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}})),
        "/States/A/Next: names no state: \"Nope\""
    );
    assert_eq!(
        error_of(json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}})),
        "/States/A/Next: a state has exactly one of Next and End: true"
    );
    assert_eq!(
        error_of(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Resource": "x"}}})
        ),
        "/States/A/Resource: is not a field of this state type"
    );
    assert_eq!(
        error_of(
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}})
        ),
        "/States/A/Retry/0/ErrorEquals: States.ALL must be in the last rule"
    );
    assert_eq!(
        error_of(
            json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 1, "Timestamp": "2024-01-01T00:00:00Z", "End": true}}})
        ),
        "/States/A: a Wait state has exactly one of Seconds, Timestamp, SecondsPath, TimestampPath"
    );
    assert_eq!(
        error_of(
            json!({"StartAt": "A", "States": {"A": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass"}}}]}}})
        ),
        "/States/A/Branches/0/States/B/Next: a state has exactly one of Next and End: true"
    );
}
