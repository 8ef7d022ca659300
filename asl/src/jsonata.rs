//! JSONata as Step Functions uses it: `{% expression %}` strings anywhere a JSONata state takes a
//! value (`Arguments`, `Output`, `Assign`, `Items`, `Condition`, ...), evaluated by the
//! `jsonata-core` crate with `$states` (`input`, `result`, `errorOutput`, `context`) and the
//! workflow's variables bound, Step Functions' own functions (`$partition`, `$range`, `$hash`,
//! `$random` with a seed, `$uuid`, `$parse`) added, and `$eval` refused.
//!
//! Failures are `States.QueryEvaluationError`, with Step Functions' causes: the expression, the
//! field it was given for (`Output/result`), and what went wrong.

use jsonata_core::evaluator::{Context, Evaluator, EvaluatorError};
use jsonata_core::value::JValue;
use serde_json::{Map, Value};

use super::Failure;
use super::intrinsics;

/// The error a JSONata expression's failure raises.
pub const ERROR: &str = "States.QueryEvaluationError";

/// The expression of a `{% ... %}` string, if the string is one.
pub fn expression(text: &str) -> Option<&str> {
    text.strip_prefix("{%")?.strip_suffix("%}").map(str::trim)
}

/// What an expression sees: `$states` and the variables.
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    /// `{"input", "context", "result"?, "errorOutput"?}`.
    pub states: &'a Value,
    pub variables: &'a Map<String, Value>,
}

/// `$states` for a state's input and context.
pub fn states(input: &Value, context: &Value) -> Value {
    serde_json::json!({"input": input, "context": context})
}

fn failure(cause: String) -> Failure {
    Failure::new(ERROR, cause)
}

/// The message of an evaluator error as JSONata's reference implementation words it (which
/// Step Functions shows): the error code and its text, without the crate's category prefix or
/// the name it adds to T1006.
fn message(err: &EvaluatorError) -> String {
    let text = match err {
        EvaluatorError::TypeError(m)
        | EvaluatorError::ReferenceError(m)
        | EvaluatorError::EvaluationError(m) => m.clone(),
        #[allow(unreachable_patterns)]
        other => other.to_string(),
    };
    const NON_FUNCTION: &str = "T1006: Attempted to invoke a non-function";
    if text.starts_with(NON_FUNCTION) {
        NON_FUNCTION.to_owned()
    } else {
        text
    }
}

/// A JSONata number as JSON: whole numbers as integers, as Step Functions writes them.
fn to_json(value: &JValue) -> Value {
    match value {
        JValue::Number(n) if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 => {
            Value::from(*n as i64)
        }
        JValue::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        JValue::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        other => Value::from(other),
    }
}

fn host_error(function: &str, failure: Failure) -> EvaluatorError {
    EvaluatorError::EvaluationError(format!("${function}: {}", failure.cause))
}

/// Step Functions' functions over the intrinsic they mirror.
fn via_intrinsic(
    function: &'static str,
    intrinsic: &'static str,
) -> impl Fn(&[JValue]) -> Result<JValue, EvaluatorError> {
    move |args: &[JValue]| {
        let values = args.iter().map(to_json).collect();
        intrinsics::apply(intrinsic, values)
            .map(JValue::from)
            .map_err(|f| host_error(function, f))
    }
}

fn evaluator(bindings: Bindings<'_>) -> Result<Evaluator, EvaluatorError> {
    let mut context = Context::new();
    context.bind("states".to_owned(), JValue::from(bindings.states.clone()));
    for (name, value) in bindings.variables {
        context.bind(name.clone(), JValue::from(value.clone()));
    }
    let mut evaluator = Evaluator::with_context(context);
    evaluator.register_fn(
        "partition",
        via_intrinsic("partition", "States.ArrayPartition"),
    )?;
    // A range of one number is that number, as JSONata's sequences collapse in Step Functions.
    let range = via_intrinsic("range", "States.ArrayRange");
    evaluator.register_fn("range", move |args: &[JValue]| {
        Ok(match range(args)? {
            JValue::Array(items) if items.len() == 1 => items[0].clone(),
            other => other,
        })
    })?;
    evaluator.register_fn("hash", via_intrinsic("hash", "States.Hash"))?;
    evaluator.register_fn("uuid", via_intrinsic("uuid", "States.UUID"))?;
    evaluator.register_fn("parse", via_intrinsic("parse", "States.StringToJson"))?;
    evaluator.register_fn_override("random", |args: &[JValue]| {
        use rand::{Rng, SeedableRng};
        let draw = match args.first() {
            Some(JValue::Number(seed)) => {
                rand_chacha::ChaCha8Rng::seed_from_u64(seed.to_bits()).random::<f64>()
            }
            Some(other) => {
                return Err(EvaluatorError::TypeError(format!(
                    "$random: the seed is a number, got {}",
                    to_json(other)
                )));
            }
            None => rand::random::<f64>(),
        };
        Ok(JValue::Number(draw))
    })?;
    evaluator.register_fn_override("eval", |_: &[JValue]| {
        Err(EvaluatorError::EvaluationError(
            "$eval is not available in Step Functions".to_owned(),
        ))
    })?;
    Ok(evaluator)
}

