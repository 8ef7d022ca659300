//! Publishing (`sluice models publish`, `sluice:publish`): upload a trained model directory to
//! the lake, score it and the champion on the same test windows, then register it and apply the
//! decision (champion, or rejected with the reason) in one transaction. A retried publish of the
//! same execution reports the decision already taken.
//!
//! Given `candidates` (model directories of several families, each trained with `validation`)
//! instead of one `model_dir`, it first chooses the one with the lowest loss on the validation
//! windows (cut from the training data, never the test windows); the winner goes on as above,
//! and its registered metrics keep every candidate's score and why it won or lost.

use std::path::{Path, PathBuf};

use candle_core::Device;
use jobs::lake::{Lake, LakeKey};
use models::deepar::ForecastOptions;
use models::deepar::artifact;
use models::deepar::evaluate::backtest;
use models::deepar::series::read_json_lines;
use models::forecaster::{self, Forecaster, Forecasting, Format};
use models::registry::{
    AliasName, Change, Decision, Entry, GroupName, NewVersion, Outcome, Registry, Scores, Status,
    Target, Verdict, VersionInfo, decide, select,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Ops, Result};

/// `{"group", "model_dir" or "candidates": [...], "test", "margin"?: 0, "seed"?: 0, "execution"?}`: `execution` is the
/// workflow execution that trained the model (a retry of it finds the version it registered).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    #[serde(deserialize_with = "crate::registry::group")]
    pub group: GroupName,
    /// A model directory written by training (or `candidates`).
    #[serde(default)]
    pub model_dir: Option<PathBuf>,
    /// Model directories trained with `validation` on the same data: the one with the lowest
    /// validation loss is the candidate.
    #[serde(default)]
    pub candidates: Vec<PathBuf>,
    /// Test series both the candidate and the champion are scored on.
    pub test: PathBuf,
    /// Relative improvement over the champion required (0.02: 2 % lower loss).
    #[serde(default)]
    pub margin: f64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub execution: Option<String>,
    /// Hold a winner for approval: it is registered as pending, not promoted (a later
    /// `promote` makes it the champion, approving it).
    #[serde(default)]
    pub hold: bool,
}

/// The candidate's scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishScores {
    #[serde(rename = "mean_wQuantileLoss")]
    pub mean_wql: Option<f64>,
    #[serde(
        rename = "seasonal_naive_mean_wQuantileLoss",
        skip_serializing_if = "Option::is_none"
    )]
    pub naive_mean_wql: Option<f64>,
}

/// The champion the candidate was compared with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChampionScore {
    pub version: u32,
    /// None when the champion forecasts another horizon or frequency.
    #[serde(rename = "mean_wQuantileLoss")]
    pub mean_wql: Option<f64>,
}

/// What a publish decided (the `sluice:publish` task's output).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishOutput {
    pub group: GroupName,
    pub version: u32,
    /// Whether the version is the champion now.
    pub published: bool,
    /// `approved`, `rejected`, or `pending` (a winner held for approval).
    pub status: &'static str,
    pub reason: String,
    /// The model's folder in the lake.
    pub artifact: String,
    pub candidate: PublishScores,
    pub champion: Option<ChampionScore>,
    /// A retry: the decision was taken before, and is reported again.
    pub repeated: bool,
    /// The candidate's family (`deepar`, `mstl`, `ets`).
    pub family: String,
    /// How the candidate was chosen among `candidates`: every one's validation score and why it
    /// won or lost (none for a single `model_dir`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<Vec<Outcome>>,
}

/// Reads the validation scores training wrote into each candidate directory and chooses.
fn choose(candidates: &[PathBuf]) -> Result<(PathBuf, Vec<Outcome>)> {
    let mut entries = Vec::with_capacity(candidates.len());
    for dir in candidates {
        let value = crate::train::read_validation(dir)?;
        let loss = |part: &str| {
            value[part]["mean_weighted_quantile_loss"]
                .as_f64()
                .unwrap_or(f64::NAN)
        };
        entries.push(Entry {
            family: value["family"].as_str().unwrap_or("deepar").to_owned(),
            model_dir: dir.display().to_string(),
            mean_wql: loss("model"),
            naive_mean_wql: loss("seasonal_naive"),
        });
    }
    let selection = select(&entries).ok_or_else(|| {
        Error::invalid(
            "candidates",
            "no candidate has a finite validation mean_wQuantileLoss",
        )
    })?;
    Ok((candidates[selection.winner].clone(), selection.outcomes))
}

