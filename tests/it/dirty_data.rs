//! Dirty data on both backends: one bad value never changes a column's type and costs only its
//! record, a type change waits for a person and applies once accepted, an invalid byte costs
//! only its record, a field past the crawl's sample is catalogued, and datasets read across
//! schema versions.

use arrow::datatypes::DataType;
use jobs::catalog::type_changes::{Decision, TypeChangeStatus};
use jobs::catalog::{CatalogDbName, SchemaPolicy};
use jobs::convert::{ConvertOptions, ConvertReport, convert};
use jobs::crawler::infer::Resolution;
use jobs::crawler::{CrawlOptions, CrawlReport, crawl};
use jobs::dataset::{Aggregation, DatasetSpec, load};
use jobs::lake::{Lake, LakeKey};
use object_store::ObjectStoreExt;
use tests::{Backend, TestDb, put};

use crate::parquet_landings::parquet_landing;

pub(crate) fn db_name() -> CatalogDbName {
    CatalogDbName::parse("default").unwrap()
}

pub(crate) async fn crawl_t(lake: &Lake, db: &TestDb) -> CrawlReport {
    crawl(
        lake,
        &db.catalog,
        &CrawlOptions::new(db_name(), LakeKey::parse("t").unwrap()),
    )
    .await
    .expect("crawl")
}

pub(crate) async fn convert_t(lake: &Lake, db: &TestDb) -> ConvertReport {
    convert(
        lake,
        lake,
        &db.catalog,
        &ConvertOptions::new(db_name(), "t"),
    )
    .await
    .expect("convert")
}

/// A good reading of device `d{device}` at minute `minute` of 2024-05-30.
fn reading(device: u32, minute: u32, pm25: &str) -> String {
    format!(
        "{{\"device_id\":\"d{device}\",\"ts\":\"2024-05-30T{:02}:{:02}:00Z\",\"pm25\":{pm25}}}\n",
        minute / 60 % 24,
        minute % 60
    )
}

/// `n` good readings over four devices, then `bad` lines.
fn object(n: u32, start: u32, bad: &[&str]) -> String {
    let mut text: String = (0..n)
        .map(|i| reading(i % 4, start + i / 4, &format!("{}.5", 10 + i % 7)))
        .collect();
    for line in bad {
        text.push_str(line);
        text.push('\n');
    }
    text
}

