//! The registry, endpoints and deployments over HTTP, for the `admin` scope: what `sluice
//! models` and `sluice endpoint` do (the same operations), for tools that cannot reach the
//! database. Client faults are 4xx naming the problem; a refused registry change (an alias on a
//! rejected version) 409; [`HttpError`] makes each status.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use models::registry::{AliasName, GroupName};
use ops::serving::{DeployRequest, DeploymentStarted};
use ops::{PromoteRequest, RollbackRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Serving;
use super::auth::Scope;
use crate::http_error::HttpError;

async fn require_admin(
    State(state): State<Arc<Serving>>,
    request: Request,
    next: Next,
) -> Response {
    match super::routes::require(&state.auth, request.headers(), Scope::Admin).await {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
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

fn group(name: &str) -> Result<GroupName, HttpError> {
    GroupName::parse(name).map_err(|e| ops::Error::from(e).into())
}

async fn groups(State(state): State<Arc<Serving>>) -> Result<Json<Value>, HttpError> {
    let groups = state.ops.model_groups().await?;
    Ok(Json(json!(
        groups
            .iter()
            .map(|(g, n)| json!({"group": g, "generation": n}))
            .collect::<Vec<_>>()
    )))
}

async fn versions(
    State(state): State<Arc<Serving>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, HttpError> {
    Ok(Json(json!(state.ops.model_versions(&group(&name)?).await?)))
}

async fn history(
    State(state): State<Arc<Serving>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, HttpError> {
    Ok(Json(json!(state.ops.model_history(&group(&name)?).await?)))
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

fn alias(name: &str) -> Result<AliasName, HttpError> {
    AliasName::parse(name).map_err(|e| ops::Error::from(e).into())
}

async fn move_alias(
    State(state): State<Arc<Serving>>,
    Path((name, alias_name)): Path<(String, String)>,
    body: Result<Json<AliasBody>, JsonRejection>,
) -> Result<Json<Value>, HttpError> {
    let Json(body) = body?;
    let request = PromoteRequest {
        group: group(&name)?,
        alias: alias(&alias_name)?,
        version: body
            .version
            .ok_or_else(|| HttpError::BadRequest("version: missing".into()))?,
        reason: body.reason,
    };
    let actor = body.actor.unwrap_or_else(|| "api".into());
    let change = state.ops.promote(&request, &actor).await?;
    state.wake();
    Ok(Json(json!(change)))
}

async fn rollback(
    State(state): State<Arc<Serving>>,
    Path((name, alias_name)): Path<(String, String)>,
    body: Result<Json<AliasBody>, JsonRejection>,
) -> Result<Json<Value>, HttpError> {
    let Json(body) = body?;
    let request = RollbackRequest {
        group: group(&name)?,
        alias: alias(&alias_name)?,
        reason: body.reason,
    };
    let actor = body.actor.unwrap_or_else(|| "api".into());
    let change = state.ops.rollback(&request, &actor).await?;
    state.wake();
    Ok(Json(
        json!({"group": change.group, "alias": change.alias, "version": change.version}),
    ))
}

async fn deploy(
    State(state): State<Arc<Serving>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<DeploymentStarted>), HttpError> {
    let Json(body) = body?;
    let request: DeployRequest = ops::request::from_json(body)?;
    let started = state.ops.deploy(&name, &request).await?;
    state.wake();
    Ok((StatusCode::CREATED, Json(started)))
}

async fn list_deployments(
    State(state): State<Arc<Serving>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, HttpError> {
    Ok(Json(json!(state.ops.deployments(Some(&name)).await?)))
}
