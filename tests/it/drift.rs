//! `sluice drift` as a user runs it: a dataset whose recent window shifted is reported as
//! drifted with its reasons, an unshifted one is not, a retyped column of the source table is
//! schema drift, and reports are stored (database and lake) and shown again.

use serde_json::{Value, json};
use tests::run_sluice;

/// Six hourly series with a daily cycle: 20 days of training, 2 more days in the test file,
/// the last two days shifted up by `shift` for the first `shifted` series.
fn dataset(dir: &std::path::Path, name: &str, shift: f64, shifted: usize) {
    let mut state = 11u64;
    let mut train = String::new();
    let mut test = String::new();
    for i in 0..6 {
        let target: Vec<f64> = (0..22 * 24)
            .map(|t| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (state >> 33) as f64 / (1u64 << 31) as f64 - 0.5;
                let day = (2.0 * std::f64::consts::PI * (t % 24) as f64 / 24.0).sin();
                let moved = if t >= 20 * 24 && i < shifted {
                    shift
                } else {
                    0.0
                };
                (50.0 + 10.0 * day + 4.0 * noise + moved).round()
            })
            .collect();
        let temperature: Vec<f64> = (0..22 * 24).map(|t| 20.0 + (t % 24) as f64 / 4.0).collect();
        let line = |n: usize| {
            json!({"start": "2024-05-01 00:00:00", "item_id": format!("device-{i}"),
                   "target": target[..n], "dynamic_feat": [temperature[..n]]})
            .to_string()
        };
        train.push_str(&(line(20 * 24) + "\n"));
        test.push_str(&(line(22 * 24) + "\n"));
    }
    std::fs::write(dir.join(format!("{name}-train.jsonl")), train).unwrap();
    std::fs::write(dir.join(format!("{name}-test.jsonl")), test).unwrap();
}

fn drift(dir: &std::path::Path, args: &[&str]) -> (bool, Value, String) {
    let mut all = vec!["drift"];
    all.extend_from_slice(args);
    tests::run_sluice_json(dir, &all)
}

