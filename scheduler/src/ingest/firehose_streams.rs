//! The Firehose API's stream management, adapters over `ops::ingest::streams`:
//! `CreateDeliveryStream` (an S3 destination; the lake is every bucket), with its prefixes,
//! buffering hints, GZIP and the `AppendDelimiterToRecord` processor as the stream's
//! definition, `DescribeDeliveryStream` and `ListDeliveryStreams`.

use ops::ingest::StreamView;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{FirehoseError, IngestState};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateInput {
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

pub async fn create(
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
pub struct DescribeInput {
    delivery_stream_name: String,
}

pub async fn describe(
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
pub struct ListInput {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    exclusive_start_delivery_stream_name: Option<String>,
}

pub async fn list(state: &IngestState, input: ListInput) -> Result<Value, FirehoseError> {
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
    use wire::firehose::{PutRecordBatchInput, parse};
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
}
