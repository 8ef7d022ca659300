//! The model directory: `config.json` (SageMaker hyperparameter names with string values, the
//! resolved lags and features, lineage), `model.safetensors` (the weights), and whatever reports
//! the trainer adds (`metrics.json`, `training.json`). Files are written under temporary names
//! and renamed, so a reader never sees half a model.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Hyperparameters, Model};
use crate::{Error, Result};

pub const CONFIG: &str = "config.json";
pub const WEIGHTS: &str = "model.safetensors";
/// The directory format; a reader refuses versions it does not know.
pub const FORMAT_VERSION: u64 = 1;

/// Where a model came from.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Lineage {
    pub seed: u64,
    /// The training data (a path or a dataset snapshot id).
    pub train: String,
    pub dataset_snapshot: Option<String>,
}

fn io(path: &Path, err: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: err.to_string(),
    }
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.partial"));
    std::fs::write(&temporary, bytes).map_err(|e| io(&temporary, e))?;
    std::fs::rename(&temporary, &path).map_err(|e| io(&path, e))
}

/// Writes a JSON report into the model directory.
pub fn write_json(dir: &Path, name: &str, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| io(&dir.join(name), e))?;
    write_file(dir, name, &text)
}

/// Saves the model's config and weights into `dir` (created if needed).
pub fn save(model: &Model, dir: &Path, lineage: &Lineage) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let tensors: HashMap<String, candle_core::Tensor> = model.network.snapshot()?;
    let temporary = dir.join(format!(".{WEIGHTS}.partial"));
    candle_core::safetensors::save(&tensors, &temporary)?;
    std::fs::rename(&temporary, dir.join(WEIGHTS)).map_err(|e| io(&dir.join(WEIGHTS), e))?;
    let config = json!({
        "format": "sluice-deepar",
        "format_version": FORMAT_VERSION,
        "hyperparameters": model.hyperparameters.to_map(),
        "lags": model.layout.lags,
        "time_features": model.layout.time_features.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>(),
        "input_size": model.layout.input_size(),
        "lineage": lineage,
    });
    write_json(dir, CONFIG, &config)
}

/// Loads a model saved by [`save`] onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<(Model, Lineage)> {
    let config_path = dir.join(CONFIG);
    let config = std::fs::read(&config_path).map_err(|e| io(&config_path, e))?;
    let weights_path = dir.join(WEIGHTS);
    let weights = std::fs::read(&weights_path).map_err(|e| io(&weights_path, e))?;
    from_bytes(&config, &weights, &dir.display().to_string(), device)
}

/// Builds a model from the bytes of its `config.json` and `model.safetensors` (read from a
/// lake, say); `source` names the directory in errors.
pub fn from_bytes(
    config: &[u8],
    weights: &[u8],
    source: &str,
    device: &Device,
) -> Result<(Model, Lineage)> {
    let weights_path = Path::new(source).join(WEIGHTS);
    let tensors =
        candle_core::safetensors::load_buffer(weights, device).map_err(|e| io(&weights_path, e))?;
    from_tensors(config, &tensors, source, device)
}

/// Builds a model from the bytes of its `config.json` and its weights, already read (a blend
/// keeps its members' weights in one file).
pub fn from_tensors(
    config: &[u8],
    tensors: &HashMap<String, candle_core::Tensor>,
    source: &str,
    device: &Device,
) -> Result<(Model, Lineage)> {
    let config_path = Path::new(source).join(CONFIG);
    let config: Value = serde_json::from_slice(config).map_err(|e| io(&config_path, e))?;
    let version = config.get("format_version").and_then(Value::as_u64);
    if version != Some(FORMAT_VERSION) {
        return Err(io(
            &config_path,
            format!("format_version {version:?} is not {FORMAT_VERSION}"),
        ));
    }
    let map = config
        .get("hyperparameters")
        .and_then(Value::as_object)
        .ok_or_else(|| io(&config_path, "no hyperparameters object"))?;
    let hyperparameters = Hyperparameters::from_map(map)?;
    let lineage: Lineage = config
        .get("lineage")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| io(&config_path, e))?
        .unwrap_or_default();
    let model = Model::initialise(hyperparameters, &mut ChaCha8Rng::seed_from_u64(0), device)?;
    let weights_path = Path::new(source).join(WEIGHTS);
    model.network.restore(tensors).map_err(|e| match e {
        Error::Io { reason, .. } => io(&weights_path, reason),
        other => other,
    })?;
    Ok((model, lineage))
}
