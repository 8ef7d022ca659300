//! Stored forecasts in the lake (batch runs, and what endpoints served): one zstd Parquet file per run, long format (one row per item and
//! step: `item_id`, `timestamp`, `step`, `mean`, one column per quantile such as `q10`, and the
//! model that answered), under `forecasts/<group>/run=<run id>/`, and a `batch_forecasts` row
//! per run so accuracy monitoring can find them and join the actuals that land later.
//!
//! Beside the forecast, `history.parquet` keeps the last points of each series before its
//! forecast starts (`item_id`, `timestamp`, `target`; see [`history_points`]), and the row
//! records what the run read: its input file and, when that file is a dataset's, the dataset
//! (table, catalog, spec), from which the actuals that land later can be read back.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, StringArray, TimestampMillisecondArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sqlx::Row;

use sqlx::AnyPool;

use crate::catalog::now_ms;
use crate::lake::{Lake, LakeKey};
use crate::{Error, Result};

/// The rows of one run, column by column.
#[derive(Debug, Clone, Default)]
pub struct ForecastRows {
    pub item_id: Vec<String>,
    /// Milliseconds since the epoch (UTC) of each forecast point.
    pub timestamp_ms: Vec<i64>,
    /// 1 for the first point after the history.
    pub step: Vec<u32>,
    pub mean: Vec<f32>,
    /// (quantile, values), in the order of the columns.
    pub quantiles: Vec<(f64, Vec<f32>)>,
    /// The points of each series before its forecast, written beside it when not empty.
    pub history: HistoryRows,
}

/// The last observed points of each series before its forecast starts, column by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryRows {
    pub item_id: Vec<String>,
    pub timestamp_ms: Vec<i64>,
    /// NaN where the series had no value.
    pub target: Vec<f32>,
}

impl HistoryRows {
    /// Appends the last [`history_points`] of a series (`target[i]` at `timestamp_ms(i)`).
    pub fn keep(
        &mut self,
        item: &str,
        target: &[f32],
        horizon: usize,
        timestamp_ms: impl Fn(usize) -> i64,
    ) {
        let from = target.len().saturating_sub(history_points(horizon));
        for (i, value) in target.iter().enumerate().skip(from) {
            self.item_id.push(item.to_owned());
            self.timestamp_ms.push(timestamp_ms(i));
            self.target.push(*value);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.item_id.is_empty()
    }
}

/// How many points of history a run keeps per series: four forecast horizons, at least 48 and
/// at most 2,000 (enough to see the forecast against what came before it, never the whole
/// series of a long history).
pub fn history_points(horizon: usize) -> usize {
    (4 * horizon).clamp(48, 2_000)
}

/// The dataset a run's input was built as (`sluice dataset`'s manifest beside the input): the
/// actuals that land later are read from its table with its spec.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetRef {
    pub table: String,
    #[serde(default)]
    pub catalog: Option<String>,
    pub snapshot_id: String,
    pub spec: crate::dataset::DatasetSpec,
}

/// What a run read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provenance {
    /// The file of series it forecast (batch runs).
    pub input: Option<String>,
    pub dataset: Option<DatasetRef>,
}

/// The column name of a quantile: 0.1 → `q10`, 0.025 → `q2.5`.
pub fn quantile_column(q: f64) -> String {
    let percent = (q * 1000.0).round() / 10.0;
    format!("q{percent}")
}

/// Where a run's forecasts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `sluice:batch-forecast`.
    Batch,
    /// What an endpoint answered, flushed by the serving process.
    Served,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Batch => "batch",
            Source::Served => "served",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Source::Batch => "",
            Source::Served => "served-",
        }
    }
}

/// What a run wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BatchRun {
    pub id: String,
    pub model_group: String,
    pub model_version: u32,
    pub key: String,
    pub items: usize,
    pub rows: usize,
    pub created_at: i64,
    /// `batch` or `served`.
    pub source: String,
    pub input: Option<String>,
    pub dataset: Option<DatasetRef>,
    /// The history kept beside the forecast (none for runs older than migration 0017).
    pub history_key: Option<String>,
}

