//! The lake on an S3-compatible server on loopback (scripts/test.sh starts one and creates the
//! bucket): landings are generated into it and crawled, exactly as on the local filesystem.

use jobs::catalog::CatalogDbName;
use jobs::crawler::{CrawlOptions, crawl};
use jobs::generate::{LandingsSpec, generate_landings};
use jobs::lake::{Lake, LakeKey, S3Options};
use tests::{Backend, TestDb};

fn s3_lake(prefix: &str) -> Lake {
    let endpoint = std::env::var("SLUICE_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_S3_ENDPOINT is not set: the S3 lake tests need the S3-compatible server scripts/test.sh starts")
    });
    let bucket = std::env::var("SLUICE_TEST_S3_BUCKET").unwrap_or_else(|_| "sluice-test".into());
    let options = S3Options {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        allow_http: true,
    };
    Lake::open(&format!("s3://{bucket}/{prefix}"), &options).expect("s3 lake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landings_on_s3_are_generated_and_crawled() {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let lake = s3_lake(&format!("runs/{run}"));
    let spec = LandingsSpec::new(
        2,
        1,
        5,
        chrono::NaiveDate::from_ymd_opt(2024, 5, 30).unwrap(),
    );
    let generated = generate_landings(&lake, &spec)
        .await
        .expect("write landings to s3");
    let db = TestDb::new(Backend::Sqlite).await;
    let options = CrawlOptions::new(
        CatalogDbName::parse("default").unwrap(),
        LakeKey::parse("landing").unwrap(),
    );
    let report = crawl(&lake, &db.catalog, &options).await.expect("crawl s3");
    assert_eq!(
        report.objects_crawled as u64,
        generated.objects + generated.error_objects
    );
    assert_eq!(report.objects_failed, 0, "{:?}", report.failures);
    let table = db
        .catalog
        .table(&CatalogDbName::parse("default").unwrap(), "telemetry")
        .await
        .unwrap();
    assert_eq!(table.records as u64, generated.records);
    assert!(
        table.location.starts_with("landing/telemetry"),
        "keys are relative to the lake's prefix: {}",
        table.location
    );
    let again = crawl(&lake, &db.catalog, &options).await.unwrap();
    assert_eq!(again.objects_crawled, 0);
    assert!(LakeKey::parse("../escape").is_err());
}
