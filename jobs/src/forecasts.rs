//! Stored forecasts in the lake (batch runs, and what endpoints served): one zstd Parquet file per run, long format (one row per item and
//! step: `item_id`, `timestamp`, `step`, `mean`, one column per quantile such as `q10`, and the
//! model that answered), under `forecasts/<group>/run=<run id>/`, and a `batch_forecasts` row
//! per run so accuracy monitoring can find them and join the actuals that land later.

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
    fn as_str(self) -> &'static str {
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
    let encoding = |reason: String| Error::Encode {
        what: "batch forecasts",
        reason,
    };
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

/// Writes a run's file to the lake, then records the run (the file is only listed once
/// complete; a crash in between leaves an unlisted file, never a listed partial one).
pub async fn write(
    pool: &AnyPool,
    lake: &Lake,
    group: &str,
    version: u32,
    rows: &ForecastRows,
    source: Source,
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
    let bytes = encode(rows, group, version)?;
    lake.put(&key, bytes.into()).await?;
    let mut items = rows.item_id.clone();
    items.dedup();
    let run = BatchRun {
        id,
        model_group: group.to_owned(),
        model_version: version,
        key: key.as_str().to_owned(),
        items: items.len(),
        rows: rows.item_id.len(),
        created_at,
    };
    sqlx::query(
        "INSERT INTO batch_forecasts (id, model_group, model_version, lake_key, items, row_count, created_at, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&run.id)
    .bind(group)
    .bind(i64::from(version))
    .bind(&run.key)
    .bind(run.items as i64)
    .bind(run.rows as i64)
    .bind(created_at)
    .bind(source.as_str())
    .execute(pool)
    .await?;
    Ok(run)
}

/// The runs of a group, newest first.
pub async fn runs(pool: &AnyPool, group: &str) -> Result<Vec<BatchRun>> {
    let rows = sqlx::query(
        "SELECT id, model_group, model_version, lake_key, items, row_count, created_at \
         FROM batch_forecasts WHERE model_group = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(group)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(BatchRun {
                id: row.try_get("id")?,
                model_group: row.try_get("model_group")?,
                model_version: row.try_get::<i64, _>("model_version")? as u32,
                key: row.try_get("lake_key")?,
                items: row.try_get::<i64, _>("items")? as usize,
                rows: row.try_get::<i64, _>("row_count")? as usize,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Error::from)
}

/// Reads a run's file back.
pub async fn read(lake: &Lake, key: &str) -> Result<ForecastRows> {
    use arrow::array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bytes = lake.get(&LakeKey::parse(key)?).await?;
    let corrupt = |reason: String| Error::CorruptRecord {
        what: "batch forecast file",
        reason: format!("{key}: {reason}"),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| corrupt(e.to_string()))?;
    let mut rows = ForecastRows::default();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(e.to_string()))?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| corrupt(format!("no column {name}")))
        };
        let strings = column("item_id")?;
        let strings = strings
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| corrupt("item_id is not text".into()))?;
        rows.item_id
            .extend((0..strings.len()).map(|i| strings.value(i).to_owned()));
        let times = column("timestamp")?;
        let times = times
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| corrupt("timestamp is not in milliseconds".into()))?;
        rows.timestamp_ms.extend(times.values().iter().copied());
        let steps = column("step")?;
        let steps = steps
            .as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or_else(|| corrupt("step is not u32".into()))?;
        rows.step.extend(steps.values().iter().copied());
        let floats = |array: ArrayRef, name: &str| -> Result<Vec<f32>> {
            Ok(array
                .as_any()
                .downcast_ref::<Float32Array>()
                .ok_or_else(|| corrupt(format!("{name} is not f32")))?
                .values()
                .to_vec())
        };
        rows.mean.extend(floats(column("mean")?, "mean")?);
        for field in batch.schema().fields() {
            let Some(q) = field
                .name()
                .strip_prefix('q')
                .and_then(|p| p.parse::<f64>().ok())
            else {
                continue;
            };
            let values = floats(column(field.name())?, field.name())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_columns_read_as_percent() {
        assert_eq!(quantile_column(0.1), "q10");
        assert_eq!(quantile_column(0.5), "q50");
        assert_eq!(quantile_column(0.025), "q2.5");
    }
}
