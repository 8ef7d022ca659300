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
use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

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

/// An operation's input; a body that is not its JSON is Firehose's `SerializationException`.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, FirehoseError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        FirehoseError::new(
            "SerializationException",
            format!("{path}: {}", err.into_inner()),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordIn {
    pub data: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordInput {
    pub delivery_stream_name: String,
    pub record: RecordIn,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordBatchInput {
    pub delivery_stream_name: String,
    pub records: Vec<RecordIn>,
}

/// Records' base64 data, decoded; one that is not base64 is refused by its index.
pub fn decode(records: &[RecordIn], field: &str) -> Result<Vec<bytes::Bytes>, FirehoseError> {
    if records.len() > ops::ingest::MAX_BATCH_RECORDS {
        return Err(FirehoseError::new(
            "InvalidArgumentException",
            format!(
                "{field}: {} records, at most {} a call",
                records.len(),
                ops::ingest::MAX_BATCH_RECORDS
            ),
        ));
    }
    let mut total = 0;
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(record.data.as_bytes())
                .map_err(|e| {
                    FirehoseError::new(
                        "InvalidArgumentException",
                        format!("{field}[{i}].Data: not base64: {e}"),
                    )
                })?;
            total += data.len();
            if total > ops::ingest::MAX_BATCH_BYTES {
                return Err(FirehoseError::new(
                    "InvalidArgumentException",
                    format!(
                        "{field}: more than {} bytes of data (4 MiB) in one call",
                        ops::ingest::MAX_BATCH_BYTES
                    ),
                ));
            }
            Ok(bytes::Bytes::from(data))
        })
        .collect()
}

async fn put_record(state: &IngestState, input: PutRecordInput) -> Result<Value, FirehoseError> {
    let records = decode(std::slice::from_ref(&input.record), "Record")?;
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
    let records = decode(&input.records, "Records")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_base64_within_firehose_limits() {
        let record = |data: &str| RecordIn { data: data.into() };
        assert_eq!(
            decode(&[record("eyJhIjoxfQ==")], "Records").unwrap(),
            vec![bytes::Bytes::from_static(b"{\"a\":1}")]
        );
        let err = decode(&[record("eyJhIjoxfQ=="), record("not base64!")], "Records").unwrap_err();
        assert!(
            err.message.starts_with("Records[1].Data"),
            "{}",
            err.message
        );
        let many: Vec<RecordIn> = (0..501).map(|_| record("eA==")).collect();
        assert!(
            decode(&many, "Records")
                .unwrap_err()
                .message
                .contains("501 records")
        );
        let big = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 900 << 10]);
        let five: Vec<RecordIn> = (0..5).map(|_| record(&big)).collect();
        assert!(
            decode(&five, "Records")
                .unwrap_err()
                .message
                .contains("4 MiB")
        );
    }
}
