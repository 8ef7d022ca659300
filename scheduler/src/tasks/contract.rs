//! The Task contract, pinned: every resource's input fields are documented in the README (the
//! table is generated here and must match), and every field that a shipped workflow reads from
//! a task's output exists in that task's output type.

use std::collections::BTreeSet;

use serde::de::{DeserializeOwned, Visitor};
use serde_json::{Value, json};

use super::Job;

/// Stops the field collector once it has what it came for.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stop")
    }
}

impl std::error::Error for Stop {}

impl serde::de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

/// A deserializer that only records the fields a struct asks for.
struct Collector<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for Collector<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = Some(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The JSON fields a request type reads, as its serde derive declares them.
fn fields_of<T: DeserializeOwned>() -> Vec<&'static str> {
    let mut fields = None;
    let _ = T::deserialize(Collector(&mut fields));
    fields.expect("a request is a struct").to_vec()
}

/// A job's input fields (None: test plumbing, documented apart).
fn input_fields(job: Job) -> Option<Vec<&'static str>> {
    Some(match job {
        Job::Crawl => fields_of::<ops::CrawlRequest>(),
        Job::Convert => fields_of::<ops::ConvertRequest>(),
        Job::Compact => fields_of::<ops::CompactRequest>(),
        Job::Dataset => fields_of::<ops::DatasetRequest>(),
        Job::Train => fields_of::<ops::TrainRequest>(),
        Job::Blend => fields_of::<ops::BlendRequest>(),
        Job::Publish => fields_of::<ops::PublishRequest>(),
        Job::Promote => fields_of::<ops::PromoteRequest>(),
        Job::DetectDrift => fields_of::<ops::DriftRequest>(),
        Job::RetrainCheck => fields_of::<ops::RetrainRequest>(),
        // An enum of steps: every step's fields (`step` names it).
        Job::Tune => vec!["step", "settings", "run", "state", "results"],
        Job::BatchForecast => fields_of::<ops::BatchForecastRequest>(),
        Job::Query => fields_of::<ops::QueryRequest>(),
        Job::Transform => fields_of::<ops::TransformRequest>(),
        Job::Approval => fields_of::<super::ApprovalInput>(),
        Job::Http => fields_of::<super::http::HttpInvoke>(),
        _ => return None,
    })
}