/// Encodes the rows as one Parquet file.
fn encode(rows: &ForecastRows, group: &str, version: u32) -> Result<Vec<u8>> {
    let n = rows.item_id.len();
    let mut fields = vec![
        Field::new("item_id", DataType::Utf8, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("step", DataType::UInt32, false),
        Field::new("mean", DataType::Float32, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(&rows.item_id)),
        Arc::new(TimestampMillisecondArray::from(rows.timestamp_ms.clone())),
        Arc::new(UInt32Array::from(rows.step.clone())),
        Arc::new(Float32Array::from(rows.mean.clone())),
    ];
    for (q, values) in &rows.quantiles {
        fields.push(Field::new(quantile_column(*q), DataType::Float32, false));
        columns.push(Arc::new(Float32Array::from(values.clone())));
    }
    fields.push(Field::new("model_group", DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n(group, n),
    )));
    fields.push(Field::new("model_version", DataType::UInt32, false));
    columns.push(Arc::new(UInt32Array::from(vec![version; n])));
    parquet_file("batch forecasts", fields, columns)
}

/// Encodes the history rows as one Parquet file.
fn encode_history(rows: &HistoryRows) -> Result<Vec<u8>> {
    let fields = vec![
        Field::new("item_id", DataType::Utf8, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("target", DataType::Float32, false),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(&rows.item_id)),
        Arc::new(TimestampMillisecondArray::from(rows.timestamp_ms.clone())),
        Arc::new(Float32Array::from(rows.target.clone())),
    ];
    parquet_file("forecast history", fields, columns)
}

/// One zstd Parquet file of one record batch.
fn parquet_file(what: &'static str, fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<Vec<u8>> {
    let encoding = |reason: String| Error::Encode { what, reason };
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| encoding(e.to_string()))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties))
        .map_err(|e| encoding(e.to_string()))?;
    writer.write(&batch).map_err(|e| encoding(e.to_string()))?;
    writer.close().map_err(|e| encoding(e.to_string()))?;
    Ok(bytes)
}

/// Writes a run's files to the lake, then records the run (the files are only listed once
/// complete; a crash in between leaves unlisted files, never a listed partial one).
pub async fn write(
    pool: &AnyPool,
    lake: &Lake,
    group: &str,
    version: u32,
    rows: &ForecastRows,
    source: Source,
    provenance: &Provenance,
) -> Result<BatchRun> {
    let created_at = now_ms();
    let stamp = chrono::DateTime::from_timestamp_millis(created_at)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%S");
    let id = format!(
        "{}{stamp}-{}",
        source.prefix(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let key = LakeKey::parse(&format!("forecasts/{group}/run={id}/part-0.parquet"))?;
    let history_key = if rows.history.is_empty() {
        None
    } else {
        let history = LakeKey::parse(&format!("forecasts/{group}/run={id}/history.parquet"))?;
        lake.put(&history, encode_history(&rows.history)?.into())
            .await?;
        Some(history.as_str().to_owned())
    };
    let bytes = encode(rows, group, version)?;
    lake.put(&key, bytes.into()).await?;
    let items: std::collections::HashSet<&str> = rows.item_id.iter().map(String::as_str).collect();
    let run = BatchRun {
        id,
        model_group: group.to_owned(),
        model_version: version,
        key: key.as_str().to_owned(),
        items: items.len(),
        rows: rows.item_id.len(),
        created_at,
        source: source.as_str().to_owned(),
        input: provenance.input.clone(),
        dataset: provenance.dataset.clone(),
        history_key,
    };
    let dataset = run
        .dataset
        .as_ref()
        .map(|d| serde_json::to_string(d).expect("dataset references serialize"));
    sqlx::query(
        "INSERT INTO batch_forecasts (id, model_group, model_version, lake_key, items, row_count, created_at, source, \
         input, dataset, history_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&run.id)
    .bind(group)
    .bind(i64::from(version))
    .bind(&run.key)
    .bind(run.items as i64)
    .bind(run.rows as i64)
    .bind(created_at)
    .bind(source.as_str())
    .bind(&run.input)
    .bind(&dataset)
    .bind(&run.history_key)
    .execute(pool)
    .await?;
    Ok(run)
}

const RUN_COLUMNS: &str = "id, model_group, model_version, lake_key, items, row_count, created_at, source, \
    input, dataset, history_key";

fn run_row(row: &sqlx::any::AnyRow) -> Result<BatchRun> {
    let dataset: Option<String> = row.try_get("dataset")?;
    let id: String = row.try_get("id")?;
    let dataset = dataset
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| Error::CorruptRecord {
                what: "forecast run",
                reason: format!("{id}: its dataset reference does not read: {e}"),
            })
        })
        .transpose()?;
    Ok(BatchRun {
        id,
        model_group: row.try_get("model_group")?,
        model_version: row.try_get::<i64, _>("model_version")? as u32,
        key: row.try_get("lake_key")?,
        items: row.try_get::<i64, _>("items")? as usize,
        rows: row.try_get::<i64, _>("row_count")? as usize,
        created_at: row.try_get("created_at")?,
        source: row.try_get("source")?,
        input: row.try_get("input")?,
        dataset,
        history_key: row.try_get("history_key")?,
    })
}

