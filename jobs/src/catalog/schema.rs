//! The catalog's persisted schema format and schema diffs.
//!
//! Schemas are stored as an explicit, versioned JSON document ([`encode_schema`] /
//! [`decode_schema`]), not as a serde dump of Arrow's types: `{"format":1,"fields":[...]}` with
//! one typed node per field. [`type_name`] renders Glue/Hive-style names for people
//! (`struct<lat:double,lon:double>`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::crawler::infer::{TIMESTAMP_SOURCE, source_metadata};
use crate::{Error, Result};

/// Version of the stored schema document.
pub const SCHEMA_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StoredSchema {
    format: u32,
    fields: Vec<StoredField>,
}

#[derive(Serialize, Deserialize)]
struct StoredField {
    name: String,
    #[serde(rename = "type")]
    data_type: StoredType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp_source: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredType {
    Null,
    Boolean,
    Int {
        bits: u8,
        signed: bool,
    },
    Float {
        bits: u8,
    },
    String,
    Binary,
    Date,
    Timestamp {
        unit: String,
        tz: Option<String>,
    },
    Struct {
        fields: Vec<StoredField>,
    },
    List {
        item: Box<StoredField>,
    },
    /// Any other Arrow type (from Parquet footers), by Arrow's own type syntax.
    Arrow {
        name: String,
    },
}

fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    }
}

fn store_field(field: &Field) -> StoredField {
    let data_type = match field.data_type() {
        DataType::Null => StoredType::Null,
        DataType::Boolean => StoredType::Boolean,
        DataType::Int8 => StoredType::Int {
            bits: 8,
            signed: true,
        },
        DataType::Int16 => StoredType::Int {
            bits: 16,
            signed: true,
        },
        DataType::Int32 => StoredType::Int {
            bits: 32,
            signed: true,
        },
        DataType::Int64 => StoredType::Int {
            bits: 64,
            signed: true,
        },
        DataType::UInt8 => StoredType::Int {
            bits: 8,
            signed: false,
        },
        DataType::UInt16 => StoredType::Int {
            bits: 16,
            signed: false,
        },
        DataType::UInt32 => StoredType::Int {
            bits: 32,
            signed: false,
        },
        DataType::UInt64 => StoredType::Int {
            bits: 64,
            signed: false,
        },
        DataType::Float32 => StoredType::Float { bits: 32 },
        DataType::Float64 => StoredType::Float { bits: 64 },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => StoredType::String,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => StoredType::Binary,
        DataType::Date32 => StoredType::Date,
        DataType::Timestamp(unit, tz) => StoredType::Timestamp {
            unit: unit_name(*unit).to_owned(),
            tz: tz.as_deref().map(str::to_owned),
        },
        DataType::Struct(children) => StoredType::Struct {
            fields: children.iter().map(|c| store_field(c)).collect(),
        },
        DataType::List(item) | DataType::LargeList(item) => StoredType::List {
            item: Box::new(store_field(item)),
        },
        other => StoredType::Arrow {
            name: other.to_string(),
        },
    };
    StoredField {
        name: field.name().clone(),
        data_type,
        timestamp_source: field.metadata().get(TIMESTAMP_SOURCE).cloned(),
    }
}

fn load_field(stored: StoredField) -> Result<Field> {
    let corrupt = |reason: String| Error::CorruptRecord {
        what: "schema",
        reason,
    };
    let data_type = match stored.data_type {
        StoredType::Null => DataType::Null,
        StoredType::Boolean => DataType::Boolean,
        StoredType::Int { bits, signed } => match (bits, signed) {
            (8, true) => DataType::Int8,
            (16, true) => DataType::Int16,
            (32, true) => DataType::Int32,
            (64, true) => DataType::Int64,
            (8, false) => DataType::UInt8,
            (16, false) => DataType::UInt16,
            (32, false) => DataType::UInt32,
            (64, false) => DataType::UInt64,
            _ => {
                return Err(corrupt(format!(
                    "field {}: no {bits}-bit integer",
                    stored.name
                )));
            }
        },
        StoredType::Float { bits: 32 } => DataType::Float32,
        StoredType::Float { bits: 64 } => DataType::Float64,
        StoredType::Float { bits } => {
            return Err(corrupt(format!(
                "field {}: no {bits}-bit float",
                stored.name
            )));
        }
        StoredType::String => DataType::Utf8,
        StoredType::Binary => DataType::Binary,
        StoredType::Date => DataType::Date32,
        StoredType::Timestamp { unit, tz } => {
            let unit = match unit.as_str() {
                "s" => TimeUnit::Second,
                "ms" => TimeUnit::Millisecond,
                "us" => TimeUnit::Microsecond,
                "ns" => TimeUnit::Nanosecond,
                other => {
                    return Err(corrupt(format!(
                        "field {}: time unit {other:?}",
                        stored.name
                    )));
                }
            };
            DataType::Timestamp(unit, tz.map(Arc::from))
        }
        StoredType::Struct { fields } => DataType::Struct(
            fields
                .into_iter()
                .map(load_field)
                .collect::<Result<Fields>>()?,
        ),
        StoredType::List { item } => DataType::List(Arc::new(load_field(*item)?)),
        StoredType::Arrow { name } => name
            .parse()
            .map_err(|err| corrupt(format!("field {}: arrow type {name:?}: {err}", stored.name)))?,
    };
    let field = Field::new(stored.name, data_type, true);
    Ok(match stored.timestamp_source {
        Some(source) => field.with_metadata(source_metadata(&source)),
        None => field,
    })
}

