//! Whether a night retrains (`sluice:retrain-check`): only when something changed. A model
//! group is retrained when it has no champion, when drift was found (this night's report, or
//! the reports that started the night through a drift trigger) in data that landed since its
//! last training, when that training is older than `max_age`, or when the table it learns from
//! gained at least `min_new_share` more rows since then; otherwise the night keeps the champion
//! and only refreshes its forecasts. Every answer says why, a line per reason, so that the
//! execution's history does.
//!
//! "Since the last training" is since the group's newest version was registered, whether it
//! won or not: a candidate that lost to the champion on the same data need not be trained again
//! on that data.

use std::time::Duration;

use chrono::{DateTime, Utc};
use models::registry::{AliasName, GroupName, Target, VersionInfo};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Ops, Result};

/// `{"group", "table"?, "catalog"?, "drift"?, "drift_reports"?, "policy"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainRequest {
    #[serde(deserialize_with = "crate::registry::group")]
    pub group: GroupName,
    /// The landing table the night converts: the rows its conversions wrote since the last
    /// training are the new data (none: new data is not counted).
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub catalog: Option<String>,
    /// This night's drift verdict (`sluice:detect-drift`'s `drift`, or its summary).
    #[serde(default)]
    pub drift: Option<DriftVerdict>,
    /// The drift reports that started the night (a drift trigger's `trigger.reports`): one or
    /// a list.
    #[serde(default, deserialize_with = "crate::request::one_or_many")]
    pub drift_reports: Vec<String>,
    #[serde(default)]
    pub policy: RetrainPolicy,
}

/// A drift verdict: `detected` and its `reasons` (other fields of a drift summary are read
/// past).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DriftVerdict {
    pub detected: bool,
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub report_id: Option<String>,
}

/// When a group is retrained: `{"max_age"?: "7d", "min_new_share"?: 0.1, "on_drift"?: true,
/// "force"?: false}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainPolicy {
    /// Retrain once the last training is this old (`7d`, `36h`), or never for its age
    /// (`forever`).
    #[serde(deserialize_with = "max_age")]
    pub max_age: Option<Duration>,
    /// Retrain once the table gained this share of the rows it had at the last training (0.1:
    /// a tenth more data). Any new row counts at 0.
    #[serde(deserialize_with = "share")]
    pub min_new_share: f64,
    /// Whether drift starts a retraining.
    pub on_drift: bool,
    /// Retrain whatever changed.
    pub force: bool,
}

impl Default for RetrainPolicy {
    fn default() -> Self {
        Self {
            max_age: Some(Duration::from_secs(7 * 86_400)),
            min_new_share: 0.1,
            on_drift: true,
            force: false,
        }
    }
}

fn max_age<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    crate::retention::duration_or_forever(&String::deserialize(de)?)
        .map_err(serde::de::Error::custom)
}

fn share<'de, D: Deserializer<'de>>(de: D) -> Result<f64, D::Error> {
    let share = f64::deserialize(de)?;
    if share.is_finite() && share >= 0.0 {
        Ok(share)
    } else {
        Err(serde::de::Error::custom(format!(
            "{share}: a share of at least 0 (0.1: a tenth more rows)"
        )))
    }
}

/// A version and how old it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionAge {
    pub version: u32,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    pub age_hours: f64,
    #[serde(rename = "mean_wQuantileLoss")]
    pub mean_wql: Option<f64>,
}

/// The table's rows written since the last training, beside those it had then.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewRows {
    pub table: String,
    pub rows: i64,
    pub rows_before: i64,
    /// `rows / rows_before` (null when there were none before).
    pub share: Option<f64>,
}

/// The answer: retrain or not, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetrainCheck {
    pub retrain: bool,
    /// The reasons in one line: `retrain: ...` or `no change: ...`.
    pub why: String,
    /// One line per reason (to retrain, or, when none, why each check passed).
    pub reasons: Vec<String>,
    pub champion: Option<VersionAge>,
    /// The group's newest version (the champion or a candidate that lost to it).
    pub last_trained: Option<VersionAge>,
    pub new_rows: Option<NewRows>,
}

/// What the decision looks at, read from the registry and the catalog.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub champion: Option<VersionAge>,
    pub last_trained: Option<VersionAge>,
    pub new_rows: Option<NewRows>,
}

fn age_of(info: &VersionInfo, now: DateTime<Utc>) -> VersionAge {
    let created = DateTime::from_timestamp_millis(info.created_at).unwrap_or(now);
    VersionAge {
        version: info.version,
        created_at: created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        age_hours: (now - created).num_milliseconds().max(0) as f64 / 3_600_000.0,
        mean_wql: info.mean_wql(),
    }
}

