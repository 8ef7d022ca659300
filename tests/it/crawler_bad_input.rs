//! Bad landed objects fail with a reason while the crawl goes on: truncated gzip, invalid UTF-8,
//! empty and binary objects, a 10 MB line, 1,000-deep nesting, an unrecognised text.

use jobs::catalog::{CatalogDbName, ObjectStatus};
use jobs::crawler::{CrawlOptions, crawl};
use jobs::lake::{Lake, LakeKey};
use tests::{Backend, TestDb, gzip, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_objects_are_marked_failed_and_the_crawl_goes_on() {
    let db = TestDb::new(Backend::Sqlite).await;
    let lake = Lake::in_memory();
    let good: String = (0..50_000)
        .map(|i| format!("{{\"i\":{i},\"ts\":\"2024-05-30T00:00:01Z\"}}\n"))
        .collect();
    let gz = gzip(good.as_bytes());
    put(&lake, "in/2024/05/30/00/good.gz", gz.clone()).await;
    put(
        &lake,
        "in/2024/05/30/00/truncated.gz",
        gz[..gz.len() / 2].to_vec(),
    )
    .await;
    put(
        &lake,
        "in/2024/05/30/00/invalid_utf8.json",
        b"{\"i\":\"\xc3\x28\"}\n".to_vec(),
    )
    .await;
    put(&lake, "in/2024/05/30/00/empty.json", "").await;
    put(
        &lake,
        "in/2024/05/30/00/binary.bin",
        b"\x7fELF\x02\x01\x01\x00\x00\x00".to_vec(),
    )
    .await;
    put(
        &lake,
        "in/2024/05/30/00/long_line.json",
        format!("{{\"i\":\"{}\"}}\n", "x".repeat(10 << 20)),
    )
    .await;
    put(
        &lake,
        "in/2024/05/30/00/deep.json",
        format!("{}1{}\n", "{\"a\":".repeat(1000), "}".repeat(1000)),
    )
    .await;
    put(
        &lake,
        "in/2024/05/30/00/prose.txt",
        "dear diary,\ntoday the sensor broke\n",
    )
    .await;

    let options = CrawlOptions::new(
        CatalogDbName::parse("default").unwrap(),
        LakeKey::parse("in").unwrap(),
    );
    let report = crawl(&lake, &db.catalog, &options)
        .await
        .expect("a crawl with bad objects still succeeds");
    let failures: Vec<(String, String)> = report
        .failures
        .iter()
        .map(|f| {
            (
                f.key.rsplit('/').next().unwrap().to_owned(),
                f.reason.clone(),
            )
        })
        .collect();
    insta::assert_debug_snapshot!("bad_object_reasons", failures);

    let failed = db.catalog.objects(true).await.unwrap();
    assert_eq!(failed.len(), 7);
    assert!(failed.iter().all(|o| o.status == ObjectStatus::Failed
        && o.failure_reason.is_some()
        && o.table.is_none()));
    let table = db
        .catalog
        .table(&CatalogDbName::parse("default").unwrap(), "in")
        .await
        .unwrap();
    assert_eq!((table.objects, table.records), (1, 50_000));
    // Failed objects are not read again until they change.
    let again = crawl(&lake, &db.catalog, &options).await.unwrap();
    assert_eq!(again.objects_crawled, 0);
    put(
        &lake,
        "in/2024/05/30/00/empty.json",
        "{\"i\":1,\"ts\":\"2024-05-30T00:00:01Z\"}\n",
    )
    .await;
    let fixed = crawl(&lake, &db.catalog, &options).await.unwrap();
    assert_eq!((fixed.objects_changed, fixed.objects_failed), (1, 0));
    assert_eq!(db.catalog.objects(true).await.unwrap().len(), 6);
}
