//! The HTTP API: the workflow operations as JSON over HTTP (axum), served by `sluice server`.
//! Errors become status codes in [`HttpError`] (`http_error.rs`), as for every route: an unknown
//! workflow or execution is 404, a bad definition or body 400 (naming the JSON pointer or
//! field), an operation on an execution in the wrong status 409; anything else is 500, logged
//! once, with no internals in the response.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ops::workflows::{
    Answered, ExecutionList, ExecutionView, HistoryEvent, StartRequest, TaskFailureRequest,
    TaskHeartbeatRequest, TaskSuccessRequest, TokenView, Validated, WorkflowSummary,
    WorkflowVersion, Workflows,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::http_error::HttpError;
use crate::orchestrator::engine::Engine;
use crate::orchestrator::queue::Queue;

/// What the handlers share.
pub struct ApiState {
    pub workflows: Workflows,
    /// Every route but `/health` and `/openapi.json` needs an admin token.
    pub auth: Arc<crate::serving::Auth>,
}

impl ApiState {
    /// The workflow operations over an engine, pushing steps to `queue`.
    pub fn new(engine: Engine, queue: Queue, auth: Arc<crate::serving::Auth>) -> Self {
        Self {
            workflows: Workflows::new(engine, Arc::new(queue)),
            auth,
        }
    }
}

type Shared = State<Arc<ApiState>>;

fn body(payload: Result<Json<Value>, JsonRejection>) -> Result<Value, HttpError> {
    payload.map(|Json(v)| v).map_err(HttpError::from)
}

/// A request body as an operation's request: a missing, mistyped or unknown field is a 400
/// naming it.
pub(crate) fn request<T: DeserializeOwned>(
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<T, HttpError> {
    Ok(ops::request::from_json(body(payload)?)?)
}

/// The API's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    let open = Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/openapi.json", get(|| async { Json(openapi()) }));
    let admin = axum::middleware::from_fn_with_state(
        state.auth.clone(),
        crate::serving::routes::require_admin,
    );
    Router::new()
        .route("/workflows", get(list_workflows))
        .route("/workflows/validate", post(validate))
        .route("/workflows/{name}", put(put_workflow))
        .route("/workflows/{name}/executions", post(start))
        .route("/executions", get(list_executions))
        .route("/executions/{id}", get(describe))
        .route("/executions/{id}/history", get(history))
        .route("/executions/{id}/stop", post(stop))
        .route("/executions/{id}/redrive", post(redrive))
        .route("/tasks", get(waiting_tasks))
        .route("/tasks/success", post(task_success))
        .route("/tasks/failure", post(task_failure))
        .route("/tasks/heartbeat", post(task_heartbeat))
        .route_layer(admin)
        .with_state(state.clone())
        .merge(crate::events_api::router(state))
        .merge(open)
}

async fn validate(
    State(state): Shared,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Validated>, HttpError> {
    Ok(Json(state.workflows.validate(&body(payload)?)?))
}

async fn list_workflows(State(state): Shared) -> Result<Json<Vec<WorkflowSummary>>, HttpError> {
    Ok(Json(state.workflows.workflows().await?))
}

async fn put_workflow(
    State(state): Shared,
    Path(name): Path<String>,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Json<WorkflowVersion>, HttpError> {
    Ok(Json(
        state.workflows.put_workflow(&name, &body(payload)?).await?,
    ))
}

async fn start(
    State(state): Shared,
    Path(workflow): Path<String>,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<ExecutionView>), HttpError> {
    let request: StartRequest = request(payload)?;
    let started = state.workflows.start(&workflow, request).await?;
    let status = if started.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(started.execution)))
}

/// A page of executions; `X-Sluice-Next` carries the next page's cursor (its `after`).
async fn list_executions(
    State(state): Shared,
    query: Result<Query<ExecutionList>, QueryRejection>,
) -> Result<axum::response::Response, HttpError> {
    let Query(query) = query?;
    let page = state.workflows.execution_page(&query).await?;
    let mut response = axum::response::IntoResponse::into_response(Json(page.executions));
    if let Some(next) = page.next {
        response.headers_mut().insert(
            "x-sluice-next",
            axum::http::HeaderValue::from_str(&next).map_err(HttpError::internal)?,
        );
    }
    Ok(response)
}

