//! `sluice drift run|show|list` and the `sluice:detect-drift` task: data drift between a
//! dataset's training window and its recent window (the test series' points past the training
//! series' end), per series and feature, plus schema drift from the catalog's version diffs.
//! The report is stored in the database and written to the lake (`reports/drift/<id>.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jobs::drift::{DataDrift, DriftOptions, Sample, data_drift, store};
use jobs::lake::LakeKey;
use models::deepar::series::{Series, read_json_lines};
use serde_json::{Value, json};

use super::Context;
use crate::cli::{DriftCommand, DriftRunArgs};
use crate::output::{Report, table, time};

/// What a drift check compares.
pub struct DriftSpec {
    /// Training series (the reference window).
    pub train: PathBuf,
    /// The same series, longer: the points past the training series' end are the recent window.
    pub test: PathBuf,
    /// What the report is about (a model group, a table).
    pub subject: String,
    /// A table whose schema changes since `since_ms` are reported.
    pub table: Option<String>,
    pub since_ms: Option<i64>,
    pub catalog: Option<String>,
    /// A model group whose stored batch forecasts are scored against the test series.
    pub group: Option<String>,
    /// The reference is the last N recent-window lengths of the training window (None: all).
    pub reference_windows: Option<usize>,
}

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
            let spec = DriftSpec {
                train: train.clone(),
                test: test.clone(),
                subject: subject.clone(),
                table: table.clone(),
                since_ms: Some(jobs::catalog::now_ms() - (*since_hours * 3_600_000.0) as i64),
                catalog: catalog.clone(),
                group: group.clone(),
                reference_windows: *reference_windows,
            };
            detect(&spec, context).await
        }
        DriftCommand::Show(args) => {
            let catalog = context.catalog().await?;
            let stored = store::get(&catalog, args.id.as_deref(), args.subject.as_deref()).await?;
            Ok(Report::new(stored.report.clone(), render(&stored.report)))
        }
        DriftCommand::List => {
            let catalog = context.catalog().await?;
            let reports = store::list(&catalog, 50).await?;
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

/// The key a series is matched by across files: its `item_id`, or its line.
fn keyed(series: Vec<Series>) -> BTreeMap<String, Series> {
    let mut map: BTreeMap<String, Series> = BTreeMap::new();
    for (line, s) in series.into_iter().enumerate() {
        let key = s
            .item_id
            .clone()
            .unwrap_or_else(|| format!("line {}", line + 1));
        // Rolling test windows repeat an item: keep its longest series.
        match map.get(&key) {
            Some(kept) if kept.target.len() >= s.target.len() => {}
            _ => {
                map.insert(key, s);
            }
        }
    }
    map
}

fn to_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|v| f64::from(*v)).collect()
}

/// One series' feature: (series, feature, training window, recent window).
type Windows = (String, String, Vec<f64>, Vec<f64>);

