//! Event-time partitions: which `year=/month=/day=[/hour=]` folder each row belongs to.
//! Rows without an event time fall back to their object's arrival partition.

use std::collections::BTreeMap;

use arrow::array::{RecordBatch, UInt32Array};
use chrono::{DateTime, Datelike, Timelike};

use super::decode::timestamp_micros;

/// How finely output is partitioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    #[default]
    Day,
    Hour,
}

impl Granularity {
    /// The partition columns, in folder order.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Granularity::Day => &["year", "month", "day"],
            Granularity::Hour => &["year", "month", "day", "hour"],
        }
    }
}

/// One output partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: Option<u32>,
}

impl PartitionKey {
    /// The partition of a time, in microseconds since the epoch (UTC).
    pub fn from_micros(micros: i64, granularity: Granularity) -> Option<Self> {
        let time = DateTime::from_timestamp_micros(micros)?;
        Some(Self {
            year: time.year(),
            month: time.month(),
            day: time.day(),
            hour: (granularity == Granularity::Hour).then(|| time.hour()),
        })
    }

    /// `year=2024/month=05/day=30[/hour=07]`.
    pub fn path(&self) -> String {
        let mut path = format!(
            "year={:04}/month={:02}/day={:02}",
            self.year, self.month, self.day
        );
        if let Some(hour) = self.hour {
            path.push_str(&format!("/hour={hour:02}"));
        }
        path
    }

    /// Values in key order, as the catalog stores them.
    pub fn values(&self) -> Vec<String> {
        let mut values = vec![
            format!("{:04}", self.year),
            format!("{:02}", self.month),
            format!("{:02}", self.day),
        ];
        values.extend(self.hour.map(|h| format!("{h:02}")));
        values
    }
}

/// Splits a batch by the partition of each row's event time (`event_column`), or `fallback`.
/// Rows keep their order within a partition. A row's partition is the index of its day (or
/// hour) since the epoch, so the calendar is consulted once per partition, not once per row.
pub fn split_by_partition(
    batch: &RecordBatch,
    event_column: Option<usize>,
    granularity: Granularity,
    fallback: PartitionKey,
) -> Vec<(PartitionKey, RecordBatch)> {
    let times = event_column.and_then(|index| timestamp_micros(batch.column(index)));
    let Some(times) = times else {
        return vec![(fallback, batch.clone())];
    };
    let width: i64 = match granularity {
        Granularity::Day => 86_400_000_000,
        Granularity::Hour => 3_600_000_000,
    };
    // Rows per bucket (None: no event time), in order of first appearance; a batch holds few.
    let mut buckets: Vec<(Option<i64>, Vec<u32>)> = Vec::new();
    let mut current = usize::MAX;
    for (row, time) in times.iter().enumerate() {
        let bucket = time.map(|t| t.div_euclid(width));
        if buckets.get(current).is_none_or(|(b, _)| *b != bucket) {
            current = match buckets.iter().position(|(b, _)| *b == bucket) {
                Some(found) => found,
                None => {
                    buckets.push((bucket, Vec::new()));
                    buckets.len() - 1
                }
            };
        }
        buckets[current].1.push(row as u32);
    }
    let mut rows: BTreeMap<PartitionKey, Vec<u32>> = BTreeMap::new();
    for (bucket, indices) in buckets {
        let key = bucket
            .and_then(|b| PartitionKey::from_micros(b.checked_mul(width)?, granularity))
            .unwrap_or(fallback);
        let merged = rows.entry(key).or_default();
        if merged.is_empty() {
            *merged = indices;
        } else {
            // Rows without an event time that share the fallback's partition.
            merged.extend(indices);
            merged.sort_unstable();
        }
    }
    if rows.len() == 1 {
        let key = *rows.keys().next().expect("one key");
        return vec![(key, batch.clone())];
    }
    rows.into_iter()
        .map(|(key, indices)| {
            let taken = arrow::compute::take_record_batch(batch, &UInt32Array::from(indices))
                .expect("indices in range");
            (key, taken)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    #[test]
    fn rows_go_to_their_event_time_partition_and_nulls_to_the_fallback() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        )]));
        let late = 1_717_027_199_000_000; // 2024-05-29T23:59:59Z
        let on_time = 1_717_027_201_000_000; // 2024-05-30T00:00:01Z
        let column =
            TimestampMicrosecondArray::from(vec![Some(on_time), Some(late), None, Some(on_time)])
                .with_timezone("+00:00");
        let batch = RecordBatch::try_new(schema, vec![Arc::new(column)]).unwrap();
        let fallback = PartitionKey {
            year: 2024,
            month: 6,
            day: 1,
            hour: None,
        };
        let parts = split_by_partition(&batch, Some(0), Granularity::Day, fallback);
        let summary: Vec<(String, usize)> = parts
            .iter()
            .map(|(k, b)| (k.path(), b.num_rows()))
            .collect();
        assert_eq!(
            summary,
            [
                ("year=2024/month=05/day=29".to_owned(), 1),
                ("year=2024/month=05/day=30".to_owned(), 2),
                ("year=2024/month=06/day=01".to_owned(), 1)
            ]
        );
        let hourly = PartitionKey::from_micros(on_time, Granularity::Hour).unwrap();
        assert_eq!(
            (hourly.path(), hourly.values()),
            (
                "year=2024/month=05/day=30/hour=00".to_owned(),
                vec!["2024".into(), "05".into(), "30".into(), "00".into()]
            )
        );
    }
}
