//! Blends: one model made of models of different families, its predictive distribution their
//! distributions averaged quantile by quantile with fixed weights (Vincentization), as the
//! classical [`ensemble`](crate::classical) averages its members within one series' fit.
//!
//! A global model trained across every series (DeepAR) and a local one fitted to each series'
//! own history (the classical families) err in different ways, so their average beats both
//! more often than either beats the other; the weight is chosen on validation windows cut from
//! the training data ([`search`]), never on the windows a model is tested on. On aus_retail the
//! classical ensemble scores 0.0245 and DeepAR 0.027 to 0.029 on the last three training years,
//! and the blend with the weight chosen there scores below both on the test year, every seed
//! (README).
//!
//! Each member forecasts the same series with the same options; at every step its sample paths
//! are sorted, and the blend's `i`-th path is the weighted sum of the members' `i`-th smallest
//! values. The paths are quantile tracks (path `i` is the `(i + 0.5) / n` quantile at every
//! step), which is what the SageMaker response's quantiles, mean and samples are read from.
//!
//! The directory (`config.json` with `format` `sluice-blend`) holds each member's own
//! `config.json` inline with its weight, and `model.safetensors` the weights of its DeepAR
//! members, each parameter's name prefixed `member<i>.`; so a blend is uploaded, loaded and
//! served as one model, whatever its members.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::deepar::evaluate::{Backtest, score};
use crate::deepar::series::Series;
use crate::deepar::{Forecast, ForecastOptions, Frequency};
use crate::forecaster::{Forecaster, Forecasting};
use crate::{Error, Result};

/// `config.json`'s `format` for a blend.
pub const FORMAT: &str = "sluice-blend";
/// The directory format; a reader refuses versions it does not know.
pub const FORMAT_VERSION: u64 = 1;
/// [`search`] tries the first member's weight in steps of `1 / GRID_STEPS`, 0 to 1.
pub const GRID_STEPS: u32 = 10;

/// One model of a blend and its share of every quantile.
pub struct Member {
    pub weight: f64,
    pub model: Forecaster,
}

/// Several models of the same horizon and frequency, their quantiles averaged with weights.
pub struct Blend {
    members: Vec<Member>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidArgument {
        field: "members",
        reason: reason.into(),
    }
}

impl Blend {
    /// A blend of at least two models forecasting the same horizon at the same frequency,
    /// none of them a blend; the weights (finite, not negative, not all zero) are normalised.
    pub fn new(members: Vec<Member>) -> Result<Self> {
        let [first, rest @ ..] = members.as_slice() else {
            return Err(invalid("a blend needs at least two members, it has none"));
        };
        if rest.is_empty() {
            return Err(invalid("a blend needs at least two members, it has one"));
        }
        for (i, member) in members.iter().enumerate() {
            if !(member.weight.is_finite() && member.weight >= 0.0) {
                return Err(invalid(format!(
                    "member {i} ({}): weight {} is not a finite share of at least 0",
                    member.model.family(),
                    member.weight
                )));
            }
            if matches!(member.model, Forecaster::Blend(_)) {
                return Err(invalid(format!("member {i} is a blend itself")));
            }
            if !first.model.comparable(&member.model) {
                return Err(invalid(format!(
                    "member {i} ({}) forecasts {} steps at {}, member 0 ({}) {} at {}",
                    member.model.family(),
                    member.model.prediction_length(),
                    member.model.freq(),
                    first.model.family(),
                    first.model.prediction_length(),
                    first.model.freq()
                )));
            }
        }
        let total: f64 = members.iter().map(|m| m.weight).sum();
        if total <= 0.0 {
            return Err(invalid("every weight is 0"));
        }
        let members = members
            .into_iter()
            .map(|m| Member {
                weight: m.weight / total,
                model: m.model,
            })
            .collect();
        Ok(Self { members })
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    fn first(&self) -> &Forecaster {
        &self.members[0].model
    }

    /// `deepar 0.3, ensemble 0.7`: the members and their weights as the registry shows them.
    pub fn describe(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{} {}", m.model.family(), round(m.weight)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn member_prefix(i: usize) -> String {
    format!("member{i}.")
}

/// A weight as the registry shows it: two decimals, no trailing noise.
fn round(weight: f64) -> f64 {
    (weight * 100.0).round() / 100.0
}

impl Forecasting for Blend {
    fn family(&self) -> &'static str {
        "blend"
    }
    fn prediction_length(&self) -> usize {
        self.first().prediction_length()
    }
    fn freq(&self) -> Frequency {
        self.first().freq()
    }
    fn test_quantiles(&self) -> &[f64] {
        self.first().test_quantiles()
    }
    fn num_eval_samples(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.model.num_eval_samples())
            .max()
            .unwrap_or(100)
    }
    /// `algorithm: blend`, `members: "deepar 0.3, ensemble 0.7"`, the horizon and frequency,
    /// and each member's settings under `member<i>.` (`member0.num_cells`).
    fn settings(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("algorithm".into(), Value::String("blend".into()));
        map.insert("members".into(), Value::String(self.describe()));
        map.insert(
            "prediction_length".into(),
            Value::String(self.prediction_length().to_string()),
        );
        map.insert("time_freq".into(), Value::String(self.freq().to_string()));
        for (i, member) in self.members.iter().enumerate() {
            for (key, value) in member.model.settings() {
                map.insert(format!("{}{key}", member_prefix(i)), value);
            }
        }
        map
    }
    fn forecast(
        &self,
        series: &[Series],
        options: ForecastOptions,
        source: &str,
    ) -> Result<Vec<Forecast>> {
        let parts = self
            .members
            .iter()
            .map(|m| Ok((m.weight, m.model.forecast(series, options, source)?)))
            .collect::<Result<Vec<(f64, Vec<Forecast>)>>>()?;
        let parts: Vec<(f64, &[Forecast])> =
            parts.iter().map(|(w, f)| (*w, f.as_slice())).collect();
        combine(&parts)
    }
}

