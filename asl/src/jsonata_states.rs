//! What a state written in JSONata does with its input: no paths, but `Arguments` (a Task's or
//! Parallel's input), `Output` and `Assign`, evaluated against `$states` (`input`, `result` or
//! `errorOutput`, `context`) and the variables as they were when the state was entered; Choice
//! `Condition`s; Map `Items`; and numbers, times, errors and causes given as expressions.
//! Task, Parallel and Map run through the same retries as JSONPath states (`task.rs`).

use serde_json::{Map, Value, json};

use super::Failure;
use super::body::Step;
use super::choice::evaluate;
use super::definition::{Catcher, Jsonata, Kind, State};
use super::jsonata::{self, Bindings};
use super::paths::Scope;
use super::run::{Runner, state_error};

impl Runner<'_> {
    /// Records a failed JSONata evaluation as Step Functions does (`EvaluationFailed`) and
    /// passes the failure on.
    pub(super) fn evaluation_failed(&mut self, state: &str, failure: Failure) -> Failure {
        if failure.error == jsonata::ERROR {
            self.event(
                "EvaluationFailed",
                Some(state),
                json!({"error": failure.error, "cause": failure.cause, "state": state}),
            );
        }
        failure
    }

    /// A value given for `field`, its expressions evaluated.
    pub(super) fn jsonata_value(
        &mut self,
        state: &str,
        value: &Value,
        field: &str,
        bindings: Bindings<'_>,
    ) -> Result<Value, Failure> {
        jsonata::template(value, field, bindings).map_err(|f| self.evaluation_failed(state, f))
    }

    /// A state's output and its assignments, evaluated together against the variables as they
    /// were (then assigned): `Output` (default `default`) and `Assign`.
    pub(super) fn jsonata_finish(
        &mut self,
        state: &State,
        assign: Option<&Value>,
        output: Option<&Value>,
        states: &Value,
        variables: &mut Map<String, Value>,
        default: Value,
    ) -> Result<Value, Failure> {
        let bindings = Bindings { states, variables };
        let assigned = match assign {
            Some(assign) => Some(self.jsonata_value(&state.name, assign, "Assign", bindings)?),
            None => None,
        };
        let output = match output {
            Some(output) => self.jsonata_value(&state.name, output, "Output", bindings)?,
            None => default,
        };
        if let Some(Value::Object(values)) = assigned {
            variables.extend(values);
        }
        Ok(output)
    }

    /// [`Runner::jsonata_finish`] with the state's own `Assign` and `Output`.
    fn jsonata_own_output(
        &mut self,
        state: &State,
        fields: &Jsonata,
        states: &Value,
        variables: &mut Map<String, Value>,
        default: Value,
    ) -> Result<Value, Failure> {
        let (assign, output) = (state.assign.as_ref(), fields.output.as_ref());
        self.jsonata_finish(state, assign, output, states, variables, default)
    }

    /// A JSONata state's body (Task, Parallel and Map through [`Runner::with_retries`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn jsonata_body(
        &mut self,
        state: &State,
        fields: &Jsonata,
        raw: &Value,
        variables: &mut Map<String, Value>,
        context: &Value,
        map_item: Option<&(usize, Value)>,
        entered_id: usize,
    ) -> Result<Step, Failure> {
        let name = state.name.as_str();
        let states = jsonata::states(raw, context);
        match &state.kind {
            Kind::Pass { result } => {
                let default = result.clone().unwrap_or_else(|| raw.clone());
                let output = self.jsonata_own_output(state, fields, &states, variables, default)?;
                Ok(Step::Next(output, state.next.clone(), Value::Null))
            }
            Kind::Succeed => {
                let output =
                    self.jsonata_own_output(state, fields, &states, variables, raw.clone())?;
                Ok(Step::Next(output, None, Value::Null))
            }
            Kind::Fail { error, cause, .. } => {
                let bindings = Bindings {
                    states: &states,
                    variables,
                };
                let mut text = |given: &Option<String>, field: &str| -> Result<String, Failure> {
                    let Some(given) = given else {
                        return Ok(String::new());
                    };
                    Ok(
                        match self.jsonata_value(
                            name,
                            &Value::String(given.clone()),
                            field,
                            bindings,
                        )? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                    )
                };
                let error = text(error, "Error")?;
                let cause = text(cause, "Cause")?;
                Err(Failure::new(error, cause))
            }
            Kind::Wait {
                seconds, timestamp, ..
            } => {
                let bindings = Bindings {
                    states: &states,
                    variables,
                };
                let at = |message: String| state_error(jsonata::ERROR, name, entered_id, &message);
                let now = self.clock.now_ms();
                let until = if let Some(given) = fields.expressions.get("Seconds") {
                    let value = self.jsonata_value(name, given, "Seconds", bindings)?;
                    match value.as_i64().filter(|s| *s >= 0) {
                        Some(s) => now + s * 1000,
                        None => {
                            let failure = at(format!(
                                "The Seconds field must be a non-negative integer, got: {value}"
                            ));
                            return Err(self.evaluation_failed(name, failure));
                        }
                    }
                } else if let Some(given) = fields.expressions.get("Timestamp") {
                    let value = self.jsonata_value(name, given, "Timestamp", bindings)?;
                    let text = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    match super::body::parse_time(&text) {
                        Some(t) => t,
                        None => {
                            let failure = at(format!(
                                "The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {text}"
                            ));
                            return Err(self.evaluation_failed(name, failure));
                        }
                    }
                } else if let Some(s) = seconds {
                    now + (s * 1000.0) as i64
                } else if let Some(t) = timestamp {
                    super::body::parse_time(t).unwrap_or(now)
                } else {
                    now
                };
                if until > now {
                    self.clock.sleep_ms(until - now);
                }
                let output =
                    self.jsonata_own_output(state, fields, &states, variables, raw.clone())?;
                Ok(Step::Next(output, state.next.clone(), Value::Null))
            }
            Kind::Choice { choices, default } => {
                let mut matched = None;
                for choice in choices {
                    let scope = Scope { context, variables };
                    let holds = evaluate(&choice.rule, raw, scope)
                        .map_err(|f| self.evaluation_failed(name, f))?;
                    if holds {
                        matched = Some(choice);
                        break;
                    }
                }
                let (next, assign, output) = match matched {
                    Some(choice) => (
                        choice.next.clone(),
                        choice.assign.as_ref(),
                        choice.output.as_ref().or(fields.output.as_ref()),
                    ),
                    None => (
                        default.clone().ok_or_else(|| {
                            Failure::new(
                                "States.NoChoiceMatched",
                                format!(
                                    "no choice rule matched and there is no Default in state {name}"
                                ),
                            )
                        })?,
                        state.assign.as_ref(),
                        fields.output.as_ref(),
                    ),
                };
                let output =
                    self.jsonata_finish(state, assign, output, &states, variables, raw.clone())?;
                Ok(Step::Next(output, Some(next), Value::Null))
            }
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map { .. } => {
                self.with_retries(state, raw, variables, context, map_item)
            }
        }
    }

    /// A JSONata Task's, Parallel's or Map's outcome made its output: its result
    /// (`$states.result`, the state's `Output` and `Assign`), or with `caught`, the failure a
    /// Catch rule caught (`$states.errorOutput`, the rule's `Output` and `Assign`); either
    /// defaults to that value.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn jsonata_outcome(
        &mut self,
        state: &State,
        caught: Option<&Catcher>,
        raw: &Value,
        value: Value,
        variables: &mut Map<String, Value>,
        context: &Value,
    ) -> Result<Value, Failure> {
        let (key, assign, output) = match caught {
            Some(catcher) => (
                "errorOutput",
                catcher.assign.as_ref(),
                catcher.output.as_ref(),
            ),
            None => (
                "result",
                state.assign.as_ref(),
                state.jsonata.as_ref().and_then(|f| f.output.as_ref()),
            ),
        };
        let states = json!({"input": raw, key: value, "context": context});
        self.jsonata_finish(state, assign, output, &states, variables, value)
    }

    /// A JSONata Task's or Parallel's input: its `Arguments` (default: the state's input).
    pub(super) fn jsonata_arguments(
        &mut self,
        state: &State,
        fields: &Jsonata,
        input: &Value,
        variables: &Map<String, Value>,
        context: &Value,
    ) -> Result<Value, Failure> {
        match &fields.arguments {
            Some(arguments) => {
                let states = jsonata::states(input, context);
                let bindings = Bindings {
                    states: &states,
                    variables,
                };
                self.jsonata_value(&state.name, arguments, "Arguments", bindings)
            }
            None => Ok(input.clone()),
        }
    }

    /// A number given to a JSONata Map as an expression (`ToleratedFailureCount`, ...), or the
    /// literal one.
    pub(super) fn jsonata_number(
        &mut self,
        state: &State,
        fields: &Jsonata,
        field: &str,
        literal: Option<f64>,
        bindings: Bindings<'_>,
    ) -> Result<Option<f64>, Failure> {
        let Some(given) = fields.expressions.get(field) else {
            return Ok(literal);
        };
        let value = self.jsonata_value(&state.name, given, field, bindings)?;
        let value = jsonata::expect(value, given, field, "number")
            .map_err(|f| self.evaluation_failed(&state.name, f))?;
        Ok(value.as_f64())
    }

    /// A JSONata Map's items: `Items` evaluated (an array), or the state's input (an array).
    pub(super) fn jsonata_items(
        &mut self,
        state: &State,
        fields: &Jsonata,
        input: &Value,
        bindings: Bindings<'_>,
    ) -> Result<Vec<Value>, Failure> {
        let items = match &fields.items {
            Some(given) => {
                let value = self.jsonata_value(&state.name, given, "Items", bindings)?;
                jsonata::expect(value, given, "Items", "array")
                    .map_err(|f| self.evaluation_failed(&state.name, f))?
            }
            None if input.is_array() => input.clone(),
            None => {
                let failure = Failure::new(
                    jsonata::ERROR,
                    format!("Map state input must be an array but was: {input}"),
                );
                return Err(self.evaluation_failed(&state.name, failure));
            }
        };
        match items {
            Value::Array(items) => Ok(items),
            _ => unreachable!("checked to be an array"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::definition::StateMachine;
    use super::super::run::{ExecutionInfo, Outcome, Status, TestTasks, VirtualClock, run};

    fn execute(definition: Value, input: Value) -> Outcome {
        let machine = StateMachine::parse(&definition).unwrap();
        let info = ExecutionInfo {
            name: "t".into(),
            state_machine: "t".into(),
        };
        let mut clock = VirtualClock::starting_at(0);
        run(&machine, input, &info, &mut TestTasks, &mut clock)
    }

    #[test]
    fn a_jsonata_task_takes_its_arguments_and_gives_its_output() {
        // Once validated and run with JSONPath semantics, giving the input back.
        let outcome = execute(
            json!({"StartAt": "Sum", "States": {"Sum": {
                "Type": "Task", "Resource": "sluice:echo", "QueryLanguage": "JSONata",
                "Arguments": {"sum": "{% $states.input.a + $states.input.b %}"}, "End": true}}}),
            json!({"a": 1, "b": 2}),
        );
        assert_eq!(outcome.output, Some(json!({"sum": 3})));
        let outcome = execute(
            json!({"QueryLanguage": "JSONata", "StartAt": "T", "States": {"T": {
                "Type": "Task", "Resource": "sluice:echo", "Arguments": {"n": 2},
                "Assign": {"doubled": "{% $states.result.n * 2 %}"},
                "Output": {"n": "{% $states.result.n %}", "input": "{% $states.input %}"},
                "Next": "P"},
                "P": {"Type": "Pass", "Output": "{% [$doubled, $states.input.n] %}", "End": true}}}),
            json!({"x": 1}),
        );
        assert_eq!(outcome.output, Some(json!([4, 2])));
    }

    #[test]
    fn assign_and_output_see_the_variables_as_they_were() {
        let outcome = execute(
            json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {
                "A": {"Type": "Pass", "Assign": {"v": 1}, "Next": "B"},
                "B": {"Type": "Pass", "Assign": {"v": "{% $v + 1 %}"}, "Output": {"seen": "{% $v %}"}, "Next": "C"},
                "C": {"Type": "Pass", "Output": {"before": "{% $states.input.seen %}", "now": "{% $v %}"}, "End": true}}}),
            json!({}),
        );
        assert_eq!(outcome.output, Some(json!({"before": 1, "now": 2})));
    }

    #[test]
    fn conditions_choose_and_catchers_see_the_error_output() {
        let definition = json!({"QueryLanguage": "JSONata", "StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [
                {"Condition": "{% $states.input.n > 1 %}", "Next": "Fail", "Output": {"big": true}}],
                "Default": "Small"},
            "Small": {"Type": "Succeed", "Output": "small"},
            "Fail": {"Type": "Task", "Resource": "sluice:fail",
                "Arguments": {"Error": "TooBig", "Cause": "{% 'n is ' & $string($states.input.big) %}"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught",
                           "Output": {"error": "{% $states.errorOutput.Error %}", "cause": "{% $states.errorOutput.Cause %}"}}],
                "End": true},
            "Caught": {"Type": "Pass", "End": true}}});
        let small = execute(definition.clone(), json!({"n": 1}));
        assert_eq!(small.output, Some(json!("small")));
        let big = execute(definition, json!({"n": 2}));
        assert_eq!(
            big.output,
            Some(json!({"error": "TooBig", "cause": "n is true"}))
        );
        let not_boolean = execute(
            json!({"QueryLanguage": "JSONata", "StartAt": "C", "States": {
                "C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.n %}", "Next": "E"}], "Default": "E"},
                "E": {"Type": "Succeed"}}}),
            json!({"n": 3}),
        );
        assert_eq!(not_boolean.status, Status::Failed);
        let failure = not_boolean.failure.unwrap();
        assert_eq!(failure.error, "States.QueryEvaluationError");
        assert!(
            failure.cause.ends_with("The JSONata expression '$states.input.n' specified for the field 'Condition' returned an unexpected result type. Expected 'boolean', but was 'number' for value: 3"),
            "{}",
            failure.cause
        );
        assert!(
            not_boolean
                .events
                .iter()
                .any(|e| e.kind == "EvaluationFailed")
        );
    }

    #[test]
    fn a_jsonata_map_takes_its_items_and_selects_each() {
        let outcome = execute(
            json!({"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {
                "Type": "Map", "Items": "{% $states.input.xs %}",
                "ItemSelector": {"x": "{% $states.context.Map.Item.Value %}", "i": "{% $states.context.Map.Item.Index %}"},
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% $states.input.x * 10 + $states.input.i %}", "End": true}}},
                "Output": {"sum": "{% $sum($states.result) %}"},
                "End": true}}}),
            json!({"xs": [1, 2, 3]}),
        );
        assert_eq!(outcome.output, Some(json!({"sum": 63})));
    }
}
