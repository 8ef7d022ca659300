//! The console over plain HTTP against a real `sluice server`: logging in (the cookie's flags,
//! a bad token, a predict token refused every admin page, logging out, a revoked token's
//! session ending), the executions list with its filters and pages, an execution's page, and
//! every state-changing form refusing a request without the session's CSRF value or from
//! another site; schedules' next ticks, Pause and Backfill. The browser drives the same pages in
//! `console_browser.rs`; the catalog's pages are in `console_tables.rs`.

use std::path::Path;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use tests::{free_port, run_sluice, spawn_server};

pub fn sluice_json(dir: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let (ok, stdout, stderr) = run_sluice(dir, &args);
    assert!(ok, "sluice {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

pub fn token(dir: &Path, scope: &str, name: &str) -> String {
    sluice_json(dir, &["token", "create", "--scope", scope, "--name", name])["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub fn create_workflow(dir: &Path, name: &str, definition: &Value) {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, definition.to_string()).unwrap();
    let (ok, _, stderr) = run_sluice(
        dir,
        &[
            "workflow",
            "create",
            name,
            "--definition",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
}

/// A client that does not follow redirects, so that each answer can be checked.
/// `sluice server` on a free port in the directory: the process, and its base address.
pub async fn server(dir: &Path) -> (tests::Process, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let process = spawn_server(dir, port, &["server", "--listen", &listen]).await;
    (process, format!("http://127.0.0.1:{port}"))
}

pub fn client() -> reqwest::Client {
    tests::http();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in; returns the `name=value` of the session cookie and the whole Set-Cookie.
pub async fn login(client: &reqwest::Client, base: &str, token: &str) -> (String, String) {
    let response = client
        .post(format!("{base}/ui/login"))
        .form(&[("token", token), ("next", "/ui/workflows")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/ui/workflows");
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    (set.split(';').next().unwrap().to_owned(), set)
}

pub async fn page(client: &reqwest::Client, url: &str, cookie: &str) -> (StatusCode, String) {
    let response = client.get(url).header(COOKIE, cookie).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The CSRF value a page's forms carry.
pub fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with the CSRF value")
        + 19;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_needs_a_session_and_refuses_forged_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_workflow(
        path,
        "quick",
        &json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}),
    );
    create_workflow(
        path,
        "slow",
        &json!({"StartAt": "Nap", "States": {"Nap": {"Type": "Task", "Resource": "sluice:sleep",
            "Parameters": {"seconds": 600}, "End": true}}}),
    );
    let admin = token(path, "admin", "console-admin");
    let predict = token(path, "predict", "an-app");
    let (_server, base) = server(path).await;
    let client = client();

    // No session: to the login page, remembering where to go.
    let response = client
        .get(format!("{base}/ui/executions?status=failed"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[LOCATION],
        "/ui/login?next=%2Fui%2Fexecutions%3Fstatus%3Dfailed"
    );
    let response = client
        .post(format!("{base}/ui/login"))
        .form(&[("token", "sluice_nope_nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("unknown or revoked token")
    );

    // The cookie: HttpOnly, SameSite=Strict, the console's path only, expiring.
    let (cookie, set) = login(&client, &base, &admin).await;
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(set.contains(flag), "{flag} missing from {set}");
    }
    assert!(
        !set.contains(&admin),
        "the token itself is never the cookie"
    );

    // A predict token's session sees no admin page.
    let (predict_cookie, _) = login(&client, &base, &predict).await;
    let (status, body) = page(&client, &format!("{base}/ui/executions"), &predict_cookie).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("needs an admin token"), "{body}");

    // Executions, started through the API, listed newest first, filtered and paged.
    let api = tests::http();
    let mut ids = Vec::new();
    for i in 0..55 {
        let started: Value = api
            .post(format!("{base}/workflows/quick/executions"))
            .bearer_auth(&admin)
            .json(&json!({"name": format!("run-{i:02}"), "input": {"i": i}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(started["id"].as_str().unwrap().to_owned());
    }
    let slow: Value = api
        .post(format!("{base}/workflows/slow/executions"))
        .bearer_auth(&admin)
        .json(&json!({"name": "napping"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let slow_id = slow["id"].as_str().unwrap().to_owned();

    // The worker runs them all before the lists are read (a loaded machine may still queue some).
    for id in &ids {
        let done = tests::wait_for_execution(path, id, std::time::Duration::from_secs(60));
        assert_eq!(done, "SUCCEEDED", "{id}");
    }
    let (status, first) = page(
        &client,
        &format!("{base}/ui/executions?workflow=quick"),
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first.matches("<tr>").count(), 51, "50 rows and the header");
    assert!(first.contains(">run-54<") && !first.contains(">napping<"));
    let next = first
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|href| href.contains("after="))
        .expect("a next page")
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let (_, second) = page(&client, &format!("{base}{next}"), &cookie).await;
    assert_eq!(
        second.matches("<tr>").count(),
        6,
        "5 rows and the header: {second}"
    );
    assert!(second.contains(">run-00<") && !second.contains(">run-54<"));
    assert!(!second.contains("rel=\"next\""));
    let (_, running) = page(
        &client,
        &format!("{base}/ui/executions?status=running"),
        &cookie,
    )
    .await;
    assert!(running.contains(">napping<") && !running.contains(">run-00<"));
    let (status, bad) = page(
        &client,
        &format!("{base}/ui/executions?status=sleepy"),
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bad.contains("status: RUNNING, SUCCEEDED, FAILED or ABORTED"),
        "{bad}"
    );
    let (status, _) = page(&client, &format!("{base}/ui/executions?to=soon"), &cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An execution's page: the graph, the history with the state's input and output.
    let (status, shown) = page(
        &client,
        &format!("{base}/ui/executions/{}", ids[3]),
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        shown.contains("class=\"state succeeded\" data-state=\"Done\""),
        "{shown}"
    );
    assert!(shown.contains("PassStateEntered") && shown.contains("&quot;i&quot;: 3"));
    let (status, _) = page(
        &client,
        &format!("{base}/ui/executions/no-such-id"),
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Stop: refused without the CSRF value, with another's, and from another site.
    let (_, napping) = page(&client, &format!("{base}/ui/executions/{slow_id}"), &cookie).await;
    assert!(
        napping.contains("hx-trigger=\"every 2s\""),
        "a running execution refreshes itself"
    );
    let value = csrf(&napping);
    let stop = format!("{base}/ui/executions/{slow_id}/stop");
    for (form, origin) in [
        (vec![], None),
        (vec![("csrf", "forged")], None),
        (vec![("csrf", value.as_str())], Some("http://localhost:1")),
    ] {
        let mut request = client.post(&stop).header(COOKIE, &cookie).form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{form:?} {origin:?}"
        );
    }
    let other_session = login(&client, &base, &admin).await.0;
    let response = client
        .post(&stop)
        .header(COOKIE, &other_session)
        .form(&[("csrf", value.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "another session's value"
    );
    let (_, still) = page(&client, &format!("{base}/ui/executions/{slow_id}"), &cookie).await;
    assert!(still.contains("id=\"status\" class=\"status running\""));
    let response = client
        .post(&stop)
        .header(COOKIE, &cookie)
        .header("origin", &base)
        .form(&[("csrf", value.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, stopped) = page(&client, &format!("{base}/ui/executions/{slow_id}"), &cookie).await;
    assert!(
        stopped.contains("id=\"status\" class=\"status aborted\""),
        "{stopped}"
    );
    assert!(
        !stopped.contains("hx-trigger"),
        "an ended execution stops refreshing"
    );

    // Validate names the JSON pointer; nothing is stored.
    let response = client
        .post(format!("{base}/ui/workflows/quick/validate"))
        .header(COOKIE, &cookie)
        .form(&[
            ("csrf", value.as_str()),
            (
                "definition",
                r#"{"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Next": "Nowhere"}}}"#,
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("<code class=\"pointer\">/States/Done/Next</code>"),
        "{body}"
    );
    let (_, workflow) = page(&client, &format!("{base}/ui/workflows/quick"), &cookie).await;
    assert!(workflow.contains("Latest version 1"));

    // Schedules: the next ticks in the schedule's zone; Pause; Backfill starts each tick once.
    let (ok, _, stderr) = run_sluice(
        path,
        &[
            "schedule",
            "create",
            "nightly",
            "--cron",
            "0 2 * * *",
            "--tz",
            "Europe/Paris",
            "--workflow",
            "quick",
        ],
    );
    assert!(ok, "{stderr}");
    let (status, schedules) = page(&client, &format!("{base}/ui/schedules"), &cookie).await;
    assert_eq!(status, StatusCode::OK, "{schedules}");
    assert!(schedules.contains("02:00 CET"), "{schedules}");
    assert!(
        schedules.contains("T01:00:00.000Z"),
        "the UTC instant beside it: {schedules}"
    );
    let post = |url: String, form: Vec<(&'static str, String)>| {
        let request = client.post(url).header(COOKIE, &cookie).form(&form);
        async move { request.send().await.unwrap().status() }
    };
    let pause = format!("{base}/ui/schedules/nightly/pause");
    assert_eq!(post(pause.clone(), vec![]).await, StatusCode::FORBIDDEN);
    assert_eq!(
        post(pause, vec![("csrf", value.clone())]).await,
        StatusCode::SEE_OTHER
    );
    let (_, paused) = page(&client, &format!("{base}/ui/schedules"), &cookie).await;
    assert!(paused.contains("paused</span>") && paused.contains(">Resume<"));
    let backfill = format!("{base}/ui/schedules/nightly/backfill");
    let form = |to: &str| {
        vec![
            ("csrf", value.clone()),
            ("from", "2026-11-01T00:00".to_owned()),
            ("to", to.to_owned()),
        ]
    };
    assert_eq!(
        post(backfill.clone(), form("later")).await,
        StatusCode::BAD_REQUEST
    );
    for _ in 0..2 {
        assert_eq!(
            post(backfill.clone(), form("2026-11-03T00:00")).await,
            StatusCode::SEE_OTHER
        );
    }
    let (_, ticks) = page(&client, &format!("{base}/ui/schedules"), &cookie).await;
    assert_eq!(
        ticks.matches(">started<").count(),
        2,
        "the 1st and 2nd, once each: {ticks}"
    );

    // Logging out ends the session; revoking a token ends its sessions.
    let response = client
        .post(format!("{base}/ui/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", value.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _) = page(&client, &format!("{base}/ui/workflows"), &cookie).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = page(&client, &format!("{base}/ui/workflows"), &other_session).await;
    assert_eq!(status, StatusCode::OK);
    let tokens = sluice_json(path, &["token", "list"]);
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "console-admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, _, stderr) = run_sluice(path, &["token", "revoke", &id]);
    assert!(ok, "{stderr}");
    let (status, _) = page(&client, &format!("{base}/ui/workflows"), &other_session).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a revoked token's session is over"
    );
}
