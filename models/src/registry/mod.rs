//! The model registry: groups of numbered versions, each with its artifact (a model directory in
//! the lake), lineage (dataset snapshot, training execution, hyperparameters), its backtest
//! metrics and seasonal naive's on the same windows, a status, and aliases (`champion`,
//! `challenger`, any name) whose every move is kept with who moved it and why.
//!
//! Every change to a group bumps its generation in the same transaction and records one event
//! under it ([`store`]); on Postgres the change also notifies `sluice_registry`, so servers follow
//! alias moves at once, and elsewhere by comparing generations. Whether a candidate is published
//! is a pure decision ([`decide`]).

/// The columns of `model_versions`, in the order [`version_from_row`] and the insert use; a
/// macro so the queries stay static strings.
macro_rules! version_columns {
    () => {
        "group_name, version, status, status_reason, artifact, dataset_snapshot, \
         training_execution, hyperparameters, metrics, baseline_metrics, created_by, created_at"
    };
}

pub mod decide;
mod read;
pub mod select;
mod store;

use serde::Serialize;
use serde_json::Value;

pub use decide::{Decision, Scores, decide};
pub use select::{Entry, Outcome, Selection, select};
pub use store::{Registry, Verdict};

use crate::{Error, Result};

/// The alias servers follow by default.
pub const CHAMPION: &str = "champion";
/// The channel Postgres notifies on every registry or endpoint change.
pub const NOTIFY_CHANNEL: &str = "sluice_registry";

fn check_name(kind: &'static str, text: &str) -> Result<()> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            field: kind,
            reason: format!(
                "{text:?}: use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        })
    }
}

/// A model group's name (`air-quality`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(text: &str) -> Result<Self> {
        check_name("model group", text)?;
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for GroupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An alias name (`champion`); never all digits, so `GROUP:3` and `GROUP:champion` differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AliasName(String);

impl AliasName {
    pub fn parse(text: &str) -> Result<Self> {
        check_name("alias", text)?;
        if text.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::InvalidArgument {
                field: "alias",
                reason: format!("{text:?}: an alias cannot be a number (numbers are versions)"),
            });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn champion() -> Self {
        Self(CHAMPION.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AliasName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version of a group: pinned by number, or whatever an alias points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Version(u32),
    Alias(AliasName),
}

impl Target {
    /// `3`, `v3` or an alias name.
    pub fn parse(text: &str) -> Result<Self> {
        let digits = text.strip_prefix('v').unwrap_or(text);
        if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
            let version = digits.parse().map_err(|_| Error::InvalidArgument {
                field: "version",
                reason: format!("{text:?} is too large"),
            })?;
            return Ok(Self::Version(version));
        }
        Ok(Self::Alias(AliasName::parse(text)?))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Version(v) => write!(f, "v{v}"),
            Target::Alias(a) => f.write_str(a.as_str()),
        }
    }
}

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    Archived,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "rejected" => Status::Rejected,
            "archived" => Status::Archived,
            other => {
                return Err(Error::InvalidArgument {
                    field: "status",
                    reason: format!("{other:?}: use pending, approved, rejected or archived"),
                });
            }
        })
    }

    /// Whether an alias may point at a version with this status.
    pub fn servable(self) -> bool {
        matches!(self, Status::Pending | Status::Approved)
    }
}

/// What registering a version records.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// The lake key of the model directory.
    pub artifact: String,
    pub dataset_snapshot: Option<String>,
    pub training_execution: Option<String>,
    pub hyperparameters: Value,
    pub metrics: Value,
    pub baseline_metrics: Value,
    /// Who registers it (a user, `execution:<id>`).
    pub actor: String,
}

/// A registered version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub group: GroupName,
    pub version: u32,
    pub status: Status,
    pub status_reason: Option<String>,
    pub artifact: String,
    pub dataset_snapshot: Option<String>,
    pub training_execution: Option<String>,
    pub hyperparameters: Value,
    pub metrics: Value,
    pub baseline_metrics: Value,
    pub created_by: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// The aliases pointing at it now.
    pub aliases: Vec<String>,
}

impl VersionInfo {
    /// The backtest's mean weighted quantile loss, when recorded.
    pub fn mean_wql(&self) -> Option<f64> {
        self.metrics
            .get("mean_wQuantileLoss")
            .and_then(Value::as_f64)
    }
}

/// One entry of a group's history.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub generation: i64,
    /// `registered`, `status`, `alias-moved`, `alias-rolled-back` or `alias-removed`.
    pub kind: String,
    pub version: Option<u32>,
    pub alias: Option<String>,
    pub from_version: Option<u32>,
    pub status: Option<String>,
    pub actor: String,
    pub reason: String,
    pub at: i64,
}

/// Who changes the registry and why: every change records both.
#[derive(Debug, Clone)]
pub struct Change {
    pub actor: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_targets_parse() {
        assert!(GroupName::parse("air-quality").is_ok());
        assert!(GroupName::parse("").is_err());
        assert!(GroupName::parse("../x").is_err());
        assert!(AliasName::parse("champion").is_ok());
        assert!(AliasName::parse("42").is_err());
        assert_eq!(Target::parse("v3").unwrap(), Target::Version(3));
        assert_eq!(Target::parse("3").unwrap(), Target::Version(3));
        assert_eq!(
            Target::parse("challenger").unwrap(),
            Target::Alias(AliasName::parse("challenger").unwrap())
        );
        assert!(Target::parse("no way").is_err());
        assert_eq!(Status::parse("archived").unwrap(), Status::Archived);
        assert!(Status::parse("live").is_err());
    }
}