/// Encodes a schema as the catalog's versioned JSON document.
pub fn encode_schema(schema: &Schema) -> String {
    encode_fields(schema.fields().iter().map(|f| f.as_ref()))
}

/// Encodes fields (a schema, or a table's partition keys).
pub fn encode_fields<'a>(fields: impl Iterator<Item = &'a Field>) -> String {
    let stored = StoredSchema {
        format: SCHEMA_FORMAT,
        fields: fields.map(store_field).collect(),
    };
    serde_json::to_string(&stored).expect("schemas serialize")
}

/// Decodes a stored schema document.
pub fn decode_schema(text: &str) -> Result<Schema> {
    let stored: StoredSchema = serde_json::from_str(text).map_err(|err| Error::CorruptRecord {
        what: "schema",
        reason: err.to_string(),
    })?;
    if stored.format != SCHEMA_FORMAT {
        return Err(Error::CorruptRecord {
            what: "schema",
            reason: format!("unknown format {}", stored.format),
        });
    }
    Ok(Schema::new(
        stored
            .fields
            .into_iter()
            .map(load_field)
            .collect::<Result<Vec<_>>>()?,
    ))
}

/// A Glue/Hive-style type name: `bigint`, `timestamp`, `struct<lat:double>`, `array<string>`.
pub fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Null => "null".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            format!("{} unsigned", data_type.to_string().to_lowercase())
        }
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp".into(),
        DataType::Timestamp(_, None) => "timestamp_ntz".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        DataType::List(item) | DataType::LargeList(item) => {
            format!("array<{}>", type_name(item.data_type()))
        }
        other => other.to_string().to_lowercase(),
    }
}

/// A column and its type name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnType {
    pub column: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// A column whose type changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeChange {
    pub column: String,
    pub from: String,
    pub to: String,
}

/// What changed between two schemas, by dotted column path (`location.alt`, `tags[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDiff {
    pub added: Vec<ColumnType>,
    pub removed: Vec<ColumnType>,
    /// Changes that keep every value readable (int → double, anything → string, null → any).
    pub widened: Vec<TypeChange>,
    /// Any other change of type.
    pub changed: Vec<TypeChange>,
}

impl SchemaDiff {
    /// True when the schemas are the same.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.widened.is_empty()
            && self.changed.is_empty()
    }

    /// One line per change, as people read them: `+ pm25 double` added, `- pm25 double`
    /// removed, `~ pm25 bigint -> double (widened)`, `! pm25 double -> string (changed)`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.extend(
            self.added
                .iter()
                .map(|c| format!("+ {} {}", c.column, c.type_name)),
        );
        lines.extend(
            self.removed
                .iter()
                .map(|c| format!("- {} {}", c.column, c.type_name)),
        );
        lines.extend(
            self.widened
                .iter()
                .map(|c| format!("~ {} {} -> {} (widened)", c.column, c.from, c.to)),
        );
        lines.extend(
            self.changed
                .iter()
                .map(|c| format!("! {} {} -> {} (changed)", c.column, c.from, c.to)),
        );
        lines
    }
}

fn flatten(prefix: &str, fields: &Fields, out: &mut BTreeMap<String, (usize, DataType)>) {
    for field in fields {
        let path = if prefix.is_empty() {
            field.name().clone()
        } else {
            format!("{prefix}.{}", field.name())
        };
        flatten_type(&path, field.data_type(), out);
    }
}

fn flatten_type(path: &str, data_type: &DataType, out: &mut BTreeMap<String, (usize, DataType)>) {
    let order = out.len();
    match data_type {
        DataType::Struct(children) => flatten(path, children, out),
        DataType::List(item) | DataType::LargeList(item)
            if matches!(item.data_type(), DataType::Struct(_) | DataType::List(_)) =>
        {
            flatten_type(&format!("{path}[]"), item.data_type(), out)
        }
        leaf => {
            out.insert(path.to_owned(), (order, leaf.clone()));
        }
    }
}

