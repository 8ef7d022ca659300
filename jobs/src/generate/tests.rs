//! The generator: deterministic per seed, Firehose's layout, day by day as in one run, and the smoke.

use super::*;
use futures::TryStreamExt;

async fn keys_and_bytes(lake: &Lake) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = lake
        .store()
        .list(None)
        .map_ok(|meta| (meta.location.to_string(), meta.size as usize))
        .try_collect()
        .await
        .unwrap();
    out.sort();
    out
}

#[tokio::test]
async fn generation_is_deterministic_per_seed_and_laid_out_like_firehose() {
    let spec = LandingsSpec::new(3, 2, 7, NaiveDate::from_ymd_opt(2024, 5, 30).unwrap());
    let (a, b) = (Lake::in_memory(), Lake::in_memory());
    let report = generate_landings(&a, &spec).await.unwrap();
    generate_landings(&b, &spec).await.unwrap();
    let listed = keys_and_bytes(&a).await;
    assert_eq!(listed, keys_and_bytes(&b).await);
    assert_eq!(listed.len() as u64, report.objects + report.error_objects);
    let pattern = regex::Regex::new(
        r"^landing/(telemetry|errors/processing-failed)/\d{4}/\d{2}/\d{2}/\d{2}/aq-telemetry-1-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f-]{36}\.gz$",
    )
    .unwrap();
    assert!(
        listed.iter().all(|(key, _)| pattern.is_match(key)),
        "{listed:?}"
    );
    assert!(
        report.records > 3 * 2 * 280 && report.records <= 3 * 2 * 288,
        "{report:?}"
    );
    let other = Lake::in_memory();
    generate_landings(&other, &LandingsSpec { seed: 8, ..spec })
        .await
        .unwrap();
    assert_ne!(keys_and_bytes(&other).await, listed);
}

/// Every record line under `prefix`, sorted.
async fn lines(lake: &Lake, prefix: &str) -> Vec<String> {
    use std::io::Read;
    let prefix = object_store::path::Path::from(prefix);
    let metas: Vec<_> = lake
        .store()
        .list(Some(&prefix))
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for meta in metas {
        let key = LakeKey::parse(meta.location.as_ref()).unwrap();
        let body = lake.get(&key).await.unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        out.extend(text.lines().map(str::to_owned));
    }
    out.sort();
    out
}

#[tokio::test]
async fn day_by_day_generation_lands_what_one_run_lands() {
    let start = NaiveDate::from_ymd_opt(2024, 5, 30).unwrap();
    let whole = LandingsSpec::new(3, 3, 7, start);
    let (one, split) = (Lake::in_memory(), Lake::in_memory());
    let all = generate_landings(&one, &whole).await.unwrap();
    let first = generate_landings(
        &split,
        &LandingsSpec {
            days: 2,
            ..whole.clone()
        },
    )
    .await
    .unwrap();
    let rest = generate_landings(
        &split,
        &LandingsSpec {
            from_day: 2,
            ..whole.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(first.records + rest.records, all.records);
    assert_eq!(first.late_records + rest.late_records, all.late_records);
    assert_eq!(first.envelopes + rest.envelopes, all.envelopes);
    assert!(rest.records > 0 && rest.records < first.records, "{rest:?}");
    for prefix in ["landing/telemetry", "landing/errors"] {
        assert_eq!(
            lines(&one, prefix).await,
            lines(&split, prefix).await,
            "{prefix}"
        );
    }
    // Nothing after the last midnight has landed.
    let end = "2024-06-02T00:00";
    assert!(
        lines(&one, "landing/telemetry")
            .await
            .iter()
            .all(|l| !l.contains(end))
    );
}

#[tokio::test]
async fn a_shift_raises_particulates_from_its_day_on() {
    let start = NaiveDate::from_ymd_opt(2024, 5, 30).unwrap();
    let plain = LandingsSpec::new(2, 2, 7, start);
    let smoky = LandingsSpec {
        shift: Some(Shift {
            from_day: 1,
            factor: 2.0,
        }),
        ..plain.clone()
    };
    let (a, b) = (Lake::in_memory(), Lake::in_memory());
    generate_landings(&a, &plain).await.unwrap();
    generate_landings(&b, &smoky).await.unwrap();
    let pm25 = |lines: Vec<String>, day: &str| -> f64 {
        let values: Vec<f64> = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["ts"].as_str().is_some_and(|ts| ts.starts_with(day)))
            .filter_map(|r| r["pm25"].as_f64())
            .collect();
        values.iter().sum::<f64>() / values.len() as f64
    };
    let (a, b) = (
        lines(&a, "landing/telemetry").await,
        lines(&b, "landing/telemetry").await,
    );
    let before = pm25(b.clone(), "2024-05-30") / pm25(a.clone(), "2024-05-30");
    let after = pm25(b, "2024-05-31") / pm25(a, "2024-05-31");
    assert!((before - 1.0).abs() < 1e-9, "{before}");
    assert!((after - 2.0).abs() < 0.05, "{after}");
}

#[tokio::test]
async fn arrivals_are_the_records_the_objects_hold_in_order_of_arrival() {
    let start = NaiveDate::from_ymd_opt(2024, 5, 30).unwrap();
    let spec = LandingsSpec {
        from_day: 1,
        ..LandingsSpec::new(3, 3, 7, start)
    };
    let lake = Lake::in_memory();
    let written = generate_landings(&lake, &spec).await.unwrap();
    let arrivals = arrivals(&spec).unwrap();
    assert_eq!(arrivals.len() as u64, written.records);
    assert_eq!(
        arrivals.iter().filter(|a| a.malformed).count() as u64,
        written.malformed_records
    );
    assert!(arrivals.windows(2).all(|w| w[0].at <= w[1].at));
    let mut lines: Vec<String> = arrivals.iter().map(|a| a.line.clone()).collect();
    lines.sort();
    assert_eq!(lines, self::lines(&lake, "landing/telemetry").await);
    assert!(
        arrivals
            .iter()
            .filter(|a| !a.malformed)
            .all(|a| a.line.contains(&format!("\"device_id\":\"{}\"", a.device)))
    );
    assert!(
        super::arrivals(&LandingsSpec {
            from_day: 3,
            ..spec
        })
        .is_err()
    );
}
