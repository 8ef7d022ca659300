//! Conversion that reshapes what it writes: compaction merging a partition's small files, and a
//! table's mapping (flatten, rename, drop, cast) applied on the way to Parquet.

use std::collections::HashSet;

use jobs::crawler::{CrawlOptions, crawl};
use jobs::lake::{Lake, LakeKey};
use tests::{Backend, TestDb, put};

use jobs::convert::ConvertReport;

use super::{
    convert_table, counts, db_name, landed, quarantine_entries, unique_rows, visible_batches,
};

tests::on_both_backends!(
    compaction_merges_small_files_and_keeps_every_row,
    a_mapping_flattens_renames_drops_and_casts,
    delimited_landings_convert_and_bad_rows_keep_their_csv_lines,
    apache_log_landings_convert_by_request_time,
);

/// Lands `objects`, crawls `table` (expecting `failed` objects the crawler cannot read), and
/// converts it.
async fn land_crawl_convert(
    lake: &Lake,
    db: &TestDb,
    table: &str,
    objects: Vec<(&str, Vec<u8>)>,
    failed: usize,
) -> ConvertReport {
    for (key, bytes) in objects {
        put(lake, key, bytes).await;
    }
    let crawled = crawl(
        lake,
        &db.catalog,
        &CrawlOptions::new(db_name(), LakeKey::parse(table).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(crawled.objects_failed, failed, "{:?}", crawled.failures);
    convert_table(lake, db, table, |_| {}).await.unwrap()
}

async fn apache_log_landings_convert_by_request_time(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    let mut log = String::new();
    for i in 0..30 {
        // Around midnight UTC in +02:00: the first fifteen requests are still the 29th in UTC.
        log.push_str(&format!(
            "10.0.0.{i} - alice [30/May/2024:{:02}:{:02}:00 +0200] \"GET /api/{i} HTTP/1.1\" 200 {}\n",
            1 + i / 15,
            (i * 4) % 60,
            100 + i
        ));
    }
    log.push_str("not a log line at all\n"); // line 31
    log.push_str(
        "10.0.0.99 - - [30/May/2024:02:00:00 +0200] \"GET / HTTP/1.1\" 404 -\n", // no bytes: null
    );
    let object = tests::gzip(log.as_bytes());
    let objects = vec![("access/2024/05/30/00/part-0.log.gz", object)];
    let report = land_crawl_convert(&lake, &db, "access", objects, 0).await;
    assert_eq!(counts(&report), (32, 31, 1), "{report:?}");
    let mut partitions = report.partitions.clone();
    partitions.sort();
    assert!(
        partitions[0].ends_with("day=29") && partitions[1].ends_with("day=30"),
        "partitioned by the request's time in UTC: {partitions:?}"
    );
    let batches = visible_batches(&lake, "curated/access").await;
    let rows: usize = batches.iter().map(|(_, b)| b.num_rows()).sum();
    assert_eq!(rows, 31);
    let (_, batch) = &batches[0];
    for (column, data_type) in [
        ("response", arrow::datatypes::DataType::Int64),
        ("bytes", arrow::datatypes::DataType::Int64),
        ("verb", arrow::datatypes::DataType::Utf8),
    ] {
        assert_eq!(
            batch.column_by_name(column).unwrap().data_type(),
            &data_type
        );
    }
    let entry = &quarantine_entries(&lake, &report).await[0];
    assert_eq!(entry["line"], 31, "{entry}");
    assert_eq!(entry["record"], "not a log line at all", "{entry}");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("does not match the Apache common log format"),
        "{entry}"
    );
}

async fn delimited_landings_convert_and_bad_rows_keep_their_csv_lines(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    let mut csv = String::from("device_id,ts,pm25,ok\n");
    for i in 0..40 {
        csv.push_str(&format!(
            "aq-{:02},2024-05-30T{:02}:{:02}:00Z,{}.5,{}\n",
            i % 3,
            i / 4,
            (i % 4) * 15,
            10 + i,
            i % 2 == 0
        ));
    }
    csv.push_str("aq-09,2024-05-30T11:00:00Z,12.5\n"); // line 42: a field short
    csv.push_str("aq-09,2024-05-30T11:15:00Z,,true\n"); // line 43: no reading (null)
    // A ragged second line: the crawler cannot tell the format and fails the object; the
    // conversion takes it (it lies under the table) and reads it with the table's delimiter.
    let mut ragged = String::from("device_id,ts,pm25,ok\naq-07\n");
    for i in 0..5 {
        ragged.push_str(&format!("aq-07,2024-05-30T13:{i:02}:00Z,9.5,true\n"));
    }
    let objects = vec![
        (
            "readings/2024/05/30/12/part-0.csv.gz",
            tests::gzip(csv.as_bytes()),
        ),
        (
            "readings/2024/05/30/13/part-1.csv.gz",
            tests::gzip(ragged.as_bytes()),
        ),
    ];
    let report = land_crawl_convert(&lake, &db, "readings", objects, 1).await;
    assert_eq!(counts(&report), (48, 46, 2), "{report:?}");
    let rows: usize = visible_batches(&lake, "curated/readings")
        .await
        .iter()
        .map(|(_, b)| b.num_rows())
        .sum();
    assert_eq!(rows, 46);
    let (_, batch) = &visible_batches(&lake, "curated/readings").await[0];
    assert_eq!(
        batch.column_by_name("pm25").unwrap().data_type(),
        &arrow::datatypes::DataType::Float64,
        "cells are typed by the table's schema"
    );
    assert!(
        report.partitions.iter().all(|p| p.contains("day=30")),
        "event time from the ts column: {:?}",
        report.partitions
    );
    let entries = quarantine_entries(&lake, &report).await;
    let lines: Vec<(u64, String)> = entries
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut lines = lines;
    lines.sort();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].0, 2, "the ragged object's line: {lines:?}");
    assert!(lines[0].1.contains("1 fields, expected 4"), "{lines:?}");
    assert_eq!(lines[1].0, 42, "the CSV's line: {lines:?}");
    assert!(lines[1].1.contains("3 fields, expected 4"), "{lines:?}");
}

