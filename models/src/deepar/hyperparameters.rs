//! SageMaker DeepAR's hyperparameters, by its names and with its string values (`"40"`,
//! `"student-T"`, `"[0.1, 0.5, 0.9]"`), parsed once into a typed [`Hyperparameters`]. Defaults are
//! SageMaker's. Two names are sluice's own, as SageMaker does not expose them:
//! `num_batches_per_epoch` (GluonTS's 50) and `scheduled_sampling` (0.5, see `train.rs`).

use serde_json::{Map, Value};

use super::frequency::Frequency;
use super::likelihood::Likelihood;
use crate::{Error, Result};

/// How the categorical features are sized.
#[derive(Debug, Clone, PartialEq)]
pub enum Cardinality {
    /// From the training data: the largest index of each feature plus one.
    Auto,
    /// No categorical features, even where the data has `cat`.
    Ignore,
    Fixed(Vec<u32>),
}

/// How many dynamic features the series carry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DynamicFeatures {
    Auto,
    Ignore,
    Fixed(usize),
}

/// Every training setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    pub time_freq: Frequency,
    pub context_length: usize,
    pub prediction_length: usize,
    pub epochs: usize,
    pub num_cells: usize,
    pub num_layers: usize,
    pub likelihood: Likelihood,
    pub mini_batch_size: usize,
    pub learning_rate: f64,
    pub dropout_rate: f64,
    pub early_stopping_patience: Option<usize>,
    pub cardinality: Cardinality,
    pub embedding_dimension: usize,
    pub num_dynamic_feat: DynamicFeatures,
    pub num_eval_samples: usize,
    pub test_quantiles: Vec<f64>,
    pub num_batches_per_epoch: usize,
    /// The share of predicted-range inputs fed the model's own draw instead of the truth
    /// during training (scheduled sampling; see `train.rs`).
    pub scheduled_sampling: f64,
}

/// The names accepted, for error messages.
pub const NAMES: [&str; 18] = [
    "time_freq",
    "context_length",
    "prediction_length",
    "epochs",
    "num_cells",
    "num_layers",
    "likelihood",
    "mini_batch_size",
    "learning_rate",
    "dropout_rate",
    "early_stopping_patience",
    "cardinality",
    "embedding_dimension",
    "num_dynamic_feat",
    "num_eval_samples",
    "test_quantiles",
    "num_batches_per_epoch",
    "scheduled_sampling",
];

/// The default of `scheduled_sampling`, chosen on validation splits held out of the forecasting
/// benchmark's training data (the last week of pedestrian, the last year of aus_retail; seeds
/// 0-4, mean_wQuantileLoss): 0.5 was the one rate tried that improved both (0.1848 to 0.1827 and
/// 0.0269 to 0.0267); 0.25 and 0.75 helped pedestrian but hurt aus_retail (0.0273, 0.0278).
pub const SCHEDULED_SAMPLING: f64 = 0.5;

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidArgument {
        field,
        reason: reason.into(),
    }
}

/// A value as text: SageMaker passes strings, JSON files often numbers.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

pub(crate) fn field(map: &Map<String, Value>, name: &'static str) -> Option<String> {
    map.get(name)
        .filter(|v| !v.is_null())
        .map(text)
        .filter(|s| !s.is_empty())
}

pub(crate) fn integer(
    map: &Map<String, Value>,
    name: &'static str,
    default: Option<usize>,
    min: usize,
) -> Result<usize> {
    match field(map, name) {
        None => default.ok_or_else(|| invalid(name, "required")),
        Some(s) => {
            let value: usize = s
                .parse()
                .map_err(|_| invalid(name, format!("{s:?} is not a whole number")))?;
            if value < min {
                return Err(invalid(name, format!("{value} is below the minimum {min}")));
            }
            Ok(value)
        }
    }
}

pub(crate) fn real(
    map: &Map<String, Value>,
    name: &'static str,
    default: f64,
    range: (f64, f64),
) -> Result<f64> {
    match field(map, name) {
        None => Ok(default),
        Some(s) => {
            let value: f64 = s
                .parse()
                .map_err(|_| invalid(name, format!("{s:?} is not a number")))?;
            if !(range.0..=range.1).contains(&value) {
                return Err(invalid(
                    name,
                    format!("{value} is outside [{}, {}]", range.0, range.1),
                ));
            }
            Ok(value)
        }
    }
}

/// `test_quantiles`: the deciles unless given, each strictly between 0 and 1.
pub(crate) fn test_quantiles(map: &Map<String, Value>) -> Result<Vec<f64>> {
    let quantiles = match field(map, "test_quantiles") {
        None => (1..=9).map(|i| f64::from(i) / 10.0).collect(),
        Some(s) => list::<f64>("test_quantiles", &s)?,
    };
    if quantiles.is_empty() || quantiles.iter().any(|q| !(*q > 0.0 && *q < 1.0)) {
        return Err(invalid(
            "test_quantiles",
            "every quantile must lie strictly between 0 and 1",
        ));
    }
    Ok(quantiles)
}

