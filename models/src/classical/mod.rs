//! Classical challengers to DeepAR: local models fitted on each series' own history when it is
//! forecast, as statsforecast fits them, so the "model" a registry version holds is its
//! settings (family, seasons, horizon) and its directory is a `config.json` alone.
//!
//! - `mstl`: multiple seasonal-trend decomposition by LOESS (daily and weekly cycles of hourly
//!   data, say) with the deseasonalised series forecast by AutoETS, from the `augurs` crate
//!   (statsforecast's `MSTL(trend_forecaster=AutoETS(model="ZZN"))`);
//! - `ets`: AutoETS, error, trend and season (none, additive or multiplicative; damped trends
//!   too) chosen by AICc, from `anofox-forecast` (statsforecast's `AutoETS(season_length=m)`);
//! - `arima`: AutoARIMA, the orders (p, d, q)(P, D, Q) found by the stepwise search with the
//!   differencing chosen by unit-root tests, from `anofox-forecast` (statsforecast's
//!   `AutoARIMA(season_length=m)`); for seasons over 12 steps (hourly data's day), a seasonal
//!   ARIMA takes minutes a series, so MSTL removes the cycles and AutoARIMA forecasts the rest;
//! - `theta`: AutoTheta, the best of the standard, optimised and dynamic theta models by
//!   in-sample error, on the series deseasonalised multiplicatively, from `anofox-forecast`
//!   (statsforecast's `AutoTheta(season_length=m)`).
//!
//! - `ensemble`: the combination of several of the families above, each fitted to the series,
//!   their predictive distributions averaged quantile by quantile (`ensemble_members`, default
//!   `arima`, `ets`, `mstl` and `theta`), each member weighted by the inverse of its loss on the
//!   series' own last `prediction_length` steps (fitted once more without them; [`weights`]).
//!   A combination of models rarely loses to its best member and often beats it (the M3 and M4
//!   competitions' lesson): on aus_retail statsforecast's AutoETS and MSTL score 0.0248 and
//!   0.0236, their average 0.0223.
//!
//! `ets`, `arima` and `theta` model one season, the shortest of `season_lengths`; `mstl` every
//! one of them. A season is only modelled where the series holds two cycles of it.
//!
//! Prediction intervals come from the fitted model's predictive distribution (Gaussian with the
//! model's h-step standard deviation); the sample paths a [`Forecast`] carries are drawn from it
//! with the stratified normals DeepAR samples with, so quantiles read off 100 paths are steady.
//! Missing targets (NaN) are filled by linear interpolation before fitting (leading gaps are
//! dropped, trailing ones carry the last value); a series too short for its model is forecast
//! by seasonal naive with random-walk intervals, and the fallback is logged.

mod anofox;
mod fit;

#[cfg(test)]
mod tests;

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use crate::deepar::artifact::{self, Lineage};
use crate::deepar::frequency::Unit;
use crate::deepar::hyperparameters::{field, integer, invalid, list, test_quantiles};
use crate::deepar::likelihood::stratified_normals;
use crate::deepar::series::{Origin, Series};
use crate::deepar::{Forecast, ForecastOptions, Frequency};
use crate::forecaster::Forecasting;
use crate::{Error, Result};

pub use fit::{Fitted, combine, fill_gaps, fit_predict, quantile_loss, weights};

/// `config.json`'s `format` for a classical model.
pub const FORMAT: &str = "sluice-classical";
/// The directory format; a reader refuses versions it does not know.
pub const FORMAT_VERSION: u64 = 2;
/// Version 1 directories (before `ets` was seasonal) still load: an `ets` model without
/// `season_lengths` is read as the non-seasonal model it was.
const OLDEST_FORMAT_VERSION: u64 = 1;

/// A classical model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Mstl,
    Ets,
    Arima,
    Theta,
    /// A combination of the single families above.
    Ensemble,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::Mstl,
        Family::Ets,
        Family::Arima,
        Family::Theta,
        Family::Ensemble,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Mstl => "mstl",
            Family::Ets => "ets",
            Family::Arima => "arima",
            Family::Theta => "theta",
            Family::Ensemble => "ensemble",
        }
    }

    pub fn parse(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl std::str::FromStr for Family {
    type Err = ();

    /// A family's name, quoted or not (`arima`, `"arima"`).
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        Family::parse(s.trim().trim_matches('"')).ok_or(())
    }
}

/// The members of an ensemble when its settings name none: every single family (every family
/// but `ensemble`, what an ensemble may combine).
pub const DEFAULT_MEMBERS: [Family; 4] = [Family::Arima, Family::Ets, Family::Mstl, Family::Theta];

/// The names a classical model reads. DeepAR's other hyperparameters are accepted and ignored,
/// so that one set of settings can feed every family of a nightly run.
pub const NAMES: [&str; 6] = [
    "time_freq",
    "prediction_length",
    "season_lengths",
    "num_eval_samples",
    "test_quantiles",
    "ensemble_members",
];

