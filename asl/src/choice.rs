//! Choice rules: every comparison operator of ASL (and its `…Path` form), `And`/`Or`/`Not`, the
//! `Is*` type tests and `StringMatches` with `*` wildcards.

use serde_json::Value;

use super::Failure;
use super::definition::ValidationError;
use super::jsonata;
use super::paths::{Scope, query};

/// A comparison's right-hand side.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Path(String),
}

/// The comparison operators (without their `Path` suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

const OPS: [(&str, Op); 23] = [
    ("StringEquals", Op::StringEquals),
    ("StringLessThan", Op::StringLessThan),
    ("StringGreaterThan", Op::StringGreaterThan),
    ("StringLessThanEquals", Op::StringLessThanEquals),
    ("StringGreaterThanEquals", Op::StringGreaterThanEquals),
    ("StringMatches", Op::StringMatches),
    ("NumericEquals", Op::NumericEquals),
    ("NumericLessThan", Op::NumericLessThan),
    ("NumericGreaterThan", Op::NumericGreaterThan),
    ("NumericLessThanEquals", Op::NumericLessThanEquals),
    ("NumericGreaterThanEquals", Op::NumericGreaterThanEquals),
    ("BooleanEquals", Op::BooleanEquals),
    ("TimestampEquals", Op::TimestampEquals),
    ("TimestampLessThan", Op::TimestampLessThan),
    ("TimestampGreaterThan", Op::TimestampGreaterThan),
    ("TimestampLessThanEquals", Op::TimestampLessThanEquals),
    ("TimestampGreaterThanEquals", Op::TimestampGreaterThanEquals),
    ("IsNull", Op::IsNull),
    ("IsPresent", Op::IsPresent),
    ("IsNumeric", Op::IsNumeric),
    ("IsString", Op::IsString),
    ("IsBoolean", Op::IsBoolean),
    ("IsTimestamp", Op::IsTimestamp),
];

/// A Boolean expression of a Choice state.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Compare {
        variable: String,
        op: Op,
        operand: Operand,
    },
    /// A JSONata choice's `Condition`: a `{% %}` expression (or a literal) that must be a boolean.
    Condition(Value),
}

/// A top-level choice: a rule and where it leads.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub rule: Rule,
    pub next: String,
    pub assign: Option<Value>,
    /// A JSONata choice's output when it matches (default: the state's `Output`, else its input).
    pub output: Option<Value>,
}

/// Parses one rule; `pointer` names it in errors. A JSONata state's rule is a `Condition`.
pub fn parse_rule(value: &Value, pointer: &str, jsonata: bool) -> Result<Rule, ValidationError> {
    let error = |message: String| ValidationError {
        pointer: pointer.to_owned(),
        message,
    };
    let map = value
        .as_object()
        .ok_or_else(|| error("a choice rule is an object".into()))?;
    if jsonata {
        return match map.get("Condition") {
            Some(condition @ (Value::String(_) | Value::Bool(_))) => {
                Ok(Rule::Condition(condition.clone()))
            }
            Some(_) => Err(ValidationError {
                pointer: format!("{pointer}/Condition"),
                message: "is a {% %} expression or a boolean".into(),
            }),
            None => Err(error(
                "a JSONata choice rule has a Condition (Variable and comparison operators are JSONPath)".into(),
            )),
        };
    }
    if map.contains_key("Condition") {
        return Err(ValidationError {
            pointer: format!("{pointer}/Condition"),
            message: "is a JSONata field: set \"QueryLanguage\": \"JSONata\" on the state or the state machine".into(),
        });
    }
    let nested = |key: &str| -> Result<Vec<Rule>, ValidationError> {
        let items = map[key]
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| error(format!("{key} is a non-empty array")))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_rule(item, &format!("{pointer}/{key}/{i}"), false))
            .collect()
    };
    if map.contains_key("And") {
        return Ok(Rule::And(nested("And")?));
    }
    if map.contains_key("Or") {
        return Ok(Rule::Or(nested("Or")?));
    }
    if let Some(inner) = map.get("Not") {
        return Ok(Rule::Not(Box::new(parse_rule(
            inner,
            &format!("{pointer}/Not"),
            false,
        )?)));
    }
    let variable = map
        .get("Variable")
        .and_then(Value::as_str)
        .filter(|v| v.starts_with('$'))
        .ok_or_else(|| error("a comparison has a Variable path starting with '$'".into()))?
        .to_owned();
    let mut found = None;
    for (name, op) in OPS {
        if let Some(operand) = map.get(name) {
            found = Some((op, Operand::Literal(operand.clone())));
        } else if let Some(path) = map.get(&format!("{name}Path")) {
            let path = path
                .as_str()
                .ok_or_else(|| error(format!("{name}Path is a path string")))?;
            found = Some((op, Operand::Path(path.to_owned())));
        }
    }
    let (op, operand) = found.ok_or_else(|| {
        error("no comparison operator (StringEquals, NumericLessThan, IsPresent, ...)".into())
    })?;
    let literal_ok = match (&operand, op) {
        (Operand::Path(_), _) => true,
        (
            Operand::Literal(v),
            Op::StringEquals
            | Op::StringLessThan
            | Op::StringGreaterThan
            | Op::StringLessThanEquals
            | Op::StringGreaterThanEquals
            | Op::StringMatches,
        ) => v.is_string(),
        (
            Operand::Literal(v),
            Op::NumericEquals
            | Op::NumericLessThan
            | Op::NumericGreaterThan
            | Op::NumericLessThanEquals
            | Op::NumericGreaterThanEquals,
        ) => v.is_number(),
        (
            Operand::Literal(v),
            Op::TimestampEquals
            | Op::TimestampLessThan
            | Op::TimestampGreaterThan
            | Op::TimestampLessThanEquals
            | Op::TimestampGreaterThanEquals,
        ) => v.as_str().is_some_and(|s| timestamp(s).is_some()),
        (Operand::Literal(v), _) => v.is_boolean(),
    };
    if !literal_ok {
        return Err(error(format!("the operand of {op:?} has the wrong type")));
    }
    Ok(Rule::Compare {
        variable,
        op,
        operand,
    })
}

