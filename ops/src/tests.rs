//! Request parsing, table-driven: each operation's request from JSON (a Task state's input, an
//! HTTP body), its defaults, and what is refused with the field named.

use serde_json::{Value, json};

use crate::request::from_json;
use crate::*;

/// Parses `input` as `T`, or the refusal's field and message.
fn parse<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, (String, String)> {
    from_json(input).map_err(|err| match err {
        Error::InvalidInput { field, reason } => (field, reason),
        other => panic!("a parse error is invalid input: {other:?}"),
    })
}

/// Checks that `input` is refused, naming `field`, with a message holding `says`.
fn refused<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    input: Value,
    field: &str,
    says: &str,
) {
    match parse::<T>(input.clone()) {
        Ok(request) => panic!("{input} was accepted: {request:?}"),
        Err((got_field, reason)) => {
            assert_eq!(got_field, field, "{input}: {reason}");
            assert!(reason.contains(says), "{input}: {reason:?} lacks {says:?}");
        }
    }
}

#[test]
fn crawl_requests_take_their_defaults_and_refuse_wrong_types() {
    let request: CrawlRequest = parse(json!({})).unwrap();
    assert_eq!(request, CrawlRequest::new("landing"));
    let request: CrawlRequest =
        parse(json!({"prefix": "in", "recrawl": true, "schema_policy": "log"})).unwrap();
    assert!(request.recrawl);
    assert_eq!(
        request.schema_policy,
        Some(jobs::catalog::SchemaPolicy::Log)
    );
    // A string where a boolean belongs was once read as false.
    refused::<CrawlRequest>(json!({"recrawl": "yes"}), "recrawl", "expected a boolean");
    refused::<CrawlRequest>(json!({"prefx": "in"}), "prefx", "unknown field");
    refused::<CrawlRequest>(json!({"schema_policy": "often"}), "schema_policy", "often");
    refused::<CrawlRequest>(
        json!({"sample_records": -1}),
        "sample_records",
        "invalid value",
    );
}

#[test]
fn query_and_type_change_requests() {
    let request: QueryRequest = parse(json!({"sql": "SELECT 1 FROM t"})).unwrap();
    assert_eq!(request, QueryRequest::new("SELECT 1 FROM t"));
    assert_eq!(request.max_rows, 1000);
    refused::<QueryRequest>(json!({}), "sql", "is required");
    refused::<QueryRequest>(json!({"sql": "x", "limit": 1}), "limit", "unknown field");
    let decision: TypeChangeDecision =
        parse(json!({"table": "t", "column": "pm25", "type": "string"})).unwrap();
    assert_eq!(
        (decision.column.as_str(), decision.to.as_str()),
        ("pm25", "string")
    );
    refused::<TypeChangeDecision>(
        json!({"table": "t", "column": "pm25"}),
        "type",
        "is required",
    );
    let changes: TypeChangesRequest = parse(json!({"table": "t", "all": true})).unwrap();
    assert!(changes.all);
    refused::<CrawlRequest>(
        json!({"schema_policy": "merge"}),
        "schema_policy",
        "add_columns, update or log",
    );
}

#[test]
fn convert_requests_express_exactly_the_four_modes() {
    let day = |d: &str| d.parse::<chrono::NaiveDate>().unwrap();
    let cases = [
        (json!({"table": "t"}), ConvertMode::Incremental),
        (json!({"table": "t", "dry_run": true}), ConvertMode::DryRun),
        (
            json!({"table": "t", "reprocess": true}),
            ConvertMode::Reprocess,
        ),
        (
            json!({"table": "t", "reprocess": true, "from": "2024-05-01", "to": "2024-05-02"}),
            ConvertMode::ReprocessRange {
                from: day("2024-05-01"),
                to: day("2024-05-02"),
            },
        ),
    ];
    for (input, mode) in cases {
        let request: ConvertRequest = parse(input.clone()).unwrap();
        assert_eq!(request.mode, mode, "{input}");
    }
    let request: ConvertRequest = parse(json!({"table": "t"})).unwrap();
    assert_eq!(request, ConvertRequest::new("t"));
    // A range with one end once reprocessed the whole table.
    refused::<ConvertRequest>(
        json!({"table": "t", "reprocess": true, "from": "2024-05-01"}),
        "input",
        "to is missing",
    );
    refused::<ConvertRequest>(
        json!({"table": "t", "reprocess": true, "to": "2024-05-01"}),
        "input",
        "from is missing",
    );
    refused::<ConvertRequest>(
        json!({"table": "t", "from": "2024-05-01", "to": "2024-05-01"}),
        "input",
        "need reprocess",
    );
    refused::<ConvertRequest>(
        json!({"table": "t", "reprocess": true, "from": "2024-05-02", "to": "2024-05-01"}),
        "input",
        "is after",
    );
    refused::<ConvertRequest>(
        json!({"table": "t", "reprocess": true, "from": "May 1", "to": "2024-05-01"}),
        "input",
        "YYYY-MM-DD",
    );
    refused::<ConvertRequest>(
        json!({"table": "t", "dry_run": true, "reprocess": true}),
        "input",
        "does not combine",
    );
    refused::<ConvertRequest>(
        json!({"table": "t", "partition_by": "minute"}),
        "partition_by",
        "minute",
    );
    refused::<ConvertRequest>(json!({}), "table", "is required");
    refused::<ConvertRequest>(json!({"table": 3}), "table", "expected a string");
}

