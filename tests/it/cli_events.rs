//! Triggers and notifications through the real binary: rules and triggers made with `sluice
//! notify` and `sluice trigger`, then a running `sluice server` starts a workflow when an object
//! lands, and sends a signed webhook to a local receiver when an execution fails; what it did is
//! visible in the CLI and over the HTTP API, and a rule's secret never is.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tests::{free_port, run_sluice, sluice_binary};

fn sluice_json(dir: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let (ok, stdout, stderr) = run_sluice(dir, &args);
    assert!(ok, "sluice {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

type Got = Arc<Mutex<Vec<(HeaderMap, String)>>>;

async fn receiver() -> (Got, String) {
    let got: Got = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push((headers, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (got, url)
}

/// A GET with the admin token, its JSON body.
async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} did not happen in 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_starts_triggered_workflows_and_sends_signed_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::fs::write(
        path.join("breaks.json"),
        json!({"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Sluice.Broken", "Cause": "on purpose"}}}).to_string(),
    )
    .unwrap();
    std::fs::write(
        path.join("copy.json"),
        json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}).to_string(),
    )
    .unwrap();
    for name in ["breaks", "copy"] {
        let file = format!("{name}.json");
        let (ok, _, stderr) =
            run_sluice(path, &["workflow", "create", name, "--definition", &file]);
        assert!(ok, "{stderr}");
    }
    let (got, url) = receiver().await;
    let secret = "a-secret-of-enough-length";
    let created = std::process::Command::new(sluice_binary())
        .args([
            "notify",
            "create",
            "on-call",
            "--url",
            &url,
            "--on",
            "execution.failed",
            "--on",
            "drift.detected",
            "--secret-env",
            "HOOK_SECRET",
            "--output",
            "json",
        ])
        .current_dir(path)
        .env("HOOK_SECRET", secret)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let (ok, _, stderr) = run_sluice(
        path,
        &[
            "notify",
            "create",
            "nope",
            "--url",
            "ftp://x",
            "--on",
            "execution.failed",
        ],
    );
    assert!(!ok && stderr.contains("url: http or https"), "{stderr}");
    let (ok, _, stderr) = run_sluice(
        path,
        &[
            "notify",
            "create",
            "nope",
            "--url",
            &url,
            "--on",
            "execution.exploded",
        ],
    );
    assert!(
        !ok && stderr.contains("\"execution.exploded\" is not an event"),
        "{stderr}"
    );
    let trigger = sluice_json(
        path,
        &[
            "trigger",
            "create",
            "landed",
            "--workflow",
            "copy",
            "--on-landing",
            "landing/telemetry",
            "--window",
            "1s",
            "--input",
            r#"{"table": "telemetry"}"#,
        ],
    );
    assert_eq!(trigger["prefix"], "landing/telemetry/");
    assert_eq!(trigger["window_seconds"], 1);
    let (ok, _, stderr) = run_sluice(
        path,
        &[
            "trigger",
            "create",
            "other",
            "--workflow",
            "missing",
            "--on-landing",
            "landing",
        ],
    );
    assert!(!ok && stderr.contains("missing"), "{stderr}");

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _server = tests::spawn_server(path, port, &["server", "--listen", &listen]).await;
    let started = sluice_json(path, &["workflow", "start", "breaks"]);
    let failed_id = started["id"].as_str().unwrap().to_owned();
    std::fs::create_dir_all(path.join("lake/landing/telemetry/2024/05/01/00")).unwrap();
    std::fs::write(
        path.join("lake/landing/telemetry/2024/05/01/00/a.json"),
        "{\"ts\": \"2024-05-01T00:00:00Z\"}\n",
    )
    .unwrap();

    let (headers, body) = eventually("the failure's webhook", || {
        got.lock().unwrap().first().cloned()
    })
    .await;
    let body_json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body_json["kind"], "execution.failed");
    assert_eq!(body_json["detail"]["execution"], failed_id.as_str());
    let timestamp: i64 = headers["x-sluice-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        headers["x-sluice-signature"].to_str().unwrap(),
        ops::notifications::signature(secret, timestamp, &body)
    );

    let fire = eventually("the trigger's execution", || {
        let fires = sluice_json(path, &["trigger", "fires", "landed"]);
        fires
            .as_array()
            .and_then(|f| f.first())
            .filter(|f| f["outcome"] == "started")
            .cloned()
    })
    .await;
    assert_eq!(
        fire["detail"]["keys"],
        json!(["landing/telemetry/2024/05/01/00/a.json"])
    );
    let execution = sluice_json(
        path,
        &[
            "workflow",
            "describe",
            fire["execution_id"].as_str().unwrap(),
        ],
    );
    assert_eq!(execution["workflow"], "copy");
    assert_eq!(execution["input"]["table"], "telemetry");
    assert_eq!(execution["input"]["trigger"]["objects"], 1);

    let deliveries = sluice_json(path, &["notify", "deliveries"]);
    assert_eq!(deliveries[0]["status"], "delivered", "{deliveries}");
    assert_eq!(deliveries[0]["attempts"], 1);
    let (ok, stdout, _) = run_sluice(path, &["notify", "list"]);
    assert!(
        ok && stdout.contains("on-call") && !stdout.contains(secret),
        "{stdout}"
    );

    // The same over the HTTP API, behind an admin token.
    let admin = sluice_json(path, &["token", "create", "--scope", "admin"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = tests::http();
    let base = format!("http://{listen}");
    let rules: Value = get_json(&client, &format!("{base}/notifications/rules"), &admin).await;
    assert_eq!(rules[0]["name"], "on-call");
    assert_eq!(rules[0]["signed"], true);
    assert!(!rules.to_string().contains(secret));
    let listed: Value = get_json(
        &client,
        &format!("{base}/notifications/deliveries?status=delivered"),
        &admin,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let response = client
        .post(format!("{base}/triggers"))
        .bearer_auth(&admin)
        .json(&json!({"name": "drifted", "workflow": "copy", "on": "drift", "window_seconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = client
        .post(format!("{base}/triggers"))
        .bearer_auth(&admin)
        .json(&json!({"name": "bad", "workflow": "copy", "on": "landing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("prefix"),
        "{error}"
    );
    let unauthorized = client.get(format!("{base}/triggers")).send().await.unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    let triggers: Value = get_json(&client, &format!("{base}/triggers"), &admin).await;
    assert_eq!(triggers.as_array().unwrap().len(), 2);
}
