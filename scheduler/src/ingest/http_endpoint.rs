//! Firehose's HTTP endpoint delivery, received: a Firehose stream whose destination is
//! `https://<sluice>/ingest/streams/<stream>/records` posts `{"requestId", "timestamp",
//! "records": [{"data": base64}]}` (gzip'd when its content encoding says so) with
//! `X-Amz-Firehose-Request-Id` and the configured access key in `X-Amz-Firehose-Access-Key`
//! (a sluice ingest token). A 200 answers `{"requestId", "timestamp"}` once the records are on
//! disk; anything else carries `errorMessage` and Firehose retries with the same request id,
//! which sluice recognises and does not write again.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{FirehoseError, IngestState, Received};

/// `POST /ingest/streams/{stream}/records`.
pub async fn handle(
    State(state): State<Arc<IngestState>>,
    Path(stream): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_id = headers
        .get("x-amz-firehose-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = |status: StatusCode, id: Option<&str>, error: Option<String>| {
        let mut body = json!({
            "requestId": id.unwrap_or_default(),
            "timestamp": chrono::Utc::now().timestamp_millis(),
        });
        if let Some(message) = error {
            body["errorMessage"] = json!(message);
        }
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    };
    let access_key = headers
        .get("x-amz-firehose-access-key")
        .and_then(|v| v.to_str().ok());
    let received = Received {
        method: method.as_str(),
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    if let Err(err) = super::authorize(&state.auth, &received, access_key).await {
        let status = match err.kind {
            "ServiceUnavailableException" => StatusCode::SERVICE_UNAVAILABLE,
            "AccessDeniedException" => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        return answer(status, header_id.as_deref(), Some(err.message));
    }
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let delivery = match wire::firehose::delivery(&body, gzip) {
        Ok(delivery) => delivery,
        Err(message) => {
            return answer(StatusCode::BAD_REQUEST, header_id.as_deref(), Some(message));
        }
    };
    let request_id = header_id.or(delivery.request_id);
    let records = match wire::firehose::delivered(&delivery.records) {
        Ok(records) => records
            .into_iter()
            .map(bytes::Bytes::from)
            .collect::<Vec<_>>(),
        Err(message) => {
            return answer(
                StatusCode::BAD_REQUEST,
                request_id.as_deref(),
                Some(message),
            );
        }
    };
    if records.is_empty() {
        return answer(StatusCode::OK, request_id.as_deref(), None);
    }
    match state.ingest.put(&stream, records, request_id.clone()).await {
        Ok(_) => answer(StatusCode::OK, request_id.as_deref(), None),
        Err(err) => {
            let err = FirehoseError::from(err);
            let status = match err.kind {
                "InvalidArgumentException" => StatusCode::BAD_REQUEST,
                "ResourceNotFoundException" => StatusCode::NOT_FOUND,
                "ServiceUnavailableException" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            answer(status, request_id.as_deref(), Some(err.message))
        }
    }
}