/// An output of the job's type with every optional part present, as JSON.
fn sample_output(job: Job) -> Option<Value> {
    let metrics = models::metrics::Metrics::default();
    let group = models::registry::GroupName::parse("g").expect("a valid name");
    let value = match job {
        Job::Crawl => json!(jobs::crawler::CrawlReport::default()),
        Job::Convert => json!(jobs::convert::ConvertReport::default()),
        Job::Compact => json!(jobs::convert::CompactReport::default()),
        Job::Dataset => json!(ops::DatasetManifest {
            format: ops::DatasetManifest::FORMAT,
            snapshot_id: "ds-0".into(),
            table: "t".into(),
            train: "train.jsonl".into(),
            test: "test.jsonl".into(),
            spec: jobs::dataset::DatasetSpec {
                item_columns: vec!["item".into()],
                timestamp: "ts".into(),
                target: "y".into(),
                frequency: "1h".into(),
                aggregation: jobs::dataset::Aggregation::Mean,
                dynamic_features: vec![],
                categorical_features: vec![],
                prediction_length: 1,
                test_windows: 1,
                only_items: Vec::new(),
            },
            time_freq: "H".into(),
            cut: String::new(),
            rows_read: 0,
            items: 0,
            train_lines: 0,
            test_lines: 0,
            categories: vec![],
            dropped: vec![],
            uncastable: vec![],
            catalog: None,
        }),
        Job::Train => json!(ops::TrainOutput {
            model_dir: "model".into(),
            algorithm: ops::Algorithm::Deepar,
            epochs: 0,
            best_epoch: 0,
            best_loss: Some(0.0),
            stopped_early: false,
            train_seconds: 0.0,
            dataset_snapshot: "ds-0".into(),
            validation_metrics: Some(ops::TestMetrics {
                family: "deepar",
                model: metrics.clone(),
                deepar: Some(metrics.clone()),
                seasonal_naive: metrics.clone(),
            }),
            test_metrics: Some(ops::TestMetrics {
                family: "deepar",
                model: metrics.clone(),
                deepar: Some(metrics.clone()),
                seasonal_naive: metrics,
            }),
        }),
        Job::Blend => json!(ops::BlendOutput {
            candidates: vec!["deepar".into(), "ets".into(), "blend".into()],
            blend: Some(ops::BlendMade {
                model_dir: "blend".into(),
                members: vec![],
                validation_mean_wql: 0.0,
                trials: vec![],
            }),
            reason: String::new(),
        }),
        Job::Publish => json!(ops::PublishOutput {
            group,
            version: 1,
            published: true,
            status: "approved",
            reason: String::new(),
            artifact: String::new(),
            candidate: ops::PublishScores {
                mean_wql: Some(0.0),
                naive_mean_wql: Some(0.0),
            },
            champion: Some(ops::ChampionScore {
                version: 1,
                mean_wql: Some(0.0),
            }),
            repeated: false,
            family: "mstl".into(),
            selection: Some(vec![models::registry::Outcome {
                entry: models::registry::Entry {
                    family: "mstl".into(),
                    model_dir: "work/mstl".into(),
                    mean_wql: 0.0,
                    naive_mean_wql: 0.0,
                },
                won: true,
                reason: String::new(),
            }]),
        }),
        Job::DetectDrift => json!({"drift": ops::DriftSummary {
            detected: false,
            reasons: vec![],
            series: 0,
            drifted_series: 0,
            share_drifted_series: 0.0,
            schema_changes: 0,
            forecast_runs_scored: 0,
            report_id: String::new(),
            report: String::new(),
        }}),
        Job::RetrainCheck => {
            let age = ops::VersionAge {
                version: 1,
                created_at: String::new(),
                age_hours: 0.0,
                mean_wql: Some(0.0),
            };
            json!(ops::RetrainCheck {
                retrain: true,
                why: String::new(),
                reasons: vec![],
                champion: Some(age.clone()),
                last_trained: Some(age),
                new_rows: Some(ops::NewRows {
                    table: "t".into(),
                    rows: 0,
                    rows_before: 0,
                    share: Some(0.0),
                }),
            })
        }
        Job::BatchForecast => json!(jobs::forecasts::BatchRun::default()),
        Job::Query => json!(ops::QueryOutput {
            columns: vec![],
            rows: vec![],
            row_count: 0,
            truncated: false,
            result: None,
            files_read: 0,
            files_total: 0,
            tables: vec![],
        }),
        Job::Transform => json!(jobs::transform::TransformReport {
            table: "t".into(),
            status: jobs::transform::TransformStatus::Built,
            input_id: "tf-0".into(),
            run_id: 1,
            location: "curated/t".into(),
            sources: vec![],
            rows: 0,
            files: 0,
            bytes: 0,
            partitions: 0,
            schema_version: 1,
            schema_changed: false,
            duration_ms: 0,
        }),
        Job::Promote => json!(ops::AliasChange {
            group: group.clone(),
            alias: models::registry::AliasName::champion(),
            version: 2,
            from_version: Some(1),
        }),
        Job::Http => json!(super::http::HttpOutput {
            headers: Default::default(),
            response_body: json!({}),
            status_code: 200,
            status_text: "OK".into(),
        }),
        Job::Tune => {
            // A step's output is the state (plan, promote) or the report (finish): both here.
            let settings: ops::TuneSettings = serde_json::from_value(json!({
                "train": "train.jsonl", "test": "test.jsonl", "work": "work", "run": "r",
                "trials": 1,
                "hyperparameters": {"time_freq": "H", "prediction_length": "1", "context_length": "1",
                                    "epochs": "1"}
            }))
            .expect("sample settings");
            let state = ops::tune::plan(settings).expect("a one-trial plan");
            let results = vec![ops::tune::TrialResult {
                trial: 0,
                rung: 0,
                model_dir: Some("m".into()),
                validation_mean_wql: Some(0.5),
                error: None,
                cause: None,
            }];
            let state = ops::tune::promote(state, results).expect("the one rung scored");
            let report = ops::tune::finish(&state).expect("the report");
            let mut both = json!(state);
            let fields = json!(report);
            both.as_object_mut()
                .expect("an object")
                .extend(fields.as_object().expect("an object").clone());
            both
        }
        Job::Approval => json!(super::ApprovalInput {
            token: "t".into(),
            message: "m".into(),
            details: json!({}),
        }),
        _ => return None,
    };
    Some(value)
}

/// The README's table of Task resources.
fn task_table() -> String {
    let mut table = String::from("| resource | input fields | output fields |\n|---|---|---|\n");
    for &(job, resource) in Job::ALL {
        let (Some(input), Some(output)) = (input_fields(job), sample_output(job)) else {
            continue;
        };
        let keys: Vec<&str> = output
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let quoted = |names: &[&str]| {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        table.push_str(&format!(
            "| `{resource}` | {} | {} |\n",
            quoted(&input),
            quoted(&keys)
        ));
    }
    table
}

const BEGIN: &str = "<!-- task-resources: generated by scheduler/src/tasks/contract.rs -->\n";
const END: &str = "<!-- task-resources: end -->";

#[test]
fn the_readme_documents_every_task_resource_and_its_fields() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find(BEGIN)
        .expect("the README has the task table's markers")
        + BEGIN.len();
    let end = start + readme[start..].find(END).expect("the table's end marker");
    let expected = task_table();
    assert_eq!(
        &readme[start..end],
        expected,
        "the README's task table is out of date; it should read:\n{expected}"
    );
}

