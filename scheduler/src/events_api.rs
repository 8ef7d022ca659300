//! Triggers and notification rules over HTTP (admin tokens), adapters over the same operations
//! as `sluice trigger` and `sluice notify`: `/triggers`, `/notifications/rules`,
//! `/notifications/deliveries`.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ops::notifications::{DeliveryList, DeliveryView, RuleRequest, RuleView};
use ops::workflows::triggers::{FireView, TriggerRequest, TriggerView};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiState, request};
use crate::http_error::HttpError;

type Shared = State<Arc<ApiState>>;

/// The routes (behind the admin token, as the rest of the API).
pub fn router(state: Arc<ApiState>) -> Router {
    let admin = axum::middleware::from_fn_with_state(
        state.auth.clone(),
        crate::serving::routes::require_admin,
    );
    Router::new()
        .route("/triggers", get(list_triggers).post(create_trigger))
        .route("/triggers/{name}", get(get_trigger).delete(delete_trigger))
        .route("/triggers/{name}/fires", get(trigger_fires))
        .route("/notifications/rules", get(list_rules).post(put_rule))
        .route(
            "/notifications/rules/{name}",
            get(get_rule).delete(delete_rule),
        )
        .route("/notifications/deliveries", get(deliveries))
        .route("/notifications/deliveries/{id}/retry", post(retry))
        .route_layer(admin)
        .with_state(state)
}

async fn list_triggers(State(state): Shared) -> Result<Json<Vec<TriggerView>>, HttpError> {
    Ok(Json(state.workflows.triggers().await?))
}

async fn create_trigger(
    State(state): Shared,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<TriggerView>), HttpError> {
    let request: TriggerRequest = request(payload)?;
    Ok((
        StatusCode::CREATED,
        Json(state.workflows.create_trigger(&request).await?),
    ))
}

