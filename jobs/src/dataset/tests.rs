//! The builder on in-memory frames: aggregation per bucket, the grid with its gaps, the cut
//! and rolling test windows, categories, and what it refuses.

use polars::prelude::*;

use super::*;

const HOUR: i64 = 3_600_000;
/// 2024-03-01 00:00 UTC.
const T0: i64 = 1_709_251_200_000;

fn spec() -> DatasetSpec {
    DatasetSpec {
        item_columns: vec!["device_id".into()],
        timestamp: "ts".into(),
        target: "pm25".into(),
        frequency: "1h".into(),
        aggregation: Aggregation::Mean,
        dynamic_features: vec!["temperature".into()],
        categorical_features: vec!["site".into()],
        prediction_length: 3,
        only_items: Vec::new(),
        test_windows: 2,
    }
}

/// Device a: readings every 20 minutes for 12 hours, none in hour 5; device b: from hour 4,
/// one reading an hour; device c: only in the last two hours (after the cut).
fn frame() -> DataFrame {
    let (mut device, mut ts, mut pm25, mut temperature, mut site) =
        (vec![], vec![], vec![], vec![], vec![]);
    for hour in 0..12i64 {
        if hour == 5 {
            continue;
        }
        for minute in [0, 20, 40] {
            device.push("a");
            ts.push(T0 + hour * HOUR + minute * 60_000);
            pm25.push(10.0 + hour as f64 + minute as f64 / 20.0);
            temperature.push(if hour == 6 {
                None
            } else {
                Some(20.0 + hour as f64)
            });
            site.push("north");
        }
    }
    for hour in 4..12i64 {
        device.push("b");
        ts.push(T0 + hour * HOUR + 5 * 60_000);
        pm25.push(100.0 + hour as f64);
        temperature.push(Some(5.0));
        site.push("east");
    }
    for hour in 10..12i64 {
        device.push("c");
        ts.push(T0 + hour * HOUR);
        pm25.push(1.0);
        temperature.push(Some(1.0));
        site.push("west");
    }
    df!("device_id" => device, "ts" => ts, "pm25" => pm25, "temperature" => temperature, "site" => site).unwrap()
}

#[test]
fn items_are_aggregated_per_bucket_on_a_regular_grid() {
    let dataset = build(frame(), &spec(), "ds-test".into()).unwrap();
    assert_eq!(dataset.time_freq, "H");
    // The last bucket is hour 11; two windows of 3 hours end there: the cut is hour 6.
    assert_eq!(dataset.cut_ms, T0 + 6 * HOUR);
    assert_eq!(dataset.items.len(), 2, "{:?}", dataset.items);
    assert_eq!(
        dataset.dropped,
        vec![(
            "c".to_string(),
            "no observed target before the cut".to_string()
        )]
    );
    let a = &dataset.items[0];
    assert_eq!(
        (a.item_id.as_str(), a.start_ms, a.target.len()),
        ("a", T0, 12)
    );
    // Mean of the three readings of each hour; hour 5 is a gap.
    assert_eq!(a.target[0], 11.0);
    assert_eq!(a.target[4], 15.0);
    assert!(a.target[5].is_nan());
    // Dynamic features carry the last value over gaps (hours 5 and 6).
    assert_eq!(&a.dynamic_feat[0][3..8], &[23.0, 24.0, 24.0, 24.0, 27.0]);
    let b = &dataset.items[1];
    assert_eq!(
        (b.start_ms, b.target.len(), b.target[0]),
        (T0 + 4 * HOUR, 8, 104.0)
    );
    // Categories are indexed in sorted order of their values: east, north, west.
    assert_eq!(
        dataset.categories,
        vec![vec!["east".to_string(), "north".into(), "west".into()]]
    );
    assert_eq!((a.cat.clone(), b.cat.clone()), (vec![1], vec![0]));
}

