//! `sluice models ...`: the registry from the command line, and publishing (the `models publish`
//! command and the `sluice:publish` task): upload a trained model directory to the lake,
//! register it, score it and the champion on the same test windows, and promote it or reject it
//! with the reason.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use candle_core::Device;
use jobs::lake::{Lake, LakeKey};
use models::deepar::artifact;
use models::deepar::evaluate::backtest;
use models::deepar::series::read_json_lines;
use models::deepar::{ForecastOptions, Model};
use models::registry::{
    AliasName, Change, Decision, GroupName, NewVersion, Registry, Scores, Status, Target,
    VersionInfo, decide,
};
use serde_json::{Value, json};

use super::Context;
use crate::cli::{
    ModelsCommand, ModelsGroupArgs, ModelsListArgs, ModelsVersionArgs, PromoteArgs, RollbackArgs,
    StatusArgs,
};
use crate::output::{Report, table, time};

/// Who the command line acts as in the registry's history.
fn cli_actor() -> String {
    "cli".to_owned()
}

pub(crate) async fn registry(context: &Context) -> anyhow::Result<Registry> {
    Ok(Registry::new(context.catalog().await?.pool().clone()))
}

pub async fn run(command: &ModelsCommand, context: &Context) -> anyhow::Result<Report> {
    match command {
        ModelsCommand::List(args) => list(args, context).await,
        ModelsCommand::Show(args) => show(args, context).await,
        ModelsCommand::Publish(args) => {
            let spec = PublishSpec {
                group: GroupName::parse(&args.group)?,
                model_dir: args.model_dir.clone(),
                test: args.test.clone(),
                margin: args.margin,
                seed: args.seed,
                actor: cli_actor(),
                training_execution: None,
            };
            publish(spec, context).await
        }
        ModelsCommand::Promote(args) => promote(args, context).await,
        ModelsCommand::Rollback(args) => rollback(args, context).await,
        ModelsCommand::Status(args) => status(args, context).await,
        ModelsCommand::History(args) => history(args, context).await,
        ModelsCommand::BatchForecast(args) => {
            let spec = super::batch_forecast::BatchSpec {
                group: GroupName::parse(&args.group)?,
                target: Target::parse(&args.target)?,
                input: args.input.clone(),
                num_samples: args.num_samples,
                quantiles: args.quantiles.clone(),
                seed: args.seed,
            };
            super::batch_forecast::batch_forecast(&spec, context).await
        }
    }
}

fn mean_wql(info: &VersionInfo) -> String {
    info.mean_wql()
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"))
}

async fn list(args: &ModelsListArgs, context: &Context) -> anyhow::Result<Report> {
    let registry = registry(context).await?;
    let Some(group) = &args.group else {
        let groups = registry.groups().await?;
        let json = json!(
            groups
                .iter()
                .map(|(g, generation)| json!({"group": g, "generation": generation}))
                .collect::<Vec<_>>()
        );
        let text = table(
            ["group", "generation"],
            groups.iter().map(|(g, n)| [g.to_string(), n.to_string()]),
        );
        return Ok(Report::new(json, text));
    };
    let versions = registry.versions(&GroupName::parse(group)?).await?;
    let text = table(
        [
            "version",
            "status",
            "aliases",
            "mean_wQuantileLoss",
            "created",
            "by",
        ],
        versions.iter().map(|v| {
            [
                format!("v{}", v.version),
                v.status.as_str().to_owned(),
                v.aliases.join(", "),
                mean_wql(v),
                time(v.created_at),
                v.created_by.clone(),
            ]
        }),
    );
    Ok(Report::new(json!(versions), text))
}

async fn resolve(registry: &Registry, group: &str, target: &str) -> anyhow::Result<VersionInfo> {
    let group = GroupName::parse(group)?;
    let target = Target::parse(target)?;
    registry
        .resolve(&group, &target)
        .await?
        .with_context(|| format!("alias {group}:{target} is not set"))
}

async fn show(args: &ModelsVersionArgs, context: &Context) -> anyhow::Result<Report> {
    let registry = registry(context).await?;
    let info = resolve(&registry, &args.group, &args.target).await?;
    let text = serde_json::to_string_pretty(&info)?;
    Ok(Report::new(json!(info), text))
}

