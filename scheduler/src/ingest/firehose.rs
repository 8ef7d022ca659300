//! The Firehose API (`Firehose_20150804`, AWS JSON 1.1): `PutRecord`, `PutRecordBatch`,
//! `CreateDeliveryStream`, `DescribeDeliveryStream` and `ListDeliveryStreams`, as much of them
//! as SDK clients need. Records' `Data` is base64; Firehose's limits hold (500 records and 4 MiB
//! a batch, 1,000 KiB a record). The operations on streams are in `firehose_streams.rs`: an S3
//! destination's bucket is the lake (every bucket name stands for it, as for a workflow's
//! `ItemReader`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wire::firehose::{PutRecordBatchInput, PutRecordInput, decode, parse};

use super::firehose_streams::{create, describe, list};
use super::{FirehoseError, IngestState, Received};

/// The API's version prefix of `X-Amz-Target`.
const TARGET: &str = "Firehose_20150804.";

/// `POST /`: one Firehose operation, named by `X-Amz-Target`.
pub async fn handle(
    State(state): State<Arc<IngestState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match dispatch(&state, &method, &uri, &headers, &body).await {
        Ok(value) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/x-amz-json-1.1",
            )],
            value.to_string(),
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

async fn dispatch(
    state: &IngestState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, FirehoseError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            FirehoseError::new(
                "UnknownOperationException",
                "no X-Amz-Target header: POST / is the Firehose API (Firehose_20150804.PutRecordBatch, ...)",
            )
        })?;
    let operation = target.strip_prefix(TARGET).ok_or_else(|| {
        FirehoseError::new(
            "UnknownOperationException",
            format!("{target}: not a Firehose_20150804 operation"),
        )
    })?;
    let region = super::authorize(
        &state.auth,
        &Received {
            method: method.as_str(),
            uri,
            headers,
            body,
        },
        None,
    )
    .await?
    .unwrap_or_else(|| "us-east-1".to_owned());
    match operation {
        "PutRecord" => put_record(state, parse(body)?).await,
        "PutRecordBatch" => put_record_batch(state, parse(body)?).await,
        "CreateDeliveryStream" => create(state, parse(body)?, &region).await,
        "DescribeDeliveryStream" => describe(state, parse(body)?, &region).await,
        "ListDeliveryStreams" => list(state, parse(body)?).await,
        other => Err(FirehoseError::new(
            "UnknownOperationException",
            format!(
                "{other}: sluice's Firehose API has PutRecord, PutRecordBatch, CreateDeliveryStream, DescribeDeliveryStream and ListDeliveryStreams"
            ),
        )),
    }
}

fn bytes(records: Vec<Vec<u8>>) -> Vec<bytes::Bytes> {
    records.into_iter().map(bytes::Bytes::from).collect()
}

impl From<wire::firehose::Rejected> for FirehoseError {
    fn from(rejected: wire::firehose::Rejected) -> Self {
        Self::new(rejected.kind, rejected.message)
    }
}

async fn put_record(state: &IngestState, input: PutRecordInput) -> Result<Value, FirehoseError> {
    let records = bytes(decode(std::slice::from_ref(&input.record), "Record")?);
    let accepted = state
        .ingest
        .put(&input.delivery_stream_name, records, None)
        .await?;
    Ok(json!({"RecordId": accepted.record_ids[0], "Encrypted": false}))
}

async fn put_record_batch(
    state: &IngestState,
    input: PutRecordBatchInput,
) -> Result<Value, FirehoseError> {
    let records = bytes(decode(&input.records, "Records")?);
    let accepted = state
        .ingest
        .put(&input.delivery_stream_name, records, None)
        .await?;
    let responses: Vec<Value> = accepted
        .record_ids
        .iter()
        .map(|id| json!({"RecordId": id}))
        .collect();
    Ok(json!({"FailedPutCount": 0, "Encrypted": false, "RequestResponses": responses}))
}
