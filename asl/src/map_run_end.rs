//! A distributed Map's run, ended: its child executions' results against the failures it
//! tolerates, and its `ResultWriter`: once its Map Run has ended, the child executions' results
//! are written where `Parameters` (or `Arguments`) say, as Step Functions writes them by default:
//! `<Prefix>/<map run id>/SUCCEEDED_0.json`, `FAILED_0.json` and `PENDING_0.json` (each a JSON
//! array of executions, only those that have any) and a `manifest.json` naming them. The Map's
//! output is then `{MapRunArn, ResultWriterDetails: {Bucket, Key}}` (the manifest), not the
//! results. Written again on a retry of the step, to the same keys.

use serde_json::{Map, Value, json};

use super::Failure;
use super::definition::State;
use super::durable::{ChildResult, Fanned, tolerated};
use super::run::{Runner, iso};

fn writer_failed(cause: impl Into<String>) -> Failure {
    Failure::new("States.ResultWriterFailed", cause)
}

impl Runner<'_> {
    /// A Map Run resumed with how its child executions ended (their events are their own).
    pub(super) fn map_run_ended(
        &mut self,
        state: &State,
        fanned: &Fanned,
        thresholds: (Option<u64>, Option<f64>),
    ) -> Result<Value, Failure> {
        let total = fanned.children.len() as u64;
        let mut outputs = Vec::with_capacity(fanned.children.len());
        let mut failed = 0_u64;
        let mut first_failure = None;
        let mut unfinished = None;
        for child in &fanned.children {
            match &child.result {
                Some(Ok(output)) => outputs.push(output.clone()),
                Some(Err(failure)) => {
                    failed += 1;
                    outputs.push(json!({"Error": failure.error, "Cause": failure.cause}));
                    first_failure.get_or_insert(failure.clone());
                }
                None => {
                    unfinished.get_or_insert(&child.execution);
                }
            }
        }
        let (count, percentage) = thresholds;
        if let (Some(execution), true) = (unfinished, tolerated(failed, total, count, percentage)) {
            let failure = Failure::runtime(format!(
                "the child execution {execution} did not run to its end"
            ));
            self.event(
                "MapRunFailed",
                Some(&state.name),
                json!({"error": failure.error, "cause": failure.cause}),
            );
            return Err(failure);
        }
        self.map_run_outcome(state, (outputs, total), failed, first_failure, thresholds)
    }

    /// The Map Run's end: its output, or the threshold's failure, with its event.
    pub(super) fn map_run_outcome(
        &mut self,
        state: &State,
        (outputs, total): (Vec<Value>, u64),
        failed: u64,
        first_failure: Option<Failure>,
        (count, percentage): (Option<u64>, Option<f64>),
    ) -> Result<Value, Failure> {
        let name = state.name.as_str();
        if !tolerated(failed, total, count, percentage) {
            let first = first_failure.expect("a failure was counted");
            let failure = Failure::new(
                "States.ExceedToleratedFailureThreshold",
                format!(
                    "The specified tolerated failure threshold was exceeded: {failed} of {total} child executions failed (the first: {first})"
                ),
            );
            self.event(
                "MapRunFailed",
                Some(name),
                json!({"error": failure.error, "cause": failure.cause}),
            );
            return Err(failure);
        }
        self.event("MapRunSucceeded", Some(name), json!({}));
        Ok(Value::Array(outputs))
    }

    /// Writes the run's results; returns the Map's output.
    pub(super) fn write_results(
        &mut self,
        state: &State,
        (writer, fanned): (&Value, &Fanned),
        input: &Value,
        variables: &Map<String, Value>,
        context: &Value,
    ) -> Result<Value, Failure> {
        let arguments =
            self.resource_arguments(state, ("ResultWriter", writer), input, variables, context)?;
        let text = |field: &str| arguments.get(field).and_then(Value::as_str).unwrap_or("");
        let (bucket, prefix) = (text("Bucket"), text("Prefix").trim_end_matches('/'));
        if bucket.is_empty() {
            return Err(writer_failed("the ResultWriter names no Bucket"));
        }
        let machine_arn = format!(
            "arn:sluice:states:local:000000000000:stateMachine:{}",
            self.info.state_machine
        );
        let run_arn = format!(
            "arn:sluice:states:local:000000000000:mapRun:{}/{}:{}",
            self.info.state_machine, state.name, fanned.run
        );
        let folder = match prefix {
            "" => fanned.run.clone(),
            prefix => format!("{prefix}/{}", fanned.run),
        };
        let mut files = Map::new();
        for (status, file) in [
            ("SUCCEEDED", "SUCCEEDED_0.json"),
            ("FAILED", "FAILED_0.json"),
            ("PENDING", "PENDING_0.json"),
        ] {
            let entries: Vec<Value> = fanned
                .children
                .iter()
                .filter(|c| child_status(c) == status)
                .map(|c| entry(c, &machine_arn, &self.info.state_machine))
                .collect();
            let mut listed = Vec::new();
            if !entries.is_empty() {
                let key = format!("{folder}/{file}");
                let body = Value::Array(entries).to_string().into_bytes();
                let size = body.len();
                self.tasks
                    .put_object(bucket, &key, body)
                    .map_err(writer_failed)?;
                listed.push(json!({"Key": key, "Size": size}));
            }
            files.insert(status.to_owned(), Value::Array(listed));
        }
        let manifest_key = format!("{folder}/manifest.json");
        let manifest =
            json!({"DestinationBucket": bucket, "MapRunArn": run_arn, "ResultFiles": files});
        self.tasks
            .put_object(bucket, &manifest_key, manifest.to_string().into_bytes())
            .map_err(writer_failed)?;
        Ok(
            json!({"MapRunArn": run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key}}),
        )
    }
}

