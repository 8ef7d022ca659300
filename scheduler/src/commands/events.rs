//! `sluice trigger ...` and `sluice notify ...`: adapters over the trigger operations of
//! `ops::workflows::Workflows` and the notification operations of `ops::Ops`.

use anyhow::Context as _;
use ops::notifications::{BodyFormat, DeliveryList, DeliveryView, RuleRequest, RuleView};
use ops::workflows::triggers::{On, TriggerRequest, TriggerView};
use serde_json::{Value, json};

use super::Context;
use super::schedules::parse_window;
use crate::cli::{NotifyCommand, NotifyCreateArgs, TriggerCommand, TriggerCreateArgs};
use crate::output::{Report, table};

fn trigger_row(t: &TriggerView) -> [String; 7] {
    let what = match t.definition.on {
        On::Landing => t.definition.prefix.clone().unwrap_or_default(),
        On::Drift => t.definition.subject.clone().unwrap_or_else(|| "any".into()),
    };
    [
        t.name.clone(),
        serde_json::to_value(t.definition.on)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        what,
        t.workflow.clone(),
        format!("{} s", t.definition.window_seconds),
        t.pending.to_string(),
        t.paused.to_string(),
    ]
}

fn json_of(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("serializes")
}

pub async fn triggers(command: &TriggerCommand, context: &Context) -> anyhow::Result<Report> {
    let (workflows, _) = context.workflows().await?;
    match command {
        TriggerCommand::Create(args) => {
            let trigger = workflows.create_trigger(&trigger_request(args)?).await?;
            Ok(Report::new(
                json_of(&trigger),
                format!(
                    "trigger {} created: {} starts on {} (window {} s)",
                    trigger.name,
                    trigger.workflow,
                    trigger_row(&trigger)[2],
                    trigger.definition.window_seconds
                ),
            ))
        }
        TriggerCommand::List => {
            let list = workflows.triggers().await?;
            let text = table(
                [
                    "trigger",
                    "on",
                    "prefix/subject",
                    "workflow",
                    "window",
                    "pending",
                    "paused",
                ],
                list.iter().map(trigger_row),
            );
            Ok(Report::new(json_of(&list), text))
        }
        TriggerCommand::Fires { name, limit } => {
            let fires = workflows.trigger_fires(name, *limit).await?;
            let text = table(
                ["fire", "outcome", "execution", "items", "at"],
                fires.iter().map(|f| {
                    let items = f.detail["objects"]
                        .as_i64()
                        .or_else(|| f.detail["reports"].as_array().map(|r| r.len() as i64))
                        .unwrap_or(0);
                    [
                        f.fire.clone(),
                        f.outcome.clone(),
                        f.execution_id.clone().unwrap_or_default(),
                        items.to_string(),
                        f.at.clone(),
                    ]
                }),
            );
            Ok(Report::new(json_of(&fires), text))
        }
        TriggerCommand::Pause { name } | TriggerCommand::Resume { name } => {
            let paused = matches!(command, TriggerCommand::Pause { .. });
            let trigger = workflows.set_trigger_paused(name, paused).await?;
            Ok(Report::new(
                json_of(&trigger),
                format!(
                    "trigger {name} {}",
                    if paused { "paused" } else { "resumed" }
                ),
            ))
        }
        TriggerCommand::Delete { name } => {
            workflows.delete_trigger(name).await?;
            Ok(Report::new(
                json!({"trigger": name, "deleted": true}),
                format!("trigger {name} deleted"),
            ))
        }
    }
}

pub(super) fn trigger_request(args: &TriggerCreateArgs) -> anyhow::Result<TriggerRequest> {
    let input = match &args.input {
        Some(text) => Some(serde_json::from_str(text).context("--input is not JSON")?),
        None => None,
    };
    let window_seconds = match &args.window {
        Some(text) => Some(u64::try_from(parse_window(text)?).context("--window is not negative")?),
        None => None,
    };
    let (on, prefix, subject) = match (&args.on_landing, &args.on_drift) {
        (Some(prefix), _) => (On::Landing, Some(prefix.clone()), None),
        (None, Some(subject)) => (
            On::Drift,
            None,
            Some(subject.clone()).filter(|s| !s.is_empty()),
        ),
        (None, None) => anyhow::bail!("--on-landing PREFIX or --on-drift [SUBJECT]"),
    };
    Ok(TriggerRequest {
        name: args.name.clone(),
        workflow: args.workflow.clone(),
        on,
        prefix,
        subject,
        window_seconds,
        input,
    })
}

