//! `sluice models ...`: the registry from the command line (versions, aliases, statuses,
//! history, publishing and batch forecasts), over the operations of the same names.

use models::registry::{GroupName, VersionInfo};
use ops::{BatchForecastRequest, PublishOutput, PublishRequest};
use serde_json::{Value, json};

use super::Context;
use crate::cli::{ModelsCommand, ModelsGroupArgs, ModelsListArgs};
use crate::output::{Report, table, time};

/// Who the command line acts as in the registry's history.
const CLI_ACTOR: &str = "cli";

/// A request from the flags, parsed as a Task input or an HTTP body would be.
fn request<T: serde::de::DeserializeOwned>(fields: Value) -> anyhow::Result<T> {
    Ok(ops::request::from_json(fields)?)
}

pub async fn run(command: &ModelsCommand, context: &Context) -> anyhow::Result<Report> {
    let ops = &context.ops;
    match command {
        ModelsCommand::List(args) => list(args, context).await,
        ModelsCommand::Show(args) => {
            let info = ops
                .model_version(&request(
                    json!({"group": args.group, "version": args.target}),
                )?)
                .await?;
            let text = serde_json::to_string_pretty(&info)?;
            Ok(Report::new(json!(info), text))
        }
        ModelsCommand::Blend(args) => {
            let output = ops
                .blend(&request(json!({
                    "candidates": args.candidate, "train": args.train, "model_dir": args.model_dir,
                }))?)
                .await?;
            let mut text = output.reason.clone();
            if let Some(made) = &output.blend {
                text.push_str(&format!("\nwritten to {}", made.model_dir.display()));
            }
            Ok(Report::new(json!(output), text))
        }
        ModelsCommand::Publish(args) => {
            let publish: PublishRequest = request(json!({
                "group": args.group, "model_dir": args.model_dir, "candidates": args.candidate,
                "test": args.test,
                "margin": args.margin, "seed": args.seed, "hold": args.hold,
            }))?;
            let output = ops.publish(&publish, CLI_ACTOR).await?;
            Ok(publish_report(&output))
        }
        ModelsCommand::Promote(args) => {
            let change = ops
                .promote(
                    &request(json!({
                        "group": args.group, "version": args.number, "alias": args.alias,
                        "reason": args.reason,
                    }))?,
                    CLI_ACTOR,
                )
                .await?;
            let text = format!(
                "{}:{} now v{}{}",
                change.group,
                change.alias,
                change.version,
                change
                    .from_version
                    .map(|f| format!(" (was v{f})"))
                    .unwrap_or_default()
            );
            Ok(Report::new(json!(change), text))
        }
        ModelsCommand::Rollback(args) => {
            let change = ops
                .rollback(
                    &request(
                        json!({"group": args.group, "alias": args.alias, "reason": args.reason}),
                    )?,
                    CLI_ACTOR,
                )
                .await?;
            let text = format!(
                "{}:{} rolled back to v{}",
                change.group, change.alias, change.version
            );
            Ok(Report::new(json!(change), text))
        }
        ModelsCommand::Status(args) => {
            let info = ops
                .set_status(
                    &request(json!({
                        "group": args.group, "version": args.number, "status": args.status,
                        "reason": args.reason,
                    }))?,
                    CLI_ACTOR,
                )
                .await?;
            let text = format!(
                "{} v{} is {}",
                info.group,
                info.version,
                info.status.as_str()
            );
            Ok(Report::new(json!(info), text))
        }
        ModelsCommand::History(args) => history(args, context).await,
        ModelsCommand::BatchForecast(args) => {
            let batch: BatchForecastRequest = request(json!({
                "group": args.group, "input": args.input, "version": args.target,
                "num_samples": args.num_samples, "quantiles": args.quantiles, "seed": args.seed,
            }))?;
            let run = ops.batch_forecast(&batch).await?;
            let text = format!(
                "{} v{}: {} items × {} steps forecast into {}",
                run.model_group,
                run.model_version,
                run.items,
                run.rows / run.items.max(1),
                run.key
            );
            Ok(Report::new(json!(run), text))
        }
    }
}

fn mean_wql(info: &VersionInfo) -> String {
    info.mean_wql()
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"))
}

async fn list(args: &ModelsListArgs, context: &Context) -> anyhow::Result<Report> {
    let Some(group) = &args.group else {
        let groups = context.ops.model_groups().await?;
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
    let versions = context
        .ops
        .model_versions(&GroupName::parse(group)?)
        .await?;
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

async fn history(args: &ModelsGroupArgs, context: &Context) -> anyhow::Result<Report> {
    let events = context
        .ops
        .model_history(&GroupName::parse(&args.group)?)
        .await?;
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

fn publish_report(output: &PublishOutput) -> Report {
    let text = if output.repeated {
        format!(
            "{} v{} was already decided: {}",
            output.group, output.version, output.reason
        )
    } else {
        format!(
            "{} v{} ({}): {} ({})",
            output.group,
            output.version,
            output.family,
            if output.published {
                "published as champion"
            } else {
                "rejected"
            },
            output.reason
        )
    };
    let mut text = text;
    for outcome in output.selection.iter().flatten() {
        text.push_str(&format!(
            "\n  {} {}: {}",
            if outcome.won { "chosen" } else { "passed over" },
            outcome.entry.family,
            outcome.reason
        ));
    }
    Report::new(json!(output), text)
}
