//! Optional per-table mapping, as Glue's ApplyMapping and Relationalize: rename, cast and drop
//! columns, and flatten nested structs into `parent_child` columns. Without a mapping, structs
//! stay Parquet structs. A value that cannot be cast sends its record to quarantine.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StructArray};
use arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A table's mapping, stored in its catalog properties (`mapping`) as this JSON document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Flatten nested structs into `parent_child` columns (applied first: later steps name the
    /// flattened columns).
    #[serde(default)]
    pub flatten: bool,
    /// Columns to leave out.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Column → type (`string`, `bigint`, `int`, `double`, `float`, `boolean`, `timestamp`).
    #[serde(default)]
    pub cast: BTreeMap<String, String>,
    /// Column → new name (applied last).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
}

/// Rows of a batch that survived the mapping, and the ones that could not be cast.
pub struct Mapped {
    pub batch: RecordBatch,
    /// (row index in the input batch, reason)
    pub rejected: Vec<(usize, String)>,
}

fn parse_type(name: &str) -> Result<DataType> {
    Ok(match name {
        "string" => DataType::Utf8,
        "bigint" => DataType::Int64,
        "int" => DataType::Int32,
        "double" => DataType::Float64,
        "float" => DataType::Float32,
        "boolean" => DataType::Boolean,
        "timestamp" => DataType::Timestamp(
            TimeUnit::Microsecond,
            Some(crate::crawler::infer::UTC.into()),
        ),
        other => {
            return Err(Error::InvalidArgument {
                field: "mapping cast",
                reason: format!(
                    "unknown type {other:?}: string, bigint, int, double, float, boolean or timestamp"
                ),
            });
        }
    })
}

fn flatten_into(
    prefix: &str,
    field: &Field,
    column: &ArrayRef,
    fields: &mut Vec<Field>,
    columns: &mut Vec<ArrayRef>,
) {
    let name = if prefix.is_empty() {
        field.name().clone()
    } else {
        format!("{prefix}_{}", field.name())
    };
    match (
        field.data_type(),
        column.as_any().downcast_ref::<StructArray>(),
    ) {
        (DataType::Struct(children), Some(array)) => {
            for (child, child_column) in children.iter().zip(array.columns()) {
                // A null struct makes its children null.
                let child_column = match array.nulls() {
                    Some(nulls) if nulls.null_count() > 0 => {
                        let keep = BooleanArray::from(nulls.iter().collect::<Vec<bool>>());
                        arrow::compute::nullif(
                            child_column,
                            &arrow::compute::not(&keep).expect("boolean"),
                        )
                        .expect("same length")
                    }
                    _ => child_column.clone(),
                };
                flatten_into(&name, child, &child_column, fields, columns);
            }
        }
        _ => {
            fields.push(field.as_ref().clone().with_name(name));
            columns.push(column.clone());
        }
    }
}

impl Mapping {
    /// Checks the mapping against a table's schema: every column it names exists.
    pub fn validate(&self, schema: &Schema) -> Result<()> {
        let empty = RecordBatch::new_empty(Arc::new(schema.clone()));
        let flattened = if self.flatten {
            self.flattened(&empty).schema()
        } else {
            empty.schema()
        };
        for column in self
            .drop
            .iter()
            .chain(self.cast.keys())
            .chain(self.rename.keys())
        {
            if flattened.column_with_name(column).is_none() {
                return Err(Error::InvalidArgument {
                    field: "mapping",
                    reason: format!("no column {column:?} in the table"),
                });
            }
        }
        for name in self.cast.values() {
            parse_type(name)?;
        }
        Ok(())
    }

