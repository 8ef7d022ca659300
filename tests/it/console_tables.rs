//! The console's catalog pages against a real `sluice server`: a table's columns, schema
//! versions and partitions, a type change held for a person and accepted from the page; and
//! `sluice serve`, which has the serving pages but not the workflows'.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use tests::{free_port, run_sluice};

use super::console::{client, csrf, login, page, server, token};

/// Readings of four devices, `pm25` written as `value` (a number, or text in quotes).
fn readings(hour: u32, value: impl Fn(u32) -> String) -> String {
    (0..40)
        .map(|i| {
            format!(
                "{{\"device_id\":\"d{}\",\"ts\":\"2024-05-30T{hour:02}:{:02}:00Z\",\"pm25\":{}}}\n",
                i % 4,
                i,
                value(i)
            )
        })
        .collect()
}

/// A drift report in the directory's catalog, as the drift step stores it: d1 drifted, d0 not.
async fn drift_report(dir: &std::path::Path) -> String {
    let url = format!("sqlite://{}/.sluice/sluice.db", dir.display());
    let catalog = jobs::catalog::Catalog::connect(&url, &Default::default())
        .await
        .unwrap();
    let feature = |series: &str, score: f64, drifted: bool, after: f64| {
        serde_json::json!({"series": series, "feature": "target", "method": "ks", "score": score,
            "threshold": 0.01, "drifted": drifted, "psi": 0.4, "reference_points": 168,
            "current_points": 24, "reference_mean": 10.0, "current_mean": after})
    };
    let report = serde_json::json!({"subject": "sensors", "detected": true,
        "data": {"series": 2, "drifted_series": 1, "share_drifted": 0.5, "detected": true,
                 "features": [feature("d0", 0.4, false, 10.2), feature("d1", 0.001, true, 14.0)]},
        "schema": [], "accuracy": []});
    let reasons = ["1 of 2 series drifted".to_owned()];
    let id = jobs::drift::store::save(&catalog, "sensors", true, &reasons, &report)
        .await
        .unwrap();
    catalog.pool().close().await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_page_shows_its_schema_and_a_person_accepts_a_type_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let landing = |hour: u32, text: String| {
        let at = path.join(format!("lake/landing/sensors/2024/05/30/{hour:02}"));
        std::fs::create_dir_all(&at).unwrap();
        std::fs::write(at.join("a.json"), text).unwrap();
        let (ok, _, stderr) = run_sluice(path, &["crawl"]);
        assert!(ok, "{stderr}");
    };
    landing(0, readings(0, |i| format!("{}.5", 10 + i % 7)));
    // A firmware starts sending pm25 as text: the crawl holds the change for a person.
    landing(1, readings(1, |i| format!("\"{}.5 ug\"", i % 9)));
    // Until a person decides, conversion quarantines the text values with their reason.
    let (ok, _, stderr) = run_sluice(path, &["convert", "sensors"]);
    assert!(ok, "{stderr}");
    std::fs::write(
        path.join("lake/landing/sensors/2024/05/30/02.json"),
        "not json at all",
    )
    .unwrap();
    let (ok, _, stderr) = run_sluice(path, &["crawl"]);
    assert!(ok, "{stderr}");
    let drift_id = drift_report(path).await;
    let admin = token(path, "admin", "catalog-admin");
    let (_server, base) = server(path).await;
    let client = client();
    let (cookie, _) = login(&client, &base, &admin).await;

    let (status, list) = page(&client, &format!("{base}/ui/tables"), &cookie).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list.contains("href=\"/ui/tables/sensors\""), "{list}");
    let (_, table) = page(&client, &format!("{base}/ui/tables/sensors"), &cookie).await;
    assert!(
        table.contains("Type changes waiting for a decision"),
        "{table}"
    );
    assert!(table.contains("double → string") && table.contains("40 string in 1 objects"));
    assert!(
        table.contains("<code>pm25</code></td><td>double</td>"),
        "{table}"
    );
    assert!(
        table.contains("year / month / day / hour") || table.contains("2024 / 05 / 30 / 00"),
        "{table}"
    );

    assert!(
        table.contains("80 = 40 + 40 <span class=\"status succeeded\">reconciled"),
        "{table}"
    );
    let failed = list
        .split("Objects the crawler could not read")
        .nth(1)
        .unwrap();
    assert!(
        failed.contains("<code>landing/sensors/2024/05/30/02.json</code>"),
        "the unreadable object is listed with its reason: {failed}"
    );
    let (status, quarantined) = page(
        &client,
        &format!("{base}/ui/tables/sensors/runs/1/quarantine"),
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{quarantined}");
    let kind = "pm25: … is not a double";
    assert!(
        quarantined.contains(&format!("{kind}</a></td><td>40<")),
        "{quarantined}"
    );
    let (_, chosen) = page(
        &client,
        &format!("{base}/ui/tables/sensors/runs/1/quarantine?reason=pm25%3A%20%E2%80%A6%20is%20not%20a%20double"),
        &cookie,
    )
    .await;
    assert_eq!(
        chosen.matches("<pre class=\"json\">").count(),
        40,
        "{chosen}"
    );
    assert!(chosen.contains("&quot;source_key&quot;"), "{chosen}");
    let (status, _) = page(
        &client,
        &format!("{base}/ui/tables/sensors/runs/9/quarantine"),
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Drift reports: the list, and a report with its drifted series first.
    let (_, drifts) = page(&client, &format!("{base}/ui/drift"), &cookie).await;
    assert!(drifts.contains(&format!(">{drift_id}</a>")), "{drifts}");
    let (status, report) = page(&client, &format!("{base}/ui/drift/{drift_id}"), &cookie).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(report.contains("1 of 2 series drifted (50 %)"), "{report}");
    let first = report.split("<tbody>").nth(1).unwrap();
    assert!(
        first.trim_start().starts_with(
            "<tr class=\"failure-row\"><td>d1</td><td>target</td><td>ks</td><td>0.0010</td>"
        ),
        "the drifted series comes first: {first}"
    );
    assert!(report.contains("10.0000 → 14.0000"), "{report}");
    let (status, _) = page(&client, &format!("{base}/ui/drift/drift-none"), &cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let value = csrf(&table);

    // The SQL box: the same operation as `sluice query`.
    let query = |sql: &'static str| {
        client
            .post(format!("{base}/ui/query"))
            .header(COOKIE, &cookie)
            .form(&[("csrf", value.as_str()), ("sql", sql)])
            .send()
    };
    let answer = query(
        "SELECT device_id, count(*) AS n FROM sensors_curated GROUP BY device_id ORDER BY device_id",
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let result = answer.text().await.unwrap();
    assert!(result.contains("4 rows"), "{result}");
    assert!(
        result.contains("<tr><td>d0</td><td>10</td></tr>"),
        "{result}"
    );
    let answer = query("SELECT nothing FROM nowhere").await.unwrap();
    assert_ne!(answer.status(), StatusCode::OK);
    assert!(answer.text().await.unwrap().contains("role=\"alert\""));
    let decide = |decision: &'static str| {
        client
            .post(format!("{base}/ui/tables/sensors/type-changes"))
            .header(COOKIE, &cookie)
            .form(&[
                ("csrf", value.as_str()),
                ("column", "pm25"),
                ("type", "string"),
                ("decision", decision),
                ("reason", "the new firmware reports units"),
            ])
            .send()
    };
    assert_eq!(
        decide("maybe").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        decide("accept").await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    let (_, accepted) = page(&client, &format!("{base}/ui/tables/sensors"), &cookie).await;
    assert!(
        !accepted.contains("Type changes waiting for a decision"),
        "{accepted}"
    );
    assert!(
        accepted.contains("<code>pm25</code></td><td>string</td>"),
        "{accepted}"
    );
    assert!(
        accepted.contains("~ pm25 double -&#62; string (widened)"),
        "version 2 records the change: {accepted}"
    );
    assert_ne!(
        decide("accept").await.unwrap().status(),
        StatusCode::SEE_OTHER,
        "decided already"
    );

    // `sluice serve` has the serving pages, not the workflows'.
    let serve_port = free_port();
    let serve_base = format!("http://127.0.0.1:{serve_port}");
    let serve_listen = format!("127.0.0.1:{serve_port}");
    let _serve = tests::spawn(path, &["serve", "--listen", &serve_listen]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while client
        .get(format!("{serve_base}/ping"))
        .send()
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "sluice serve never answered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let response = client
        .post(format!("{serve_base}/ui/login"))
        .form(&[("token", admin.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[LOCATION], "/ui");
    let serve_cookie = response.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let response = client.get(format!("{serve_base}/ui")).send().await.unwrap();
    assert_eq!(response.headers()[LOCATION], "/ui/models");
    let (status, _) = page(
        &client,
        &format!("{serve_base}/ui/tables/sensors"),
        &serve_cookie,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = page(
        &client,
        &format!("{serve_base}/ui/executions"),
        &serve_cookie,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("workflows are on `sluice server`"), "{body}");
}