async fn quarantine(lake: &Lake, report: &ConvertReport) -> Vec<serde_json::Value> {
    let key = report.quarantine.as_deref().expect("a quarantine file");
    let bytes = lake.get(&LakeKey::parse(key).unwrap()).await.unwrap();
    std::str::from_utf8(&bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn column_type(schema: &arrow::datatypes::Schema, name: &str) -> DataType {
    schema.field_with_name(name).unwrap().data_type().clone()
}

fn spec() -> DatasetSpec {
    DatasetSpec {
        item_columns: vec!["device_id".into()],
        timestamp: "ts".into(),
        target: "pm25".into(),
        frequency: "1h".into(),
        aggregation: Aggregation::Mean,
        dynamic_features: vec![],
        categorical_features: vec![],
        prediction_length: 2,
        only_items: Vec::new(),
        test_windows: 1,
    }
}

async fn one_bad_value_keeps_the_type_and_costs_only_its_record(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    put(&lake, "t/2024/05/30/00/a.json", object(800, 0, &[])).await;
    crawl_t(&lake, &db).await;
    let first = convert_t(&lake, &db).await;
    assert_eq!(first.records_quarantined, 0);

    // The night's batch: good readings, and one device's bad values in three columns.
    let bad = [
        r#"{"device_id":"d1","ts":"2024-05-30T12:00:00Z","pm25":"high"}"#,
        r#"{"device_id":"d1","ts":12,"pm25":3.5}"#,
        r#"{"device_id":"d1","ts":"2024-13-45T00:00:00Z","pm25":3.5}"#,
        r#"{"device_id":"d2","ts":"2024-05-30T12:05:00Z","pm25":1e400}"#,
    ];
    put(&lake, "t/2024/05/30/12/b.json", object(800, 720, &bad)).await;
    let report = crawl_t(&lake, &db).await;
    assert!(report.schema_versions.is_empty(), "{report:?}");
    assert!(report.pending_changes.is_empty(), "{report:?}");
    let table = db.catalog.table(&db_name(), "t").await.unwrap();
    assert_eq!(table.current_version, 1);
    assert_eq!(column_type(&table.schema, "pm25"), DataType::Float64);
    assert!(matches!(
        column_type(&table.schema, "ts"),
        DataType::Timestamp(..)
    ));
    let pm25 = report
        .conflicts
        .iter()
        .find(|c| c.conflict.path == "pm25")
        .expect("the conflict is reported");
    assert_eq!(pm25.conflict.resolution, Resolution::Quarantined);
    assert_eq!(pm25.conflict.resolved, "double");
    assert!(
        pm25.conflict.counts.contains(&("string".to_owned(), 1)),
        "{pm25:?}"
    );
    let shown = db.catalog.conflicts(&db_name(), "t").await.unwrap();
    assert!(shown.iter().any(|(_, c)| c.path == "pm25"), "{shown:?}");

    let second = convert_t(&lake, &db).await;
    assert_eq!(
        (
            second.records_read,
            second.records_written,
            second.records_quarantined
        ),
        (804, 800, 4)
    );
    assert!(second.reconciled);
    let reasons: Vec<String> = quarantine(&lake, &second)
        .await
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons[0], r#"pm25: "high" is not a double"#);
    assert_eq!(reasons[1], "ts: 12 is not a timestamp");
    assert_eq!(
        reasons[2],
        r#"ts: "2024-13-45T00:00:00Z" is not a timestamp"#
    );
    assert!(reasons[3].contains("out of range"), "{reasons:?}");

    // The dataset over both nights reads as before.
    let curated = db.catalog.table(&db_name(), "t_curated").await.unwrap();
    assert_eq!(column_type(&curated.schema, "pm25"), DataType::Float64);
    let loaded = load(&lake, &db.catalog, &db_name(), "t", &spec())
        .await
        .unwrap();
    assert_eq!(loaded.frame.height(), 1600);
    assert!(loaded.uncastable.is_empty());
}

async fn a_type_change_waits_for_a_person_then_applies(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    put(&lake, "t/2024/05/30/00/a.json", object(40, 0, &[])).await;
    crawl_t(&lake, &db).await;
    convert_t(&lake, &db).await;

    // A firmware starts sending pm25 as text: the crawl holds the change for a person.
    let text: String = (0..40)
        .map(|i| reading(i % 4, 600 + i, &format!("\"{}.5 ug\"", i % 9)))
        .collect();
    put(&lake, "t/2024/05/30/10/b.json", text).await;
    let report = crawl_t(&lake, &db).await;
    assert_eq!(report.pending_changes.len(), 1, "{report:?}");
    let change = &report.pending_changes[0];
    assert_eq!(
        (
            change.column.as_str(),
            change.from.as_str(),
            change.to.as_str()
        ),
        ("pm25", "double", "string")
    );
    assert_eq!(change.counts, [("string".to_owned(), 40)]);
    assert_eq!(change.objects, ["t/2024/05/30/10/b.json"]);
    let table = db.catalog.table(&db_name(), "t").await.unwrap();
    assert_eq!(column_type(&table.schema, "pm25"), DataType::Float64);

    // A second crawl that sees the same again adds to the evidence, not a second change.
    put(
        &lake,
        "t/2024/05/30/11/c.json",
        reading(1, 700, "\"4.5 ug\""),
    )
    .await;
    crawl_t(&lake, &db).await;
    let pending = db
        .catalog
        .type_changes(&db_name(), None, false)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].counts, [("string".to_owned(), 41)]);
    assert_eq!(pending[0].objects_total, 2);
    assert_eq!(pending[0].status, TypeChangeStatus::Pending);

    // Until a person decides, the text values are quarantined with their reason.
    let held = convert_t(&lake, &db).await;
    assert_eq!((held.records_written, held.records_quarantined), (0, 41));

    let decision = Decision {
        decided_by: "test".into(),
        reason: Some("new firmware reports units".into()),
    };
    let wrong = db
        .catalog
        .accept_type_change(&db_name(), "t", "pm25", "bigint", &decision)
        .await
        .unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "table \"t\" has no pending change of column \"pm25\" to bigint; pending: pm25 double -> string"
    );
    let accepted = db
        .catalog
        .accept_type_change(&db_name(), "t", "pm25", "string", &decision)
        .await
        .unwrap();
    assert_eq!(accepted.status, TypeChangeStatus::Accepted);
    assert_eq!(accepted.applied_version, Some(2));
    let table = db.catalog.table(&db_name(), "t").await.unwrap();
    assert_eq!(column_type(&table.schema, "pm25"), DataType::Utf8);
    assert!(
        db.catalog
            .type_changes(&db_name(), None, false)
            .await
            .unwrap()
            .is_empty()
    );

    // The next conversion writes the column as text; a dataset reads both versions' files,
    // reading the values it cannot cast to a double as missing and saying so.
    let reprocessed = convert(
        &lake,
        &lake,
        &db.catalog,
        &ConvertOptions {
            mode: jobs::convert::ConvertMode::Reprocess,
            ..ConvertOptions::new(db_name(), "t")
        },
    )
    .await
    .unwrap();
    assert_eq!(reprocessed.records_quarantined, 0, "{reprocessed:?}");
    let loaded = load(&lake, &db.catalog, &db_name(), "t", &spec())
        .await
        .unwrap();
    assert_eq!(loaded.frame.height(), 81);
    assert_eq!(loaded.uncastable.get("pm25"), Some(&41));
}

