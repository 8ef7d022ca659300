//! `sluice demo`: the whole product on embedded defaults in a fresh directory. A month of
//! landings from an air-quality fleet; the shipped nightly-retrain workflow and its schedule
//! installed; the first night run as a durable execution (crawl, convert, dataset, train,
//! drift, publish, batch forecast); the prediction endpoint started, called over HTTP, its
//! forecasts printed and drawn; then the next night: a landing trigger and an on-call webhook
//! are installed, one more day lands with wildfire smoke in it (written as Firehose would, or
//! sent by the devices over MQTT or the Firehose API), the trigger starts the workflow, the
//! drift report and the publish decision say what changed, the night's forecasts fail to reach
//! a partner whose API is down, and the webhook receives the drift and the failure.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context as _;
use jobs::generate::{LandingsSpec, Shift, generate_landings};
use models::deepar::series::read_json_lines;
use ops::notifications::{BodyFormat, RuleRequest};
use ops::workflows::triggers::{On, TriggerRequest};
use serde_json::{Value, json};

use super::Context;
use super::crawl::generate_report;
use super::demo_hooks::Hooks;
use super::demo_show::{
    call_endpoint, drift_summary, follow, forecast_table, run_execution, say, succeeded,
    write_chart,
};
use super::schedules::nightly_input;
use crate::cli::{DemoArgs, WorkflowInstallArgs};
use crate::output::Report;
use crate::serving::endpoints::{self, EndpointSpec, Variant};
use crate::serving::{auth, router};

const WORKFLOW: &str = "nightly-retrain";
const GROUP: &str = "air-quality";
/// Devices drawn and called by name.
const SHOWN: usize = 3;
/// The landing trigger: its name, and how long its window waits for the rest of a burst.
const TRIGGER: &str = "new-landings";
const TRIGGER_WINDOW: u64 = 5;
/// The workflow that sends the night's forecasts to a partner.
const EXPORT: &str = "export-forecasts";
const EXPORT_DEFINITION: &str = r#"{
  "Comment": "Sends a night's batch forecasts to a partner's API (input: url, forecast).",
  "StartAt": "Send",
  "States": {
    "Send": {
      "Type": "Task",
      "Resource": "arn:aws:states:::http:invoke",
      "Parameters": {"ApiEndpoint.$": "$.url", "Method": "POST", "RequestBody": {"forecast.$": "$.forecast"}},
      "Retry": [{"ErrorEquals": ["States.Http.StatusCode.503"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1.5}],
      "End": true
    }
  }
}"#;

fn fresh_dir(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    if dir.exists()
        && dir
            .read_dir()
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "demo directory {} is not empty: pass --dir with a new directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(std::path::absolute(dir)?)
}

/// The workflow's input: the fleet's settings with the demo's training effort.
fn input(work: &std::path::Path, args: &DemoArgs) -> Value {
    let mut input = nightly_input(&work.display().to_string());
    input["hyperparameters"]["epochs"] = json!(args.epochs.to_string());
    input["hyperparameters"]["num_batches_per_epoch"] = json!(args.batches.to_string());
    input
}

/// The series of a night's test file (everything that has landed), by device.
fn landed(output: &Value) -> anyhow::Result<Vec<models::deepar::series::Series>> {
    let path = output["dataset"]["test"]
        .as_str()
        .context("the night's output names no test series")?;
    let mut series = read_json_lines(std::path::Path::new(path))?;
    series.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    Ok(series)
}

