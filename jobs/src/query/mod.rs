//! SQL over the catalog's tables, as Athena runs it over the Glue catalog: `SELECT ...` names
//! tables of a catalog database, curated (Parquet) or landing (the raw objects, decoded with the
//! table's schema), and polars' SQL context runs it; sluice writes no SQL engine. Partition keys
//! are columns (`year`, `month`, `day`, ...), and the query's conditions on them decide which
//! partitions' files are read at all ([`prune`]); the result says how many were.

pub mod prune;

use std::io::Cursor;

use polars::prelude::*;
use serde::Serialize;

use crate::catalog::{Catalog, CatalogDbName, TableInfo, TableKind};
use crate::convert::decode::{Decoded, decode_object};
use crate::crawler::decompress::decompress_into;
use crate::lake::{Lake, LakeKey};
use crate::{Error, Result};

/// What one table of a query read.
#[derive(Debug, Clone, Serialize)]
pub struct TableRead {
    pub table: String,
    pub kind: String,
    pub files_total: usize,
    pub files_read: usize,
    pub partitions_total: usize,
    pub partitions_read: usize,
    /// The conditions that pruned its partitions.
    pub pruned_by: Vec<String>,
}

/// A query's result.
#[derive(Debug)]
pub struct QueryResult {
    pub frame: DataFrame,
    pub tables: Vec<TableRead>,
}

fn invalid(reason: impl std::fmt::Display) -> Error {
    Error::InvalidArgument {
        field: "sql",
        reason: reason.to_string(),
    }
}

/// One file or object to read, with its partition values.
#[derive(Debug, Clone)]
pub struct Part {
    pub key: String,
    pub values: Vec<String>,
    /// Rows and bytes, where the catalog knows them (curated files): a snapshot's identity.
    pub rows: i64,
    pub bytes: i64,
}

/// A table a query reads, with the files it reads once its partitions are pruned.
#[derive(Debug, Clone)]
pub struct Source {
    pub table: TableInfo,
    pub parts: Vec<Part>,
    pub read: TableRead,
}

/// What a query reads, fixed before anything is read: a transform's snapshot is exactly this.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sql: String,
    pub sources: Vec<Source>,
}

/// The tables of `db` that `sql` names, each with the files its partition conditions leave.
pub async fn plan(catalog: &Catalog, db: &CatalogDbName, sql: &str) -> Result<Plan> {
    let names = polars::sql::extract_table_identifiers(sql, false, true).map_err(invalid)?;
    if names.is_empty() {
        return Err(invalid("the query names no table"));
    }
    let conditions = prune::conditions(sql);
    let mut sources = Vec::with_capacity(names.len());
    for name in &names {
        let table = catalog.table(db, name).await?;
        let parts: Vec<Part> = match table.kind {
            TableKind::Curated => catalog
                .curated_files(table.id)
                .await?
                .into_iter()
                .map(|f| Part {
                    key: f.path,
                    values: f.partition_values,
                    rows: f.rows,
                    bytes: f.bytes,
                })
                .collect(),
            _ => catalog
                .table_objects(table.id)
                .await?
                .into_iter()
                .map(|(key, values)| Part {
                    key,
                    values,
                    rows: -1,
                    bytes: -1,
                })
                .collect(),
        };
        // A condition prunes this table where it names one of its partition keys, unqualified
        // or qualified with the table's own name.
        let keys: Vec<&str> = table
            .partition_keys
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let applying: Vec<(usize, &prune::Condition)> = conditions
            .iter()
            .filter(|c| c.table.as_deref().is_none_or(|t| t == name))
            .filter_map(|c| keys.iter().position(|k| *k == c.column).map(|i| (i, c)))
            .collect();
        let files_total = parts.len();
        let partitions_total = distinct(parts.iter().map(|p| &p.values));
        let parts: Vec<Part> = parts
            .into_iter()
            .filter(|p| {
                applying
                    .iter()
                    .all(|(i, c)| p.values.get(*i).is_none_or(|v| c.admits(v)))
            })
            .collect();
        let read = TableRead {
            table: name.clone(),
            kind: table.kind.as_str().to_owned(),
            files_total,
            files_read: parts.len(),
            partitions_total,
            partitions_read: distinct(parts.iter().map(|p| &p.values)),
            pruned_by: applying.iter().map(|(_, c)| c.to_string()).collect(),
        };
        sources.push(Source { table, parts, read });
    }
    Ok(Plan {
        sql: sql.to_owned(),
        sources,
    })
}