/// Evaluates one expression given for `field`; nothing (undefined) is an error, as in Step
/// Functions.
pub fn evaluate(expression: &str, field: &str, bindings: Bindings<'_>) -> Result<Value, Failure> {
    let threw = |err: &dyn std::fmt::Display| {
        failure(format!(
            "The JSONata expression '{expression}' specified for the field '{field}' threw an error during evaluation. {err}"
        ))
    };
    let ast = jsonata_core::parser::parse(expression).map_err(|e| threw(&e))?;
    let mut evaluator = evaluator(bindings).map_err(|e| threw(&message(&e)))?;
    let result = evaluator
        .evaluate(&ast, &JValue::Undefined)
        .map_err(|e| threw(&message(&e)))?;
    if matches!(result, JValue::Undefined) {
        return Err(failure(format!(
            "The JSONata expression '{expression}' specified for the field '{field}' returned nothing (undefined)."
        )));
    }
    Ok(to_json(&result))
}

/// A value given for `field` with its `{% %}` strings evaluated, in objects and arrays too.
pub fn template(value: &Value, field: &str, bindings: Bindings<'_>) -> Result<Value, Failure> {
    match value {
        Value::String(text) => match expression(text) {
            Some(expr) => evaluate(expr, field, bindings),
            None => Ok(value.clone()),
        },
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, item) in map {
                out.insert(
                    key.clone(),
                    template(item, &format!("{field}/{key}"), bindings)?,
                );
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| template(item, &format!("{field}[{i}]"), bindings))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// Step Functions' name of a JSON value's type, as its errors print it.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value that must be of one type: `Items` an array, `Condition` a boolean, ...
pub fn expect(value: Value, given: &Value, field: &str, expected: &str) -> Result<Value, Failure> {
    if type_name(&value) == expected {
        return Ok(value);
    }
    let shown = match given {
        Value::String(text) => expression(text).unwrap_or(text).to_owned(),
        other => other.to_string(),
    };
    Err(failure(format!(
        "The JSONata expression '{shown}' specified for the field '{field}' returned an unexpected result type. Expected '{expected}', but was '{}' for value: {value}",
        type_name(&value)
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(expr: &str, input: Value) -> Result<Value, Failure> {
        let variables: Map<String, Value> = json!({"limit": 2}).as_object().unwrap().clone();
        let states = states(&input, &json!({"Execution": {"Name": "e"}}));
        evaluate(
            expr,
            "Output",
            Bindings {
                states: &states,
                variables: &variables,
            },
        )
    }

    #[test]
    fn expressions_see_states_and_variables() {
        assert_eq!(expression("{% 1 + 1 %}"), Some("1 + 1"));
        assert_eq!(expression("{ 1 }"), None);
        assert_eq!(
            eval("$sum($states.input.n) + $limit", json!({"n": [1, 2]})).unwrap(),
            json!(5)
        );
        assert_eq!(
            eval("$states.context.Execution.Name", json!({})).unwrap(),
            json!("e")
        );
        assert_eq!(
            eval("$partition([1,2,3], 2)", json!({})).unwrap(),
            json!([[1, 2], [3]])
        );
        assert_eq!(
            eval("$range(0, 6, 3)", json!({})).unwrap(),
            json!([0, 3, 6])
        );
        assert_eq!(eval("$parse('{\"a\": 1}').a", json!({})).unwrap(), json!(1));
        assert_eq!(
            eval("$random(7) = $random(7)", json!({})).unwrap(),
            json!(true)
        );
    }

    #[test]
    fn failures_name_the_expression_and_the_field() {
        let undefined = eval("$states.input.missing", json!({})).unwrap_err();
        assert_eq!(undefined.error, ERROR);
        assert_eq!(
            undefined.cause,
            "The JSONata expression '$states.input.missing' specified for the field 'Output' returned nothing (undefined)."
        );
        let refused = eval("$eval('1 + 1')", json!({})).unwrap_err();
        assert!(
            refused.cause.contains("$eval is not available"),
            "{refused}"
        );
        let typed = expect(json!(1), &json!("{% 1 %}"), "Items", "array").unwrap_err();
        assert_eq!(
            typed.cause,
            "The JSONata expression '1' specified for the field 'Items' returned an unexpected result type. Expected 'array', but was 'number' for value: 1"
        );
    }
}