/// A classical model: its family and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Classical {
    pub family: Family,
    pub time_freq: Frequency,
    pub prediction_length: usize,
    /// The cycles: `mstl` removes all of them, the other families model the shortest (only
    /// those under half a series' length are used); empty for none.
    pub season_lengths: Vec<usize>,
    pub num_eval_samples: usize,
    pub test_quantiles: Vec<f64>,
    /// What an `ensemble` combines (single families, each once); empty for the others.
    pub members: Vec<Family>,
}

/// The cycles a frequency's series usually carry (statsforecast's usual choices): a day and a
/// week of hourly or minute data, a week and a year of daily data, a year of monthly,
/// quarterly or weekly data.
pub fn default_seasons(freq: Frequency) -> Vec<usize> {
    let per = |span: u32, unit_seconds: u32| -> Option<usize> {
        let step = unit_seconds * freq.multiple;
        (span.is_multiple_of(step) && span / step > 1).then_some((span / step) as usize)
    };
    const DAY: u32 = 86_400;
    const WEEK: u32 = 7 * DAY;
    let seasons: Vec<Option<usize>> = match freq.unit {
        Unit::Second => vec![per(DAY, 1)],
        Unit::Minute => vec![per(DAY, 60), per(WEEK, 60)],
        Unit::Hour => vec![per(DAY, 3600), per(WEEK, 3600)],
        Unit::Day => vec![per(WEEK, DAY), per(365 * DAY, DAY)],
        Unit::BusinessDay => vec![(freq.multiple == 1).then_some(5)],
        Unit::Week => vec![(freq.multiple == 1).then_some(52)],
        Unit::Month => vec![
            (12 % freq.multiple == 0 && freq.multiple < 12).then(|| 12 / freq.multiple as usize),
        ],
        Unit::Quarter => vec![(freq.multiple == 1).then_some(4)],
        Unit::Year => vec![],
    };
    seasons.into_iter().flatten().collect()
}

impl Classical {
    /// Reads a family's settings from SageMaker-style hyperparameters; names no family reads
    /// and DeepAR does not know are refused.
    pub fn from_map(family: Family, map: &Map<String, Value>) -> Result<Self> {
        if let Some(unknown) = map.keys().find(|k| {
            !NAMES.contains(&k.as_str())
                && !crate::deepar::hyperparameters::NAMES.contains(&k.as_str())
        }) {
            return Err(invalid(
                "hyperparameters",
                format!(
                    "unknown hyperparameter {unknown:?}; {} reads {}",
                    family.name(),
                    NAMES.join(", ")
                ),
            ));
        }
        let time_freq: Frequency = field(map, "time_freq")
            .ok_or_else(|| invalid("time_freq", "required"))?
            .parse()?;
        let season_lengths = match field(map, "season_lengths") {
            None => default_seasons(time_freq),
            Some(s) => list::<usize>("season_lengths", &s)?,
        };
        if let Some(bad) = season_lengths.iter().find(|&&m| m < 2) {
            return Err(invalid(
                "season_lengths",
                format!("{bad}: a season is at least 2 steps"),
            ));
        }
        let test_quantiles = test_quantiles(map)?;
        let members = match (family, field(map, "ensemble_members")) {
            (Family::Ensemble, None) => DEFAULT_MEMBERS.to_vec(),
            (Family::Ensemble, Some(s)) => {
                let members = list::<Family>("ensemble_members", &s).map_err(|_| {
                    invalid(
                        "ensemble_members",
                        format!(
                            "{s:?}: name families among {}",
                            DEFAULT_MEMBERS.map(Family::name).join(", ")
                        ),
                    )
                })?;
                check_members(&members)?;
                members
            }
            (_, Some(_)) => {
                return Err(invalid(
                    "ensemble_members",
                    format!("only an ensemble has members, not {}", family.name()),
                ));
            }
            (_, None) => vec![],
        };
        Ok(Self {
            members,
            family,
            time_freq,
            prediction_length: integer(map, "prediction_length", None, 1)?,
            season_lengths,
            num_eval_samples: integer(map, "num_eval_samples", Some(100), 1)?,
            test_quantiles,
        })
    }

