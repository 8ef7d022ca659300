//! Servers follow alias moves while running (SQLite: the periodic check; Postgres: the
//! notification, with the periodic check set to an hour), and tokens' scopes are enforced on
//! the prediction endpoints and the workflow API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ops::Ops;
use scheduler::api::ApiState;
use scheduler::config::Config;
use scheduler::orchestrator::queue::Queue;
use scheduler::serving::AuthOptions;
use scheduler::serving::auth::{self, Scope};
use serde_json::json;
use tests::{Backend, on_both_backends};

use super::{Fixture, invoke, options, request, spawn};

async fn a_running_server_follows_alias_moves(backend: Backend) {
    let fixture = Fixture::new(backend, 2).await;
    fixture.endpoint("default", &[]).await;
    let mut options = options();
    if backend == Backend::Sqlite {
        options.refresh = Duration::from_millis(100);
    }
    let serving = fixture.serving(super::OPEN, options);
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serving.clone().follow(async move {
        let _ = stopped.await;
    }));
    if backend == Backend::Postgres {
        tokio::spawn(scheduler::serving::listen(
            serving.clone(),
            fixture.db.url.clone(),
        ));
    }
    let base = spawn(scheduler::serving::router(serving)).await;
    let http = tests::http();
    let url = format!("{base}/invocations");
    let served = || async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, version, _, _) = invoke(&http, &url, &request(48), &[]).await;
            if status == 200 || Instant::now() > deadline {
                return version;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(served().await.as_deref(), Some("g:v1"));
    for (version, label) in [(2, "g:v2"), (1, "g:v1")] {
        fixture.promote(version).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if served().await.as_deref() == Some(label) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not follow champion to {label}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

on_both_backends!(a_running_server_follows_alias_moves);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_scopes_are_enforced() {
    let fixture = Fixture::new(Backend::Sqlite, 1).await;
    fixture.endpoint("default", &[]).await;
    let closed = AuthOptions {
        enabled: true,
        anonymous_predict: false,
    };
    let serving = fixture.serving(closed, options());
    serving.refresh().await.unwrap();
    let pool = fixture.db.catalog.pool();
    let admin = auth::create(pool, Scope::Admin, "ops").await.unwrap().token;
    let predict = auth::create(pool, Scope::Predict, "app")
        .await
        .unwrap()
        .token;
    let old = auth::create(pool, Scope::Admin, "old").await.unwrap();
    let (revoked_id, revoked) = (old.id, old.token);
    assert!(auth::revoke(pool, &revoked_id).await.unwrap());
    assert!(!auth::revoke(pool, &revoked_id).await.unwrap());
    let listed = auth::list(pool).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        !listed
            .iter()
            .any(|t| serde_json::to_string(t).unwrap().contains(&admin)),
        "secrets are never listed"
    );

    let engine = scheduler::tasks::Resources::engine(
        Ops::new(
            Config {
                database: fixture.db.url.clone(),
                lake: "memory://".into(),
                ..Config::default()
            }
            .ops_settings(),
        ),
        pool.clone(),
    );
    let api = Arc::new(ApiState::new(
        engine,
        Queue::open(&fixture.db.url).await.unwrap(),
        serving.auth.clone(),
    ));
    let base = spawn(scheduler::api::router(api).merge(scheduler::serving::router(serving))).await;
    let http = tests::http();
    let invocations = format!("{base}/invocations");
    let bearer = |t: &str| format!("Bearer {t}");
    let predict_with = |token: Option<String>| {
        let http = http.clone();
        let url = invocations.clone();
        async move {
            let header = token.map(|t| ("authorization", t));
            let headers: Vec<(&str, &str)> = header
                .as_ref()
                .map(|(n, v)| vec![(*n, v.as_str())])
                .unwrap_or_default();
            invoke(&http, &url, &request(48), &headers).await.0
        }
    };
    assert_eq!(predict_with(None).await, 401);
    assert_eq!(predict_with(Some("Bearer sluice_nope_x".into())).await, 401);
    assert_eq!(predict_with(Some(bearer(&revoked))).await, 401);
    assert_eq!(predict_with(Some(bearer(&predict))).await, 200);
    assert_eq!(predict_with(Some(bearer(&admin))).await, 200);

    let workflows = |token: Option<&str>| {
        let mut request = http.get(format!("{base}/workflows"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(workflows(None).await, 401);
    assert_eq!(workflows(Some(&predict)).await, 403);
    assert_eq!(workflows(Some(&admin)).await, 200);
    // The registry over HTTP is the admin's too, with 4xx that say what is wrong.
    let admin_call = |method: reqwest::Method, path: &str, token: &str, body: serde_json::Value| {
        let request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or_default(),
            )
        }
    };
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    assert_eq!(
        admin_call(get.clone(), "/models", &predict, json!(null))
            .await
            .0,
        403
    );
    let (status, groups) = admin_call(get.clone(), "/models", &admin, json!(null)).await;
    assert_eq!((status, groups[0]["group"].as_str()), (200, Some("g")));
    let (status, versions) =
        admin_call(get.clone(), "/models/g/versions", &admin, json!(null)).await;
    assert_eq!(
        (status, versions[0]["aliases"][0].as_str()),
        (200, Some("champion"))
    );
    let (status, body) = admin_call(
        post.clone(),
        "/models/g/aliases/challenger",
        &admin,
        json!({"version": 1, "reason": "shadow it"}),
    )
    .await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) = admin_call(
        post.clone(),
        "/models/g/aliases/challenger",
        &admin,
        json!({"version": 9, "reason": "no such"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = admin_call(
        post.clone(),
        "/models/g/aliases/challenger/rollback",
        &admin,
        json!({"reason": "undo"}),
    )
    .await;
    assert_eq!(status, 409, "nothing before the first assignment: {body}");
    let (status, body) = admin_call(
        post.clone(),
        "/models/g/aliases/challenger",
        &admin,
        json!({"version": 1}),
    )
    .await;
    assert_eq!(status, 400, "a move needs its reason: {body}");
    let (status, history) = admin_call(get.clone(), "/models/g/history", &admin, json!(null)).await;
    assert_eq!(
        (status, history.as_array().map(Vec::len)),
        (200, Some(4)),
        "{history}"
    );
    let (status, body) = admin_call(
        post.clone(),
        "/endpoints/default/deployments",
        &admin,
        json!({"version": 1, "strategy": "sideways"}),
    )
    .await;
    assert!(
        status == 400 && body["error"].as_str().unwrap().contains("sideways"),
        "{body}"
    );

    // Health, the OpenAPI document, ping and metrics stay open.
    for path in ["/health", "/openapi.json", "/ping", "/metrics"] {
        let status = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200, "{path}");
    }
}
