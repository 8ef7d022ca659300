//! The catalog suite, run on SQLite and on Postgres: generated landings become tables, schemas
//! get versions and diffs, the `log` policy records without applying, changed objects are
//! recrawled once, conflicts keep their examples, and a recrawl of nothing new reads nothing.

use jobs::catalog::{CatalogDbName, SchemaPolicy};
use jobs::crawler::{CrawlOptions, CrawlReport, crawl};
use jobs::generate::{LandingsSpec, generate_landings};
use jobs::lake::{Lake, LakeKey};
use tests::{Backend, TestDb, put};

fn options(prefix: &str) -> CrawlOptions {
    CrawlOptions::new(
        CatalogDbName::parse("default").unwrap(),
        LakeKey::parse(prefix).unwrap(),
    )
}

fn default_db() -> CatalogDbName {
    CatalogDbName::parse("default").unwrap()
}

async fn crawl_ok(lake: &Lake, db: &TestDb, prefix: &str) -> CrawlReport {
    crawl(lake, &db.catalog, &options(prefix))
        .await
        .expect("crawl")
}

fn columns(schema: &arrow::datatypes::Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| {
            format!(
                "{}: {}",
                f.name(),
                jobs::catalog::schema::type_name(f.data_type())
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn generated_landings_become_tables(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    let spec = LandingsSpec::new(
        4,
        3,
        11,
        chrono::NaiveDate::from_ymd_opt(2024, 5, 30).unwrap(),
    );
    let generated = generate_landings(&lake, &spec).await.unwrap();

    let report = crawl_ok(&lake, &db, "landing").await;
    assert_eq!(
        report.objects_listed as u64,
        generated.objects + generated.error_objects
    );
    assert_eq!(report.objects_failed, 0, "{:?}", report.failures);
    assert_eq!(
        report.tables_created,
        ["errors_processing_failed", "telemetry"]
    );

    let telemetry = db.catalog.table(&default_db(), "telemetry").await.unwrap();
    assert_eq!(telemetry.location, "landing/telemetry");
    assert_eq!(
        (telemetry.format.as_str(), telemetry.compression.as_str()),
        ("ndjson", "gzip")
    );
    let keys: Vec<_> = telemetry
        .partition_keys
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(keys, ["year", "month", "day", "hour"]);
    assert_eq!(
        telemetry.records as u64, generated.records,
        "every landed line is counted"
    );
    assert_eq!(telemetry.objects as u64, generated.objects);
    insta::assert_snapshot!("generated_telemetry_columns", columns(&telemetry.schema));

    // Partitions are the arrival-hour folders, with their objects, bytes and records.
    let partitions = db
        .catalog
        .partitions(&default_db(), "telemetry")
        .await
        .unwrap();
    assert_eq!(partitions.len() as i64, telemetry.partitions);
    assert_eq!(
        partitions.iter().map(|p| p.object_count).sum::<i64>(),
        telemetry.objects
    );
    assert_eq!(
        partitions.iter().map(|p| p.record_estimate).sum::<i64>(),
        telemetry.records
    );
    let first = &partitions[0];
    assert_eq!(first.values, ["2024", "05", "30", "00"]);
    assert_eq!(first.location, "landing/telemetry/2024/05/30/00");

    // Firehose error envelopes are catalogued apart, with their codes and the decoded records' shape.
    let errors = db
        .catalog
        .table(&default_db(), "errors_processing_failed")
        .await
        .unwrap();
    assert_eq!(errors.kind.as_str(), "firehose_errors");
    let codes: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(errors.properties["error_codes"].clone()).unwrap();
    assert_eq!(codes.values().sum::<u64>(), generated.envelopes);
    let raw =
        jobs::catalog::schema::decode_schema(&errors.properties["raw_data_schema"].to_string())
            .unwrap();
    assert!(raw.field_with_name("device_id").is_ok(), "{raw:?}");
    assert_eq!(
        errors
            .schema
            .field_with_name("arrivalTimestamp")
            .unwrap()
            .data_type()
            .to_string(),
        "Timestamp(µs, \"+00:00\")"
    );

    // Nothing new: the recrawl reads nothing and changes nothing.
    let again = crawl_ok(&lake, &db, "landing").await;
    assert_eq!(
        (again.objects_crawled, again.objects_unchanged),
        (0, report.objects_listed)
    );
    assert!(again.tables_created.is_empty() && again.schema_versions.is_empty());
    let crawls = db.catalog.crawls(10).await.unwrap();
    assert_eq!(
        crawls.iter().map(|c| c.status.as_str()).collect::<Vec<_>>(),
        ["succeeded", "succeeded"]
    );
    assert_eq!(crawls[0].objects_skipped as usize, report.objects_listed);
}

async fn schema_versions_diffs_and_the_log_policy(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    put(
        &lake,
        "t/2024/05/30/00/a.json",
        "{\"a\":1,\"b\":2,\"loc\":{\"x\":1}}\n",
    )
    .await;
    let first = crawl_ok(&lake, &db, "t").await;
    assert_eq!(first.schema_versions[0].version, Some(1));

    put(
        &lake,
        "t/2024/05/30/01/b.json",
        "{\"a\":1.5,\"b\":2,\"c\":\"new\",\"loc\":{\"x\":1,\"y\":2}}\n",
    )
    .await;
    let second = crawl_ok(&lake, &db, "t").await;
    assert_eq!(second.tables_updated, ["t"]);
    assert_eq!(second.schema_versions[0].version, Some(2));

    let versions = db.catalog.versions(&default_db(), "t").await.unwrap();
    assert_eq!(versions.len(), 2);
    let diff = &versions[1].diff;
    let added: Vec<_> = diff
        .added
        .iter()
        .map(|c| format!("{} {}", c.column, c.type_name))
        .collect();
    assert_eq!(added, ["loc.y bigint", "c string"]);
    let widened: Vec<_> = diff
        .widened
        .iter()
        .map(|c| format!("{} {} -> {}", c.column, c.from, c.to))
        .collect();
    assert_eq!(widened, ["a bigint -> double"]);
    assert!(diff.removed.is_empty() && diff.changed.is_empty());
    assert_eq!(
        versions[0].schema.fields().len(),
        3,
        "version 1 keeps its schema"
    );
    assert_eq!(versions[1].crawl_id, Some(second.crawl_id));

    // Under `log` a change is recorded against the current version and not applied.
    db.catalog
        .set_schema_policy(&default_db(), "t", SchemaPolicy::Log)
        .await
        .unwrap();
    put(
        &lake,
        "t/2024/05/30/02/c.json",
        "{\"a\":1.5,\"b\":2,\"c\":\"x\",\"d\":true,\"loc\":{\"x\":1}}\n",
    )
    .await;
    let third = crawl_ok(&lake, &db, "t").await;
    assert!(third.schema_versions.is_empty());
    assert_eq!(third.logged_changes.len(), 1);
    let table = db.catalog.table(&default_db(), "t").await.unwrap();
    assert_eq!(table.current_version, 2);
    assert!(table.schema.field_with_name("d").is_err());
    let logged = db.catalog.schema_changes(&default_db(), "t").await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (logged[0].version, logged[0].diff.added[0].column.as_str()),
        (2, "d")
    );
    assert_eq!(
        table.objects, 3,
        "objects are catalogued whatever the policy"
    );

    // As Glue's LOG: the change stays logged while nothing re-reads those objects; a recrawl
    // under `update` applies it. A field once in the schema is never dropped.
    db.catalog
        .set_schema_policy(&default_db(), "t", SchemaPolicy::Update)
        .await
        .unwrap();
    put(&lake, "t/2024/05/30/03/d.json", "{\"a\":2.5}\n").await;
    let fourth = crawl_ok(&lake, &db, "t").await;
    assert!(fourth.schema_versions.is_empty(), "{fourth:?}");
    let recrawl = crawl(
        &lake,
        &db.catalog,
        &CrawlOptions {
            recrawl: true,
            ..options("t")
        },
    )
    .await
    .unwrap();
    assert_eq!(recrawl.schema_versions.len(), 1);
    let versions = db.catalog.versions(&default_db(), "t").await.unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(
        versions[2]
            .diff
            .added
            .iter()
            .map(|c| c.column.as_str())
            .collect::<Vec<_>>(),
        ["d"]
    );
    assert!(versions[2].diff.removed.is_empty());
    assert!(versions[2].schema.field_with_name("c").is_ok());
}

async fn daily_crawls_version_the_firmware_upgrade(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    // Over 6 days, firmware 2.0 (and its `noise_db` field) reaches the devices from day 3.
    let spec = LandingsSpec::new(
        3,
        6,
        3,
        chrono::NaiveDate::from_ymd_opt(2024, 5, 1).unwrap(),
    );
    generate_landings(&lake, &spec).await.unwrap();
    let first = crawl_ok(&lake, &db, "landing/telemetry/2024/05/01").await;
    assert_eq!(first.tables_created, ["telemetry"]);
    let table = db.catalog.table(&default_db(), "telemetry").await.unwrap();
    assert!(table.schema.field_with_name("noise_db").is_err());
    let mut versions_seen = Vec::new();
    for day in 2..=6 {
        let report = crawl_ok(&lake, &db, &format!("landing/telemetry/2024/05/0{day}")).await;
        assert!(
            report.objects_crawled > 0 && report.tables_created.is_empty(),
            "{report:?}"
        );
        versions_seen.extend(
            report
                .schema_versions
                .iter()
                .map(|v| (day, v.version, v.diff.added.clone())),
        );
    }
    assert_eq!(
        versions_seen.len(),
        1,
        "one new version, the day the new field landed: {versions_seen:?}"
    );
    let (_, version, added) = &versions_seen[0];
    assert_eq!(*version, Some(2));
    assert_eq!(
        added
            .iter()
            .map(|c| format!("{} {}", c.column, c.type_name))
            .collect::<Vec<_>>(),
        ["noise_db double"]
    );
    // The next day lands, with day 6's late arrivals in day 7's arrival folder. The rest of the
    // landing prefix (the error envelopes and day 7) joins telemetry without a new version.
    generate_landings(
        &lake,
        &LandingsSpec {
            days: 7,
            from_day: 6,
            ..spec.clone()
        },
    )
    .await
    .unwrap();
    let rest = crawl_ok(&lake, &db, "landing").await;
    assert_eq!(rest.tables_created, ["errors_processing_failed"]);
    assert_eq!(rest.tables_updated, ["telemetry"]);
    assert!(
        rest.schema_versions.iter().all(|v| v.table != "telemetry"),
        "{:?}",
        rest.schema_versions
    );
    let partitions = db
        .catalog
        .partitions(&default_db(), "telemetry")
        .await
        .unwrap();
    assert_eq!(partitions.last().unwrap().values[..3], ["2024", "05", "07"]);
}

async fn changed_objects_are_recrawled_and_counted_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    put(&lake, "t/2024/05/30/00/a.json", "{\"a\":1}\n{\"a\":2}\n").await;
    crawl_ok(&lake, &db, "t").await;
    put(
        &lake,
        "t/2024/05/30/00/a.json",
        "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n",
    )
    .await;
    let report = crawl_ok(&lake, &db, "t").await;
    assert_eq!(
        (
            report.objects_changed,
            report.objects_new,
            report.objects_crawled
        ),
        (1, 0, 1)
    );
    let partitions = db.catalog.partitions(&default_db(), "t").await.unwrap();
    assert_eq!(partitions.len(), 1);
    assert_eq!(
        (partitions[0].object_count, partitions[0].record_estimate),
        (1, 3)
    );
    let recrawl = crawl(
        &lake,
        &db.catalog,
        &CrawlOptions {
            recrawl: true,
            ..options("t")
        },
    )
    .await
    .unwrap();
    assert_eq!(recrawl.objects_crawled, 1);
    let table = db.catalog.table(&default_db(), "t").await.unwrap();
    assert_eq!((table.objects, table.records), (1, 3));
}

async fn conflicts_are_recorded_with_examples(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    put(
        &lake,
        "t/a.json",
        "{\"t\":1.5,\"id\":1}\n{\"t\":\"n/a\",\"id\":2}\n",
    )
    .await;
    let report = crawl_ok(&lake, &db, "t").await;
    assert_eq!(report.conflicts.len(), 1);
    let conflicts = db.catalog.conflicts(&default_db(), "t").await.unwrap();
    assert_eq!(
        conflicts,
        [(
            report.crawl_id,
            jobs::crawler::infer::Conflict {
                path: "t".to_owned(),
                types: vec!["double".to_owned(), "string".to_owned()],
                examples: vec![
                    ("double".to_owned(), "1.5".to_owned()),
                    ("string".to_owned(), "\"n/a\"".to_owned())
                ],
                counts: vec![("double".to_owned(), 1), ("string".to_owned(), 1)],
                resolved: "string".to_owned(),
                resolution: jobs::crawler::infer::Resolution::WrittenAsText,
            }
        )],
        "no type dominates half and half: the column is text"
    );
    let table = db.catalog.table(&default_db(), "t").await.unwrap();
    assert_eq!(
        table.schema.field_with_name("t").unwrap().data_type(),
        &arrow::datatypes::DataType::Utf8
    );
    let missing = db.catalog.table(&default_db(), "nope").await.unwrap_err();
    assert_eq!(
        missing.to_string(),
        "table \"nope\" not found in catalog database \"default\""
    );
}

async fn migrations_are_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    assert_eq!(db.catalog.migrate().await.unwrap(), 0);
    let again = jobs::catalog::Catalog::connect(&db.url, &Default::default())
        .await
        .unwrap();
    assert_eq!(again.migrate().await.unwrap(), 0);
}

tests::on_both_backends!(
    generated_landings_become_tables,
    daily_crawls_version_the_firmware_upgrade,
    schema_versions_diffs_and_the_log_policy,
    changed_objects_are_recrawled_and_counted_once,
    conflicts_are_recorded_with_examples,
    migrations_are_idempotent,
);
