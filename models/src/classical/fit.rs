//! Fitting one series and reading its predictive distribution: the point forecast and the
//! h-step standard deviation, from augurs' models (MSTL) and anofox's (AutoETS, AutoARIMA,
//! AutoTheta), or seasonal naive with random-walk intervals when a fit fails.

use augurs::mstl::MSTLModel;
use augurs::{Fit, Forecast, Predict};

use super::{Family, anofox};

/// The interval level asked of the models; its half-width over this z-score is the h-step sigma.
pub(super) const LEVEL: f64 = 0.8;
/// The standard normal's 0.9 quantile.
pub(super) const Z_90: f64 = 1.281_551_565_544_600_4;

/// Why a family's model could not forecast a series: seasonal naive forecasts it instead, with
/// this as its fallback reason.
#[derive(Debug, thiserror::Error)]
pub(super) enum FitError {
    /// The model's library refused the series or did not converge (its own message).
    #[error("{0}")]
    Model(String),
    /// The model forecast points but no interval.
    #[error("the model gave no prediction interval")]
    NoInterval,
    /// Not one model of the AutoETS search fitted (each one's failure).
    #[error("no ETS model fitted ({0})")]
    NoEtsModel(String),
    /// The model kept no in-sample fitted values to measure its error by.
    #[error("the model kept no fitted values")]
    NoFittedValues,
    /// Too few in-sample fitted values to measure the model's error.
    #[error("too few fitted values to measure the model's error")]
    TooFewFittedValues,
    /// The model forecast a value or an interval that is not finite.
    #[error("the fit gave no finite forecast or interval")]
    NotFinite,
}

impl FitError {
    /// A model library's error, by its message (the libraries' error types differ).
    pub(super) fn model(error: impl std::fmt::Display) -> Self {
        FitError::Model(error.to_string())
    }
}

/// A series' predictive distribution: `point[h] + sigma[h] * N(0, 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub point: Vec<f64>,
    pub sigma: Vec<f64>,
    /// Why seasonal naive forecast the series instead of the family's model.
    pub fallback: Option<String>,
}

/// The target with gaps filled: leading missing values dropped, interior gaps linearly
/// interpolated, trailing ones carrying the last observed value.
pub fn fill_gaps(target: &[f32]) -> Vec<f64> {
    let Some(first) = target.iter().position(|v| !v.is_nan()) else {
        return vec![];
    };
    let values: Vec<f64> = target[first..].iter().map(|v| f64::from(*v)).collect();
    let mut out = values.clone();
    let mut last: Option<usize> = None;
    for (i, v) in values.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if let Some(previous) = last
            && i > previous + 1
        {
            let (a, b) = (values[previous], *v);
            let span = (i - previous) as f64;
            for (j, slot) in out.iter_mut().enumerate().take(i).skip(previous + 1) {
                *slot = a + (b - a) * (j - previous) as f64 / span;
            }
        }
        last = Some(i);
    }
    let end = last.expect("one value is observed");
    let tail = values[end];
    for slot in &mut out[end + 1..] {
        *slot = tail;
    }
    out
}

