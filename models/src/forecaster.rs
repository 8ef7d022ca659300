//! Every model family behind one face. A [`Forecaster`] is what the registry stores and what
//! publishing, serving, batch forecasts and backtests use: DeepAR (a trained network) or one of
//! the [`classical`](crate::classical) challengers (local models fitted on each series' own
//! history when it is forecast). All of them answer with sample paths ([`Forecast`]), so the
//! SageMaker response (quantiles, mean, samples) and the scoring are the same for every family.
//!
//! The model directory says which family it holds: `config.json`'s `format` is `sluice-deepar`
//! (with `model.safetensors` beside it), `sluice-classical` (the settings are the whole
//! model) or `sluice-blend` (several of the others, weighted; see [`blend`](crate::blend)).

use std::path::Path;

use candle_core::Device;
use serde_json::{Map, Value};

use crate::blend::{self, Blend};
use crate::classical::{self, Classical};
use crate::deepar::artifact::{self, Lineage};
use crate::deepar::series::Series;
use crate::deepar::{Forecast, ForecastOptions, Frequency, Model};
use crate::{Error, Result};

/// What every model family does: forecast `prediction_length` steps after each series' end,
/// as sample paths.
pub trait Forecasting {
    /// The family's name as the registry and the task outputs write it (`deepar`, `mstl`).
    fn family(&self) -> &'static str;
    fn prediction_length(&self) -> usize;
    fn freq(&self) -> Frequency;
    /// The quantiles a backtest scores.
    fn test_quantiles(&self) -> &[f64];
    /// The sample paths a backtest draws.
    fn num_eval_samples(&self) -> usize;
    /// The settings as the registry records them (SageMaker-style names, string values).
    fn settings(&self) -> Map<String, Value>;
    /// Sample paths of each series' future; `source` names the input in errors.
    fn forecast(
        &self,
        series: &[Series],
        options: ForecastOptions,
        source: &str,
    ) -> Result<Vec<Forecast>>;
}

impl Forecasting for Model {
    fn family(&self) -> &'static str {
        "deepar"
    }
    fn prediction_length(&self) -> usize {
        self.layout.prediction_length
    }
    fn freq(&self) -> Frequency {
        self.hyperparameters.time_freq
    }
    fn test_quantiles(&self) -> &[f64] {
        &self.hyperparameters.test_quantiles
    }
    fn num_eval_samples(&self) -> usize {
        self.hyperparameters.num_eval_samples
    }
    fn settings(&self) -> Map<String, Value> {
        self.hyperparameters.to_map()
    }
    fn forecast(
        &self,
        series: &[Series],
        options: ForecastOptions,
        source: &str,
    ) -> Result<Vec<Forecast>> {
        crate::deepar::forecast(self, series, options, source)
    }
}

/// A registered model of any family.
pub enum Forecaster {
    /// Boxed: a network is much larger than a classical model's settings.
    DeepAR(Box<Model>),
    Classical(Classical),
    /// Boxed: its members are forecasters themselves.
    Blend(Box<Blend>),
}

impl Forecaster {
    fn inner(&self) -> &dyn Forecasting {
        match self {
            Forecaster::DeepAR(model) => model.as_ref(),
            Forecaster::Classical(model) => model,
            Forecaster::Blend(model) => model.as_ref(),
        }
    }

    /// The probe's length, categorical and dynamic features (see [`probe`](Self::probe)).
    fn probe_shape(&self) -> (usize, usize, usize) {
        match self {
            Forecaster::DeepAR(model) => (
                (model.layout.context_length * 2).max(8),
                model.network.shape.cardinality.len(),
                model.layout.num_dynamic_feat,
            ),
            Forecaster::Classical(model) => (
                (model.season_lengths.iter().max().copied().unwrap_or(4) * 2 + 1).max(8),
                0,
                0,
            ),
            // Long enough for every member, with the features its DeepAR member reads.
            Forecaster::Blend(blend) => blend
                .members()
                .iter()
                .map(|m| m.model.probe_shape())
                .fold((8, 0, 0), |(l, c, d), (ml, mc, md)| {
                    (l.max(ml), c.max(mc), d.max(md))
                }),
        }
    }

    /// A series the model must accept and forecast finitely before it serves: a weekly-ish
    /// pattern long enough for its context (DeepAR) or its longest season twice over (MSTL).
    pub fn probe(&self) -> Series {
        let (length, cat, dynamic) = self.probe_shape();
        let horizon = self.prediction_length();
        Series {
            start: chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("a valid date"),
            target: (0..length).map(|i| 10.0 + (i % 7) as f32).collect(),
            cat: vec![0; cat],
            dynamic_feat: vec![vec![0.0; length + horizon]; dynamic],
            item_id: None,
        }
    }