fn rule_row(r: &RuleView) -> [String; 6] {
    [
        r.name.clone(),
        r.definition
            .events
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        r.definition.url.clone(),
        json_of(&r.definition.body)
            .as_str()
            .unwrap_or("")
            .to_owned(),
        r.definition.subject.clone().unwrap_or_default(),
        r.paused.to_string(),
    ]
}

fn delivery_row(d: &DeliveryView) -> [String; 7] {
    [
        d.id.to_string(),
        d.rule.clone(),
        d.kind.clone(),
        d.status.clone(),
        d.attempts.to_string(),
        d.last_status.map(|s| s.to_string()).unwrap_or_default(),
        d.last_error
            .clone()
            .or_else(|| d.delivered_at.clone())
            .unwrap_or_default(),
    ]
}

pub async fn notify(command: &NotifyCommand, context: &Context) -> anyhow::Result<Report> {
    let ops = &context.ops;
    match command {
        NotifyCommand::Create(args) => {
            let rule = ops.put_notification_rule(&rule_request(args)?).await?;
            Ok(Report::new(
                json_of(&rule),
                format!(
                    "notification rule {} sends {} to {}",
                    rule.name,
                    rule_row(&rule)[1],
                    rule.definition.url
                ),
            ))
        }
        NotifyCommand::List => {
            let rules = ops.notification_rules().await?;
            let text = table(
                ["rule", "events", "url", "format", "subject", "paused"],
                rules.iter().map(rule_row),
            );
            Ok(Report::new(json_of(&rules), text))
        }
        NotifyCommand::Deliveries(args) => {
            let deliveries = ops
                .notification_deliveries(&DeliveryList {
                    rule: args.rule.clone(),
                    status: args.status.clone(),
                    limit: Some(args.limit),
                })
                .await?;
            let text = table(
                [
                    "id",
                    "rule",
                    "event",
                    "status",
                    "attempts",
                    "http",
                    "last error or delivered at",
                ],
                deliveries.iter().map(delivery_row),
            );
            Ok(Report::new(json_of(&deliveries), text))
        }
        NotifyCommand::Retry { id } => {
            let delivery = ops.retry_notification(*id).await?;
            Ok(Report::new(
                json_of(&delivery),
                format!("notification delivery {id} is pending again"),
            ))
        }
        NotifyCommand::Pause { name } | NotifyCommand::Resume { name } => {
            let paused = matches!(command, NotifyCommand::Pause { .. });
            let rule = ops.set_notification_rule_paused(name, paused).await?;
            Ok(Report::new(
                json_of(&rule),
                format!(
                    "notification rule {name} {}",
                    if paused { "paused" } else { "resumed" }
                ),
            ))
        }
        NotifyCommand::Delete { name } => {
            ops.delete_notification_rule(name).await?;
            Ok(Report::new(
                json!({"rule": name, "deleted": true}),
                format!("notification rule {name} deleted"),
            ))
        }
    }
}

pub(super) fn rule_request(args: &NotifyCreateArgs) -> anyhow::Result<RuleRequest> {
    let secret =
        match &args.secret_env {
            Some(var) => Some(std::env::var(var).with_context(|| {
                format!("--secret-env {var}: the environment variable is not set")
            })?),
            None => None,
        };
    Ok(RuleRequest {
        name: args.name.clone(),
        url: args.url.clone(),
        events: args.events.clone(),
        format: if args.format == "slack" {
            BodyFormat::Slack
        } else {
            BodyFormat::Json
        },
        subject: args.subject.clone(),
        min_quarantine_share: args.min_quarantine_share,
        connection: args.connection.clone(),
        secret,
        max_attempts: args.max_attempts,
    })
}
