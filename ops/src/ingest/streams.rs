//! Delivery streams: what a stream's records become (where its objects land, how long and how
//! much it buffers, gzip, a delimiter after each record), stored in the catalog database as a
//! versioned definition. Creating, describing and listing them are operations of [`Ops`]; the
//! CLI, the Firehose API's `CreateDeliveryStream`, `DescribeDeliveryStream` and
//! `ListDeliveryStreams` are adapters over them.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::layout::Prefix;
use crate::{Error, Missing, Ops, Result};

/// The persisted definition's format.
const FORMAT: u32 = 1;

/// How a stream compresses its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compression {
    Gzip,
    Uncompressed,
}

/// A delivery stream's definition, as stored (format 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDefinition {
    pub format: u32,
    /// The lake prefix of objects (Firehose's `Prefix`, with its expressions).
    pub prefix: String,
    /// Where records that cannot be delivered go (`ErrorOutputPrefix`).
    pub error_output_prefix: String,
    /// Seal an object at this many bytes of records...
    pub buffer_bytes: u64,
    /// ...or this many seconds after its first record arrived.
    pub buffer_seconds: u64,
    pub compression: Compression,
    /// A newline after each record (Firehose's `AppendDelimiterToRecord` processor).
    pub append_newline: bool,
}

impl StreamDefinition {
    /// The parsed prefixes.
    pub fn prefixes(&self) -> Result<(Prefix, Prefix)> {
        let prefix = Prefix::parse(&self.prefix).map_err(|e| Error::invalid("prefix", e))?;
        let error = Prefix::parse(&self.error_output_prefix)
            .map_err(|e| Error::invalid("error_output_prefix", e))?;
        Ok((prefix, error))
    }
}

/// A stream to create (`sluice ingest stream create`, `CreateDeliveryStream`). Defaults are
/// Firehose's: 5 MiB or 300 seconds, uncompressed, no delimiter; errors under
/// `processing-failed/`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRequest {
    pub name: String,
    pub prefix: String,
    #[serde(default)]
    pub error_output_prefix: Option<String>,
    #[serde(default = "five")]
    pub buffer_mib: u64,
    #[serde(default = "three_hundred")]
    pub buffer_seconds: u64,
    #[serde(default = "uncompressed")]
    pub compression: Compression,
    #[serde(default)]
    pub append_newline: bool,
}

fn five() -> u64 {
    5
}
fn three_hundred() -> u64 {
    300
}
fn uncompressed() -> Compression {
    Compression::Uncompressed
}

impl StreamRequest {
    /// The definition it asks for, checked as Firehose checks it.
    pub fn definition(&self) -> Result<StreamDefinition> {
        check_name(&self.name)?;
        if !(1..=128).contains(&self.buffer_mib) {
            return Err(Error::invalid(
                "buffer_mib",
                format!("{} is outside 1 to 128 (MiB)", self.buffer_mib),
            ));
        }
        if self.buffer_seconds > 900 {
            return Err(Error::invalid(
                "buffer_seconds",
                format!("{} is outside 0 to 900 (seconds)", self.buffer_seconds),
            ));
        }
        let definition = StreamDefinition {
            format: FORMAT,
            prefix: self.prefix.clone(),
            error_output_prefix: self
                .error_output_prefix
                .clone()
                .unwrap_or_else(|| "processing-failed/".into()),
            buffer_bytes: self.buffer_mib << 20,
            buffer_seconds: self.buffer_seconds,
            compression: self.compression,
            append_newline: self.append_newline,
        };
        let (prefix, error) = definition.prefixes()?;
        if prefix.has_timestamp() && !error.has_error_output_type() && !error.has_timestamp() {
            return Err(Error::invalid(
                "error_output_prefix",
                "a prefix with !{timestamp:...} needs an error output prefix with \
                 !{firehose:error-output-type} or a timestamp, as Firehose asks",
            ));
        }
        for (field, rendered) in [
            (
                "prefix",
                prefix.render(chrono::Utc::now(), "processing-failed", "x"),
            ),
            (
                "error_output_prefix",
                error.render(chrono::Utc::now(), "processing-failed", "x"),
            ),
        ] {
            jobs::lake::LakeKey::parse(&format!("{rendered}object"))
                .map_err(|e| Error::invalid(field, e))?;
        }
        Ok(definition)
    }
}

