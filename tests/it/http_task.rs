//! The HTTP Task (`arn:aws:states:::http:invoke`) against a test server on loopback, as a durable
//! execution on SQLite and Postgres: the request as the definition and the stored connection make
//! it (method, headers, query, JSON and URL-encoded bodies, authentication never in the
//! definition), the response as Step Functions returns it, and errors by its names
//! (`States.Http.StatusCode.404`, a 503 retried, `States.Http.Socket`, `States.Timeout`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use scheduler::orchestrator::store::{self, ExecutionStatus};
use serde_json::{Value, json};
use tests::{Backend, TestDb};

/// A server that shows what it got, fails on demand, and is slow on demand.
async fn serve() -> String {
    let flaky = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/echo",
            post(
                |headers: HeaderMap, RawQuery(query): RawQuery, body: Bytes| async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .map(|v| v.to_str().unwrap_or_default().to_owned())
                    };
                    Json(json!({
                        "query": query, "body": String::from_utf8_lossy(&body),
                        "authorization": header("authorization"),
                        // Whether the key came, not the key: the output lands in the history.
                        "key-ok": header("x-api-key").as_deref() == Some("s3cret"),
                        "x-extra": header("x-extra"), "x-tenant": header("x-tenant"),
                        "content-type": header("content-type"),
                    }))
                },
            ),
        )
        .route("/text", get(|| async { "hello" }))
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move {
                (
                    StatusCode::from_u16(code).unwrap(),
                    Json(json!({"why": "asked for it"})),
                )
            }),
        )
        .route(
            "/flaky",
            get(move || {
                let flaky = flaky.clone();
                async move {
                    if flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"later": true})),
                        )
                    } else {
                        (StatusCode::OK, Json(json!({"ok": true})))
                    }
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn the_http_task_calls_apis_as_step_functions_does(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = db.engine();
    let ops = engine.ops.clone();
    let base = serve().await;
    let closed = tests::free_port();
    let connection: ops::ConnectionRequest = ops::request::from_json(json!({
        "name": "api", "authorization": {"type": "api_key", "header": "x-api-key", "value": "s3cret"},
        "headers": {"x-tenant": "plant-7"}, "query": {"region": "eu"}}))
    .unwrap();
    ops.put_connection(&connection).await.unwrap();
    let listed = serde_json::to_string(&ops.connections().await.unwrap()).unwrap();
    assert!(
        !listed.contains("s3cret") && listed.contains("x-api-key"),
        "{listed}"
    );

    let call = |endpoint: String, extra: Value| {
        let mut state = json!({"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
            "Parameters": {"ApiEndpoint": endpoint, "Method": "GET"}});
        for (key, value) in extra.as_object().unwrap() {
            if key == "Parameters" {
                state["Parameters"]
                    .as_object_mut()
                    .unwrap()
                    .extend(value.as_object().unwrap().clone());
            } else {
                state[key] = value.clone();
            }
        }
        state
    };
    let definition = json!({"StartAt": "Call", "States": {
        "Call": call(format!("{base}/echo"), json!({
            "Parameters": {"Method": "POST", "Headers": {"x-extra": "1"},
                           "QueryParameters": {"a": [1, 2], "b": "x y"}, "RequestBody": {"k": "v"},
                           "Authentication": {"ConnectionArn": "arn:aws:events:eu-west-1:123456789012:connection/api/7f3c"}},
            "ResultSelector": {"got.$": "$.ResponseBody", "status.$": "$.StatusCode", "text.$": "$.StatusText"},
            "ResultPath": "$.call", "Next": "Form"})),
        "Form": call(format!("{base}/echo"), json!({
            "Parameters": {"Method": "POST", "RequestBody": {"a": [1, 2], "b": {"c": "d"}},
                           "Transform": {"RequestBodyEncoding": "URL_ENCODED", "RequestEncodingOptions": {"ArrayFormat": "BRACKETS"}}},
            "ResultSelector": {"got.$": "$.ResponseBody"}, "ResultPath": "$.form", "Next": "Text"})),
        "Text": call(format!("{base}/text"), json!({"ResultPath": "$.text", "Next": "Flaky"})),
        "Flaky": call(format!("{base}/flaky"), json!({
            "Retry": [{"ErrorEquals": ["States.Http.StatusCode.503"], "IntervalSeconds": 0, "MaxAttempts": 2}],
            "ResultSelector": {"body.$": "$.ResponseBody"}, "ResultPath": "$.flaky", "Next": "Missing"})),
        "Missing": call(format!("{base}/status/404"), json!({
            "Catch": [{"ErrorEquals": ["States.Http.StatusCode.404"], "ResultPath": "$.missing", "Next": "Slow"}],
            "Next": "Slow"})),
        "Slow": call(format!("{base}/slow"), json!({"TimeoutSeconds": 1,
            "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.slow", "Next": "Refused"}],
            "Next": "Refused"})),
        "Refused": call(format!("http://127.0.0.1:{closed}/"), json!({
            "Catch": [{"ErrorEquals": ["States.Http.Socket"], "ResultPath": "$.refused", "Next": "Done"}],
            "Next": "Done"})),
        "Done": {"Type": "Succeed"}}});
    store::put_workflow(&engine.pool, "http", &definition)
        .await
        .unwrap();
    let (execution, first) = engine.start("http", json!({}), None).await.unwrap();
    tests::run_to_end(&engine, first.unwrap()).await;
    let done = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let output = done.output.unwrap();

    let got = &output["call"]["got"];
    assert_eq!(
        (&output["call"]["status"], &output["call"]["text"]),
        (&json!(200), &json!("OK"))
    );
    assert_eq!(
        got["query"], "a%5B0%5D=1&a%5B1%5D=2&b=x+y&region=eu",
        "{got}"
    );
    assert_eq!(got["body"], "{\"k\":\"v\"}");
    assert_eq!(got["content-type"], "application/json");
    assert_eq!(
        (&got["key-ok"], &got["x-tenant"], &got["x-extra"]),
        (&json!(true), &json!("plant-7"), &json!("1")),
        "the connection's key and headers, and the definition's header"
    );
    let form = &output["form"]["got"];
    assert_eq!(form["body"], "a%5B%5D=1&a%5B%5D=2&b%5Bc%5D=d", "{form}");
    assert_eq!(form["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(output["text"]["ResponseBody"], "hello");
    assert_eq!(output["text"]["StatusCode"], 200);
    assert!(
        output["text"]["Headers"]["content-type"][0]
            .as_str()
            .unwrap()
            .starts_with("text/plain"),
        "{}",
        output["text"]
    );
    assert_eq!(output["flaky"]["body"], json!({"ok": true}), "retried once");
    assert_eq!(output["missing"]["Error"], "States.Http.StatusCode.404");
    let cause: Value = serde_json::from_str(output["missing"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(
        cause,
        json!({"StatusCode": 404, "StatusText": "Not Found", "ResponseBody": {"why": "asked for it"}})
    );
    assert_eq!(output["slow"]["Error"], "States.Timeout");
    assert_eq!(output["refused"]["Error"], "States.Http.Socket");

    // The secret is in no event of the history.
    let history = store::history(&engine.pool, &execution.id).await.unwrap();
    assert!(
        history
            .iter()
            .all(|e| !e.details.to_string().contains("s3cret")),
        "a connection's secret never enters the history"
    );

    // A connection that does not exist fails the task, naming it.
    let missing = json!({"StartAt": "Call", "States": {"Call": call(format!("{base}/text"), json!({
        "Parameters": {"Authentication": {"ConnectionArn": "nope"}}, "End": true}))}});
    store::put_workflow(&engine.pool, "missing", &missing)
        .await
        .unwrap();
    let (execution, first) = engine.start("missing", json!({}), None).await.unwrap();
    tests::run_to_end(&engine, first.unwrap()).await;
    let failed = store::execution(&engine.pool, &execution.id).await.unwrap();
    assert_eq!(failed.error.as_deref(), Some("Sluice.NotFound"));
    assert!(
        failed
            .cause
            .as_deref()
            .unwrap()
            .contains("connection \"nope\""),
        "{failed:?}"
    );
}

tests::on_both_backends!(the_http_task_calls_apis_as_step_functions_does);