/// Fits `family` to `history` (no gaps) and forecasts `horizon` steps. Only seasons of
/// `season_lengths` shorter than half the history are used (a cycle is estimated from two at
/// least); `ets`, `arima` and `theta` model one season, the shortest. An `ensemble` here is
/// the default members' ([`combine`] takes others).
pub fn fit_predict(
    family: Family,
    history: &[f64],
    season_lengths: &[usize],
    horizon: usize,
) -> Fitted {
    let periods: Vec<usize> = season_lengths
        .iter()
        .copied()
        .filter(|&m| 2 * m < history.len())
        .collect();
    let season = periods.iter().copied().min().unwrap_or(1);
    let result: Result<(Vec<f64>, Vec<f64>), FitError> = match family {
        Family::Ensemble => {
            return combine(&super::DEFAULT_MEMBERS, history, season_lengths, horizon);
        }
        Family::Theta => anofox::theta(history, season, horizon),
        Family::Ets => spread(anofox::ets(history, season, horizon)),
        Family::Arima if season <= anofox::MAX_SARIMA_SEASON => {
            spread(anofox::arima(history, season, horizon))
        }
        Family::Arima => spread(
            MSTLModel::new(periods, anofox::ArimaTrend)
                .fit(history)
                .map_err(FitError::model)
                .and_then(|fitted| fitted.predict(horizon, LEVEL).map_err(FitError::model)),
        ),
        // No cycle fits twice: the trend model alone, as statsforecast's MSTL does.
        Family::Mstl if periods.is_empty() => spread(
            augurs::ets::AutoETS::non_seasonal()
                .fit(history)
                .map_err(FitError::model)
                .and_then(|fitted| fitted.predict(horizon, LEVEL).map_err(FitError::model)),
        ),
        Family::Mstl => spread(
            MSTLModel::new(
                periods,
                augurs::ets::AutoETS::non_seasonal().into_trend_model(),
            )
            .fit(history)
            .map_err(FitError::model)
            .and_then(|fitted| fitted.predict(horizon, LEVEL).map_err(FitError::model)),
        ),
    };
    let fallback_season = season_lengths.iter().copied().min().unwrap_or(1);
    match result {
        Ok((point, sigma))
            if point.len() == horizon
                && sigma.len() == horizon
                && point.iter().chain(&sigma).all(|v| v.is_finite()) =>
        {
            Fitted {
                point,
                sigma,
                fallback: None,
            }
        }
        Ok(_) => naive(
            history,
            fallback_season,
            horizon,
            FitError::NotFinite.to_string(),
        ),
        Err(reason) => naive(history, fallback_season, horizon, reason.to_string()),
    }
}

/// The members' fits combined: their quantiles averaged level by level (Vincentization),
/// each member weighted by how well it forecast the series' own last `horizon` steps.
///
/// Each member is fitted once more on the history without its last `horizon` steps and scored
/// on them (the mean quantile loss at the 0.1..0.9 levels), and its weight is the inverse of
/// that loss raised to [`WEIGHT_POWER`], normalised: a member that missed the series' last
/// season by twice as much gets half the weight. Only the history handed to the model is
/// used, so the weights are as honest as the fit itself on validation and test windows.
/// Where the hold-out cannot score every member (too short a history, a fit that falls back,
/// a perfect score), the members are weighted equally.
///
/// Each member's predictive distribution is Gaussian, `N(point, sigma)`, so the weighted
/// average of their quantiles is the Gaussian with the weighted points and sigmas. Members
/// that fell back to seasonal naive on the whole history are left out; when every one did,
/// the first fallback stands.
pub fn combine(
    members: &[Family],
    history: &[f64],
    season_lengths: &[usize],
    horizon: usize,
) -> Fitted {
    let fits: Vec<(Family, Fitted)> = members
        .iter()
        .map(|&m| (m, fit_predict(m, history, season_lengths, horizon)))
        .collect();
    let fitted: Vec<(Family, &Fitted)> = fits
        .iter()
        .filter(|(_, f)| f.fallback.is_none())
        .map(|(m, f)| (*m, f))
        .collect();
    if fitted.is_empty() {
        let reasons: Vec<String> = fits
            .iter()
            .map(|(m, f)| format!("{}: {}", m.name(), f.fallback.as_deref().unwrap_or("")))
            .collect();
        let mut first = fits
            .into_iter()
            .next()
            .map(|(_, f)| f)
            .unwrap_or_else(|| naive(history, 1, horizon, String::new()));
        first.fallback = Some(format!("every member fell back ({})", reasons.join("; ")));
        return first;
    }
    let families: Vec<Family> = fitted.iter().map(|(m, _)| *m).collect();
    let weights = weights(&families, history, season_lengths, horizon);
    let average = |pick: fn(&Fitted) -> &[f64]| -> Vec<f64> {
        (0..horizon)
            .map(|h| {
                fitted
                    .iter()
                    .zip(&weights)
                    .map(|((_, f), w)| w * pick(f)[h])
                    .sum::<f64>()
            })
            .collect()
    };
    Fitted {
        point: average(|f| &f.point),
        sigma: average(|f| &f.sigma),
        fallback: None,
    }
}

/// How sharply an ensemble favours the members that forecast a series' last steps best: the
/// weight is the inverse of the hold-out loss to this power.
pub const WEIGHT_POWER: i32 = 1;