fn child_status(child: &ChildResult) -> &'static str {
    match &child.result {
        Some(Ok(_)) => "SUCCEEDED",
        Some(Err(_)) => "FAILED",
        None => "PENDING",
    }
}

/// One child execution as `DescribeExecution` shows it; input and output as JSON text.
fn entry(child: &ChildResult, machine_arn: &str, machine: &str) -> Value {
    let mut entry = json!({
        "ExecutionArn": format!("arn:sluice:states:local:000000000000:execution:{machine}:{}", child.name),
        "Name": child.name,
        "Input": child.input.to_string(),
        "InputDetails": {"Included": true},
        "RedriveCount": child.redrive_count,
        "StartDate": iso(child.started_at),
        "StateMachineArn": machine_arn,
        "Status": child_status(child),
    });
    if let Some(stopped) = child.stopped_at {
        entry["StopDate"] = json!(iso(stopped));
    }
    match &child.result {
        Some(Ok(output)) => {
            entry["Output"] = json!(output.to_string());
            entry["OutputDetails"] = json!({"Included": true});
        }
        Some(Err(failure)) => {
            entry["Error"] = json!(failure.error);
            entry["Cause"] = json!(failure.cause);
        }
        None => {}
    }
    entry
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::Failure;
    use super::super::definition::StateMachine;
    use super::super::run::{
        ChildResult, ExecutionInfo, Fanned, ObjectTasks, Position, VirtualClock, run_state,
    };

    #[test]
    fn a_map_run_writes_its_results_and_a_manifest_and_outputs_where() {
        let definition = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "lake", "Key": "items.json"}},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "lake", "Prefix.$": "$.out"}},
            "ToleratedFailureCount": 1,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}});
        let machine = StateMachine::parse(&definition).unwrap();
        let child = |i: usize, result: Option<Result<Value, Failure>>| ChildResult {
            execution: format!("c{i}"),
            name: format!("run-1:{i}"),
            input: json!({"i": i}),
            result,
            redrive_count: 0,
            started_at: 1_000,
            stopped_at: Some(2_000),
        };
        let position = Position {
            execution_input: json!({"out": "results/"}),
            started_at_ms: 0,
            state: "M".into(),
            input: json!({"out": "results/"}),
            variables: serde_json::Map::new(),
            attempts: Some(Vec::new()),
            callback: None,
            map_item: None,
            children: Some(Fanned {
                run: "run-1".into(),
                children: vec![
                    child(0, Some(Ok(json!("zero")))),
                    child(1, Some(Err(Failure::new("Boom", "it broke")))),
                ],
            }),
        };
        let info = ExecutionInfo {
            name: "e".into(),
            state_machine: "flow".into(),
        };
        let mut tasks = ObjectTasks::default();
        let step = run_state(
            &machine,
            &position,
            &info,
            &mut tasks,
            &mut VirtualClock::starting_at(0),
        );
        let (output, _) = step.result.unwrap();
        assert_eq!(
            output,
            json!({"MapRunArn": "arn:sluice:states:local:000000000000:mapRun:flow/M:run-1",
                   "ResultWriterDetails": {"Bucket": "lake", "Key": "results/run-1/manifest.json"}})
        );
        let object = |key: &str| -> Value {
            serde_json::from_slice(&tasks.objects[&("lake".to_owned(), key.to_owned())]).unwrap()
        };
        let manifest = object("results/run-1/manifest.json");
        assert_eq!(
            manifest["ResultFiles"]["SUCCEEDED"][0]["Key"],
            "results/run-1/SUCCEEDED_0.json"
        );
        assert_eq!(manifest["ResultFiles"]["PENDING"], json!([]));
        let succeeded = object("results/run-1/SUCCEEDED_0.json");
        assert_eq!(succeeded[0]["Output"], "\"zero\"");
        assert_eq!(succeeded[0]["Input"], "{\"i\":0}");
        assert_eq!(succeeded[0]["StartDate"], "1970-01-01T00:00:01.000Z");
        let failed = object("results/run-1/FAILED_0.json");
        assert_eq!(
            (failed[0]["Error"].clone(), failed[0]["Status"].clone()),
            (json!("Boom"), json!("FAILED"))
        );
        assert_eq!(
            tasks.objects.len(),
            3,
            "no PENDING file without pending children"
        );
    }
}