#[test]
fn compact_and_vacuum_requests() {
    let request: CompactRequest = parse(json!({"table": "t"})).unwrap();
    assert_eq!((request.target_file_mib, request.catalog), (128, None));
    let request: VacuumRequest = parse(json!({})).unwrap();
    assert_eq!(request.grace_minutes, 60);
    refused::<VacuumRequest>(
        json!({"grace_minutes": "soon"}),
        "grace_minutes",
        "expected i64",
    );
}

#[test]
fn dataset_requests_take_one_column_or_many() {
    let base = json!({"table": "t", "item": "device_id", "target": "pm25",
                      "prediction_length": 24, "out": "ds"});
    let request: DatasetRequest = parse(base.clone()).unwrap();
    assert_eq!(request.item, ["device_id"]);
    assert_eq!(
        (
            request.freq.as_str(),
            request.timestamp.as_str(),
            request.test_windows
        ),
        ("1h", "ts", 1)
    );
    let mut many = base.clone();
    many["item"] = json!(["site", "device_id"]);
    many["dynamic"] = json!("temperature");
    let request: DatasetRequest = parse(many).unwrap();
    assert_eq!(request.item, ["site", "device_id"]);
    assert_eq!(request.dynamic, ["temperature"]);
    let mut wrong = base.clone();
    wrong["item"] = json!([1, 2]);
    refused::<DatasetRequest>(wrong, "item", "a string or a list of strings");
    let mut wrong = base.clone();
    wrong["agg"] = json!("median");
    refused::<DatasetRequest>(wrong, "agg", "median");
    let mut missing = base;
    missing.as_object_mut().unwrap().remove("prediction_length");
    refused::<DatasetRequest>(missing, "prediction_length", "is required");
}

#[test]
fn train_and_forecast_requests() {
    let request: TrainRequest = parse(json!({"train": "a.jsonl", "model_dir": "m",
        "hyperparameters": {"epochs": "2"}, "device": "cpu"}))
    .unwrap();
    assert_eq!(
        (request.seed, request.device, request.test),
        (0, DeviceKind::Cpu, None)
    );
    refused::<TrainRequest>(
        json!({"train": "a", "model_dir": "m", "device": "tpu"}),
        "device",
        "tpu",
    );
    refused::<TrainRequest>(
        json!({"train": "a", "model_dir": "m", "hyperparameters": "epochs=2"}),
        "hyperparameters",
        "expected a map",
    );
    refused::<TrainRequest>(
        json!({"train": "a", "model_dir": "m", "seed": -1}),
        "seed",
        "invalid value",
    );
    let request: ForecastRequest =
        parse(json!({"model_dir": "m", "request": {"instances": []}})).unwrap();
    assert_eq!(request.seed, 0);
}

