//! What the network sees at each step, laid out as GluonTS's DeepAR builds it: the lagged
//! targets divided by the window's scale, the log of the scale, the calendar features and the
//! age of the predicted point, and the dynamic features of the predicted point.
//!
//! Step `i` of a window whose first predicted point is `t` reads the target at position
//! `t - context + i` (lag 1) and earlier, and predicts position `t - context + i + 1`. Points
//! before the series start or missing (NaN) count as 0 and unobserved, as GluonTS pads them.

use chrono::NaiveDateTime;

use super::frequency::{Frequency, TimeFeature, age};
use super::series::Series;

/// The shape of the per-step input.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub freq: Frequency,
    pub lags: Vec<usize>,
    pub time_features: &'static [TimeFeature],
    pub num_dynamic_feat: usize,
    pub context_length: usize,
    pub prediction_length: usize,
}

impl Layout {
    pub fn new(
        freq: Frequency,
        context_length: usize,
        prediction_length: usize,
        num_dynamic_feat: usize,
    ) -> Self {
        Self {
            freq,
            lags: freq.lags(),
            time_features: freq.time_features(),
            num_dynamic_feat,
            context_length,
            prediction_length,
        }
    }

    /// Per-step features: lags, log-scale, calendar features, age, dynamic features.
    pub fn input_size(&self) -> usize {
        self.lags.len() + 1 + self.time_features.len() + 1 + self.num_dynamic_feat
    }

    /// Points before the first predicted one that the network reads.
    pub fn history(&self) -> usize {
        self.context_length + self.lags.iter().max().copied().unwrap_or(1) - 1
    }
}

/// A series made ready for windows: missing values zeroed with an observed mask, calendar and
/// age features for every position up to `len + extra`.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub values: Vec<f32>,
    pub observed: Vec<f32>,
    /// `[position][feature]`, calendar features then age.
    pub calendar: Vec<f32>,
    pub dynamic: Vec<Vec<f32>>,
    pub cat: Vec<u32>,
    pub start: NaiveDateTime,
}

impl Prepared {
    pub fn new(series: &Series, layout: &Layout, extra: usize) -> Self {
        let positions = series.target.len() + extra;
        let width = layout.time_features.len() + 1;
        let mut calendar = Vec::with_capacity(positions * width);
        for position in 0..positions {
            let at = layout.freq.add(series.start, position as i64);
            calendar.extend(layout.time_features.iter().map(|f| f.value(at)));
            calendar.push(age(position));
        }
        Self {
            values: series
                .target
                .iter()
                .map(|v| if v.is_nan() { 0.0 } else { *v })
                .collect(),
            observed: series
                .target
                .iter()
                .map(|v| if v.is_nan() { 0.0 } else { 1.0 })
                .collect(),
            calendar,
            dynamic: series.dynamic_feat.clone(),
            cat: series.cat.clone(),
            start: series.start,
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The target at `position` (0 outside the series or where missing).
    pub fn value(&self, position: isize) -> f32 {
        if position < 0 {
            0.0
        } else {
            self.values.get(position as usize).copied().unwrap_or(0.0)
        }
    }

    pub fn is_observed(&self, position: isize) -> f32 {
        if position < 0 {
            0.0
        } else {
            self.observed.get(position as usize).copied().unwrap_or(0.0)
        }
    }

    /// Σ|x| and the observed count over the context before `split`.
    pub fn context_sums(&self, split: usize, context: usize) -> (f64, f64) {
        let mut sum = 0.0;
        let mut count = 0.0;
        for position in split.saturating_sub(context)..split {
            let weight = f64::from(self.observed[position]);
            sum += f64::from(self.values[position].abs()) * weight;
            count += weight;
        }
        (sum, count)
    }
}

/// GluonTS's `MeanScaler`: each window's mean |x| over its observed context; windows with none
/// (or only zeros) take the batch's mean; never below 1e-10.
pub fn scales(sums: &[(f64, f64)]) -> Vec<f32> {
    let total_sum: f64 = sums.iter().map(|(s, _)| s).sum();
    let total_count: f64 = sums.iter().map(|(_, c)| c).sum();
    let default = total_sum / total_count.max(1.0);
    sums.iter()
        .map(|&(sum, count)| {
            let scale = if sum > 0.0 {
                sum / count.max(1.0)
            } else {
                default
            };
            scale.max(1e-10) as f32
        })
        .collect()
}

/// Writes the input of the step whose lag-1 point is `position` into `out`; `scaled(q)` gives
/// the scaled target at position `q` (history or a sampled path).
pub fn write_step(
    layout: &Layout,
    series: &Prepared,
    position: isize,
    log_scale: f32,
    scaled: impl Fn(isize) -> f32,
    out: &mut [f32],
) {
    let mut k = 0;
    for &lag in &layout.lags {
        out[k] = scaled(position + 1 - lag as isize);
        k += 1;
    }
    out[k] = log_scale;
    k += 1;
    let width = layout.time_features.len() + 1;
    let predicted = position + 1;
    if predicted >= 0 && (predicted as usize + 1) * width <= series.calendar.len() {
        let from = predicted as usize * width;
        out[k..k + width].copy_from_slice(&series.calendar[from..from + width]);
    } else {
        out[k..k + width].fill(0.0);
    }
    k += width;
    for row in &series.dynamic {
        out[k] = if predicted >= 0 {
            row.get(predicted as usize).copied().unwrap_or(0.0)
        } else {
            0.0
        };
        k += 1;
    }
}
