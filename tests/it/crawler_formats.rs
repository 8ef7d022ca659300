//! The crawler on hand-made landings: every format and compression it sniffs, Hive partitions,
//! and objects under one root that split into separate tables with their reasons.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use jobs::catalog::CatalogDbName;
use jobs::crawler::{CrawlOptions, crawl};
use jobs::lake::{Lake, LakeKey};
use tests::{Backend, TestDb, gzip, put};

fn options(prefix: &str) -> CrawlOptions {
    CrawlOptions::new(
        CatalogDbName::parse("default").unwrap(),
        LakeKey::parse(prefix).unwrap(),
    )
}

fn parquet_file() -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, false),
        Field::new("n", DataType::Int64, true),
        Field::new("v", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5])),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

fn zipped(name: &str, data: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(data).unwrap();
    zip.finish().unwrap().into_inner()
}

fn snappy(data: &[u8]) -> Vec<u8> {
    let mut encoder = snap::write::FrameEncoder::new(Vec::new());
    encoder.write_all(data).unwrap();
    encoder.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_and_compression_is_sniffed_from_content() {
    let db = TestDb::new(Backend::Sqlite).await;
    let lake = Lake::in_memory();
    let ndjson = "{\"id\":1,\"at\":\"2024-05-30T00:00:01Z\",\"tags\":[\"x\"]}\n{\"id\":2,\"at\":\"2024-05-30T00:00:02Z\",\"tags\":[]}\n";
    let common = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326"#;
    // Extensions lie on purpose: formats come from content.
    put(&lake, "hand/ndjson_gzip/part.bin", gzip(ndjson.as_bytes())).await;
    put(
        &lake,
        "hand/concat_zstd/part.json",
        zstd::encode_all("{\"id\":1,\"v\":0.5}{\"id\":2,\"v\":1}".as_bytes(), 3).unwrap(),
    )
    .await;
    put(
        &lake,
        "hand/array_snappy/part.sz",
        snappy(b"[{\"id\":1,\"ok\":true},{\"id\":2,\"ok\":false}]"),
    )
    .await;
    put(
        &lake,
        "hand/csv_zip/part.zip",
        zipped("data.csv", b"id,name,score\n1,ann,2.5\n2,bob,3\n"),
    )
    .await;
    put(
        &lake,
        "hand/tsv_plain/part.txt",
        "id\tcity\n1\tMadrid\n2\tOslo\n",
    )
    .await;
    put(&lake, "hand/headerless_csv/part.csv", "a,b\nc,d\n").await;
    put(
        &lake,
        "hand/apache_common/access.log",
        format!("{common}\n{common}\n"),
    )
    .await;
    put(
        &lake,
        "hand/apache_combined/access.log",
        format!("{common} \"-\" \"curl/8\"\n"),
    )
    .await;
    put(&lake, "hand/parquet/part.gz", parquet_file()).await;
    put(&lake, "hand/parquet/_SUCCESS", "").await;

    let report = crawl(&lake, &db.catalog, &options("hand")).await.unwrap();
    assert_eq!(report.objects_failed, 0, "{:?}", report.failures);
    assert_eq!(report.objects_hidden, 1, "_SUCCESS is skipped");
    let tables = db
        .catalog
        .tables(&CatalogDbName::parse("default").unwrap())
        .await
        .unwrap();
    let summary = tables
        .iter()
        .map(|t| {
            let columns: Vec<String> = t
                .schema
                .fields()
                .iter()
                .map(|f| {
                    format!(
                        "{}:{}",
                        f.name(),
                        jobs::catalog::schema::type_name(f.data_type())
                    )
                })
                .collect();
            format!(
                "{} {} {} records={} [{}]",
                t.name,
                t.format,
                t.compression,
                t.records,
                columns.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("hand_made_formats", summary);
    let csv = tables.iter().find(|t| t.name == "csv_zip").unwrap();
    assert_eq!(csv.properties["header"], serde_json::json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_partitions_become_named_columns() {
    let db = TestDb::new(Backend::Sqlite).await;
    let lake = Lake::in_memory();
    for (region, day) in [
        ("eu", "2024-05-30"),
        ("us", "2024-05-30"),
        ("eu", "2024-05-31"),
    ] {
        put(
            &lake,
            &format!("events/region={region}/dt={day}/part-0.json"),
            "{\"id\":1}\n",
        )
        .await;
    }
    put(
        &lake,
        "events/region=eu/dt=2024-05-31/part-1.json",
        "{\"id\":2}\n",
    )
    .await;
    crawl(&lake, &db.catalog, &options("")).await.unwrap();
    let db_name = CatalogDbName::parse("default").unwrap();
    let table = db.catalog.table(&db_name, "events").await.unwrap();
    let keys: Vec<_> = table
        .partition_keys
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().to_string()))
        .collect();
    assert_eq!(
        keys,
        [("region", "Utf8".to_owned()), ("dt", "Utf8".to_owned())]
    );
    let partitions = db.catalog.partitions(&db_name, "events").await.unwrap();
    let values: Vec<_> = partitions
        .iter()
        .map(|p| (p.values.join("/"), p.object_count))
        .collect();
    assert_eq!(
        values,
        [
            ("eu/2024-05-30".to_owned(), 1),
            ("eu/2024-05-31".to_owned(), 2),
            ("us/2024-05-30".to_owned(), 1)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_objects_under_one_root_split_with_reasons() {
    let db = TestDb::new(Backend::Sqlite).await;
    let lake = Lake::in_memory();
    put(
        &lake,
        "feed/2024/05/30/00/a.json",
        "{\"device\":\"a\",\"pm25\":1.5,\"ts\":\"2024-05-30T00:00:00Z\"}\n",
    )
    .await;
    put(
        &lake,
        "feed/2024/05/30/01/b.json",
        "{\"device\":\"b\",\"pm25\":2,\"ts\":\"2024-05-30T01:00:00Z\",\"extra\":1}\n",
    )
    .await;
    put(
        &lake,
        "feed/2024/05/30/02/c.json",
        "{\"order\":1,\"sku\":\"x\",\"qty\":2}\n",
    )
    .await;
    put(
        &lake,
        "feed/2024/05/30/03/d.csv",
        "device,pm25,ts\na,1.5,2024-05-30T03:00:00Z\n",
    )
    .await;
    let report = crawl(&lake, &db.catalog, &options("feed")).await.unwrap();
    assert_eq!(report.tables_created, ["feed", "feed_2", "feed_3"]);
    let reasons: Vec<_> = report
        .splits
        .iter()
        .map(|s| (s.table.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "feed_2",
                "0 of 3 columns in common with table feed (overlap 0.00 < 0.70)"
            ),
            ("feed_3", "format csv differs from table feed's json"),
        ]
    );
    // The compatible objects made one table with the union of their columns.
    let feed = db
        .catalog
        .table(&CatalogDbName::parse("default").unwrap(), "feed")
        .await
        .unwrap();
    assert_eq!(feed.objects, 2);
    assert!(feed.schema.field_with_name("extra").is_ok());
    assert_eq!(
        feed.schema.field_with_name("pm25").unwrap().data_type(),
        &DataType::Float64
    );

    // A later crawl puts new objects in the table they are compatible with.
    put(
        &lake,
        "feed/2024/05/30/04/e.json",
        "{\"order\":2,\"sku\":\"y\",\"qty\":1}\n",
    )
    .await;
    let later = crawl(&lake, &db.catalog, &options("feed")).await.unwrap();
    assert_eq!(
        (later.tables_created.len(), later.tables_updated.as_slice()),
        (0, ["feed_2".to_owned()].as_slice())
    );
}
