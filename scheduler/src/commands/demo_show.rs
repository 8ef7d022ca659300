//! What the demo shows: a night's execution followed state by state, the endpoint called over
//! HTTP, a forecast table and chart, and the drift report and publish decision.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use chrono::NaiveDateTime;
use models::deepar::series::Series;
use serde_json::{Value, json};

use ops::workflows::{ExecutionView, StartRequest, Workflows};

use crate::chart::{Panel, write_panels};
use crate::orchestrator::queue::Queue;
use crate::orchestrator::store::ExecutionStatus;
use crate::output::table;

/// A progress line for the person watching; a closed stderr must not stop the demo.
pub fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Starts an execution, runs an embedded worker until it ends, and prints each state as it
/// finishes (with its duration) and every failure on the way; then the night's summary.
/// Returns the execution and its output; an execution that did not succeed is an error.
pub async fn run_execution(
    workflows: &Workflows,
    queue: &Queue,
    workflow: &str,
    name: &str,
    input: &Value,
) -> anyhow::Result<(ExecutionView, Value)> {
    let request = StartRequest {
        input: Some(input.clone()),
        name: Some(name.to_owned()),
    };
    let execution = workflows.start(workflow, request).await?.execution;
    succeeded(follow(workflows, queue, &execution.id).await?)
}

/// A night that ended: its output, with the night's summary printed; a night that did not
/// succeed is an error.
pub fn succeeded(finished: ExecutionView) -> anyhow::Result<(ExecutionView, Value)> {
    anyhow::ensure!(
        finished.status == ExecutionStatus::Succeeded,
        "execution {} {} in state {}: {} {}",
        finished.name,
        finished.status.as_str(),
        finished.state,
        finished.error.as_deref().unwrap_or_default(),
        finished.cause.as_deref().unwrap_or_default()
    );
    let output = finished.output.clone().unwrap_or(Value::Null);
    say(&night_summary(&output));
    Ok((finished, output))
}

