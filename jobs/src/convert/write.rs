//! Output files: one open Parquet writer per partition, spooled to a local temporary directory
//! (bounded memory whatever the lake), rolled at the target size or when the schema grows, and
//! uploaded into the run's staging prefix when finished.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Fields, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::partition::PartitionKey;

/// File-shape settings.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// A file is finished once it reaches about this many bytes.
    pub target_file_bytes: u64,
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            target_file_bytes: 128 << 20,
            row_group_rows: 128 * 1024,
            zstd_level: 1,
        }
    }
}

/// A finished file, in the spool, waiting for upload.
#[derive(Debug)]
pub struct SpooledFile {
    pub partition: PartitionKey,
    pub local: PathBuf,
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    pub schema_version: i64,
    /// Rows per source object.
    pub sources: BTreeMap<String, u64>,
}

struct OpenFile {
    writer: ArrowWriter<File>,
    local: PathBuf,
    name: String,
    schema: SchemaRef,
    schema_version: i64,
    rows: u64,
    sources: BTreeMap<String, u64>,
}

/// The leaf columns with their paths as Parquet names them (`location.site`,
/// `tags.list.element`).
fn leaves<'a>(
    fields: &'a Fields,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, &'a DataType)>,
) {
    for field in fields {
        prefix.push(field.name().clone());
        match field.data_type() {
            DataType::Struct(children) => leaves(children, prefix, out),
            DataType::List(item) | DataType::LargeList(item) => {
                prefix.push("list".to_owned());
                prefix.push("element".to_owned());
                match item.data_type() {
                    DataType::Struct(children) => leaves(children, prefix, out),
                    other => out.push((prefix.clone(), other)),
                }
                prefix.pop();
                prefix.pop();
            }
            other => out.push((prefix.clone(), other)),
        }
        prefix.pop();
    }
}

/// A column's dictionary stops growing here and the rest of its row group takes the fallback
/// encoding: a column of distinct values pays for a small dictionary only.
const DICTIONARY_PAGE_BYTES: usize = 256 << 10;

/// Rows sampled to choose a column's encoding.
const ENCODING_SAMPLE_ROWS: usize = 4096;

/// The array of a leaf column (through structs; `None` inside lists, which keep the defaults).
fn leaf_array(batch: &RecordBatch, path: &[String]) -> Option<arrow::array::ArrayRef> {
    let (first, rest) = path.split_first()?;
    let mut array = batch.column_by_name(first)?.clone();
    for name in rest {
        let children = array.as_any().downcast_ref::<arrow::array::StructArray>()?;
        array = children.column_by_name(name)?.clone();
    }
    Some(array)
}

/// The share of distinct values among the first non-null values of a column (1.0 when there
/// are none to judge by).
fn distinct_share(array: &dyn arrow::array::Array) -> f64 {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    let mut seen = std::collections::HashSet::new();
    let mut values = 0_usize;
    let mut count = |bits: u64| {
        values += 1;
        seen.insert(bits);
    };
    let rows = array.len().min(ENCODING_SAMPLE_ROWS);
    match array.data_type() {
        DataType::Float64 => {
            let floats = array.as_primitive::<Float64Type>();
            (0..rows)
                .filter(|&i| floats.is_valid(i))
                .for_each(|i| count(floats.value(i).to_bits()));
        }
        DataType::Int64 => {
            let ints = array.as_primitive::<Int64Type>();
            (0..rows)
                .filter(|&i| ints.is_valid(i))
                .for_each(|i| count(ints.value(i) as u64));
        }
        _ => return 1.0,
    }
    if values < 64 {
        return 1.0;
    }
    seen.len() as f64 / values as f64
}

/// Whether a column is dictionary-encoded and its (fallback) encoding, from its type and its
/// first values: text always tries a dictionary; numbers that repeat (a sensor's rounded
/// readings, a status code) get one, with the dense encoding as fallback; numbers that do not
/// (sequence numbers, times, fine measurements) go straight to the dense encoding: deltas for
/// integers and times (a few bits each when they climb), byte-stream split for doubles (their
/// exponent and high bytes line up, which zstd then compresses).
fn column_encoding(
    data_type: &DataType,
    sample: Option<&arrow::array::ArrayRef>,
) -> (bool, Option<Encoding>) {
    let repeats = || sample.is_some_and(|a| distinct_share(a.as_ref()) <= 0.5);
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => (true, None),
        DataType::Int64 => (repeats(), Some(Encoding::DELTA_BINARY_PACKED)),
        DataType::Timestamp(..) => (false, Some(Encoding::DELTA_BINARY_PACKED)),
        DataType::Float64 => (
            sample.is_some_and(|a| distinct_share(a.as_ref()) <= 0.9),
            Some(Encoding::BYTE_STREAM_SPLIT),
        ),
        _ => (false, None),
    }
}