fn is_widening(from: &DataType, to: &DataType) -> bool {
    match (from, to) {
        (DataType::Null, _) => true,
        (_, DataType::Utf8) => true,
        (f, DataType::Int64) if f.is_integer() => true,
        (f, DataType::Float64) if f.is_integer() || f.is_floating() => true,
        (DataType::Timestamp(_, None), DataType::Timestamp(_, Some(_))) => true,
        (DataType::List(a), DataType::List(b)) => is_widening(a.data_type(), b.data_type()),
        _ => false,
    }
}

/// Compares two schemas column by column, nested columns by path.
pub fn diff(old: &Schema, new: &Schema) -> SchemaDiff {
    let (mut before, mut after) = (BTreeMap::new(), BTreeMap::new());
    flatten("", old.fields(), &mut before);
    flatten("", new.fields(), &mut after);
    let mut by_order: Vec<(&String, &(usize, DataType))> = after.iter().collect();
    by_order.sort_by_key(|(_, (order, _))| *order);
    let mut diff = SchemaDiff::default();
    for (path, (_, to)) in by_order {
        match before.get(path) {
            None => diff.added.push(ColumnType {
                column: path.clone(),
                type_name: type_name(to),
            }),
            Some((_, from)) if from != to => {
                let change = TypeChange {
                    column: path.clone(),
                    from: type_name(from),
                    to: type_name(to),
                };
                if is_widening(from, to) {
                    diff.widened.push(change)
                } else {
                    diff.changed.push(change)
                }
            }
            Some(_) => {}
        }
    }
    let mut removed: Vec<(&String, &(usize, DataType))> = before
        .iter()
        .filter(|(p, _)| !after.contains_key(*p))
        .collect();
    removed.sort_by_key(|(_, (order, _))| *order);
    diff.removed = removed
        .into_iter()
        .map(|(p, (_, t))| ColumnType {
            column: p.clone(),
            type_name: type_name(t),
        })
        .collect();
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: Vec<Field>) -> Schema {
        Schema::new(fields)
    }

    #[test]
    fn stored_schemas_round_trip() {
        let ts = Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        )
        .with_metadata(source_metadata("rfc3339"));
        let original = schema(vec![
            ts,
            Field::new("n", DataType::Int64, true),
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new(
                "loc",
                DataType::Struct(vec![Field::new("lat", DataType::Float64, true)].into()),
                true,
            ),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            Field::new("z", DataType::Null, true),
        ]);
        let text = encode_schema(&original);
        assert_eq!(decode_schema(&text).unwrap(), original);
        assert!(decode_schema("{\"format\":9,\"fields\":[]}").is_err());
    }

    #[test]
    fn type_names_are_glue_style() {
        let loc = DataType::Struct(
            vec![
                Field::new("lat", DataType::Float64, true),
                Field::new("alt", DataType::Int64, true),
            ]
            .into(),
        );
        assert_eq!(type_name(&loc), "struct<lat:double,alt:bigint>");
        assert_eq!(
            type_name(&DataType::List(Arc::new(Field::new(
                "item",
                DataType::Utf8,
                true
            )))),
            "array<string>"
        );
    }

    #[test]
    fn diffs_name_added_widened_and_removed_columns() {
        let loc = |alt: DataType| DataType::Struct(vec![Field::new("alt", alt, true)].into());
        let old = schema(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("gone", DataType::Boolean, true),
            Field::new("loc", loc(DataType::Int64), true),
            Field::new("b", DataType::Float64, true),
        ]);
        let new = schema(vec![
            Field::new("a", DataType::Float64, true),
            Field::new("loc", loc(DataType::Utf8), true),
            Field::new("b", DataType::Int64, true),
            Field::new("co2", DataType::Float64, true),
        ]);
        let d = diff(&old, &new);
        assert_eq!(
            d.added,
            [ColumnType {
                column: "co2".into(),
                type_name: "double".into()
            }]
        );
        assert_eq!(
            d.removed,
            [ColumnType {
                column: "gone".into(),
                type_name: "boolean".into()
            }]
        );
        let widened: Vec<_> = d.widened.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(widened, ["a", "loc.alt"]);
        assert_eq!(
            d.changed,
            [TypeChange {
                column: "b".into(),
                from: "double".into(),
                to: "bigint".into()
            }]
        );
        assert!(diff(&new, &new).is_empty());
    }
}
