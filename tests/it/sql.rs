//! SQL over the catalog, on both backends: `sluice query`'s partition pruning, and derived
//! tables (`sluice:transform`) built exactly once per input, across stops at each commit point,
//! with what a transform refuses.

use futures::TryStreamExt;
use jobs::catalog::conversion::CuratedTableWrite;
use jobs::catalog::transform::TransformCommit;
use jobs::catalog::{TableKind, TableName};
use jobs::convert::{FailPoint, vacuum};
use jobs::lake::{Lake, LakeKey};
use jobs::transform::{TransformOptions, TransformReport, TransformStatus, transform};
use serde_json::json;
use tests::{Backend, TestDb, put};

use crate::dirty_data::{convert_t, crawl_t, day_object, db_name, three_days};

tests::on_both_backends!(
    sql_over_the_catalog_prunes_partitions,
    a_transform_builds_a_derived_table_once_per_input,
    a_transform_is_exactly_once_across_stops,
    what_a_transform_refuses,
);

async fn sql_over_the_catalog_prunes_partitions(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    three_days(&lake, &db).await;
    convert_t(&lake, &db).await;

    let result = jobs::query::query(
        &lake,
        &lake,
        &db.catalog,
        &db_name(),
        "SELECT device_id, count(*) AS n, round(avg(pm25), 2) AS mean FROM t_curated \
         WHERE year = 2024 AND day = 29 GROUP BY device_id ORDER BY device_id",
    )
    .await
    .unwrap();
    let rows = jobs::query::rows_json(&result.frame, 10);
    assert_eq!(
        serde_json::Value::from(rows),
        serde_json::json!([
            {"device_id": "d0", "n": 5, "mean": 4.5},
            {"device_id": "d1", "n": 5, "mean": 3.7}
        ])
    );
    let read = &result.tables[0];
    assert_eq!(
        (
            read.files_read,
            read.files_total,
            read.partitions_read,
            read.partitions_total
        ),
        (1, 3, 1, 3),
        "{read:?}"
    );
    assert_eq!(read.pruned_by, ["year = 2024", "day = 29"]);

    // The landing table too, by its Firehose partitions; an OR prunes nothing.
    let landing = jobs::query::query(
        &lake,
        &lake,
        &db.catalog,
        &db_name(),
        "SELECT count(*) AS n FROM t WHERE day = 30 OR day = 28",
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::Value::from(jobs::query::rows_json(&landing.frame, 1)),
        serde_json::json!([{"n": 20}])
    );
    assert_eq!(landing.tables[0].files_read, 3);

    let missing = jobs::query::query(&lake, &lake, &db.catalog, &db_name(), "SELECT * FROM nope")
        .await
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "table \"nope\" not found in catalog database \"default\""
    );
    let csv = jobs::query::to_csv(&result.frame).unwrap();
    assert_eq!(csv, "device_id,n,mean\nd0,5,4.5\nd1,5,3.7\n");
}

/// Readings per device and date, with their mean: the daily aggregate of `t_curated`.
const DAILY: &str = "SELECT device_id, date, COUNT(*) AS readings, AVG(pm25) AS mean \
     FROM (SELECT device_id, CAST(ts AS DATE) AS date, pm25 FROM t_curated) AS r \
     GROUP BY device_id, date ORDER BY date, device_id";

fn daily(sql: &str) -> TransformOptions {
    TransformOptions {
        partition_by: vec!["date".into()],
        ..TransformOptions::new(db_name(), TableName::parse("daily").unwrap(), sql)
    }
}

async fn build(lake: &Lake, db: &TestDb, options: &TransformOptions) -> TransformReport {
    transform(lake, &db.catalog, options)
        .await
        .expect("transform")
}