async fn an_invalid_byte_costs_only_its_record(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    let mut bytes = object(20, 0, &[]).into_bytes();
    bytes.extend_from_slice(
        b"{\"device_id\":\"d\xff1\",\"ts\":\"2024-05-30T05:00:00Z\",\"pm25\":1.5}\n",
    );
    bytes.extend_from_slice(object(20, 30, &[]).as_bytes());
    put(&lake, "t/2024/05/30/00/a.json", bytes).await;
    let report = crawl_t(&lake, &db).await;
    assert_eq!(report.objects_failed, 0, "{:?}", report.failures);
    let converted = convert_t(&lake, &db).await;
    assert_eq!(
        (
            converted.records_read,
            converted.records_written,
            converted.records_quarantined
        ),
        (41, 40, 1)
    );
    let entry = &quarantine(&lake, &converted).await[0];
    assert_eq!(entry["line"], 21);
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .starts_with("not UTF-8 text: byte 0xff"),
        "{entry}"
    );
    assert!(
        entry["record"].as_str().unwrap().contains("d\\xff1"),
        "{entry}"
    );
}

async fn a_field_past_the_sample_is_catalogued(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    let last = r#"{"device_id":"d1","ts":"2024-05-30T23:59:00Z","pm25":1.5,"co2":412.5}"#;
    put(&lake, "t/2024/05/30/00/a.json", object(3000, 0, &[last])).await;
    let report = crawl_t(&lake, &db).await;
    assert_eq!(report.records, 3001);
    let table = db.catalog.table(&db_name(), "t").await.unwrap();
    assert_eq!(column_type(&table.schema, "co2"), DataType::Float64);
    let converted = convert_t(&lake, &db).await;
    assert!(converted.new_columns.is_empty(), "{converted:?}");
    assert_eq!(converted.records_quarantined, 0);
}

