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

/// How many scored points [`validation_windows`] aims for.
pub const VALIDATION_POINTS: usize = 1000;
/// The fewest rolling windows [`validation_windows`] holds out where the series are long
/// enough: the champion and a blend's weight are chosen on these scores, and one window is one
/// draw of the period (one year of monthly data), so an unusual last period would decide alone.
pub const MIN_VALIDATION_WINDOWS: usize = 3;
/// The most rolling windows [`validation_windows`] holds out (a week of daily windows).
pub const MAX_VALIDATION_WINDOWS: usize = 7;
/// [`validation_windows`] holds out no more than a quarter of a typical series.
const HELD_OUT_SHARE: usize = 4;

/// The rolling validation windows a training set holds out when a request names none: enough
/// to score about [`VALIDATION_POINTS`] points and at least [`MIN_VALIDATION_WINDOWS`], at most
/// [`MAX_VALIDATION_WINDOWS`], and no more than a quarter of the median series, so that short
/// histories keep most of their data to fit on (and never none). One window of four hourly
/// series scores 96 points, too few to tell candidates apart (pedestrian's 4,104-hour series
/// hold out a week); 152 monthly series score 1,824 points in one window, but one year is one
/// draw (aus_retail holds out three: on its last training year alone DeepAR's held-out score
/// ranged 0.0250 to 0.0285 over five seeds); four days of hourly data hold out one.
pub fn validation_windows(train: &[Series], horizon: usize) -> usize {
    let mut lengths: Vec<usize> = train.iter().map(|s| s.target.len()).collect();
    lengths.sort_unstable();
    let median = lengths.get(lengths.len() / 2).copied().unwrap_or(0);
    let by_points = VALIDATION_POINTS.div_ceil((train.len() * horizon).max(1));
    let by_length = median / (HELD_OUT_SHARE * horizon).max(1);
    by_points
        .clamp(MIN_VALIDATION_WINDOWS, MAX_VALIDATION_WINDOWS)
        .min(by_length)
        .max(1)
}

/// Rolling validation windows cut from training series, as the test windows are laid out: the
/// series without their last `windows` x `horizon` points (what a model is fitted on), and,
/// for each series, `windows` lines ending one horizon apart whose last `horizon` points are
/// scored, the model seeing everything before them (a classical model refits on each). Only
/// series that keep at least `horizon` points before the first window, one of them observed,
/// take part, so that every family can be fitted on what is left (DeepAR trains on series of
/// at least `prediction_length`).
pub fn hold_out(train: &[Series], horizon: usize, windows: usize) -> (Vec<Series>, Vec<Series>) {
    let held = windows.max(1) * horizon;
    let truncated = |s: &Series, len: usize| {
        let mut s = s.clone();
        s.target.truncate(len);
        for row in &mut s.dynamic_feat {
            row.truncate(len);
        }
        s
    };
    let taking_part: Vec<&Series> = train
        .iter()
        .filter(|s| {
            s.target.len() >= held + horizon
                && s.target[..s.target.len() - held]
                    .iter()
                    .any(|v| !v.is_nan())
        })
        .collect();
    let trimmed = taking_part
        .iter()
        .map(|s| truncated(s, s.target.len() - held))
        .collect();
    let scored = taking_part
        .iter()
        .flat_map(|s| {
            (0..windows.max(1))
                .rev()
                .map(move |w| truncated(s, s.target.len() - w * horizon))
        })
        .collect();
    (trimmed, scored)
}

/// A series of `n` hourly points counting up from 0, with one dynamic feature.
#[cfg(test)]
fn counting(n: usize) -> Series {
    Series {
        start: chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap(),
        target: (0..n).map(|i| i as f32).collect(),
        cat: vec![],
        dynamic_feat: vec![vec![0.0; n]],
        item_id: None,
    }
}

#[cfg(test)]
#[test]
fn held_out_series_keep_a_horizon_to_fit_on() {
    let series = counting;
    let (trimmed, scored) = hold_out(&[series(20), series(24), series(30)], 12, 1);
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

#[cfg(test)]
#[test]
fn rolling_windows_end_one_horizon_apart_and_none_is_fitted_on() {
    let series = counting;
    // 3 windows of 4: a series needs 16 points; the 15-point one takes no part.
    let (trimmed, scored) = hold_out(&[series(15), series(16), series(30)], 4, 3);
    let lengths = |s: &[Series]| s.iter().map(|s| s.target.len()).collect::<Vec<_>>();
    assert_eq!(lengths(&trimmed), [4, 18]);
    assert_eq!(lengths(&scored), [8, 12, 16, 22, 26, 30]);
    // What a model is fitted on ends where the first scored window starts.
    for (fit, first) in trimmed.iter().zip(scored.iter().step_by(3)) {
        assert_eq!(fit.target.len(), first.target.len() - 4);
        assert_eq!(first.dynamic_feat[0].len(), first.target.len());
    }
    // Four long hourly series hold out a week of days; 152 monthly series score 1,000 points
    // in one year but hold out three (never fewer where history allows); twenty monthly series
    // score 1,000 points in five years, but eight years of history hold out two (a quarter).
    assert_eq!(validation_windows(&vec![series(4104); 4], 24), 7);
    assert_eq!(validation_windows(&vec![series(441); 152], 12), 3);
    assert_eq!(validation_windows(&vec![series(120); 152], 12), 2);
    assert_eq!(validation_windows(&vec![series(4104); 1000], 24), 3);
    assert_eq!(validation_windows(&vec![series(240); 20], 12), 5);
    assert_eq!(validation_windows(&vec![series(96); 20], 12), 2);
    // Four days of hourly data: one window, as much as a quarter allows (and never none).
    assert_eq!(validation_windows(&vec![series(96); 3], 24), 1);
    assert_eq!(validation_windows(&vec![series(30); 3], 24), 1);
}

/// Forecasts every test window and scores the forecasts and seasonal naive.
pub fn backtest<F: Forecasting + ?Sized>(
    model: &F,
    test: &[Series],
    options: ForecastOptions,
    source: &str,
) -> Result<Backtest> {
    let horizon = model.prediction_length();
    let (histories, _) = split_test(horizon, test, source)?;
    let forecasts = model.forecast(&histories, options, source)?;
    score(
        model.family(),
        forecasts,
        test,
        horizon,
        model.freq().season(),
        model.test_quantiles(),
        source,
    )
}

/// Scores forecasts of every test window (one per line of `test`, in order, as [`backtest`]
/// makes them) and seasonal naive on the same windows: for forecasts made elsewhere, such as
/// a blend of several models' forecasts ([`crate::blend`]).
pub fn score(
    family: &'static str,
    forecasts: Vec<Forecast>,
    test: &[Series],
    horizon: usize,
    season: usize,
    quantiles: &[f64],
    source: &str,
) -> Result<Backtest> {
    let (histories, actuals) = split_test(horizon, test, source)?;
    if forecasts.len() != histories.len() {
        return Err(Error::Shape {
            series: forecasts.len().min(histories.len()),
            reason: format!(
                "{} forecasts for {} windows of {source}",
                forecasts.len(),
                histories.len()
            ),
        });
    }
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
        family,
        model: evaluate(&scored, season, quantiles)?,
        seasonal_naive: evaluate(&naive, season, quantiles)?,
        forecasts,
    })
}
