//! The dataset builder: from a curated table to DeepAR's training and test series.
//!
//! [`load`] reads the table's published Parquet files (polars) with the columns a
//! [`DatasetSpec`] names; [`build`] aggregates them per item and frequency bucket (polars'
//! lazy `group_by`), lays each item on a regular grid with explicit gaps (NaN targets, dynamic
//! features carried forward), splits by time (training up to the cut, rolling test windows
//! after it) and [`Dataset::export`] writes SageMaker DeepAR's JSON lines. Every dataset has a
//! snapshot id (the files read and the spec, hashed) that models record as lineage.

mod frequency;
pub(crate) mod load;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use frequency::Frequency;
pub use load::{Loaded, load, snapshot_id};

use crate::{Error, Result};

/// How the points of a bucket become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    Mean,
    Sum,
    Last,
    Max,
}

impl std::str::FromStr for Aggregation {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "mean" => Ok(Self::Mean),
            "sum" => Ok(Self::Sum),
            "last" => Ok(Self::Last),
            "max" => Ok(Self::Max),
            _ => Err(Error::InvalidArgument {
                field: "aggregation",
                reason: format!("{text:?}: use mean, sum, last or max"),
            }),
        }
    }
}

/// What to build.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetSpec {
    pub item_columns: Vec<String>,
    pub timestamp: String,
    pub target: String,
    /// `1h`, `15min`, `1d`, `W`, `M`, `Q`, ... (see [`Frequency`]).
    pub frequency: String,
    pub aggregation: Aggregation,
    #[serde(default)]
    pub dynamic_features: Vec<String>,
    #[serde(default)]
    pub categorical_features: Vec<String>,
    pub prediction_length: usize,
    /// Rolling test windows after the cut.
    pub test_windows: usize,
    /// Only these series, by item id (the item columns' values joined with `/`): one group's
    /// dataset, its cut at the group's own last point; none: every series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only_items: Vec<String>,
}

impl DatasetSpec {
    /// Every column the spec reads.
    pub fn columns(&self) -> Vec<String> {
        let mut columns = self.item_columns.clone();
        columns.push(self.timestamp.clone());
        columns.push(self.target.clone());
        columns.extend(self.dynamic_features.iter().cloned());
        columns.extend(self.categorical_features.iter().cloned());
        columns
    }

    fn validate(&self) -> Result<Frequency> {
        let invalid = |field: &'static str, reason: &str| Error::InvalidArgument {
            field,
            reason: reason.into(),
        };
        if self.item_columns.is_empty() {
            return Err(invalid(
                "item_columns",
                "name at least one column that identifies a series",
            ));
        }
        if self.prediction_length == 0 {
            return Err(invalid("prediction_length", "must be at least 1"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.columns().into_iter().find(|c| !seen.insert(c.clone())) {
            return Err(Error::InvalidArgument {
                field: "columns",
                reason: format!("{dup:?} is named twice"),
            });
        }
        self.frequency.parse()
    }
}

/// One item's series on the regular grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemSeries {
    pub item_id: String,
    /// Epoch milliseconds of the first point.
    pub start_ms: i64,
    /// NaN where the bucket had no value.
    pub target: Vec<f64>,
    pub dynamic_feat: Vec<Vec<f64>>,
    pub cat: Vec<u32>,
}

/// A built dataset.
#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub spec: DatasetSpec,
    pub snapshot_id: String,
    /// `time_freq` for DeepAR.
    pub time_freq: String,
    /// Epoch milliseconds where training ends (exclusive) and the first test window starts.
    pub cut_ms: i64,
    pub items: Vec<ItemSeries>,
    /// Per categorical feature, its values in index order.
    pub categories: Vec<Vec<String>>,
    /// Items left out, with why.
    pub dropped: Vec<(String, String)>,
}

