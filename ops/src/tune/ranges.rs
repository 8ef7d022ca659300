//! The search space, as SageMaker's automatic model tuning writes it (`HyperParameterRanges`:
//! integer, continuous and categorical ranges over DeepAR's hyperparameter names, values as
//! strings, each with a `ScalingType`), and the random draws from it.

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The hyperparameters a tuning run may search (SageMaker DeepAR's tunable ones, and the
/// likelihood). `epochs` is not among them: successive halving sets it, rung by rung.
pub const TUNABLE: [&str; 8] = [
    "context_length",
    "num_cells",
    "num_layers",
    "learning_rate",
    "dropout_rate",
    "embedding_dimension",
    "mini_batch_size",
    "likelihood",
];

/// Whether a tunable name takes whole numbers (integer ranges), real numbers (continuous
/// ranges) or neither (categorical only).
fn kind_of(name: &str) -> Option<Kind> {
    match name {
        "context_length"
        | "num_cells"
        | "num_layers"
        | "embedding_dimension"
        | "mini_batch_size" => Some(Kind::Integer),
        "learning_rate" | "dropout_rate" => Some(Kind::Continuous),
        "likelihood" => Some(Kind::Categorical),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Continuous,
    Categorical,
}

/// How values are spread between the bounds (SageMaker's `ScalingType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Scaling {
    /// Logarithmic when the bounds are positive and span two orders of magnitude or more,
    /// linear otherwise.
    #[default]
    Auto,
    Linear,
    Logarithmic,
    /// Denser near the upper bound (continuous ranges within [0, 1) only).
    ReverseLogarithmic,
}

/// A number SageMaker writes as a string (`"0.001"`); JSON numbers are read too.
fn number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| serde::de::Error::custom("not a number")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number"))),
        other => Err(serde::de::Error::custom(format!("{other} is not a number"))),
    }
}

/// `{"Name", "MinValue", "MaxValue", "ScalingType"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct NumericRange {
    pub name: String,
    #[serde(deserialize_with = "number")]
    pub min_value: f64,
    #[serde(deserialize_with = "number")]
    pub max_value: f64,
    #[serde(default)]
    pub scaling_type: Scaling,
}

/// `{"Name", "Values": [...]}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct CategoricalRange {
    pub name: String,
    pub values: Vec<Value>,
}

/// SageMaker's `HyperParameterRanges`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Ranges {
    #[serde(default)]
    pub integer_parameter_ranges: Vec<NumericRange>,
    #[serde(default)]
    pub continuous_parameter_ranges: Vec<NumericRange>,
    #[serde(default)]
    pub categorical_parameter_ranges: Vec<CategoricalRange>,
}

fn range(name: &str, min: f64, max: f64, scaling: Scaling) -> NumericRange {
    NumericRange {
        name: name.into(),
        min_value: min,
        max_value: max,
        scaling_type: scaling,
    }
}

impl Ranges {
    /// The search space when a run names none, around DeepAR's usual settings for a horizon
    /// of `prediction_length` steps: context of half to twice the horizon, 16 to 64 cells in
    /// 1 to 3 layers, learning rates 1e-4 to 1e-2 (logarithmic), dropout up to 0.2, batches of
    /// 16 to 128 (logarithmic), embeddings of 2 to 16, and a Gaussian or Student-t likelihood.
    pub fn defaults(prediction_length: usize) -> Self {
        let horizon = prediction_length as f64;
        Self {
            integer_parameter_ranges: vec![
                range(
                    "context_length",
                    (horizon / 2.0).ceil().max(1.0),
                    horizon * 2.0,
                    Scaling::Linear,
                ),
                range("num_cells", 16.0, 64.0, Scaling::Linear),
                range("num_layers", 1.0, 3.0, Scaling::Linear),
                range("mini_batch_size", 16.0, 128.0, Scaling::Logarithmic),
                range("embedding_dimension", 2.0, 16.0, Scaling::Linear),
            ],
            continuous_parameter_ranges: vec![
                range("learning_rate", 1e-4, 1e-2, Scaling::Logarithmic),
                range("dropout_rate", 0.0, 0.2, Scaling::Linear),
            ],
            categorical_parameter_ranges: vec![CategoricalRange {
                name: "likelihood".into(),
                values: vec![Value::from("gaussian"), Value::from("student-T")],
            }],
        }
    }

