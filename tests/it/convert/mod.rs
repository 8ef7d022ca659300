//! Conversion: exactly once across reruns and stops at every commit point, reconciliation on
//! generated landings (NDJSON and `}{`), a late field that survives, a type conflict quarantined
//! with its reason, schema evolution, reprocessing, and the output read back by DuckDB.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};
use futures::TryStreamExt;
use jobs::catalog::CatalogDbName;
use jobs::convert::{ConvertMode, ConvertOptions, ConvertReport, FailPoint, convert, vacuum};
use jobs::crawler::{CrawlOptions, crawl};
use jobs::generate::{GenerateReport, LandingsSpec, generate_landings};
use jobs::lake::{Lake, LakeKey};
use object_store::ObjectStoreExt;
use tests::{Backend, TestDb, put};

mod reprocess_range;
mod shaping;

use reprocess_range::a_range_is_rebuilt_with_its_lineage_and_nothing_else;

fn db_name() -> CatalogDbName {
    CatalogDbName::parse("default").unwrap()
}

async fn landed(lake: &Lake, db: &TestDb, concat: bool) -> GenerateReport {
    let spec = LandingsSpec {
        concat,
        ..LandingsSpec::new(
            3,
            2,
            21,
            chrono::NaiveDate::from_ymd_opt(2024, 5, 30).unwrap(),
        )
    };
    let generated = generate_landings(lake, &spec).await.unwrap();
    crawl(
        lake,
        &db.catalog,
        &CrawlOptions::new(db_name(), LakeKey::parse("landing").unwrap()),
    )
    .await
    .unwrap();
    generated
}

async fn convert_table(
    lake: &Lake,
    db: &TestDb,
    table: &str,
    tweak: impl FnOnce(&mut ConvertOptions),
) -> jobs::Result<ConvertReport> {
    let mut options = ConvertOptions::new(db_name(), table);
    tweak(&mut options);
    convert(lake, lake, &db.catalog, &options).await
}

