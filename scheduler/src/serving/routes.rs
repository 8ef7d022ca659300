//! The endpoints' HTTP surface. SageMaker's contract: `POST /invocations` (the default
//! endpoint) and `POST /endpoints/{name}/invocations` take DeepAR's request and answer its
//! response; `X-Amzn-SageMaker-Target-Variant` picks a variant; every answer names the variant
//! (`X-Amzn-Invoked-Production-Variant`) and the model version (`X-Sluice-Model-Version`,
//! `group:vN`) that answered. `GET /ping` answers from memory only. Client faults are 4xx
//! naming the field; saturation is 503 with `Retry-After` ([`HttpError`] makes each status).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use models::inference::{parse_request, predict_keeping};
use serde_json::{Value, json};

use super::auth::{Scope, bearer};
use super::metrics::Labels;
use super::{Auth, Serving};
use crate::http_error::HttpError;

pub const TARGET_VARIANT: &str = "x-amzn-sagemaker-target-variant";
pub const INVOKED_VARIANT: &str = "x-amzn-invoked-production-variant";
pub const MODEL_VERSION: &str = "x-sluice-model-version";

/// Rejects requests without a token of `needed` scope (401 without one, 403 with a weaker one).
pub async fn require(auth: &Auth, headers: &HeaderMap, needed: Scope) -> Result<(), HttpError> {
    if !auth.options.enabled || (needed == Scope::Predict && auth.options.anonymous_predict) {
        return Ok(());
    }
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(token) = bearer(header) else {
        return Err(HttpError::Unauthorized(
            "missing token: send Authorization: Bearer <token> (sluice token create)".into(),
        ));
    };
    match auth.verifier.scope(token).await {
        Ok(Some(scope)) if scope.allows(needed) => Ok(()),
        Ok(Some(scope)) => Err(HttpError::Forbidden(format!(
            "a {} token cannot do this: it needs the {} scope",
            scope.as_str(),
            needed.as_str()
        ))),
        Ok(None) => Err(HttpError::Unauthorized("unknown or revoked token".into())),
        Err(err) => {
            tracing::error!(error = %err, "token check failed");
            Err(HttpError::Unavailable {
                message: "cannot check the token now".into(),
                retry_after: Some(1),
            })
        }
    }
}