/// The files of a model directory that go to the lake.
const MODEL_FILES: [&str; 4] = [
    artifact::CONFIG,
    artifact::WEIGHTS,
    "metrics.json",
    "training.json",
];

/// Copies a model directory into the lake under a fresh key; returns the key of the folder.
pub async fn upload_model(lake: &Lake, group: &GroupName, dir: &Path) -> Result<String> {
    let folder = format!("models/{group}/{}", uuid::Uuid::new_v4());
    let config_path = dir.join(artifact::CONFIG);
    let required: &[&str] = match tokio::fs::read(&config_path).await {
        Ok(config) if forecaster::needs_weights(&config, &dir.display().to_string())? => {
            &[artifact::CONFIG, artifact::WEIGHTS]
        }
        Ok(_) => &[artifact::CONFIG],
        Err(_) => Format::DeepAR.files(),
    };
    for name in MODEL_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            if required.contains(&name) {
                return Err(Error::invalid(
                    "model_dir",
                    format!(
                        "{} is not a model directory: {name} is missing",
                        dir.display()
                    ),
                ));
            }
            continue;
        }
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| Error::io(&path, e))?;
        lake.put(&LakeKey::parse(&format!("{folder}/{name}"))?, bytes.into())
            .await?;
    }
    Ok(folder)
}

/// A registered version's model, read from the lake.
pub async fn load_version(lake: &Lake, info: &VersionInfo, device: Device) -> Result<Forecaster> {
    let key = |name: &str| LakeKey::parse(&format!("{}/{name}", info.artifact));
    let source = format!("{}:{}", lake.url(), info.artifact);
    let config = lake.get(&key(artifact::CONFIG)?).await?;
    let weights = if forecaster::needs_weights(&config, &source)? {
        Some(lake.get(&key(artifact::WEIGHTS)?).await?)
    } else {
        None
    };
    let (model, _) = tokio::task::spawn_blocking(move || {
        forecaster::from_bytes(&config, weights.as_deref(), &source, &device)
    })
    .await??;
    Ok(model)
}

impl Ops {
    /// The registry in the catalog database.
    pub async fn registry(&self) -> Result<Registry> {
        Ok(Registry::new(self.catalog().await?.pool().clone()))
    }