/// A timestamp for SageMaker's `start`.
pub fn format_start(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn json_number(value: f64) -> Value {
    if value.is_nan() {
        json!("NaN")
    } else {
        json!(value)
    }
}

impl Dataset {
    /// SageMaker DeepAR JSON lines: training series up to the cut, then the test windows in
    /// window-major order (each test series ends `prediction_length` points after the previous).
    pub fn export(&self) -> (Vec<Value>, Vec<Value>) {
        let frequency = self.spec.frequency.parse::<Frequency>();
        let horizon = self.spec.prediction_length;
        let line = |item: &ItemSeries, points: usize| {
            let mut value = json!({
                "start": format_start(item.start_ms),
                "target": item.target[..points].iter().map(|v| json_number(*v)).collect::<Vec<_>>(),
                "item_id": item.item_id,
            });
            if !item.cat.is_empty() {
                value["cat"] = json!(item.cat);
            }
            if !item.dynamic_feat.is_empty() {
                value["dynamic_feat"] = json!(
                    item.dynamic_feat
                        .iter()
                        .map(|row| row[..points].to_vec())
                        .collect::<Vec<_>>()
                );
            }
            value
        };
        let train_points = |item: &ItemSeries| match &frequency {
            Ok(f) => (f.index(self.cut_ms) - f.index(item.start_ms)).max(0) as usize,
            Err(_) => 0,
        };
        let train = self
            .items
            .iter()
            .filter(|i| train_points(i) > 0)
            .map(|i| line(i, train_points(i)))
            .collect();
        let test = (1..=self.spec.test_windows)
            .flat_map(|window| {
                self.items.iter().filter_map(move |item| {
                    let points = train_points(item) + window * horizon;
                    (points <= item.target.len() && points > horizon).then(|| line(item, points))
                })
            })
            .collect();
        (train, test)
    }
}

fn aggregate(expr: Expr, aggregation: Aggregation) -> Expr {
    match aggregation {
        Aggregation::Mean => expr.mean(),
        Aggregation::Sum => expr.sum(),
        Aggregation::Last => expr.last(),
        Aggregation::Max => expr.max(),
    }
}

fn polars_error(context: &str) -> impl Fn(PolarsError) -> Error + '_ {
    move |e| Error::InvalidArgument {
        field: "dataset",
        reason: format!("{context}: {e}"),
    }
}

