//! A stored forecast run, one series at a time: the history kept beside the forecast, the
//! forecast's mean and quantiles, and the actuals that landed for its window since (the
//! console's forecast chart; `sluice models forecasts`).
//!
//! The actuals come from where the run's input came from: when the input was a dataset's file,
//! the dataset's table is read again with the dataset's spec, bucketed as the forecast was
//! (the same grid, aggregation and item key), for the forecast window only. Otherwise (a
//! file of series, or what an endpoint served) they come from the histories kept by the
//! group's later runs, which saw the points that landed after this one.

use std::collections::BTreeMap;

use jobs::forecasts::{self, BatchRun, ForecastRows};
use models::registry::GroupName;
use serde::Serialize;

use crate::{Error, Missing, Ops, Result};

/// How many of the group's later runs are searched for actuals.
const LATER_RUNS: usize = 30;

/// One forecast point of a series, with what landed for it since.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastPoint {
    /// Milliseconds since the epoch (UTC).
    pub at_ms: i64,
    pub step: u32,
    pub mean: f32,
    /// (quantile, value), ascending.
    pub quantiles: Vec<(f64, f32)>,
    /// None where nothing has landed for the point (yet).
    pub actual: Option<f64>,
}

impl ForecastPoint {
    /// The value of quantile `q`, when the run has it.
    pub fn quantile(&self, q: f64) -> Option<f32> {
        self.quantiles
            .iter()
            .find(|(x, _)| (x - q).abs() < 1e-9)
            .map(|(_, v)| *v)
    }
}

/// Where a series' actuals were read from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum ActualsSource {
    /// The dataset's table, read with the dataset's spec.
    Table {
        table: String,
        catalog: Option<String>,
    },
    /// The histories kept by the group's later runs.
    LaterRuns { runs: usize },
    /// Nowhere: why.
    Unavailable { reason: String },
}

/// A run's forecast of one series.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesForecast {
    pub run: BatchRun,
    pub item: String,
    /// Every series of the run, sorted.
    pub items: Vec<String>,
    /// (milliseconds, value; NaN where missing): the points before the forecast.
    pub history: Vec<(i64, f32)>,
    pub points: Vec<ForecastPoint>,
    pub actuals: ActualsSource,
}

impl SeriesForecast {
    /// The interval drawn as the band: 10 % to 90 % when the run has them, otherwise its
    /// lowest and highest quantile.
    pub fn band(&self) -> Option<(f64, f64)> {
        let quantiles: Vec<f64> = self
            .points
            .first()?
            .quantiles
            .iter()
            .map(|(q, _)| *q)
            .collect();
        let has = |q: f64| quantiles.iter().any(|x| (x - q).abs() < 1e-9);
        if has(0.1) && has(0.9) {
            return Some((0.1, 0.9));
        }
        let (low, high) = (*quantiles.first()?, *quantiles.last()?);
        (low < high).then_some((low, high))
    }

    /// How many actuals landed, and how many of them fell inside the band.
    pub fn coverage(&self) -> (usize, usize) {
        let Some((low, high)) = self.band() else {
            return (0, 0);
        };
        let value = |p: &ForecastPoint, q: f64| p.quantile(q).map(f64::from);
        let landed: Vec<(&ForecastPoint, f64)> = self
            .points
            .iter()
            .filter_map(|p| Some((p, p.actual?)))
            .collect();
        let inside = landed
            .iter()
            .filter(|(p, actual)| {
                matches!((value(p, low), value(p, high)), (Some(l), Some(h)) if *actual >= l && *actual <= h)
            })
            .count();
        (landed.len(), inside)
    }
}

/// The rows of `item` in the run's last forecast window of it (a run made from a test file
/// with several rolling windows forecasts an item once per window).
fn item_points(rows: &ForecastRows, item: &str) -> Vec<ForecastPoint> {
    let mut windows: Vec<Vec<ForecastPoint>> = Vec::new();
    for i in (0..rows.item_id.len()).filter(|i| rows.item_id[*i] == item) {
        if rows.step[i] == 1 || windows.is_empty() {
            windows.push(Vec::new());
        }
        let mut quantiles: Vec<(f64, f32)> =
            rows.quantiles.iter().map(|(q, v)| (*q, v[i])).collect();
        quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
        windows.last_mut().expect("pushed").push(ForecastPoint {
            at_ms: rows.timestamp_ms[i],
            step: rows.step[i],
            mean: rows.mean[i],
            quantiles,
            actual: None,
        });
    }
    windows
        .into_iter()
        .max_by_key(|w| w.first().map_or(i64::MIN, |p| p.at_ms))
        .unwrap_or_default()
}

impl Ops {
    /// The latest forecast runs, of one group or of all, newest first.
    pub async fn forecast_runs(
        &self,
        group: Option<&GroupName>,
        limit: usize,
    ) -> Result<Vec<BatchRun>> {
        let pool = self.catalog().await?.pool();
        let mut runs = match group {
            Some(group) => forecasts::runs(pool, group.as_str()).await?,
            None => forecasts::latest(pool, limit).await?,
        };
        runs.truncate(limit);
        Ok(runs)
    }

