//! Ingest over HTTP, adapters over `ops::ingest`: the Firehose API (`POST /` with
//! `X-Amz-Target: Firehose_20150804.*`, for AWS SDKs and the AWS CLI pointed at sluice with
//! `--endpoint-url`) in [`firehose`], and Firehose's HTTP endpoint delivery format (`POST
//! /ingest/streams/{stream}/records`, so that a real Firehose stream can deliver into sluice)
//! in [`http_endpoint`]. [`mqtt`] is the MQTT bridge, which subscribes to a broker instead.
//!
//! Both speak their protocol's errors, not the API's `{"error"}`: the Firehose API answers
//! `{"__type": "ResourceNotFoundException", "message"}` as AWS does (mapped once, in
//! [`FirehoseError`]), the HTTP endpoint `{"requestId", "timestamp", "errorMessage"}`.
//! Callers authenticate with an `ingest` (or `admin`) token: SigV4 with its access key, or
//! the token itself as a bearer (or as Firehose's `X-Amz-Firehose-Access-Key`).
//! `GET /ingest/stats` (admin) gives each stream's figures.

pub mod firehose;
pub mod firehose_streams;
pub mod http_endpoint;
pub mod mqtt;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ops::ingest::Ingest;
use ops::serving::auth::Scope;
use ops::serving::sigv4::{self, SignatureError};
use serde_json::json;

use crate::http_error::HttpError;
use crate::serving::Auth;

/// What the ingest handlers share.
pub struct IngestState {
    pub ingest: Ingest,
    pub ops: ops::Ops,
    pub auth: Arc<Auth>,
}

/// The ingest routes. Bodies up to 8 MiB on the Firehose API (4 MiB of data, base64'd) and
/// 96 MiB from Firehose's HTTP endpoint delivery (its buffers reach 64 MiB).
pub fn router(state: Arc<IngestState>) -> Router {
    Router::new()
        .route(
            "/",
            post(firehose::handle).layer(DefaultBodyLimit::max(8 << 20)),
        )
        .route(
            "/ingest/streams/{stream}/records",
            post(http_endpoint::handle).layer(DefaultBodyLimit::max(96 << 20)),
        )
        .route("/ingest/stats", get(stats))
        .with_state(state)
}

/// `GET /ingest/stats` (admin): each started stream's figures since the server started.
async fn stats(
    State(state): State<Arc<IngestState>>,
    headers: HeaderMap,
) -> Result<Json<Vec<ops::ingest::StreamStats>>, HttpError> {
    crate::serving::routes::require(&state.auth, &headers, Scope::Admin).await?;
    Ok(Json(state.ingest.stats().await))
}

/// A Firehose API error: AWS's `__type` and HTTP status.
#[derive(Debug)]
pub struct FirehoseError {
    pub kind: &'static str,
    pub status: StatusCode,
    pub message: String,
}

impl FirehoseError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        let status = match kind {
            "ServiceUnavailableException" | "InternalFailure" => StatusCode::INTERNAL_SERVER_ERROR,
            "UnknownOperationException" => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            kind,
            status,
            message: message.into(),
        }
    }
}

impl From<ops::Error> for FirehoseError {
    /// The one place operations' errors become Firehose's.
    fn from(err: ops::Error) -> Self {
        let kind = match &err {
            ops::Error::InvalidInput { .. } => "InvalidArgumentException",
            ops::Error::NotFound { .. } => "ResourceNotFoundException",
            ops::Error::Conflict(_) => "ResourceInUseException",
            ops::Error::Unavailable(_) => "ServiceUnavailableException",
            _ => {
                tracing::error!(error = %err, "ingest request failed");
                return Self::new("InternalFailure", "internal error");
            }
        };
        Self::new(kind, err.to_string())
    }
}