/// `$.a.b` paths in a workflow's strings.
fn paths_in(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(at) = rest.find("$.") {
                let path: String = rest[at + 2..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                    .collect();
                rest = &rest[at + 2 + path.len()..];
                out.insert(path.trim_end_matches('.').to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| paths_in(v, out)),
        Value::Object(map) => map.values().for_each(|v| paths_in(v, out)),
        _ => {}
    }
}

/// Whether `path` (`a.b.c`) names a value in `output`, through objects only.
fn resolves(output: &Value, path: &str) -> bool {
    let mut at = output;
    for segment in path.split('.') {
        match at.get(segment) {
            Some(next) => at = next,
            None => return false,
        }
    }
    true
}

/// Every (state, path) a workflow reads from a task's output that the output type lacks.
fn unselectable(definition: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    let states = definition["States"].as_object().expect("States");
    for (name, state) in states {
        let Some(job) = state["Resource"].as_str().and_then(Job::from_resource) else {
            continue;
        };
        let Some(output) = sample_output(job) else {
            continue;
        };
        let mut read = BTreeSet::new();
        match (&state.get("ResultSelector"), state["ResultPath"].as_str()) {
            (Some(selector), _) => paths_in(selector, &mut read),
            (None, Some(result_path)) => {
                // Later states read the raw output under the ResultPath.
                let prefix = format!("{}.", result_path.trim_start_matches("$."));
                let mut everywhere = BTreeSet::new();
                paths_in(definition, &mut everywhere);
                read.extend(
                    everywhere
                        .iter()
                        .filter_map(|p| p.strip_prefix(&prefix).map(str::to_owned)),
                );
            }
            (None, None) => {}
        }
        missing.extend(
            read.iter()
                .filter(|path| !resolves(&output, path))
                .map(|path| format!("{name}: $.{path}")),
        );
    }
    missing
}

#[test]
fn every_field_a_shipped_workflow_selects_exists_in_its_tasks_output() {
    for (file, text) in [
        (
            "nightly-retrain",
            include_str!("../../workflows/nightly-retrain.asl.json"),
        ),
        ("ingest", include_str!("../../workflows/ingest.asl.json")),
        (
            "daily-aggregates",
            include_str!("../../workflows/daily-aggregates.asl.json"),
        ),
        ("tune", include_str!("../../workflows/tune.asl.json")),
    ] {
        let definition: Value = serde_json::from_str(text).expect("a shipped workflow is JSON");
        let missing = unselectable(&definition);
        assert!(
            missing.is_empty(),
            "{file} selects what no output has: {missing:?}"
        );
    }
}

#[test]
fn a_selection_of_a_field_the_output_lacks_is_caught() {
    let definition = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "sluice:train", "End": true,
        "ResultSelector": {"loss.$": "$.best_loss", "gone.$": "$.test_metrics.deepar.no_such"}
    }}});
    assert_eq!(
        unselectable(&definition),
        ["T: $.test_metrics.deepar.no_such"]
    );
}

#[test]
fn a_workflow_naming_no_sluice_job_is_refused_at_validation() {
    let with = |resource: &str| json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "End": true}}});
    assert!(super::runnable(&with("sluice:train"), &Default::default()).is_ok());
    let refusal = |resource: &str| {
        super::runnable(&with(resource), &Default::default())
            .unwrap_err()
            .to_string()
    };
    assert!(
        refusal("sluice:trian").starts_with(
            "/States/T/Resource: unknown resource \"sluice:trian\": sluice runs sluice:echo"
        ),
        "{}",
        refusal("sluice:trian")
    );
    assert!(
        refusal("arn:aws:states:::lambda:invoke.waitForTaskToken")
            .contains("unknown resource \"arn:aws:states:::lambda:invoke.waitForTaskToken\"")
    );
    assert!(
        super::runnable(
            &with("sluice:approval.waitForTaskToken"),
            &Default::default()
        )
        .is_ok()
    );
    assert!(refusal("sluice:nope.waitForTaskToken").contains("unknown resource"));
}

#[test]
fn a_callback_inside_map_or_parallel_is_valid_and_an_unknown_one_refused_with_its_pointer() {
    // Branches and iterations are executions of their own: a callback there waits like any.
    let definition = |resource: &str| {
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "Ask", "States": {
            "Ask": {"Type": "Task", "Resource": resource, "End": true}}}}}})
    };
    assert!(
        super::runnable(
            &definition("sluice:approval.waitForTaskToken"),
            &Default::default()
        )
        .is_ok()
    );
    let refusal = super::runnable(
        &definition("sluice:nope.waitForTaskToken"),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        refusal.starts_with("/States/M/ItemProcessor/States/Ask/Resource: "),
        "{refusal}"
    );
}
