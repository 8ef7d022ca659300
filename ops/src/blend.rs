//! Blending candidates (`sluice blend`, `sluice:blend`): after the nightly's candidates are
//! trained with `validation`, the best global model (DeepAR, trained across every series) and
//! the best local one (a classical family, fitted to each series) by validation loss are
//! blended, quantile by quantile ([`models::blend`]), with the weight that scores best on the
//! same validation windows (0 to 1 in tenths). The blend becomes one more candidate, its
//! directory written beside theirs; publishing chooses among all of them as before.
//!
//! The candidates' own validation forecasts (`validation_forecasts.safetensors`, written by
//! training) are blended, so nothing is trained or fitted again, and no model that saw the
//! validation windows forecasts them. The blend's validation score is the one its weight was
//! chosen by (one number among eleven on the same windows), so it is a little optimistic; a
//! blend is made only when mixing beats both members there, never when the best weight is all
//! one of them.

use std::path::{Path, PathBuf};

use candle_core::Device;
use models::blend::{Trial, search};
use models::deepar::artifact::{self, Lineage};
use models::deepar::evaluate::{Backtest, hold_out};
use models::deepar::series::read_json_lines;
use models::deepar::{Forecast, Series};
use models::forecaster::{self, Forecaster, Forecasting, Format};
use serde::{Deserialize, Serialize};

use crate::train::{VALIDATION_FILE, VALIDATION_FORECASTS_FILE};
use crate::{Error, Ops, Result};

/// `{"candidates": [model_dir, ...], "train", "model_dir"}`: the candidates were trained with
/// `validation` on `train`; the blend, when one is made, is written to `model_dir`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlendRequest {
    pub candidates: Vec<PathBuf>,
    /// The training series the candidates were trained on: the validation windows are cut
    /// from it again to score the blend.
    pub train: PathBuf,
    pub model_dir: PathBuf,
}

/// One member of the blend made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlendMember {
    pub family: String,
    pub model_dir: PathBuf,
    pub weight: f64,
    #[serde(rename = "validation_mean_wQuantileLoss")]
    pub validation_mean_wql: f64,
}

/// The blend made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlendMade {
    pub model_dir: PathBuf,
    /// The global member first.
    pub members: Vec<BlendMember>,
    #[serde(rename = "validation_mean_wQuantileLoss")]
    pub validation_mean_wql: f64,
    /// Every weight of the global member tried, and the blend's validation loss with it.
    pub trials: Vec<Trial>,
}

/// What blending did (the `sluice:blend` task's output).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlendOutput {
    /// The candidates to choose among: the request's, and the blend when one was made.
    pub candidates: Vec<PathBuf>,
    pub blend: Option<BlendMade>,
    /// Why the blend was made with its weight, or why none was.
    pub reason: String,
}

/// `validation.json` of a blend: the backtest on the validation windows, how many windows
/// each series held out, and the weights tried.
#[derive(Serialize)]
struct BlendValidation<'a> {
    #[serde(flatten)]
    backtest: &'a Backtest,
    windows: usize,
    trials: &'a [Trial],
}

/// A candidate as its directory says: its family, kind and validation score.
struct Candidate {
    dir: PathBuf,
    family: String,
    global: bool,
    mean_wql: f64,
    windows: Option<usize>,
}

fn read_candidate(dir: &Path) -> Result<Option<Candidate>> {
    let value = crate::train::read_validation(dir)?;
    let config_path = dir.join(artifact::CONFIG);
    let config = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let global = match forecaster::format_of(&config, &dir.display().to_string())? {
        Format::DeepAR => true,
        Format::Classical => false,
        // A blend (an earlier run's) is not blended again.
        Format::Blend => return Ok(None),
    };
    Ok(Some(Candidate {
        dir: dir.to_path_buf(),
        family: value["family"].as_str().unwrap_or("deepar").to_owned(),
        global,
        mean_wql: value["model"]["mean_weighted_quantile_loss"]
            .as_f64()
            .unwrap_or(f64::NAN),
        windows: value["windows"].as_u64().map(|w| w as usize),
    }))
}

/// The candidate of a kind with the lowest finite validation loss.
fn best(candidates: &[Candidate], global: bool) -> Option<&Candidate> {
    candidates
        .iter()
        .filter(|c| c.global == global && c.mean_wql.is_finite())
        .min_by(|a, b| a.mean_wql.total_cmp(&b.mean_wql))
}