fn timestamp(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text).ok()
}

/// `*` matches any run of characters; `\*` is a literal star.
fn matches(text: &str, pattern: &str) -> bool {
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('*' | '\\')) => parts
                .last_mut()
                .expect("one part")
                .push(chars.next().expect("peeked")),
            '*' => parts.push(String::new()),
            other => parts.last_mut().expect("one part").push(other),
        }
    }
    if parts.len() == 1 {
        return text == parts[0];
    }
    let (first, last) = (&parts[0], &parts[parts.len() - 1]);
    if !text.starts_with(first.as_str())
        || !text[first.len()..].ends_with(last.as_str())
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle.as_str()) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Evaluates a rule against the state's input.
pub fn evaluate(rule: &Rule, input: &Value, scope: Scope<'_>) -> Result<bool, Failure> {
    match rule {
        Rule::And(rules) => {
            for rule in rules {
                if !evaluate(rule, input, scope)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Or(rules) => {
            for rule in rules {
                if evaluate(rule, input, scope)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Rule::Not(rule) => Ok(!evaluate(rule, input, scope)?),
        Rule::Condition(condition) => {
            let states = jsonata::states(input, scope.context);
            let bindings = jsonata::Bindings {
                states: &states,
                variables: scope.variables,
            };
            let value = jsonata::template(condition, "Condition", bindings)?;
            let value = jsonata::expect(value, condition, "Condition", "boolean")?;
            Ok(value == Value::Bool(true))
        }
        Rule::Compare {
            variable,
            op,
            operand,
        } => {
            let value = query(variable, input, scope);
            if *op == Op::IsPresent {
                return Ok(value.is_ok() == (operand == &Operand::Literal(Value::Bool(true))));
            }
            let value = value?;
            let expected = match operand {
                Operand::Literal(v) => v.clone(),
                Operand::Path(path) => query(path, input, scope)?,
            };
            let flag = expected.as_bool().unwrap_or(false);
            Ok(match op {
                Op::IsNull => value.is_null() == flag,
                Op::IsNumeric => value.is_number() == flag,
                Op::IsString => value.is_string() == flag,
                Op::IsBoolean => value.is_boolean() == flag,
                Op::IsTimestamp => value.as_str().is_some_and(|s| timestamp(s).is_some()) == flag,
                Op::IsPresent => unreachable!("handled above"),
                Op::BooleanEquals => value.is_boolean() && value == expected,
                Op::StringMatches => {
                    matches!((value.as_str(), expected.as_str()), (Some(v), Some(p)) if matches(v, p))
                }
                Op::StringEquals
                | Op::StringLessThan
                | Op::StringGreaterThan
                | Op::StringLessThanEquals
                | Op::StringGreaterThanEquals => match (value.as_str(), expected.as_str()) {
                    (Some(v), Some(e)) => compare(*op, v.cmp(e)),
                    _ => false,
                },
                Op::NumericEquals
                | Op::NumericLessThan
                | Op::NumericGreaterThan
                | Op::NumericLessThanEquals
                | Op::NumericGreaterThanEquals => match (value.as_f64(), expected.as_f64()) {
                    (Some(v), Some(e)) if value.is_number() => {
                        v.partial_cmp(&e).is_some_and(|o| compare(*op, o))
                    }
                    _ => false,
                },
                Op::TimestampEquals
                | Op::TimestampLessThan
                | Op::TimestampGreaterThan
                | Op::TimestampLessThanEquals
                | Op::TimestampGreaterThanEquals => match (
                    value.as_str().and_then(timestamp),
                    expected.as_str().and_then(timestamp),
                ) {
                    (Some(v), Some(e)) => compare(*op, v.cmp(&e)),
                    _ => false,
                },
            })
        }
    }
}

fn compare(op: Op, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match op {
        Op::StringEquals | Op::NumericEquals | Op::TimestampEquals => ordering == Equal,
        Op::StringLessThan | Op::NumericLessThan | Op::TimestampLessThan => ordering == Less,
        Op::StringGreaterThan | Op::NumericGreaterThan | Op::TimestampGreaterThan => {
            ordering == Greater
        }
        Op::StringLessThanEquals | Op::NumericLessThanEquals | Op::TimestampLessThanEquals => {
            ordering != Greater
        }
        Op::StringGreaterThanEquals
        | Op::NumericGreaterThanEquals
        | Op::TimestampGreaterThanEquals => ordering != Less,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn check(rule: Value, input: Value, expect: bool) {
        let (context, variables) = (json!({}), Map::new());
        let rule = parse_rule(&rule, "/Choices/0", false).unwrap();
        assert_eq!(
            evaluate(
                &rule,
                &input,
                Scope {
                    context: &context,
                    variables: &variables
                }
            )
            .unwrap(),
            expect,
            "{rule:?} on {input}"
        );
    }

    #[test]
    fn operators_compare_like_step_functions() {
        check(
            json!({"Variable": "$.v", "NumericEquals": 0}),
            json!({"v": null}),
            false,
        );
        check(
            json!({"Variable": "$.v", "NumericLessThanEqualsPath": "$.w"}),
            json!({"v": 1, "w": 1.0}),
            true,
        );
        check(
            json!({"Variable": "$.v", "StringMatches": "log-*.txt"}),
            json!({"v": "log-2024.txt"}),
            true,
        );
        check(
            json!({"Variable": "$.v", "StringMatches": "a\\*b"}),
            json!({"v": "a*b"}),
            true,
        );
        check(
            json!({"Variable": "$.v", "StringMatches": "a\\*b"}),
            json!({"v": "axb"}),
            false,
        );
        check(
            json!({"Variable": "$.v", "TimestampLessThan": "2024-05-30T00:00:00Z"}),
            json!({"v": "2024-05-29T23:00:00+00:00"}),
            true,
        );
        check(
            json!({"Variable": "$.v", "IsPresent": false}),
            json!({}),
            true,
        );
        check(
            json!({"Variable": "$.v", "IsTimestamp": true}),
            json!({"v": "nope"}),
            false,
        );
        check(
            json!({"Not": {"Variable": "$.v", "BooleanEquals": true}}),
            json!({"v": false}),
            true,
        );
        check(
            json!({"And": [{"Variable": "$.a", "IsNumeric": true}, {"Or": [{"Variable": "$.b", "StringEquals": "x"}]}]}),
            json!({"a": 1, "b": "x"}),
            true,
        );
    }

    #[test]
    fn malformed_rules_name_their_pointer() {
        let err = parse_rule(
            &json!({"Variable": "$.v", "NumericEquals": "1"}),
            "/States/C/Choices/0",
            false,
        )
        .unwrap_err();
        assert_eq!(err.pointer, "/States/C/Choices/0");
        assert!(parse_rule(&json!({"And": []}), "/x", false).is_err());
        assert!(parse_rule(&json!({"Variable": "v", "IsNull": true}), "/x", false).is_err());
    }
}
