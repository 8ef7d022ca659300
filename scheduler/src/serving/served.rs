//! What endpoints answered, kept for accuracy monitoring: the forecasts of request instances
//! that carry an `item_id` are buffered per model version (mean and the 0.1, 0.5 and 0.9
//! quantiles, the batch forecasts' columns) and written to the lake as a `served` forecast run
//! every few minutes, where drift detection joins them with the actuals that land later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jobs::forecasts::{ForecastRows, Source};
use jobs::lake::Lake;
use models::deepar::Forecast;
use models::forecaster::{Forecaster, Forecasting};
use models::inference::Request;
use models::registry::GroupName;
use sqlx::AnyPool;

use super::Error;

/// The quantile columns kept.
pub const QUANTILES: [f64; 3] = [0.1, 0.5, 0.9];
/// How often buffered forecasts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(300);
/// Rows buffered per version before a write is due anyway.
pub const FLUSH_ROWS: usize = 100_000;

/// The buffer of one serving process.
pub struct Served {
    pending: Mutex<HashMap<(GroupName, u32), ForecastRows>>,
    last_flush: Mutex<Instant>,
}

impl Default for Served {
    fn default() -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            last_flush: Mutex::new(Instant::now()),
        }
    }
}

impl Served {
    /// Buffers the forecasts of the request's identified instances (CPU work: call it off the
    /// async runtime).
    pub fn keep(
        &self,
        group: &GroupName,
        version: u32,
        model: &Forecaster,
        request: &Request,
        forecasts: &[Forecast],
    ) {
        let kept: Vec<(&str, &Forecast)> = request
            .instances
            .iter()
            .zip(forecasts)
            .filter_map(|(s, f)| Some((s.item_id.as_deref()?, f)))
            .collect();
        if kept.is_empty() {
            return;
        }
        let mut add = ForecastRows {
            quantiles: QUANTILES.iter().map(|q| (*q, Vec::new())).collect(),
            ..ForecastRows::default()
        };
        for ((item, forecast), series) in kept
            .into_iter()
            .zip(request.instances.iter().filter(|s| s.item_id.is_some()))
        {
            let mean = forecast.mean();
            let freq = model.freq();
            add.history.keep(item, &series.target, mean.len(), |i| {
                freq.add(series.start, i as i64)
                    .and_utc()
                    .timestamp_millis()
            });
            let bands: Vec<Vec<f32>> = QUANTILES.iter().map(|q| forecast.quantile(*q)).collect();
            for (step, value) in mean.iter().enumerate() {
                add.item_id.push(item.to_owned());
                add.timestamp_ms.push(
                    freq.add(forecast.start, step as i64)
                        .and_utc()
                        .timestamp_millis(),
                );
                add.step.push(step as u32 + 1);
                add.mean.push(*value);
                for (column, band) in add.quantiles.iter_mut().zip(&bands) {
                    column.1.push(band[step]);
                }
            }
        }
        let mut pending = self.pending.lock().expect("not poisoned");
        let rows = pending
            .entry((group.clone(), version))
            .or_insert_with(|| ForecastRows {
                quantiles: QUANTILES.iter().map(|q| (*q, Vec::new())).collect(),
                ..ForecastRows::default()
            });
        rows.item_id.extend(add.item_id);
        rows.timestamp_ms.extend(add.timestamp_ms);
        rows.step.extend(add.step);
        rows.mean.extend(add.mean);
        for (column, more) in rows.quantiles.iter_mut().zip(add.quantiles) {
            column.1.extend(more.1);
        }
        rows.history.item_id.extend(add.history.item_id);
        rows.history.timestamp_ms.extend(add.history.timestamp_ms);
        rows.history.target.extend(add.history.target);
    }

    /// Whether a write is due (time, or a full buffer).
    pub fn due(&self) -> bool {
        let full = self
            .pending
            .lock()
            .expect("not poisoned")
            .values()
            .any(|rows| rows.item_id.len() >= FLUSH_ROWS);
        full || self.last_flush.lock().expect("not poisoned").elapsed() >= FLUSH_EVERY
    }

    /// Writes what is buffered, one run per version.
    pub async fn flush(&self, pool: &AnyPool, lake: &Lake) -> Result<usize, Error> {
        *self.last_flush.lock().expect("not poisoned") = Instant::now();
        let drained: Vec<((GroupName, u32), ForecastRows)> =
            self.pending.lock().expect("not poisoned").drain().collect();
        let mut written = 0;
        for ((group, version), rows) in drained {
            let provenance = jobs::forecasts::Provenance::default();
            jobs::forecasts::write(
                pool,
                lake,
                group.as_str(),
                version,
                &rows,
                Source::Served,
                &provenance,
            )
            .await
            .map_err(|e| Error::Invalid(format!("cannot store served forecasts: {e}")))?;
            written += 1;
        }
        Ok(written)
    }
}
