//! A distributed Map as a durable execution, on SQLite and Postgres: an `ItemReader` written for
//! AWS (`s3:getObject`, `s3:listObjectsV2`, any bucket name) reads the lake's JSON lines, CSV and
//! listing, an `ItemBatcher` groups the items, each batch runs as a child execution whose events
//! stay out of the parent's history, and a reader that cannot read fails with
//! `States.ItemReaderFailed`, which Catch sees; a Parquet object's rows are items too, and a
//! `ResultWriter` writes the results into the lake. (The recorded AWS executions are in the
//! conformance corpus.)

use scheduler::config::Config;
use scheduler::orchestrator::store::{self, ExecutionStatus};
use serde_json::json;
use tests::{Backend, TestDb};

async fn a_distributed_map_reads_the_lake_and_batches_its_items(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(lake.path().join("items")).unwrap();
    std::fs::write(
        lake.path().join("items/readings.jsonl"),
        "{\"device\": \"a\", \"pm25\": 3}\n{\"device\": \"b\", \"pm25\": 5}\n\n{\"device\": \"c\", \"pm25\": 8}\n",
    )
    .unwrap();
    std::fs::write(
        lake.path().join("items/devices.csv"),
        "device,site\na,north\n\"b\",\"south, by the river\"\n",
    )
    .unwrap();
    std::fs::write(lake.path().join("items/sites.parquet"), sites_parquet()).unwrap();
    let engine = db.engine_with(Config {
        lake: format!("file://{}", lake.path().display()),
        ..Config::default()
    });
    let distributed = json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"});
    let definition = json!({"StartAt": "Readings", "States": {
        "Readings": {"Type": "Map", "ResultPath": "$.batches", "Next": "Devices",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                           "ReaderConfig": {"InputType": "JSONL"},
                           "Parameters": {"Bucket": "plant-landing", "Key.$": "$.readings"}},
            "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"night.$": "$.night"}},
            "ItemProcessor": {"ProcessorConfig": distributed, "StartAt": "Sum", "States": {
                "Sum": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($.Items)", "night.$": "$.BatchInput.night"}, "End": true}}}},
        "Devices": {"Type": "Map", "ResultPath": "$.devices", "Next": "Listing",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                           "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 5},
                           "Parameters": {"Bucket": "plant-landing", "Key": "items/devices.csv"}},
            "ItemProcessor": {"ProcessorConfig": distributed, "StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": true}}}},
        "Listing": {"Type": "Map", "ResultPath": "$.listing", "Next": "Sites",
            "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "plant-landing", "Prefix": "items/"}},
            "ItemSelector": {"key.$": "$$.Map.Item.Value.Key", "size.$": "$$.Map.Item.Value.Size"},
            "ItemProcessor": {"ProcessorConfig": distributed, "StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": true}}}},
        "Sites": {"Type": "Map", "ResultPath": "$.sites", "Next": "Written",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                           "ReaderConfig": {"InputType": "PARQUET", "MaxItems": 2},
                           "Parameters": {"Bucket": "plant-landing", "Key": "items/sites.parquet"}},
            "ItemProcessor": {"ProcessorConfig": distributed, "StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": true}}}},
        "Written": {"Type": "Map", "ResultPath": "$.written", "Next": "Missing",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSONL"},
                           "Parameters": {"Bucket": "plant-landing", "Key.$": "$.readings"}},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "plant-landing", "Prefix": "results"}},
            "ItemProcessor": {"ProcessorConfig": distributed, "StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": true}}}},
        "Missing": {"Type": "Map", "ResultPath": "$.missing", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "plant-landing", "Key": "items/none.json"}},
            "Catch": [{"ErrorEquals": ["States.ItemReaderFailed"], "ResultPath": "$.missing", "Next": "Done"}],
            "ItemProcessor": {"ProcessorConfig": distributed, "StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": true}}}},
        "Done": {"Type": "Succeed"}}});
    store::put_workflow(&engine.pool, "dm", &definition)
        .await
        .unwrap();
    let (execution, first) = engine
        .start(
            "dm",
            json!({"readings": "items/readings.jsonl", "night": "2024-05-01"}),
            None,
        )
        .await
        .unwrap();
    tests::run_to_end(&engine, first.unwrap()).await;
    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let output = done.output.unwrap();
    assert_eq!(
        output["batches"],
        json!([{"n": 2, "night": "2024-05-01"}, {"n": 1, "night": "2024-05-01"}]),
        "three lines (the blank one skipped) in batches of two"
    );
    assert_eq!(
        output["devices"],
        json!([{"device": "a", "site": "north"}, {"device": "b", "site": "south, by the river"}])
    );
    let size = |name: &str| std::fs::metadata(lake.path().join(name)).unwrap().len();
    assert_eq!(
        output["listing"],
        json!([{"key": "items/devices.csv", "size": size("items/devices.csv")},
               {"key": "items/readings.jsonl", "size": size("items/readings.jsonl")},
               {"key": "items/sites.parquet", "size": size("items/sites.parquet")}])
    );
    assert_eq!(
        output["sites"],
        json!([{"site": "north", "sensors": 3}, {"site": "south", "sensors": 5}]),
        "a Parquet object's rows, up to MaxItems"
    );
    // The ResultWriter's Map outputs where its results are: a manifest naming SUCCEEDED_0.json.
    let key = output["written"]["ResultWriterDetails"]["Key"]
        .as_str()
        .unwrap();
    assert!(
        key.starts_with("results/") && key.ends_with("/manifest.json"),
        "{key}"
    );
    let read = |key: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(lake.path().join(key)).unwrap()).unwrap()
    };
    let manifest = read(key);
    let succeeded = read(
        manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
            .as_str()
            .unwrap(),
    );
    let outputs: Vec<serde_json::Value> = succeeded
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["Output"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        outputs,
        [
            json!({"device": "a", "pm25": 3}),
            json!({"device": "b", "pm25": 5}),
            json!({"device": "c", "pm25": 8})
        ]
    );
    assert_eq!(manifest["ResultFiles"]["FAILED"], json!([]));
    // Each child is an execution of its own, with its own history.
    let runs = store::map_runs(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(
        runs.len(),
        5,
        "the missing object's Map never started a run"
    );
    assert!(
        runs.iter()
            .all(|r| r.kind == "DISTRIBUTED" && r.status == "SUCCEEDED")
    );
    assert_eq!(output["missing"]["Error"], "States.ItemReaderFailed");
    assert!(
        output["missing"]["Cause"]
            .as_str()
            .unwrap()
            .contains("items/none.json"),
        "{output}"
    );
    let history = store::history(&engine.pool, &execution.id).await.unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "MapRunSucceeded").count(),
        5,
        "{kinds:?}"
    );
    assert!(
        !kinds
            .iter()
            .any(|k| k.starts_with("MapIteration") || k.starts_with("Pass")),
        "the children's events are their own: {kinds:?}"
    );
}

tests::on_both_backends!(a_distributed_map_reads_the_lake_and_batches_its_items);

/// Three sites as a Parquet file: `site` (text), `sensors` (integer).
fn sites_parquet() -> Vec<u8> {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(vec![
        Field::new("site", DataType::Utf8, false),
        Field::new("sensors", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["north", "south", "east"])),
            Arc::new(Int64Array::from(vec![3, 5, 8])),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}