async fn the_update_policy_widens_a_dominant_new_type(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    put(&lake, "t/2024/05/30/00/a.json", object(40, 0, &[])).await;
    crawl_t(&lake, &db).await;
    db.catalog
        .set_schema_policy(&db_name(), "t", SchemaPolicy::Update)
        .await
        .unwrap();
    let text: String = (0..40)
        .map(|i| reading(i % 4, 600 + i, "\"n/a\""))
        .collect();
    put(&lake, "t/2024/05/30/10/b.json", text).await;
    let report = crawl_t(&lake, &db).await;
    assert!(report.pending_changes.is_empty());
    assert_eq!(report.schema_versions[0].diff.widened[0].to, "string");
}

fn zipped(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

async fn every_landing_format_converts_and_reconciles(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    put(&lake, "p/2024/05/30/00/a.parquet", parquet_landing(261)).await;
    let separated: String = object(30, 0, &[])
        .lines()
        .map(|l| format!("{l},"))
        .collect();
    put(&lake, "c/2024/05/30/00/a.json", separated).await;
    let array = format!(
        "[{}]",
        object(
            200,
            0,
            &[r#"{"device_id":"d1","ts":"2024-05-30T09:00:00Z","pm25":"high"}"#]
        )
        .trim_end()
        .replace('\n', ",\n")
    );
    put(&lake, "a/2024/05/30/00/a.json", array).await;
    // Each file of an archive is its own source: two JSON arrays, and CSV files with a header
    // each; a file's name is never a path.
    let first = format!("[{}]", object(20, 0, &[]).trim_end().replace('\n', ","));
    let second = format!("[{}]", object(20, 40, &[]).trim_end().replace('\n', ","));
    put(
        &lake,
        "z/2024/05/30/00/a.zip",
        zipped(&[
            ("a.json", first.as_bytes()),
            ("../../b.json", second.as_bytes()),
        ]),
    )
    .await;
    put(
        &lake,
        "v/2024/05/30/00/a.zip",
        zipped(&[
            ("x.csv", b"device_id,pm25\nd1,2.5\nd2,3\n"),
            ("y.csv", b"device_id,pm25\nd3,1.5\n"),
        ]),
    )
    .await;
    for (prefix, format, read, written) in [
        ("z", "json_array", 40, 40),
        ("v", "csv", 3, 3),
        ("p", "parquet", 261, 261),
        ("c", "json_comma_separated", 30, 30),
        ("a", "json_array", 201, 200),
    ] {
        let report = crawl(
            &lake,
            &db.catalog,
            &CrawlOptions::new(db_name(), LakeKey::parse(prefix).unwrap()),
        )
        .await
        .unwrap();
        assert_eq!(report.objects_failed, 0, "{prefix}: {:?}", report.failures);
        let table = db.catalog.table(&db_name(), prefix).await.unwrap();
        assert_eq!(table.format, format);
        assert_eq!(column_type(&table.schema, "pm25"), DataType::Float64);
        let converted = convert(
            &lake,
            &lake,
            &db.catalog,
            &ConvertOptions::new(db_name(), prefix),
        )
        .await
        .unwrap();
        assert_eq!(
            (converted.records_read, converted.records_written),
            (read, written),
            "{prefix}: {converted:?}"
        );
        assert!(converted.unreadable.is_empty(), "{prefix}: {converted:?}");
        assert!(converted.reconciled);
    }
}

async fn conversion_reconciles_against_the_crawl(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    put(&lake, "t/2024/05/30/00/a.json", object(20, 0, &[])).await;
    crawl_t(&lake, &db).await;
    // The object grows after its crawl: the run refuses rather than trust either count.
    put(&lake, "t/2024/05/30/00/a.json", object(25, 0, &[])).await;
    let err = convert(
        &lake,
        &lake,
        &db.catalog,
        &ConvertOptions::new(db_name(), "t"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "conversion of t/2024/05/30/00/a.json does not reconcile with its crawl: the crawler counted 20 records, conversion read 25 (recrawl it if it changed)"
    );
    crawl_t(&lake, &db).await;
    let converted = convert_t(&lake, &db).await;
    assert_eq!(converted.records_written, 25);
}

/// `n` readings on day `day` of May 2024.
pub(crate) fn day_object(day: u32, n: u32) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"device_id\":\"d{}\",\"ts\":\"2024-05-{day:02}T{:02}:00:00Z\",\"pm25\":{}.5}}\n",
                i % 2,
                i % 24,
                i % 9
            )
        })
        .collect()
}