/// The run's quarantine entries, in the order they were written.
async fn quarantine_entries(lake: &Lake, report: &ConvertReport) -> Vec<serde_json::Value> {
    let key = report
        .quarantine
        .as_deref()
        .expect("the run quarantined records");
    let bytes = lake.get(&LakeKey::parse(key).unwrap()).await.unwrap();
    std::str::from_utf8(&bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Records read, written and quarantined by a run.
fn counts(report: &ConvertReport) -> (u64, u64, u64) {
    (
        report.records_read,
        report.records_written,
        report.records_quarantined,
    )
}

/// Every row of the visible (non-staging) Parquet files under a prefix.
async fn visible_batches(lake: &Lake, prefix: &str) -> Vec<(String, RecordBatch)> {
    let keys: Vec<String> = lake
        .store()
        .list(Some(&object_store::path::Path::from(prefix)))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in keys
        .into_iter()
        .filter(|k| k.ends_with(".parquet") && !k.contains("/_staging/"))
    {
        let bytes = lake.get(&LakeKey::parse(&key).unwrap()).await.unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            out.push((key.clone(), batch.unwrap()));
        }
    }
    out
}

/// (device_id, ts) of every visible row; panics on a duplicate.
async fn unique_rows(lake: &Lake) -> usize {
    let mut seen = HashSet::new();
    for (key, batch) in visible_batches(lake, "curated/telemetry").await {
        let devices = batch
            .column_by_name("device_id")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let ts = batch
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .clone();
        for row in 0..batch.num_rows() {
            assert!(
                seen.insert((devices.value(row).to_owned(), ts.value(row))),
                "row {row} of {key} is written twice"
            );
        }
    }
    seen.len()
}

async fn exactly_once_across_a_stop_at_each_commit_point(backend: Backend) {
    for fail_at in [
        FailPoint::BeforeCommit,
        FailPoint::AfterCommit,
        FailPoint::MidPublish,
    ] {
        let db = TestDb::new(backend).await;
        let lake = Lake::in_memory();
        let generated = landed(&lake, &db, false).await;
        let stopped = convert_table(&lake, &db, "telemetry", |o| o.fail_at = Some(fail_at)).await;
        assert!(stopped.is_err(), "{fail_at:?} should stop the run");
        let rerun = convert_table(&lake, &db, "telemetry", |_| {})
            .await
            .unwrap();
        let again = convert_table(&lake, &db, "telemetry", |_| {})
            .await
            .unwrap();
        assert_eq!(again.sources, 0, "{fail_at:?}: nothing left to convert");
        let cleaned = vacuum(&lake, &db.catalog, 0).await.unwrap();
        if fail_at == FailPoint::BeforeCommit {
            assert_eq!(
                cleaned.runs_cleaned.len(),
                1,
                "the stopped run's staged files are removed"
            );
            assert_eq!(rerun.sources as u64, generated.objects);
        }

        let table = db.catalog.table(&db_name(), "telemetry").await.unwrap();
        let bookmarks = db.catalog.bookmarks(table.id).await.unwrap();
        assert_eq!(
            bookmarks.len() as u64,
            generated.objects,
            "{fail_at:?}: every object converted once"
        );
        let written: i64 = bookmarks.iter().map(|b| b.records_written).sum();
        let quarantined: i64 = bookmarks.iter().map(|b| b.records_quarantined).sum();
        assert_eq!(
            (written + quarantined) as u64,
            generated.records,
            "{fail_at:?}: nothing lost"
        );
        assert_eq!(
            quarantined as u64, generated.malformed_records,
            "{fail_at:?}: exactly the malformed records are quarantined"
        );
        assert_eq!(
            unique_rows(&lake).await as i64,
            written,
            "{fail_at:?}: every written record is visible once"
        );
        let staging: Vec<_> = lake
            .store()
            .list(Some(&"curated/telemetry/_staging".into()))
            .try_collect()
            .await
            .unwrap();
        assert!(
            staging.is_empty(),
            "{fail_at:?}: no staged file is left: {staging:?}"
        );
        let curated = db
            .catalog
            .table(&db_name(), "telemetry_curated")
            .await
            .unwrap();
        assert_eq!(
            curated.records, written,
            "the curated table's figures come from its committed files"
        );
    }
}

async fn reconciliation_on_ndjson_and_concatenated_landings(backend: Backend) {
    for concat in [false, true] {
        let db = TestDb::new(backend).await;
        let lake = Lake::in_memory();
        let generated = landed(&lake, &db, concat).await;
        let report = convert_table(&lake, &db, "telemetry", |_| {})
            .await
            .unwrap();
        assert!(report.reconciled);
        assert_eq!(report.records_read, generated.records, "concat={concat}");
        assert_eq!(
            report.records_read,
            report.records_written + report.records_quarantined
        );
        assert_eq!(
            report.records_quarantined, generated.malformed_records,
            "concat={concat}"
        );
        let entries = quarantine_entries(&lake, &report).await;
        assert_eq!(entries.len() as u64, report.records_quarantined);
        for entry in &entries {
            assert!(
                entry["source_key"]
                    .as_str()
                    .unwrap()
                    .starts_with("landing/telemetry/")
            );
            assert!(
                entry["line"].as_u64().unwrap() >= 1
                    && !entry["reason"].as_str().unwrap().is_empty(),
                "{entry}"
            );
        }
        // Late records land in their event-time partition, whatever folder they arrived in.
        let partitions = db
            .catalog
            .partitions(&db_name(), "telemetry_curated")
            .await
            .unwrap();
        let days: Vec<String> = partitions.iter().map(|p| p.values.join("-")).collect();
        assert_eq!(days, ["2024-05-30", "2024-05-31"]);
    }
}

async fn late_fields_conflicts_and_schema_versions(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    let mut big: String = (0..20_000)
        .map(|i| {
            let pm25 = if i == 15_000 { "\"ERR\"".to_owned() } else { format!("{}.5", i % 50) };
            format!("{{\"device_id\":\"d{}\",\"ts\":\"2024-05-30T{:02}:{:02}:{:02}Z\",\"pm25\":{pm25}}}\n", i % 7, i / 3600 % 24, i / 60 % 60, i % 60)
        })
        .collect();
    big.push_str("{\"device_id\":\"d9\",\"ts\":\"2024-05-30T23:59:59Z\",\"pm25\":1.5,\"firmware\":{\"v\":2}}\n");
    put(&lake, "t/2024/05/30/23/big.json", big).await;
    crawl(
        &lake,
        &db.catalog,
        &CrawlOptions::new(db_name(), LakeKey::parse("t").unwrap()),
    )
    .await
    .unwrap();
    let crawled = db.catalog.table(&db_name(), "t").await.unwrap();
    assert!(
        crawled.schema.field_with_name("firmware").is_ok(),
        "the crawl's key scan finds the field past its sample"
    );

    let report = convert_table(&lake, &db, "t", |_| {}).await.unwrap();
    assert_eq!(
        (
            report.records_read,
            report.records_written,
            report.records_quarantined
        ),
        (20_001, 20_000, 1)
    );
    assert!(report.new_columns.is_empty(), "{:?}", report.new_columns);
    let entry = &quarantine_entries(&lake, &report).await[0];
    assert_eq!(entry["line"], 15_001);
    assert!(
        entry["reason"].as_str().unwrap().contains("pm25"),
        "{entry}"
    );
    assert!(entry["record"].as_str().unwrap().contains("\"ERR\""));
    // The late field is in the landing table's first version and in the Parquet, last row included.
    let versions = db.catalog.versions(&db_name(), "t").await.unwrap();
    assert_eq!(versions.len(), 1);
    let firmware_rows: usize = visible_batches(&lake, "curated/t")
        .await
        .iter()
        .filter_map(|(_, b)| {
            b.column_by_name("firmware")
                .map(|c| c.len() - c.null_count())
        })
        .sum();
    assert_eq!(firmware_rows, 1);

    // A later object with a new column: the curated table gets a new version, old files keep theirs.
    put(
        &lake,
        "t/2024/05/31/00/next.json",
        "{\"device_id\":\"d1\",\"ts\":\"2024-05-31T00:00:01Z\",\"pm25\":2.5,\"no2\":7}\n",
    )
    .await;
    crawl(
        &lake,
        &db.catalog,
        &CrawlOptions::new(db_name(), LakeKey::parse("t").unwrap()),
    )
    .await
    .unwrap();
    let next = convert_table(&lake, &db, "t", |_| {}).await.unwrap();
    let curated_versions = db.catalog.versions(&db_name(), "t_curated").await.unwrap();
    assert_eq!(
        next.schema_version,
        Some(curated_versions.last().unwrap().version)
    );
    assert!(curated_versions.len() >= 2);
    let curated = db.catalog.table(&db_name(), "t_curated").await.unwrap();
    let files = db.catalog.curated_files(curated.id).await.unwrap();
    let versions: HashSet<i64> = files.iter().map(|f| f.schema_version).collect();
    assert!(
        versions.len() >= 2,
        "files record the schema version they were written with: {versions:?}"
    );
    for (key, batch) in visible_batches(&lake, "curated/t/year=2024/month=05/day=31").await {
        assert!(batch.column_by_name("no2").is_some(), "{key}");
    }
}

async fn reprocess_replaces_files_atomically_and_dry_run_writes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    landed(&lake, &db, false).await;
    let dry = convert_table(&lake, &db, "telemetry", |o| o.mode = ConvertMode::DryRun)
        .await
        .unwrap();
    assert!(dry.sources > 0 && dry.run_id.is_none());
    assert!(visible_batches(&lake, "curated").await.is_empty());
    let first = convert_table(&lake, &db, "telemetry", |_| {})
        .await
        .unwrap();
    let before = unique_rows(&lake).await;
    let again = convert_table(&lake, &db, "telemetry", |o| o.mode = ConvertMode::Reprocess)
        .await
        .unwrap();
    assert_eq!(again.sources, first.sources);
    assert_eq!(unique_rows(&lake).await, before, "the same rows, once");
    let old: HashSet<&String> = first.files.iter().collect();
    assert!(
        again.files.iter().all(|f| !old.contains(f)),
        "new files replace the old ones"
    );
    for file in &first.files {
        assert!(
            lake.store().head(&file.as_str().into()).await.is_err(),
            "{file} is deleted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_reads_back_in_duckdb_with_hive_partitioning() {
    let python = std::env::var("SLUICE_TEST_PYTHON")
        .unwrap_or_else(|_| panic!("SLUICE_TEST_PYTHON is not set: this test needs the Python with DuckDB that scripts/test.sh prepares"));
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(
        &format!("file://{}", dir.path().display()),
        &Default::default(),
    )
    .unwrap();
    landed(&lake, &db, true).await;
    let report = convert_table(&lake, &db, "telemetry", |_| {})
        .await
        .unwrap();
    let script = r#"
import duckdb, json, sys
con = duckdb.connect(); con.execute("SET TimeZone='UTC'")
q = f"read_parquet('{sys.argv[1]}/**/*.parquet', hive_partitioning=true, union_by_name=true)"
rows = con.execute(f"SELECT count(*) FROM {q}").fetchone()[0]
wrong = con.execute(f"SELECT count(*) FROM {q} WHERE year(ts)<>year OR month(ts)<>month OR day(ts)<>day").fetchone()[0]
# Folders are zero-padded (month=05), which DuckDB reads as text: compare as numbers.
parts = con.execute(f"SELECT DISTINCT year::INT, month::INT, day::INT FROM {q} ORDER BY ALL").fetchall()
nested = con.execute(f"SELECT count(*) FROM {q} WHERE location.site IS NOT NULL").fetchone()[0]
print(json.dumps({"rows": rows, "wrong": wrong, "partitions": [list(p) for p in parts], "nested": nested}))
"#;
    let output = std::process::Command::new(python)
        .args([
            "-c",
            script,
            &format!("{}/curated/telemetry", dir.path().display()),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["rows"], report.records_written);
    assert_eq!(result["wrong"], 0);
    assert_eq!(
        result["partitions"],
        serde_json::json!([[2024, 5, 30], [2024, 5, 31]])
    );
    assert_eq!(
        result["nested"], report.records_written,
        "nested structs stay structs"
    );
}

tests::on_both_backends!(
    exactly_once_across_a_stop_at_each_commit_point,
    reconciliation_on_ndjson_and_concatenated_landings,
    late_fields_conflicts_and_schema_versions,
    reprocess_replaces_files_atomically_and_dry_run_writes_nothing,
    a_range_is_rebuilt_with_its_lineage_and_nothing_else,
);