pub(crate) fn list<T: std::str::FromStr>(name: &'static str, s: &str) -> Result<Vec<T>> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<T>()
                .map_err(|_| invalid(name, format!("{p:?} in {s:?} is not valid")))
        })
        .collect()
}

impl Hyperparameters {
    /// Parses SageMaker-style hyperparameters; unknown names are refused (a typo would otherwise
    /// silently train with a default).
    pub fn from_map(map: &Map<String, Value>) -> Result<Self> {
        if let Some(unknown) = map.keys().find(|k| !NAMES.contains(&k.as_str())) {
            return Err(Error::InvalidArgument {
                field: "hyperparameters",
                reason: format!(
                    "unknown hyperparameter {unknown:?}; known: {}",
                    NAMES.join(", ")
                ),
            });
        }
        let time_freq: Frequency = field(map, "time_freq")
            .ok_or_else(|| invalid("time_freq", "required"))?
            .parse()?;
        let likelihood: Likelihood = field(map, "likelihood")
            .unwrap_or_else(|| "student-T".into())
            .parse()?;
        let cardinality = match field(map, "cardinality").as_deref() {
            None | Some("auto") => Cardinality::Auto,
            Some("ignore") | Some("") => Cardinality::Ignore,
            Some(s) => {
                let values: Vec<u32> = list("cardinality", s)?;
                if values.contains(&0) {
                    return Err(invalid(
                        "cardinality",
                        "every feature needs at least one category",
                    ));
                }
                Cardinality::Fixed(values)
            }
        };
        let num_dynamic_feat = match field(map, "num_dynamic_feat").as_deref() {
            None | Some("auto") => DynamicFeatures::Auto,
            Some("ignore") => DynamicFeatures::Ignore,
            Some(s) => DynamicFeatures::Fixed(s.parse().map_err(|_| {
                invalid(
                    "num_dynamic_feat",
                    format!("{s:?}: use auto, ignore or a number"),
                )
            })?),
        };
        let test_quantiles = test_quantiles(map)?;
        let early_stopping_patience = match field(map, "early_stopping_patience") {
            None => None,
            Some(_) => Some(integer(map, "early_stopping_patience", None, 1)?),
        };
        Ok(Self {
            time_freq,
            context_length: integer(map, "context_length", None, 1)?,
            prediction_length: integer(map, "prediction_length", None, 1)?,
            epochs: integer(map, "epochs", None, 1)?,
            num_cells: integer(map, "num_cells", Some(40), 1)?,
            num_layers: integer(map, "num_layers", Some(2), 1)?,
            likelihood,
            mini_batch_size: integer(map, "mini_batch_size", Some(128), 1)?,
            learning_rate: real(map, "learning_rate", 1e-3, (1e-6, 1.0))?,
            dropout_rate: real(map, "dropout_rate", 0.1, (0.0, 0.9))?,
            early_stopping_patience,
            cardinality,
            embedding_dimension: integer(map, "embedding_dimension", Some(10), 1)?,
            num_dynamic_feat,
            num_eval_samples: integer(map, "num_eval_samples", Some(100), 1)?,
            test_quantiles,
            num_batches_per_epoch: integer(map, "num_batches_per_epoch", Some(50), 1)?,
            scheduled_sampling: real(map, "scheduled_sampling", SCHEDULED_SAMPLING, (0.0, 1.0))?,
        })
    }

    /// The SageMaker names with string values, as `config.json` records them.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let mut put = |name: &str, value: String| {
            map.insert(name.to_string(), Value::String(value));
        };
        put("time_freq", self.time_freq.to_string());
        put("context_length", self.context_length.to_string());
        put("prediction_length", self.prediction_length.to_string());
        put("epochs", self.epochs.to_string());
        put("num_cells", self.num_cells.to_string());
        put("num_layers", self.num_layers.to_string());
        put("likelihood", self.likelihood.to_string());
        put("mini_batch_size", self.mini_batch_size.to_string());
        put("learning_rate", self.learning_rate.to_string());
        put("dropout_rate", self.dropout_rate.to_string());
        if let Some(p) = self.early_stopping_patience {
            put("early_stopping_patience", p.to_string());
        }
        put(
            "cardinality",
            match &self.cardinality {
                Cardinality::Auto => "auto".into(),
                Cardinality::Ignore => "ignore".into(),
                Cardinality::Fixed(v) => format!("{v:?}"),
            },
        );
        put("embedding_dimension", self.embedding_dimension.to_string());
        put(
            "num_dynamic_feat",
            match self.num_dynamic_feat {
                DynamicFeatures::Auto => "auto".into(),
                DynamicFeatures::Ignore => "ignore".into(),
                DynamicFeatures::Fixed(n) => n.to_string(),
            },
        );
        put("num_eval_samples", self.num_eval_samples.to_string());
        put("test_quantiles", format!("{:?}", self.test_quantiles));
        put(
            "num_batches_per_epoch",
            self.num_batches_per_epoch.to_string(),
        );
        put("scheduled_sampling", self.scheduled_sampling.to_string());
        map
    }
}