/// A candidate's validation forecasts as forecasts of the scored lines' windows.
fn validation_forecasts(
    candidate: &Candidate,
    scored: &[Series],
    model: &Forecaster,
) -> Result<Vec<Forecast>> {
    let path = candidate.dir.join(VALIDATION_FORECASTS_FILE);
    let paths = models::blend::load_paths(&path)?;
    if paths.len() != scored.len() {
        return Err(Error::invalid(
            "candidates",
            format!(
                "{}: {} forecasts, but the training data holds {} validation windows; was it trained on this training file?",
                path.display(),
                paths.len(),
                scored.len()
            ),
        ));
    }
    let horizon = model.prediction_length();
    let freq = model.freq();
    Ok(paths
        .into_iter()
        .zip(scored)
        .map(|(samples, line)| Forecast {
            start: freq.add(line.start, line.target.len().saturating_sub(horizon) as i64),
            samples,
        })
        .collect())
}

/// Removes the blend an earlier run of the same request wrote, so that the folder never holds
/// a blend this run did not make (only a directory that holds a blend).
fn remove_stale(dir: &Path) -> Result<()> {
    let Ok(config) = std::fs::read(dir.join(artifact::CONFIG)) else {
        return Ok(());
    };
    if forecaster::format_of(&config, &dir.display().to_string()).ok() == Some(Format::Blend) {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

fn blend_blocking(request: &BlendRequest) -> Result<BlendOutput> {
    // The request's candidates without an earlier run's blend at `model_dir` (a retry's), which
    // this run replaces or removes.
    let others: Vec<PathBuf> = request
        .candidates
        .iter()
        .filter(|dir| **dir != request.model_dir)
        .cloned()
        .collect();
    let mut candidates = Vec::with_capacity(request.candidates.len());
    for dir in &others {
        if let Some(candidate) = read_candidate(dir)? {
            candidates.push(candidate);
        }
    }
    let none = |reason: String| -> Result<BlendOutput> {
        remove_stale(&request.model_dir)?;
        Ok(BlendOutput {
            candidates: others.clone(),
            blend: None,
            reason,
        })
    };
    let (Some(global), Some(local)) = (best(&candidates, true), best(&candidates, false)) else {
        return none(
            "no blend: it needs a DeepAR candidate and a classical one, each with a finite validation score"
                .into(),
        );
    };
    let windows = match (global.windows, local.windows) {
        (Some(a), Some(b)) if a == b => a,
        (Some(a), Some(b)) => {
            return none(format!(
                "no blend: {} held out {a} validation window(s) and {} {b}",
                global.family, local.family
            ));
        }
        _ => {
            return none(format!(
                "no blend: {} or {} was trained before validation forecasts were kept; train them again",
                global.family, local.family
            ));
        }
    };
    let (global_model, lineage) = forecaster::load(&global.dir, &Device::Cpu)?;
    let (local_model, _) = forecaster::load(&local.dir, &Device::Cpu)?;
    if !global_model.comparable(&local_model) {
        return none(format!(
            "no blend: {} and {} forecast different horizons or frequencies",
            global.family, local.family
        ));
    }
    let train = read_json_lines(&request.train)?;
    let horizon = global_model.prediction_length();
    let (_, scored) = hold_out(&train, horizon, windows);
    let first = validation_forecasts(global, &scored, &global_model)?;
    let second = validation_forecasts(local, &scored, &local_model)?;
    let source = format!("{} (validation windows)", request.train.display());
    let found = search(
        &first,
        &second,
        &scored,
        horizon,
        global_model.freq(),
        global_model.test_quantiles(),
        &source,
    )?;
    let blended = found.backtest.model.mean_weighted_quantile_loss;
    if !found.mixes() {
        let (alone, loss) = if found.weight == 1.0 {
            (global, global.mean_wql)
        } else {
            (local, local.mean_wql)
        };
        return none(format!(
            "no blend: on the validation windows no mix of {} and {} beats {} alone ({loss:.4})",
            global.family, local.family, alone.family
        ));
    }
    let lineage = Lineage {
        train: request.train.display().to_string(),
        ..lineage
    };
    models::blend::save(
        &request.model_dir,
        &[
            (found.weight, global.dir.as_path()),
            (1.0 - found.weight, local.dir.as_path()),
        ],
        &lineage,
    )?;
    artifact::write_json(
        &request.model_dir,
        VALIDATION_FILE,
        &BlendValidation {
            backtest: &found.backtest,
            windows,
            trials: &found.trials,
        },
    )?;
    let weight = (found.weight * 100.0).round() / 100.0;
    let reason = format!(
        "blended {} ({weight}) and {} ({}): validation mean_wQuantileLoss {blended:.4} against {:.4} and {:.4}",
        global.family,
        local.family,
        ((1.0 - weight) * 100.0).round() / 100.0,
        global.mean_wql,
        local.mean_wql
    );
    let member = |c: &Candidate, weight: f64| BlendMember {
        family: c.family.clone(),
        model_dir: c.dir.clone(),
        weight: (weight * 100.0).round() / 100.0,
        validation_mean_wql: c.mean_wql,
    };
    let mut all = others;
    all.push(request.model_dir.clone());
    Ok(BlendOutput {
        candidates: all,
        blend: Some(BlendMade {
            model_dir: request.model_dir.clone(),
            members: vec![
                member(global, found.weight),
                member(local, 1.0 - found.weight),
            ],
            validation_mean_wql: blended,
            trials: found.trials,
        }),
        reason,
    })
}

impl Ops {
    /// Blends the best global and local candidates when a mix of them scores best on the
    /// validation windows (see the module doc).
    pub async fn blend(&self, request: &BlendRequest) -> Result<BlendOutput> {
        if request.candidates.is_empty() {
            return Err(Error::invalid("candidates", "at least one model directory"));
        }
        let request = request.clone();
        tokio::task::spawn_blocking(move || blend_blocking(&request)).await?
    }
}

#[cfg(test)]
mod tests {
    use models::classical::{Classical, Family};
    use models::deepar::{Hyperparameters, Model};
    use rand::SeedableRng;
    use serde_json::{Value, json};

    use super::*;

    const HORIZON: usize = 4;

    fn settings(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    /// Two hourly series of 24 points, 10 apart in level; one window of 4 held out of each.
    fn training_file(dir: &Path) -> PathBuf {
        let lines: Vec<String> = [10.0f32, 20.0]
            .iter()
            .map(|level| {
                let target: Vec<f32> = (0..24).map(|t| level + (t % 4) as f32).collect();
                json!({"start": "2024-01-01 00:00:00", "target": target}).to_string()
            })
            .collect();
        let path = dir.join("train.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    }

    /// A candidate directory as training writes it, its validation forecasts the held-out
    /// windows' actuals shifted by `bias` (a little spread), and the loss it reports.
    fn candidate(dir: &Path, family: &str, bias: f32, loss: f64, windows: Option<u64>) -> PathBuf {
        let model_dir = dir.join(family);
        let lineage = Lineage {
            seed: 3,
            train: "train.jsonl".into(),
            dataset_snapshot: Some("ds-1".into()),
        };
        if family == "deepar" {
            let hp = Hyperparameters::from_map(&settings(json!({
                "time_freq": "H", "prediction_length": HORIZON.to_string(),
                "context_length": "4", "num_cells": "4", "epochs": "1",
            })))
            .unwrap();
            let rng = &mut rand_chacha::ChaCha8Rng::seed_from_u64(1);
            let model = Model::initialise(hp, rng, &Device::Cpu).unwrap();
            artifact::save(&model, &model_dir, &lineage).unwrap();
        } else {
            let family = Family::parse(family).unwrap();
            Classical::from_map(
                family,
                &settings(json!({"time_freq": "H", "prediction_length": HORIZON.to_string()})),
            )
            .unwrap()
            .save(&model_dir, &lineage)
            .unwrap();
        }
        let forecasts: Vec<Forecast> = [10.0f32, 20.0]
            .iter()
            .map(|level| Forecast {
                start: chrono::NaiveDateTime::default(),
                samples: (0..20)
                    .map(|i| {
                        (20..24)
                            .map(|t| level + (t % 4) as f32 + bias + 0.05 * i as f32 - 0.5)
                            .collect()
                    })
                    .collect(),
            })
            .collect();
        models::blend::save_paths(&model_dir.join(VALIDATION_FORECASTS_FILE), &forecasts).unwrap();
        let mut validation = json!({"family": family,
            "model": {"mean_weighted_quantile_loss": loss},
            "seasonal_naive": {"mean_weighted_quantile_loss": 0.5}});
        if let Some(windows) = windows {
            validation["windows"] = json!(windows);
        }
        std::fs::write(model_dir.join(VALIDATION_FILE), validation.to_string()).unwrap();
        model_dir
    }

    fn request(dir: &Path, candidates: Vec<PathBuf>) -> BlendRequest {
        BlendRequest {
            candidates,
            train: training_file(dir),
            model_dir: dir.join("blend"),
        }
    }

    #[test]
    fn the_best_global_and_local_candidates_are_blended_when_a_mix_wins() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        // DeepAR forecasts 2 low, ets 2 high, theta 5 high (and scores worse): the even mix of
        // DeepAR and ets is right.
        let candidates = vec![
            candidate(dir, "deepar", -2.0, 0.2, Some(1)),
            candidate(dir, "theta", 5.0, 0.4, Some(1)),
            candidate(dir, "ets", 2.0, 0.2, Some(1)),
        ];
        let out = blend_blocking(&request(dir, candidates.clone())).unwrap();
        let made = out.blend.as_ref().expect("a blend");
        assert_eq!(out.candidates.len(), 4);
        assert_eq!(out.candidates[3], dir.join("blend"));
        let families: Vec<(&str, f64)> = made
            .members
            .iter()
            .map(|m| (m.family.as_str(), m.weight))
            .collect();
        assert_eq!(families, [("deepar", 0.5), ("ets", 0.5)]);
        assert_eq!(made.trials.len(), 11);
        assert!(made.validation_mean_wql < 0.05, "{made:?}");
        assert!(
            out.reason.starts_with("blended deepar (0.5) and ets (0.5)"),
            "{}",
            out.reason
        );
        // The directory is a model that loads, and a candidate publishing can choose.
        let (model, _) = forecaster::load(&dir.join("blend"), &Device::Cpu).unwrap();
        assert_eq!(model.family(), "blend");
        let validation: Value = serde_json::from_slice(
            &std::fs::read(dir.join("blend").join(VALIDATION_FILE)).unwrap(),
        )
        .unwrap();
        assert_eq!(validation["family"], "blend");
        assert_eq!(validation["windows"], 1);
        assert_eq!(
            validation["model"]["mean_weighted_quantile_loss"].as_f64(),
            Some(made.validation_mean_wql)
        );

        // Run again with the blend among the candidates (a retry): it is not blended again.
        let mut again = candidates.clone();
        again.push(dir.join("blend"));
        let out = blend_blocking(&request(dir, again)).unwrap();
        assert_eq!(out.candidates.len(), 4, "the blend is listed once");
        assert_eq!(out.blend.unwrap().members[1].family, "ets");
    }

    #[test]
    fn no_blend_is_made_without_both_kinds_or_when_one_alone_is_best() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        let deepar = candidate(dir, "deepar", 0.0, 0.1, Some(1));
        let ets = candidate(dir, "ets", 3.0, 0.3, Some(1));
        // A blend an earlier run left is removed when this run makes none.
        models::blend::save(
            &dir.join("blend"),
            &[(0.5, deepar.as_path()), (0.5, ets.as_path())],
            &Lineage::default(),
        )
        .unwrap();
        let retry = vec![deepar.clone(), ets.clone(), dir.join("blend")];
        let out = blend_blocking(&request(dir, retry)).unwrap();
        assert!(out.blend.is_none());
        // The removed blend is no longer a candidate.
        assert_eq!(out.candidates, [deepar.clone(), ets.clone()]);
        assert!(
            out.reason
                .contains("no mix of deepar and ets beats deepar alone (0.1000)"),
            "{}",
            out.reason
        );
        assert!(!dir.join("blend").exists());

        let out = blend_blocking(&request(dir, vec![ets.clone()])).unwrap();
        assert!(
            out.reason
                .contains("needs a DeepAR candidate and a classical one")
        );

        // Candidates trained before validation forecasts were kept say so.
        let old = candidate(dir, "theta", 1.0, 0.2, None);
        let out = blend_blocking(&request(dir, vec![deepar.clone(), old])).unwrap();
        assert!(
            out.reason
                .contains("trained before validation forecasts were kept")
        );

        // A candidate without validation scores is refused by name.
        let err = blend_blocking(&request(dir, vec![deepar, dir.join("nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nowhere/validation.json"), "{err}");
    }
}
