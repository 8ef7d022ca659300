//! Drift (`sluice drift run`, `sluice:detect-drift`): data drift between a dataset's training
//! window and its recent window (the test series' points past the training series' end), per
//! series and feature; schema drift from the catalog's version diffs; and the realised accuracy
//! of a group's stored batch forecasts. The report is stored in the database and written to the
//! lake (`reports/drift/<id>.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jobs::catalog::schema::SchemaDiff;
use jobs::drift::accuracy::RunAccuracy;
use jobs::drift::{DataDrift, DriftOptions, Sample, data_drift, store};
use jobs::lake::LakeKey;
use models::deepar::series::{Series, read_json_lines};
use models::registry::GroupName;
use serde::{Deserialize, Serialize};

use crate::{Error, Ops, Result};

/// `{"train", "test", "subject"?: "dataset", "table"?, "since_hours"?: 24, "catalog"?,
/// "group"?, "reference_windows"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftRequest {
    /// Training series (the reference window).
    pub train: PathBuf,
    /// The same series, longer: the points past the training series' end are the recent window.
    pub test: PathBuf,
    /// What the report is about (a model group, a table).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// A table whose schema changes of the last `since_hours` are reported.
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default = "default_since_hours")]
    pub since_hours: f64,
    #[serde(default)]
    pub catalog: Option<String>,
    /// A model group whose stored batch forecasts are scored against the test series.
    #[serde(default, deserialize_with = "crate::registry::optional_group")]
    pub group: Option<GroupName>,
    /// The reference is the last N recent-window lengths of the training window (None: all).
    #[serde(default, deserialize_with = "positive")]
    pub reference_windows: Option<usize>,
}

fn default_subject() -> String {
    "dataset".to_owned()
}

fn default_since_hours() -> f64 {
    24.0
}

fn positive<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<usize>, D::Error> {
    match Option::<usize>::deserialize(de)? {
        Some(0) => Err(serde::de::Error::custom("must be a positive integer")),
        n => Ok(n),
    }
}

/// A schema version of the table inside the report's window.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaChange {
    pub version: i64,
    pub created_at: i64,
    pub diff: SchemaDiff,
}

/// The thresholds a report was made with.
#[derive(Debug, Clone, Serialize)]
pub struct DriftThresholds {
    pub ks_max_reference: usize,
    pub ks_p_value: f64,
    pub wasserstein_threshold: f64,
    pub psi_bins: usize,
    pub drift_share: f64,
}

/// A drift report as stored (database and lake). A persisted format: fields are only added,
/// and `format` says which.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub format: u32,
    /// Set once stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub subject: String,
    pub train: PathBuf,
    pub test: PathBuf,
    pub reference_windows: Option<usize>,
    pub detected: bool,
    pub reasons: Vec<String>,
    pub options: DriftThresholds,
    pub data: DataDrift,
    pub schema: Vec<SchemaChange>,
    pub accuracy: Vec<RunAccuracy>,
}

impl DriftReport {
    pub const FORMAT: u32 = 1;
}

/// The verdict in short (the `sluice:detect-drift` task's output, under `drift`).
#[derive(Debug, Clone, Serialize)]
pub struct DriftSummary {
    pub detected: bool,
    pub reasons: Vec<String>,
    pub series: usize,
    pub drifted_series: usize,
    pub share_drifted_series: f64,
    pub schema_changes: usize,
    pub forecast_runs_scored: usize,
    pub report_id: String,
    /// The report's key in the lake.
    pub report: String,
}

