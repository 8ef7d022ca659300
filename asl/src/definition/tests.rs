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

#[test]
fn what_the_interpreter_cannot_run_is_refused_not_ignored() {
    // JSONata states parse; what belongs to the other language is refused with its pointer.
    let jsonata = json!({"StartAt": "Sum", "States": {"Sum": {
        "Type": "Task", "Resource": "sluice:echo", "QueryLanguage": "JSONata",
        "Arguments": {"sum": "{% $states.input.a + $states.input.b %}"}, "End": true}}});
    let machine = StateMachine::parse(&jsonata).unwrap();
    let fields = machine.states["Sum"]
        .jsonata
        .as_deref()
        .expect("a JSONata state");
    assert!(fields.arguments.is_some());
    assert_eq!(
        error_of(json!({"QueryLanguage": "JSONata", "StartAt": "A",
                        "States": {"A": {"Type": "Pass", "Parameters": {"x": 1}, "End": true}}})),
        "/States/A/Parameters: is a JSONPath field; a JSONata state takes Arguments, Output and Assign"
    );
    assert_eq!(
        error_of(json!({"QueryLanguage": "JSONata", "StartAt": "A",
                        "States": {"A": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": true}}})),
        "/States/A/QueryLanguage: a state of a JSONata state machine cannot be JSONPath"
    );
    assert_eq!(
        error_of(json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Condition": "{% true %}", "Next": "E"}]},
            "E": {"Type": "Succeed"}}})),
        "/States/C/Choices/0/Condition: is a JSONata field: set \"QueryLanguage\": \"JSONata\" on the state or the state machine"
    );
    // A JSONata Map processor inherits its machine's language; an expression may stand for a
    // number.
    let map = StateMachine::parse(&json!({"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {
        "Type": "Map", "Items": "{% [1, 2] %}", "MaxConcurrency": "{% 1 %}", "End": true,
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% $states.input %}", "End": true}}}}}}))
    .unwrap();
    let Kind::Map { processor, .. } = &map.states["M"].kind else {
        panic!("a Map")
    };
    assert!(processor.states["P"].jsonata.is_some());
    assert!(
        map.states["M"]
            .jsonata
            .as_ref()
            .unwrap()
            .expressions
            .contains_key("MaxConcurrency")
    );
    assert!(
        error_of(
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "sluice:echo",
            "Output": {"x": 1}, "End": true}}})
        )
        .starts_with("/States/A/Output: is a JSONata field")
    );
    let map = |extra: Value, processor_config: Value| {
        let mut state = json!({"Type": "Map", "End": true, "ItemProcessor": {
            "ProcessorConfig": processor_config, "StartAt": "P",
            "States": {"P": {"Type": "Pass", "End": true}}}});
        for (k, v) in extra.as_object().unwrap() {
            state[k] = v.clone();
        }
        json!({"StartAt": "M", "States": {"M": state}})
    };
    assert!(
        error_of(map(
            json!({"ItemReader": {"Resource": "arn:aws:states:::s3:getObject"}}),
            json!({"Mode": "INLINE"})
        ))
        .starts_with("/States/M/ItemReader: belongs to a distributed Map")
    );
    let distributed = json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"});
    StateMachine::parse(&map(json!({}), distributed.clone())).unwrap();
    assert_eq!(
        error_of(map(
            json!({"ItemReader": {"Resource": "arn:aws:states:::lambda:invoke"}}),
            distributed.clone()
        )),
        "/States/M/ItemReader/Resource: \"arn:aws:states:::lambda:invoke\": an ItemReader reads the lake with arn:aws:states:::s3:getObject or arn:aws:states:::s3:listObjectsV2"
    );
    assert_eq!(
        error_of(map(json!({"ResultWriter": {}}), distributed.clone())),
        "/States/M/ResultWriter/Resource: \"\": a ResultWriter writes the lake with arn:aws:states:::s3:putObject"
    );
    let writer = |more: Value| {
        let mut writer = json!({"Resource": "arn:aws:states:::s3:putObject"});
        writer
            .as_object_mut()
            .unwrap()
            .extend(more.as_object().unwrap().clone());
        json!({"ResultWriter": writer})
    };
    StateMachine::parse(&map(
        writer(json!({"Parameters": {"Bucket": "b", "Prefix.$": "$.out"}})),
        distributed.clone(),
    ))
    .unwrap();
    assert_eq!(
        error_of(map(
            writer(json!({"Parameters": {"Bucket": "b"}})),
            distributed.clone()
        )),
        "/States/M/ResultWriter/Parameters: names no Prefix"
    );
    assert!(
        error_of(map(
            writer(json!({"Parameters": {"Bucket": "b", "Prefix": ""}, "WriterConfig": {}})),
            distributed.clone()
        ))
        .starts_with("/States/M/ResultWriter/WriterConfig: is not supported yet")
    );
    assert!(
        error_of(map(
            writer(json!({"Parameters": {"Bucket": "b", "Prefix": ""}})),
            json!({"Mode": "INLINE"})
        ))
        .starts_with("/States/M/ResultWriter: belongs to a distributed Map")
    );
    assert_eq!(
        error_of(map(json!({}), json!({"Mode": "SIDEWAYS"}))),
        "/States/M/ItemProcessor/ProcessorConfig/Mode: \"SIDEWAYS\": INLINE or DISTRIBUTED"
    );
    // What the JSONPath corpus uses stays valid.
    StateMachine::parse(&map(json!({}), json!({"Mode": "INLINE"}))).unwrap();
    StateMachine::parse(&json!({"StartAt": "A", "States": {"A": {"Type": "Pass",
        "QueryLanguage": "JSONPath", "End": true}}}))
    .unwrap();
}

#[test]
fn a_resource_check_names_the_resource_pointer_in_nested_states() {
    let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
        "Branches": [{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "sluice:trian", "End": true}}}]}}});
    let err = StateMachine::parse_with_resources(&definition, |r| {
        if r == "sluice:train" {
            Ok(())
        } else {
            Err(format!("unknown resource {r:?}"))
        }
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/States/P/Branches/0/States/T/Resource: unknown resource \"sluice:trian\""
    );
}