/// The windows of every feature of the series both files hold; the reference is the training
/// window, or its last `reference_windows` lengths of the recent window.
fn windows(
    train: &Path,
    test: &Path,
    reference_windows: Option<usize>,
) -> anyhow::Result<Vec<Windows>> {
    let reference = keyed(read_json_lines(train)?);
    let recent = keyed(read_json_lines(test)?);
    let mut out = Vec::new();
    for (key, old) in &reference {
        let Some(new) = recent.get(key) else { continue };
        let cut = old.target.len();
        if new.start != old.start || new.target.len() <= cut {
            continue;
        }
        let from = reference_windows.map_or(0, |windows| {
            cut.saturating_sub(windows.saturating_mul(new.target.len() - cut))
        });
        out.push((
            key.clone(),
            "target".to_owned(),
            to_f64(&old.target[from..]),
            to_f64(&new.target[cut..]),
        ));
        for (i, (old_feature, new_feature)) in
            old.dynamic_feat.iter().zip(&new.dynamic_feat).enumerate()
        {
            let end = new.target.len().min(new_feature.len());
            if end > cut && old_feature.len() >= cut {
                out.push((
                    key.clone(),
                    format!("dynamic_feat[{i}]"),
                    to_f64(&old_feature[from..cut]),
                    to_f64(&new_feature[cut..end]),
                ));
            }
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "{} and {} share no series with points past the training window (series match by item_id, or by line, and need the same start)",
        train.display(),
        test.display()
    );
    Ok(out)
}

/// Schema changes of a table since a time: (reasons for the retyped or removed columns, every
/// change as JSON).
async fn schema_drift(
    context: &Context,
    table_name: &str,
    catalog_db: Option<&str>,
    since_ms: i64,
) -> anyhow::Result<(Vec<String>, Vec<Value>)> {
    let catalog = context.catalog().await?;
    let db = context.catalog_db(catalog_db)?;
    let versions = catalog.versions(&db, table_name).await?;
    let mut reasons = Vec::new();
    let mut changes = Vec::new();
    for version in versions
        .iter()
        .filter(|v| v.created_at >= since_ms && v.version > 1)
    {
        let diff = &version.diff;
        if diff.is_empty() {
            continue;
        }
        let names = |columns: &[jobs::catalog::schema::ColumnType]| {
            columns.iter().map(|c| c.column.clone()).collect::<Vec<_>>()
        };
        // New columns are additions, not drift; a column gone or retyped is.
        if !diff.removed.is_empty() || !diff.changed.is_empty() || !diff.widened.is_empty() {
            let mut parts = Vec::new();
            if !diff.removed.is_empty() {
                parts.push(format!("removed {}", names(&diff.removed).join(", ")));
            }
            for change in diff.changed.iter().chain(&diff.widened) {
                parts.push(format!("{} {} → {}", change.column, change.from, change.to));
            }
            reasons.push(format!(
                "schema of {table_name} version {}: {}",
                version.version,
                parts.join("; ")
            ));
        }
        changes.push(
            json!({"version": version.version, "created_at": version.created_at, "diff": diff}),
        );
    }
    Ok((reasons, changes))
}

fn data_reasons(data: &DataDrift, options: &DriftOptions) -> Vec<String> {
    if !data.detected {
        return vec![];
    }
    let mut worst: Vec<&jobs::drift::FeatureDrift> =
        data.features.iter().filter(|f| f.drifted).collect();
    worst.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    let examples: Vec<String> = worst
        .iter()
        .take(3)
        .map(|f| {
            format!(
                "{} {} (mean {:.2} → {:.2}, {} {:.3}, PSI {:.2})",
                f.series, f.feature, f.reference_mean, f.current_mean, f.method, f.score, f.psi
            )
        })
        .collect();
    vec![format!(
        "{} of {} series drifted ({:.0} % ≥ {:.0} %): {}",
        data.drifted_series,
        data.series,
        data.share_drifted * 100.0,
        options.drift_share * 100.0,
        examples.join(", ")
    )]
}

/// How much worse than its backtest a run may score before it counts as drift.
const ACCURACY_TOLERANCE: f64 = 1.5;
/// How far below nominal the interval's coverage may fall.
const COVERAGE_TOLERANCE: f64 = 0.2;

/// Scores the group's stored batch forecasts (the last 30 runs) against the test series:
/// (reasons, per-run figures).
async fn accuracy_drift(
    context: &Context,
    group: &str,
    test: &Path,
) -> anyhow::Result<(Vec<String>, Vec<jobs::drift::accuracy::RunAccuracy>)> {
    use jobs::drift::accuracy::{page_hinkley, score_run};
    let catalog = context.catalog().await?;
    let lake = context.lake()?;
    let curated = context.curated_lake(&lake)?;
    let registry = models::registry::Registry::new(catalog.pool().clone());
    let group_name = models::registry::GroupName::parse(group)?;
    let actuals = keyed(read_json_lines(test)?);
    let mut runs = jobs::forecasts::runs(catalog.pool(), group).await?;
    runs.truncate(30);
    runs.reverse();
    let mut scored = Vec::new();
    for run in &runs {
        let rows = jobs::forecasts::read(&curated, &run.key).await?;
        let step_ms = rows
            .timestamp_ms
            .windows(2)
            .zip(rows.item_id.windows(2))
            .find(|(_, items)| items[0] == items[1])
            .map(|(t, _)| t[1] - t[0])
            .filter(|d| *d > 0);
        let Some(step_ms) = step_ms else { continue };
        let backtest = registry
            .version(&group_name, run.model_version)
            .await
            .ok()
            .and_then(|info| {
                let values: Vec<f64> = rows
                    .quantiles
                    .iter()
                    .filter_map(|(q, _)| info.metrics.get(format!("wQuantileLoss[{q}]"))?.as_f64())
                    .collect();
                (values.len() == rows.quantiles.len() && !values.is_empty())
                    .then(|| values.iter().sum::<f64>() / values.len() as f64)
            });
        let actual = |item: &str, at: i64| {
            let series = actuals.get(item)?;
            let offset = at - series.start.and_utc().timestamp_millis();
            if offset < 0 || offset % step_ms != 0 {
                return None;
            }
            series
                .target
                .get((offset / step_ms) as usize)
                .map(|v| f64::from(*v))
        };
        if let Some(score) = score_run(&run.id, run.model_version, &rows, actual, backtest) {
            scored.push(score);
        }
    }
    let mut reasons = Vec::new();
    if let Some(last) = scored.last() {
        if let Some(backtest) = last.backtest_mean_wql.filter(|b| *b > 0.0)
            && last.mean_wql > backtest * ACCURACY_TOLERANCE
        {
            reasons.push(format!(
                "forecast accuracy: run {} (v{}) realised mean_wQuantileLoss {:.4} against {:.4} in its backtest ({:.1}×)",
                last.run,
                last.model_version,
                last.mean_wql,
                backtest,
                last.mean_wql / backtest
            ));
        }
        if last.coverage < last.nominal_coverage - COVERAGE_TOLERANCE {
            reasons.push(format!(
                "forecast intervals: run {} covered {:.0} % of actuals, nominally {:.0} %",
                last.run,
                last.coverage * 100.0,
                last.nominal_coverage * 100.0
            ));
        }
    }
    let ratios: Vec<f64> = scored
        .iter()
        .filter_map(|s| Some(s.mean_wql / s.backtest_mean_wql.filter(|b| *b > 0.0)?))
        .collect();
    if let Some(at) = page_hinkley(&ratios, 0.05, 1.0) {
        reasons.push(format!(
            "forecast accuracy degraded over the last runs (Page-Hinkley alarm at run {} of {})",
            at + 1,
            ratios.len()
        ));
    }
    Ok((reasons, scored))
}

/// Checks, stores and reports (the CLI command and the task).
pub async fn detect(spec: &DriftSpec, context: &Context) -> anyhow::Result<Report> {
    let options = DriftOptions::default();
    let (train, test) = (spec.train.clone(), spec.test.clone());
    let reference_windows = spec.reference_windows;
    let data = tokio::task::spawn_blocking(move || -> anyhow::Result<DataDrift> {
        let values = windows(&train, &test, reference_windows)?;
        let samples: Vec<Sample<'_>> = values
            .iter()
            .map(|(series, feature, reference, current)| Sample {
                series,
                feature,
                reference,
                current,
            })
            .collect();
        Ok(data_drift(&samples, &options))
    })
    .await??;
    let mut reasons = data_reasons(&data, &options);
    let schema = match &spec.table {
        Some(table_name) => {
            let since = spec.since_ms.unwrap_or(0);
            let (breaking, changes) =
                schema_drift(context, table_name, spec.catalog.as_deref(), since).await?;
            reasons.extend(breaking);
            changes
        }
        None => vec![],
    };
    let accuracy = match &spec.group {
        Some(group) => {
            let (found, runs) = accuracy_drift(context, group, &spec.test).await?;
            reasons.extend(found);
            runs
        }
        None => vec![],
    };
    let detected = !reasons.is_empty();
    let mut report = json!({
        "format": 1,
        "subject": spec.subject,
        "train": spec.train,
        "test": spec.test,
        "reference_windows": spec.reference_windows,
        "detected": detected,
        "reasons": reasons,
        "options": {"ks_max_reference": options.ks_max_reference, "ks_p_value": options.ks_p_value,
                    "wasserstein_threshold": options.wasserstein_threshold, "psi_bins": options.psi_bins,
                    "drift_share": options.drift_share},
        "data": data,
        "schema": schema,
        "accuracy": accuracy,
    });
    let catalog = context.catalog().await?;
    let id = store::save(&catalog, &spec.subject, detected, &reasons, &report).await?;
    report["id"] = json!(id);
    let key = format!("reports/drift/{id}.json");
    context
        .lake()?
        .put(
            &LakeKey::parse(&key)?,
            serde_json::to_vec_pretty(&report)?.into(),
        )
        .await?;
    let text = render(&report);
    let json = json!({"drift": {
        "detected": detected,
        "reasons": reasons,
        "series": data.series,
        "drifted_series": data.drifted_series,
        "share_drifted_series": data.share_drifted,
        "schema_changes": schema.len(),
        "forecast_runs_scored": accuracy.len(),
        "report_id": id,
        "report": key,
    }});
    Ok(Report::new(json, text))
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
