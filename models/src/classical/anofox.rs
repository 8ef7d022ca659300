//! The families augurs lacks, from `anofox-forecast`: AutoETS with a season, AutoARIMA and
//! AutoTheta, each read as a point forecast and an h-step standard deviation.
//!
//! - AutoETS (the search here, over anofox's ETS models) and AutoARIMA: their own Gaussian
//!   prediction intervals.
//! - AutoTheta: anofox's interval for the optimised theta models keeps a constant width when the
//!   smoothing parameter is near 1 (a random walk's interval should grow with the square root
//!   of the steps), so the spread is the theta method's own (Hyndman & Billah, 2003: simple
//!   exponential smoothing with drift), `sigma * sqrt(1 + (h - 1) * alpha^2)`, with sigma the
//!   in-sample one-step error and alpha read back from the fitted values (each step moves the
//!   forecast by alpha times the last error).
//! - A seasonal ARIMA over a long season (hourly data's 24 steps) takes minutes per series
//!   (statsforecast's too), so for seasons over [`MAX_SARIMA_SEASON`] steps the cycles are
//!   removed by MSTL and AutoARIMA forecasts what is left: statsforecast's
//!   `MSTL(trend_forecaster=AutoARIMA())`. [`ArimaTrend`] is that trend model.

use std::borrow::Cow;

use anofox_forecast::core::TimeSeries;
use anofox_forecast::models::Forecaster;
use anofox_forecast::models::arima::AutoARIMA;
use anofox_forecast::models::exponential::{
    ETS, ETSSeasonalType as SeasonalType, ETSSpec, ErrorType, TrendType,
};
use anofox_forecast::models::theta::AutoTheta;
use augurs::mstl::{FittedTrendModel, TrendModel};
use augurs::{Forecast, ForecastIntervals};
use chrono::{DateTime, Duration, Utc};

use super::fit::{FitError, LEVEL};

/// The longest season a seasonal ARIMA is fitted over; longer ones go through MSTL.
pub const MAX_SARIMA_SEASON: usize = 12;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `history` as anofox's series. The models read the values only: the timestamps are hourly
/// from the epoch whatever the series' frequency.
fn series(history: &[f64]) -> Result<TimeSeries, FitError> {
    let timestamps: Vec<DateTime<Utc>> = (0..history.len() as i64)
        .map(|i| DateTime::<Utc>::UNIX_EPOCH + Duration::hours(i))
        .collect();
    TimeSeries::univariate(timestamps, history.to_vec()).map_err(FitError::model)
}

/// A fitted model's forecast as a point and an 80 % interval.
fn forecast(model: &dyn Forecaster, horizon: usize) -> Result<Forecast, FitError> {
    let out = model
        .predict_with_intervals(horizon, LEVEL)
        .map_err(FitError::model)?;
    let point = out.primary().to_vec();
    let (Ok(lower), Ok(upper)) = (out.lower_series(0), out.upper_series(0)) else {
        return Err(FitError::NoInterval);
    };
    Ok(Forecast {
        point,
        intervals: Some(ForecastIntervals {
            level: LEVEL,
            lower: lower.to_vec(),
            upper: upper.to_vec(),
        }),
    })
}

/// AutoETS with `season` steps a cycle (none: 1): every model of statsforecast's (and R's)
/// default search fitted, the lowest AICc kept. The error is additive or multiplicative, the
/// trend none, additive or damped, the season none, additive or multiplicative; additive error
/// with a multiplicative season is left out (numerically unstable, as R's `restrict` has it),
/// and so is anything multiplicative when a value is not positive.
///
/// anofox's own `AutoETS` is not used: it drops the seasonal models when a one-way analysis of
/// variance of the raw values finds no seasonal signal, which a strong trend hides (on
/// aus_retail's growing monthly sales it kept ETS(M,A,N) where statsforecast picks ETS(M,A,A),
/// and its forecasts were 1.7 times as far off).
pub fn ets(history: &[f64], season: usize, horizon: usize) -> Result<Forecast, FitError> {
    let data = series(history)?;
    let positive = history.iter().all(|&v| v > 0.0);
    let errors: &[ErrorType] = if positive {
        &[ErrorType::Additive, ErrorType::Multiplicative]
    } else {
        &[ErrorType::Additive]
    };
    let trends = [
        TrendType::None,
        TrendType::Additive,
        TrendType::AdditiveDamped,
    ];
    let seasons: &[SeasonalType] = match (season > 1, positive) {
        (false, _) => &[SeasonalType::None],
        (true, false) => &[SeasonalType::None, SeasonalType::Additive],
        (true, true) => &[
            SeasonalType::None,
            SeasonalType::Additive,
            SeasonalType::Multiplicative,
        ],
    };
    let mut best: Option<(f64, ETS)> = None;
    let mut failures = Vec::new();
    for &error in errors {
        for trend in trends {
            for &seasonal in seasons {
                let spec = ETSSpec::new(error, trend, seasonal);
                if spec.is_r_restricted() {
                    continue;
                }
                let mut model = ETS::new(spec, season.max(1));
                match model.fit(&data) {
                    Ok(()) => {
                        let score = model.aicc().filter(|v| v.is_finite());
                        if let Some(score) = score
                            && best.as_ref().is_none_or(|(b, _)| score < *b)
                        {
                            best = Some((score, model));
                        }
                    }
                    Err(e) => failures.push(format!("{}: {e}", spec.short_name())),
                }
            }
        }
    }
    let (_, model) = best.ok_or_else(|| FitError::NoEtsModel(failures.join("; ")))?;
    forecast(&model, horizon)
}

