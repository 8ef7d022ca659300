//! The Firehose API (`Firehose_20150804`, AWS JSON 1.1): `PutRecord`, `PutRecordBatch`,
//! `CreateDeliveryStream`, `DescribeDeliveryStream` and `ListDeliveryStreams`, as much of them
//! as SDK clients need. Records' `Data` is base64; Firehose's limits hold (500 records and 4 MiB
//! a batch, 1,000 KiB a record). An S3 destination's bucket is the lake (every bucket name
//! stands for it, as for a workflow's `ItemReader`); its prefixes, buffering hints, GZIP and
//! the `AppendDelimiterToRecord` processor become the stream's definition.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ops::ingest::StreamView;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateInput {
    delivery_stream_name: String,
    #[serde(default)]
    delivery_stream_type: Option<String>,
    #[serde(default)]
    extended_s3_destination_configuration: Option<S3Destination>,
    #[serde(default)]
    s3_destination_configuration: Option<S3Destination>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3Destination {
    #[serde(rename = "BucketARN")]
    bucket_arn: String,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    error_output_prefix: Option<String>,
    #[serde(default)]
    buffering_hints: Option<BufferingHints>,
    #[serde(default)]
    compression_format: Option<String>,
    #[serde(default)]
    processing_configuration: Option<Processing>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BufferingHints {
    #[serde(rename = "SizeInMBs")]
    size_in_mbs: Option<u64>,
    interval_in_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Processing {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    processors: Vec<Processor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Processor {
    #[serde(rename = "Type")]
    kind: String,
}

/// `CreateDeliveryStream` as the operation's request: only the fields given, so that the
/// defaults are the request's.
fn stream_request(input: CreateInput) -> Result<ops::ingest::StreamRequest, FirehoseError> {
    let invalid = |m: String| FirehoseError::new("InvalidArgumentException", m);
    if let Some(kind) = input.delivery_stream_type.as_deref()
        && kind != "DirectPut"
    {
        return Err(invalid(format!(
            "DeliveryStreamType {kind}: sluice's streams are DirectPut"
        )));
    }
    let destination = input
        .extended_s3_destination_configuration
        .or(input.s3_destination_configuration)
        .ok_or_else(|| {
            invalid(
                "ExtendedS3DestinationConfiguration is required (the lake is every bucket)".into(),
            )
        })?;
    if !destination.bucket_arn.starts_with("arn:aws:s3:::") {
        return Err(invalid(format!(
            "BucketARN {}: expected arn:aws:s3:::BUCKET",
            destination.bucket_arn
        )));
    }
    let mut fields = Map::new();
    fields.insert("name".into(), json!(input.delivery_stream_name));
    fields.insert(
        "prefix".into(),
        json!(destination.prefix.unwrap_or_default()),
    );
    if let Some(prefix) = destination.error_output_prefix {
        fields.insert("error_output_prefix".into(), json!(prefix));
    }
    if let Some(hints) = destination.buffering_hints {
        if let Some(size) = hints.size_in_mbs {
            fields.insert("buffer_mib".into(), json!(size));
        }
        if let Some(seconds) = hints.interval_in_seconds {
            fields.insert("buffer_seconds".into(), json!(seconds));
        }
    }
    match destination.compression_format.as_deref() {
        None | Some("UNCOMPRESSED") => {}
        Some("GZIP") => {
            fields.insert("compression".into(), json!("GZIP"));
        }
        Some(other) => {
            return Err(invalid(format!(
                "CompressionFormat {other}: sluice writes UNCOMPRESSED or GZIP"
            )));
        }
    }
    if let Some(processing) = destination.processing_configuration
        && processing.enabled
    {
        for processor in processing.processors {
            match processor.kind.as_str() {
                "AppendDelimiterToRecord" => {
                    fields.insert("append_newline".into(), json!(true));
                }
                other => {
                    return Err(invalid(format!(
                        "processor {other}: sluice runs AppendDelimiterToRecord only"
                    )));
                }
            }
        }
    }
    ops::request::from_json(fields.into()).map_err(|e| invalid(e.to_string()))
}

async fn create(
    state: &IngestState,
    input: CreateInput,
    region: &str,
) -> Result<Value, FirehoseError> {
    let request = stream_request(input)?;
    let stream = state.ops.create_delivery_stream(&request).await?;
    Ok(json!({"DeliveryStreamARN": arn(region, &stream.name)}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeInput {
    delivery_stream_name: String,
}

async fn describe(
    state: &IngestState,
    input: DescribeInput,
    region: &str,
) -> Result<Value, FirehoseError> {
    let stream = state
        .ops
        .delivery_stream(&input.delivery_stream_name)
        .await?;
    Ok(json!({"DeliveryStreamDescription": description(&stream, region)}))
}

/// A stream as `DescribeDeliveryStream` describes it.
fn description(stream: &StreamView, region: &str) -> Value {
    let d = &stream.definition;
    let mut processors = Vec::new();
    if d.append_newline {
        processors.push(json!({"Type": "AppendDelimiterToRecord", "Parameters": []}));
    }
    let destination = json!({
        "RoleARN": "arn:aws:iam::000000000000:role/sluice",
        "BucketARN": "arn:aws:s3:::sluice-lake",
        "Prefix": d.prefix,
        "ErrorOutputPrefix": d.error_output_prefix,
        "BufferingHints": {"SizeInMBs": d.buffer_bytes >> 20, "IntervalInSeconds": d.buffer_seconds},
        "CompressionFormat": match d.compression {
            ops::ingest::Compression::Gzip => "GZIP",
            ops::ingest::Compression::Uncompressed => "UNCOMPRESSED",
        },
        "EncryptionConfiguration": {"NoEncryptionConfig": "NoEncryption"},
        "ProcessingConfiguration": {"Enabled": !processors.is_empty(), "Processors": processors},
    });
    json!({
        "DeliveryStreamName": stream.name,
        "DeliveryStreamARN": arn(region, &stream.name),
        "DeliveryStreamStatus": "ACTIVE",
        "DeliveryStreamType": "DirectPut",
        "VersionId": stream.version.to_string(),
        "CreateTimestamp": stream.created_at as f64 / 1000.0,
        "LastUpdateTimestamp": stream.updated_at as f64 / 1000.0,
        "Destinations": [{
            "DestinationId": "destinationId-000000000001",
            "ExtendedS3DestinationDescription": destination,
        }],
        "HasMoreDestinations": false,
    })
}

fn arn(region: &str, name: &str) -> String {
    format!("arn:aws:firehose:{region}:000000000000:deliverystream/{name}")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    exclusive_start_delivery_stream_name: Option<String>,
}

async fn list(state: &IngestState, input: ListInput) -> Result<Value, FirehoseError> {
    let limit = input.limit.unwrap_or(10_000).clamp(1, 10_000);
    let names: Vec<String> = state
        .ops
        .delivery_streams()
        .await?
        .into_iter()
        .map(|s| s.name)
        .filter(|name| {
            input
                .exclusive_start_delivery_stream_name
                .as_ref()
                .is_none_or(|start| name > start)
        })
        .collect();
    let more = names.len() > limit;
    Ok(json!({
        "DeliveryStreamNames": names.into_iter().take(limit).collect::<Vec<_>>(),
        "HasMoreDeliveryStreams": more,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request CreateDeliveryStream makes, checked as the operation checks it.
    fn request(body: Value) -> Result<ops::ingest::StreamRequest, FirehoseError> {
        let request = stream_request(parse(body.to_string().as_bytes())?)?;
        request.definition()?;
        Ok(request)
    }

    #[test]
    fn create_delivery_stream_becomes_the_operations_request() {
        let made = request(json!({
            "DeliveryStreamName": "telemetry",
            "DeliveryStreamType": "DirectPut",
            "ExtendedS3DestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": "arn:aws:s3:::plant-telemetry",
                "Prefix": "landing/telemetry/",
                "ErrorOutputPrefix": "landing/errors/",
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
                "CompressionFormat": "GZIP",
                "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "AppendDelimiterToRecord", "Parameters": []}]}
            }
        }))
        .unwrap();
        let flags: ops::ingest::StreamRequest = ops::request::from_json(json!({
            "name": "telemetry", "prefix": "landing/telemetry/",
            "error_output_prefix": "landing/errors/", "buffer_mib": 1, "buffer_seconds": 60,
            "compression": "GZIP", "append_newline": true
        }))
        .unwrap();
        assert_eq!(made, flags);
        let defaults = request(json!({
            "DeliveryStreamName": "t",
            "ExtendedS3DestinationConfiguration": {"BucketARN": "arn:aws:s3:::b", "Prefix": "x/"}
        }))
        .unwrap();
        assert_eq!((defaults.buffer_mib, defaults.buffer_seconds), (5, 300));
        for (body, says) in [
            (
                json!({"DeliveryStreamName": "t"}),
                "ExtendedS3DestinationConfiguration",
            ),
            (
                json!({"DeliveryStreamName": "t", "DeliveryStreamType": "KinesisStreamAsSource"}),
                "DirectPut",
            ),
            (
                json!({"DeliveryStreamName": "t", "ExtendedS3DestinationConfiguration": {"BucketARN": "b"}}),
                "arn:aws:s3",
            ),
            (
                json!({"DeliveryStreamName": "t", "ExtendedS3DestinationConfiguration": {"BucketARN": "arn:aws:s3:::b", "CompressionFormat": "Snappy"}}),
                "Snappy",
            ),
            (
                json!({"DeliveryStreamName": "t", "ExtendedS3DestinationConfiguration": {"BucketARN": "arn:aws:s3:::b", "BufferingHints": {"SizeInMBs": 500}}}),
                "buffer_mib",
            ),
        ] {
            let err = request(body.clone()).unwrap_err();
            assert_eq!(err.kind, "InvalidArgumentException", "{body}");
            assert!(err.message.contains(says), "{body}: {}", err.message);
        }
        let err = parse::<PutRecordBatchInput>(
            br#"{"DeliveryStreamName": "t", "Records": [{"Data": 1}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.kind, "SerializationException");
        assert!(err.message.contains("Records[0].Data"), "{}", err.message);
    }

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
