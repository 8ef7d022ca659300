//! Backtests with SageMaker's convention: each test series is scored on its last
//! `prediction_length` points, the model seeing everything before them. The seasonal-naive
//! baseline is scored on the same windows, so every model's metrics come with the bar it must
//! clear.

use serde::Serialize;

use super::series::Series;
use super::{Forecast, ForecastOptions, Model, forecast};
use crate::metrics::{Metrics, Scored, evaluate};
use crate::{Error, Result, baseline};

/// A model's and seasonal naive's metrics on the same windows.
#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    pub deepar: Metrics,
    pub seasonal_naive: Metrics,
    #[serde(skip)]
    pub forecasts: Vec<Forecast>,
}

/// Splits each test series into the history the model sees and the points it is scored on.
pub fn split_test(
    model: &Model,
    test: &[Series],
    source: &str,
) -> Result<(Vec<Series>, Vec<Vec<f64>>)> {
    let horizon = model.layout.prediction_length;
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

/// Forecasts every test window and scores the forecasts and seasonal naive.
pub fn backtest(
    model: &Model,
    test: &[Series],
    options: ForecastOptions,
    source: &str,
) -> Result<Backtest> {
    let (histories, actuals) = split_test(model, test, source)?;
    let forecasts = forecast(model, &histories, options, source)?;
    let season = model.layout.freq.season();
    let horizon = model.layout.prediction_length;
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
    let quantiles = &model.hyperparameters.test_quantiles;
    let deepar: Vec<Scored<'_>> = pasts
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
        deepar: evaluate(&deepar, season, quantiles)?,
        seasonal_naive: evaluate(&naive, season, quantiles)?,
        forecasts,
    })
}
