//! SageMaker's invocation contract and its errors, and version swaps under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::json;
use tests::Backend;

use super::{Fixture, OPEN, invoke, options, request, spawn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_sagemakers_contract_and_name_the_version() {
    let fixture = Fixture::new(Backend::Sqlite, 2).await;
    fixture.endpoint("default", &[]).await;
    fixture.endpoint("ab", &["a=v1:1", "b=v2:0"]).await;
    fixture.endpoint("empty", &["p=challenger"]).await;
    let serving = fixture.serving(OPEN, options());
    assert!(serving.refresh().await.unwrap());
    assert!(!serving.refresh().await.unwrap(), "nothing changed");
    let base = spawn(scheduler::serving::router(serving.clone())).await;
    let http = tests::http();

    let ping: serde_json::Value = http
        .get(format!("{base}/ping"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ping["status"], "ok");
    assert_eq!(ping["endpoints"][1]["endpoint"], "default");
    assert_eq!(ping["endpoints"][1]["variants"][0]["version"], 1);

    // The default endpoint: mean and the asked quantiles, 24 steps, named version and variant.
    let (status, version, variant, body) =
        invoke(&http, &format!("{base}/invocations"), &request(24 * 5), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(version.as_deref(), Some("g:v1"));
    assert_eq!(variant.as_deref(), Some("primary"));
    let prediction = &body["predictions"][0];
    assert_eq!(prediction["mean"].as_array().unwrap().len(), 24);
    let quantiles = prediction["quantiles"].as_object().unwrap();
    assert_eq!(quantiles.keys().collect::<Vec<_>>(), vec!["0.1", "0.9"]);
    assert!(prediction.get("samples").is_none());
    let low = quantiles["0.1"].as_array().unwrap();
    let high = quantiles["0.9"].as_array().unwrap();
    assert!(
        low.iter()
            .zip(high)
            .all(|(l, h)| l.as_f64().unwrap() <= h.as_f64().unwrap())
    );

    // Samples on request; the default configuration gives mean and the nine deciles.
    let mut asked = request(48);
    asked["configuration"] = json!({"num_samples": 7, "output_types": ["samples"]});
    let (status, _, _, body) = invoke(
        &http,
        &format!("{base}/endpoints/default/invocations"),
        &asked,
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["predictions"][0]["samples"].as_array().unwrap().len(),
        7
    );
    asked.as_object_mut().unwrap().remove("configuration");
    let (_, _, _, body) = invoke(&http, &format!("{base}/invocations"), &asked, &[]).await;
    assert_eq!(
        body["predictions"][0]["quantiles"]
            .as_object()
            .unwrap()
            .len(),
        9
    );

    // Weights route all traffic to a; the header picks b.
    let ab = format!("{base}/endpoints/ab/invocations");
    for _ in 0..5 {
        let (_, version, variant, _) = invoke(&http, &ab, &request(48), &[]).await;
        assert_eq!(
            (version.as_deref(), variant.as_deref()),
            (Some("g:v1"), Some("a"))
        );
    }
    let target = [("X-Amzn-SageMaker-Target-Variant", "b")];
    let (status, version, variant, _) = invoke(&http, &ab, &request(48), &target).await;
    assert_eq!(
        (status, version.as_deref(), variant.as_deref()),
        (200, Some("g:v2"), Some("b"))
    );

    // Errors: status codes and messages that name the field.
    let check = |status: u16, body: &serde_json::Value, expect: u16, needle: &str| {
        assert_eq!(status, expect, "{body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    };
    let bad = json!({"instances": [{"start": "2024-01-01 00:00:00", "target": [1.0, "x"]}]});
    let (status, version, _, body) = invoke(&http, &format!("{base}/invocations"), &bad, &[]).await;
    check(status, &body, 400, "instances[0].target");
    assert_eq!(
        version.as_deref(),
        Some("g:v1"),
        "errors name the version too"
    );
    let bad = json!({"instances": [], "configuration": {}});
    let (status, _, _, body) = invoke(&http, &format!("{base}/invocations"), &bad, &[]).await;
    check(status, &body, 400, "instances");
    let mut bad = request(48);
    bad["configuration"]["quantiles"] = json!(["1.5"]);
    let (status, _, _, body) = invoke(&http, &format!("{base}/invocations"), &bad, &[]).await;
    check(status, &body, 400, "configuration.quantiles[0]");
    let response = http
        .post(format!("{base}/invocations"))
        .header("content-type", "application/json")
        .body("{\"instances\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    check(400, &body, 400, "invalid JSON");
    let (status, _, _, body) = invoke(
        &http,
        &format!("{base}/endpoints/nope/invocations"),
        &request(48),
        &[],
    )
    .await;
    check(status, &body, 404, "endpoint nope");
    let (status, _, _, body) = invoke(
        &http,
        &format!("{base}/endpoints/empty/invocations"),
        &request(48),
        &[],
    )
    .await;
    check(status, &body, 503, "no model version");
    let (status, _, _, body) = invoke(
        &http,
        &ab,
        &request(48),
        &[("X-Amzn-SageMaker-Target-Variant", "c")],
    )
    .await;
    check(status, &body, 400, "no variant c");
    let huge =
        json!({"instances": [{"start": "2024-01-01 00:00:00", "target": vec![1.5; 20_000]}]});
    let (status, _, _, _) = invoke(&http, &format!("{base}/invocations"), &huge, &[]).await;
    assert_eq!(status, 413);

    // Metrics count the answers per endpoint, variant and version.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"sluice_invocations_total{endpoint="ab",variant="b",version="v2"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_invocation_latency_seconds_bucket"));
    assert!(metrics.contains(r#"status="400""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_concurrent_load_drop_no_request() {
    let fixture = Fixture::new(Backend::Sqlite, 2).await;
    fixture.endpoint("default", &[]).await;
    let serving = fixture.serving(OPEN, options());
    serving.refresh().await.unwrap();
    let base = spawn(scheduler::serving::router(serving.clone())).await;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, answered) = (stop.clone(), answered.clone());
            let url = format!("{base}/invocations");
            tokio::spawn(async move {
                let http = tests::http();
                let mut failures = Vec::new();
                let mut versions = std::collections::BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    let (status, version, _, body) = invoke(&http, &url, &request(48), &[]).await;
                    if status == 200 {
                        answered.fetch_add(1, Ordering::Relaxed);
                        versions.insert(version.unwrap_or_default());
                    } else {
                        failures.push((status, body));
                    }
                }
                (failures, versions)
            })
        })
        .collect();
    let http = tests::http();
    for swap in 0..20u32 {
        let version = 2 - swap % 2;
        fixture.promote(version).await;
        assert!(
            serving.refresh().await.unwrap(),
            "swap {swap} changed nothing"
        );
        // Requests keep flowing between swaps, and the new version answers.
        let before = answered.load(Ordering::Relaxed);
        while answered.load(Ordering::Relaxed) < before + 3 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (_, served, _, _) =
            invoke(&http, &format!("{base}/invocations"), &request(48), &[]).await;
        assert_eq!(served, Some(format!("g:v{version}")), "swap {swap}");
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for client in clients {
        let (failures, versions) = client.await.unwrap();
        assert!(failures.is_empty(), "non-2xx during swaps: {failures:?}");
        seen.extend(versions);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["g:v1".to_owned(), "g:v2".to_owned()]
    );
    assert!(answered.load(Ordering::Relaxed) >= 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_forecasts_of_identified_series_are_kept_for_monitoring() {
    let fixture = Fixture::new(Backend::Sqlite, 1).await;
    fixture.endpoint("default", &[]).await;
    let serving = fixture.serving(OPEN, options());
    serving.refresh().await.unwrap();
    let base = spawn(scheduler::serving::router(serving.clone())).await;
    let http = tests::http();
    let mut identified = request(48);
    identified["instances"][0]["item_id"] = json!("device-7");
    for body in [&identified, &request(48), &identified] {
        let (status, _, _, _) = invoke(&http, &format!("{base}/invocations"), body, &[]).await;
        assert_eq!(status, 200);
    }
    let pool = fixture.db.catalog.pool().clone();
    assert_eq!(serving.served.flush(&pool, &fixture.lake).await.unwrap(), 1);
    let runs = jobs::forecasts::runs(&pool, "g").await.unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].id.starts_with("served-"), "{:?}", runs[0]);
    assert_eq!(
        (runs[0].rows, runs[0].model_version),
        (48, 1),
        "only identified instances"
    );
    let rows = jobs::forecasts::read(&fixture.lake, &runs[0].key)
        .await
        .unwrap();
    assert!(rows.item_id.iter().all(|i| i == "device-7"));
    // The first point follows the 48 hours of history from 2024-01-01 00:00.
    let first = chrono::DateTime::from_timestamp_millis(rows.timestamp_ms[0]).unwrap();
    assert_eq!(first.to_rfc3339(), "2024-01-03T00:00:00+00:00");
    assert_eq!(
        rows.quantiles.iter().map(|(q, _)| *q).collect::<Vec<_>>(),
        vec![0.1, 0.5, 0.9]
    );
    // Each answered request's history is kept beside it (48 points each), for the chart.
    assert_eq!(runs[0].source, "served");
    let history =
        jobs::forecasts::read_history(&fixture.lake, runs[0].history_key.as_deref().unwrap())
            .await
            .unwrap();
    assert_eq!(history.item_id.len(), 96);
    let last = chrono::DateTime::from_timestamp_millis(history.timestamp_ms[47]).unwrap();
    assert_eq!(last.to_rfc3339(), "2024-01-02T23:00:00+00:00");
    assert_eq!(
        serving.served.flush(&pool, &fixture.lake).await.unwrap(),
        0,
        "nothing new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_endpoint_answers_503_with_retry_after_and_ping_stays_up() {
    let fixture = Fixture::new(Backend::Sqlite, 1).await;
    fixture.endpoint("default", &[]).await;
    let mut tight = options();
    tight.workers = 1;
    tight.queue_depth = 0;
    let serving = fixture.serving(OPEN, tight);
    serving.refresh().await.unwrap();
    let base = spawn(scheduler::serving::router(serving)).await;
    let mut heavy = request(24 * 20);
    heavy["configuration"]["num_samples"] = json!(8000);
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let (url, body) = (format!("{base}/invocations"), heavy.clone());
            tokio::spawn(async move {
                let response = tests::http().post(url).json(&body).send().await.unwrap();
                let retry = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                (response.status().as_u16(), retry)
            })
        })
        .collect();
    let ping = tests::http()
        .get(format!("{base}/ping"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        ping.as_u16(),
        200,
        "/ping answers while inference is saturated"
    );
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    assert!(statuses.iter().any(|(s, _)| *s == 200), "{statuses:?}");
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(
        refused
            .iter()
            .all(|(_, retry)| retry.as_deref() == Some("1"))
    );
    assert!(
        statuses.iter().all(|(s, _)| *s == 200 || *s == 503),
        "{statuses:?}"
    );
}
