//! The console in a real browser: the system Chromium (Debian's `chromium`), driven by
//! playwright-core from `tests/browser/console.mjs` (installed by `scripts/test.sh` with `npm
//! ci`). This test makes what the script needs (a `sluice server`, workflows, an admin and a
//! predict token, a failed execution, a page on another site that forges a POST) and fails
//! loudly when Node, the script's packages or Chromium are missing.

use std::path::PathBuf;
use std::time::Duration;

use jobs::lake::Lake;
use models::registry::{AliasName, Change, GroupName, NewVersion, Registry};
use scheduler::serving::endpoints::{self, EndpointSpec, Variant};
use serde_json::{Value, json};
use tests::{free_port, spawn_server, wait_for_execution};

use super::console::{create_workflow, sluice_json, token};
use super::serving::{invoke, panel, request, upload_model};

/// Two versions of the model group `sensors` in the directory's catalog and lake (v2 with the
/// better backtest), v1 the champion, and the endpoint `sensors` following the champion.
async fn two_model_versions(dir: &std::path::Path) {
    let url = format!("sqlite://{}/.sluice/sluice.db", dir.display());
    let catalog = jobs::catalog::Catalog::connect(&url, &Default::default())
        .await
        .unwrap();
    let lake = Lake::open(
        &format!("file://{}/lake", dir.display()),
        &Default::default(),
    )
    .unwrap();
    let registry = Registry::new(catalog.pool().clone());
    let group = GroupName::parse("sensors").unwrap();
    for (seed, loss) in [(0, 0.21), (1, 0.17)] {
        let artifact = upload_model(&lake, seed).await;
        registry
            .register(
                &group,
                &NewVersion {
                    artifact,
                    dataset_snapshot: Some(format!("snapshot-{seed}")),
                    training_execution: None,
                    hyperparameters: json!({"epochs": "1", "num_cells": "8"}),
                    metrics: json!({"mean_wQuantileLoss": loss}),
                    baseline_metrics: json!({"mean_wQuantileLoss": 0.3}),
                    actor: "test".into(),
                },
            )
            .await
            .unwrap();
    }
    let change = Change {
        actor: "test".into(),
        reason: "first".into(),
    };
    registry
        .move_alias(&group, &AliasName::champion(), 1, &change)
        .await
        .unwrap();
    let spec = EndpointSpec::new(
        "sensors",
        group,
        vec![Variant::parse("primary=champion").unwrap()],
    )
    .unwrap();
    endpoints::put(catalog.pool(), &spec).await.unwrap();
    catalog.pool().close().await;
}

/// Two batch forecasts of the champion: from three days of two devices, then from a fourth day
/// more (whose history holds the actuals of the first run's window); returns the first run.
fn forecast_runs(dir: &std::path::Path) -> String {
    let mut first = String::new();
    for (file, hours) in [("series.jsonl", 72), ("longer.jsonl", 96)] {
        let lines: String = panel(2, hours)
            .iter()
            .map(|s| {
                let line = json!({"start": "2024-01-01 00:00:00", "target": s.target, "item_id": s.item_id});
                format!("{line}\n")
            })
            .collect();
        std::fs::write(dir.join(file), lines).unwrap();
        let run = sluice_json(
            dir,
            &[
                "models",
                "batch-forecast",
                "--group",
                "sensors",
                "--input",
                file,
                "--num-samples",
                "20",
            ],
        );
        if first.is_empty() {
            first = run["id"].as_str().unwrap().to_owned();
        }
    }
    first
}

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn chromium() -> String {
    std::env::var("SLUICE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// A page on another site (`localhost`, where the console is `127.0.0.1`) whose form posts
/// itself to the console as soon as it loads.
async fn forging_site(target: String) -> String {
    let page = format!(
        "<!doctype html><html lang=\"en\"><body><h1>Win a prize</h1>\
         <form id=\"f\" method=\"post\" action=\"{target}\">\
         <input name=\"csrf\" value=\"guess\"><input name=\"input\" value='{{\"evil\": true}}'></form>\
         <script>document.getElementById('f').submit()</script></body></html>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://localhost:{}/",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_runs_inspects_fixes_and_redrives_workflows_in_the_browser() {
    let script = browser_dir().join("console.mjs");
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    assert!(
        std::path::Path::new(&chromium()).exists(),
        "Chromium is missing at {}: apt-get install chromium (scripts/test.sh does), or set SLUICE_TEST_CHROMIUM",
        chromium()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_workflow(
        path,
        "nightly-broken",
        &json!({"StartAt": "Prepare", "States": {
            "Prepare": {"Type": "Pass", "Result": {"ok": true}, "Next": "Check"},
            "Check": {"Type": "Fail", "Error": "Sluice.Broken", "Cause": "the check failed: 3 of 40 rows"}}}),
    );
    create_workflow(
        path,
        "slow-ok",
        &json!({"StartAt": "Nap", "States": {"Nap": {"Type": "Task", "Resource": "sluice:sleep",
            "Parameters": {"seconds": 3}, "End": true}}}),
    );
    let admin = token(path, "admin", "browser-admin");
    two_model_versions(path).await;
    let forecast = forecast_runs(path);
    let predict = token(path, "predict", "browser-app");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let _server = spawn_server(path, port, &["server", "--listen", &listen]).await;
    let failed = sluice_json(
        path,
        &[
            "workflow",
            "start",
            "nightly-broken",
            "--name",
            "broken-night",
        ],
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        wait_for_execution(path, &failed, Duration::from_secs(60)),
        "FAILED"
    );
    let evil = forging_site(format!("{base}/ui/workflows/slow-ok/start")).await;

    let screenshots = std::env::var("SLUICE_SCREENSHOTS").unwrap_or_default();
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .env("SLUICE_URL", &base)
        .env("SLUICE_CHROMIUM", chromium())
        .env("SLUICE_SCREENSHOTS", &screenshots)
        .env("ADMIN_TOKEN", &admin)
        .env("PREDICT_TOKEN", &predict)
        .env("FAILED_ID", &failed)
        .env("EVIL_URL", &evil)
        .env(
            "FORECAST_PATH",
            format!("/ui/forecasts/sensors/{forecast}?item=device-0"),
        )
        .output()
        .await
        .expect("node is needed for the browser tests (Debian: apt-get install nodejs)");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the browser test failed:\n{log}");
    assert!(log.contains("console.mjs: done"), "{log}");

    // What the browser did, as the API sees it: the redrive succeeded with version 2's
    // output, and the forged POST started nothing.
    let client = tests::http();
    let api = |path: String| {
        let request = client.get(format!("{base}{path}")).bearer_auth(&admin);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let execution = api(format!("/executions/{failed}")).await;
    assert_eq!(execution["status"], "SUCCEEDED", "{execution}");
    assert_eq!(execution["redrive_count"], 1);
    assert_eq!(execution["output"], "checked again");
    let runs = api("/executions?workflow=slow-ok".to_owned()).await;
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "only the console's start: {runs:?}");
    assert_eq!(runs[0]["input"], json!({"from": "the console"}));

    // The promotion made in the browser: the endpoint serves version 2 (servers follow the
    // registry every two seconds).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let auth = format!("Bearer {predict}");
        let (status, version, _, body) = invoke(
            &client,
            &format!("{base}/endpoints/sensors/invocations"),
            &request(48),
            &[("authorization", auth.as_str())],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if version.as_deref() == Some("sensors:v2") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the endpoint still serves {version:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
