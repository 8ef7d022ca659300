//! The HTTP API over real HTTP on port 0, on SQLite and Postgres: the workflow operations, their
//! status codes (400 naming the pointer, 404, 409), and the OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use scheduler::api::{ApiState, router};
use scheduler::commands::Context;
use scheduler::config::Config;
use scheduler::orchestrator::engine::Engine;
use scheduler::orchestrator::queue::Queue;
use serde_json::{Value, json};
use tests::{Backend, TestDb};

async fn the_api_runs_workflows_and_maps_errors_to_status_codes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let config = Config {
        database: db.url.clone(),
        lake: "memory://".into(),
        ..Config::default()
    };
    let engine = Engine::new(
        Context {
            config,
            progress: false,
        },
        db.catalog.pool().clone(),
    );
    let queue = Queue::open(&db.url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(ApiState {
        engine: engine.clone(),
        queue: queue.clone(),
    });
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
    let http = reqwest::Client::new();

    let bad = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}});
    let response = http
        .post(format!("{base}/workflows/validate"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid workflow: /States/A/Next: names no state: \"Nope\""
    );
    let response = http
        .post(format!("{base}/workflows/validate"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let flow = json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "sluice:echo", "End": true}}});
    let stored: Value = http
        .put(format!("{base}/workflows/echo"))
        .json(&flow)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored, json!({"workflow": "echo", "version": 1}));
    let response = http
        .post(format!("{base}/workflows/echo/executions"))
        .json(&json!({"input": {"x": 1}, "name": "api-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let started: Value = response.json().await.unwrap();
    let id = started["id"].as_str().unwrap().to_owned();
    let again = http
        .post(format!("{base}/workflows/echo/executions"))
        .json(&json!({"name": "api-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        200,
        "a second start with the name returns the same execution"
    );
    let response = http
        .post(format!("{base}/workflows/echo/executions"))
        .json(&json!({"inputs": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("inputs"),
        "the error names the field"
    );
    assert_eq!(
        http.post(format!("{base}/workflows/nope/executions"))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let execution = loop {
        let execution: Value = http
            .get(format!("{base}/executions/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if execution["status"] != "RUNNING" || std::time::Instant::now() > deadline {
            break execution;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (&execution["status"], &execution["output"]),
        (&json!("SUCCEEDED"), &json!({"x": 1}))
    );
    let history: Vec<Value> = http
        .get(format!("{base}/executions/{id}/history"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history.first().unwrap()["type"], "ExecutionStarted");
    assert_eq!(history.last().unwrap()["type"], "ExecutionSucceeded");
    let listed: Vec<Value> = http
        .get(format!("{base}/executions?workflow=echo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        http.post(format!("{base}/executions/{id}/stop"))
            .send()
            .await
            .unwrap()
            .status(),
        409,
        "a finished execution cannot stop"
    );
    assert_eq!(
        http.post(format!("{base}/executions/{id}/redrive"))
            .send()
            .await
            .unwrap()
            .status(),
        409,
        "only a failed one is redriven"
    );
    assert_eq!(
        http.get(format!("{base}/executions/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let document: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.0.3");
    for path in [
        "/workflows/validate",
        "/workflows/{name}",
        "/workflows/{name}/executions",
        "/executions/{id}/history",
        "/executions/{id}/redrive",
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