/// Runs an embedded worker until a started execution ends, printing each state as it finishes
/// and every failure on the way; returns how it ended.
pub async fn follow(
    workflows: &Workflows,
    queue: &Queue,
    id: &str,
) -> anyhow::Result<ExecutionView> {
    let execution = workflows.describe(id).await?;
    let (stop, worker) = super::executions::embedded_worker(workflows.engine(), queue.clone());
    let mut seen = 0;
    let mut entered: BTreeMap<String, i64> = BTreeMap::new();
    let finished = loop {
        let history = workflows.history(&execution.id).await?;
        for event in &history[seen.min(history.len())..] {
            let state = event.state.clone().unwrap_or_default();
            if event.kind.ends_with("StateEntered") {
                entered.insert(state, event.at_ms);
            } else if event.kind.ends_with("StateExited") {
                let took = entered.get(&state).map_or(0, |at| event.at_ms - at);
                say(&format!("    {state:<16} {:>7.1} s", took as f64 / 1000.0));
            } else if matches!(
                event.kind.as_str(),
                "TaskFailed" | "ExecutionFailed" | "TaskTimedOut"
            ) {
                say(&format!(
                    "    {state:<16} {}: {}",
                    event.kind, event.details
                ));
            }
        }
        seen = history.len();
        let now = workflows.describe(&execution.id).await?;
        if now.ended() {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = stop.send(());
    worker.await??;
    Ok(finished)
}

/// One device's forecast from the endpoint.
pub struct Forecast {
    pub item: String,
    pub start: NaiveDateTime,
    pub history: Vec<f32>,
    pub mean: Vec<f64>,
    pub quantiles: BTreeMap<String, Vec<f64>>,
}

/// Calls `/endpoints/{endpoint}/invocations` with the last `context` points of each series;
/// returns the forecasts and the model version that answered.
pub async fn call_endpoint(
    base: &str,
    endpoint: &str,
    token: &str,
    series: &[Series],
    context: usize,
    freq_hours: i64,
) -> anyhow::Result<(Vec<Forecast>, String)> {
    let instances: Vec<Value> = series
        .iter()
        .map(|s| {
            let from = s.target.len().saturating_sub(context);
            let start = s.start + chrono::Duration::hours(freq_hours * from as i64);
            json!({
                "start": start.format("%Y-%m-%d %H:%M:%S").to_string(),
                "target": s.target[from..].iter().map(|v| if v.is_finite() { json!(v) } else { json!("NaN") }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let body = json!({
        "instances": instances,
        "configuration": {"num_samples": 100, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.5", "0.9"]},
    });
    let url = format!("{base}/endpoints/{endpoint}/invocations");
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot call {url}"))?;
    let status = response.status();
    let version = response
        .headers()
        .get("x-sluice-model-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    let answer: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {answer}");
    let predictions = answer["predictions"]
        .as_array()
        .context("the answer has no predictions")?;
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let forecasts = series
        .iter()
        .zip(predictions)
        .map(|(s, p)| Forecast {
            item: s.item_id.clone().unwrap_or_default(),
            start: s.start + chrono::Duration::hours(freq_hours * s.target.len() as i64),
            history: s.target.clone(),
            mean: numbers(&p["mean"]),
            quantiles: p["quantiles"]
                .as_object()
                .map(|q| q.iter().map(|(k, v)| (k.clone(), numbers(v))).collect())
                .unwrap_or_default(),
        })
        .collect();
    Ok((forecasts, version))
}

/// Every third hour of the forecasts: p10 / median / p90 per device.
pub fn forecast_table(forecasts: &[Forecast]) -> String {
    let Some(first) = forecasts.first() else {
        return String::new();
    };
    let headers: Vec<String> = std::iter::once("hour (UTC)".to_owned())
        .chain(
            forecasts
                .iter()
                .map(|f| format!("{} p10 / p50 / p90", f.item)),
        )
        .collect();
    let value = |f: &Forecast, q: &str, step: usize| {
        f.quantiles
            .get(q)
            .and_then(|v| v.get(step))
            .map_or("-".to_owned(), |v| format!("{v:.1}"))
    };
    let mut rendered = comfy_table::Table::new();
    rendered
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(headers);
    for step in (0..first.mean.len()).step_by(3) {
        let at = first.start + chrono::Duration::hours(step as i64);
        let mut row = vec![at.format("%m-%d %H:%M").to_string()];
        row.extend(forecasts.iter().map(|f| {
            format!(
                "{} / {} / {}",
                value(f, "0.1", step),
                value(f, "0.5", step),
                value(f, "0.9", step)
            )
        }));
        rendered.add_row(row);
    }
    rendered.to_string()
}

/// An SVG chart per device: the last three days, the forecast's median and 80 % band, and
/// (when they have landed since) the actual values of the forecast window.
pub fn write_chart(
    path: &Path,
    forecasts: &[Forecast],
    actuals: Option<&BTreeMap<String, Vec<f32>>>,
    title: &str,
) -> anyhow::Result<()> {
    const SHOWN: usize = 72;
    const HOUR: i64 = 3_600_000;
    let panels: Vec<Panel> = forecasts
        .iter()
        .map(|forecast| {
            let start = forecast.start.and_utc().timestamp_millis();
            let at = |step: i64| start + step * HOUR;
            let shown = SHOWN.min(forecast.history.len());
            let band = |q: &str| forecast.quantiles.get(q).cloned().unwrap_or_default();
            let (low, median, high) = (band("0.1"), band("0.5"), band("0.9"));
            Panel {
                title: forecast.item.clone(),
                y_label: "pm25 µg/m³".into(),
                history: forecast.history[forecast.history.len() - shown..]
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (at(i as i64 - shown as i64), f64::from(*v)))
                    .collect(),
                band: low
                    .iter()
                    .zip(&high)
                    .enumerate()
                    .map(|(i, (l, h))| (at(i as i64), *l, *h))
                    .collect(),
                median: median
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (at(i as i64), *v))
                    .collect(),
                band_label: "80 % interval".into(),
                actuals: actuals
                    .and_then(|a| a.get(&forecast.item))
                    .map(|values| {
                        values
                            .iter()
                            .take(median.len())
                            .enumerate()
                            .map(|(i, v)| (at(i as i64), f64::from(*v)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    write_panels(path, &panels, title)
}

/// The drift report in a few lines: the verdict, its reasons, and the series that moved most.
pub fn drift_summary(report: &Value) -> String {
    let data = &report["data"];
    let mut text = format!(
        "drift {}: {} of {} series drifted (reference: {})",
        if report["detected"] == true {
            "DETECTED"
        } else {
            "not detected"
        },
        data["drifted_series"],
        data["series"],
        match report["reference_windows"].as_u64() {
            Some(n) => format!("the {n} windows before the recent one"),
            None => "the whole training window".to_owned(),
        },
    );
    for reason in report["reasons"].as_array().into_iter().flatten() {
        text.push_str(&format!("\n  - {}", reason.as_str().unwrap_or_default()));
    }
    let mut features: Vec<&Value> = data["features"]
        .as_array()
        .map(|f| f.iter().collect())
        .unwrap_or_default();
    let ratio = |f: &Value| {
        let (old, new) = (
            f["reference_mean"].as_f64().unwrap_or(f64::NAN),
            f["current_mean"].as_f64().unwrap_or(f64::NAN),
        );
        if old.abs() > 0.0 { new / old } else { f64::NAN }
    };
    features.sort_by(|a, b| {
        (ratio(b) - 1.0)
            .abs()
            .partial_cmp(&(ratio(a) - 1.0).abs())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    text.push('\n');
    text.push_str(&table(
        [
            "series",
            "feature",
            "reference mean",
            "recent mean",
            "test",
            "score",
            "PSI",
            "drift",
        ],
        features.iter().take(5).map(|f| {
            [
                f["series"].as_str().unwrap_or_default().to_owned(),
                f["feature"].as_str().unwrap_or_default().to_owned(),
                format!("{:.1}", f["reference_mean"].as_f64().unwrap_or(f64::NAN)),
                format!("{:.1}", f["current_mean"].as_f64().unwrap_or(f64::NAN)),
                f["method"].as_str().unwrap_or_default().to_owned(),
                format!("{:.3}", f["score"].as_f64().unwrap_or(f64::NAN)),
                format!("{:.2}", f["psi"].as_f64().unwrap_or(f64::NAN)),
                if f["drifted"] == true { "yes" } else { "no" }.to_owned(),
            ]
        }),
    ));
    text
}

/// A night's outcome in a few lines, from the execution's output.
pub fn night_summary(output: &Value) -> String {
    let number = |v: &Value| v.as_f64().map_or("-".to_owned(), |n| format!("{n:.4}"));
    let drift = &output["drift"];
    let mut text = format!(
        "    crawled {} objects; converted {} records ({} written + {} quarantined: they reconcile)\n\
         \x20   drift: {}\n\
         \x20   retrain check: {}\n",
        output["crawl"]["crawled"],
        output["convert"]["read"],
        output["convert"]["written"],
        output["convert"]["quarantined"],
        if drift["detected"] == true {
            format!(
                "detected ({} reasons)",
                drift["reasons"].as_array().map_or(0, Vec::len)
            )
        } else {
            "none detected".to_owned()
        },
        output["check"]["why"].as_str().unwrap_or("?"),
    );
    if output["check"]["retrain"] != true {
        text.push_str(&format!(
            "    decision: {}",
            output["decision"]["outcome"].as_str().unwrap_or("?")
        ));
        return text;
    }
    let version = &output["publish"]["version"];
    let decision = if output["publish"]["published"] == true {
        format!("v{version} published as the champion")
    } else {
        match output["publish"]["champion"]["version"].as_u64() {
            Some(champion) => format!("v{version} not published; v{champion} stays the champion"),
            None => format!("v{version} not published; there is no champion yet"),
        }
    };
    for candidate in output["candidates"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "    candidate {}: validation mean wQuantileLoss {}\n",
            candidate["family"].as_str().unwrap_or("?"),
            number(&candidate["validation_mean_wQuantileLoss"]),
        ));
    }
    if let Some(reason) = output["blend"]["reason"].as_str() {
        text.push_str(&format!("    blend: {reason}\n"));
    }
    text.push_str(&format!(
        "    model v{version} ({}): backtest mean wQuantileLoss {} against seasonal naive's {}\n\
         \x20   decision: {decision}: {}",
        output["publish"]["family"].as_str().unwrap_or("?"),
        number(&output["publish"]["candidate"]["mean_wQuantileLoss"]),
        number(&output["publish"]["candidate"]["seasonal_naive_mean_wQuantileLoss"]),
        output["decision"]["why"].as_str().unwrap_or("?"),
    ));
    text
}
