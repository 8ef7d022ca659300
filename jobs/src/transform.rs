//! Derived tables from SQL, Glue Studio's "SQL transform": a `SELECT` over curated tables
//! written as a curated table of its own (zstd Parquet, Hive-partitioned by the columns asked
//! for), registered in the catalog with a schema version, and read like any curated table.
//!
//! A run is built exactly once per input. Its input id hashes the SQL, the partitioning and
//! every file the query reads (path, rows, bytes: [`query::plan`] fixes them before anything is
//! read); a run whose input is the one the table was last built from does nothing. A run
//! replaces every file of the table in one commit, through conversion's manifest: staged first,
//! committed with the table's new version, then moved into place, so a reader sees the old rows
//! or the new ones, never a mix; a run stopped after its commit is finished by the next one (or
//! by vacuum), one stopped before leaves only staging objects that vacuum deletes. Two runs
//! racing from the same state cannot both commit ([`Catalog::commit_transform`]).
//!
//! The result is computed in memory (polars' SQL context): a transform is for aggregates and
//! selections, not for copying a table.

use std::collections::BTreeSet;
use std::time::Instant;

use arrow::datatypes::{DataType, Field, Schema};
use polars::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::conversion::{CuratedTableWrite, FileWrite};
use crate::catalog::schema::diff;
use crate::catalog::transform::TransformCommit;
use crate::catalog::{Catalog, CatalogDbName, TableKind, TableName};
use crate::convert::FailPoint;
use crate::convert::publish::{after_commit, publish};
use crate::lake::{Lake, LakeKey};
use crate::query::{self, Plan};
use crate::{Error, Result};

/// Rows per output file at most; a partition with more is written as several files.
const ROWS_PER_FILE: usize = 1_000_000;

/// A partition value that is null, as Hive writes it.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// What to build.
#[derive(Debug, Clone)]
pub struct TransformOptions {
    pub catalog_db: CatalogDbName,
    /// The derived table: new, or one an earlier transform made.
    pub target: TableName,
    pub sql: String,
    /// Curated prefix: files go under `<dest>/<target>/`.
    pub dest: LakeKey,
    /// Result columns that become Hive partition folders, in order (integers, text, dates or
    /// booleans).
    pub partition_by: Vec<String>,
    /// Build even when the input is unchanged.
    pub force: bool,
    #[cfg(feature = "fail-points")]
    pub fail_at: Option<FailPoint>,
}

impl TransformOptions {
    pub fn new(catalog_db: CatalogDbName, target: TableName, sql: impl Into<String>) -> Self {
        Self {
            catalog_db,
            target,
            sql: sql.into(),
            dest: LakeKey::parse("curated").expect("valid key"),
            partition_by: Vec::new(),
            force: false,
            #[cfg(feature = "fail-points")]
            fail_at: None,
        }
    }