async fn describe(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<ExecutionView>, HttpError> {
    Ok(Json(state.workflows.describe(&id).await?))
}

async fn history(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Vec<HistoryEvent>>, HttpError> {
    Ok(Json(state.workflows.history(&id).await?))
}

async fn stop(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<ExecutionView>, HttpError> {
    Ok(Json(state.workflows.stop(&id).await?))
}

async fn redrive(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<ExecutionView>, HttpError> {
    Ok(Json(state.workflows.redrive(&id).await?))
}

async fn waiting_tasks(State(state): Shared) -> Result<Json<Vec<TokenView>>, HttpError> {
    Ok(Json(state.workflows.waiting_tasks().await?))
}

async fn task_success(
    State(state): Shared,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Answered>, HttpError> {
    let request: TaskSuccessRequest = request(payload)?;
    Ok(Json(state.workflows.send_task_success(&request).await?))
}

async fn task_failure(
    State(state): Shared,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Answered>, HttpError> {
    let request: TaskFailureRequest = request(payload)?;
    Ok(Json(state.workflows.send_task_failure(&request).await?))
}

async fn task_heartbeat(
    State(state): Shared,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<Json<TokenView>, HttpError> {
    let request: TaskHeartbeatRequest = request(payload)?;
    Ok(Json(state.workflows.send_task_heartbeat(&request).await?))
}

/// The OpenAPI document of the routes above.
pub fn openapi() -> Value {
    let error = json!({"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let execution = json!({"description": "the execution", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Execution"}}}});
    let token = json!({"description": "the token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskToken"}}}});
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let name =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let asl = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "description": "an Amazon States Language definition"}}}});
    let group =
        json!([{"name": "group", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let alias =
        json!({"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}});
    let variant_header = json!({"name": "X-Amzn-SageMaker-Target-Variant", "in": "header", "required": false, "schema": {"type": "string"}});
    let invocation = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InvocationRequest"}}}});
    let invocation_responses = json!({
        "200": {"description": "one prediction per instance; X-Amzn-Invoked-Production-Variant and X-Sluice-Model-Version (group:vN) name who answered",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InvocationResponse"}}}},
        "400": error, "401": error, "403": error, "404": error, "413": error,
        "503": {"description": "no version deployed, or at capacity (with Retry-After)"}});
    let admin_paths = json!({
            "/models": {"get": {"summary": "Model groups", "responses": {"200": {"description": "groups and generations"}}}},
            "/models/{group}/versions": {"get": {"summary": "A group's versions with statuses, aliases, lineage and metrics", "parameters": group.clone(), "responses": {"200": {"description": "versions"}, "404": error}}},
            "/models/{group}/history": {"get": {"summary": "Registrations, statuses and alias moves", "parameters": group.clone(), "responses": {"200": {"description": "events in order"}, "404": error}}},
            "/models/{group}/aliases/{alias}": {"post": {"summary": "Point an alias at a version", "parameters": [group[0].clone(), alias.clone()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["version", "reason"], "properties": {"version": {"type": "integer"}, "reason": {"type": "string"}, "actor": {"type": "string"}}}}}},
                "responses": {"200": {"description": "moved"}, "400": error, "404": error, "409": error}}},
            "/models/{group}/aliases/{alias}/rollback": {"post": {"summary": "Undo the alias's last move", "parameters": [group[0].clone(), alias],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}}}}},
                "responses": {"200": {"description": "rolled back"}, "404": error, "409": error}}},
            "/endpoints/{name}/deployments": {
                "post": {"summary": "Deploy a version (all-at-once, canary, linear) with a bake time and automatic rollback", "parameters": name.clone(),
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["version"], "properties": {
                        "version": {"type": "integer"}, "strategy": {"type": "string", "enum": ["all-at-once", "canary", "linear"]}, "percent": {"type": "integer"},
                        "bake_seconds": {"type": "number"}, "max_error_rate": {"type": "number"}, "max_p99_ms": {"type": "number"}, "min_requests": {"type": "integer"}}}}}},
                    "responses": {"201": {"description": "started"}, "400": error, "404": error}},
                "get": {"summary": "The endpoint's deployments, newest first", "parameters": name.clone(), "responses": {"200": {"description": "deployments"}}}}
    });
    let map_runs = json!({"type": "array", "description": "the runs of children its Parallel and Map states started", "items": {"type": "object", "properties": {
        "id": {"type": "string"}, "state": {"type": "string"}, "kind": {"type": "string", "enum": ["PARALLEL", "MAP", "DISTRIBUTED"]},
        "status": {"type": "string", "enum": ["RUNNING", "SUCCEEDED", "FAILED", "ABORTED"]}, "total": {"type": "integer"},
        "max_concurrency": {"type": "integer"}, "pending": {"type": "integer"}, "running": {"type": "integer"},
        "succeeded": {"type": "integer"}, "failed": {"type": "integer"}}}});
    let mut document = json!({
        "openapi": "3.0.3",
        "info": {"title": "sluice", "version": env!("CARGO_PKG_VERSION"), "description": "Workflows in Amazon States Language, run durably, and forecasts from the published models."},
        "paths": {
            "/health": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/workflows": {"get": {"summary": "List workflows", "responses": {"200": {"description": "name and latest version of each"}}}},
            "/workflows/validate": {"post": {"summary": "Validate a definition", "requestBody": asl,
                "responses": {"200": {"description": "valid"}, "400": error}}},
            "/workflows/{name}": {"put": {"summary": "Store a workflow (a new version when it exists)", "parameters": name, "requestBody": asl,
                "responses": {"200": {"description": "the version stored"}, "400": error}}},
            "/workflows/{name}/executions": {"post": {"summary": "Start an execution (a name starts one: again while it runs with the same input returns it, 200; otherwise 409)", "parameters": name,
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"input": {}, "name": {"type": "string"}}, "additionalProperties": false}}}},
                "responses": {"201": execution, "200": execution, "400": error, "404": error, "409": error}}},
            "/executions": {"get": {"summary": "List executions", "parameters": [
                {"name": "workflow", "in": "query", "schema": {"type": "string"}},
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["RUNNING", "SUCCEEDED", "FAILED", "ABORTED"]}},
                {"name": "started_from", "in": "query", "description": "RFC 3339 or a UTC date (2026-12-05), included", "schema": {"type": "string"}},
                {"name": "started_before", "in": "query", "description": "RFC 3339 or a UTC date, excluded", "schema": {"type": "string"}},
                {"name": "after", "in": "query", "description": "the X-Sluice-Next of the page before", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                {"name": "parent", "in": "query", "description": "the children (Parallel branches, Map iterations) of this execution; without it, top-level executions", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "executions, newest first",
                    "headers": {"X-Sluice-Next": {"description": "the next page's cursor, when there is one", "schema": {"type": "string"}}}},
                    "400": error}}},
            "/executions/{id}": {"get": {"summary": "Describe an execution", "parameters": id, "responses": {"200": execution, "404": error}}},
            "/executions/{id}/history": {"get": {"summary": "An execution's history", "parameters": id, "responses": {"200": {"description": "events in order"}, "404": error}}},
            "/executions/{id}/stop": {"post": {"summary": "Stop a running execution, with its children (a branch or iteration is stopped through its parent: 400)", "parameters": id, "responses": {"200": execution, "400": error, "404": error, "409": error}}},
            "/executions/{id}/redrive": {"post": {"summary": "Redrive a failed execution from its failed state (in a Parallel or Map, the branches or iterations that did not succeed run again)", "parameters": id, "responses": {"200": execution, "400": error, "404": error, "409": error}}},
            "/tasks": {"get": {"summary": "Callback tasks waiting for their token", "responses": {"200": {"description": "tokens, oldest first", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/TaskToken"}}}}}}}},
            "/tasks/success": {"post": {"summary": "SendTaskSuccess: the callback task succeeds with `output` (JSON text)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["taskToken", "output"], "additionalProperties": false,
                    "properties": {"taskToken": {"type": "string"}, "output": {"type": "string", "description": "JSON text, at most 256 KiB"}}}}}},
                "responses": {"200": token, "400": error, "404": error, "409": error}}},
            "/tasks/failure": {"post": {"summary": "SendTaskFailure: the callback task fails with `error` (default States.TaskFailed) and `cause`",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["taskToken"], "additionalProperties": false,
                    "properties": {"taskToken": {"type": "string"}, "error": {"type": "string"}, "cause": {"type": "string"}}}}}},
                "responses": {"200": token, "400": error, "404": error, "409": error}}},
            "/tasks/heartbeat": {"post": {"summary": "SendTaskHeartbeat: the callback task's HeartbeatSeconds start again",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["taskToken"], "additionalProperties": false,
                    "properties": {"taskToken": {"type": "string"}}}}}},
                "responses": {"200": token, "400": error, "404": error, "409": error}}},
            "/ping": {"get": {"summary": "Serving health and what each endpoint serves (never waits on inference)", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics of the endpoints", "security": [], "responses": {"200": {"description": "OpenMetrics text"}}}},
            "/invocations": {"post": {"summary": "Forecast with the default endpoint (SageMaker DeepAR's contract)", "security": [{"token": ["predict"]}],
                "parameters": [variant_header.clone()], "requestBody": invocation.clone(), "responses": invocation_responses.clone()}},
            "/endpoints/{name}/invocations": {"post": {"summary": "Forecast with a named endpoint", "security": [{"token": ["predict"]}],
                "parameters": [name[0].clone(), variant_header], "requestBody": invocation, "responses": invocation_responses}}
        },
        "security": [{"token": ["admin"]}],
        "components": {
          "securitySchemes": {"token": {"type": "http", "scheme": "bearer", "description": "sluice token create --scope admin|predict|ingest"}},
          "schemas": {
            "InvocationRequest": {"type": "object", "required": ["instances"], "properties": {
                "instances": {"type": "array", "items": {"type": "object", "required": ["start", "target"], "properties": {
                    "start": {"type": "string"}, "target": {"type": "array", "items": {"type": "number", "nullable": true}},
                    "cat": {"type": "array", "items": {"type": "integer"}},
                    "dynamic_feat": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}},
                "configuration": {"type": "object", "properties": {
                    "num_samples": {"type": "integer"},
                    "output_types": {"type": "array", "items": {"type": "string", "enum": ["mean", "quantiles", "samples"]}},
                    "quantiles": {"type": "array", "items": {"type": "string"}}}}}},
            "InvocationResponse": {"type": "object", "properties": {"predictions": {"type": "array", "items": {"type": "object", "properties": {
                "mean": {"type": "array", "items": {"type": "number"}},
                "quantiles": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "number"}}},
                "samples": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}}}},
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "TaskToken": {"type": "object", "properties": {
                "token": {"type": "string"}, "execution": {"type": "string"}, "state": {"type": "string"},
                "status": {"type": "string", "enum": ["WAITING", "SUCCEEDED", "FAILED", "TIMED_OUT"]},
                "input": {"nullable": true}, "output": {"nullable": true}, "error": {"type": "string", "nullable": true}, "cause": {"type": "string", "nullable": true},
                "issued_at": {"type": "string"}, "heartbeat_at": {"type": "string"}, "runs_out_at": {"type": "string", "nullable": true}, "answered_at": {"type": "string", "nullable": true}}},
            "Execution": {"type": "object", "properties": {
                "id": {"type": "string"}, "workflow": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "integer"},
                "status": {"type": "string", "enum": ["RUNNING", "SUCCEEDED", "FAILED", "ABORTED"]}, "state": {"type": "string"},
                "input": {}, "output": {}, "error": {"type": "string", "nullable": true}, "cause": {"type": "string", "nullable": true},
                "redrive_count": {"type": "integer"}, "started_at": {"type": "string"}, "stopped_at": {"type": "string", "nullable": true},
                "parent": {"type": "string", "description": "a child's parent execution"}, "map_run": {"type": "string"}, "index": {"type": "integer"},
                "map_runs": map_runs}}
        }}
    });
    if let Some(paths) = document["paths"].as_object_mut() {
        for more in [
            admin_paths,
            crate::events_api::openapi_paths(),
            crate::ingest::openapi_paths(),
        ] {
            if let Value::Object(more) = more {
                paths.extend(more);
            }
        }
    }
    document_refusals(&mut document);
    document
}

/// The refusals every operation can answer, documented on each: 400 where it takes parameters
/// or a body (a path segment, query string or body that cannot be read), and 401 and 403 where
/// it needs a token (none, or one of another scope).
fn document_refusals(document: &mut Value) {
    let error = json!({"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for operation in paths.values_mut().filter_map(Value::as_object_mut) {
        for (_, operation) in operation.iter_mut() {
            let secured = operation
                .get("security")
                .and_then(Value::as_array)
                .is_none_or(|s| !s.is_empty());
            let takes_input =
                operation.get("parameters").is_some() || operation.get("requestBody").is_some();
            let Some(responses) = operation["responses"].as_object_mut() else {
                continue;
            };
            let mut add = |status: &str| {
                responses.entry(status).or_insert_with(|| error.clone());
            };
            if takes_input {
                add("400");
            }
            if secured {
                add("401");
                add("403");
            }
        }
    }
}