async fn get_trigger(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<Json<TriggerView>, HttpError> {
    Ok(Json(state.workflows.trigger(&name).await?))
}

async fn delete_trigger(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, HttpError> {
    state.workflows.delete_trigger(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?limit=` of a listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    #[serde(default)]
    limit: Option<i64>,
}

async fn trigger_fires(
    State(state): Shared,
    Path(name): Path<String>,
    query: Result<Query<Limit>, QueryRejection>,
) -> Result<Json<Vec<FireView>>, HttpError> {
    let Query(query) = query?;
    Ok(Json(
        state
            .workflows
            .trigger_fires(&name, query.limit.unwrap_or(100))
            .await?,
    ))
}

fn ops(state: &ApiState) -> &ops::Ops {
    &state.workflows.engine().ops
}

async fn list_rules(State(state): Shared) -> Result<Json<Vec<RuleView>>, HttpError> {
    Ok(Json(ops(&state).notification_rules().await?))
}

async fn put_rule(
    State(state): Shared,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Json<RuleView>, HttpError> {
    let request: RuleRequest = request(payload)?;
    Ok(Json(ops(&state).put_notification_rule(&request).await?))
}

async fn get_rule(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<Json<RuleView>, HttpError> {
    Ok(Json(ops(&state).notification_rule(&name).await?))
}

async fn delete_rule(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, HttpError> {
    ops(&state).delete_notification_rule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deliveries(
    State(state): Shared,
    query: Result<Query<DeliveryList>, QueryRejection>,
) -> Result<Json<Vec<DeliveryView>>, HttpError> {
    let Query(query) = query?;
    Ok(Json(ops(&state).notification_deliveries(&query).await?))
}

async fn retry(
    State(state): Shared,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<DeliveryView>, HttpError> {
    let Path(id) = id?;
    Ok(Json(ops(&state).retry_notification(id).await?))
}

/// The OpenAPI paths of the routes above.
pub fn openapi_paths() -> Value {
    let error = json!({"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let name =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let limit = json!({"name": "limit", "in": "query", "schema": {"type": "integer"}});
    let trigger = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "workflow": {"type": "string"}, "format": {"type": "integer"},
        "on": {"type": "string", "enum": ["landing", "drift"]}, "prefix": {"type": "string", "nullable": true},
        "subject": {"type": "string", "nullable": true}, "window_seconds": {"type": "integer"}, "input": {"type": "object"},
        "paused": {"type": "boolean"}, "since": {"type": "string"}, "pending": {"type": "integer"}}});
    let rule = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "format": {"type": "integer"}, "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string"}}, "body": {"type": "string", "enum": ["json", "slack"]},
        "subject": {"type": "string", "nullable": true}, "min_quarantine_share": {"type": "number"},
        "connection": {"type": "string", "nullable": true}, "max_attempts": {"type": "integer"},
        "signed": {"type": "boolean"}, "paused": {"type": "boolean"}, "since": {"type": "string"}, "updated_at": {"type": "string"}}});
    let delivery = json!({"type": "object", "properties": {
        "id": {"type": "integer"}, "rule": {"type": "string"}, "event": {"type": "string"}, "kind": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "delivered", "failed"]}, "attempts": {"type": "integer"},
        "last_status": {"type": "integer", "nullable": true}, "last_error": {"type": "string", "nullable": true},
        "event_at": {"type": "string"}, "queued_at": {"type": "string"}, "next_attempt_at": {"type": "string", "nullable": true},
        "delivered_at": {"type": "string", "nullable": true}, "body": {}}});
    let events = json!({"type": "string", "enum": ["execution.failed", "execution.timed_out", "drift.detected", "conversion.quarantined", "deployment.rolled_back"]});
    json!({
        "/triggers": {
            "get": {"summary": "Triggers", "responses": {"200": {"description": "by name", "content": {"application/json": {"schema": {"type": "array", "items": trigger}}}}}},
            "post": {"summary": "Start a workflow when objects land under a prefix (debounced) or drift is detected",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name", "workflow", "on"], "additionalProperties": false, "properties": {
                    "name": {"type": "string"}, "workflow": {"type": "string"}, "on": {"type": "string", "enum": ["landing", "drift"]},
                    "prefix": {"type": "string"}, "subject": {"type": "string"}, "window_seconds": {"type": "integer", "minimum": 0}, "input": {"type": "object"}}}}}},
                "responses": {"201": {"description": "created", "content": {"application/json": {"schema": trigger}}}, "400": error, "404": error, "409": error}}},
        "/triggers/{name}": {
            "get": {"summary": "A trigger", "parameters": name, "responses": {"200": {"description": "the trigger", "content": {"application/json": {"schema": trigger}}}, "404": error}},
            "delete": {"summary": "Delete a trigger (its executions stay)", "parameters": name, "responses": {"204": {"description": "deleted"}, "404": error}}},
        "/triggers/{name}/fires": {"get": {"summary": "A trigger's firings, newest first", "parameters": [name[0].clone(), limit.clone()],
            "responses": {"200": {"description": "firings"}, "400": error, "404": error}}},
        "/notifications/rules": {
            "get": {"summary": "Notification rules (never their secrets)", "responses": {"200": {"description": "by name", "content": {"application/json": {"schema": {"type": "array", "items": rule}}}}}},
            "post": {"summary": "Create or replace a notification rule",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name", "url", "events"], "additionalProperties": false, "properties": {
                    "name": {"type": "string"}, "url": {"type": "string"}, "events": {"type": "array", "items": events},
                    "format": {"type": "string", "enum": ["json", "slack"]}, "subject": {"type": "string"},
                    "min_quarantine_share": {"type": "number", "minimum": 0, "maximum": 1}, "connection": {"type": "string"},
                    "secret": {"type": "string", "minLength": 16}, "max_attempts": {"type": "integer", "minimum": 1, "maximum": 20}}}}}},
                "responses": {"200": {"description": "the rule", "content": {"application/json": {"schema": rule}}}, "400": error, "404": error}}},
        "/notifications/rules/{name}": {
            "get": {"summary": "A notification rule", "parameters": name, "responses": {"200": {"description": "the rule", "content": {"application/json": {"schema": rule}}}, "404": error}},
            "delete": {"summary": "Delete a rule and its deliveries' records", "parameters": name, "responses": {"204": {"description": "deleted"}, "404": error}}},
        "/notifications/deliveries": {"get": {"summary": "Deliveries, newest first", "parameters": [
                {"name": "rule", "in": "query", "schema": {"type": "string"}},
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["pending", "delivered", "failed"]}}, limit],
            "responses": {"200": {"description": "deliveries", "content": {"application/json": {"schema": {"type": "array", "items": delivery}}}}, "400": error}}},
        "/notifications/deliveries/{id}/retry": {"post": {"summary": "Send a failed delivery again",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "pending again", "content": {"application/json": {"schema": delivery}}}, "404": error, "409": error}}}
    })
}
