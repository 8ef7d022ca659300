//! A transform's result as files: split by its partition columns (Hive folders, Hive's
//! escaping, nulls as `__HIVE_DEFAULT_PARTITION__`), each part encoded as zstd Parquet, and the
//! table's schema read back from what was written.

use arrow::datatypes::{DataType, Field, Schema};
use polars::prelude::*;

use crate::{Error, Result};

/// Rows per output file at most; a partition with more is written as several files.
const ROWS_PER_FILE: usize = 1_000_000;

/// A partition value that is null, as Hive writes it.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// One encoded output file.
pub(super) struct EncodedFile {
    /// `k=v/k=v` (empty when the table has no partition keys).
    pub(super) folder: String,
    pub(super) values: Vec<String>,
    pub(super) rows: usize,
    pub(super) bytes: Vec<u8>,
}

/// A result encoded as files, with the table's schema and partition keys.
pub(super) struct Encoded {
    pub(super) files: Vec<EncodedFile>,
    pub(super) schema: Schema,
    pub(super) partition_keys: Vec<Field>,
    pub(super) rows: usize,
}

fn invalid_partition(reason: impl std::fmt::Display) -> Error {
    Error::InvalidArgument {
        field: "partition_by",
        reason: reason.to_string(),
    }
}

/// The partition key a result column makes: integers that fit 32 bits as `int`, text, dates
/// and booleans as `string`; anything else is refused (a partition folder per float or instant
/// is never what was meant).
fn partition_key(column: &Column) -> Result<Field> {
    let name = column.name().as_str();
    match column.dtype() {
        dtype if dtype.is_integer() => {
            let fits = column
                .as_materialized_series()
                .cast(&polars::prelude::DataType::Int64)
                .ok()
                .and_then(|s| {
                    let values = s.i64().ok()?.clone();
                    let within = |v: Option<i64>| v.is_none_or(|v| i32::try_from(v).is_ok());
                    Some(within(values.min()) && within(values.max()))
                })
                .unwrap_or(false);
            if fits {
                Ok(Field::new(name, DataType::Int32, true))
            } else {
                Err(invalid_partition(format!(
                    "{name} has integers beyond 32 bits: one folder per value is not a partition"
                )))
            }
        }
        polars::prelude::DataType::String
        | polars::prelude::DataType::Date
        | polars::prelude::DataType::Boolean => Ok(Field::new(name, DataType::Utf8, true)),
        other => Err(invalid_partition(format!(
            "{name} is {other}: partition by integers, text, dates or booleans (cast it in the SELECT, e.g. CAST(ts AS DATE))"
        ))),
    }
}

/// A partition value as a folder name (Hive's escaping).
fn escape_folder(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() || "\"#%'*/:=?\\{[]^".contains(c) {
            for byte in c.to_string().bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn encode_error(reason: impl std::fmt::Display) -> Error {
    Error::Encode {
        what: "parquet",
        reason: reason.to_string(),
    }
}

/// A frame as one zstd Parquet file.
fn parquet_bytes(frame: &mut DataFrame) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ParquetWriter::new(&mut out)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::full())
        .finish(frame)
        .map_err(encode_error)?;
    Ok(out)
}

/// The Arrow schema a file has, read back from its footer by the Parquet reader sluice's other
/// readers use (Parquet's own types, not the writer's Arrow metadata).
fn file_schema(bytes: &[u8]) -> Result<Schema> {
    use parquet::file::reader::FileReader;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(bytes::Bytes::from(
        bytes.to_vec(),
    ))
    .map_err(encode_error)?;
    let metadata = reader.metadata().file_metadata();
    parquet::arrow::parquet_to_arrow_schema(metadata.schema_descr(), None).map_err(encode_error)
}

/// The rows of each combination of partition values, in order of first appearance (one group
/// of every row when there are no partition columns; none when the result is empty).
fn groups(frame: &DataFrame, partition_by: &[String]) -> Result<Vec<(Vec<String>, IdxCa)>> {
    let texts: Vec<StringChunked> = partition_by
        .iter()
        .map(|name| {
            let column = frame.column(name).map_err(encode_error)?;
            let text = column
                .as_materialized_series()
                .cast(&polars::prelude::DataType::String)
                .map_err(encode_error)?;
            Ok(text.str().map_err(encode_error)?.clone())
        })
        .collect::<Result<_>>()?;
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut rows: std::collections::HashMap<Vec<String>, Vec<IdxSize>> =
        std::collections::HashMap::new();
    for row in 0..frame.height() {
        let values: Vec<String> = texts
            .iter()
            .map(|t| {
                t.get(row)
                    .map_or_else(|| NULL_PARTITION.to_owned(), str::to_owned)
            })
            .collect();
        let entry = rows.entry(values.clone()).or_default();
        if entry.is_empty() {
            order.push(values);
        }
        entry.push(row as IdxSize);
    }
    Ok(order
        .into_iter()
        .map(|values| {
            let indices = rows.remove(&values).unwrap_or_default();
            (values, IdxCa::from_vec("rows".into(), indices))
        })
        .collect())
}

