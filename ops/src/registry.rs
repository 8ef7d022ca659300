//! The model registry's reads and moves (`sluice models ...`): versions, aliases, statuses and
//! history, each change recorded with who made it and why.

use models::registry::{AliasName, Change, Event, GroupName, Status, Target, VersionInfo};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Error, Missing, Ops, Result};

/// A model group's name from a request.
pub(crate) fn group<'de, D: Deserializer<'de>>(de: D) -> Result<GroupName, D::Error> {
    GroupName::parse(&String::deserialize(de)?).map_err(serde::de::Error::custom)
}

/// A version from a request: a number (`3`), or text (`"3"`, `"v3"`, an alias); null is the
/// champion.
pub(crate) fn target<'de, D: Deserializer<'de>>(de: D) -> Result<Target, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Null(()),
        Number(u32),
        Text(String),
    }
    match Raw::deserialize(de)
        .map_err(|_| serde::de::Error::custom("expected a version number or an alias"))?
    {
        Raw::Null(()) => Ok(champion_target()),
        Raw::Number(n) => Ok(Target::Version(n)),
        Raw::Text(text) => Target::parse(&text).map_err(serde::de::Error::custom),
    }
}

fn alias<'de, D: Deserializer<'de>>(de: D) -> Result<AliasName, D::Error> {
    AliasName::parse(&String::deserialize(de)?).map_err(serde::de::Error::custom)
}

fn number<'de, D: Deserializer<'de>>(de: D) -> Result<u32, D::Error> {
    match target(de)? {
        Target::Version(n) => Ok(n),
        Target::Alias(_) => Err(serde::de::Error::custom(
            "expected a version number (3 or v3), not an alias",
        )),
    }
}

fn status<'de, D: Deserializer<'de>>(de: D) -> Result<Status, D::Error> {
    Status::parse(&String::deserialize(de)?).map_err(serde::de::Error::custom)
}

fn champion() -> AliasName {
    AliasName::champion()
}

/// A model group's name, or null.
pub(crate) fn optional_group<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<GroupName>, D::Error> {
    Option::<String>::deserialize(de)?
        .map(|name| GroupName::parse(&name).map_err(serde::de::Error::custom))
        .transpose()
}

/// `{"group", "version"?: "champion"}`: one version, by number or alias.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRequest {
    #[serde(deserialize_with = "group")]
    pub group: GroupName,
    #[serde(default = "champion_target", deserialize_with = "target")]
    pub version: Target,
}

pub(crate) fn champion_target() -> Target {
    Target::Alias(AliasName::champion())
}

/// `{"group", "version", "alias"?: "champion", "reason"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    #[serde(deserialize_with = "group")]
    pub group: GroupName,
    #[serde(deserialize_with = "number")]
    pub version: u32,
    #[serde(default = "champion", deserialize_with = "alias")]
    pub alias: AliasName,
    pub reason: String,
}

/// `{"group", "alias"?: "champion", "reason"}`: undo the alias's last move.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    #[serde(deserialize_with = "group")]
    pub group: GroupName,
    #[serde(default = "champion", deserialize_with = "alias")]
    pub alias: AliasName,
    pub reason: String,
}

/// `{"group", "version", "status", "reason"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStatusRequest {
    #[serde(deserialize_with = "group")]
    pub group: GroupName,
    #[serde(deserialize_with = "number")]
    pub version: u32,
    #[serde(deserialize_with = "status")]
    pub status: Status,
    pub reason: String,
}

/// An alias moved: where it points now and where it pointed before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AliasChange {
    pub group: GroupName,
    pub alias: AliasName,
    pub version: u32,
    pub from_version: Option<u32>,
}

impl Ops {
    /// Every group with its generation.
    pub async fn model_groups(&self) -> Result<Vec<(GroupName, i64)>> {
        Ok(self.registry().await?.groups().await?)
    }

    /// A group's versions.
    pub async fn model_versions(&self, group: &GroupName) -> Result<Vec<VersionInfo>> {
        Ok(self.registry().await?.versions(group).await?)
    }

    /// One version, by number or alias.
    pub async fn model_version(&self, request: &VersionRequest) -> Result<VersionInfo> {
        self.registry()
            .await?
            .resolve(&request.group, &request.version)
            .await?
            .ok_or_else(|| Error::NotFound {
                missing: Missing::Other,
                what: format!("alias {}:{} is not set", request.group, request.version),
            })
    }

    /// Points an alias at a version.
    pub async fn promote(&self, request: &PromoteRequest, actor: &str) -> Result<AliasChange> {
        let change = Change {
            actor: actor.to_owned(),
            reason: request.reason.clone(),
        };
        let from_version = self
            .registry()
            .await?
            .move_alias(&request.group, &request.alias, request.version, &change)
            .await?;
        Ok(AliasChange {
            group: request.group.clone(),
            alias: request.alias.clone(),
            version: request.version,
            from_version,
        })
    }

    /// Undoes an alias's last move; returns where it points now.
    pub async fn rollback(&self, request: &RollbackRequest, actor: &str) -> Result<AliasChange> {
        let change = Change {
            actor: actor.to_owned(),
            reason: request.reason.clone(),
        };
        let registry = self.registry().await?;
        let before = registry
            .resolve(&request.group, &Target::Alias(request.alias.clone()))
            .await?;
        let version = registry
            .rollback(&request.group, &request.alias, &change)
            .await?;
        Ok(AliasChange {
            group: request.group.clone(),
            alias: request.alias.clone(),
            version,
            from_version: before.map(|info| info.version),
        })
    }

    /// Sets a version's status.
    pub async fn set_status(&self, request: &SetStatusRequest, actor: &str) -> Result<VersionInfo> {
        let change = Change {
            actor: actor.to_owned(),
            reason: request.reason.clone(),
        };
        Ok(self
            .registry()
            .await?
            .set_status(&request.group, request.version, request.status, &change)
            .await?)
    }

    /// A group's history, oldest first.
    pub async fn model_history(&self, group: &GroupName) -> Result<Vec<Event>> {
        Ok(self.registry().await?.history(group).await?)
    }
}