impl IntoResponse for FirehoseError {
    fn into_response(self) -> Response {
        let body = json!({"__type": self.kind, "message": self.message}).to_string();
        let mut response = (
            self.status,
            [
                (header::CONTENT_TYPE, "application/x-amz-json-1.1"),
                (
                    header::HeaderName::from_static("x-amzn-errortype"),
                    self.kind,
                ),
            ],
            body,
        )
            .into_response();
        if self.kind == "ServiceUnavailableException" {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// A request as received, for its signature.
pub struct Received<'a> {
    pub method: &'a str,
    pub uri: &'a axum::http::Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Checks the caller: a SigV4 signature with an access key of a live token, or a bearer
/// token (`Authorization: Bearer`, or `access_key` from Firehose's header), that may ingest.
/// Returns the region a signed request named.
pub async fn authorize(
    auth: &Auth,
    request: &Received<'_>,
    access_key: Option<&str>,
) -> Result<Option<String>, FirehoseError> {
    if !auth.options.enabled {
        return Ok(None);
    }
    let authorization = request
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match authorization {
        Some(value) if value.trim_start().starts_with(sigv4::ALGORITHM) => {
            signed(auth, request, value).await.map(Some)
        }
        Some(_) => bearer(auth, request.headers).await.map(|()| None),
        None => match access_key {
            Some(token) => {
                let mut headers = HeaderMap::new();
                let value = format!("Bearer {token}").parse().map_err(|_| {
                    FirehoseError::new(
                        "UnrecognizedClientException",
                        "the access key is not a token",
                    )
                })?;
                headers.insert(header::AUTHORIZATION, value);
                bearer(auth, &headers).await.map(|()| None)
            }
            None => Err(FirehoseError::new(
                "MissingAuthenticationTokenException",
                "missing authentication token: sign the request (SigV4) with an ingest token's \
                 access key, or send Authorization: Bearer <token> (sluice token create --scope ingest)",
            )),
        },
    }
}

async fn signed(auth: &Auth, request: &Received<'_>, value: &str) -> Result<String, FirehoseError> {
    let parsed = sigv4::Authorization::parse(value)
        .map_err(|e| FirehoseError::new("IncompleteSignatureException", e.to_string()))?;
    let key = match auth.verifier.signing_key(&parsed.access_key_id).await {
        Ok(Some(key)) => key,
        Ok(None) => {
            return Err(FirehoseError::new(
                "UnrecognizedClientException",
                "the security token included in the request is invalid: unknown or revoked access key",
            ));
        }
        Err(err) => {
            tracing::error!(error = %err, "access key check failed");
            return Err(FirehoseError::new(
                "ServiceUnavailableException",
                "cannot check the access key now",
            ));
        }
    };
    if !key.scope.allows(Scope::Ingest) {
        return Err(FirehoseError::new(
            "AccessDeniedException",
            format!("a {} token cannot ingest", key.scope.as_str()),
        ));
    }
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let signed = sigv4::Request {
        method: request.method,
        path: request.uri.path(),
        query: request.uri.query().unwrap_or_default(),
        headers: &headers,
        body: request.body,
    };
    sigv4::verify(&signed, &parsed, &key.secret_access_key, chrono::Utc::now()).map_err(|err| {
        match err {
            SignatureError::Malformed(_) | SignatureError::Missing => {
                FirehoseError::new("IncompleteSignatureException", err.to_string())
            }
            SignatureError::Expired { .. } | SignatureError::Mismatch => {
                FirehoseError::new("InvalidSignatureException", err.to_string())
            }
        }
    })?;
    Ok(parsed.region)
}

async fn bearer(auth: &Auth, headers: &HeaderMap) -> Result<(), FirehoseError> {
    crate::serving::routes::require(auth, headers, Scope::Ingest)
        .await
        .map_err(|err| match err {
            HttpError::Forbidden(m) => FirehoseError::new("AccessDeniedException", m),
            HttpError::Unavailable { message, .. } => {
                FirehoseError::new("ServiceUnavailableException", message)
            }
            HttpError::Unauthorized(m) => FirehoseError::new("UnrecognizedClientException", m),
            other => FirehoseError::new("InternalFailure", format!("{other:?}")),
        })
}

/// The OpenAPI paths of the ingest routes.
pub fn openapi_paths() -> serde_json::Value {
    let aws_error = serde_json::json!({"description": "AWS's error: {\"__type\": \"InvalidArgumentException\" | \"ResourceNotFoundException\" | \"ServiceUnavailableException\" | ..., \"message\"}",
        "content": {"application/x-amz-json-1.1": {"schema": {"type": "object", "properties": {"__type": {"type": "string"}, "message": {"type": "string"}}}}}});
    // The body is read as JSON whatever its content type says: SDKs send AWS's, HTTP clients
    // often plain JSON.
    serde_json::json!({
        "/": {"post": {"summary": "The Firehose API (AWS JSON 1.1): PutRecord, PutRecordBatch, CreateDeliveryStream, DescribeDeliveryStream, ListDeliveryStreams; signed with SigV4 by an ingest token's access key, or with the token as a bearer",
            "security": [{"token": ["ingest"]}],
            "parameters": [{"name": "X-Amz-Target", "in": "header", "required": true, "schema": {"type": "string",
                "enum": ["Firehose_20150804.PutRecord", "Firehose_20150804.PutRecordBatch", "Firehose_20150804.CreateDeliveryStream",
                         "Firehose_20150804.DescribeDeliveryStream", "Firehose_20150804.ListDeliveryStreams"]}}],
            "requestBody": {"required": true, "content": {"application/x-amz-json-1.1": {"schema": {"type": "object"}}, "application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": {"description": "the operation's answer (PutRecordBatch: FailedPutCount and one RecordId or ErrorCode per record)"},
                "400": aws_error, "403": aws_error, "404": aws_error, "500": aws_error}}},
        "/ingest/streams/{stream}/records": {"post": {"summary": "Firehose's HTTP endpoint delivery: records on disk before the 200; a retry with the same X-Amz-Firehose-Request-Id is not written again",
            "security": [{"token": ["ingest"]}],
            "parameters": [{"name": "stream", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "X-Amz-Firehose-Request-Id", "in": "header", "schema": {"type": "string"}},
                {"name": "X-Amz-Firehose-Access-Key", "in": "header", "schema": {"type": "string"}}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "requestId": {"type": "string"}, "timestamp": {"type": "integer"},
                "records": {"type": "array", "items": {"type": "object", "required": ["data"], "properties": {"data": {"type": "string", "format": "byte"}}}}}}}}},
            "responses": {"200": {"description": "{requestId, timestamp}"}, "400": {"description": "{requestId, timestamp, errorMessage}"},
                "401": {"description": "{requestId, timestamp, errorMessage}"}, "404": {"description": "{requestId, timestamp, errorMessage}"},
                "413": {"description": "too large"}, "500": {"description": "{requestId, timestamp, errorMessage}: Firehose retries"}}}},
        "/ingest/stats": {"get": {"summary": "Each started delivery stream's figures since the server started: records and bytes accepted, puts refused, bytes undelivered, objects delivered, acknowledgement p50 and p99",
            "responses": {"200": {"description": "one entry per stream"}, "401": {"description": "no admin token"}}}}
    })
}
