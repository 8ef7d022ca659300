//! DeepAR (Salinas et al., 2020) on candle, following GluonTS's PyTorch implementation so that
//! results compare: an autoregressive LSTM over lagged, mean-scaled targets, calendar and
//! dynamic features and categorical embeddings, trained by maximum likelihood and forecasting by
//! ancestral sampling.
//!
//! - [`frequency`]: lags, calendar features and time arithmetic per frequency;
//! - [`series`]: SageMaker's JSON-lines series, parsed and checked with line/field errors;
//! - [`hyperparameters`]: SageMaker's hyperparameter names and values;
//! - [`inputs`]: the per-step input and the mean scaling;
//! - [`likelihood`]: Gaussian, Student-t and negative-binomial outputs;
//! - [`network`]: embeddings, stacked LSTM, projection; [`cell`]: the fused LSTM cell;
//! - [`train`]: the training loop; [`forecast`]: sampling; [`evaluate`]: backtests;
//! - [`artifact`]: the model directory (config, safetensors weights, metrics).

pub mod artifact;
pub mod cell;
pub mod evaluate;
pub mod forecast;
pub mod frequency;
pub mod hyperparameters;
pub mod inputs;
pub mod likelihood;
pub mod network;
pub mod series;
pub mod train;

#[cfg(test)]
mod tests;

use candle_core::Device;
use rand_chacha::ChaCha8Rng;

pub use forecast::{Forecast, ForecastOptions, forecast};
pub use frequency::Frequency;
pub use hyperparameters::{Cardinality, DynamicFeatures, Hyperparameters};
pub use likelihood::Likelihood;
pub use series::Series;
pub use train::{EpochReport, TrainOptions, TrainReport, train};

use inputs::{Layout, Prepared};
use network::{Network, Shape};
use series::Origin;

use crate::Result;

/// A DeepAR model: its settings (with the data-dependent ones resolved), its input layout and
/// its network.
pub struct Model {
    /// Hyperparameters with `cardinality` and `num_dynamic_feat` fixed.
    pub hyperparameters: Hyperparameters,
    pub layout: Layout,
    pub network: Network,
}

impl Model {
    /// A model with fresh weights for resolved hyperparameters.
    pub fn initialise(
        hyperparameters: Hyperparameters,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let num_dynamic_feat = match hyperparameters.num_dynamic_feat {
            DynamicFeatures::Fixed(n) => n,
            _ => 0,
        };
        let cardinality = match &hyperparameters.cardinality {
            Cardinality::Fixed(c) => c.clone(),
            _ => vec![],
        };
        let layout = Layout::new(
            hyperparameters.time_freq,
            hyperparameters.context_length,
            hyperparameters.prediction_length,
            num_dynamic_feat,
        );
        let shape = Shape {
            input_size: layout.input_size(),
            embedding_dimension: vec![hyperparameters.embedding_dimension; cardinality.len()],
            cardinality,
            num_layers: hyperparameters.num_layers,
            num_cells: hyperparameters.num_cells,
            num_args: hyperparameters.likelihood.num_args(),
        };
        let network = Network::new(shape, rng, device)?;
        Ok(Self {
            hyperparameters,
            layout,
            network,
        })
    }

    /// The series without the features this model ignores.
    pub fn strip(&self, series: &Series) -> Series {
        let mut series = series.clone();
        if self.layout.num_dynamic_feat == 0 {
            series.dynamic_feat.clear();
        }
        if self.network.shape.cardinality.is_empty() {
            series.cat.clear();
        }
        series
    }

    /// The series ready for windows, with features `extra` points past its end.
    pub fn prepare(&self, series: &Series, extra: usize) -> Prepared {
        Prepared::new(&self.strip(series), &self.layout, extra)
    }
}

/// Fixes `cardinality: auto` and `num_dynamic_feat: auto` from the training data.
pub fn resolve(
    hyperparameters: &Hyperparameters,
    train: &[Series],
    source: &str,
) -> Result<Hyperparameters> {
    let mut resolved = hyperparameters.clone();
    let first = train.first().ok_or_else(|| crate::Error::Input {
        file: source.to_string(),
        line: 0,
        field: String::new(),
        reason: "no series".into(),
    })?;
    if resolved.cardinality == Cardinality::Auto {
        let width = first.cat.len();
        let mut cardinality = vec![0u32; width];
        for (index, series) in train.iter().enumerate() {
            if series.cat.len() != width {
                return Err(Origin {
                    source,
                    line: index + 1,
                }
                .error(
                    "cat",
                    format!("{} categories where line 1 has {width}", series.cat.len()),
                ));
            }
            for (c, &value) in cardinality.iter_mut().zip(&series.cat) {
                *c = (*c).max(value + 1);
            }
        }
        resolved.cardinality = Cardinality::Fixed(cardinality);
    }
    if resolved.cardinality == Cardinality::Ignore {
        resolved.cardinality = Cardinality::Fixed(vec![]);
    }
    resolved.num_dynamic_feat = DynamicFeatures::Fixed(match resolved.num_dynamic_feat {
        DynamicFeatures::Auto => first.dynamic_feat.len(),
        DynamicFeatures::Ignore => 0,
        DynamicFeatures::Fixed(n) => n,
    });
    Ok(resolved)
}