/// Ten readings on each of 28, 29 and 30 May, one object a day, crawled.
pub(crate) async fn three_days(lake: &Lake, db: &TestDb) {
    for day in [28, 29, 30] {
        let key = format!("t/2024/05/{day}/00/a.json");
        put(lake, &key, day_object(day, 10)).await;
    }
    crawl_t(lake, db).await;
}

async fn deleted_landings_are_noticed_and_what_they_gave_is_kept(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    three_days(&lake, &db).await;
    assert_eq!(convert_t(&lake, &db).await.records_written, 30);

    // Retention deletes one landing: the next crawl marks it gone and the figures drop it.
    lake.store()
        .delete(&object_store::path::Path::from("t/2024/05/29/00/a.json"))
        .await
        .unwrap();
    let report = crawl_t(&lake, &db).await;
    assert_eq!(report.objects_gone, 1);
    let table = db.catalog.table(&db_name(), "t").await.unwrap();
    assert_eq!((table.objects, table.records), (2, 20));
    let partitions = db.catalog.partitions(&db_name(), "t").await.unwrap();
    let emptied = partitions
        .iter()
        .find(|p| p.location.ends_with("29/00"))
        .unwrap();
    assert_eq!((emptied.object_count, emptied.record_estimate), (0, 0));
    let gone = db.catalog.objects(false).await.unwrap();
    assert!(
        gone.iter()
            .any(|o| o.key.ends_with("29/00/a.json") && o.status.as_str() == "gone"),
        "{gone:?}"
    );
    // A second crawl does not count it again.
    assert_eq!(crawl_t(&lake, &db).await.objects_gone, 0);

    // Conversion neither fails on it nor forgets what it gave: a reprocess rebuilds the rest and
    // keeps its file.
    assert_eq!(convert_t(&lake, &db).await.sources, 0);
    let reprocessed = convert(
        &lake,
        &lake,
        &db.catalog,
        &ConvertOptions {
            mode: jobs::convert::ConvertMode::Reprocess,
            ..ConvertOptions::new(db_name(), "t")
        },
    )
    .await
    .unwrap();
    assert_eq!(reprocessed.records_written, 20);
    let scope = reprocessed
        .reprocessed
        .expect("a scope around the gone object");
    assert_eq!(scope.kept_sources, ["t/2024/05/29/00/a.json"]);
    assert_eq!(scope.kept_files.len(), 1);
    let curated = db.catalog.table(&db_name(), "t_curated").await.unwrap();
    assert_eq!(
        curated.records, 30,
        "the gone object's rows are still in the table"
    );

    // It comes back: crawled again, and no longer gone.
    put(&lake, "t/2024/05/29/00/a.json", day_object(29, 10)).await;
    let back = crawl_t(&lake, &db).await;
    assert_eq!((back.objects_crawled, back.objects_gone), (1, 0));
    assert_eq!(db.catalog.table(&db_name(), "t").await.unwrap().objects, 3);
}

tests::on_both_backends!(
    deleted_landings_are_noticed_and_what_they_gave_is_kept,
    every_landing_format_converts_and_reconciles,
    conversion_reconciles_against_the_crawl,
    one_bad_value_keeps_the_type_and_costs_only_its_record,
    a_type_change_waits_for_a_person_then_applies,
    an_invalid_byte_costs_only_its_record,
    a_field_past_the_sample_is_catalogued,
    the_update_policy_widens_a_dominant_new_type,
);
