//! Firehose request bodies, parsed and checked: the Firehose API's PutRecord and
//! PutRecordBatch (`{"DeliveryStreamName", "Record": {"Data"}}`, `{"DeliveryStreamName",
//! "Records": [...]}`, data in base64) and a Firehose stream's HTTP endpoint delivery
//! (`{"requestId", "timestamp", "records": [{"data"}]}`, gzip'd when its content encoding says
//! so). A refusal names the field (`Records[3].Data: not base64: ...`) and the error type AWS
//! answers with.

use std::io::Read as _;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Records a PutRecordBatch call may carry (Firehose's limit).
pub const MAX_BATCH_RECORDS: usize = 500;
/// Bytes of decoded data a PutRecordBatch call may carry (Firehose's limit: 4 MiB).
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// How far a gzip'd delivery may inflate.
pub const MAX_DELIVERY_BYTES: usize = 96 << 20;

/// Why a request is refused: AWS's error type and what is wrong, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Rejected {
    /// `SerializationException` or `InvalidArgumentException`.
    pub kind: &'static str,
    pub message: String,
}

impl Rejected {
    fn new(kind: &'static str, message: String) -> Self {
        Self { kind, message }
    }
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

/// An operation's input; a body that is not its JSON is Firehose's `SerializationException`
/// (an empty body reads as `{}`).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Rejected> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    json(body).map_err(|message| Rejected::new("SerializationException", message))
}

/// A JSON body as `T`; what does not read names its path.
fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        format!("{path}: {}", err.into_inner())
    })
}

/// Records' base64 data, decoded; one that is not base64 is refused by its index, and a call
/// past [`MAX_BATCH_RECORDS`] or [`MAX_BATCH_BYTES`] as a whole. `field` names the records
/// (`Records`, `Record`).
pub fn decode(records: &[RecordIn], field: &str) -> Result<Vec<Vec<u8>>, Rejected> {
    let invalid = |message: String| Rejected::new("InvalidArgumentException", message);
    if records.len() > MAX_BATCH_RECORDS {
        return Err(invalid(format!(
            "{field}: {} records, at most {MAX_BATCH_RECORDS} a call",
            records.len()
        )));
    }
    let mut total = 0;
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(record.data.as_bytes())
                .map_err(|e| invalid(format!("{field}[{i}].Data: not base64: {e}")))?;
            total += data.len();
            if total > MAX_BATCH_BYTES {
                return Err(invalid(format!(
                    "{field}: more than {MAX_BATCH_BYTES} bytes of data (4 MiB) in one call"
                )));
            }
            Ok(data)
        })
        .collect()
}

/// An HTTP endpoint delivery's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub request_id: Option<String>,
    #[serde(default)]
    pub records: Vec<DeliveredRecord>,
}

#[derive(Debug, Deserialize)]
pub struct DeliveredRecord {
    pub data: String,
}

/// A delivery's body, gunzipped first when `gzip` (to at most [`MAX_DELIVERY_BYTES`]).
pub fn delivery(body: &[u8], gzip: bool) -> Result<Delivery, String> {
    if !gzip {
        return json(body);
    }
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(MAX_DELIVERY_BYTES as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| format!("the body is not gzip: {e}"))?;
    if inflated.len() > MAX_DELIVERY_BYTES {
        return Err("the body inflates past 96 MiB".into());
    }
    json(&inflated)
}

/// A delivery's records, decoded; one that is not base64 is refused by its index.
pub fn delivered(records: &[DeliveredRecord]) -> Result<Vec<Vec<u8>>, String> {
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            base64::engine::general_purpose::STANDARD
                .decode(record.data.as_bytes())
                .map_err(|e| format!("records[{i}].data: not base64: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_decodes_or_names_the_record_at_fault() {
        let batch: PutRecordBatchInput = parse(
            br#"{"DeliveryStreamName": "s", "Records": [{"Data": "eyJhIjoxfQ=="}, {"Data": "**"}]}"#,
        )
        .unwrap();
        let refused = decode(&batch.records, "Records").unwrap_err();
        assert_eq!(refused.kind, "InvalidArgumentException");
        assert!(
            refused.message.starts_with("Records[1].Data: not base64"),
            "{refused}"
        );
        assert_eq!(
            decode(&batch.records[..1], "Records").unwrap(),
            vec![br#"{"a":1}"#.to_vec()]
        );
        let too_many: Vec<RecordIn> = (0..=MAX_BATCH_RECORDS)
            .map(|_| RecordIn {
                data: String::new(),
            })
            .collect();
        assert!(
            decode(&too_many, "Records")
                .unwrap_err()
                .message
                .contains("501 records, at most 500")
        );
        let big = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 900 << 10]);
        let five: Vec<RecordIn> = (0..5).map(|_| RecordIn { data: big.clone() }).collect();
        assert!(
            decode(&five, "Records")
                .unwrap_err()
                .message
                .contains("4 MiB")
        );
    }

    #[test]
    fn a_body_that_is_not_the_operation_names_its_path() {
        let refused =
            parse::<PutRecordInput>(br#"{"DeliveryStreamName": "s", "Record": {"Data": 3}}"#)
                .unwrap_err();
        assert_eq!(refused.kind, "SerializationException");
        assert!(
            refused.message.starts_with("Record.Data: invalid type"),
            "{refused}"
        );
        assert!(
            parse::<PutRecordInput>(b"")
                .unwrap_err()
                .message
                .contains("DeliveryStreamName")
        );
    }

    #[test]
    fn a_delivery_reads_plain_or_gzipped() {
        use std::io::Write as _;
        let body = br#"{"requestId": "r1", "timestamp": 1, "records": [{"data": "aGk="}]}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body).unwrap();
        let gzipped = gz.finish().unwrap();
        for (bytes, gzip) in [(&body[..], false), (&gzipped[..], true)] {
            let read = delivery(bytes, gzip).unwrap();
            assert_eq!(read.request_id.as_deref(), Some("r1"));
            assert_eq!(delivered(&read.records).unwrap(), vec![b"hi".to_vec()]);
        }
        assert!(
            delivery(body, true)
                .unwrap_err()
                .starts_with("the body is not gzip")
        );
    }
}