    /// One run's forecast of one series (its first series when `item` is None).
    pub async fn forecast_series(
        &self,
        group: &GroupName,
        run_id: &str,
        item: Option<&str>,
    ) -> Result<SeriesForecast> {
        let pool = self.catalog().await?.pool();
        let run = forecasts::run(pool, group.as_str(), run_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                missing: Missing::Other,
                what: format!("forecast run {run_id} of {group}"),
            })?;
        let curated = self.curated_lake()?;
        let rows = forecasts::read(&curated, &run.key).await?;
        let mut items: Vec<String> = rows.item_id.clone();
        items.sort();
        items.dedup();
        let item = match item {
            Some(item) if items.iter().any(|i| i == item) => item.to_owned(),
            Some(item) => {
                return Err(Error::NotFound {
                    missing: Missing::Other,
                    what: format!("series {item:?} in forecast run {run_id}"),
                });
            }
            None => items.first().cloned().ok_or_else(|| Error::NotFound {
                missing: Missing::Other,
                what: format!("a series in forecast run {run_id} (it is empty)"),
            })?,
        };
        let mut points = item_points(&rows, &item);
        let start = points.first().map_or(i64::MAX, |p| p.at_ms);
        let history = match &run.history_key {
            Some(key) => {
                let kept = forecasts::read_history(&curated, key).await?;
                let mut by_time = BTreeMap::new();
                for i in (0..kept.item_id.len()).filter(|i| kept.item_id[*i] == item) {
                    if kept.timestamp_ms[i] < start {
                        by_time.insert(kept.timestamp_ms[i], kept.target[i]);
                    }
                }
                let skip = by_time
                    .len()
                    .saturating_sub(forecasts::history_points(points.len()));
                by_time.into_iter().skip(skip).collect()
            }
            None => vec![],
        };
        let actuals = self.actuals(&run, &item, &mut points).await;
        Ok(SeriesForecast {
            run,
            item,
            items,
            history,
            points,
            actuals,
        })
    }

    /// Fills in the actuals of the points; says where they came from. A source that cannot be
    /// read (a table dropped since) leaves them empty with the reason, never fails the view.
    async fn actuals(
        &self,
        run: &BatchRun,
        item: &str,
        points: &mut [ForecastPoint],
    ) -> ActualsSource {
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return ActualsSource::Unavailable {
                reason: "the run has no points for this series".into(),
            };
        };
        // The first and the last forecast point (each the start of its bucket).
        let (from, to) = (first.at_ms, last.at_ms);
        let found = match &run.dataset {
            Some(dataset) => self
                .actuals_from_table(dataset, item, from, to)
                .await
                .map(|values| {
                    (
                        values,
                        ActualsSource::Table {
                            table: dataset.table.clone(),
                            catalog: dataset.catalog.clone(),
                        },
                    )
                }),
            None => self.actuals_from_later_runs(run, item, from, to).await,
        };
        match found {
            Ok((values, source)) => {
                for point in points.iter_mut() {
                    point.actual = values.get(&point.at_ms).copied().filter(|v| v.is_finite());
                }
                source
            }
            Err(e) => ActualsSource::Unavailable {
                reason: e.to_string(),
            },
        }
    }

    /// The buckets from the one starting at `first` to the one starting at `last`, included.
    async fn actuals_from_table(
        &self,
        dataset: &jobs::forecasts::DatasetRef,
        item: &str,
        first: i64,
        last: i64,
    ) -> Result<BTreeMap<i64, f64>> {
        let frequency: jobs::dataset::Frequency = dataset.spec.frequency.parse()?;
        // Every reading of the last bucket counts, up to the start of the next one.
        let (from, to) = (first, frequency.start_ms(frequency.index(last) + 1));
        let curated = self.curated_lake()?;
        let db = self.catalog_db(dataset.catalog.as_deref())?;
        let loaded = jobs::dataset::load(
            &curated,
            self.catalog().await?,
            &db,
            &dataset.table,
            &dataset.spec,
        )
        .await?;
        let spec = dataset.spec.clone();
        let series = tokio::task::spawn_blocking(move || {
            jobs::dataset::observed(loaded.frame, &spec, from, to)
        })
        .await??;
        Ok(series
            .into_iter()
            .filter(|s| s.item_id == item)
            .flat_map(|s| {
                let first = frequency.index(s.start_ms);
                s.target
                    .into_iter()
                    .enumerate()
                    .map(move |(i, v)| (frequency.start_ms(first + i as i64), v))
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    /// The points kept at the times from `first` to `last`, included.
    async fn actuals_from_later_runs(
        &self,
        run: &BatchRun,
        item: &str,
        first: i64,
        last: i64,
    ) -> Result<(BTreeMap<i64, f64>, ActualsSource)> {
        let pool = self.catalog().await?.pool();
        let curated = self.curated_lake()?;
        let mut later: Vec<BatchRun> = forecasts::runs(pool, &run.model_group)
            .await?
            .into_iter()
            .filter(|r| r.created_at > run.created_at && r.history_key.is_some())
            .collect();
        // `runs` is newest first: search the ones right after this run.
        later.reverse();
        later.truncate(LATER_RUNS);
        let mut values = BTreeMap::new();
        for other in &later {
            let key = other.history_key.as_deref().expect("filtered");
            let kept = forecasts::read_history(&curated, key).await?;
            for i in 0..kept.item_id.len() {
                let at = kept.timestamp_ms[i];
                if kept.item_id[i] == item && (first..=last).contains(&at) {
                    values.insert(at, f64::from(kept.target[i]));
                }
            }
        }
        Ok((values, ActualsSource::LaterRuns { runs: later.len() }))
    }
}