/// The members' weights from the series' own last `horizon` steps (see [`combine`]); equal
/// weights where a member cannot be scored on them.
pub fn weights(
    members: &[Family],
    history: &[f64],
    season_lengths: &[usize],
    horizon: usize,
) -> Vec<f64> {
    let equal = vec![1.0 / members.len().max(1) as f64; members.len()];
    if members.len() < 2 || history.len() <= horizon {
        return equal;
    }
    let (past, actual) = history.split_at(history.len() - horizon);
    let losses: Vec<Option<f64>> = members
        .iter()
        .map(|&m| {
            let fit = fit_predict(m, past, season_lengths, horizon);
            let loss = fit
                .fallback
                .is_none()
                .then(|| quantile_loss(&fit, actual))?;
            (loss.is_finite() && loss > 0.0).then_some(loss)
        })
        .collect();
    if losses.iter().any(Option::is_none) {
        return equal;
    }
    let inverse: Vec<f64> = losses
        .iter()
        .map(|l| l.expect("checked").powi(-WEIGHT_POWER))
        .collect();
    let total: f64 = inverse.iter().sum();
    if !total.is_finite() || total <= 0.0 {
        return equal;
    }
    inverse.iter().map(|v| v / total).collect()
}

/// The standard normal's quantiles at 0.1, 0.2, ..., 0.9.
const DECILE_Z: [f64; 9] = [
    -Z_90,
    -0.841_621_233_572_914_3,
    -0.524_400_512_708_041_2,
    -0.253_347_103_135_799_7,
    0.0,
    0.253_347_103_135_799_7,
    0.524_400_512_708_041_2,
    0.841_621_233_572_914_3,
    Z_90,
];

/// A Gaussian forecast's mean quantile loss against `actual`, over the levels 0.1..0.9 (the
/// benchmark's mean_wQuantileLoss before its division by the actuals' sum).
pub fn quantile_loss(fit: &Fitted, actual: &[f64]) -> f64 {
    let mut total = 0.0;
    for ((y, point), sigma) in actual.iter().zip(&fit.point).zip(&fit.sigma) {
        for (i, z) in DECILE_Z.iter().enumerate() {
            let level = (i + 1) as f64 / 10.0;
            let error = y - (point + sigma * z);
            total += 2.0 * (level * error).max((level - 1.0) * error);
        }
    }
    total / DECILE_Z.len() as f64
}

/// A forecast's point and h-step standard deviation (its 80 % interval's half-width over the
/// normal's 0.9 quantile).
fn spread(forecast: Result<Forecast, FitError>) -> Result<(Vec<f64>, Vec<f64>), FitError> {
    let forecast = forecast?;
    let sigma = forecast
        .intervals
        .as_ref()
        .ok_or(FitError::NoInterval)?
        .lower
        .iter()
        .zip(&forecast.intervals.as_ref().expect("checked").upper)
        .map(|(l, u)| ((u - l) / (2.0 * Z_90)).max(0.0))
        .collect();
    Ok((forecast.point, sigma))
}

/// Seasonal naive with random-walk intervals: the value a season back, with the spread of the
/// seasonal differences growing with the square root of the seasons ahead.
fn naive(history: &[f64], season: usize, horizon: usize, why: String) -> Fitted {
    let season = if history.len() > season { season } else { 1 };
    let last = history.last().copied().unwrap_or(0.0);
    let point: Vec<f64> = (0..horizon)
        .map(|h| {
            if history.len() >= season {
                history[history.len() - season + h % season]
            } else {
                last
            }
        })
        .collect();
    let differences: Vec<f64> = history
        .iter()
        .skip(season)
        .zip(history)
        .map(|(a, b)| a - b)
        .collect();
    let spread = if differences.len() > 1 {
        let mean = differences.iter().sum::<f64>() / differences.len() as f64;
        (differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>()
            / (differences.len() - 1) as f64)
            .sqrt()
    } else {
        0.0
    };
    let sigma = (0..horizon)
        .map(|h| spread * ((h / season + 1) as f64).sqrt())
        .collect();
    Fitted {
        point,
        sigma,
        fallback: Some(why),
    }
}