/// The runs of a group, newest first.
pub async fn runs(pool: &AnyPool, group: &str) -> Result<Vec<BatchRun>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM batch_forecasts WHERE model_group = $1 ORDER BY created_at DESC, id DESC"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(group)
        .fetch_all(pool)
        .await?;
    rows.iter().map(run_row).collect()
}

/// The latest runs of every group, newest first.
pub async fn latest(pool: &AnyPool, limit: usize) -> Result<Vec<BatchRun>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM batch_forecasts ORDER BY created_at DESC, id DESC LIMIT $1"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(limit as i64)
        .fetch_all(pool)
        .await?;
    rows.iter().map(run_row).collect()
}

/// One run of a group.
pub async fn run(pool: &AnyPool, group: &str, id: &str) -> Result<Option<BatchRun>> {
    let sql =
        format!("SELECT {RUN_COLUMNS} FROM batch_forecasts WHERE model_group = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(group)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(run_row).transpose()
}

/// A stored file's record batches, and how to name what is wrong with it.
struct Stored {
    key: String,
    what: &'static str,
    batches: Vec<RecordBatch>,
}

impl Stored {
    async fn read(lake: &Lake, key: &str, what: &'static str) -> Result<Self> {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let bytes = lake.get(&LakeKey::parse(key)?).await?;
        let corrupt = |reason: String| Error::CorruptRecord {
            what,
            reason: format!("{key}: {reason}"),
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| corrupt(e.to_string()))?;
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Self {
            key: key.to_owned(),
            what,
            batches,
        })
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::CorruptRecord {
            what: self.what,
            reason: format!("{}: {reason}", self.key),
        }
    }

    /// A column of one batch as `T`.
    fn column<'a, T: 'static>(&self, batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
        batch
            .column_by_name(name)
            .ok_or_else(|| self.corrupt(format!("no column {name}")))?
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| self.corrupt(format!("{name} has an unexpected type")))
    }

    fn strings(&self, batch: &RecordBatch, name: &str) -> Result<Vec<String>> {
        let array = self.column::<StringArray>(batch, name)?;
        Ok(array
            .iter()
            .map(|v| v.unwrap_or_default().to_owned())
            .collect())
    }

    fn times(&self, batch: &RecordBatch) -> Result<Vec<i64>> {
        Ok(self
            .column::<TimestampMillisecondArray>(batch, "timestamp")?
            .values()
            .to_vec())
    }

    fn floats(&self, batch: &RecordBatch, name: &str) -> Result<Vec<f32>> {
        Ok(self.column::<Float32Array>(batch, name)?.values().to_vec())
    }
}