    /// Refuses what cannot be searched, naming the range: an unknown or untunable name, a name
    /// twice, a range of the wrong kind, bounds out of order, a logarithmic range through zero.
    pub fn check(&self) -> Result<()> {
        let mut seen: Vec<&str> = Vec::new();
        let kinds = self
            .integer_parameter_ranges
            .iter()
            .map(|r| (&r.name, "IntegerParameterRanges", Kind::Integer))
            .chain(
                self.continuous_parameter_ranges
                    .iter()
                    .map(|r| (&r.name, "ContinuousParameterRanges", Kind::Continuous)),
            )
            .chain(
                self.categorical_parameter_ranges
                    .iter()
                    .map(|r| (&r.name, "CategoricalParameterRanges", Kind::Categorical)),
            );
        for (name, list, kind) in kinds {
            let bad =
                |reason: String| Error::invalid("ranges", format!("{list} {name:?}: {reason}"));
            let Some(own) = kind_of(name) else {
                return Err(bad(if name == "epochs" {
                    "epochs is the budget successive halving sets (the hyperparameters' epochs is the last rung's)".into()
                } else {
                    format!(
                        "not a tunable hyperparameter; tunable: {}",
                        TUNABLE.join(", ")
                    )
                }));
            };
            if seen.contains(&name.as_str()) {
                return Err(bad("searched twice".into()));
            }
            seen.push(name);
            if kind != Kind::Categorical && kind != own {
                return Err(bad(format!(
                    "takes {} values",
                    if own == Kind::Integer {
                        "whole"
                    } else {
                        "categorical"
                    }
                )));
            }
        }
        for r in self
            .integer_parameter_ranges
            .iter()
            .chain(&self.continuous_parameter_ranges)
        {
            let bad = |reason: &str| Error::invalid("ranges", format!("{:?}: {reason}", r.name));
            if !(r.min_value.is_finite() && r.max_value.is_finite()) || r.min_value > r.max_value {
                return Err(bad("MinValue must be a number no greater than MaxValue"));
            }
            if r.scaling_type == Scaling::Logarithmic && r.min_value <= 0.0 {
                return Err(bad("a logarithmic range must lie above zero"));
            }
            if r.scaling_type == Scaling::ReverseLogarithmic
                && (r.min_value < 0.0 || r.max_value >= 1.0)
            {
                return Err(bad("a reverse logarithmic range must lie within [0, 1)"));
            }
        }
        if let Some(r) = self
            .integer_parameter_ranges
            .iter()
            .find(|r| r.scaling_type == Scaling::ReverseLogarithmic)
        {
            return Err(Error::invalid(
                "ranges",
                format!(
                    "{:?}: reverse logarithmic scaling is for continuous ranges",
                    r.name
                ),
            ));
        }
        if let Some(r) = self
            .categorical_parameter_ranges
            .iter()
            .find(|r| r.values.is_empty())
        {
            return Err(Error::invalid(
                "ranges",
                format!("{:?}: no Values to choose from", r.name),
            ));
        }
        Ok(())
    }

    /// One draw: a value per searched name, as the strings SageMaker passes.
    pub fn sample(&self, rng: &mut impl Rng) -> Map<String, Value> {
        let mut out = Map::new();
        for r in &self.integer_parameter_ranges {
            let (lo, hi) = (
                r.min_value.ceil(),
                r.max_value.floor().max(r.min_value.ceil()),
            );
            let value = match scaling(r) {
                Scaling::Logarithmic => (rng.random_range(lo.ln()..=(hi + 1.0).ln())).exp().floor(),
                _ => rng.random_range(lo..=hi + 0.999_999).floor(),
            };
            out.insert(
                r.name.clone(),
                Value::String(format!("{}", value.clamp(lo, hi) as i64)),
            );
        }
        for r in &self.continuous_parameter_ranges {
            let (lo, hi) = (r.min_value, r.max_value);
            let value = match scaling(r) {
                _ if lo == hi => lo,
                Scaling::Logarithmic => rng.random_range(lo.ln()..=hi.ln()).exp(),
                Scaling::ReverseLogarithmic => {
                    1.0 - rng.random_range((1.0 - hi).ln()..=(1.0 - lo).ln()).exp()
                }
                _ => rng.random_range(lo..=hi),
            };
            out.insert(
                r.name.clone(),
                Value::String(significant(value.clamp(lo, hi))),
            );
        }
        for r in &self.categorical_parameter_ranges {
            let value = &r.values[rng.random_range(0..r.values.len())];
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.insert(r.name.clone(), Value::String(text));
        }
        out
    }
}

/// `Auto` resolved: logarithmic for positive bounds two orders of magnitude apart or more.
fn scaling(r: &NumericRange) -> Scaling {
    match r.scaling_type {
        Scaling::Auto if r.min_value > 0.0 && r.max_value / r.min_value >= 100.0 => {
            Scaling::Logarithmic
        }
        Scaling::Auto => Scaling::Linear,
        other => other,
    }
}

/// A real number with four significant digits, written out (`0.0001235`, `0.1500`).
fn significant(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let digits = (3 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.digits$}")
}
