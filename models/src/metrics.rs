//! Forecast accuracy with GluonTS's definitions (`gluonts.evaluation.Evaluator`), so figures
//! compare directly: per series, the median forecast gives the absolute errors, MASE and sMAPE,
//! the mean gives the MSE, each quantile its loss and coverage; then MASE, sMAPE, MSIS, MSE and
//! coverage are averaged over series, while absolute errors and quantile losses are summed, and
//! RMSE, NRMSE, ND, the weighted quantile losses and their mean are derived from the aggregates.
//! Missing actuals (NaN) are left out.

use serde::Serialize;

use crate::{Error, Result};

/// One series to score: its history, the actual future, and sample paths of the forecast.
#[derive(Debug, Clone, Copy)]
pub struct Scored<'a> {
    pub past: &'a [f64],
    pub actual: &'a [f64],
    /// `samples[path][step]`; a point forecast is one path.
    pub samples: &'a [Vec<f64>],
}

/// The aggregate metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub series: usize,
    pub mse: f64,
    pub rmse: f64,
    pub nrmse: f64,
    pub nd: f64,
    pub mase: f64,
    pub smape: f64,
    pub msis: f64,
    pub abs_error: f64,
    pub abs_target_sum: f64,
    pub abs_target_mean: f64,
    pub seasonal_error: f64,
    /// (quantile, value) in the order asked.
    pub quantile_loss: Vec<(f64, f64)>,
    pub weighted_quantile_loss: Vec<(f64, f64)>,
    pub coverage: Vec<(f64, f64)>,
    pub mean_weighted_quantile_loss: f64,
}

impl Metrics {
    /// The figures under GluonTS's names (`mean_wQuantileLoss`, `ND`, `wQuantileLoss[0.5]`,
    /// `Coverage[0.9]`, ...): the registry's and reports' persisted form.
    pub fn gluonts_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        let mut put = |name: String, value: f64| {
            map.insert(name, serde_json::json!(value));
        };
        put("series".into(), self.series as f64);
        put(
            "mean_wQuantileLoss".into(),
            self.mean_weighted_quantile_loss,
        );
        put("ND".into(), self.nd);
        put("NRMSE".into(), self.nrmse);
        put("RMSE".into(), self.rmse);
        put("MSE".into(), self.mse);
        put("MASE".into(), self.mase);
        put("sMAPE".into(), self.smape);
        put("MSIS".into(), self.msis);
        put("abs_error".into(), self.abs_error);
        put("abs_target_sum".into(), self.abs_target_sum);
        for (q, v) in &self.weighted_quantile_loss {
            put(format!("wQuantileLoss[{q}]"), *v);
        }
        for (q, v) in &self.coverage {
            put(format!("Coverage[{q}]"), *v);
        }
        serde_json::Value::Object(map)
    }
}

/// The q-quantile of values, with numpy's default (linear) interpolation. Sorts `values`.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let position = q * (values.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    values[low] + (values[high] - values[low]) * (position - low as f64)
}

