//! The registry, endpoints and deployments over HTTP, for the `admin` scope: what `sluice
//! models` and `sluice endpoint` do, for tools that cannot reach the database. Client faults
//! are 4xx naming the problem; a refused registry change (an alias on a rejected version) 409.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use models::registry::{AliasName, Change, GroupName, Registry};
use serde::Deserialize;
use serde_json::json;

use super::auth::Scope;
use super::deployments::{self, Settings, Strategy};
use super::{Error, Serving};

fn reply(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// The status of an error, at the edge.
fn fault(err: Error) -> Response {
    match err {
        Error::Invalid(message) => reply(StatusCode::BAD_REQUEST, message),
        Error::Registry(models::Error::NotFound { what }) => {
            reply(StatusCode::NOT_FOUND, format!("{what} not found"))
        }
        Error::Registry(err @ models::Error::Conflict { .. }) => {
            reply(StatusCode::CONFLICT, err.to_string())
        }
        Error::Registry(err @ models::Error::InvalidArgument { .. }) => {
            reply(StatusCode::BAD_REQUEST, err.to_string())
        }
        other => {
            tracing::error!(error = %other, "admin request failed");
            reply(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

async fn require_admin(
    State(state): State<Arc<Serving>>,
    request: Request,
    next: Next,
) -> Response {
    match super::routes::require(&state.auth, request.headers(), Scope::Admin).await {
        Ok(()) => next.run(request).await,
        Err(response) => response,
    }
}

/// The admin routes.
pub fn router(state: Arc<Serving>) -> Router {
    Router::new()
        .route("/models", get(groups))
        .route("/models/{group}/versions", get(versions))
        .route("/models/{group}/history", get(history))
        .route("/models/{group}/aliases/{alias}", post(move_alias))
        .route("/models/{group}/aliases/{alias}/rollback", post(rollback))
        .route(
            "/endpoints/{name}/deployments",
            post(deploy).get(list_deployments),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .with_state(state)
}

fn group(name: &str) -> Result<GroupName, String> {
    GroupName::parse(name).map_err(|e| e.to_string())
}

async fn groups(State(state): State<Arc<Serving>>) -> Response {
    match Registry::new(state.pool.clone()).groups().await {
        Ok(groups) => Json(json!(
            groups
                .iter()
                .map(|(g, n)| json!({"group": g, "generation": n}))
                .collect::<Vec<_>>()
        ))
        .into_response(),
        Err(err) => fault(err.into()),
    }
}

async fn versions(State(state): State<Arc<Serving>>, Path(name): Path<String>) -> Response {
    let group = match group(&name) {
        Ok(g) => g,
        Err(message) => return reply(StatusCode::BAD_REQUEST, message),
    };
    match Registry::new(state.pool.clone()).versions(&group).await {
        Ok(versions) => Json(json!(versions)).into_response(),
        Err(err) => fault(err.into()),
    }
}

async fn history(State(state): State<Arc<Serving>>, Path(name): Path<String>) -> Response {
    let group = match group(&name) {
        Ok(g) => g,
        Err(message) => return reply(StatusCode::BAD_REQUEST, message),
    };
    match Registry::new(state.pool.clone()).history(&group).await {
        Ok(events) => Json(json!(events)).into_response(),
        Err(err) => fault(err.into()),
    }
}

/// The body of an alias change: the version (for a move), why, and who.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    #[serde(default)]
    version: Option<u32>,
    reason: String,
    #[serde(default)]
    actor: Option<String>,
}

/// A validated alias change.
struct AliasChange {
    group: GroupName,
    alias: AliasName,
    version: Option<u32>,
    change: Change,
}

/// Parses the path and body of an alias change; the error is the 400's message.
fn alias_change(
    group_name: &str,
    alias: &str,
    body: Result<Json<AliasBody>, JsonRejection>,
) -> Result<AliasChange, String> {
    let Json(body) = body.map_err(|rejection| rejection.body_text())?;
    Ok(AliasChange {
        group: group(group_name)?,
        alias: AliasName::parse(alias).map_err(|e| e.to_string())?,
        version: body.version,
        change: Change {
            actor: body.actor.unwrap_or_else(|| "api".into()),
            reason: body.reason,
        },
    })
}

async fn move_alias(
    State(state): State<Arc<Serving>>,
    Path((name, alias)): Path<(String, String)>,
    body: Result<Json<AliasBody>, JsonRejection>,
) -> Response {
    let (request, version) = match alias_change(&name, &alias, body) {
        Ok(request) => match request.version {
            Some(version) => (request, version),
            None => return reply(StatusCode::BAD_REQUEST, "version: missing"),
        },
        Err(message) => return reply(StatusCode::BAD_REQUEST, message),
    };
    let AliasChange {
        group,
        alias,
        change,
        ..
    } = request;
    match Registry::new(state.pool.clone())
        .move_alias(&group, &alias, version, &change)
        .await
    {
        Ok(from) => {
            state.wake();
            Json(json!({"group": group, "alias": alias, "version": version, "from_version": from}))
                .into_response()
        }
        Err(err) => fault(err.into()),
    }
}

async fn rollback(
    State(state): State<Arc<Serving>>,
    Path((name, alias)): Path<(String, String)>,
    body: Result<Json<AliasBody>, JsonRejection>,
) -> Response {
    let AliasChange {
        group,
        alias,
        change,
        ..
    } = match alias_change(&name, &alias, body) {
        Ok(request) => request,
        Err(message) => return reply(StatusCode::BAD_REQUEST, message),
    };
    match Registry::new(state.pool.clone())
        .rollback(&group, &alias, &change)
        .await
    {
        Ok(version) => {
            state.wake();
            Json(json!({"group": group, "alias": alias, "version": version})).into_response()
        }
        Err(err) => fault(err.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    version: u32,
    #[serde(default = "canary")]
    strategy: String,
    #[serde(default = "ten")]
    percent: u32,
    #[serde(default = "five_minutes")]
    bake_seconds: f64,
    #[serde(default = "one_percent")]
    max_error_rate: f64,
    #[serde(default = "one_second")]
    max_p99_ms: f64,
    #[serde(default = "twenty")]
    min_requests: u64,
}

fn canary() -> String {
    "canary".into()
}
fn ten() -> u32 {
    10
}
fn five_minutes() -> f64 {
    300.0
}
fn one_percent() -> f64 {
    0.01
}
fn one_second() -> f64 {
    1000.0
}
fn twenty() -> u64 {
    20
}

async fn deploy(
    State(state): State<Arc<Serving>>,
    Path(name): Path<String>,
    body: Result<Json<DeployBody>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return reply(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let strategy = match Strategy::parse(&body.strategy, body.percent) {
        Ok(strategy) => strategy,
        Err(err) => return fault(err),
    };
    let settings = Settings {
        strategy,
        bake: Duration::from_secs_f64(body.bake_seconds.max(0.0)),
        max_error_rate: body.max_error_rate,
        max_p99_ms: body.max_p99_ms,
        min_requests: body.min_requests,
    };
    match deployments::start(&state.pool, &name, body.version, settings, state.postgres).await {
        Ok(id) => {
            state.wake();
            (
                StatusCode::CREATED,
                Json(json!({"deployment": id, "endpoint": name, "version": body.version})),
            )
                .into_response()
        }
        Err(err) => fault(err),
    }
}

async fn list_deployments(State(state): State<Arc<Serving>>, Path(name): Path<String>) -> Response {
    match deployments::list(&state.pool, Some(&name)).await {
        Ok(all) => Json(json!(all)).into_response(),
        Err(err) => fault(err),
    }
}