async fn promote(args: &PromoteArgs, context: &Context) -> anyhow::Result<Report> {
    let registry = registry(context).await?;
    let group = GroupName::parse(&args.group)?;
    let alias = AliasName::parse(&args.alias)?;
    let Target::Version(version) = Target::parse(&args.number)? else {
        anyhow::bail!("promote takes a version number (3 or v3), not an alias");
    };
    let change = Change {
        actor: cli_actor(),
        reason: args.reason.clone(),
    };
    let from = registry
        .move_alias(&group, &alias, version, &change)
        .await?;
    Ok(Report::new(
        json!({"group": group, "alias": alias, "version": version, "from_version": from}),
        format!(
            "{group}:{alias} now v{version}{}",
            from.map(|f| format!(" (was v{f})")).unwrap_or_default()
        ),
    ))
}

async fn rollback(args: &RollbackArgs, context: &Context) -> anyhow::Result<Report> {
    let registry = registry(context).await?;
    let group = GroupName::parse(&args.group)?;
    let alias = AliasName::parse(&args.alias)?;
    let change = Change {
        actor: cli_actor(),
        reason: args.reason.clone(),
    };
    let version = registry.rollback(&group, &alias, &change).await?;
    Ok(Report::new(
        json!({"group": group, "alias": alias, "version": version}),
        format!("{group}:{alias} rolled back to v{version}"),
    ))
}

async fn status(args: &StatusArgs, context: &Context) -> anyhow::Result<Report> {
    let registry = registry(context).await?;
    let group = GroupName::parse(&args.group)?;
    let Target::Version(version) = Target::parse(&args.number)? else {
        anyhow::bail!("status takes a version number (3 or v3), not an alias");
    };
    let change = Change {
        actor: cli_actor(),
        reason: args.reason.clone(),
    };
    let info = registry
        .set_status(&group, version, Status::parse(&args.status)?, &change)
        .await?;
    Ok(Report::new(
        json!(info),
        format!("{group} v{version} is {}", info.status.as_str()),
    ))
}

async fn history(args: &ModelsGroupArgs, context: &Context) -> anyhow::Result<Report> {
    let registry = registry(context).await?;
    let events = registry.history(&GroupName::parse(&args.group)?).await?;
    let version = |v: Option<u32>| v.map(|v| format!("v{v}")).unwrap_or_default();
    let text = table(
        ["#", "at", "event", "alias", "version", "from", "by", "why"],
        events.iter().map(|e| {
            [
                e.generation.to_string(),
                time(e.at),
                match &e.status {
                    Some(status) if e.kind == "status" => format!("status {status}"),
                    _ => e.kind.clone(),
                },
                e.alias.clone().unwrap_or_default(),
                version(e.version),
                version(e.from_version),
                e.actor.clone(),
                e.reason.clone(),
            ]
        }),
    );
    Ok(Report::new(json!(events), text))
}

/// What a publish needs.
pub struct PublishSpec {
    pub group: GroupName,
    pub model_dir: PathBuf,
    pub test: PathBuf,
    /// Relative improvement over the champion required.
    pub margin: f64,
    pub seed: u64,
    pub actor: String,
    pub training_execution: Option<String>,
}

/// The files of a model directory that go to the lake.
const MODEL_FILES: [&str; 4] = [
    artifact::CONFIG,
    artifact::WEIGHTS,
    "metrics.json",
    "training.json",
];

/// Copies a model directory into the lake under a fresh key; returns the key of the folder.
pub(crate) async fn upload(lake: &Lake, group: &GroupName, dir: &Path) -> anyhow::Result<String> {
    let folder = format!("models/{group}/{}", uuid::Uuid::new_v4());
    for name in MODEL_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            anyhow::ensure!(
                name != artifact::CONFIG && name != artifact::WEIGHTS,
                "{} is not a model directory: {name} is missing",
                dir.display()
            );
            continue;
        }
        let bytes = tokio::fs::read(&path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        lake.put(&LakeKey::parse(&format!("{folder}/{name}"))?, bytes.into())
            .await?;
    }
    Ok(folder)
}

/// A registered version's model, read from the lake.
pub(crate) async fn load_version(
    lake: &Lake,
    info: &VersionInfo,
    device: Device,
) -> anyhow::Result<Model> {
    let config = lake
        .get(&LakeKey::parse(&format!(
            "{}/{}",
            info.artifact,
            artifact::CONFIG
        ))?)
        .await?;
    let weights = lake
        .get(&LakeKey::parse(&format!(
            "{}/{}",
            info.artifact,
            artifact::WEIGHTS
        ))?)
        .await?;
    let source = format!("{}:{}", lake.url(), info.artifact);
    let (model, _) = tokio::task::spawn_blocking(move || {
        artifact::from_bytes(&config, &weights, &source, &device)
    })
    .await??;
    Ok(model)
}