    /// Scores, registers and decides (see the module doc). `actor` is who the registry's
    /// history records (`cli`, `execution:<id>`).
    pub async fn publish(&self, request: &PublishRequest, actor: &str) -> Result<PublishOutput> {
        let registry = self.registry().await?;
        let champion_alias = Target::Alias(AliasName::champion());
        if let Some(execution) = &request.execution
            && let Some(done) = registry
                .by_training_execution(&request.group, execution)
                .await?
            && (done.status != Status::Pending || request.hold)
        {
            let champion = registry
                .resolve(&request.group, &champion_alias)
                .await?
                .filter(|c| c.version != done.version)
                .map(|c| ChampionScore {
                    version: c.version,
                    mean_wql: c.mean_wql(),
                });
            return Ok(PublishOutput {
                group: request.group.clone(),
                version: done.version,
                published: done.aliases.iter().any(|a| a == models::registry::CHAMPION)
                    || done.status == Status::Approved,
                status: done.status.as_str(),
                reason: done
                    .status_reason
                    .clone()
                    .unwrap_or_else(|| "registered as pending: held for approval".to_owned()),
                artifact: done.artifact.clone(),
                candidate: PublishScores {
                    mean_wql: done.mean_wql(),
                    naive_mean_wql: None,
                },
                champion,
                repeated: true,
                family: done
                    .hyperparameters
                    .get("algorithm")
                    .and_then(Value::as_str)
                    .unwrap_or("deepar")
                    .to_owned(),
                selection: done
                    .metrics
                    .get("selection")
                    .and_then(|s| serde_json::from_value(s.clone()).ok()),
            });
        }
        let (model_dir, selection) = match (&request.model_dir, request.candidates.as_slice()) {
            (Some(dir), []) => (dir.clone(), None),
            (None, []) => return Err(Error::invalid("model_dir", "is required (or candidates)")),
            (Some(_), [_, ..]) => {
                return Err(Error::invalid(
                    "candidates",
                    "give model_dir or candidates, not both",
                ));
            }
            (None, candidates) => {
                let candidates = candidates.to_vec();
                let (winner, outcomes) =
                    tokio::task::spawn_blocking(move || choose(&candidates)).await??;
                (winner, Some(outcomes))
            }
        };
        let lake = self.lake()?;
        let champion = registry.resolve(&request.group, &champion_alias).await?;
        let champion_model = match &champion {
            Some(info) => Some(load_version(&lake, info, Device::Cpu).await?),
            None => None,
        };
        let (dir, test_path, seed) = (model_dir.clone(), request.test.clone(), request.seed);
        let (hyperparameters, lineage, mine, theirs) =
            tokio::task::spawn_blocking(move || -> Result<_> {
                let (candidate, lineage) = forecaster::load(&dir, &Device::Cpu)?;
                let test = read_json_lines(&test_path)?;
                let source = test_path.display().to_string();
                let score = |model: &Forecaster| {
                    let options = ForecastOptions {
                        num_samples: model.num_eval_samples(),
                        seed,
                        ..ForecastOptions::default()
                    };
                    backtest(model, &test, options, &source)
                };
                let mine = score(&candidate)?;
                let theirs = match &champion_model {
                    Some(model) if model.comparable(&candidate) => Some(score(model)?),
                    _ => None,
                };
                Ok((candidate.settings(), lineage, mine, theirs))
            })
            .await??;
        let scores = Scores {
            mean_wql: mine.model.mean_weighted_quantile_loss,
            naive_mean_wql: mine.seasonal_naive.mean_weighted_quantile_loss,
        };
        let champion_score = match (&champion, &theirs) {
            (Some(c), Some(b)) => Some((c.version, b.model.mean_weighted_quantile_loss)),
            _ => None,
        };
        let mut decision = decide(scores, champion_score, request.margin);
        if let (Some(c), None) = (&champion, &theirs) {
            let note = format!(
                "champion v{} forecasts another horizon or frequency, so only seasonal naive is compared: ",
                c.version
            );
            decision = match decision {
                Decision::Promote { reason } => Decision::Promote {
                    reason: note + &reason,
                },
                Decision::Reject { reason } => Decision::Reject {
                    reason: note + &reason,
                },
            };
        }
        let artifact_key = upload_model(&lake, &request.group, &model_dir).await?;
        let family = hyperparameters
            .get("algorithm")
            .and_then(Value::as_str)
            .unwrap_or("deepar")
            .to_owned();
        let mut metrics = mine.model.gluonts_json();
        if let (Some(outcomes), Value::Object(map)) = (&selection, &mut metrics) {
            map.insert(
                "selection".into(),
                serde_json::to_value(outcomes).expect("outcomes serialize"),
            );
        }
        let new = NewVersion {
            artifact: artifact_key.clone(),
            dataset_snapshot: lineage.dataset_snapshot.clone(),
            training_execution: request.execution.clone(),
            hyperparameters: Value::Object(hyperparameters),
            metrics,
            baseline_metrics: mine.seasonal_naive.gluonts_json(),
            actor: actor.to_owned(),
        };
        let (verdict, status, reason) = match (decision.promotes(), request.hold) {
            (true, false) => (
                Verdict::Promote(AliasName::champion()),
                "approved",
                decision.reason().to_owned(),
            ),
            (true, true) => (
                Verdict::Hold,
                "pending",
                format!("{}; held for approval", decision.reason()),
            ),
            (false, _) => (Verdict::Reject, "rejected", decision.reason().to_owned()),
        };
        let change = Change {
            actor: actor.to_owned(),
            reason: reason.clone(),
        };
        let info = registry
            .register_decided(&request.group, &new, &verdict, &change)
            .await?;
        let published = status == "approved";
        Ok(PublishOutput {
            group: request.group.clone(),
            version: info.version,
            published,
            status,
            reason,
            artifact: artifact_key,
            candidate: PublishScores {
                mean_wql: Some(scores.mean_wql),
                naive_mean_wql: Some(scores.naive_mean_wql),
            },
            champion: champion.as_ref().map(|c| ChampionScore {
                version: c.version,
                mean_wql: champion_score.map(|(_, s)| s),
            }),
            repeated: false,
            family,
            selection,
        })
    }
}