pub async fn run(args: &DemoArgs, context: &Context) -> anyhow::Result<Report> {
    let started = Instant::now();
    anyhow::ensure!(
        args.days >= 3 && args.devices >= 1,
        "the demo needs --days 3 or more (a day to test on, the others to train on) and --devices 1 or more"
    );
    let dir = fresh_dir(&args.dir)?;
    let mut config = context.config.clone();
    config.database = format!("sqlite://{}/.sluice/sluice.db", dir.display());
    config.lake = format!("file://{}/lake", dir.display());
    config.curated_lake = None;
    config.ingest.wal_dir = dir.join(".sluice/ingest");
    let demo = Context::with_progress(config, context.progress);
    let (lake, catalog) = (demo.lake()?, demo.catalog().await?);
    let start = chrono::NaiveDate::from_ymd_opt(2024, 5, 1).expect("valid date");
    let night = |days: u32| start + chrono::Duration::days(i64::from(days));

    let spec = LandingsSpec::new(args.devices, args.days, args.seed, start);
    let spec_prefix = spec.prefix.as_str().to_owned();
    say(&format!(
        "==> {} days of Firehose landings from {} air-quality devices ({} to {})",
        args.days,
        args.devices,
        start,
        night(args.days - 1)
    ));
    let generated = generate_landings(&lake, &spec).await?;
    let generated = generate_report(&generated, lake.url(), &spec);
    say(&format!("    {}", generated.text));

    let work = dir.join("work");
    let input = input(&work, args);
    say(&format!(
        "==> installing the {WORKFLOW} workflow and its schedule (02:00, {})",
        args.tz
    ));
    let installed = super::schedules::install(
        &WorkflowInstallArgs {
            name: WORKFLOW.into(),
            cron: "0 2 * * *".into(),
            tz: args.tz.clone(),
            input: Some(input.to_string()),
        },
        &demo,
    )
    .await?;
    say(&format!("    {}", installed.text));

    let (workflows, queue) = demo.workflows().await?;
    let first_name = format!("night-{}", night(args.days));
    say(&format!(
        "==> night 1: execution {first_name} (crawl, convert, dataset, train, drift, publish, forecast)"
    ));
    let (first, first_output) =
        run_execution(&workflows, &queue, WORKFLOW, &first_name, &input).await?;

    // The endpoint follows the champion alias; a predict token lets applications call it.
    let spec = EndpointSpec::new(
        GROUP,
        models::registry::GroupName::parse(GROUP)?,
        vec![Variant::parse("primary=champion")?],
    )?;
    endpoints::put(catalog.pool(), &spec).await?;
    let token = auth::create(catalog.pool(), auth::Scope::Predict, "demo")
        .await?
        .token;
    // The console's login: an admin token for the person who ran the demo.
    let console_token = auth::create(catalog.pool(), auth::Scope::Admin, "demo-console")
        .await?
        .token;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    let serving = crate::process::start_serving(&demo, stopped).await?;
    let listener = crate::process::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(axum::serve(listener, router(serving.clone())).into_future());

    let series = landed(&first_output)?;
    let shown: Vec<_> = series.iter().take(SHOWN).cloned().collect();
    let mut forecast_json = Value::Null;
    let mut forecasts = Vec::new();
    if first_output["publish"]["published"] == true {
        say(&format!(
            "==> the endpoint serves the champion: POST {base}/endpoints/{GROUP}/invocations"
        ));
        let (answer, version) = call_endpoint(&base, GROUP, &token, &shown, 24 * 7, 1).await?;
        say(&format!(
            "    pm25 forecast (µg/m³) by model {version}, median and 80 % interval:\n{}",
            forecast_table(&answer)
        ));
        let chart = dir.join("forecast.svg");
        write_chart(&chart, &answer, None, "pm25 forecast: the next 24 hours")?;
        say(&format!("    chart: {}", chart.display()));
        forecast_json = json!({"version": version, "chart": chart, "items": answer.iter().map(|f| json!({
            "item": f.item, "start": f.start.to_string(), "mean": f.mean, "quantiles": f.quantiles,
        })).collect::<Vec<_>>()});
        forecasts = answer;
    } else {
        say("    no version beat seasonal naive yet, so the endpoint has no champion to serve");
    }

    // The second night is started by what lands, and the on-call team hears what goes wrong.
    let hooks = Hooks::start().await?;
    let trigger = workflows
        .create_trigger(&TriggerRequest {
            name: TRIGGER.into(),
            workflow: WORKFLOW.into(),
            on: On::Landing,
            prefix: Some(spec_prefix.clone()),
            subject: None,
            window_seconds: Some(TRIGGER_WINDOW),
            input: Some(input.clone()),
        })
        .await?;
    say(&format!(
        "==> trigger {TRIGGER}: new objects under {} start {WORKFLOW} (window {TRIGGER_WINDOW} s); \
         notification rule on-call: failures, timeouts, drift and rollbacks to {}",
        trigger.definition.prefix.as_deref().unwrap_or_default(),
        hooks.on_call
    ));
    demo.ops
        .put_notification_rule(&RuleRequest {
            name: "on-call".into(),
            url: hooks.on_call.clone(),
            events: [
                "execution.failed",
                "execution.timed_out",
                "drift.detected",
                "deployment.rolled_back",
            ]
            .map(str::to_owned)
            .to_vec(),
            format: BodyFormat::Json,
            subject: None,
            min_quarantine_share: 0.01,
            connection: None,
            secret: None,
            max_attempts: 8,
        })
        .await?;

    let smoke = 2.5;
    say(&format!(
        "==> the next day lands ({}), with wildfire smoke: particulate matter x{smoke}",
        night(args.days)
    ));
    let next = LandingsSpec {
        days: args.days + 1,
        from_day: args.days,
        shift: Some(Shift {
            from_day: args.days,
            factor: smoke,
        }),
        ..LandingsSpec::new(args.devices, args.days, args.seed, start)
    };
    let more = super::demo_devices::land(
        &demo,
        &lake,
        &next,
        args.devices_via,
        &args.mqtt_broker,
        serving.auth.clone(),
    )
    .await?;
    say(&format!("    {}", more.text));
    let fire = wait_for_trigger(&workflows).await?;
    let second_name = fire.fire.clone();
    say(&format!(
        "==> night 2: trigger {TRIGGER} saw {} new object{}; its window closed: execution {second_name}",
        fire.detail["objects"],
        if fire.detail["objects"] == 1 { "" } else { "s" }
    ));
    let second_id = fire
        .execution_id
        .clone()
        .context("the trigger's firing names no execution")?;
    let (second, second_output) = succeeded(follow(&workflows, &queue, &second_id).await?)?;
    let report_id = second_output["drift"]["report_id"].as_str().unwrap_or("");
    let drift = jobs::drift::store::get(&catalog, Some(report_id), None).await?;
    say(&drift_summary(&drift.report));

    let mut chart_after = Value::Null;
    if !forecasts.is_empty() {
        // Yesterday's forecasts against the smoky day that landed since.
        let actual: BTreeMap<String, Vec<f32>> = landed(&second_output)?
            .into_iter()
            .filter_map(|s| {
                let item = s.item_id.clone()?;
                let before = series.iter().find(|o| o.item_id.as_ref() == Some(&item))?;
                Some((
                    item,
                    s.target[before.target.len().min(s.target.len())..].to_vec(),
                ))
            })
            .collect();
        let chart = dir.join("forecast-vs-smoke.svg");
        write_chart(
            &chart,
            &forecasts,
            Some(&actual),
            "night 1's forecast against the smoky day that landed",
        )?;
        say(&format!("    chart: {}", chart.display()));
        serving.refresh().await?;
        let (_, version) = call_endpoint(&base, GROUP, &token, &shown, 24 * 7, 1).await?;
        say(&format!(
            "    the endpoint now answers with model {version}"
        ));
        chart_after = json!({"chart": chart, "serving": version});
    }
    say("==> the night's forecasts go to a partner's API, which is down (503)");
    workflows
        .put_workflow(EXPORT, &serde_json::from_str(EXPORT_DEFINITION)?)
        .await?;
    let export = workflows
        .start(
            EXPORT,
            ops::workflows::StartRequest {
                input: Some(json!({"url": hooks.partner, "forecast": second_output["forecast"]})),
                name: Some(format!("{second_name}-export")),
            },
        )
        .await?
        .execution;
    let export = follow(&workflows, &queue, &export.id).await?;
    say(&format!(
        "    {EXPORT} {}: {}",
        export.status.as_str(),
        export.error.as_deref().unwrap_or("")
    ));
    let notified = wait_for_notifications(&demo, &hooks).await?;
    say("==> the on-call webhook received:");
    for body in &notified {
        say(&format!(
            "    {}: {}",
            body["kind"].as_str().unwrap_or(""),
            body["summary"].as_str().unwrap_or("")
        ));
    }
    let _ = stop.send(());
    server.abort();
    demo.ops.close().await;

    let elapsed = started.elapsed().as_secs_f64();
    let (db, lake_url) = (&demo.config.database, &demo.config.lake);
    let flags = format!("--database {db} --lake {lake_url}");
    // Night 1's forecast against the smoky day that landed since, in the console.
    let forecast_page = first_output["forecast"]["run"]
        .as_str()
        .map(|run| format!("http://127.0.0.1:8080/ui/forecasts/{GROUP}/{run}"));
    let text = format!(
        "demo finished in {elapsed:.0} s in {dir}.\n\
         The console: run `sluice {flags} server --listen 127.0.0.1:8080`, open \
         http://127.0.0.1:8080/ui and log in with the token {console_token}{shown}\n\
         Try next:\n  \
         sluice {flags} serve --listen 127.0.0.1:8080 &\n  \
         curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n    \
         -d '{{\"instances\": [{{\"start\": \"2024-05-30 00:00:00\", \"target\": [12.1, 11.4, 10.9, 12.6]}}], \"configuration\": {{\"quantiles\": [\"0.1\", \"0.5\", \"0.9\"]}}}}' \\\n    \
         http://127.0.0.1:8080/endpoints/{GROUP}/invocations\n  \
         sluice {flags} workflow list\n  \
         sluice {flags} workflow history {exec}\n  \
         sluice {flags} models history {GROUP}\n  \
         sluice {flags} drift show {report_id}\n  \
         sluice {flags} schedule list\n  \
         sluice {flags} trigger fires {TRIGGER}\n  \
         sluice {flags} notify deliveries\n  \
         sluice {flags} server      # the API, the 02:00 schedule and a worker\n  \
         duckdb -c \"SELECT device_id, avg(pm25) FROM read_parquet('{dir}/lake/curated/telemetry/**/*.parquet', hive_partitioning=true) GROUP BY 1\"",
        dir = dir.display(),
        exec = second.id,
        shown = forecast_page
            .as_deref()
            .map(|url| format!("\n  night 1's forecast against the day that landed since: {url}"))
            .unwrap_or_default(),
    );
    Ok(Report::new(
        json!({
            "dir": dir, "database": db, "lake": lake_url, "token": token, "seconds": elapsed,
            "console": {"url": "http://127.0.0.1:8080/ui", "token": console_token, "forecast": forecast_page},
            "generated": generated.json, "next_day": more.json,
            "trigger": {"name": TRIGGER, "fire": fire.fire, "objects": fire.detail["objects"], "execution": second.id},
            "export": {"execution": export.id, "status": export.status.as_str(), "error": export.error},
            "notifications": notified,
            "nights": [
                {"execution": first.id, "name": first_name, "output": first_output},
                {"execution": second.id, "name": second_name, "output": second_output},
            ],
            "forecast": forecast_json, "after": chart_after,
            "drift": {"id": drift.id, "detected": drift.detected, "reasons": drift.reasons},
        }),
        text,
    ))
}