/// A stream's name: 1 to 64 of `[a-zA-Z0-9_.-]`, as Firehose allows.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(Error::invalid(
            "name",
            format!("{name:?} must be 1 to 64 letters, digits, '_', '.' or '-'"),
        ));
    }
    Ok(())
}

/// A stream as described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamView {
    pub name: String,
    /// Bumped by every change (Firehose's `VersionId`); it is in every object's name.
    pub version: i64,
    pub definition: StreamDefinition,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Ops {
    /// Creates a delivery stream; one of that name already is a conflict.
    pub async fn create_delivery_stream(&self, request: &StreamRequest) -> Result<StreamView> {
        let definition = request.definition()?;
        let pool = self.catalog().await?.pool();
        let now = chrono::Utc::now().timestamp_millis();
        let text = serde_json::to_string(&definition).expect("a definition serializes");
        let inserted = sqlx::query(
            "INSERT INTO delivery_streams (name, definition, version, created_at, updated_at) \
             VALUES ($1, $2, 1, $3, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&request.name)
        .bind(&text)
        .bind(now)
        .execute(pool)
        .await
        .map_err(database)?;
        if inserted.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "delivery stream {} already exists",
                request.name
            )));
        }
        self.delivery_stream(&request.name).await
    }

    /// A delivery stream.
    pub async fn delivery_stream(&self, name: &str) -> Result<StreamView> {
        let pool = self.catalog().await?.pool();
        let row = sqlx::query(
            "SELECT name, definition, version, created_at, updated_at FROM delivery_streams \
             WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(database)?;
        match row {
            Some(row) => view(&row),
            None => Err(Error::NotFound {
                missing: Missing::Other,
                what: format!("no delivery stream {name}"),
            }),
        }
    }

    /// The delivery streams, by name.
    pub async fn delivery_streams(&self) -> Result<Vec<StreamView>> {
        let pool = self.catalog().await?.pool();
        let rows = sqlx::query(
            "SELECT name, definition, version, created_at, updated_at FROM delivery_streams \
             ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .map_err(database)?;
        rows.iter().map(view).collect()
    }
}

fn view(row: &sqlx::any::AnyRow) -> Result<StreamView> {
    let name: String = row.try_get("name").map_err(database)?;
    let text: String = row.try_get("definition").map_err(database)?;
    let definition: StreamDefinition = serde_json::from_str(&text).map_err(|e| {
        Error::Failed(format!(
            "delivery stream {name}: a stored definition that does not read: {e}"
        ))
    })?;
    Ok(StreamView {
        version: row.try_get("version").map_err(database)?,
        created_at: row.try_get("created_at").map_err(database)?,
        updated_at: row.try_get("updated_at").map_err(database)?,
        name,
        definition,
    })
}

fn database(err: sqlx::Error) -> Error {
    Error::Unavailable(format!("database: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> Result<StreamDefinition> {
        crate::request::from_json::<StreamRequest>(json)?.definition()
    }

    #[test]
    fn definitions_take_firehose_defaults_and_limits() {
        let definition =
            request(serde_json::json!({"name": "telemetry", "prefix": "landing/telemetry/"}))
                .unwrap();
        assert_eq!(definition.buffer_bytes, 5 << 20);
        assert_eq!(definition.buffer_seconds, 300);
        assert_eq!(definition.error_output_prefix, "processing-failed/");
        assert_eq!(definition.compression, Compression::Uncompressed);
        for (json, field) in [
            (serde_json::json!({"name": "a b", "prefix": "x/"}), "name"),
            (
                serde_json::json!({"name": "a", "prefix": "x/", "buffer_mib": 0}),
                "buffer_mib",
            ),
            (
                serde_json::json!({"name": "a", "prefix": "x/", "buffer_seconds": 901}),
                "buffer_seconds",
            ),
            (
                serde_json::json!({"name": "a", "prefix": "x/!{timestamp:yyyy}/"}),
                "error_output_prefix",
            ),
            (
                serde_json::json!({"name": "a", "prefix": "../x/"}),
                "prefix",
            ),
            (
                serde_json::json!({"name": "a", "prefix": "x/", "compression": "ZIP"}),
                "compression",
            ),
            (
                serde_json::json!({"name": "a", "prefix": "x/", "size": 1}),
                "size",
            ),
        ] {
            match request(json.clone()) {
                Err(Error::InvalidInput { field: got, .. }) => assert_eq!(got, field, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
    }
}