    /// The settings with string values, as `config.json` and the registry record them.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let mut put = |name: &str, value: String| {
            map.insert(name.to_string(), Value::String(value));
        };
        put("time_freq", self.time_freq.to_string());
        put("prediction_length", self.prediction_length.to_string());
        put("season_lengths", format!("{:?}", self.season_lengths));
        put("num_eval_samples", self.num_eval_samples.to_string());
        put("test_quantiles", format!("{:?}", self.test_quantiles));
        if self.family == Family::Ensemble {
            let names: Vec<&str> = self.members.iter().map(|m| m.name()).collect();
            put("ensemble_members", format!("[{}]", names.join(", ")));
        }
        map
    }

    /// Writes the model directory: `config.json` (the settings are the whole model).
    pub fn save(&self, dir: &Path, lineage: &Lineage) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let config = json!({
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "family": self.family.name(),
            "hyperparameters": self.to_map(),
            "lineage": lineage,
        });
        artifact::write_json(dir, artifact::CONFIG, &config)
    }

    /// One series' forecast; `origin` names it in errors.
    fn forecast_one(
        &self,
        series: &Series,
        paths: usize,
        rng: &mut ChaCha8Rng,
        origin: Origin<'_>,
    ) -> Result<Forecast> {
        if series.observed() == 0 {
            return Err(origin.error("target", "every value is missing (NaN)"));
        }
        let history = fill_gaps(&series.target);
        let horizon = self.prediction_length;
        let fitted = match self.family {
            Family::Ensemble => combine(&self.members, &history, &self.season_lengths, horizon),
            family => fit_predict(family, &history, &self.season_lengths, horizon),
        };
        if let Some(why) = &fitted.fallback {
            tracing::debug!(
                source = origin.source,
                line = origin.line,
                family = self.family.name(),
                "seasonal naive instead: {why}"
            );
        }
        let mut samples = vec![vec![0f32; horizon]; paths];
        let mut normals = Vec::with_capacity(paths);
        for k in 0..horizon {
            stratified_normals(paths, rng, &mut normals);
            for (path, z) in samples.iter_mut().zip(&normals) {
                path[k] = (fitted.point[k] + fitted.sigma[k] * z) as f32;
            }
        }
        Ok(Forecast {
            start: self.time_freq.add(series.start, series.target.len() as i64),
            samples,
        })
    }
}

impl Forecasting for Classical {
    fn family(&self) -> &'static str {
        self.family.name()
    }
    fn prediction_length(&self) -> usize {
        self.prediction_length
    }
    fn freq(&self) -> Frequency {
        self.time_freq
    }
    fn test_quantiles(&self) -> &[f64] {
        &self.test_quantiles
    }
    fn num_eval_samples(&self) -> usize {
        self.num_eval_samples
    }
    fn settings(&self) -> Map<String, Value> {
        let mut map = self.to_map();
        map.insert("algorithm".into(), Value::String(self.family.name().into()));
        map
    }

    /// Fits each series and draws its paths; series are spread over the cores, each with a
    /// random stream of its own (the same seed gives the same paths however many cores).
    fn forecast(
        &self,
        series: &[Series],
        options: ForecastOptions,
        source: &str,
    ) -> Result<Vec<Forecast>> {
        let paths = options.num_samples.max(1);
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(series.len().max(1));
        let chunk = series.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = series
                .chunks(chunk)
                .enumerate()
                .map(|(c, part)| {
                    scope.spawn(move || {
                        part.iter()
                            .enumerate()
                            .map(|(i, s)| {
                                let index = c * chunk + i;
                                let mut rng = ChaCha8Rng::seed_from_u64(
                                    options.seed
                                        ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                                );
                                let origin = Origin {
                                    source,
                                    line: index + 1,
                                };
                                self.forecast_one(s, paths, &mut rng, origin)
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(series.len());
            for handle in handles {
                out.extend(handle.join().map_err(|_| Error::Training {
                    reason: format!("{source}: a classical fit panicked"),
                })??);
            }
            Ok(out)
        })
    }
}

/// An ensemble's members: two or more single families, none twice.
fn check_members(members: &[Family]) -> Result<()> {
    if members.len() < 2 {
        return Err(invalid(
            "ensemble_members",
            "an ensemble combines two families or more",
        ));
    }
    for (i, member) in members.iter().enumerate() {
        if *member == Family::Ensemble {
            return Err(invalid(
                "ensemble_members",
                "an ensemble cannot be a member of an ensemble",
            ));
        }
        if members[..i].contains(member) {
            return Err(invalid(
                "ensemble_members",
                format!("{} is named twice", member.name()),
            ));
        }
    }
    Ok(())
}

/// Builds a classical model from its `config.json`; `source` names the directory in errors.
pub fn from_bytes(config: &[u8], source: &str) -> Result<(Classical, Lineage)> {
    let path = Path::new(source).join(artifact::CONFIG);
    let io = |reason: String| Error::Io {
        path: path.display().to_string(),
        reason,
    };
    let config: Value = serde_json::from_slice(config).map_err(|e| io(e.to_string()))?;
    let version = config.get("format_version").and_then(Value::as_u64);
    if !version.is_some_and(|v| (OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&v)) {
        return Err(io(format!(
            "format_version {version:?} is not one this build reads \
             ({OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})"
        )));
    }
    let name = config.get("family").and_then(Value::as_str).unwrap_or("");
    let family = Family::parse(name).ok_or_else(|| {
        io(format!(
            "family {name:?} is not one of {}",
            Family::ALL.map(Family::name).join(", ")
        ))
    })?;
    let map = config
        .get("hyperparameters")
        .and_then(Value::as_object)
        .ok_or_else(|| io("no hyperparameters object".into()))?;
    let mut model = Classical::from_map(family, map)?;
    if version == Some(1) && family == Family::Ets && !map.contains_key("season_lengths") {
        model.season_lengths.clear();
    }
    let lineage: Lineage = config
        .get("lineage")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| io(e.to_string()))?
        .unwrap_or_default();
    Ok((model, lineage))
}