    fn flattened(&self, batch: &RecordBatch) -> RecordBatch {
        let (mut fields, mut columns) = (Vec::new(), Vec::new());
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            flatten_into("", field, column, &mut fields, &mut columns);
        }
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
        .expect("flattened columns keep their lengths")
    }

    /// The output schema for a table schema.
    pub fn schema(&self, schema: &SchemaRef) -> Result<SchemaRef> {
        Ok(self
            .apply(&RecordBatch::new_empty(schema.clone()))?
            .batch
            .schema())
    }

    /// Applies the mapping to a batch.
    pub fn apply(&self, batch: &RecordBatch) -> Result<Mapped> {
        let batch = if self.flatten {
            self.flattened(batch)
        } else {
            batch.clone()
        };
        let schema = batch.schema();
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        let mut bad = vec![false; batch.num_rows()];
        let mut rejected = Vec::new();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            if self.drop.iter().any(|d| d == field.name()) {
                continue;
            }
            let (field, column) = match self.cast.get(field.name()) {
                Some(type_name) => {
                    let target = parse_type(type_name)?;
                    let cast = cast_with_options(
                        column,
                        &target,
                        &CastOptions {
                            safe: true,
                            ..Default::default()
                        },
                    )
                    .map_err(|e| Error::InvalidArgument {
                        field: "mapping cast",
                        reason: format!("{}: {e}", field.name()),
                    })?;
                    for (row, seen) in bad.iter_mut().enumerate().take(column.len()) {
                        if column.is_valid(row) && cast.is_null(row) && !*seen {
                            *seen = true;
                            let value = arrow::util::display::array_value_to_string(column, row)
                                .unwrap_or_default();
                            rejected.push((
                                row,
                                format!(
                                    "cannot cast column {} value {value:?} to {type_name}",
                                    field.name()
                                ),
                            ));
                        }
                    }
                    (field.as_ref().clone().with_data_type(target), cast)
                }
                None => (field.as_ref().clone(), column.clone()),
            };
            let name = self
                .rename
                .get(field.name())
                .cloned()
                .unwrap_or_else(|| field.name().clone());
            fields.push(field.with_name(name));
            columns.push(column);
        }
        let mapped = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
        .map_err(|e| Error::InvalidArgument {
            field: "mapping",
            reason: e.to_string(),
        })?;
        let mapped = if rejected.is_empty() {
            mapped
        } else {
            let keep = BooleanArray::from(bad.iter().map(|b| !b).collect::<Vec<bool>>());
            filter_record_batch(&mapped, &keep).expect("same length")
        };
        rejected.sort();
        Ok(Mapped {
            batch: mapped,
            rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::Fields;

    fn batch() -> RecordBatch {
        let location = StructArray::from(vec![
            (
                Arc::new(Field::new("lat", DataType::Float64, true)),
                Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("site", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
        ]);
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new(
                "location",
                DataType::Struct(Fields::from(vec![
                    Field::new("lat", DataType::Float64, true),
                    Field::new("site", DataType::Utf8, true),
                ])),
                true,
            ),
            Field::new("firmware", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["7", "x"])),
                Arc::new(location),
                Arc::new(StringArray::from(vec!["1.0", "2.0"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn flatten_drop_cast_and_rename() {
        let mapping: Mapping = serde_json::from_str(
            r#"{"flatten": true, "drop": ["firmware"], "cast": {"id": "bigint"}, "rename": {"location_lat": "lat"}}"#,
        ).unwrap();
        mapping.validate(&batch().schema()).unwrap();
        let mapped = mapping.apply(&batch()).unwrap();
        let names: Vec<_> = mapped
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect();
        assert_eq!(names, ["id:Int64", "lat:Float64", "location_site:Utf8"]);
        assert_eq!(
            mapped.batch.num_rows(),
            1,
            "the row whose id is not a number is rejected"
        );
        assert_eq!(
            mapped.rejected,
            [(1, "cannot cast column id value \"x\" to bigint".to_owned())]
        );
        let bad: Result<Mapping, _> = serde_json::from_str(r#"{"renam": {}}"#);
        assert!(bad.is_err());
        let unknown = Mapping {
            drop: vec!["nope".into()],
            ..Mapping::default()
        };
        assert!(unknown.validate(&batch().schema()).is_err());
    }
}
