//! Unit tests of DeepAR's pieces: `features` (lags, calendar features, scaling, step inputs,
//! hyperparameters and series parsing), `likelihood` (closed forms, finite differences,
//! sampling, the fused cell) and `training` (refusals, learning, reproducibility, save/load);
//! with `--features cuda`, `cuda` (the GPU path against the CPU's).

#[cfg(feature = "cuda")]
mod cuda;
mod features;
mod likelihood;
mod training;

use candle_core::{Device, Tensor};
use serde_json::json;

use super::frequency::Frequency;
use super::series::Series;
use super::*;

pub(super) fn freq(text: &str) -> Frequency {
    text.parse().unwrap()
}

pub(super) fn tensor(values: &[f64]) -> Tensor {
    Tensor::from_slice(values, values.len(), &Device::Cpu).unwrap()
}

pub(super) fn series(start: &str, target: Vec<f32>) -> Series {
    Series {
        start: super::series::parse_start(start).unwrap(),
        target,
        cat: vec![],
        dynamic_feat: vec![],
        item_id: None,
    }
}

pub(super) fn hyperparameters(extra: serde_json::Value) -> Hyperparameters {
    let mut map =
        json!({"time_freq": "H", "context_length": "24", "prediction_length": "24", "epochs": "1"});
    map.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    Hyperparameters::from_map(map.as_object().unwrap()).unwrap()
}