/// The members' forecasts of the same series (in the same order) blended: at every step each
/// member's paths are sorted and the `i`-th blended value is the weighted sum of the members'
/// `i`-th smallest (the weights are used as given). Every member must draw as many paths of
/// the same length for a series.
pub fn combine(parts: &[(f64, &[Forecast])]) -> Result<Vec<Forecast>> {
    let Some((_, first)) = parts.first() else {
        return Ok(Vec::new());
    };
    if let Some((m, (_, other))) = parts
        .iter()
        .enumerate()
        .find(|(_, (_, f))| f.len() != first.len())
    {
        return Err(Error::Shape {
            series: first.len().min(other.len()),
            reason: format!(
                "member {m} forecast {} series, member 0 {}",
                other.len(),
                first.len()
            ),
        });
    }
    let mut blended = Vec::with_capacity(first.len());
    for (s, head) in first.iter().enumerate() {
        let paths = head.samples.len();
        let steps = head.samples.first().map_or(0, Vec::len);
        let mut samples = vec![vec![0.0f64; steps]; paths];
        for (m, (weight, forecasts)) in parts.iter().enumerate() {
            let forecast = &forecasts[s];
            if forecast.samples.len() != paths || forecast.samples.iter().any(|p| p.len() != steps)
            {
                return Err(Error::Shape {
                    series: s,
                    reason: format!(
                        "member {m} drew {} paths of {} steps, member 0 {paths} of {steps}",
                        forecast.samples.len(),
                        forecast.samples.first().map_or(0, Vec::len)
                    ),
                });
            }
            let mut column = Vec::with_capacity(paths);
            for step in 0..steps {
                column.clear();
                column.extend(forecast.samples.iter().map(|p| f64::from(p[step])));
                column.sort_by(f64::total_cmp);
                for (path, value) in samples.iter_mut().zip(&column) {
                    path[step] += weight * value;
                }
            }
        }
        blended.push(Forecast {
            start: head.start,
            samples: samples
                .into_iter()
                .map(|p| p.into_iter().map(|v| v as f32).collect())
                .collect(),
        });
    }
    Ok(blended)
}

/// One weight [`search`] tried and the blend's loss with it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trial {
    /// The first member's weight (the second's is `1 - weight`).
    pub weight: f64,
    #[serde(rename = "mean_wQuantileLoss")]
    pub mean_wql: f64,
}

/// What [`search`] found: every weight tried, and the best one's scores.
#[derive(Debug, Clone)]
pub struct Search {
    pub trials: Vec<Trial>,
    /// The first member's weight with the lowest loss (the lighter of equals).
    pub weight: f64,
    /// The blend with that weight, scored as a backtest (family `blend`).
    pub backtest: Backtest,
}

impl Search {
    /// Whether the best weight mixes the two (neither 0 nor 1): otherwise the blend is one of
    /// its members alone.
    pub fn mixes(&self) -> bool {
        self.weight > 0.0 && self.weight < 1.0
    }
}

/// Chooses the weight of two members' blend on windows neither saw: `first` and `second` are
/// their forecasts of the windows of `scored` (one per line, as [`backtest`] lays them out:
/// each line's last `horizon` points scored, the model seeing what comes before), and the
/// first member's weight is tried from 0 to 1 in steps of `1 / GRID_STEPS`.
///
/// [`backtest`]: crate::deepar::evaluate::backtest
pub fn search(
    first: &[Forecast],
    second: &[Forecast],
    scored: &[Series],
    horizon: usize,
    freq: Frequency,
    quantiles: &[f64],
    source: &str,
) -> Result<Search> {
    let mut trials = Vec::with_capacity(GRID_STEPS as usize + 1);
    let mut best: Option<(f64, Backtest)> = None;
    for step in 0..=GRID_STEPS {
        let weight = f64::from(step) / f64::from(GRID_STEPS);
        let blended = combine(&[(weight, first), (1.0 - weight, second)])?;
        let result = score(
            "blend",
            blended,
            scored,
            horizon,
            freq.season(),
            quantiles,
            source,
        )?;
        let loss = result.model.mean_weighted_quantile_loss;
        trials.push(Trial {
            weight,
            mean_wql: loss,
        });
        let better = match &best {
            None => loss.is_finite(),
            Some((_, b)) => loss < b.model.mean_weighted_quantile_loss,
        };
        if better {
            best = Some((weight, result));
        }
    }
    let (weight, backtest) = best.ok_or_else(|| Error::Shape {
        series: 0,
        reason: format!("{source}: no weight gives the blend a finite loss"),
    })?;
    Ok(Search {
        trials,
        weight,
        backtest,
    })
}

mod directory;

pub use directory::{load_paths, needs_weights, save, save_paths};

#[cfg(test)]
mod tests;
