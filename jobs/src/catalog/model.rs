//! The catalog's domain types: validated names and what the read queries return.

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::{Field, Schema};
use serde::Serialize;

use super::schema::SchemaDiff;
use crate::{Error, Result};

fn validate_identifier(field: &'static str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            field,
            reason: format!(
                "{name:?}: lowercase letters, digits and '_', not starting with a digit"
            ),
        })
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses a name: lowercase letters, digits and `_`, not starting with a digit.
            pub fn parse(name: &str) -> Result<Self> {
                validate_identifier($field, name)?;
                Ok(Self(name.to_owned()))
            }

            /// Makes a valid name out of any text (`errors/processing-failed` → `errors_processing_failed`).
            pub fn sanitize(text: &str) -> Self {
                let mut name = String::with_capacity(text.len());
                for c in text.chars().flat_map(char::to_lowercase) {
                    let c = if c.is_ascii_alphanumeric() { c } else { '_' };
                    if !(c == '_' && (name.is_empty() || name.ends_with('_'))) {
                        name.push(c);
                    }
                }
                let mut name = name.trim_end_matches('_').to_owned();
                if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
                    name.insert_str(0, "t_");
                }
                name.truncate(255);
                Self(name)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(
    /// A table's name within its catalog database.
    TableName,
    "table name"
);
identifier!(
    /// A catalog database (Glue's database: a namespace of tables).
    CatalogDbName,
    "catalog database name"
);

/// What happens when a crawl sees a table's schema change (see [`super::evolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaPolicy {
    /// Glue's "add new columns only": new columns and lossless widenings make a new version;
    /// any other type change waits for a person.
    #[default]
    AddColumns,
    /// Every change makes a new version, type changes included (the observed type is the one
    /// that dominates the column's values).
    Update,
    /// The diff is recorded; the table keeps its schema.
    Log,
}

impl SchemaPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaPolicy::AddColumns => "add_columns",
            SchemaPolicy::Update => "update",
            SchemaPolicy::Log => "log",
        }
    }
}

impl FromStr for SchemaPolicy {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "add_columns" => Ok(SchemaPolicy::AddColumns),
            "update" => Ok(SchemaPolicy::Update),
            "log" => Ok(SchemaPolicy::Log),
            other => Err(Error::InvalidArgument {
                field: "schema policy",
                reason: format!("{other:?}: expected add_columns, update or log"),
            }),
        }
    }
}

/// Data tables hold records; envelope tables hold Firehose's processing-failed records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    Data,
    FirehoseErrors,
    /// Parquet written by conversion.
    Curated,
}

impl TableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Data => "data",
            TableKind::FirehoseErrors => "firehose_errors",
            TableKind::Curated => "curated",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "firehose_errors" => TableKind::FirehoseErrors,
            "curated" => TableKind::Curated,
            _ => TableKind::Data,
        }
    }
}

/// A catalog table with its current schema.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub id: i64,
    pub catalog_db: String,
    pub name: String,
    pub location: String,
    pub kind: TableKind,
    pub format: String,
    pub compression: String,
    pub schema_policy: SchemaPolicy,
    pub current_version: i64,
    pub schema: Schema,
    pub partition_keys: Vec<Field>,
    pub properties: serde_json::Value,
    pub partitions: i64,
    pub objects: i64,
    pub bytes: i64,
    pub records: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One schema version of a table.
#[derive(Debug, Clone)]
pub struct SchemaVersion {
    pub version: i64,
    pub schema: Schema,
    pub diff: SchemaDiff,
    pub crawl_id: Option<i64>,
    pub created_at: i64,
}

/// A schema change recorded, not applied, under the `log` policy.
#[derive(Debug, Clone)]
pub struct SchemaChange {
    pub crawl_id: i64,
    pub version: i64,
    pub diff: SchemaDiff,
    pub created_at: i64,
}

/// A conversion run of a table, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionRunInfo {
    pub id: i64,
    /// `running`, `committed`, `published` or `failed`.
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub sources: i64,
    pub records_read: i64,
    pub records_written: i64,
    pub records_quarantined: i64,
    pub files: i64,
    pub bytes_written: i64,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// The lake key of the run's quarantined records, when it quarantined any.
    pub quarantine: Option<String>,
}

impl ConversionRunInfo {
    /// Every record read was written or quarantined.
    pub fn reconciled(&self) -> bool {
        self.records_read == self.records_written + self.records_quarantined
    }
}

/// One partition of a table.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub location: String,
    pub values: Vec<String>,
    pub object_count: i64,
    pub bytes: i64,
    pub record_estimate: i64,
    pub updated_at: i64,
}

/// A closed vocabulary stored as text: each value's name in the database, and its parse, which
/// refuses any other text as a corrupt record.
macro_rules! stored_status {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The status stored as `text`.
            pub fn parse(text: &str) -> Result<Self> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(Error::CorruptRecord {
                        what: $what,
                        reason: format!("unknown status {other:?}"),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use stored_status;

stored_status! {
    /// What became of a landed object the crawler read.
    ObjectStatus, "object" {
        /// Read, and registered in a table.
        Crawled => "crawled",
        /// Unreadable, with its reason.
        Failed => "failed",
        /// Deleted from the landing area after a crawl: kept in the catalog, out of its figures.
        Gone => "gone",
    }
}

stored_status! {
    /// Where a crawl is.
    CrawlStatus, "crawl" {
        Running => "running",
        Succeeded => "succeeded",
        /// Failed before it committed, with the error.
        Failed => "failed",
    }
}

/// One landed object as the catalog knows it.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub etag: Option<String>,
    pub size: i64,
    pub last_modified: i64,
    pub status: ObjectStatus,
    pub format: Option<String>,
    pub compression: Option<String>,
    pub table: Option<String>,
    pub records: i64,
    pub records_exact: bool,
    pub malformed_records: i64,
    pub failure_reason: Option<String>,
}

/// One crawl and its counts.
#[derive(Debug, Clone)]
pub struct CrawlInfo {
    pub id: i64,
    pub catalog_db: String,
    pub prefix: String,
    pub status: CrawlStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub objects_listed: i64,
    pub objects_crawled: i64,
    pub objects_failed: i64,
    pub objects_skipped: i64,
    pub bytes_read: i64,
    pub duration_ms: i64,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_sanitized() {
        assert!(TableName::parse("telemetry_v2").is_ok());
        for bad in ["", "Telemetry", "2024", "a-b", "a b"] {
            assert!(TableName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            TableName::sanitize("errors/processing-failed").as_str(),
            "errors_processing_failed"
        );
        assert_eq!(TableName::sanitize("2024//x").as_str(), "t_2024_x");
        assert_eq!(TableName::sanitize("").as_str(), "t_");
    }
}