/// Registers a trained model and publishes it to `champion` if it wins (see the module doc).
pub async fn publish(spec: PublishSpec, context: &Context) -> anyhow::Result<Report> {
    let registry = registry(context).await?;
    if let Some(execution) = &spec.training_execution
        && let Some(done) = registry
            .by_training_execution(&spec.group, execution)
            .await?
        && done.status != Status::Pending
    {
        // A retried task: the decision was taken and recorded; report it again.
        let published = done.aliases.iter().any(|a| a == models::registry::CHAMPION)
            || done.status == Status::Approved;
        let reason = done.status_reason.clone().unwrap_or_default();
        let champion = registry
            .resolve(&spec.group, &Target::Alias(AliasName::champion()))
            .await?
            .filter(|c| c.version != done.version)
            .map(|c| json!({"version": c.version, "mean_wQuantileLoss": c.mean_wql()}));
        return Ok(Report::new(
            json!({
                "group": spec.group, "version": done.version, "published": published,
                "status": done.status.as_str(), "reason": reason, "artifact": done.artifact,
                "candidate": {"mean_wQuantileLoss": done.mean_wql()},
                "champion": champion, "repeated": true,
            }),
            format!(
                "{} v{} was already decided: {reason}",
                spec.group, done.version
            ),
        ));
    }
    let lake = context.lake()?;
    let champion = registry
        .resolve(&spec.group, &Target::Alias(AliasName::champion()))
        .await?;
    let champion_model = match &champion {
        Some(info) => Some(load_version(&lake, info, Device::Cpu).await?),
        None => None,
    };
    let (dir, test_path, seed) = (spec.model_dir.clone(), spec.test.clone(), spec.seed);
    let scored = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let (candidate, lineage) = artifact::load(&dir, &Device::Cpu)?;
        let test = read_json_lines(&test_path)?;
        let source = test_path.display().to_string();
        let score = |model: &Model| {
            let options = ForecastOptions {
                num_samples: model.hyperparameters.num_eval_samples,
                seed,
                ..ForecastOptions::default()
            };
            backtest(model, &test, options, &source)
        };
        let mine = score(&candidate)?;
        let theirs = match &champion_model {
            Some(model)
                if model.layout.prediction_length == candidate.layout.prediction_length
                    && model.hyperparameters.time_freq == candidate.hyperparameters.time_freq =>
            {
                Some(score(model)?)
            }
            _ => None,
        };
        Ok((candidate.hyperparameters.to_map(), lineage, mine, theirs))
    })
    .await??;
    let (hyperparameters, lineage, mine, theirs) = scored;
    let artifact_key = upload(&lake, &spec.group, &spec.model_dir).await?;
    let new = NewVersion {
        artifact: artifact_key.clone(),
        dataset_snapshot: lineage.dataset_snapshot.clone(),
        training_execution: spec.training_execution.clone(),
        hyperparameters: Value::Object(hyperparameters),
        metrics: mine.deepar.gluonts_json(),
        baseline_metrics: mine.seasonal_naive.gluonts_json(),
        actor: spec.actor.clone(),
    };
    let info = registry.register(&spec.group, &new).await?;
    let scores = Scores {
        mean_wql: mine.deepar.mean_weighted_quantile_loss,
        naive_mean_wql: mine.seasonal_naive.mean_weighted_quantile_loss,
    };
    let champion_score = match (&champion, &theirs) {
        (Some(c), Some(b)) => Some((c.version, b.deepar.mean_weighted_quantile_loss)),
        _ => None,
    };
    let mut decision = decide(scores, champion_score, spec.margin);
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
    let change = Change {
        actor: spec.actor.clone(),
        reason: decision.reason().to_owned(),
    };
    if decision.promotes() {
        registry
            .move_alias(&spec.group, &AliasName::champion(), info.version, &change)
            .await?;
    } else {
        registry
            .set_status(&spec.group, info.version, Status::Rejected, &change)
            .await?;
    }
    let published = decision.promotes();
    let json = json!({
        "group": spec.group,
        "version": info.version,
        "published": published,
        "status": if published { "approved" } else { "rejected" },
        "reason": decision.reason(),
        "artifact": artifact_key,
        "candidate": {
            "mean_wQuantileLoss": scores.mean_wql,
            "seasonal_naive_mean_wQuantileLoss": scores.naive_mean_wql,
        },
        "champion": champion.as_ref().map(|c| json!({
            "version": c.version,
            "mean_wQuantileLoss": champion_score.map(|(_, s)| s),
        })),
    });
    let text = format!(
        "{} v{}: {} ({})",
        spec.group,
        info.version,
        if published {
            "published as champion"
        } else {
            "rejected"
        },
        decision.reason()
    );
    Ok(Report::new(json, text))
}
