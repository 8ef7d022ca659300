//! A run's files in the lake: the forecast (long format, one column per quantile) and the
//! history kept beside it, each one zstd Parquet file, written and read back.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, StringArray, TimestampMillisecondArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{ForecastRows, HistoryRows, quantile_column};
use crate::lake::{Lake, LakeKey};
use crate::{Error, Result};

/// Encodes the rows as one Parquet file.
pub(super) fn encode(rows: &ForecastRows, group: &str, version: u32) -> Result<Vec<u8>> {
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
pub(super) fn encode_history(rows: &HistoryRows) -> Result<Vec<u8>> {
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