    /// Forecasts [`probe`](Self::probe) and checks every sample is finite.
    pub fn check(&self) -> std::result::Result<(), String> {
        let options = ForecastOptions {
            num_samples: 4,
            seed: 0,
            ..ForecastOptions::default()
        };
        let forecasts = self
            .forecast(&[self.probe()], options, "probe")
            .map_err(|e| e.to_string())?;
        let finite = forecasts
            .iter()
            .flat_map(|f| f.samples.iter().flatten())
            .all(|v| v.is_finite());
        if finite {
            Ok(())
        } else {
            Err("the probe forecast is not finite".into())
        }
    }

    /// Whether two models forecast the same thing (horizon and frequency), so that their
    /// scores on the same windows compare.
    pub fn comparable(&self, other: &dyn Forecasting) -> bool {
        self.prediction_length() == other.prediction_length() && self.freq() == other.freq()
    }
}

impl Forecasting for Forecaster {
    fn family(&self) -> &'static str {
        self.inner().family()
    }
    fn prediction_length(&self) -> usize {
        self.inner().prediction_length()
    }
    fn freq(&self) -> Frequency {
        self.inner().freq()
    }
    fn test_quantiles(&self) -> &[f64] {
        self.inner().test_quantiles()
    }
    fn num_eval_samples(&self) -> usize {
        self.inner().num_eval_samples()
    }
    fn settings(&self) -> Map<String, Value> {
        self.inner().settings()
    }
    fn forecast(
        &self,
        series: &[Series],
        options: ForecastOptions,
        source: &str,
    ) -> Result<Vec<Forecast>> {
        self.inner().forecast(series, options, source)
    }
}

/// Which family a model directory's `config.json` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// DeepAR: the config and `model.safetensors`.
    DeepAR,
    /// A classical challenger: the config alone.
    Classical,
    /// A blend: the config (its members' inline) and, when a member is DeepAR,
    /// `model.safetensors`.
    Blend,
}

impl Format {
    /// The files a model directory of this format must hold.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Format::DeepAR => &[artifact::CONFIG, artifact::WEIGHTS],
            Format::Classical | Format::Blend => &[artifact::CONFIG],
        }
    }
}

/// Whether a `config.json` needs the directory's `model.safetensors` to load (DeepAR, or a
/// blend with a DeepAR member); `source` names the directory in errors.
pub fn needs_weights(config: &[u8], source: &str) -> Result<bool> {
    Ok(match format_of(config, source)? {
        Format::DeepAR => true,
        Format::Classical => false,
        Format::Blend => blend::needs_weights(&serde_json::from_slice(config).map_err(|e| {
            Error::Io {
                path: Path::new(source)
                    .join(artifact::CONFIG)
                    .display()
                    .to_string(),
                reason: e.to_string(),
            }
        })?),
    })
}

/// Reads the format of a `config.json`'s bytes; `source` names the directory in errors.
pub fn format_of(config: &[u8], source: &str) -> Result<Format> {
    let path = Path::new(source).join(artifact::CONFIG);
    let value: Value = serde_json::from_slice(config).map_err(|e| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    match value.get("format").and_then(Value::as_str) {
        Some("sluice-deepar") => Ok(Format::DeepAR),
        Some(classical::FORMAT) => Ok(Format::Classical),
        Some(blend::FORMAT) => Ok(Format::Blend),
        other => Err(Error::Io {
            path: path.display().to_string(),
            reason: format!(
                "format {other:?} is not a sluice model (sluice-deepar, {} or {})",
                classical::FORMAT,
                blend::FORMAT
            ),
        }),
    }
}

/// Builds a model from the bytes of its directory's files (`weights` only where
/// [`needs_weights`]);
/// `source` names the directory in errors.
pub fn from_bytes(
    config: &[u8],
    weights: Option<&[u8]>,
    source: &str,
    device: &Device,
) -> Result<(Forecaster, Lineage)> {
    match format_of(config, source)? {
        Format::DeepAR => {
            let weights = weights.ok_or_else(|| Error::Io {
                path: Path::new(source)
                    .join(artifact::WEIGHTS)
                    .display()
                    .to_string(),
                reason: "missing".into(),
            })?;
            let (model, lineage) = artifact::from_bytes(config, weights, source, device)?;
            Ok((Forecaster::DeepAR(Box::new(model)), lineage))
        }
        Format::Classical => {
            let (model, lineage) = classical::from_bytes(config, source)?;
            Ok((Forecaster::Classical(model), lineage))
        }
        Format::Blend => {
            let (model, lineage) = Blend::from_bytes(config, weights, source, device)?;
            Ok((Forecaster::Blend(Box::new(model)), lineage))
        }
    }
}

/// Loads a model directory of any family.
pub fn load(dir: &Path, device: &Device) -> Result<(Forecaster, Lineage)> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    };
    let config = read(artifact::CONFIG)?;
    let source = dir.display().to_string();
    let weights = if needs_weights(&config, &source)? {
        Some(read(artifact::WEIGHTS)?)
    } else {
        None
    };
    from_bytes(&config, weights.as_deref(), &source, device)
}