/// Mean absolute difference between the history and itself one season earlier (GluonTS's
/// `calculate_seasonal_error`; a season as long as the history falls back to 1).
pub fn seasonal_error(past: &[f64], season: usize) -> f64 {
    let lag = if season < past.len() { season } else { 1 };
    let diffs: Vec<f64> = past
        .iter()
        .zip(&past[lag.min(past.len())..])
        .map(|(a, b)| (b - a).abs())
        .filter(|d| !d.is_nan())
        .collect();
    if diffs.is_empty() {
        f64::NAN
    } else {
        diffs.iter().sum::<f64>() / diffs.len() as f64
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values
        .filter(|v| !v.is_nan())
        .fold((0.0, 0_usize), |(s, c), v| (s + v, c + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

struct PerSeries {
    mse: f64,
    abs_error: f64,
    abs_target_sum: f64,
    abs_target_mean: f64,
    seasonal_error: f64,
    mase: f64,
    smape: f64,
    msis: f64,
    quantile_loss: Vec<f64>,
    coverage: Vec<f64>,
}

fn score(index: usize, series: &Scored<'_>, season: usize, quantiles: &[f64]) -> Result<PerSeries> {
    let horizon = series.actual.len();
    let shape = |reason: String| Error::Shape {
        series: index,
        reason,
    };
    if series.samples.is_empty() {
        return Err(shape("no sample paths".into()));
    }
    if let Some(path) = series.samples.iter().find(|p| p.len() != horizon) {
        return Err(shape(format!(
            "a sample path has {} steps for {horizon} actual values",
            path.len()
        )));
    }
    let at = |step: usize| -> Vec<f64> { series.samples.iter().map(|p| p[step]).collect() };
    let median: Vec<f64> = (0..horizon).map(|t| quantile(&mut at(t), 0.5)).collect();
    let point_mean: Vec<f64> = (0..horizon)
        .map(|t| at(t).iter().sum::<f64>() / series.samples.len() as f64)
        .collect();
    let observed: Vec<usize> = (0..horizon)
        .filter(|&t| !series.actual[t].is_nan())
        .collect();
    let y = |t: usize| series.actual[t];
    let error = seasonal_error(series.past, season);
    let abs_error: f64 = observed.iter().map(|&t| (y(t) - median[t]).abs()).sum();
    let alpha = 0.05;
    let (lower, upper): (Vec<f64>, Vec<f64>) = (0..horizon)
        .map(|t| {
            (
                quantile(&mut at(t), alpha / 2.0),
                quantile(&mut at(t), 1.0 - alpha / 2.0),
            )
        })
        .unzip();
    Ok(PerSeries {
        mse: mean(observed.iter().map(|&t| (y(t) - point_mean[t]).powi(2))),
        abs_error,
        abs_target_sum: observed.iter().map(|&t| y(t).abs()).sum(),
        abs_target_mean: mean(observed.iter().map(|&t| y(t).abs())),
        seasonal_error: error,
        mase: mean(observed.iter().map(|&t| (y(t) - median[t]).abs())) / error,
        smape: 2.0
            * mean(
                observed
                    .iter()
                    .map(|&t| (y(t) - median[t]).abs() / (y(t).abs() + median[t].abs())),
            ),
        msis: mean(observed.iter().map(|&t| {
            let (l, u, v) = (lower[t], upper[t], y(t));
            u - l
                + 2.0 / alpha * (l - v) * f64::from(u8::from(v < l))
                + 2.0 / alpha * (v - u) * f64::from(u8::from(v > u))
        })) / error,
        quantile_loss: quantiles
            .iter()
            .map(|&q| {
                2.0 * observed
                    .iter()
                    .map(|&t| {
                        let forecast = quantile(&mut at(t), q);
                        ((y(t) - forecast) * (f64::from(u8::from(y(t) <= forecast)) - q)).abs()
                    })
                    .sum::<f64>()
            })
            .collect(),
        coverage: quantiles
            .iter()
            .map(|&q| {
                mean(
                    observed
                        .iter()
                        .map(|&t| f64::from(u8::from(y(t) < quantile(&mut at(t), q)))),
                )
            })
            .collect(),
    })
}

/// GluonTS's default quantiles, 0.1 to 0.9.
pub const DEFAULT_QUANTILES: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Scores forecasts of several series; `season` as [`crate::baseline::seasonality`] gives it.
pub fn evaluate(series: &[Scored<'_>], season: usize, quantiles: &[f64]) -> Result<Metrics> {
    if let Some(q) = quantiles
        .iter()
        .find(|q| !(0.0..1.0).contains(*q) || **q == 0.0)
    {
        return Err(Error::InvalidArgument {
            field: "quantile",
            reason: format!("{q} is not in (0, 1)"),
        });
    }
    let scores: Vec<PerSeries> = series
        .iter()
        .enumerate()
        .map(|(i, s)| score(i, s, season, quantiles))
        .collect::<Result<_>>()?;
    let over = |f: &dyn Fn(&PerSeries) -> f64| mean(scores.iter().map(f));
    let sum = |f: &dyn Fn(&PerSeries) -> f64| scores.iter().map(f).sum::<f64>();
    let mse = over(&|s| s.mse);
    let abs_target_sum = sum(&|s| s.abs_target_sum);
    let abs_target_mean = over(&|s| s.abs_target_mean);
    let quantile_loss: Vec<(f64, f64)> = quantiles
        .iter()
        .enumerate()
        .map(|(i, &q)| (q, sum(&|s| s.quantile_loss[i])))
        .collect();
    let weighted: Vec<(f64, f64)> = quantile_loss
        .iter()
        .map(|&(q, loss)| (q, loss / abs_target_sum))
        .collect();
    Ok(Metrics {
        series: scores.len(),
        mse,
        rmse: mse.sqrt(),
        nrmse: mse.sqrt() / abs_target_mean,
        nd: sum(&|s| s.abs_error) / abs_target_sum,
        mase: over(&|s| s.mase),
        smape: over(&|s| s.smape),
        msis: over(&|s| s.msis),
        abs_error: sum(&|s| s.abs_error),
        abs_target_sum,
        abs_target_mean,
        seasonal_error: over(&|s| s.seasonal_error),
        mean_weighted_quantile_loss: mean(weighted.iter().map(|(_, w)| *w)),
        coverage: quantiles
            .iter()
            .enumerate()
            .map(|(i, &q)| (q, over(&|s| s.coverage[i])))
            .collect(),
        quantile_loss,
        weighted_quantile_loss: weighted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        close(quantile(&mut [4.0, 1.0, 3.0, 2.0], 0.1), 1.3);
        close(quantile(&mut [4.0, 1.0, 3.0, 2.0], 0.5), 2.5);
        close(quantile(&mut [7.0], 0.9), 7.0);
    }

    #[test]
    fn metrics_match_hand_computed_values() {
        // History 1,2,3,4 (season 1: seasonal error 1); actual 5,7; a point forecast 4,8.
        let samples = vec![vec![4.0, 8.0]];
        let scored = [Scored {
            past: &[1.0, 2.0, 3.0, 4.0],
            actual: &[5.0, 7.0],
            samples: &samples,
        }];
        let m = evaluate(&scored, 1, &[0.5]).unwrap();
        close(m.seasonal_error, 1.0);
        close(m.abs_error, 2.0);
        close(m.mase, 1.0);
        close(m.smape, (2.0 / 9.0 + 2.0 / 15.0) / 2.0);
        close(m.mse, 1.0);
        close(m.nrmse, 1.0 / 6.0);
        close(m.nd, 2.0 / 12.0);
        close(m.quantile_loss[0].1, 2.0);
        close(m.weighted_quantile_loss[0].1, 2.0 / 12.0);
        close(m.mean_weighted_quantile_loss, 2.0 / 12.0);
        close(m.coverage[0].1, 0.5);
        // A point forecast's interval is the point: MSIS is the scaled absolute penalty, 2/α·|y−ŷ|.
        close(m.msis, (40.0 * 1.0 + 40.0 * 1.0) / 2.0);
    }

    #[test]
    fn sample_paths_give_quantile_losses_and_missing_actuals_are_skipped() {
        // Samples 0..=10 at each step: q-quantile = 10q.
        let samples: Vec<Vec<f64>> = (0..=10).map(|v| vec![f64::from(v), f64::from(v)]).collect();
        let scored = [Scored {
            past: &[0.0, 2.0, 4.0],
            actual: &[5.0, f64::NAN],
            samples: &samples,
        }];
        let m = evaluate(&scored, 1, &[0.1, 0.9]).unwrap();
        // y=5: q=0.1 → ŷ=1, loss 2·|4·(0−0.1)| = 0.8; q=0.9 → ŷ=9, loss 2·|−4·(1−0.9)| = 0.8.
        close(m.quantile_loss[0].1, 0.8);
        close(m.quantile_loss[1].1, 0.8);
        close(m.abs_target_sum, 5.0);
        close(m.coverage[0].1, 0.0);
        close(m.coverage[1].1, 1.0);
        assert!(evaluate(&scored, 1, &[1.5]).is_err());
        let ragged = [Scored {
            past: &[1.0],
            actual: &[1.0, 2.0],
            samples: &[vec![1.0]],
        }];
        assert!(matches!(
            evaluate(&ragged, 1, &[0.5]),
            Err(Error::Shape { series: 0, .. })
        ));
    }
}