/// `8days 2h` (minutes and seconds dropped past an hour).
fn show_age(hours: f64) -> String {
    let seconds = (hours * 3600.0).round().max(0.0) as u64;
    let seconds = if seconds >= 3600 {
        seconds - seconds % 60
    } else {
        seconds
    };
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

fn show_share(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// The decision, from the request and what was read: (retrain, reasons).
pub fn decide(request: &RetrainRequest, evidence: &Evidence) -> (bool, Vec<String>) {
    let policy = &request.policy;
    let mut retrain = Vec::new();
    let mut kept = Vec::new();
    if policy.force {
        retrain.push("forced (policy.force)".to_owned());
    }
    match (&evidence.champion, &evidence.last_trained) {
        (None, None) => retrain.push("no champion yet: the group has no version".to_owned()),
        (None, Some(last)) => retrain.push(format!(
            "no champion yet (v{} is the newest version)",
            last.version
        )),
        (Some(_), _) => {}
    }
    // Drift on data the last training already had is the drift that training answered: it
    // starts a retraining only once rows landed since (or when new rows are not counted).
    let unchanged = match (&evidence.last_trained, &evidence.new_rows) {
        (Some(last), Some(new)) if new.rows == 0 => Some(last.version),
        _ => None,
    };
    let mut drift = Vec::new();
    let mut reports = Vec::new();
    if !request.drift_reports.is_empty() {
        drift.push(format!(
            "started by drift report {}",
            request.drift_reports.join(", ")
        ));
        reports.extend(request.drift_reports.iter().cloned());
    }
    if let Some(found) = request.drift.as_ref().filter(|d| d.detected) {
        let report = found
            .report_id
            .as_deref()
            .map(|id| format!(" ({id})"))
            .unwrap_or_default();
        let what = if found.reasons.is_empty() {
            String::new()
        } else {
            format!(": {}", found.reasons.join("; "))
        };
        drift.push(format!("drift detected{report}{what}"));
        reports.extend(found.report_id.iter().cloned());
    }
    let named = if reports.is_empty() {
        "drift detected".to_owned()
    } else {
        format!("drift detected ({})", reports.join(", "))
    };
    match (drift.is_empty(), policy.on_drift, unchanged) {
        (false, true, None) => retrain.extend(drift),
        (false, true, Some(version)) => kept.push(format!(
            "{named}, but no rows landed since v{version} was trained on the same data"
        )),
        (false, false, _) => kept.push(format!("{named}, but policy.on_drift is false")),
        (true, _, _) if request.drift.is_some() => kept.push("no drift".to_owned()),
        (true, _, _) => kept.push("drift not checked (no drift verdict given)".to_owned()),
    }
    if let Some(last) = &evidence.last_trained {
        let age = show_age(last.age_hours);
        match policy.max_age {
            Some(max) if last.age_hours * 3600.0 >= max.as_secs_f64() => retrain.push(format!(
                "the last training (v{}) is {age} old, past max_age {}",
                last.version,
                humantime::format_duration(max)
            )),
            Some(max) => kept.push(format!(
                "the last training (v{}) is {age} old, within max_age {}",
                last.version,
                humantime::format_duration(max)
            )),
            None => kept.push(format!(
                "the last training (v{}) is {age} old (max_age forever)",
                last.version
            )),
        }
        match &evidence.new_rows {
            Some(new) => {
                let share = new.share.map_or("all new".to_owned(), show_share);
                let text = format!(
                    "{} new rows in {} since v{} was trained ({share} of {})",
                    new.rows, new.table, last.version, new.rows_before
                );
                let past =
                    new.rows > 0 && new.share.is_none_or(|share| share >= policy.min_new_share);
                if past {
                    retrain.push(format!(
                        "{text}, past min_new_share {}",
                        show_share(policy.min_new_share)
                    ));
                } else {
                    kept.push(format!(
                        "{text}, under min_new_share {}",
                        show_share(policy.min_new_share)
                    ));
                }
            }
            None => kept.push("new data not counted (no table given)".to_owned()),
        }
    }
    if retrain.is_empty() {
        (false, kept)
    } else {
        (true, retrain)
    }
}

impl Ops {
    /// Reads the group's champion and newest version and the table's new rows, and decides.
    pub async fn retrain_check(&self, request: &RetrainRequest) -> Result<RetrainCheck> {
        let now = Utc::now();
        let registry = self.registry().await?;
        let champion = registry
            .resolve(&request.group, &Target::Alias(AliasName::champion()))
            .await?;
        let last = registry.versions(&request.group).await?.into_iter().last();
        let new_rows = match (&request.table, &last) {
            (Some(table), Some(last)) => {
                let catalog = self.catalog().await?;
                let db = self.catalog_db(request.catalog.as_deref())?;
                let info = catalog.table(&db, table).await?;
                let rows = catalog.rows_converted(info.id, last.created_at).await?;
                let before = rows.total - rows.since;
                Some(NewRows {
                    table: table.clone(),
                    rows: rows.since,
                    rows_before: before,
                    share: (before > 0).then(|| rows.since as f64 / before as f64),
                })
            }
            _ => None,
        };
        let evidence = Evidence {
            champion: champion.as_ref().map(|c| age_of(c, now)),
            last_trained: last.as_ref().map(|l| age_of(l, now)),
            new_rows,
        };
        let (retrain, reasons) = decide(request, &evidence);
        let why = format!(
            "{}: {}",
            if retrain { "retrain" } else { "no change" },
            reasons.join("; ")
        );
        tracing::info!(group = %request.group, retrain, %why, "retrain check");
        Ok(RetrainCheck {
            retrain,
            why,
            reasons,
            champion: evidence.champion,
            last_trained: evidence.last_trained,
            new_rows: evidence.new_rows,
        })
    }
}

#[cfg(test)]
mod tests;
