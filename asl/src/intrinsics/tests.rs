use super::*;
use serde_json::json;

fn check(expression: &str, input: Value, expect: Value) {
    let (context, variables) = (json!({}), Map::new());
    let got = evaluate(
        expression,
        &input,
        Scope {
            context: &context,
            variables: &variables,
        },
    )
    .unwrap();
    assert_eq!(got, expect, "{expression}");
}

#[test]
fn functions_compute_what_aws_documents() {
    check(
        "States.Format('Hello, {}! \\{literal\\}', $.name)",
        json!({"name": "ann"}),
        json!("Hello, ann! {literal}"),
    );
    check(
        "States.Format('{} {}', 1, true)",
        json!({}),
        json!("1 true"),
    );
    check(
        "States.StringToJson($.s)",
        json!({"s": "{\"a\":[1]}"}),
        json!({"a": [1]}),
    );
    check(
        "States.JsonToString($.o)",
        json!({"o": {"a": 1}}),
        json!("{\"a\":1}"),
    );
    check(
        "States.Array(1, 'two', $.x)",
        json!({"x": [3]}),
        json!([1, "two", [3]]),
    );
    check(
        "States.ArrayPartition(States.Array(1,2,3,4,5), 2)",
        json!({}),
        json!([[1, 2], [3, 4], [5]]),
    );
    check(
        "States.ArrayContains($.a, 2)",
        json!({"a": [1, 2]}),
        json!(true),
    );
    check(
        "States.ArrayRange(1, 9, 2)",
        json!({}),
        json!([1, 3, 5, 7, 9]),
    );
    check(
        "States.ArrayGetItem($.a, 1)",
        json!({"a": [5, 6]}),
        json!(6),
    );
    check("States.ArrayLength($.a)", json!({"a": [5, 6]}), json!(2));
    check(
        "States.ArrayUnique($.a)",
        json!({"a": [1, 2, 1, "1"]}),
        json!([1, 2, "1"]),
    );
    check(
        "States.Base64Decode(States.Base64Encode('Data to encode'))",
        json!({}),
        json!("Data to encode"),
    );
    check(
        "States.Hash('input data', 'SHA-1')",
        json!({}),
        json!("aaff4a450a104cd177d28d18d74485e8cae074b7"),
    );
    check(
        "States.JsonMerge($.a, $.b, false)",
        json!({"a": {"x": 1, "y": 1}, "b": {"y": 2}}),
        json!({"x": 1, "y": 2}),
    );
    check("States.MathAdd($.n, -3)", json!({"n": 10}), json!(7));
    check(
        "States.StringSplit('1,2, 3', ', ')",
        json!({}),
        json!(["1", "2", "3"]),
    );
    check(
        "States.Format('it\\'s {}', States.MathAdd(1, 1))",
        json!({}),
        json!("it's 2"),
    );
}

#[test]
fn failures_are_intrinsic_failures() {
    let (context, variables) = (json!({}), Map::new());
    let scope = Scope {
        context: &context,
        variables: &variables,
    };
    for bad in [
        "States.ArrayGetItem(States.Array(1), 5)",
        "States.Nope()",
        "States.MathAdd('a', 1)",
        "States.Format('{}')",
    ] {
        assert_eq!(
            evaluate(bad, &json!({}), scope).unwrap_err().error,
            "States.IntrinsicFailure",
            "{bad}"
        );
    }
}
