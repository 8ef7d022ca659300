//! Reprocessing a range of event dates after nightly conversions: the range's files and every
//! file their source objects also fed are replaced in one commit; the rest stays as it was; every
//! record is still there exactly once.

use std::collections::HashSet;

use chrono::NaiveDate;
use jobs::convert::{ConvertMode, ConvertOptions};
use jobs::crawler::{CrawlOptions, crawl};
use jobs::generate::{LandingsSpec, generate_landings};
use jobs::lake::{Lake, LakeKey};
use object_store::ObjectStoreExt;
use tests::{Backend, TestDb};

use super::{convert_table, db_name, unique_rows};

pub(super) async fn a_range_is_rebuilt_with_its_lineage_and_nothing_else(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    let start = NaiveDate::from_ymd_opt(2024, 5, 28).unwrap();
    // Four nights: each day lands, is crawled and converted by its own run.
    let mut files_by_night = Vec::new();
    let mut records = 0;
    for night in 1..=4 {
        let spec = LandingsSpec {
            days: night,
            from_day: night - 1,
            ..LandingsSpec::new(3, 4, 17, start)
        };
        records += generate_landings(&lake, &spec).await.unwrap().records;
        crawl(
            &lake,
            &db.catalog,
            &CrawlOptions::new(db_name(), LakeKey::parse("landing").unwrap()),
        )
        .await
        .unwrap();
        let run = convert_table(&lake, &db, "telemetry", |_| {})
            .await
            .unwrap();
        files_by_night.push(run.files);
    }
    let before = unique_rows(&lake).await;
    assert!(before > 0 && before as u64 <= records);

    let day = NaiveDate::from_ymd_opt(2024, 5, 29).unwrap();
    let range = |o: &mut ConvertOptions| {
        o.mode = ConvertMode::ReprocessRange { from: day, to: day };
    };
    let report = convert_table(&lake, &db, "telemetry", range).await.unwrap();
    let scope = report
        .reprocessed
        .clone()
        .expect("a range reprocess reports its scope");
    assert!(
        scope.partitions.iter().any(|p| p.ends_with("day=29")),
        "{scope:?}"
    );
    assert!(
        !scope.partitions.iter().any(|p| p.ends_with("day=31")),
        "the last night's files are not in the lineage of day 29: {scope:?}"
    );
    assert_eq!(report.sources, scope.sources.len());
    assert!(report.reconciled);
    assert_eq!(unique_rows(&lake).await, before, "every record, once");

    // The last night's files were left alone; the replaced ones are gone.
    let exists = |key: String| {
        let lake = lake.clone();
        async move { lake.store().head(&key.as_str().into()).await.is_ok() }
    };
    for file in &files_by_night[3] {
        assert!(exists(file.clone()).await, "{file} is untouched");
    }
    let kept: HashSet<String> = files_by_night.iter().flatten().cloned().collect();
    let replaced = kept.iter().filter(|f| !report.files.contains(f)).count();
    assert!(replaced > 0);
    let mut gone = 0;
    for file in &kept {
        if !exists(file.clone()).await {
            gone += 1;
        }
    }
    assert_eq!(
        gone,
        scope.files.len(),
        "exactly the scope's files were replaced"
    );

    // Nothing is pending afterwards, and the same range can be rebuilt again.
    let after = convert_table(&lake, &db, "telemetry", |_| {})
        .await
        .unwrap();
    assert_eq!(after.sources, 0);
    // The scope follows the lineage as it is now (the rebuilt files group sources differently).
    let again = convert_table(&lake, &db, "telemetry", range).await.unwrap();
    let rebuilt = again.reprocessed.unwrap();
    assert!(
        rebuilt.partitions.iter().any(|p| p.ends_with("day=29")) && again.reconciled,
        "{rebuilt:?}"
    );
    assert_eq!(unique_rows(&lake).await, before);

    // A range without reprocess cannot be expressed (`ConvertMode`); a backwards one is refused
    // with the field.
    let err = convert_table(&lake, &db, "telemetry", |o| {
        o.mode = ConvertMode::ReprocessRange {
            from: day,
            to: day.pred_opt().unwrap(),
        };
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("is after"), "{err}");
}
