//! Task, Parallel and Map: the work of a state that can fail, with Retry (AWS's defaults, a counter
//! per retrier, backoff on the injected clock) and Catch around it.

use serde_json::{Map, Value, json};

use super::Failure;
use super::body::{Step, output_of, path_input, place_result};
use super::definition::{Kind, Retrier, State};
use super::durable::{CALLBACK_HANDED_BACK, FANOUT_HANDED_BACK, RETRY_HANDED_BACK, callback_base};
use super::paths::{Scope, payload};
use super::run::Runner;

pub(super) fn matches(names: &[String], error: &str) -> bool {
    names.iter().any(|n| {
        n == error
            || (n == "States.ALL" && error != "States.Runtime")
            || (n == "States.TaskFailed" && !error.starts_with("States."))
    })
}

/// A retrier's delay before attempt `attempt` (1-based), in milliseconds.
pub fn retry_delay_ms(retrier: &Retrier, attempt: u32) -> i64 {
    let mut delay =
        retrier.interval_seconds * retrier.backoff_rate.powi(attempt.saturating_sub(1) as i32);
    if let Some(max) = retrier.max_delay_seconds {
        delay = delay.min(max);
    }
    if retrier.full_jitter {
        delay *= rand::random::<f64>();
    }
    (delay * 1000.0).round() as i64
}