#[test]
fn drift_is_detected_on_shifted_data_and_not_on_unshifted_data() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), "calm", 0.0, 0);
    dataset(dir.path(), "moved", 15.0, 4);

    let (ok, calm, stderr) = drift(
        dir.path(),
        &[
            "run",
            "--train",
            "calm-train.jsonl",
            "--test",
            "calm-test.jsonl",
            "--subject",
            "fleet",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(calm["drift"]["detected"], false, "{calm}");
    assert_eq!(calm["drift"]["series"], 6);
    assert_eq!(calm["drift"]["reasons"], json!([]));

    let (ok, moved, stderr) = drift(
        dir.path(),
        &[
            "run",
            "--train",
            "moved-train.jsonl",
            "--test",
            "moved-test.jsonl",
            "--subject",
            "fleet",
        ],
    );
    assert!(ok, "{stderr}");
    let verdict = &moved["drift"];
    assert_eq!(verdict["detected"], true, "{moved}");
    assert_eq!(verdict["drifted_series"], 4);
    let reason = verdict["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("4 of 6 series drifted"), "{reason}");
    assert!(reason.contains("target"), "{reason}");

    // Stored: in the lake, and shown again (the latest of the subject by default).
    let id = verdict["report_id"].as_str().unwrap();
    let stored: Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("lake")
                .join(verdict["report"].as_str().unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(stored["id"], id);
    let features = stored["data"]["features"].as_array().unwrap();
    assert_eq!(
        features.len(),
        12,
        "target and the dynamic feature of six series"
    );
    assert!(
        features
            .iter()
            .filter(|f| f["feature"] == "dynamic_feat[0]")
            .all(|f| f["drifted"] == false),
        "the unshifted feature does not drift"
    );
    let (ok, shown, _) = drift(dir.path(), &["show", "--subject", "fleet"]);
    assert!(ok);
    assert_eq!(shown["id"], id);
    let (ok, text, _) = tests::run_sluice(dir.path(), &["drift", "show", id]);
    assert!(
        ok && text.contains("DRIFT DETECTED") && text.contains("device-0"),
        "{text}"
    );
    let (ok, listed, _) = drift(dir.path(), &["list"]);
    assert!(ok);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // Files that share no series are refused with both names.
    let (ok, _, stderr) = drift(
        dir.path(),
        &[
            "run",
            "--train",
            "calm-train.jsonl",
            "--test",
            "calm-train.jsonl",
        ],
    );
    assert!(!ok && stderr.contains("share no series"), "{stderr}");
}

#[test]
fn a_retyped_column_of_the_source_table_is_schema_drift() {
    let dir = tempfile::tempdir().unwrap();
    let land = |hour: &str, line: &str| {
        let folder = dir
            .path()
            .join(format!("lake/landing/sensors/2024/05/01/{hour}"));
        std::fs::create_dir_all(&folder).unwrap();
        let body: String = (0..20).map(|_| format!("{line}\n")).collect();
        std::fs::write(
            folder.join(format!("sensors-1-2024-05-01-{hour}-00-00-{hour}.gz")),
            tests::gzip(body.as_bytes()),
        )
        .unwrap();
    };
    land(
        "00",
        r#"{"device_id": "d1", "ts": "2024-05-01T00:00:00Z", "pm25": 12.5}"#,
    );
    let (ok, _, stderr) = run_sluice(dir.path(), &["crawl"]);
    assert!(ok, "{stderr}");
    land(
        "01",
        r#"{"device_id": "d1", "ts": "2024-05-01T01:00:00Z", "pm25": "high"}"#,
    );
    let (ok, _, stderr) = run_sluice(dir.path(), &["crawl"]);
    assert!(ok, "{stderr}");
    dataset(dir.path(), "calm", 0.0, 0);
    let (ok, report, stderr) = drift(
        dir.path(),
        &[
            "run",
            "--train",
            "calm-train.jsonl",
            "--test",
            "calm-test.jsonl",
            "--table",
            "sensors",
        ],
    );
    assert!(ok, "{stderr}");
    let verdict = &report["drift"];
    assert_eq!(verdict["detected"], true, "{report}");
    // The crawl holds the retyping for a person (policy add_columns): pending, it is drift.
    assert_eq!(verdict["schema_changes"], 0);
    let reason = verdict["reasons"][0].as_str().unwrap();
    assert_eq!(
        reason,
        "schema of sensors: pm25 double → string pending a person's decision (seen: 20 string; objects: 1)"
    );
    // Accepted, it is a new version: drift still, now as the version's change.
    let (ok, _, stderr) = run_sluice(
        dir.path(),
        &["catalog", "accept-change", "sensors", "pm25", "string"],
    );
    assert!(ok, "{stderr}");
    let (ok, report, stderr) = drift(
        dir.path(),
        &[
            "run",
            "--train",
            "calm-train.jsonl",
            "--test",
            "calm-test.jsonl",
            "--table",
            "sensors",
        ],
    );
    assert!(ok, "{stderr}");
    let verdict = &report["drift"];
    assert_eq!(verdict["schema_changes"], 1);
    let reason = verdict["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("schema of sensors version 2") && reason.contains("pm25"),
        "{reason}"
    );
}

async fn reports_are_stored_and_read_back(backend: tests::Backend) {
    use jobs::drift::store;
    let db = tests::TestDb::new(backend).await;
    let reasons = vec!["2 of 3 series drifted".to_owned()];
    let first = store::save(&db.catalog, "fleet", true, &reasons, &json!({"format": 1}))
        .await
        .unwrap();
    let other = store::save(&db.catalog, "other", false, &[], &json!({"format": 1}))
        .await
        .unwrap();
    let latest_fleet = store::get(&db.catalog, None, Some("fleet")).await.unwrap();
    assert_eq!(
        (latest_fleet.id.as_str(), latest_fleet.detected),
        (first.as_str(), true)
    );
    assert_eq!(latest_fleet.reasons, reasons);
    assert_eq!(latest_fleet.report["id"], first);
    assert_eq!(
        store::get(&db.catalog, Some(&other), None)
            .await
            .unwrap()
            .subject,
        "other"
    );
    assert_eq!(store::list(&db.catalog, 10).await.unwrap().len(), 2);
    assert!(
        store::get(&db.catalog, Some("drift-nope"), None)
            .await
            .is_err()
    );
}

tests::on_both_backends!(reports_are_stored_and_read_back);
