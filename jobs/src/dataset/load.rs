//! Reading a curated table for the dataset builder: its published Parquet files, the columns a
//! spec names (missing ones, from files written before a schema change, as nulls), the
//! timestamp as epoch milliseconds, and the snapshot id of exactly what was read.
//!
//! Files of older schema versions read beside newer ones: every column is cast to what the
//! dataset needs (series ids and categories as text, target and features as doubles), so a
//! column whose type a person changed (double to string, say) never breaks the stack of files;
//! a value that cannot be cast (`"high"` as a double) is read as missing and counted.

use std::io::Cursor;

use polars::prelude::*;
use sha2::{Digest, Sha256};

use super::DatasetSpec;
use crate::catalog::conversion::CuratedFile;
use crate::catalog::{Catalog, CatalogDbName, TableKind};
use crate::lake::{Lake, LakeKey};
use crate::{Error, Result};

/// `ds-` and 16 hex digits of SHA-256 over the spec and every file read (path, rows, bytes).
pub fn snapshot_id(spec: &DatasetSpec, files: &[CuratedFile]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(spec).unwrap_or_default());
    for file in files {
        hasher.update(format!("\n{}:{}:{}", file.path, file.rows, file.bytes).as_bytes());
    }
    short_id("ds-", hasher)
}

/// `prefix` and the first 16 hex digits of a digest: the ids of dataset snapshots (`ds-`) and
/// transform inputs (`tf-`).
pub(crate) fn short_id(prefix: &str, hasher: Sha256) -> String {
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

fn invalid(path: &str, reason: impl std::fmt::Display) -> Error {
    Error::InvalidArgument {
        field: "curated file",
        reason: format!("{path}: {reason}"),
    }
}

/// What a table read gives: the frame, its snapshot id, and per column the values that could
/// not be cast to the type the dataset needs (read as missing).
#[derive(Debug)]
pub struct Loaded {
    pub frame: DataFrame,
    pub snapshot_id: String,
    pub uncastable: std::collections::BTreeMap<String, u64>,
}

/// The type the dataset reads a (non-timestamp) column as.
fn wanted(spec: &DatasetSpec, name: &str) -> DataType {
    if spec.item_columns.iter().any(|c| c == name)
        || spec.categorical_features.iter().any(|c| c == name)
    {
        DataType::String
    } else {
        DataType::Float64
    }
}

/// One file's spec columns, the timestamp as epoch milliseconds, the others as [`wanted`];
/// `uncastable` counts the values a cast turned into nulls.
fn read_file(
    bytes: bytes::Bytes,
    path: &str,
    spec: &DatasetSpec,
    uncastable: &mut std::collections::BTreeMap<String, u64>,
) -> Result<DataFrame> {
    let frame = ParquetReader::new(Cursor::new(bytes.to_vec()))
        .finish()
        .map_err(|e| invalid(path, e))?;
    let height = frame.height();
    let mut columns = Vec::new();
    for name in spec.columns() {
        let column = match frame.column(&name) {
            Ok(column) if name == spec.timestamp => match column.dtype() {
                DataType::Datetime(unit, _) => {
                    let raw = column
                        .cast(&DataType::Int64)
                        .map_err(|e| invalid(path, e))?;
                    let divisor = match unit {
                        TimeUnit::Nanoseconds => 1_000_000,
                        TimeUnit::Microseconds => 1_000,
                        TimeUnit::Milliseconds => 1,
                    };
                    (raw.as_materialized_series() / divisor).into_column()
                }
                DataType::Int64 => column.clone(),
                other => {
                    return Err(invalid(
                        path,
                        format!("timestamp column {name:?} is {other}, not a timestamp"),
                    ));
                }
            },
            Ok(column) => {
                let dtype = wanted(spec, &name);
                if column.dtype() == &dtype {
                    column.clone()
                } else {
                    let cast = column.cast(&dtype).map_err(|e| invalid(path, e))?;
                    let lost = cast.null_count().saturating_sub(column.null_count());
                    if lost > 0 {
                        *uncastable.entry(name.clone()).or_default() += lost as u64;
                    }
                    cast
                }
            }
            Err(_) if name == spec.timestamp || spec.item_columns.contains(&name) => {
                return Err(invalid(path, format!("has no column {name:?}")));
            }
            Err(_) => Column::full_null(name.as_str().into(), height, &wanted(spec, &name)),
        };
        columns.push(column.with_name(name.as_str().into()));
    }
    DataFrame::new(height, columns).map_err(|e| invalid(path, e))
}

/// Reads the curated table `table` (or `<table>_curated`) as the spec needs it.
pub async fn load(
    lake: &Lake,
    catalog: &Catalog,
    db: &CatalogDbName,
    table: &str,
    spec: &DatasetSpec,
) -> Result<Loaded> {
    let named = catalog.table(db, table).await?;
    let curated = if named.kind == TableKind::Curated {
        named
    } else {
        catalog
            .table(db, &format!("{}_curated", named.name))
            .await?
    };
    let files = catalog.curated_files(curated.id).await?;
    if files.is_empty() {
        return Err(Error::InvalidArgument {
            field: "table",
            reason: format!(
                "{} has no converted data yet (run `sluice convert {table}`)",
                curated.name
            ),
        });
    }
    let mut frame: Option<DataFrame> = None;
    let mut uncastable = std::collections::BTreeMap::new();
    for file in &files {
        let bytes = lake.get(&LakeKey::parse(&file.path)?).await?;
        let (path, spec_copy) = (file.path.clone(), spec.clone());
        let (part, lost) = tokio::task::spawn_blocking(move || {
            let mut lost = std::collections::BTreeMap::new();
            read_file(bytes, &path, &spec_copy, &mut lost).map(|frame| (frame, lost))
        })
        .await??;
        for (column, count) in lost {
            tracing::warn!(file = %file.path, column = %column, values = count, "values that cannot be cast are read as missing");
            *uncastable.entry(column).or_default() += count;
        }
        match frame.as_mut() {
            None => frame = Some(part),
            Some(all) => {
                all.vstack_mut(&part).map_err(|e| invalid(&file.path, e))?;
            }
        }
    }
    Ok(Loaded {
        frame: frame.expect("at least one file"),
        snapshot_id: snapshot_id(spec, &files),
        uncastable,
    })
}
