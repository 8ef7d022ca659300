//! Fitting one series and reading its predictive distribution: the point forecast and the
//! h-step standard deviation, from augurs' models, or seasonal naive with random-walk
//! intervals when the series is too short for them.

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Predict};

use super::Family;

/// The interval level asked of augurs; its half-width over this z-score is the h-step sigma.
const LEVEL: f64 = 0.8;
/// The standard normal's 0.9 quantile.
const Z_90: f64 = 1.281_551_565_544_600_4;

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

/// Fits `family` to `history` (no gaps) and forecasts `horizon` steps. Seasons of
/// `season_lengths` shorter than half the history are used (STL needs two full cycles).
pub fn fit_predict(
    family: Family,
    history: &[f64],
    season_lengths: &[usize],
    horizon: usize,
) -> Fitted {
    let result = match family {
        Family::Ets => AutoETS::non_seasonal()
            .fit(history)
            .map_err(|e| e.to_string())
            .and_then(|fitted| fitted.predict(horizon, LEVEL).map_err(|e| e.to_string())),
        Family::Mstl => {
            let periods: Vec<usize> = season_lengths
                .iter()
                .copied()
                .filter(|&m| 2 * m < history.len())
                .collect();
            if periods.is_empty() {
                // No cycle fits twice: the trend model alone, as statsforecast's MSTL does.
                AutoETS::non_seasonal()
                    .fit(history)
                    .map_err(|e| e.to_string())
                    .and_then(|fitted| fitted.predict(horizon, LEVEL).map_err(|e| e.to_string()))
            } else {
                MSTLModel::new(periods, AutoETS::non_seasonal().into_trend_model())
                    .fit(history)
                    .map_err(|e| e.to_string())
                    .and_then(|fitted| fitted.predict(horizon, LEVEL).map_err(|e| e.to_string()))
            }
        }
    };
    let season = season_lengths.first().copied().unwrap_or(1);
    match result {
        Ok(forecast) => {
            let sigma: Option<Vec<f64>> = forecast.intervals.as_ref().map(|i| {
                i.lower
                    .iter()
                    .zip(&i.upper)
                    .map(|(l, u)| ((u - l) / (2.0 * Z_90)).max(0.0))
                    .collect()
            });
            let usable = forecast.point.len() == horizon
                && forecast.point.iter().all(|v| v.is_finite())
                && sigma
                    .as_ref()
                    .is_some_and(|s| s.len() == horizon && s.iter().all(|v| v.is_finite()));
            if usable {
                Fitted {
                    point: forecast.point,
                    sigma: sigma.expect("checked"),
                    fallback: None,
                }
            } else {
                naive(
                    history,
                    season,
                    horizon,
                    "the fit gave no finite forecast or interval".into(),
                )
            }
        }
        Err(reason) => naive(history, season, horizon, reason),
    }
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