impl Runner<'_> {
    /// Task, Parallel and Map: the work, with Retry and Catch around it.
    pub(super) fn with_retries(
        &mut self,
        state: &State,
        raw: &Value,
        variables: &mut Map<String, Value>,
        context: &Value,
        map_item: Option<&(usize, Value)>,
    ) -> Result<Step, Failure> {
        let mut attempts = self
            .resumed_attempts(state)
            .filter(|a| a.len() == state.retry.len())
            .unwrap_or_else(|| vec![0_u32; state.retry.len()]);
        loop {
            let scope = Scope { context, variables };
            let result = match &state.jsonata {
                Some(_) => self.work(state, raw, variables, context, map_item),
                None => path_input(&state.input_path, raw, scope)
                    .and_then(|input| self.work(state, &input, variables, context, map_item)),
            };
            let failure = match result {
                Ok(result) if state.jsonata.is_some() => {
                    let output =
                        self.jsonata_outcome(state, None, raw, result.clone(), variables, context)?;
                    return Ok(Step::Next(output, state.next.clone(), result));
                }
                Ok(result) => {
                    let scope = Scope { context, variables };
                    let result = match &state.result_selector {
                        Some(selector) => payload(selector, &result, scope)?,
                        None => result,
                    };
                    let output = output_of(
                        &state.output_path,
                        place_result(&state.result_path, raw, result.clone())?,
                        scope,
                    )?;
                    return Ok(Step::Next(output, state.next.clone(), result));
                }
                Err(failure) if failure.error == CALLBACK_HANDED_BACK => {
                    self.waiting_with(state, &attempts);
                    return Err(failure);
                }
                Err(failure) if failure.error == FANOUT_HANDED_BACK => {
                    self.fanned_out_with(state, &attempts);
                    return Err(failure);
                }
                Err(failure) => failure,
            };
            if let Some(index) = state
                .retry
                .iter()
                .position(|r| matches(&r.error_equals, &failure.error))
            {
                let retrier = &state.retry[index];
                if attempts[index] < retrier.max_attempts {
                    attempts[index] += 1;
                    let delay = retry_delay_ms(retrier, attempts[index]);
                    if self.hand_back_retry(state, delay, &attempts) {
                        return Err(Failure::new(RETRY_HANDED_BACK, failure.cause));
                    }
                    self.clock.sleep_ms(delay);
                    continue;
                }
            }
            // Parallel and Map record their failure once it leaves the state (not per attempt);
            // a field of their own that cannot be read (States.Runtime) fails the execution
            // without it, as in Step Functions.
            if matches!(state.kind, Kind::Parallel { .. } | Kind::Map { .. })
                && failure.error != "States.Runtime"
            {
                self.event(
                    &format!("{}StateFailed", state.kind.type_name()),
                    Some(&state.name),
                    json!({"error": failure.error, "cause": failure.cause}),
                );
            }
            if let Some(catcher) = state
                .catch
                .iter()
                .find(|c| matches(&c.error_equals, &failure.error))
            {
                let error_output = json!({"Error": failure.error, "Cause": failure.cause});
                let output = match &state.jsonata {
                    Some(_) => self.jsonata_outcome(
                        state,
                        Some(catcher),
                        raw,
                        error_output,
                        variables,
                        context,
                    )?,
                    None => place_result(&catcher.result_path, raw, error_output)?,
                };
                return Ok(Step::Caught(output, catcher.clone()));
            }
            return Err(failure);
        }
    }

    fn work(
        &mut self,
        state: &State,
        input: &Value,
        variables: &mut Map<String, Value>,
        context: &Value,
        map_item: Option<&(usize, Value)>,
    ) -> Result<Value, Failure> {
        let scope = Scope { context, variables };
        let name = state.name.as_str();
        match &state.kind {
            Kind::Task {
                resource,
                timeout_seconds,
                heartbeat_seconds,
                ..
            } => {
                let callback = callback_base(resource);
                if callback.is_some()
                    && let Some(answer) = self.answered(state)
                {
                    return answer;
                }
                let parameters = match (&state.jsonata, &state.parameters) {
                    (Some(fields), _) => {
                        self.jsonata_arguments(state, fields, input, variables, context)?
                    }
                    (None, Some(parameters)) => payload(parameters, input, scope)?,
                    (None, None) => input.clone(),
                };
                if let Some(job) = callback {
                    // The job submits the work within TimeoutSeconds; the heartbeat is the
                    // answerer's (SendTaskHeartbeat), kept by the executor while it waits.
                    let limits = super::runtime::Limits {
                        timeout: timeout_seconds.map(std::time::Duration::from_secs_f64),
                        heartbeat: None,
                    };
                    return self.submit(state, resource, &parameters, |runner| {
                        runner.tasks.run(job, &parameters, limits)
                    });
                }
                self.event(
                    "LambdaFunctionScheduled",
                    Some(name),
                    json!({"resource": resource, "input": parameters}),
                );
                self.event("LambdaFunctionStarted", Some(name), json!({}));
                let limits = super::runtime::Limits {
                    timeout: timeout_seconds.map(std::time::Duration::from_secs_f64),
                    heartbeat: heartbeat_seconds.map(std::time::Duration::from_secs_f64),
                };
                match self.tasks.run(resource, &parameters, limits) {
                    Ok(output) => {
                        self.event(
                            "LambdaFunctionSucceeded",
                            Some(name),
                            json!({"output": output}),
                        );
                        Ok(output)
                    }
                    Err(failure) => {
                        self.task_failed("LambdaFunction", name, &failure);
                        Err(failure)
                    }
                }
            }
            Kind::Parallel { branches } => {
                self.parallel(state, branches, input, variables, context, map_item)
            }
            Kind::Map { .. } => self.map(state, input, variables, context),
            _ => unreachable!("only Task, Parallel and Map do work"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::definition::StateMachine;
    use super::super::run::{ExecutionInfo, Outcome, Status, TestTasks, VirtualClock, run};
    use serde_json::{Value, json};

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
    fn retries_back_off_as_configured_with_a_counter_per_retrier() {
        let definition = json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": "sluice:fail", "Parameters": {"Error": "Flaky", "Cause": "again"},
            "Retry": [
                {"ErrorEquals": ["Other"], "MaxAttempts": 5},
                {"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 3, "MaxDelaySeconds": 3}
            ],
            "End": true}}});
        let (outcome, clock) = execute(definition, json!({}));
        assert_eq!(outcome.failure.unwrap().error, "Flaky");
        assert_eq!(
            clock.sleeps,
            [1000, 2000, 3000],
            "1 s, then ×2, capped at MaxDelaySeconds"
        );
        let attempts = outcome
            .events
            .iter()
            .filter(|e| e.kind == "LambdaFunctionScheduled")
            .count();
        assert_eq!(attempts, 4, "the first try and three retries");
    }

    #[test]
    fn map_tolerates_failures_up_to_its_threshold() {
        let map = |tolerated: Value| {
            let mut definition = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": {"StartAt": "C", "States": {
                "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericLessThan": 0, "Next": "Bad"}], "Default": "Ok"},
                "Bad": {"Type": "Fail", "Error": "Negative"},
                "Ok": {"Type": "Succeed"}}}, "End": true}}});
            if let Value::Object(extra) = tolerated {
                definition["States"]["M"]
                    .as_object_mut()
                    .unwrap()
                    .extend(extra);
            }
            definition
        };
        let items = json!([1, -1, 2, -2]);
        let (strict, _) = execute(map(json!({})), items.clone());
        assert_eq!(strict.failure.unwrap().error, "Negative");
        let (tolerant, _) = execute(map(json!({"ToleratedFailureCount": 2})), items.clone());
        assert_eq!(tolerant.status, Status::Succeeded);
        assert_eq!(
            tolerant.output.unwrap()[1]["Error"],
            "Negative",
            "a failed item's output is its error"
        );
        let (exceeded, _) = execute(map(json!({"ToleratedFailurePercentage": 25})), items);
        assert_eq!(
            exceeded.failure.unwrap().error,
            "States.ExceedToleratedFailureThreshold"
        );
    }
}