/// Splits a result by its partition columns and encodes each part.
pub(super) fn encode(frame: DataFrame, partition_by: &[String]) -> Result<Encoded> {
    let mut keys = Vec::with_capacity(partition_by.len());
    for (index, name) in partition_by.iter().enumerate() {
        if partition_by[..index].contains(name) {
            return Err(invalid_partition(format!("{name} is named twice")));
        }
        let column = frame.column(name).map_err(|_| {
            invalid_partition(format!(
                "{name} is not a column of the result (its columns: {})",
                frame
                    .get_column_names()
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        keys.push(partition_key(column)?);
    }
    if partition_by.len() == frame.width() && frame.width() > 0 {
        return Err(invalid_partition(
            "every column of the result is a partition key: no column would be left in the files",
        ));
    }
    let data_columns: Vec<PlSmallStr> = frame
        .get_column_names()
        .into_iter()
        .filter(|n| !partition_by.iter().any(|p| p == n.as_str()))
        .cloned()
        .collect();
    let mut empty = frame
        .select(data_columns.clone())
        .map_err(encode_error)?
        .head(Some(0));
    let schema = file_schema(&parquet_bytes(&mut empty)?)?;
    let rows = frame.height();
    let mut files = Vec::new();
    for (values, indices) in groups(&frame, partition_by)? {
        let folder = partition_by
            .iter()
            .zip(&values)
            .map(|(k, v)| format!("{k}={}", escape_folder(v)))
            .collect::<Vec<_>>()
            .join("/");
        let data = frame
            .select(data_columns.clone())
            .and_then(|f| f.take(&indices))
            .map_err(encode_error)?;
        let mut offset = 0;
        while offset < data.height() {
            let mut chunk = data.slice(offset as i64, ROWS_PER_FILE);
            offset += chunk.height();
            files.push(EncodedFile {
                folder: folder.clone(),
                values: values.clone(),
                rows: chunk.height(),
                bytes: parquet_bytes(&mut chunk)?,
            });
        }
    }
    Ok(Encoded {
        files,
        schema,
        partition_keys: keys,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_escape_what_hive_escapes() {
        assert_eq!(escape_folder("2024-05-01"), "2024-05-01");
        assert_eq!(escape_folder("a/b=c"), "a%2Fb%3Dc");
        assert_eq!(escape_folder("50%"), "50%25");
    }

    #[test]
    fn results_split_by_partition_columns() {
        let frame = df!(
            "day" => ["2024-05-02", "2024-05-01", "2024-05-02"],
            "device_id" => ["a", "b", "c"],
            "pm25" => [1.0, 2.0, 3.0],
        )
        .unwrap();
        let encoded = encode(frame, &["day".to_owned()]).unwrap();
        assert_eq!(encoded.rows, 3);
        assert_eq!(
            encoded.partition_keys,
            vec![Field::new("day", DataType::Utf8, true)]
        );
        let names: Vec<&str> = encoded
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["device_id", "pm25"]);
        let parts: Vec<(&str, usize)> = encoded
            .files
            .iter()
            .map(|f| (f.folder.as_str(), f.rows))
            .collect();
        assert_eq!(parts, [("day=2024-05-02", 2), ("day=2024-05-01", 1)]);
        assert_eq!(encoded.schema.field(1).data_type(), &DataType::Float64);
    }

    #[test]
    fn partition_columns_are_checked() {
        let frame = df!("ts" => [1.5, 2.5], "n" => [1i64, 2]).unwrap();
        let float = encode(frame.clone(), &["ts".to_owned()]).err().unwrap();
        assert!(float.to_string().contains("ts is f64"), "{float}");
        let missing = encode(frame.clone(), &["day".to_owned()]).err().unwrap();
        assert!(
            missing
                .to_string()
                .contains("not a column of the result (its columns: ts, n)"),
            "{missing}"
        );
        let twice = encode(frame.clone(), &["n".to_owned(), "n".to_owned()])
            .err()
            .unwrap();
        assert!(twice.to_string().contains("named twice"), "{twice}");
        let wide = df!("n" => [1i64, 5_000_000_000], "v" => [1.0, 2.0]).unwrap();
        let wide = encode(wide, &["n".to_owned()]).err().unwrap();
        assert!(wide.to_string().contains("beyond 32 bits"), "{wide}");
        let null = df!("k" => [Some(1i64), None], "v" => [1.0, 2.0]).unwrap();
        let null = encode(null, &["k".to_owned()]).unwrap();
        let values: Vec<&str> = null.files.iter().map(|f| f.values[0].as_str()).collect();
        assert_eq!(values, ["1", NULL_PARTITION]);
    }
}