async fn compaction_merges_small_files_and_keeps_every_row(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    landed(&lake, &db, false).await;
    // Tiny files: every batch closes its file.
    let converted = convert_table(&lake, &db, "telemetry", |o| o.files.target_file_bytes = 1)
        .await
        .unwrap();
    assert!(
        converted.files.len() > converted.partitions.len(),
        "{} files",
        converted.files.len()
    );
    let rows_before = unique_rows(&lake).await;
    let table = db.catalog.table(&db_name(), "telemetry").await.unwrap();
    let options = jobs::convert::CompactOptions {
        catalog_db: db_name(),
        table: "telemetry".into(),
        files: Default::default(),
    };
    let report = jobs::convert::compact(&lake, &db.catalog, &options)
        .await
        .unwrap();
    assert_eq!(report.files_before, converted.files.len());
    assert_eq!(
        report.files_after,
        converted.partitions.len(),
        "one file per partition"
    );
    assert_eq!(report.rows as usize, rows_before);
    assert_eq!(unique_rows(&lake).await, rows_before, "every row, once");
    let visible: HashSet<String> = visible_batches(&lake, "curated/telemetry")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        visible.len(),
        converted.partitions.len(),
        "the replaced files are deleted"
    );
    // Lineage survives: each source's rows across the new files equal what it wrote.
    let curated = db
        .catalog
        .table(&db_name(), "telemetry_curated")
        .await
        .unwrap();
    let mut per_source: std::collections::HashMap<String, i64> = Default::default();
    for file in db.catalog.curated_files(curated.id).await.unwrap() {
        for (source, rows) in db.catalog.file_sources(file.id).await.unwrap() {
            *per_source.entry(source).or_default() += rows;
        }
    }
    for bookmark in db.catalog.bookmarks(table.id).await.unwrap() {
        assert_eq!(
            per_source.get(&bookmark.source_key).copied().unwrap_or(0),
            bookmark.records_written,
            "{}",
            bookmark.source_key
        );
    }
    let again = jobs::convert::compact(&lake, &db.catalog, &options)
        .await
        .unwrap();
    assert_eq!(again.files_before, 0, "nothing left to compact");
}

async fn a_mapping_flattens_renames_drops_and_casts(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    put(
        &lake,
        "m/2024/05/30/00/a.json",
        "{\"id\":\"1\",\"ts\":\"2024-05-30T00:00:01Z\",\"loc\":{\"lat\":1.5,\"site\":\"s1\"},\"fw\":\"1.0\"}\n\
         {\"id\":\"x7\",\"ts\":\"2024-05-30T00:00:02Z\",\"loc\":{\"lat\":2.5,\"site\":\"s2\"},\"fw\":\"1.0\"}\n\
         {\"id\":\"3\",\"ts\":\"2024-05-30T00:00:03Z\",\"loc\":null,\"fw\":\"1.0\"}\n",
    )
    .await;
    crawl(
        &lake,
        &db.catalog,
        &CrawlOptions::new(db_name(), LakeKey::parse("m").unwrap()),
    )
    .await
    .unwrap();
    let mapping = serde_json::json!({"flatten": true, "drop": ["fw"], "cast": {"id": "bigint"}, "rename": {"ts": "event_time", "loc_lat": "lat"}});
    db.catalog
        .set_table_property(&db_name(), "m", "mapping", Some(mapping))
        .await
        .unwrap();
    let report = convert_table(&lake, &db, "m", |_| {}).await.unwrap();
    assert_eq!(
        (
            report.records_read,
            report.records_written,
            report.records_quarantined
        ),
        (3, 2, 1)
    );
    let quarantine = lake
        .get(&LakeKey::parse(report.quarantine.as_deref().unwrap()).unwrap())
        .await
        .unwrap();
    let entry: serde_json::Value =
        serde_json::from_slice(quarantine.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(entry["line"], 2);
    assert_eq!(
        entry["reason"],
        "cannot cast column id value \"x7\" to bigint"
    );
    let batches = visible_batches(&lake, "curated/m").await;
    let schema = batches[0].1.schema();
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect();
    assert_eq!(
        columns,
        [
            "id:Int64",
            "event_time:Timestamp(µs, \"+00:00\")",
            "lat:Float64",
            "loc_site:Utf8"
        ]
    );
    let lat = batches[0].1.column_by_name("lat").unwrap();
    assert_eq!(
        lat.null_count(),
        1,
        "a null struct makes its flattened columns null"
    );
    let curated = db.catalog.table(&db_name(), "m_curated").await.unwrap();
    assert_eq!(
        curated.schema.fields().len(),
        4,
        "the curated table's schema is the mapped one"
    );
    let partitions = db
        .catalog
        .partitions(&db_name(), "m_curated")
        .await
        .unwrap();
    assert_eq!(
        partitions[0].values,
        ["2024", "05", "30"],
        "the renamed event time still partitions"
    );
}