#[test]
fn publish_and_batch_forecast_requests_parse_names_and_versions() {
    let request: PublishRequest =
        parse(json!({"group": "air-quality", "model_dir": "m", "test": "t.jsonl"})).unwrap();
    assert_eq!((request.margin, request.execution), (0.0, None));
    refused::<PublishRequest>(
        json!({"group": "no spaces", "model_dir": "m", "test": "t"}),
        "group",
        "model group",
    );
    refused::<PublishRequest>(
        json!({"group": "g", "model_dir": "m", "test": "t", "margin": "2%"}),
        "margin",
        "expected f64",
    );
    let request: BatchForecastRequest = parse(json!({"group": "g", "input": "x"})).unwrap();
    assert_eq!(
        request.version,
        models::registry::Target::parse("champion").unwrap()
    );
    assert_eq!(request.quantiles, [0.1, 0.5, 0.9]);
    for (version, expected) in [
        (json!(3), "3"),
        (json!("v3"), "3"),
        (json!("challenger"), "challenger"),
    ] {
        let request: BatchForecastRequest =
            parse(json!({"group": "g", "input": "x", "version": version})).unwrap();
        assert_eq!(
            request.version,
            models::registry::Target::parse(expected).unwrap()
        );
    }
    refused::<BatchForecastRequest>(
        json!({"group": "g", "input": "x", "quantiles": [0.5, 1.5]}),
        "quantiles",
        "(0, 1)",
    );
    refused::<BatchForecastRequest>(
        json!({"group": "g", "input": "x", "num_samples": "many"}),
        "num_samples",
        "expected usize",
    );
}

#[test]
fn drift_and_registry_requests() {
    let request: DriftRequest = parse(json!({"train": "a", "test": "b"})).unwrap();
    assert_eq!(
        (request.subject.as_str(), request.since_hours),
        ("dataset", 24.0)
    );
    // Null is absent, for optional fields parsed by hand too.
    let request: DriftRequest =
        parse(json!({"train": "a", "test": "b", "group": null, "reference_windows": null}))
            .unwrap();
    assert_eq!((request.group, request.reference_windows), (None, None));
    refused::<DriftRequest>(
        json!({"train": "a", "test": "b", "reference_windows": 0}),
        "reference_windows",
        "positive",
    );
    refused::<DriftRequest>(
        json!({"train": "a", "test": "b", "since_hours": "1d"}),
        "since_hours",
        "expected f64",
    );
    let request: PromoteRequest =
        parse(json!({"group": "g", "version": "v2", "reason": "better"})).unwrap();
    assert_eq!((request.version, request.alias.as_str()), (2, "champion"));
    refused::<PromoteRequest>(
        json!({"group": "g", "version": "champion", "reason": "r"}),
        "version",
        "not an alias",
    );
    refused::<PromoteRequest>(json!({"group": "g", "version": 2}), "reason", "is required");
    refused::<SetStatusRequest>(
        json!({"group": "g", "version": 1, "status": "gone", "reason": "r"}),
        "status",
        "gone",
    );
    let request: RollbackRequest = parse(json!({"group": "g", "reason": "undo"})).unwrap();
    assert_eq!(request.alias.as_str(), "champion");
}

#[test]
fn errors_of_the_jobs_and_models_keep_what_the_caller_does() {
    let missing = Error::from(jobs::Error::TableNotFound {
        database: "default".into(),
        table: "t".into(),
    });
    assert!(matches!(
        missing,
        Error::NotFound {
            missing: Missing::Table,
            ..
        }
    ));
    let conflict = Error::from(models::Error::Conflict {
        what: "g v1".into(),
        reason: "rejected".into(),
    });
    assert!(matches!(conflict, Error::Conflict(_)));
    let reconciliation = Error::from(jobs::Error::Reconciliation {
        object: "o".into(),
        read: 2,
        written: 1,
        quarantined: 0,
    });
    assert!(matches!(reconciliation, Error::Reconciliation(_)));
    let diverged = Error::from(models::Error::Training {
        reason: "NaN loss".into(),
    });
    assert!(matches!(diverged, Error::TrainingFailed(_)));
}

#[test]
fn transform_requests() {
    let sql = "SELECT device_id, AVG(pm25) AS pm25 FROM t_curated GROUP BY device_id";
    let request: TransformRequest = parse(json!({"table": "daily", "sql": sql})).unwrap();
    assert_eq!(request, TransformRequest::new("daily", sql));
    assert!(request.partition_by.is_empty() && !request.force);
    assert_eq!(request.dest, "curated");
    let request: TransformRequest = parse(
        json!({"table": "daily", "sql": sql, "partition_by": ["day"], "force": true, "dest": "derived"}),
    )
    .unwrap();
    assert_eq!(request.partition_by, ["day"]);
    refused::<TransformRequest>(json!({"sql": sql}), "table", "is required");
    refused::<TransformRequest>(json!({"table": "daily"}), "sql", "is required");
    // One partition column given as a string, not a list, is refused rather than split.
    refused::<TransformRequest>(
        json!({"table": "daily", "sql": sql, "partition_by": "day"}),
        "partition_by",
        "expected a sequence",
    );
    refused::<TransformRequest>(
        json!({"table": "daily", "sql": sql, "mode": "append"}),
        "mode",
        "unknown field",
    );
}