/// Reads a run's file back.
pub async fn read(lake: &Lake, key: &str) -> Result<ForecastRows> {
    let stored = Stored::read(lake, key, "batch forecast file").await?;
    let mut rows = ForecastRows::default();
    for batch in &stored.batches {
        rows.item_id.extend(stored.strings(batch, "item_id")?);
        rows.timestamp_ms.extend(stored.times(batch)?);
        rows.step.extend(
            stored
                .column::<UInt32Array>(batch, "step")?
                .values()
                .iter()
                .copied(),
        );
        rows.mean.extend(stored.floats(batch, "mean")?);
        for field in batch.schema().fields() {
            let Some(q) = field
                .name()
                .strip_prefix('q')
                .and_then(|p| p.parse::<f64>().ok())
            else {
                continue;
            };
            let values = stored.floats(batch, field.name())?;
            match rows
                .quantiles
                .iter_mut()
                .find(|(known, _)| *known == q / 100.0)
            {
                Some((_, column)) => column.extend(values),
                None => rows.quantiles.push((q / 100.0, values)),
            }
        }
    }
    Ok(rows)
}

/// Reads the history kept beside a run's forecast.
pub async fn read_history(lake: &Lake, key: &str) -> Result<HistoryRows> {
    let stored = Stored::read(lake, key, "forecast history file").await?;
    let mut rows = HistoryRows::default();
    for batch in &stored.batches {
        rows.item_id.extend(stored.strings(batch, "item_id")?);
        rows.timestamp_ms.extend(stored.times(batch)?);
        rows.target.extend(stored.floats(batch, "target")?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_last_points_of_each_series() {
        let mut history = HistoryRows::default();
        let target: Vec<f32> = (0..200).map(|i| i as f32).collect();
        history.keep("a", &target, 12, |i| i as i64 * 1000);
        assert_eq!(history.target.len(), 48);
        assert_eq!(history.target[0], 152.0);
        assert_eq!(history.timestamp_ms[47], 199_000);
        history.keep("b", &target[..10], 100, |i| i as i64);
        assert_eq!(history.item_id.len(), 58);
        assert_eq!(history_points(1_000), 2_000);
    }

    #[tokio::test]
    async fn a_run_keeps_its_history_and_provenance_beside_its_forecast() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/c.db", dir.path().display());
        let catalog = crate::catalog::Catalog::connect(&url, &Default::default())
            .await
            .unwrap();
        let lake = Lake::in_memory();
        let mut rows = ForecastRows {
            item_id: vec!["a".into(), "a".into()],
            timestamp_ms: vec![3_600_000, 7_200_000],
            step: vec![1, 2],
            mean: vec![1.0, 2.0],
            quantiles: vec![(0.1, vec![0.5, 1.0]), (0.9, vec![1.5, 3.0])],
            history: HistoryRows::default(),
        };
        rows.history.keep("a", &[4.0, f32::NAN], 2, |i| i as i64);
        let provenance = Provenance {
            input: Some("work/test.jsonl".into()),
            dataset: None,
        };
        let run = write(
            catalog.pool(),
            &lake,
            "g",
            3,
            &rows,
            Source::Batch,
            &provenance,
        )
        .await
        .unwrap();
        let found = super::run(catalog.pool(), "g", &run.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.input.as_deref(), Some("work/test.jsonl"));
        assert_eq!(found.source, "batch");
        let history = read_history(&lake, found.history_key.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(history.target[0], 4.0);
        assert!(history.target[1].is_nan());
        let back = read(&lake, &found.key).await.unwrap();
        assert_eq!(back.mean, rows.mean);
        assert_eq!(back.quantiles, rows.quantiles);
        assert_eq!(latest(catalog.pool(), 5).await.unwrap().len(), 1);
        let missing = super::run(catalog.pool(), "g", "nope").await.unwrap();
        assert!(missing.is_none());
    }

    #[test]
    fn quantile_columns_read_as_percent() {
        assert_eq!(quantile_column(0.1), "q10");
        assert_eq!(quantile_column(0.5), "q50");
        assert_eq!(quantile_column(0.025), "q2.5");
    }
}
