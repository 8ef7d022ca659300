//! A blend's directory (`config.json` with every member's config inline, `model.safetensors`
//! with the DeepAR members' weights under `member<i>.`), and the sample-path files a blend's
//! weight is searched on.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::{Value, json};

use super::{Blend, FORMAT, FORMAT_VERSION, Member, invalid, member_prefix};
use crate::deepar::Forecast;
use crate::deepar::artifact::{self, Lineage};
use crate::forecaster::{self, Forecaster, Format};
use crate::{Error, Result};

impl Blend {
    /// Reads a blend's directory from the bytes of its `config.json` and `model.safetensors`
    /// (none when no member is DeepAR); `source` names the directory in errors.
    pub fn from_bytes(
        config: &[u8],
        weights: Option<&[u8]>,
        source: &str,
        device: &Device,
    ) -> Result<(Blend, Lineage)> {
        let config_path = Path::new(source).join(artifact::CONFIG);
        let io = |reason: String| Error::Io {
            path: config_path.display().to_string(),
            reason,
        };
        let config: Value = serde_json::from_slice(config).map_err(|e| io(e.to_string()))?;
        let version = config.get("format_version").and_then(Value::as_u64);
        if version != Some(FORMAT_VERSION) {
            return Err(io(format!(
                "format_version {version:?} is not {FORMAT_VERSION}"
            )));
        }
        let entries = config
            .get("members")
            .and_then(Value::as_array)
            .ok_or_else(|| io("no members array".into()))?;
        let mut tensors = match weights {
            Some(bytes) => {
                candle_core::safetensors::load_buffer(bytes, device).map_err(|e| Error::Io {
                    path: Path::new(source)
                        .join(artifact::WEIGHTS)
                        .display()
                        .to_string(),
                    reason: e.to_string(),
                })?
            }
            None => HashMap::new(),
        };
        let mut members = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let weight = entry
                .get("weight")
                .and_then(Value::as_f64)
                .ok_or_else(|| io(format!("members[{i}]: no weight")))?;
            let member_config = entry
                .get("config")
                .ok_or_else(|| io(format!("members[{i}]: no config")))?
                .to_string();
            let member_source = format!("{source} (member {i})");
            let model = match forecaster::format_of(member_config.as_bytes(), &member_source)? {
                Format::Blend => return Err(io(format!("members[{i}] is a blend itself"))),
                Format::Classical => {
                    let (model, _) =
                        crate::classical::from_bytes(member_config.as_bytes(), &member_source)?;
                    Forecaster::Classical(model)
                }
                Format::DeepAR => {
                    let prefix = member_prefix(i);
                    let own: HashMap<String, Tensor> = tensors
                        .extract_if(|name, _| name.starts_with(&prefix))
                        .map(|(name, t)| (name[prefix.len()..].to_owned(), t))
                        .collect();
                    if own.is_empty() {
                        return Err(Error::Io {
                            path: Path::new(source)
                                .join(artifact::WEIGHTS)
                                .display()
                                .to_string(),
                            reason: format!("no parameters of member {i} ({prefix}*)"),
                        });
                    }
                    let (model, _) = artifact::from_tensors(
                        member_config.as_bytes(),
                        &own,
                        &member_source,
                        device,
                    )?;
                    Forecaster::DeepAR(Box::new(model))
                }
            };
            members.push(Member { weight, model });
        }
        let lineage: Lineage = config
            .get("lineage")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| io(e.to_string()))?
            .unwrap_or_default();
        Ok((Blend::new(members)?, lineage))
    }
}

/// Whether a blend's `config.json` needs a `model.safetensors` beside it (a DeepAR member).
pub fn needs_weights(config: &Value) -> bool {
    config
        .get("members")
        .and_then(Value::as_array)
        .is_some_and(|members| {
            members
                .iter()
                .any(|m| m["config"]["format"].as_str() == Some("sluice-deepar"))
        })
}

/// Writes a blend's directory from its members' model directories (each as training wrote
/// it) and their weights: every member's `config.json` inline, the DeepAR members' weights in
/// one `model.safetensors`. The config is written last, so a reader never sees half a blend.
pub fn save(dir: &Path, members: &[(f64, &Path)], lineage: &Lineage) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    };
    let mut entries = Vec::with_capacity(members.len());
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (i, (weight, member_dir)) in members.iter().enumerate() {
        let config_path = member_dir.join(artifact::CONFIG);
        let bytes = read(&config_path)?;
        let source = member_dir.display().to_string();
        let format = forecaster::format_of(&bytes, &source)?;
        if format == Format::Blend {
            return Err(invalid(format!("{source} is a blend itself")));
        }
        if format == Format::DeepAR {
            let weights_path = member_dir.join(artifact::WEIGHTS);
            let own = candle_core::safetensors::load(&weights_path, &Device::Cpu).map_err(|e| {
                Error::Io {
                    path: weights_path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
            tensors.extend(
                own.into_iter()
                    .map(|(name, t)| (format!("{}{name}", member_prefix(i)), t)),
            );
        }
        let config: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Io {
            path: config_path.display().to_string(),
            reason: e.to_string(),
        })?;
        entries.push(json!({"weight": weight, "config": config}));
    }
    if !tensors.is_empty() {
        let temporary = dir.join(format!(".{}.partial", artifact::WEIGHTS));
        candle_core::safetensors::save(&tensors, &temporary)?;
        let path = dir.join(artifact::WEIGHTS);
        std::fs::rename(&temporary, &path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    let config = json!({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "members": entries,
        "lineage": lineage,
    });
    artifact::write_json(dir, artifact::CONFIG, &config)
}

/// The tensor [`save_paths`] writes: `[forecasts, paths, steps]`.
const PATHS: &str = "samples";

/// Writes forecasts' sample paths (every forecast with as many paths of as many steps) to a
/// safetensors file, through a temporary name and a rename: a candidate's validation
/// forecasts, which a blend of candidates is weighted on.
pub fn save_paths(path: &Path, forecasts: &[Forecast]) -> Result<()> {
    let paths = forecasts.first().map_or(0, |f| f.samples.len());
    let steps = forecasts
        .first()
        .and_then(|f| f.samples.first())
        .map_or(0, Vec::len);
    let mut flat: Vec<f32> = Vec::with_capacity(forecasts.len() * paths * steps);
    for (s, forecast) in forecasts.iter().enumerate() {
        if forecast.samples.len() != paths || forecast.samples.iter().any(|p| p.len() != steps) {
            return Err(Error::Shape {
                series: s,
                reason: format!("not {paths} paths of {steps} steps, as forecast 0"),
            });
        }
        flat.extend(forecast.samples.iter().flatten());
    }
    let tensor = Tensor::from_vec(flat, (forecasts.len(), paths, steps), &Device::Cpu)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.partial"));
    candle_core::safetensors::save(&HashMap::from([(PATHS.to_owned(), tensor)]), &temporary)?;
    std::fs::rename(&temporary, path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Reads what [`save_paths`] wrote: each forecast's paths, `[forecast][path][step]`.
pub fn load_paths(path: &Path) -> Result<Vec<Vec<Vec<f32>>>> {
    let io = |reason: String| Error::Io {
        path: path.display().to_string(),
        reason,
    };
    let tensors =
        candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| io(e.to_string()))?;
    let tensor = tensors
        .get(PATHS)
        .ok_or_else(|| io(format!("no {PATHS:?} tensor")))?;
    tensor.to_vec3::<f32>().map_err(|e| io(e.to_string()))
}
