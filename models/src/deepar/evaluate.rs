//! Backtests with SageMaker's convention: each test series is scored on its last
//! `prediction_length` points, the model seeing everything before them. The seasonal-naive
//! baseline is scored on the same windows, so every model's metrics come with the bar it must
//! clear.

use serde::Serialize;

use super::series::Series;
use super::{Forecast, ForecastOptions};
use crate::forecaster::Forecasting;
use crate::metrics::{Metrics, Scored, evaluate};
use crate::{Error, Result, baseline};

/// A model's and seasonal naive's metrics on the same windows.
#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    /// The model's family (`deepar`, `mstl`, ...).
    pub family: &'static str,
    pub model: Metrics,
    pub seasonal_naive: Metrics,
    #[serde(skip)]
    pub forecasts: Vec<Forecast>,
}

/// Splits each test series into the history the model sees and the points it is scored on.
pub fn split_test(
    horizon: usize,
    test: &[Series],
    source: &str,
) -> Result<(Vec<Series>, Vec<Vec<f64>>)> {
    let mut histories = Vec::with_capacity(test.len());
    let mut actuals = Vec::with_capacity(test.len());
    for (index, series) in test.iter().enumerate() {
        if series.target.len() <= horizon {
            return Err(Error::Input {
                file: source.to_string(),
                line: index + 1,
                field: "target".into(),
                reason: format!(
                    "{} points; a test series needs more than prediction_length ({horizon}): it is scored on its last {horizon}",
                    series.target.len()
                ),
            });
        }
        let cut = series.target.len() - horizon;
        let mut history = series.clone();
        history.target.truncate(cut);
        actuals.push(series.target[cut..].iter().map(|v| f64::from(*v)).collect());
        histories.push(history);
    }
    Ok((histories, actuals))
}

/// Validation windows cut from training series: the series without their last `horizon`
/// points (what a model is fitted on), and the whole series whose last window is scored (those
/// that keep at least `horizon` points before it, one of them observed, so that every family
/// can be fitted on what is left: DeepAR trains on series of at least `prediction_length`).
pub fn hold_out(train: &[Series], horizon: usize) -> (Vec<Series>, Vec<Series>) {
    let scored: Vec<Series> = train
        .iter()
        .filter(|s| {
            s.target.len() >= 2 * horizon
                && s.target[..s.target.len() - horizon]
                    .iter()
                    .any(|v| !v.is_nan())
        })
        .cloned()
        .collect();
    let trimmed = scored
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.target.truncate(s.target.len() - horizon);
            for row in &mut s.dynamic_feat {
                row.truncate(s.target.len());
            }
            s
        })
        .collect();
    (trimmed, scored)
}

#[cfg(test)]
#[test]
fn held_out_series_keep_a_horizon_to_fit_on() {
    let series = |n: usize| Series {
        start: chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap(),
        target: vec![1.0; n],
        cat: vec![],
        dynamic_feat: vec![vec![0.0; n]],
        item_id: None,
    };
    let (trimmed, scored) = hold_out(&[series(20), series(24), series(30)], 12);
    assert_eq!(
        scored.iter().map(|s| s.target.len()).collect::<Vec<_>>(),
        [24, 30]
    );
    assert_eq!(
        trimmed.iter().map(|s| s.target.len()).collect::<Vec<_>>(),
        [12, 18]
    );
    assert_eq!(trimmed[1].dynamic_feat[0].len(), 18);
}

/// Forecasts every test window and scores the forecasts and seasonal naive.
pub fn backtest<F: Forecasting + ?Sized>(
    model: &F,
    test: &[Series],
    options: ForecastOptions,
    source: &str,
) -> Result<Backtest> {
    let horizon = model.prediction_length();
    let (histories, actuals) = split_test(horizon, test, source)?;
    let forecasts = model.forecast(&histories, options, source)?;
    let season = model.freq().season();
    let pasts: Vec<Vec<f64>> = histories
        .iter()
        .map(|h| h.target.iter().map(|v| f64::from(*v)).collect())
        .collect();
    let samples: Vec<Vec<Vec<f64>>> = forecasts
        .iter()
        .map(|f| {
            f.samples
                .iter()
                .map(|path| path.iter().map(|v| f64::from(*v)).collect())
                .collect()
        })
        .collect();
    let naive: Vec<Vec<Vec<f64>>> = pasts
        .iter()
        .map(|past| Ok(vec![baseline::seasonal_naive(past, season, horizon)?]))
        .collect::<Result<_>>()?;
    let quantiles = model.test_quantiles();
    let scored: Vec<Scored<'_>> = pasts
        .iter()
        .zip(&actuals)
        .zip(&samples)
        .map(|((past, actual), samples)| Scored {
            past,
            actual,
            samples,
        })
        .collect();
    let naive: Vec<Scored<'_>> = pasts
        .iter()
        .zip(&actuals)
        .zip(&naive)
        .map(|((past, actual), samples)| Scored {
            past,
            actual,
            samples,
        })
        .collect();
    Ok(Backtest {
        family: model.family(),
        model: evaluate(&scored, season, quantiles)?,
        seasonal_naive: evaluate(&naive, season, quantiles)?,
        forecasts,
    })
}
