use serde_json::json;

use super::*;

fn request(value: serde_json::Value) -> RetrainRequest {
    crate::request::from_json(value).unwrap()
}

fn version(version: u32, age_hours: f64) -> VersionAge {
    VersionAge {
        version,
        created_at: String::new(),
        age_hours,
        mean_wql: Some(0.2),
    }
}

fn rows(rows: i64, rows_before: i64) -> Option<NewRows> {
    Some(NewRows {
        table: "telemetry".into(),
        rows,
        rows_before,
        share: (rows_before > 0).then(|| rows as f64 / rows_before as f64),
    })
}

/// A champion trained a day ago, and nothing new.
fn healthy() -> Evidence {
    Evidence {
        champion: Some(version(1, 24.0)),
        last_trained: Some(version(1, 24.0)),
        new_rows: rows(0, 1000),
    }
}

#[test]
fn nothing_changed_keeps_the_champion_and_says_why() {
    let (retrain, reasons) = decide(
        &request(json!({"group": "g", "table": "telemetry",
                         "drift": {"detected": false, "reasons": []}})),
        &healthy(),
    );
    assert!(!retrain);
    assert_eq!(
        reasons,
        [
            "no drift",
            "the last training (v1) is 1day old, within max_age 7days",
            "0 new rows in telemetry since v1 was trained (0.0% of 1000), under min_new_share 10.0%"
        ]
    );
}

#[test]
fn each_change_retrains_with_its_reason() {
    let quiet = json!({"group": "g", "table": "telemetry", "drift": {"detected": false}});
    // No champion, with or without versions.
    let (retrain, reasons) = decide(&request(quiet.clone()), &Evidence::default());
    assert!(retrain);
    assert_eq!(reasons, ["no champion yet: the group has no version"]);
    let lost = Evidence {
        champion: None,
        ..healthy()
    };
    assert_eq!(
        decide(&request(quiet.clone()), &lost).1,
        ["no champion yet (v1 is the newest version)"]
    );
    // Drift, found tonight or the reason the night started, in rows that landed since the
    // last training.
    let landed = Evidence {
        new_rows: rows(24, 1000),
        ..healthy()
    };
    let drifted = request(
        json!({"group": "g", "table": "telemetry", "drift": {"detected": true,
        "reasons": ["2 of 3 series drifted"], "report_id": "drift-1", "series": 3}}),
    );
    let (retrain, reasons) = decide(&drifted, &landed);
    assert!(retrain);
    assert_eq!(reasons, ["drift detected (drift-1): 2 of 3 series drifted"]);
    let started = request(json!({"group": "g", "drift_reports": ["drift-7"]}));
    assert_eq!(
        decide(&started, &landed).1,
        ["started by drift report drift-7"]
    );
    // The same drift in the same data, which the last training already had, is not news.
    let (retrain, reasons) = decide(&drifted, &healthy());
    assert!(!retrain);
    assert_eq!(
        reasons[0],
        "drift detected (drift-1), but no rows landed since v1 was trained on the same data"
    );
    // Drift does not count when the policy says so.
    let ignored = request(
        json!({"group": "g", "drift": {"detected": true, "reasons": ["x"]},
                                 "policy": {"on_drift": false}}),
    );
    let (retrain, reasons) = decide(&ignored, &landed);
    assert!(!retrain);
    assert_eq!(reasons[0], "drift detected, but policy.on_drift is false");
    // Age.
    let old = Evidence {
        last_trained: Some(version(1, 7.0 * 24.0 + 2.0)),
        ..healthy()
    };
    assert_eq!(
        decide(&request(quiet.clone()), &old).1,
        ["the last training (v1) is 7days 2h old, past max_age 7days"]
    );
    let forever = request(json!({"group": "g", "table": "telemetry",
        "drift": {"detected": false}, "policy": {"max_age": "forever"}}));
    assert!(!decide(&forever, &old).0);
    // New rows: a share of what there was, or any at 0; none at all is no change.
    let grown = Evidence {
        new_rows: rows(150, 1000),
        ..healthy()
    };
    assert_eq!(
        decide(&request(quiet.clone()), &grown).1,
        [
            "150 new rows in telemetry since v1 was trained (15.0% of 1000), past min_new_share 10.0%"
        ]
    );
    let few = Evidence {
        new_rows: rows(50, 1000),
        ..healthy()
    };
    assert!(!decide(&request(quiet.clone()), &few).0);
    let any = request(json!({"group": "g", "table": "telemetry",
        "drift": {"detected": false}, "policy": {"min_new_share": 0}}));
    assert!(decide(&any, &few).0);
    assert!(!decide(&any, &healthy()).0);
    // Forced, and every reason at once.
    let forced = request(json!({"group": "g", "drift": {"detected": true},
                                "policy": {"force": true}}));
    let old_and_landed = Evidence {
        new_rows: rows(24, 1000),
        ..old
    };
    let (retrain, reasons) = decide(&forced, &old_and_landed);
    assert!(retrain);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0], "forced (policy.force)");
}

#[test]
fn a_bad_policy_is_refused_by_name() {
    let err = crate::request::from_json::<RetrainRequest>(
        json!({"group": "g", "policy": {"max_age": "a week"}}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("max_age") && err.contains("not a duration"),
        "{err}"
    );
    let err = crate::request::from_json::<RetrainRequest>(
        json!({"group": "g", "policy": {"min_age": "7d"}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("min_age"), "{err}");
    let err = crate::request::from_json::<RetrainRequest>(
        json!({"group": "g", "policy": {"min_new_share": -0.5}}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("policy.min_new_share") && err.contains("at least 0"),
        "{err}"
    );
}
