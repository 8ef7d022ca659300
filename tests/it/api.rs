//! The HTTP API over real HTTP on port 0, on SQLite and Postgres: the workflow operations, their
//! status codes (400 naming the pointer, 404, 409), and the OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use ops::Ops;
use scheduler::api::{ApiState, router};
use scheduler::config::Config;
use scheduler::orchestrator::queue::Queue;
use serde_json::{Value, json};
use tests::{Backend, TestDb};

/// Sends a request: its status and JSON body (null when the body is not JSON).
async fn call(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn the_api_runs_workflows_and_maps_errors_to_status_codes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let config = Config {
        database: db.url.clone(),
        lake: "memory://".into(),
        ..Config::default()
    };
    let engine = scheduler::tasks::Resources::engine(
        Ops::with_catalog(config.ops_settings(), db.catalog.clone()),
        db.catalog.pool().clone(),
    );
    let queue = Queue::open(&db.url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Tokens have their own test (serving::follow); this one is about the workflow operations.
    let auth = Arc::new(scheduler::serving::Auth::new(
        db.catalog.pool().clone(),
        scheduler::serving::AuthOptions {
            enabled: false,
            anonymous_predict: false,
        },
    ));
    let state = Arc::new(ApiState::new(engine.clone(), queue.clone(), auth));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(queue.work(engine, "api-worker".into(), async move {
        let _ = worker_stopped.await;
    }));
    let http = tests::http();

    let bad = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}});
    let (status, body) = call(http.post(format!("{base}/workflows/validate")).json(&bad)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "invalid workflow: /States/A/Next: names no state: \"Nope\""
    );
    let (status, _) = call(
        http.post(format!("{base}/workflows/validate"))
            .body("{not json")
            .header("content-type", "application/json"),
    )
    .await;
    assert_eq!(status, 400);

    let flow = json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "sluice:echo", "End": true}}});
    let (_, stored) = call(http.put(format!("{base}/workflows/echo")).json(&flow)).await;
    assert_eq!(stored, json!({"workflow": "echo", "version": 1}));
    let start = |body: Value| {
        http.post(format!("{base}/workflows/echo/executions"))
            .json(&body)
    };
    let (status, started) = call(start(json!({"input": {"x": 1}, "name": "api-1"}))).await;
    assert_eq!(status, 201);
    let id = started["id"].as_str().unwrap().to_owned();
    // A name starts one execution: another input under it is refused (ExecutionAlreadyExists).
    let (status, body) = call(start(json!({"name": "api-1"}))).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(&format!("already exists ({id}")),
        "{body}"
    );
    let (status, body) = call(start(json!({"inputs": {}}))).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("inputs"),
        "the error names the field"
    );
    let (status, _) = call(
        http.post(format!("{base}/workflows/nope/executions"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 404);

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let execution = loop {
        let (_, execution) = call(http.get(format!("{base}/executions/{id}"))).await;
        if execution["status"] != "RUNNING" || std::time::Instant::now() > deadline {
            break execution;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (&execution["status"], &execution["output"]),
        (&json!("SUCCEEDED"), &json!({"x": 1}))
    );
    let (_, history) = call(http.get(format!("{base}/executions/{id}/history"))).await;
    let history = history.as_array().unwrap();
    assert_eq!(history.first().unwrap()["type"], "ExecutionStarted");
    assert_eq!(history.last().unwrap()["type"], "ExecutionSucceeded");
    let (_, listed) = call(http.get(format!("{base}/executions?workflow=echo"))).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // Filters, and pages by the cursor in X-Sluice-Next.
    let (_, second) = call(start(json!({"input": {"x": 2}, "name": "api-2"}))).await;
    let page = http
        .get(format!("{base}/executions?workflow=echo&limit=1"))
        .send()
        .await
        .unwrap();
    let next = page.headers()["x-sluice-next"].to_str().unwrap().to_owned();
    let first: Value = page.json().await.unwrap();
    assert_eq!(first[0]["id"], second["id"], "newest first");
    let rest = http
        .get(format!(
            "{base}/executions?workflow=echo&limit=1&after={next}"
        ))
        .send()
        .await
        .unwrap();
    assert!(
        rest.headers().get("x-sluice-next").is_none(),
        "the last page"
    );
    let rest: Value = rest.json().await.unwrap();
    assert_eq!(rest[0]["id"], id.as_str());
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let (_, succeeded) = call(http.get(format!(
        "{base}/executions?status=SUCCEEDED&started_from={today}"
    )))
    .await;
    assert!(
        succeeded
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == id.as_str())
    );
    let (_, none) = call(http.get(format!("{base}/executions?started_before=2000-01-01"))).await;
    assert_eq!(none, json!([]));
    for (query, field) in [
        ("status=DONE", "status"),
        ("after=nope", "after"),
        ("started_from=soon", "started_from"),
    ] {
        let (status, error) = call(http.get(format!("{base}/executions?{query}"))).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            error["error"].as_str().unwrap().starts_with(field),
            "{error}"
        );
    }
    let (status, _) = call(http.post(format!("{base}/executions/{id}/stop"))).await;
    assert_eq!(status, 409, "a finished execution cannot stop");
    let (status, _) = call(http.post(format!("{base}/executions/{id}/redrive"))).await;
    assert_eq!(status, 409, "only a failed one is redriven");
    let (status, _) = call(http.get(format!("{base}/executions/nope"))).await;
    assert_eq!(status, 404);
    let (status, error) = call(http.get(format!("{base}/executions?limit=many"))).await;
    assert_eq!(status, 400, "a query string that cannot be read");
    assert!(
        error["error"].as_str().unwrap().contains("limit"),
        "in JSON like every error: {error}"
    );

    let (_, document) = call(http.get(format!("{base}/openapi.json"))).await;
    assert_eq!(document["openapi"], "3.0.3");
    let list = &document["paths"]["/executions"]["get"]["responses"];
    assert!(
        ["200", "400", "401", "403"]
            .iter()
            .all(|s| list.get(*s).is_some()),
        "refusals are documented: {list}"
    );
    assert!(
        document["paths"]["/health"]["get"]["responses"]
            .get("401")
            .is_none(),
        "an open route has no token to refuse"
    );
    for path in [
        "/workflows/validate",
        "/workflows/{name}",
        "/workflows/{name}/executions",
        "/executions/{id}/history",
        "/executions/{id}/redrive",
        "/invocations",
        "/endpoints/{name}/invocations",
        "/models/{group}/aliases/{alias}",
        "/endpoints/{name}/deployments",
        "/triggers",
        "/triggers/{name}/fires",
        "/notifications/rules",
        "/notifications/deliveries",
        "/notifications/deliveries/{id}/retry",
        "/",
        "/ingest/streams/{stream}/records",
        "/ingest/stats",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} is documented"
        );
    }
    let _ = stop.send(());
    let _ = stop_worker.send(());
    server.await.unwrap().unwrap();
    worker.await.unwrap().unwrap();
}

tests::on_both_backends!(the_api_runs_workflows_and_maps_errors_to_status_codes);