#[test]
fn only_items_builds_one_groups_dataset_with_the_tables_categories() {
    // b alone: its own cut (its last point is hour 11 too), a's rows left out, an unknown id
    // named among the dropped.
    let group = DatasetSpec {
        only_items: vec!["b".into(), "zz".into()],
        ..spec()
    };
    let dataset = build(frame(), &group, "ds-b".into()).unwrap();
    let ids: Vec<&str> = dataset.items.iter().map(|s| s.item_id.as_str()).collect();
    assert_eq!(ids, ["b"]);
    assert_eq!(
        dataset.dropped,
        vec![("zz".to_string(), "no rows in the table".to_string())]
    );
    assert_eq!(
        dataset.items[0].cat,
        vec![0],
        "east, indexed among every site"
    );
    assert_eq!(dataset.categories[0].len(), 3);
    // c's only points come after a's and b's: as a group of its own, its cut is its own.
    let late = DatasetSpec {
        only_items: vec!["c".into()],
        prediction_length: 1,
        test_windows: 1,
        ..spec()
    };
    let dataset = build(frame(), &late, "ds-c".into()).unwrap();
    assert_eq!(dataset.cut_ms, T0 + 11 * HOUR);
    assert_eq!(dataset.items.len(), 1);
}

#[test]
fn observed_buckets_a_window_as_the_dataset_does() {
    // Hours 9 to 11: a's mean per hour, b's one reading, and c, which only a window shows.
    let seen = observed(frame(), &spec(), T0 + 9 * HOUR, T0 + 12 * HOUR).unwrap();
    let ids: Vec<&str> = seen.iter().map(|s| s.item_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(seen[0].start_ms, T0 + 9 * HOUR);
    assert_eq!(seen[0].target, vec![20.0, 21.0, 22.0]);
    assert_eq!(seen[1].target, vec![109.0, 110.0, 111.0]);
    assert_eq!(
        (seen[2].start_ms, seen[2].target.len()),
        (T0 + 10 * HOUR, 2)
    );
    // A window where nothing landed yet is empty, not an error.
    assert!(
        observed(frame(), &spec(), T0 + 20 * HOUR, T0 + 24 * HOUR)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn export_splits_training_and_rolling_test_windows() {
    let dataset = build(frame(), &spec(), "ds-test".into()).unwrap();
    let (train, test) = dataset.export();
    assert_eq!(train.len(), 2);
    assert_eq!(train[0]["start"], "2024-03-01 00:00:00");
    assert_eq!(train[0]["target"].as_array().unwrap().len(), 6);
    assert_eq!(train[0]["target"][5], "NaN");
    assert_eq!(train[1]["target"].as_array().unwrap().len(), 2);
    assert_eq!(train[0]["dynamic_feat"][0].as_array().unwrap().len(), 6);
    assert_eq!(train[1]["cat"], serde_json::json!([0]));
    // Window-major: window 1 for a and b, then window 2.
    let lengths: Vec<usize> = test
        .iter()
        .map(|l| l["target"].as_array().unwrap().len())
        .collect();
    assert_eq!(lengths, vec![9, 5, 12, 8]);
    assert_eq!(test[2]["item_id"], "a");
    assert_eq!(test[2]["dynamic_feat"][0].as_array().unwrap().len(), 12);
}

#[test]
fn sums_maxima_and_last_values() {
    for (aggregation, want) in [
        (Aggregation::Sum, 33.0),
        (Aggregation::Max, 12.0),
        (Aggregation::Last, 12.0),
    ] {
        let spec = DatasetSpec {
            aggregation,
            ..spec()
        };
        let dataset = build(frame(), &spec, "x".into()).unwrap();
        assert_eq!(dataset.items[0].target[0], want, "{aggregation:?}");
    }
    let spec = DatasetSpec {
        frequency: "2h".into(),
        test_windows: 1,
        ..spec()
    };
    let dataset = build(frame(), &spec, "x".into()).unwrap();
    assert_eq!(
        (dataset.time_freq.as_str(), dataset.items[0].target[0]),
        ("2H", 11.5)
    );
}

#[test]
fn bad_specs_are_refused_with_the_field() {
    let refuse = |spec: DatasetSpec, want: &str| {
        let err = build(frame(), &spec, "x".into()).unwrap_err().to_string();
        assert!(err.contains(want), "{err} should mention {want}");
    };
    refuse(
        DatasetSpec {
            frequency: "1y".into(),
            ..spec()
        },
        "frequency",
    );
    refuse(
        DatasetSpec {
            item_columns: vec![],
            ..spec()
        },
        "item_columns",
    );
    refuse(
        DatasetSpec {
            prediction_length: 0,
            ..spec()
        },
        "prediction_length",
    );
    refuse(
        DatasetSpec {
            dynamic_features: vec!["pm25".into()],
            ..spec()
        },
        "named twice",
    );
    refuse(
        DatasetSpec {
            target: "pm10".into(),
            ..spec()
        },
        "pm10",
    );
}

#[test]
fn the_snapshot_id_follows_the_spec_and_the_files() {
    let file = |path: &str, rows| crate::catalog::conversion::CuratedFile {
        id: 1,
        run_id: 1,
        path: path.into(),
        staging_path: String::new(),
        partition_values: vec![],
        rows,
        bytes: 100,
        schema_version: 1,
        state: "published".into(),
    };
    let files = vec![file("curated/t/a.parquet", 10)];
    let id = snapshot_id(&spec(), &files);
    assert!(id.starts_with("ds-") && id.len() == 19, "{id}");
    assert_eq!(id, snapshot_id(&spec(), &files));
    assert_ne!(id, snapshot_id(&spec(), &[file("curated/t/a.parquet", 11)]));
    assert_ne!(
        id,
        snapshot_id(
            &DatasetSpec {
                prediction_length: 4,
                ..spec()
            },
            &files
        )
    );
}

#[test]
fn calendar_frequencies_bucket_by_the_calendar() {
    // One reading a day from 2024-01-01 to 2024-06-30: months of 31, 29 and 30 days.
    let day = 24 * HOUR;
    let first = 1_704_067_200_000; // 2024-01-01 00:00 UTC, a Monday
    let days = 182;
    let frame = df!(
        "device_id" => vec!["a"; days],
        "ts" => (0..days as i64).map(|d| first + d * day + 12 * HOUR).collect::<Vec<_>>(),
        "pm25" => (0..days).map(|d| d as f64).collect::<Vec<_>>(),
    )
    .unwrap();
    let monthly = DatasetSpec {
        frequency: "M".into(),
        aggregation: Aggregation::Sum,
        dynamic_features: vec![],
        categorical_features: vec![],
        prediction_length: 1,
        test_windows: 1,
        ..spec()
    };
    let dataset = build(frame.clone(), &monthly, "x".into()).unwrap();
    assert_eq!(dataset.time_freq, "M");
    let item = &dataset.items[0];
    assert_eq!(format_start(item.start_ms), "2024-01-01 00:00:00");
    let sum = |from: usize, to: usize| (from..to).map(|d| d as f64).sum::<f64>();
    assert_eq!(
        item.target,
        [
            sum(0, 31),
            sum(31, 60),
            sum(60, 91),
            sum(91, 121),
            sum(121, 152),
            sum(152, 182)
        ]
    );
    assert_eq!(format_start(dataset.cut_ms), "2024-06-01 00:00:00");
    let (train, test) = dataset.export();
    assert_eq!(train[0]["target"].as_array().unwrap().len(), 5);
    assert_eq!(test[0]["target"].as_array().unwrap().len(), 6);

    let weekly = DatasetSpec {
        frequency: "W".into(),
        ..monthly
    };
    let dataset = build(frame, &weekly, "x".into()).unwrap();
    let item = &dataset.items[0];
    assert_eq!((dataset.time_freq.as_str(), item.target.len()), ("W", 26));
    assert_eq!(item.target[0], sum(0, 7));
    assert_eq!(format_start(item.start_ms + 7 * day), "2024-01-08 00:00:00");
}
