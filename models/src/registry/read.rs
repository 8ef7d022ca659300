//! The registry's queries: groups, versions with their aliases, resolution of a target, and a
//! group's history. Reads take no locks; every write is in [`super::store`].

use sqlx::Row;

use super::store::version_from_row;
use super::{Event, GroupName, Registry, Target, VersionInfo};
use crate::{Error, Result};

impl Registry {
    /// The groups with their generations.
    pub async fn groups(&self) -> Result<Vec<(GroupName, i64)>> {
        let rows = sqlx::query("SELECT name, generation FROM model_groups ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((GroupName(row.try_get("name")?), row.try_get("generation")?)))
            .collect()
    }

    /// One group's generation (`None`: no such group).
    pub async fn generation(&self, group: &GroupName) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT generation FROM model_groups WHERE name = $1")
                .bind(group.as_str())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn aliases_by_version(&self, group: &GroupName) -> Result<Vec<(u32, String)>> {
        let rows = sqlx::query(
            "SELECT version, alias FROM model_aliases WHERE group_name = $1 ORDER BY alias",
        )
        .bind(group.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("version")? as u32,
                    row.try_get("alias")?,
                ))
            })
            .collect()
    }

    /// Every version of a group, oldest first, with its aliases.
    pub async fn versions(&self, group: &GroupName) -> Result<Vec<VersionInfo>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM model_versions WHERE group_name = $1 ORDER BY version"
        ))
        .bind(group.as_str())
        .fetch_all(&self.pool)
        .await?;
        let aliases = self.aliases_by_version(group).await?;
        rows.iter()
            .map(|row| {
                let mut info = version_from_row(row)?;
                info.aliases = aliases
                    .iter()
                    .filter(|(v, _)| *v == info.version)
                    .map(|(_, a)| a.clone())
                    .collect();
                Ok(info)
            })
            .collect()
    }

    /// One version.
    pub async fn version(&self, group: &GroupName, version: u32) -> Result<VersionInfo> {
        let row = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM model_versions WHERE group_name = $1 AND version = $2"
        ))
        .bind(group.as_str())
        .bind(i64::from(version))
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: format!("{group} v{version}"),
        })?;
        let mut info = version_from_row(&row)?;
        info.aliases = self
            .aliases_by_version(group)
            .await?
            .into_iter()
            .filter(|(v, _)| *v == version)
            .map(|(_, a)| a)
            .collect();
        Ok(info)
    }

    /// The version registered by a training execution, if any (a retried publish finds it).
    pub async fn by_training_execution(
        &self,
        group: &GroupName,
        execution: &str,
    ) -> Result<Option<VersionInfo>> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM model_versions WHERE group_name = $1 AND training_execution = $2",
        )
        .bind(group.as_str())
        .bind(execution)
        .fetch_one(&self.pool)
        .await?;
        match version {
            Some(v) => self.version(group, v as u32).await.map(Some),
            None => Ok(None),
        }
    }

    /// The version a target names: a number, or what an alias points at (`None`: the alias is
    /// not set).
    pub async fn resolve(&self, group: &GroupName, target: &Target) -> Result<Option<VersionInfo>> {
        let version = match target {
            Target::Version(v) => *v,
            Target::Alias(alias) => {
                let version: Option<i64> = sqlx::query_scalar(
                    "SELECT version FROM model_aliases WHERE group_name = $1 AND alias = $2",
                )
                .bind(group.as_str())
                .bind(alias.as_str())
                .fetch_optional(&self.pool)
                .await?;
                match version {
                    Some(v) => v as u32,
                    None => return Ok(None),
                }
            }
        };
        self.version(group, version).await.map(Some)
    }

    /// The group's history, oldest first.
    pub async fn history(&self, group: &GroupName) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT generation, kind, version, alias, from_version, status, actor, reason, at \
             FROM model_events WHERE group_name = $1 ORDER BY generation",
        )
        .bind(group.as_str())
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() && self.generation(group).await?.is_none() {
            return Err(Error::NotFound {
                what: format!("model group {group}"),
            });
        }
        rows.iter()
            .map(|row| {
                Ok(Event {
                    generation: row.try_get("generation")?,
                    kind: row.try_get("kind")?,
                    version: row.try_get::<Option<i64>, _>("version")?.map(|v| v as u32),
                    alias: row.try_get("alias")?,
                    from_version: row
                        .try_get::<Option<i64>, _>("from_version")?
                        .map(|v| v as u32),
                    status: row.try_get("status")?,
                    actor: row.try_get("actor")?,
                    reason: row.try_get("reason")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}