/// The open writers of a run.
pub struct Writers {
    spool: tempfile::TempDir,
    options: FileOptions,
    open: HashMap<PartitionKey, OpenFile>,
}

impl Writers {
    pub fn new(options: FileOptions) -> std::io::Result<Self> {
        Ok(Self {
            spool: tempfile::Builder::new().prefix("sluice-spool-").tempdir()?,
            options,
            open: HashMap::new(),
        })
    }

    /// Zstd, page statistics, the schema version, and each column's encoding chosen from the
    /// file's first rows ([`column_encoding`]).
    fn properties(&self, batch: &RecordBatch, schema_version: i64) -> WriterProperties {
        let mut builder = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES);
        let schema = batch.schema();
        let mut columns = Vec::new();
        leaves(schema.fields(), &mut Vec::new(), &mut columns);
        for (path, data_type) in columns {
            let sample = leaf_array(batch, &path);
            let (dictionary, encoding) = column_encoding(data_type, sample.as_ref());
            let path = ColumnPath::new(path);
            if dictionary {
                builder = builder.set_column_dictionary_enabled(path.clone(), true);
            }
            if let Some(encoding) = encoding {
                builder = builder.set_column_encoding(path, encoding);
            }
        }
        builder
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(self.options.zstd_level).unwrap_or_default(),
            ))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(self.options.row_group_rows))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "sluice.schema_version".to_owned(),
                schema_version.to_string(),
            )]))
            .build()
    }

    /// Appends rows of one source to a partition; returns files that became finished.
    pub fn write(
        &mut self,
        partition: PartitionKey,
        batch: &RecordBatch,
        schema_version: i64,
        source: &str,
    ) -> Result<Vec<SpooledFile>, parquet::errors::ParquetError> {
        let mut finished = Vec::new();
        let stale = self
            .open
            .get(&partition)
            .is_some_and(|f| f.schema != batch.schema());
        if stale {
            finished.push(self.finish(partition)?);
        }
        if !self.open.contains_key(&partition) {
            let name = format!("part-{}.parquet", uuid::Uuid::new_v4());
            let local = self.spool.path().join(&name);
            let writer = ArrowWriter::try_new(
                File::create(&local)?,
                batch.schema(),
                Some(self.properties(batch, schema_version)),
            )?;
            self.open.insert(
                partition,
                OpenFile {
                    writer,
                    local,
                    name,
                    schema: batch.schema(),
                    schema_version,
                    rows: 0,
                    sources: BTreeMap::new(),
                },
            );
        }
        let file = self.open.get_mut(&partition).expect("opened above");
        file.writer.write(batch)?;
        file.rows += batch.num_rows() as u64;
        *file.sources.entry(source.to_owned()).or_default() += batch.num_rows() as u64;
        if file.writer.bytes_written() as u64 + file.writer.in_progress_size() as u64
            >= self.options.target_file_bytes
        {
            finished.push(self.finish(partition)?);
        }
        Ok(finished)
    }

    fn finish(
        &mut self,
        partition: PartitionKey,
    ) -> Result<SpooledFile, parquet::errors::ParquetError> {
        let file = self.open.remove(&partition).expect("an open file");
        file.writer.close()?;
        let bytes = std::fs::metadata(&file.local)?.len();
        Ok(SpooledFile {
            partition,
            local: file.local,
            name: file.name,
            rows: file.rows,
            bytes,
            schema_version: file.schema_version,
            sources: file.sources,
        })
    }

    /// Finishes every open file.
    pub fn finish_all(&mut self) -> Result<Vec<SpooledFile>, parquet::errors::ParquetError> {
        let mut keys: Vec<PartitionKey> = self.open.keys().copied().collect();
        keys.sort();
        keys.into_iter().map(|key| self.finish(key)).collect()
    }
}