/// One query's rows as JSON.
async fn rows(lake: &Lake, db: &TestDb, sql: &str) -> serde_json::Value {
    let result = jobs::query::query(lake, lake, &db.catalog, &db_name(), sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    serde_json::Value::from(jobs::query::rows_json(&result.frame, 100))
}

/// Keys under a prefix of the lake, sorted.
async fn keys(lake: &Lake, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = lake
        .store()
        .list(Some(&prefix.into()))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn a_transform_builds_a_derived_table_once_per_input(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    three_days(&lake, &db).await;
    convert_t(&lake, &db).await;

    let built = build(&lake, &db, &daily(DAILY)).await;
    assert_eq!(built.status, TransformStatus::Built);
    assert_eq!(
        (
            built.rows,
            built.files,
            built.partitions,
            built.schema_version
        ),
        (6, 3, 3, 1),
        "{built:?}"
    );
    assert_eq!(built.sources.len(), 1);
    let source = &built.sources[0];
    assert_eq!(
        (
            source.table.as_str(),
            source.files_read,
            source.files_total,
            source.rows_read
        ),
        ("t_curated", 3, 3, 30)
    );

    // Registered as a curated table: its schema, its partition key, its figures.
    let table = db.catalog.table(&db_name(), "daily").await.unwrap();
    assert_eq!(table.kind, TableKind::Curated);
    let columns: Vec<&str> = table
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(columns, ["device_id", "readings", "mean"]);
    let keys_of: Vec<&str> = table
        .partition_keys
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(keys_of, ["date"]);
    assert_eq!((table.records, table.current_version), (6, 1));

    // Read like any curated table, its partitions pruned by date.
    assert_eq!(
        rows(&lake, &db, "SELECT device_id, readings, mean FROM daily WHERE date = '2024-05-29' ORDER BY device_id").await,
        json!([
            {"device_id": "d0", "readings": 5, "mean": 4.5},
            {"device_id": "d1", "readings": 5, "mean": 3.7}
        ])
    );
    let pruned = jobs::query::query(
        &lake,
        &lake,
        &db.catalog,
        &db_name(),
        "SELECT * FROM daily WHERE date = '2024-05-29'",
    )
    .await
    .unwrap();
    assert_eq!(
        (pruned.tables[0].files_read, pruned.tables[0].files_total),
        (1, 3)
    );

    // The same input again: nothing is written.
    let files = keys(&lake, "curated/daily").await;
    let again = build(&lake, &db, &daily(DAILY)).await;
    assert_eq!(again.status, TransformStatus::Unchanged);
    assert_eq!(
        (again.run_id, &again.input_id),
        (built.run_id, &built.input_id)
    );
    assert_eq!((again.rows, again.files), (6, 3));
    assert_eq!(keys(&lake, "curated/daily").await, files);

    // A new day lands: the table is rebuilt from the new state, every row once.
    put(&lake, "t/2024/05/31/00/a.json", day_object(31, 10)).await;
    crawl_t(&lake, &db).await;
    convert_t(&lake, &db).await;
    let rebuilt = build(&lake, &db, &daily(DAILY)).await;
    assert_eq!(rebuilt.status, TransformStatus::Built);
    assert_ne!(rebuilt.run_id, built.run_id);
    assert_ne!(rebuilt.input_id, built.input_id);
    assert_eq!(
        (
            rebuilt.rows,
            rebuilt.partitions,
            rebuilt.schema_version,
            rebuilt.schema_changed
        ),
        (8, 4, 1, false)
    );
    assert_eq!(
        rows(
            &lake,
            &db,
            "SELECT SUM(readings) AS n, COUNT(*) AS rows FROM daily"
        )
        .await,
        json!([{"n": 40, "rows": 8}])
    );
    let cleaned = vacuum(&lake, &db.catalog, 0).await.unwrap();
    assert_eq!(cleaned.replaced_files_deleted, 3, "the first build's files");
    let now: Vec<String> = keys(&lake, "curated/daily").await;
    assert_eq!(now.len(), 4, "{now:?}");
    assert!(
        now.iter()
            .all(|k| k.ends_with(".parquet") && !k.contains("_staging")),
        "{now:?}"
    );
    assert!(
        now.iter()
            .any(|k| k.starts_with("curated/daily/date=2024-05-31/")),
        "{now:?}"
    );

    // The SQL changes: a new column makes a schema version.
    let wider = DAILY.replace("AVG(pm25) AS mean", "AVG(pm25) AS mean, MAX(pm25) AS max");
    let widened = build(&lake, &db, &daily(&wider)).await;
    assert_eq!(
        (
            widened.status,
            widened.schema_version,
            widened.schema_changed
        ),
        (TransformStatus::Built, 2, true)
    );
    let versions = db.catalog.versions(&db_name(), "daily").await.unwrap();
    assert_eq!(versions.len(), 2);
    let added: Vec<&str> = versions[1]
        .diff
        .added
        .iter()
        .map(|c| c.column.as_str())
        .collect();
    assert_eq!(added, ["max"]);
    assert_eq!(
        rows(&lake, &db, "SELECT MAX(max) AS top FROM daily").await,
        json!([{"top": 8.5}])
    );
}

async fn a_transform_is_exactly_once_across_stops(backend: Backend) {
    for fail_at in [
        FailPoint::BeforeCommit,
        FailPoint::AfterCommit,
        FailPoint::MidPublish,
    ] {
        let db = TestDb::new(backend).await;
        let lake = Lake::in_memory();
        three_days(&lake, &db).await;
        convert_t(&lake, &db).await;
        let stopping = TransformOptions {
            fail_at: Some(fail_at),
            ..daily(DAILY)
        };
        assert!(
            transform(&lake, &db.catalog, &stopping).await.is_err(),
            "{fail_at:?} stops the run"
        );
        let rerun = build(&lake, &db, &daily(DAILY)).await;
        let expected = if fail_at == FailPoint::BeforeCommit {
            TransformStatus::Built
        } else {
            // The stopped run committed: the rerun only finishes moving its files.
            TransformStatus::Unchanged
        };
        assert_eq!(rerun.status, expected, "{fail_at:?}");
        vacuum(&lake, &db.catalog, 0).await.unwrap();
        assert_eq!(
            rows(
                &lake,
                &db,
                "SELECT SUM(readings) AS n, COUNT(*) AS rows FROM daily"
            )
            .await,
            json!([{"n": 30, "rows": 6}]),
            "{fail_at:?}: every row once"
        );
        let files = keys(&lake, "curated/daily").await;
        assert_eq!(files.len(), 3, "{fail_at:?}: {files:?}");
        assert!(
            files.iter().all(|k| !k.contains("_staging")),
            "{fail_at:?}: no staged file is left: {files:?}"
        );
    }
}

async fn what_a_transform_refuses(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    three_days(&lake, &db).await;
    convert_t(&lake, &db).await;
    let refusal = |options: TransformOptions| {
        let (lake, db) = (&lake, &db);
        async move {
            transform(lake, &db.catalog, &options)
                .await
                .expect_err("refused")
                .to_string()
        }
    };
    let named = |name: &str, sql: &str| {
        TransformOptions::new(db_name(), TableName::parse(name).unwrap(), sql)
    };

    let landing = refusal(named("t", "SELECT * FROM t_curated")).await;
    assert!(
        landing.contains("t is a landing table that a transform did not make"),
        "{landing}"
    );
    let converted = refusal(named("t_curated", "SELECT 1 AS n FROM t_curated")).await;
    assert!(
        converted.contains("t_curated is a curated table that a transform did not make"),
        "{converted}"
    );
    let reads_landing = refusal(named("x", "SELECT * FROM t")).await;
    assert!(
        reads_landing.contains("t is a landing table: a transform reads curated tables"),
        "{reads_landing}"
    );
    let overlapping = refusal(TransformOptions {
        dest: LakeKey::parse("curated/t").unwrap(),
        ..named("x", "SELECT * FROM t_curated")
    })
    .await;
    assert!(
        overlapping.contains("where table t_curated lives"),
        "{overlapping}"
    );
    let float_key = refusal(TransformOptions {
        partition_by: vec!["mean".into()],
        ..named(
            "x",
            "SELECT device_id, AVG(pm25) AS mean FROM t_curated GROUP BY device_id",
        )
    })
    .await;
    assert!(float_key.contains("mean is f64"), "{float_key}");
    assert!(
        db.catalog.table(&db_name(), "x").await.is_err(),
        "nothing refused is registered"
    );

    let built = build(&lake, &db, &daily(DAILY)).await;
    let itself = refusal(named("daily", "SELECT * FROM daily")).await;
    assert!(
        itself.contains("the query reads daily, the table it writes"),
        "{itself}"
    );

    // Two runs that raced from the same state: the second commit is refused.
    let table = db.catalog.table(&db_name(), "daily").await.unwrap();
    let commit = |run_id: i64| TransformCommit {
        run_id,
        catalog_db: db_name(),
        curated: CuratedTableWrite {
            existing_id: Some(table.id),
            name: "daily".into(),
            location: table.location.clone(),
            partition_keys: table.partition_keys.clone(),
            new_versions: vec![],
        },
        files: vec![],
        input_id: "tf-race".into(),
        sql: DAILY.into(),
        sources: json!([]),
        previous_run: built.run_id,
        rows: 0,
        duration_ms: 0,
        report: json!({}),
    };
    let source = db.catalog.table(&db_name(), "t_curated").await.unwrap();
    let first = db
        .catalog
        .begin_conversion(source.id, &table.location)
        .await
        .unwrap();
    let second = db
        .catalog
        .begin_conversion(source.id, &table.location)
        .await
        .unwrap();
    db.catalog.commit_transform(&commit(first)).await.unwrap();
    let raced = db
        .catalog
        .commit_transform(&commit(second))
        .await
        .unwrap_err();
    assert!(
        raced.to_string().contains(&format!(
            "another run of daily committed after run {} while this one ran",
            built.run_id
        )),
        "{raced}"
    );
}