/// Runs a plan: reads its files and runs its SQL. Curated files are read from `curated`,
/// landing objects from `landing`.
pub async fn run(landing: &Lake, curated: &Lake, plan: Plan) -> Result<QueryResult> {
    let mut context = polars::sql::SQLContext::new();
    let mut tables = Vec::with_capacity(plan.sources.len());
    for source in plan.sources {
        let frame = read_table(landing, curated, &source.table, &source.parts).await?;
        context.register(&source.read.table, frame.lazy());
        tables.push(source.read);
    }
    let sql = plan.sql;
    let frame = tokio::task::spawn_blocking(move || {
        context
            .execute(&sql)
            .and_then(|plan| plan.collect())
            .map_err(invalid)
    })
    .await??;
    Ok(QueryResult { frame, tables })
}

/// Runs `sql` over the tables of `db` it names ([`plan`], then [`run`]).
pub async fn query(
    landing: &Lake,
    curated: &Lake,
    catalog: &Catalog,
    db: &CatalogDbName,
    sql: &str,
) -> Result<QueryResult> {
    run(landing, curated, plan(catalog, db, sql).await?).await
}

fn distinct<'a>(values: impl Iterator<Item = &'a Vec<String>>) -> usize {
    values.collect::<std::collections::BTreeSet<_>>().len()
}

/// A table's selected files as one frame in its current schema, partition keys as columns.
async fn read_table(
    landing: &Lake,
    curated: &Lake,
    table: &TableInfo,
    parts: &[Part],
) -> Result<DataFrame> {
    let mut frames = Vec::with_capacity(parts.len());
    for part in parts {
        let key = LakeKey::parse(&part.key)?;
        let (bytes, lake_kind) = match table.kind {
            TableKind::Curated => (curated.get(&key).await?, "curated file"),
            _ => (landing.get(&key).await?, "landing object"),
        };
        let schema = std::sync::Arc::new(table.schema.clone());
        let keys = table.partition_keys.clone();
        let values = part.values.clone();
        let path = part.key.clone();
        let curated_file = table.kind == TableKind::Curated;
        let frame = tokio::task::spawn_blocking(move || -> Result<DataFrame> {
            let unreadable = |e: &dyn std::fmt::Display| Error::InvalidArgument {
                field: "table",
                reason: format!("{lake_kind} {path}: {e}"),
            };
            let mut frame = if curated_file {
                ParquetReader::new(Cursor::new(bytes.to_vec()))
                    .finish()
                    .map_err(|e| unreadable(&e))?
            } else {
                landing_frame(&bytes, &path, &schema).map_err(|e| unreadable(&e))?
            };
            let height = frame.height();
            for (field, value) in keys.iter().zip(&values) {
                let column = match field.data_type() {
                    arrow::datatypes::DataType::Utf8 => {
                        Column::new(field.name().as_str().into(), vec![value.as_str(); height])
                    }
                    _ => Column::new(
                        field.name().as_str().into(),
                        vec![value.parse::<i32>().ok(); height],
                    ),
                };
                frame.with_column(column).map_err(|e| unreadable(&e))?;
            }
            Ok(frame)
        })
        .await??;
        frames.push(frame.lazy());
    }
    if frames.is_empty() {
        return empty_frame(table);
    }
    // Files of older schema versions: missing columns are nulls, changed types their supertype.
    let args = UnionArgs {
        to_supertypes: true,
        ..UnionArgs::default()
    };
    concat_lf_diagonal(frames, args)
        .and_then(|plan| plan.collect())
        .map_err(|e| Error::InvalidArgument {
            field: "table",
            reason: format!("{}: its files do not stack: {e}", table.name),
        })
}

/// A table without files as a frame with its columns and no rows, so that a query over it
/// answers with no rows rather than "column not found".
fn empty_frame(table: &TableInfo) -> Result<DataFrame> {
    let encode = |e: &dyn std::fmt::Display| Error::Encode {
        what: "parquet",
        reason: e.to_string(),
    };
    let mut fields: Vec<arrow::datatypes::Field> = table
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(table.partition_keys.iter().cloned());
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
    let mut buffer = Vec::new();
    let writer =
        parquet::arrow::ArrowWriter::try_new(&mut buffer, schema, None).map_err(|e| encode(&e))?;
    writer.close().map_err(|e| encode(&e))?;
    ParquetReader::new(Cursor::new(buffer))
        .finish()
        .map_err(|e| encode(&e))
}