#[test]
fn workflow_requests_take_step_functions_names_and_defaults() {
    use crate::workflows::*;
    let start: StartRequest = parse(json!({})).unwrap();
    assert_eq!(start, StartRequest::default());
    let start: StartRequest = parse(json!({"input": {"x": 1}, "name": "run-1"})).unwrap();
    assert_eq!(
        (start.input, start.name.as_deref()),
        (Some(json!({"x": 1})), Some("run-1"))
    );
    refused::<StartRequest>(json!({"inputs": {}}), "inputs", "unknown field");
    refused::<StartRequest>(json!({"name": 7}), "name", "expected a string");

    let list: ExecutionList = parse(json!({"workflow": "nightly", "limit": 5})).unwrap();
    assert_eq!(list.limit, Some(5));
    refused::<ExecutionList>(json!({"limit": "all"}), "limit", "expected i64");

    // SendTaskSuccess takes `output` as JSON text, as Step Functions does.
    let success: TaskSuccessRequest =
        parse(json!({"taskToken": "t", "output": "{\"ok\": true}"})).unwrap();
    assert_eq!(success.task_token, "t");
    refused::<TaskSuccessRequest>(json!({"taskToken": "t"}), "output", "is required");
    refused::<TaskSuccessRequest>(
        json!({"taskToken": "t", "output": {"ok": true}}),
        "output",
        "expected a string",
    );
    refused::<TaskSuccessRequest>(
        json!({"task_token": "t", "output": "1"}),
        "task_token",
        "unknown field",
    );
    let failure: TaskFailureRequest = parse(json!({"taskToken": "t"})).unwrap();
    assert_eq!((failure.error, failure.cause), (None, None));
    refused::<TaskHeartbeatRequest>(json!({}), "taskToken", "is required");

    let schedule: ScheduleRequest =
        parse(json!({"name": "n", "cron": "0 2 * * *", "workflow": "w"})).unwrap();
    assert_eq!(
        (
            schedule.timezone.as_str(),
            schedule.catchup.as_str(),
            schedule.window_seconds,
            schedule.overlap.as_str(),
            &schedule.input
        ),
        ("UTC", "skip", 86_400, "skip", &json!({}))
    );
    refused::<ScheduleRequest>(json!({"name": "n", "cron": "x"}), "workflow", "is required");
    refused::<ScheduleRequest>(
        json!({"name": "n", "cron": "x", "workflow": "w", "window_seconds": "1d"}),
        "window_seconds",
        "expected i64",
    );
}

#[test]
fn endpoint_deployment_and_token_requests() {
    use crate::serving::*;
    let deploy: DeployRequest = parse(json!({"version": "v3"})).unwrap();
    assert_eq!(
        (
            deploy.version,
            deploy.strategy.as_str(),
            deploy.percent,
            deploy.bake_seconds,
            deploy.min_requests
        ),
        (3, "canary", 10, 300.0, 20)
    );
    let deploy: DeployRequest = parse(json!({"version": 4, "strategy": "linear"})).unwrap();
    assert_eq!((deploy.version, deploy.strategy.as_str()), (4, "linear"));
    refused::<DeployRequest>(
        json!({"version": "champion"}),
        "version",
        "a version number",
    );
    refused::<DeployRequest>(json!({}), "version", "is required");
    refused::<DeployRequest>(json!({"version": 1, "bake": 3}), "bake", "unknown field");
    let endpoint: EndpointRequest =
        parse(json!({"name": "e", "group": "g", "variants": ["a=champion:1"]})).unwrap();
    assert_eq!(endpoint.variants, vec!["a=champion:1"]);
    refused::<EndpointRequest>(
        json!({"name": "e", "group": "g"}),
        "variants",
        "is required",
    );
    let token: TokenRequest = parse(json!({"scope": "predict"})).unwrap();
    assert_eq!((token.scope.as_str(), token.name.as_str()), ("predict", ""));
    refused::<TokenRequest>(json!({"scope": 1}), "scope", "expected a string");
}