/// Middleware: the admin scope (the workflow API, registry and endpoint management).
pub async fn require_admin(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    match require(&auth, request.headers(), Scope::Admin).await {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

async fn require_predict(
    State(state): State<Arc<Serving>>,
    request: Request,
    next: Next,
) -> Response {
    match require(&state.auth, request.headers(), Scope::Predict).await {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

/// The endpoints' routes.
pub fn router(state: Arc<Serving>) -> Router {
    let predict = Router::new()
        .route("/invocations", post(invoke_default))
        .route("/endpoints/{name}/invocations", post(invoke_named))
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_predict,
        ));
    let admin = super::admin::router(state.clone());
    Router::new()
        .route("/ping", get(ping))
        .route("/metrics", get(metrics))
        .merge(predict)
        .with_state(state)
        .merge(admin)
}

async fn ping(State(state): State<Arc<Serving>>) -> Json<Value> {
    let snapshot = state.live.snapshot();
    let mut endpoints: Vec<Value> = snapshot
        .endpoints
        .values()
        .map(|e| {
            json!({
                "endpoint": e.name,
                "group": e.group,
                "variants": e.variants.iter().map(|v| json!({
                    "variant": v.name, "version": v.version, "weight": v.weight,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    endpoints.sort_by(|a, b| a["endpoint"].as_str().cmp(&b["endpoint"].as_str()));
    Json(json!({"status": "ok", "endpoints": endpoints}))
}

async fn metrics(State(state): State<Arc<Serving>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn invoke_default(
    State(state): State<Arc<Serving>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let name = state.options.default_endpoint.clone();
    invoke(&state, &name, &headers, body).await
}

async fn invoke_named(
    State(state): State<Arc<Serving>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    invoke(&state, &name, &headers, body).await
}

async fn invoke(
    state: &Arc<Serving>,
    name: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let snapshot = state.live.snapshot();
    let Some(endpoint) = snapshot.endpoints.get(name) else {
        return HttpError::NotFound(format!("endpoint {name} not found")).into_response();
    };
    let wanted = headers.get(TARGET_VARIANT).and_then(|v| v.to_str().ok());
    let Some(variant) = endpoint.pick(wanted, rand::random::<f64>()) else {
        return match wanted {
            Some(wanted) => HttpError::BadRequest(format!(
                "{TARGET_VARIANT}: endpoint {name} has no variant {wanted} serving (serving: {})",
                endpoint
                    .variants
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into_response(),
            None => HttpError::Unavailable {
                message: format!(
                    "endpoint {name} has no model version to serve yet: publish one to {}",
                    endpoint.group
                ),
                retry_after: None,
            }
            .into_response(),
        };
    };
    let labels = Labels {
        endpoint: name.to_owned(),
        variant: variant.name.clone(),
        version: format!("v{}", variant.version),
    };
    let answered_by = |mut response: Response| {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&variant.name) {
            headers.insert(INVOKED_VARIANT, value);
        }
        if let Ok(value) =
            HeaderValue::from_str(&format!("{}:v{}", endpoint.group, variant.version))
        {
            headers.insert(MODEL_VERSION, value);
        }
        response
    };
    let fail = |err: HttpError| {
        let status = err.status();
        state.metrics.failed(&labels, status.as_u16());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            state
                .stats
                .record(name, variant.version, started.elapsed(), true);
        }
        answered_by(err.into_response())
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return fail(rejection.into()),
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => return fail(HttpError::BadRequest(format!("invalid JSON: {err}"))),
    };
    let request = match parse_request(&value, state.options.default_samples) {
        Ok(request) => request,
        Err(err) => return fail(HttpError::BadRequest(client_message(err))),
    };
    let Ok(slot) = state.queue.clone().try_acquire_owned() else {
        state.metrics.saturated(name);
        return fail(HttpError::Unavailable {
            message: "the endpoint is at capacity; retry shortly".into(),
            retry_after: Some(1),
        });
    };
    state.metrics.in_flight().inc();
    let outcome = match state.workers.clone().acquire_owned().await {
        Ok(worker) => {
            let model = variant.model.clone();
            let seed = rand::random::<u64>();
            let kept = Arc::clone(state);
            let (group, version) = (endpoint.group.clone(), variant.version);
            tokio::task::spawn_blocking(move || {
                let _worker = worker;
                let (response, forecasts) = predict_keeping(model.as_ref(), &request, seed)?;
                kept.served
                    .keep(&group, version, &model, &request, &forecasts);
                Ok(response)
            })
            .await
        }
        Err(_) => {
            state.metrics.in_flight().dec();
            return fail(HttpError::Unavailable {
                message: "shutting down".into(),
                retry_after: Some(1),
            });
        }
    };
    state.metrics.in_flight().dec();
    drop(slot);
    match outcome {
        Ok(Ok(predictions)) => {
            state.metrics.answered(&labels, started.elapsed());
            state
                .stats
                .record(name, variant.version, started.elapsed(), false);
            answered_by((StatusCode::OK, Json(predictions)).into_response())
        }
        Ok(Err(err @ (models::Error::Input { .. } | models::Error::InvalidArgument { .. }))) => {
            fail(HttpError::BadRequest(client_message(err)))
        }
        Ok(Err(err)) => {
            tracing::error!(endpoint = %name, variant = %variant.name, version = variant.version, error = %err, "inference failed");
            fail(HttpError::Internal)
        }
        Err(err) => {
            tracing::error!(endpoint = %name, error = %err, "inference task failed");
            fail(HttpError::Internal)
        }
    }
}

/// A client fault as the client sees it: the field and the reason, without the internal
/// `request:0:` origin.
fn client_message(err: models::Error) -> String {
    match err {
        models::Error::Input { field, reason, .. } if field.is_empty() => reason,
        models::Error::Input { field, reason, .. } => format!("{field}: {reason}"),
        other => other.to_string(),
    }
}