/// A landing object's records with the table's schema (records that do not fit are left out,
/// as conversion quarantines them), as a frame: through an in-memory Parquet file, the one
/// format both Arrow implementations read.
fn landing_frame(
    bytes: &[u8],
    key: &str,
    schema: &arrow::datatypes::SchemaRef,
) -> std::result::Result<DataFrame, String> {
    let mut text = Vec::new();
    decompress_into(bytes, &mut text).map_err(|e| e.to_string())?;
    let Decoded {
        batches,
        schema: decoded_schema,
        ..
    } = decode_object(&text, key, schema, true)?;
    // Every batch is in the decoded schema: a record with a new field restarts the decoding.
    let mut buffer = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buffer, decoded_schema, None)
        .map_err(|e| e.to_string())?;
    for batch in &batches {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    writer.close().map_err(|e| e.to_string())?;
    ParquetReader::new(Cursor::new(buffer))
        .finish()
        .map_err(|e| e.to_string())
}

/// A result's columns: names and polars' type names.
pub fn columns(frame: &DataFrame) -> Vec<(String, String)> {
    frame
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.dtype().to_string()))
        .collect()
}

/// One value as JSON: numbers and booleans as themselves, times in RFC 3339, the rest as text.
fn json_value(value: AnyValue<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        AnyValue::Null => J::Null,
        AnyValue::Boolean(b) => J::Bool(b),
        AnyValue::Int8(n) => n.into(),
        AnyValue::Int16(n) => n.into(),
        AnyValue::Int32(n) => n.into(),
        AnyValue::Int64(n) => n.into(),
        AnyValue::UInt8(n) => n.into(),
        AnyValue::UInt16(n) => n.into(),
        AnyValue::UInt32(n) => n.into(),
        AnyValue::UInt64(n) => n.into(),
        AnyValue::Float32(f) => {
            serde_json::Number::from_f64(f64::from(f)).map_or(J::Null, J::Number)
        }
        AnyValue::Float64(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        AnyValue::String(s) => J::String(s.to_owned()),
        AnyValue::StringOwned(s) => J::String(s.to_string()),
        AnyValue::Datetime(v, unit, _) | AnyValue::DatetimeOwned(v, unit, _) => {
            let micros = match unit {
                TimeUnit::Nanoseconds => v / 1000,
                TimeUnit::Microseconds => v,
                TimeUnit::Milliseconds => v.saturating_mul(1000),
            };
            chrono::DateTime::from_timestamp_micros(micros).map_or(J::Null, |t| {
                J::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            })
        }
        other => J::String(other.to_string()),
    }
}

/// The first `limit` rows, each an object of column name to value.
pub fn rows_json(
    frame: &DataFrame,
    limit: usize,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    (0..frame.height().min(limit))
        .map(|row| {
            names
                .iter()
                .zip(frame.columns())
                .map(|(name, column)| {
                    let value = column.get(row).map_or(serde_json::Value::Null, json_value);
                    (name.clone(), value)
                })
                .collect()
        })
        .collect()
}

/// The first `limit` rows as text cells (nulls empty), for tables and CSV.
pub fn rows_text(frame: &DataFrame, limit: usize) -> Vec<Vec<String>> {
    rows_json(frame, limit)
        .into_iter()
        .map(|row| {
            row.into_values()
                .map(|value| match value {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// The whole result as CSV with a header.
pub fn to_csv(frame: &DataFrame) -> Result<String> {
    let encode = |e: &dyn std::fmt::Display| Error::Encode {
        what: "csv",
        reason: e.to_string(),
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(frame.get_column_names().iter().map(|n| n.as_str()))
        .map_err(|e| encode(&e))?;
    for row in rows_text(frame, usize::MAX) {
        writer.write_record(&row).map_err(|e| encode(&e))?;
    }
    let bytes = writer.into_inner().map_err(|e| encode(&e))?;
    String::from_utf8(bytes).map_err(|e| encode(&e))
}

/// The whole result as a zstd Parquet file.
pub fn to_parquet(frame: &DataFrame) -> Result<Vec<u8>> {
    let mut frame = frame.clone();
    let mut out = Vec::new();
    ParquetWriter::new(&mut out)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(&mut frame)
        .map_err(|e| Error::Encode {
            what: "parquet",
            reason: e.to_string(),
        })?;
    Ok(out)
}

/// A result shared between threads (the rows rendered while the file is written).
pub type DataFrameRef = std::sync::Arc<DataFrame>;