/// What a drift check found: the summary (the task's output) and the whole report.
#[derive(Debug, Clone, Serialize)]
pub struct DriftOutput {
    pub drift: DriftSummary,
    #[serde(skip)]
    pub report: DriftReport,
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
fn windows(train: &Path, test: &Path, reference_windows: Option<usize>) -> Result<Vec<Windows>> {
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
    if out.is_empty() {
        return Err(Error::invalid(
            "test",
            format!(
                "{} and {} share no series with points past the training window (series match by item_id, or by line, and need the same start)",
                train.display(),
                test.display()
            ),
        ));
    }
    Ok(out)
}

/// Schema changes of a table since a time: (reasons for the retyped or removed columns and for
/// type changes pending a person's decision, every applied change).
async fn schema_drift(
    ops: &Ops,
    table_name: &str,
    catalog_db: Option<&str>,
    since_ms: i64,
) -> Result<(Vec<String>, Vec<SchemaChange>)> {
    let catalog = ops.catalog().await?;
    let db = ops.catalog_db(catalog_db)?;
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
        changes.push(SchemaChange {
            version: version.version,
            created_at: version.created_at,
            diff: diff.clone(),
        });
    }
    // A type change the crawl held for a person is drift too: the source changed, and until it
    // is decided its values are quarantined.
    for pending in catalog.type_changes(&db, Some(table_name), false).await? {
        let counts: Vec<String> = pending
            .counts
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        reasons.push(format!(
            "schema of {table_name}: {} {} → {} pending a person's decision (seen: {}; objects: {})",
            pending.column,
            pending.from,
            pending.to,
            counts.join(", "),
            pending.objects_total
        ));
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
    ops: &Ops,
    group_name: &GroupName,
    test: &Path,
) -> Result<(Vec<String>, Vec<RunAccuracy>)> {
    use jobs::drift::accuracy::{page_hinkley, score_run};
    let catalog = ops.catalog().await?;
    let curated = ops.curated_lake()?;
    let registry = ops.registry().await?;
    let group = group_name.as_str();
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
            .version(group_name, run.model_version)
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

impl Ops {
    /// Checks, stores and reports (see the module doc).
    pub async fn detect_drift(&self, request: &DriftRequest) -> Result<DriftOutput> {
        let options = DriftOptions::default();
        let (train, test) = (request.train.clone(), request.test.clone());
        let reference_windows = request.reference_windows;
        let data = tokio::task::spawn_blocking(move || -> Result<DataDrift> {
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
        let schema = match &request.table {
            Some(table_name) => {
                let since = jobs::catalog::now_ms() - (request.since_hours * 3_600_000.0) as i64;
                let (breaking, changes) =
                    schema_drift(self, table_name, request.catalog.as_deref(), since).await?;
                reasons.extend(breaking);
                changes
            }
            None => vec![],
        };
        let accuracy = match &request.group {
            Some(group) => {
                let (found, runs) = accuracy_drift(self, group, &request.test).await?;
                reasons.extend(found);
                runs
            }
            None => vec![],
        };
        let detected = !reasons.is_empty();
        let mut report = DriftReport {
            format: DriftReport::FORMAT,
            id: None,
            subject: request.subject.clone(),
            train: request.train.clone(),
            test: request.test.clone(),
            reference_windows: request.reference_windows,
            detected,
            reasons,
            options: DriftThresholds {
                ks_max_reference: options.ks_max_reference,
                ks_p_value: options.ks_p_value,
                wasserstein_threshold: options.wasserstein_threshold,
                psi_bins: options.psi_bins,
                drift_share: options.drift_share,
            },
            data,
            schema,
            accuracy,
        };
        let stored = serde_json::to_value(&report).expect("reports serialize");
        let id = store::save(
            self.catalog().await?,
            &report.subject,
            detected,
            &report.reasons,
            &stored,
        )
        .await?;
        report.id = Some(id.clone());
        let key = format!("reports/drift/{id}.json");
        let bytes = serde_json::to_vec_pretty(&report).expect("reports serialize");
        self.lake()?
            .put(&LakeKey::parse(&key)?, bytes.into())
            .await?;
        Ok(DriftOutput {
            drift: DriftSummary {
                detected,
                reasons: report.reasons.clone(),
                series: report.data.series,
                drifted_series: report.data.drifted_series,
                share_drifted_series: report.data.share_drifted,
                schema_changes: report.schema.len(),
                forecast_runs_scored: report.accuracy.len(),
                report_id: id,
                report: key,
            },
            report,
        })
    }
}