/// Aggregates `frame` (the spec's columns; the timestamp as epoch milliseconds, `Int64`) into
/// a dataset; see the module doc.
pub fn build(frame: DataFrame, spec: &DatasetSpec, snapshot_id: String) -> Result<Dataset> {
    let frequency = spec.validate()?;
    let bucket = "__bucket";
    // Each point's bucket: its index on the frequency's grid (a month is one step).
    let buckets: Int64Chunked = frame
        .column(spec.timestamp.as_str())
        .map_err(polars_error(&spec.timestamp))?
        .cast(&DataType::Int64)
        .map_err(polars_error(&spec.timestamp))?
        .i64()
        .map_err(polars_error(&spec.timestamp))?
        .iter()
        .map(|ms| ms.map(|ms| frequency.index(ms)))
        .collect();
    let mut frame = frame;
    frame
        .with_column(buckets.with_name(bucket.into()).into_column())
        .map_err(polars_error(bucket))?;
    let mut aggregations = vec![
        aggregate(
            col(spec.target.as_str()).cast(DataType::Float64),
            spec.aggregation,
        )
        .alias("__target"),
    ];
    aggregations.extend(spec.dynamic_features.iter().map(|f| {
        col(f.as_str())
            .cast(DataType::Float64)
            .mean()
            .alias(f.as_str())
    }));
    aggregations.extend(spec.categorical_features.iter().map(|f| {
        col(f.as_str())
            .cast(DataType::String)
            .last()
            .alias(f.as_str())
    }));
    let grouped = frame
        .lazy()
        .filter(col(spec.timestamp.as_str()).is_not_null())
        .with_columns(
            spec.item_columns
                .iter()
                .map(|c| col(c.as_str()).cast(DataType::String))
                .collect::<Vec<_>>(),
        )
        .group_by(
            spec.item_columns
                .iter()
                .map(|c| col(c.as_str()))
                .chain([col(bucket)])
                .collect::<Vec<_>>(),
        )
        .agg(aggregations)
        .sort(
            spec.item_columns
                .iter()
                .map(String::as_str)
                .chain([bucket])
                .collect::<Vec<_>>(),
            SortMultipleOptions::default(),
        )
        .collect()
        .map_err(polars_error("aggregating"))?;
    let column_f64 = |name: &str| -> Result<Vec<Option<f64>>> {
        Ok(grouped
            .column(name)
            .map_err(polars_error(name))?
            .f64()
            .map_err(polars_error(name))?
            .iter()
            .collect())
    };
    let column_str = |name: &str| -> Result<Vec<Option<String>>> {
        let column = grouped.column(name).map_err(polars_error(name))?;
        Ok(column
            .str()
            .map_err(polars_error(name))?
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    };
    // An item's id: its key columns' values joined with `/`.
    let key_columns = spec
        .item_columns
        .iter()
        .map(|c| column_str(c))
        .collect::<Result<Vec<_>>>()?;
    let items: Vec<Option<String>> = (0..grouped.height())
        .map(|row| {
            Some(
                key_columns
                    .iter()
                    .map(|k| k[row].clone().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("/"),
            )
        })
        .collect();
    let buckets: Vec<Option<i64>> = grouped
        .column(bucket)
        .map_err(polars_error(bucket))?
        .i64()
        .map_err(polars_error(bucket))?
        .iter()
        .collect();
    let targets = column_f64("__target")?;
    let dynamics = spec
        .dynamic_features
        .iter()
        .map(|f| column_f64(f))
        .collect::<Result<Vec<_>>>()?;
    let categoricals = spec
        .categorical_features
        .iter()
        .map(|f| column_str(f))
        .collect::<Result<Vec<_>>>()?;
    // The series asked for (every one by default); categories keep every value seen, so that a
    // group's category indices are the table's.
    let wanted: Option<std::collections::BTreeSet<&str>> =
        (!spec.only_items.is_empty()).then(|| spec.only_items.iter().map(String::as_str).collect());
    let kept = |row: usize| {
        wanted
            .as_ref()
            .is_none_or(|w| items[row].as_deref().is_some_and(|i| w.contains(i)))
    };
    let Some(end) = buckets
        .iter()
        .enumerate()
        .filter(|(row, _)| kept(*row))
        .filter_map(|(_, bucket)| *bucket)
        .max()
    else {
        return Err(Error::InvalidArgument {
            field: "dataset",
            reason: "the table has no rows with a timestamp".into(),
        });
    };
    // Category indices: each feature's distinct values, sorted.
    let categories: Vec<Vec<String>> = categoricals
        .iter()
        .map(|values| {
            let mut distinct: Vec<String> = values.iter().flatten().cloned().collect();
            distinct.sort();
            distinct.dedup();
            distinct
        })
        .collect();
    let cut = end + 1 - (spec.test_windows * spec.prediction_length) as i64;
    let cut_ms = frequency.start_ms(cut);
    let mut rows_by_item: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (row, item) in items.iter().enumerate().filter(|(row, _)| kept(*row)) {
        rows_by_item
            .entry(item.clone().unwrap_or_default())
            .or_default()
            .push(row);
    }
    let mut series = Vec::new();
    let mut dropped: Vec<(String, String)> = spec
        .only_items
        .iter()
        .filter(|item| !rows_by_item.contains_key(*item))
        .map(|item| (item.clone(), "no rows in the table".to_string()))
        .collect();
    for (item_id, rows) in rows_by_item {
        let start = buckets[rows[0]].expect("filtered nulls");
        let length = (end - start + 1) as usize;
        let mut target = vec![f64::NAN; length];
        let mut dynamic: Vec<Vec<Option<f64>>> = vec![vec![None; length]; dynamics.len()];
        let mut cat = vec![0u32; categoricals.len()];
        for &row in &rows {
            let index = (buckets[row].expect("filtered nulls") - start) as usize;
            target[index] = targets[row].unwrap_or(f64::NAN);
            for (f, values) in dynamics.iter().enumerate() {
                dynamic[f][index] = values[row];
            }
            for (f, values) in categoricals.iter().enumerate() {
                if let Some(value) = &values[row] {
                    cat[f] = categories[f].binary_search(value).unwrap_or(0) as u32;
                }
            }
        }
        let observed_before_cut = target
            .iter()
            .take((cut - start).max(0) as usize)
            .filter(|v| !v.is_nan())
            .count();
        if observed_before_cut == 0 {
            dropped.push((item_id, "no observed target before the cut".to_string()));
            continue;
        }
        let dynamic_feat = dynamic.into_iter().map(fill_forward).collect();
        series.push(ItemSeries {
            item_id,
            start_ms: frequency.start_ms(start),
            target,
            dynamic_feat,
            cat,
        });
    }
    Ok(Dataset {
        spec: spec.clone(),
        snapshot_id,
        time_freq: frequency.deepar(),
        cut_ms,
        items: series,
        categories,
        dropped,
    })
}

/// The series of `frame` as the spec aggregates them, on the spec's grid, for the points in
/// `[from_ms, to_ms)` only: what landed for a forecast window, bucketed exactly as the dataset
/// the forecast was made from (the same frequency, aggregation and item key).
pub fn observed(
    frame: DataFrame,
    spec: &DatasetSpec,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<ItemSeries>> {
    let ts = col(spec.timestamp.as_str()).cast(DataType::Int64);
    let frame = frame
        .lazy()
        .filter(ts.clone().gt_eq(lit(from_ms)).and(ts.lt(lit(to_ms))))
        .collect()
        .map_err(polars_error("filtering the window"))?;
    if frame.height() == 0 {
        return Ok(vec![]);
    }
    // No test windows: every item with a value in the window is kept, up to its last bucket.
    let whole = DatasetSpec {
        test_windows: 0,
        ..spec.clone()
    };
    Ok(build(frame, &whole, String::new())?.items)
}

/// Gaps take the last value before them; leading gaps the first value (0 when there is none).
fn fill_forward(values: Vec<Option<f64>>) -> Vec<f64> {
    let first = values.iter().flatten().next().copied().unwrap_or(0.0);
    let mut last = first;
    values
        .into_iter()
        .map(|v| {
            if let Some(v) = v.filter(|v| !v.is_nan()) {
                last = v;
            }
            last
        })
        .collect()
}