/// Passes of the triggers until the landing trigger has started the second night (its window
/// closes a few seconds after the last object it saw); returns its firing.
async fn wait_for_trigger(
    workflows: &ops::workflows::Workflows,
) -> anyhow::Result<ops::workflows::triggers::FireView> {
    let waited = Instant::now();
    loop {
        workflows.fire_triggers(chrono::Utc::now()).await?;
        if let Some(fire) = workflows
            .trigger_fires(TRIGGER, 1)
            .await?
            .into_iter()
            .find(|f| f.execution_id.is_some())
        {
            return Ok(fire);
        }
        anyhow::ensure!(
            waited.elapsed() < std::time::Duration::from_secs(120),
            "trigger {TRIGGER} saw no new landings in 2 minutes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Passes of the notifications until the webhook has the export's failure (and what else the
/// night sent); returns what it received.
async fn wait_for_notifications(
    demo: &super::Context,
    hooks: &Hooks,
) -> anyhow::Result<Vec<Value>> {
    let waited = Instant::now();
    loop {
        demo.ops.notify(chrono::Utc::now()).await?;
        let received = hooks.received();
        if received.iter().any(|b| b["kind"] == "execution.failed") {
            return Ok(received);
        }
        anyhow::ensure!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "the on-call webhook received no failure in a minute: {}",
            Value::Array(received)
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
