//! `sluice drift run|show|list`: drift reports (see `ops::DriftRequest`), and the stored ones
//! rendered for people.

use ops::DriftRequest;
use serde_json::{Value, json};

use super::Context;
use crate::cli::{DriftCommand, DriftRunArgs};
use crate::output::{Report, table, time};

pub async fn run(command: &DriftCommand, context: &Context) -> anyhow::Result<Report> {
    match command {
        DriftCommand::Run(DriftRunArgs {
            train,
            test,
            subject,
            table,
            since_hours,
            catalog,
            group,
            reference_windows,
        }) => {
            let request: DriftRequest = ops::request::from_json(json!({
                "train": train, "test": test, "subject": subject, "table": table,
                "since_hours": since_hours, "catalog": catalog, "group": group,
                "reference_windows": reference_windows,
            }))?;
            let output = context.ops.detect_drift(&request).await?;
            let report = serde_json::to_value(&output.report)?;
            Ok(Report::new(json!(output), render(&report)))
        }
        DriftCommand::Show(args) => {
            let stored = context
                .ops
                .drift_report(args.id.as_deref(), args.subject.as_deref())
                .await?;
            Ok(Report::new(stored.report.clone(), render(&stored.report)))
        }
        DriftCommand::List => {
            let reports = context.ops.drift_reports(50).await?;
            let text = table(
                ["id", "at", "subject", "drift", "reasons"],
                reports.iter().map(|r| {
                    [
                        r.id.clone(),
                        time(r.created_at),
                        r.subject.clone(),
                        if r.detected { "yes" } else { "no" }.to_owned(),
                        r.reasons.join("; "),
                    ]
                }),
            );
            let json = json!(
                reports
                    .iter()
                    .map(|r| json!({
                        "id": r.id, "subject": r.subject, "detected": r.detected,
                        "reasons": r.reasons, "created_at": r.created_at,
                    }))
                    .collect::<Vec<_>>()
            );
            Ok(Report::new(json, text))
        }
    }
}

/// A report for people: the verdict, its reasons and the drifted features.
fn render(report: &Value) -> String {
    let detected = report["detected"].as_bool().unwrap_or(false);
    let mut text = format!(
        "drift report {} ({}): {}\n",
        report["id"].as_str().unwrap_or("-"),
        report["subject"].as_str().unwrap_or("-"),
        if detected {
            "DRIFT DETECTED"
        } else {
            "no drift"
        }
    );
    for reason in report["reasons"].as_array().into_iter().flatten() {
        text.push_str(&format!("  - {}\n", reason.as_str().unwrap_or_default()));
    }
    let features = report["data"]["features"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut rows: Vec<&Value> = features.iter().collect();
    rows.sort_by(|a, b| {
        b["psi"]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&a["psi"].as_f64().unwrap_or(0.0))
    });
    let number = |v: &Value| v.as_f64().map_or_else(|| "-".into(), |x| format!("{x:.3}"));
    text.push_str(&table(
        [
            "series",
            "feature",
            "mean before",
            "mean now",
            "test",
            "score",
            "PSI",
            "drift",
        ],
        rows.iter().take(20).map(|f| {
            [
                f["series"].as_str().unwrap_or_default().to_owned(),
                f["feature"].as_str().unwrap_or_default().to_owned(),
                number(&f["reference_mean"]),
                number(&f["current_mean"]),
                f["method"].as_str().unwrap_or_default().to_owned(),
                number(&f["score"]),
                number(&f["psi"]),
                if f["drifted"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    ""
                }
                .to_owned(),
            ]
        }),
    ));
    for change in report["schema"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\nschema version {}: {}",
            change["version"], change["diff"]
        ));
    }
    text
}