/// AutoARIMA (stepwise search over the orders, differencing by KPSS and seasonal tests) with
/// `season` steps a cycle (at most [`MAX_SARIMA_SEASON`]; 1 for none).
pub fn arima(history: &[f64], season: usize, horizon: usize) -> Result<Forecast, FitError> {
    let mut model = if season > 1 {
        AutoARIMA::seasonal(season)
    } else {
        AutoARIMA::new()
    };
    model.fit(&series(history)?).map_err(FitError::model)?;
    forecast(&model, horizon)
}

/// AutoTheta (standard, optimised and dynamic theta models, the best by in-sample error) on
/// the series deseasonalised multiplicatively over `season` steps (1: none), as statsforecast's.
/// Returns the point forecast and the h-step standard deviation.
pub fn theta(
    history: &[f64],
    season: usize,
    horizon: usize,
) -> Result<(Vec<f64>, Vec<f64>), FitError> {
    let mut model = if season > 1 {
        AutoTheta::seasonal(season)
    } else {
        AutoTheta::new()
    };
    model.fit(&series(history)?).map_err(FitError::model)?;
    let point = model
        .predict(horizon)
        .map_err(FitError::model)?
        .primary()
        .to_vec();
    let fitted = model.fitted_values().ok_or(FitError::NoFittedValues)?;
    let (sigma, alpha) = one_step_error(history, fitted)?;
    let spread = (0..horizon)
        .map(|h| sigma * (1.0 + h as f64 * alpha * alpha).sqrt())
        .collect();
    Ok((point, spread))
}

/// The in-sample one-step error's standard deviation, and the smoothing parameter that moves
/// the next fitted value by alpha times this step's error (least squares, within 0..=1).
fn one_step_error(history: &[f64], fitted: &[f64]) -> Result<(f64, f64), FitError> {
    let n = history.len().min(fitted.len());
    let errors: Vec<(usize, f64)> = (1..n)
        .filter(|&t| fitted[t].is_finite())
        .map(|t| (t, history[t] - fitted[t]))
        .collect();
    if errors.len() < 2 {
        return Err(FitError::TooFewFittedValues);
    }
    let sigma = (errors.iter().map(|(_, e)| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    let (mut moved, mut squared) = (0.0, 0.0);
    for &(t, e) in &errors {
        if t + 1 < n && fitted[t + 1].is_finite() {
            moved += e * (fitted[t + 1] - fitted[t]);
            squared += e * e;
        }
    }
    let alpha = if squared > 0.0 {
        (moved / squared).clamp(0.0, 1.0)
    } else {
        0.0
    };
    Ok((sigma, alpha))
}

/// AutoARIMA as MSTL's trend model: it forecasts the series once MSTL has removed the cycles.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArimaTrend;

#[derive(Debug)]
struct FittedArima {
    model: AutoARIMA,
    n: usize,
}

impl TrendModel for ArimaTrend {
    fn name(&self) -> Cow<'_, str> {
        Cow::Borrowed("AutoARIMA")
    }

    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedTrendModel + Sync + Send>, BoxError> {
        let mut model = AutoARIMA::new();
        model.fit(&series(y)?)?;
        Ok(Box::new(FittedArima { model, n: y.len() }))
    }
}

impl FittedTrendModel for FittedArima {
    fn predict_inplace(
        &self,
        horizon: usize,
        level: Option<f64>,
        out: &mut Forecast,
    ) -> Result<(), BoxError> {
        let made = match level {
            Some(level) => self.model.predict_with_intervals(horizon, level)?,
            None => self.model.predict(horizon)?,
        };
        out.point = made.primary().to_vec();
        if let (Some(level), Ok(lower), Ok(upper)) =
            (level, made.lower_series(0), made.upper_series(0))
        {
            out.intervals = Some(ForecastIntervals {
                level,
                lower: lower.to_vec(),
                upper: upper.to_vec(),
            });
        }
        Ok(())
    }

    fn predict_in_sample_inplace(
        &self,
        _level: Option<f64>,
        out: &mut Forecast,
    ) -> Result<(), BoxError> {
        out.point = self
            .model
            .fitted_values()
            .ok_or("AutoARIMA kept no fitted values")?
            .to_vec();
        Ok(())
    }

    fn training_data_size(&self) -> Option<usize> {
        Some(self.n)
    }
}