    fn stops_at(&self, point: FailPoint) -> bool {
        #[cfg(feature = "fail-points")]
        return self.fail_at == Some(point);
        #[cfg(not(feature = "fail-points"))]
        {
            let _ = point;
            false
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransformStatus {
    /// The table was (re)built from this input.
    Built,
    /// The table was already built from this input: nothing was written.
    Unchanged,
}

/// What one source table gave a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TransformSource {
    pub table: String,
    pub files_read: usize,
    pub files_total: usize,
    pub rows_read: i64,
    pub pruned_by: Vec<String>,
}

/// A transform run's report (the Task output's core).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransformReport {
    pub table: String,
    pub status: TransformStatus,
    /// `tf-` and 16 hex digits: what the table is built from.
    pub input_id: String,
    /// The run that built the table's current files (this run when `built`).
    pub run_id: i64,
    pub location: String,
    pub sources: Vec<TransformSource>,
    pub rows: i64,
    pub files: usize,
    pub bytes: i64,
    pub partitions: usize,
    pub schema_version: i64,
    /// Columns added, removed or retyped by this run's schema version (empty when unchanged).
    pub schema_changed: bool,
    pub duration_ms: u64,
}

/// Builds (or confirms) a derived table; see the module doc.
pub async fn transform(
    curated_lake: &Lake,
    catalog: &Catalog,
    options: &TransformOptions,
) -> Result<TransformReport> {
    let started = Instant::now();
    let target = options.target.as_str();
    let location = options.dest.join(target)?;
    let existing = match catalog.table(&options.catalog_db, target).await {
        Ok(table) => Some(table),
        Err(Error::TableNotFound { .. }) => None,
        Err(err) => return Err(err),
    };
    if let Some(table) = &existing
        && (table.kind != TableKind::Curated || table.properties["derived"] != true)
    {
        return Err(Error::InvalidArgument {
            field: "table",
            reason: format!(
                "{target} is a {} table that a transform did not make; a transform writes only its own tables",
                kind_word(table.kind)
            ),
        });
    }
    for other in catalog.tables(&options.catalog_db).await? {
        let overlaps = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        if other.name != target
            && (overlaps(&other.location, location.as_str())
                || overlaps(location.as_str(), &other.location))
        {
            return Err(Error::InvalidArgument {
                field: "table",
                reason: format!(
                    "{target} would be written under {location}, where table {} lives ({}); choose another name or dest",
                    other.name, other.location
                ),
            });
        }
    }
    let plan = query::plan(catalog, &options.catalog_db, &options.sql).await?;
    for source in &plan.sources {
        if source.table.name == target {
            return Err(Error::InvalidArgument {
                field: "sql",
                reason: format!("the query reads {target}, the table it writes"),
            });
        }
        if source.table.kind != TableKind::Curated {
            return Err(Error::InvalidArgument {
                field: "sql",
                reason: format!(
                    "{} is a {} table: a transform reads curated tables (convert it first; `sluice query` reads landing tables)",
                    source.table.name,
                    kind_word(source.table.kind)
                ),
            });
        }
    }
    let input_id = input_id(&plan, &options.partition_by);
    let sources: Vec<TransformSource> = plan
        .sources
        .iter()
        .map(|s| TransformSource {
            table: s.table.name.clone(),
            files_read: s.read.files_read,
            files_total: s.read.files_total,
            rows_read: s.parts.iter().map(|p| p.rows).sum(),
            pruned_by: s.read.pruned_by.clone(),
        })
        .collect();
    let last = catalog.last_transform(&options.catalog_db, target).await?;
    if let (Some(last), Some(table)) = (&last, &existing)
        && last.input_id == input_id
        && !options.force
    {
        // Built already; finish its publish if it stopped after its commit.
        publish(
            curated_lake,
            catalog,
            &catalog.unpublished_files(Some(table.id)).await?,
            None,
        )
        .await?;
        let files = catalog.curated_files(table.id).await?;
        return Ok(TransformReport {
            table: target.to_owned(),
            status: TransformStatus::Unchanged,
            input_id,
            run_id: last.run_id,
            location: table.location.clone(),
            sources,
            rows: files.iter().map(|f| f.rows).sum(),
            files: files.len(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            partitions: distinct_partitions(files.iter().map(|f| &f.partition_values)),
            schema_version: table.current_version,
            schema_changed: false,
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }

    // The run's record comes first, so that vacuum finds what a stopped run staged.
    let run_table = plan.sources[0].table.id;
    let run_id = catalog
        .begin_conversion(run_table, location.as_str())
        .await?;
    let outcome = build(
        curated_lake,
        catalog,
        options,
        plan,
        Built {
            run_id,
            location: &location,
            input_id: &input_id,
            previous_run: last.map_or(0, |l| l.run_id),
            existing: existing.as_ref(),
            sources,
            started,
        },
    )
    .await;
    catalog.settle_run(run_id, started, outcome).await
}

/// What [`build`] needs besides the plan.
struct Built<'a> {
    run_id: i64,
    location: &'a LakeKey,
    input_id: &'a str,
    previous_run: i64,
    existing: Option<&'a crate::catalog::TableInfo>,
    sources: Vec<TransformSource>,
    started: Instant,
}

async fn build(
    curated_lake: &Lake,
    catalog: &Catalog,
    options: &TransformOptions,
    plan: Plan,
    run: Built<'_>,
) -> Result<TransformReport> {
    let target = options.target.as_str();
    let sql = plan.sql.clone();
    let result = query::run(curated_lake, curated_lake, plan).await?;
    let partition_by = options.partition_by.clone();
    let frame = result.frame;
    let encoded = tokio::task::spawn_blocking(move || encode(frame, &partition_by)).await??;

    let staging = run.location.join(&format!("_staging/run={}", run.run_id))?;
    let mut files = Vec::with_capacity(encoded.files.len());
    for (index, file) in encoded.files.into_iter().enumerate() {
        let name = format!("part-{:05}-run{}.parquet", index, run.run_id);
        let (partition_location, staging_path) = if file.folder.is_empty() {
            (run.location.to_string(), staging.join(&name)?)
        } else {
            (
                format!("{}/{}", run.location, file.folder),
                staging.join(&format!("{}/{name}", file.folder))?,
            )
        };
        let bytes = file.bytes.len() as i64;
        curated_lake
            .put(&staging_path, bytes::Bytes::from(file.bytes))
            .await?;
        files.push(FileWrite {
            path: format!("{partition_location}/{name}"),
            staging_path: staging_path.to_string(),
            partition_location,
            partition_values: file.values,
            rows: file.rows as i64,
            bytes,
            schema_version: 0,
            sources: Vec::new(),
        });
    }

    // A new schema version when the result's columns differ from the table's.
    let (version, new_versions, schema_changed) = match run.existing {
        Some(table)
            if table.schema.fields() == encoded.schema.fields()
                && table.partition_keys == encoded.partition_keys =>
        {
            (table.current_version, Vec::new(), false)
        }
        Some(table) => {
            let version = table.current_version + 1;
            let change = diff(&table.schema, &encoded.schema);
            (
                version,
                vec![(version, encoded.schema.clone(), change)],
                true,
            )
        }
        None => (
            1,
            vec![(
                1,
                encoded.schema.clone(),
                diff(&Schema::empty(), &encoded.schema),
            )],
            true,
        ),
    };
    for file in &mut files {
        file.schema_version = version;
    }
    if options.stops_at(FailPoint::BeforeCommit) {
        return Err(FailPoint::BeforeCommit.stopped());
    }
    let mut report = TransformReport {
        table: target.to_owned(),
        status: TransformStatus::Built,
        input_id: run.input_id.to_owned(),
        run_id: run.run_id,
        location: run.location.to_string(),
        sources: run.sources,
        rows: encoded.rows as i64,
        files: files.len(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        partitions: distinct_partitions(files.iter().map(|f| &f.partition_values)),
        schema_version: version,
        schema_changed,
        duration_ms: run.started.elapsed().as_millis() as u64,
    };
    let commit = TransformCommit {
        run_id: run.run_id,
        catalog_db: options.catalog_db.clone(),
        curated: CuratedTableWrite {
            existing_id: run.existing.map(|t| t.id),
            name: target.to_owned(),
            location: run.location.to_string(),
            partition_keys: encoded.partition_keys,
            new_versions,
        },
        files,
        input_id: run.input_id.to_owned(),
        sql,
        sources: serde_json::to_value(&report.sources).expect("serializes"),
        previous_run: run.previous_run,
        rows: report.rows,
        duration_ms: report.duration_ms as i64,
        report: serde_json::to_value(&report).expect("serializes"),
    };
    let table_id = catalog.commit_transform(&commit).await?;
    after_commit(curated_lake, catalog, table_id, |p| options.stops_at(p)).await?;
    report.duration_ms = run.started.elapsed().as_millis() as u64;
    Ok(report)
}

/// A table's kind as a person names it.
fn kind_word(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Curated => "curated",
        _ => "landing",
    }
}

/// `tf-` and 16 hex digits of SHA-256 over the SQL, the partitioning and every file read.
pub fn input_id(plan: &Plan, partition_by: &[String]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(plan.sql.as_bytes());
    hasher.update(format!("\npartition_by={partition_by:?}").as_bytes());
    for source in &plan.sources {
        hasher.update(format!("\ntable {}", source.table.name).as_bytes());
        for part in &source.parts {
            hasher.update(format!("\n{}:{}:{}", part.key, part.rows, part.bytes).as_bytes());
        }
    }
    crate::dataset::load::short_id("tf-", hasher)
}

fn distinct_partitions<'a>(values: impl Iterator<Item = &'a Vec<String>>) -> usize {
    values.collect::<BTreeSet<_>>().len()
}

/// One encoded output file.
struct EncodedFile {
    /// `k=v/k=v` (empty when the table has no partition keys).
    folder: String,
    values: Vec<String>,
    rows: usize,
    bytes: Vec<u8>,
}

/// A result encoded as files, with the table's schema and partition keys.
struct Encoded {
    files: Vec<EncodedFile>,
    schema: Schema,
    partition_keys: Vec<Field>,
    rows: usize,
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
fn encode(frame: DataFrame, partition_by: &[String]) -> Result<Encoded> {
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
