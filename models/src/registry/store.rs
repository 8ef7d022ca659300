//! The registry's writes (`migrations/*/0005_registry.sql`) through sqlx's `Any` driver, so one
//! set of queries serves SQLite and Postgres; the reads are in [`super::read`]. Each change is one transaction that starts by
//! bumping the group's generation: that write takes the group's row lock on Postgres and the
//! write lock on SQLite before anything is read, so concurrent changes serialise per group.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::{AliasName, Change, GroupName, NOTIFY_CHANNEL, NewVersion, Status, VersionInfo};
use crate::{Error, Result};

/// The registry over a catalog database's pool.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(super) pool: AnyPool,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

pub(super) fn version_from_row(row: &AnyRow) -> Result<VersionInfo> {
    let status: String = row.try_get("status")?;
    Ok(VersionInfo {
        group: GroupName(row.try_get("group_name")?),
        version: row.try_get::<i64, _>("version")? as u32,
        status: Status::parse(&status)?,
        status_reason: row.try_get("status_reason")?,
        artifact: row.try_get("artifact")?,
        dataset_snapshot: row.try_get("dataset_snapshot")?,
        training_execution: row.try_get("training_execution")?,
        hyperparameters: parse_json(&row.try_get::<String, _>("hyperparameters")?),
        metrics: parse_json(&row.try_get::<String, _>("metrics")?),
        baseline_metrics: parse_json(&row.try_get::<String, _>("baseline_metrics")?),
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        aliases: Vec::new(),
    })
}

/// What a publish decided for the version it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Point this alias at it (approving it).
    Promote(AliasName),
    /// Reject it, with the change's reason.
    Reject,
    /// Leave it pending: it would be promoted, but someone approves first (an alias moved to
    /// it later approves it).
    Hold,
}

/// An event row about to be written.
struct NewEvent<'a> {
    kind: &'a str,
    version: Option<u32>,
    alias: Option<&'a str>,
    from_version: Option<u32>,
    status: Option<Status>,
}

impl Registry {
    /// A registry over `pool` (its tables come with the catalog's migrations).
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Bumps the group's generation (taking its lock) and returns the new one.
    async fn bump(tx: &mut Transaction<'_, Any>, group: &GroupName, now: i64) -> Result<i64> {
        sqlx::query_scalar::<_, i64>(
            "UPDATE model_groups SET generation = generation + 1, updated_at = $2 \
             WHERE name = $1 RETURNING generation",
        )
        .bind(group.as_str())
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: format!("model group {group}"),
        })
    }

    async fn record(
        &self,
        tx: &mut Transaction<'_, Any>,
        group: &GroupName,
        generation: i64,
        event: NewEvent<'_>,
        change: &Change,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO model_events (group_name, generation, kind, version, alias, from_version, \
             status, actor, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(group.as_str())
        .bind(generation)
        .bind(event.kind)
        .bind(event.version.map(i64::from))
        .bind(event.alias)
        .bind(event.from_version.map(i64::from))
        .bind(event.status.map(Status::as_str))
        .bind(&change.actor)
        .bind(&change.reason)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        // Servers on Postgres wake on the notification; on SQLite they poll.
        if tx.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(group.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Registers a new version (status `pending`), creating the group on first use; versions
    /// are numbered 1, 2, ... per group.
    pub async fn register(&self, group: &GroupName, new: &NewVersion) -> Result<VersionInfo> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let version = self.register_in(&mut tx, group, new, now).await?;
        tx.commit().await?;
        self.version(group, version).await
    }

    /// Registers a new version and applies the publish decision taken on it in the same
    /// transaction: a crash leaves no pending version behind, and a retry finds it decided.
    pub async fn register_decided(
        &self,
        group: &GroupName,
        new: &NewVersion,
        verdict: &Verdict,
        change: &Change,
    ) -> Result<VersionInfo> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let version = self.register_in(&mut tx, group, new, now).await?;
        match verdict {
            Verdict::Promote(alias) => {
                self.move_alias_in(&mut tx, group, alias, version, change, "alias-moved", now)
                    .await?;
            }
            Verdict::Reject => {
                let generation = Self::bump(&mut tx, group, now).await?;
                self.status_in(
                    &mut tx,
                    group,
                    version,
                    Status::Rejected,
                    change,
                    now,
                    generation,
                )
                .await?;
            }
            Verdict::Hold => {}
        }
        tx.commit().await?;
        self.version(group, version).await
    }

    async fn register_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        group: &GroupName,
        new: &NewVersion,
        now: i64,
    ) -> Result<u32> {
        sqlx::query(
            "INSERT INTO model_groups (name, generation, created_at, updated_at) \
             VALUES ($1, 0, $2, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(group.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let generation = Self::bump(tx, group, now).await?;
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE group_name = $1",
        )
        .bind(group.as_str())
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query(concat!(
            "INSERT INTO model_versions (",
            version_columns!(),
            ") VALUES ($1, $2, 'pending', NULL, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(group.as_str())
        .bind(version)
        .bind(&new.artifact)
        .bind(&new.dataset_snapshot)
        .bind(&new.training_execution)
        .bind(json_text(&new.hyperparameters))
        .bind(json_text(&new.metrics))
        .bind(json_text(&new.baseline_metrics))
        .bind(&new.actor)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let change = Change {
            actor: new.actor.clone(),
            reason: format!("registered from {}", new.artifact),
        };
        let event = NewEvent {
            kind: "registered",
            version: Some(version as u32),
            alias: None,
            from_version: None,
            status: Some(Status::Pending),
        };
        self.record(tx, group, generation, event, &change, now)
            .await?;
        Ok(version as u32)
    }

    /// Sets a version's status. A version an alias points at cannot be rejected or archived:
    /// move the alias first.
    pub async fn set_status(
        &self,
        group: &GroupName,
        version: u32,
        status: Status,
        change: &Change,
    ) -> Result<VersionInfo> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let generation = Self::bump(&mut tx, group, now).await?;
        self.status_in(&mut tx, group, version, status, change, now, generation)
            .await?;
        tx.commit().await?;
        self.version(group, version).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn status_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        group: &GroupName,
        version: u32,
        status: Status,
        change: &Change,
        now: i64,
        generation: i64,
    ) -> Result<()> {
        if !status.servable() {
            let aliases: Vec<String> = sqlx::query_scalar(
                "SELECT alias FROM model_aliases WHERE group_name = $1 AND version = $2 ORDER BY alias",
            )
            .bind(group.as_str())
            .bind(i64::from(version))
            .fetch_all(&mut **tx)
            .await?;
            if !aliases.is_empty() {
                return Err(Error::Conflict {
                    what: format!("{group} v{version}"),
                    reason: format!(
                        "cannot be {} while {} point(s) at it; move the alias first",
                        status.as_str(),
                        aliases.join(", ")
                    ),
                });
            }
        }
        let updated = sqlx::query(
            "UPDATE model_versions SET status = $3, status_reason = $4 \
             WHERE group_name = $1 AND version = $2",
        )
        .bind(group.as_str())
        .bind(i64::from(version))
        .bind(status.as_str())
        .bind(&change.reason)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::NotFound {
                what: format!("{group} v{version}"),
            });
        }
        let event = NewEvent {
            kind: "status",
            version: Some(version),
            alias: None,
            from_version: None,
            status: Some(status),
        };
        self.record(tx, group, generation, event, change, now).await
    }

    /// Points `alias` at `version` (approving a pending version). Refuses rejected and archived
    /// versions. Returns the version the alias pointed at before.
    pub async fn move_alias(
        &self,
        group: &GroupName,
        alias: &AliasName,
        version: u32,
        change: &Change,
    ) -> Result<Option<u32>> {
        self.move_alias_as(group, alias, version, change, "alias-moved")
            .await
    }

    async fn move_alias_as(
        &self,
        group: &GroupName,
        alias: &AliasName,
        version: u32,
        change: &Change,
        kind: &str,
    ) -> Result<Option<u32>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let from = self
            .move_alias_in(&mut tx, group, alias, version, change, kind, now)
            .await?;
        tx.commit().await?;
        Ok(from)
    }

    #[allow(clippy::too_many_arguments)]
    async fn move_alias_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        group: &GroupName,
        alias: &AliasName,
        version: u32,
        change: &Change,
        kind: &str,
        now: i64,
    ) -> Result<Option<u32>> {
        let generation = Self::bump(tx, group, now).await?;
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM model_versions WHERE group_name = $1 AND version = $2",
        )
        .bind(group.as_str())
        .bind(i64::from(version))
        .fetch_optional(&mut **tx)
        .await?;
        let status = Status::parse(&status.ok_or_else(|| Error::NotFound {
            what: format!("{group} v{version}"),
        })?)?;
        if !status.servable() {
            return Err(Error::Conflict {
                what: format!("{group} v{version}"),
                reason: format!("is {}; an alias cannot point at it", status.as_str()),
            });
        }
        let from: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM model_aliases WHERE group_name = $1 AND alias = $2",
        )
        .bind(group.as_str())
        .bind(alias.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO model_aliases (group_name, alias, version, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (group_name, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        )
        .bind(group.as_str())
        .bind(alias.as_str())
        .bind(i64::from(version))
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let event = NewEvent {
            kind,
            version: Some(version),
            alias: Some(alias.as_str()),
            from_version: from.map(|v| v as u32),
            status: None,
        };
        self.record(tx, group, generation, event, change, now)
            .await?;
        if status == Status::Pending {
            // An alias vouches for its version: approve it in the same transaction.
            let generation = Self::bump(tx, group, now).await?;
            let approval = Change {
                actor: change.actor.clone(),
                reason: format!("{alias} points at it: {}", change.reason),
            };
            self.status_in(
                tx,
                group,
                version,
                Status::Approved,
                &approval,
                now,
                generation,
            )
            .await?;
        }
        Ok(from.map(|v| v as u32))
    }

    /// Undoes the alias's last move that has not been undone yet (an undo stack over its
    /// history). Returns the version it points at now.
    pub async fn rollback(
        &self,
        group: &GroupName,
        alias: &AliasName,
        change: &Change,
    ) -> Result<u32> {
        let events = self.history(group).await?;
        let mut undone = 0usize;
        let mut target = None;
        for event in events.iter().rev() {
            if event.alias.as_deref() != Some(alias.as_str()) {
                continue;
            }
            match event.kind.as_str() {
                "alias-rolled-back" => undone += 1,
                "alias-moved" if undone > 0 => undone -= 1,
                "alias-moved" => {
                    target = Some(event.from_version);
                    break;
                }
                _ => {}
            }
        }
        let to = match target {
            Some(Some(version)) => version,
            Some(None) => {
                return Err(Error::Conflict {
                    what: format!("{group}:{alias}"),
                    reason: "its first assignment has nothing before it to roll back to".into(),
                });
            }
            None => {
                return Err(Error::Conflict {
                    what: format!("{group}:{alias}"),
                    reason: "no move to roll back".into(),
                });
            }
        };
        self.move_alias_as(group, alias, to, change, "alias-rolled-back")
            .await?;
        Ok(to)
    }

    /// Removes an alias.
    pub async fn remove_alias(
        &self,
        group: &GroupName,
        alias: &AliasName,
        change: &Change,
    ) -> Result<u32> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let generation = Self::bump(&mut tx, group, now).await?;
        let from: Option<i64> = sqlx::query_scalar(
            "DELETE FROM model_aliases WHERE group_name = $1 AND alias = $2 RETURNING version",
        )
        .bind(group.as_str())
        .bind(alias.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let from = from.ok_or_else(|| Error::NotFound {
            what: format!("alias {group}:{alias}"),
        })? as u32;
        let event = NewEvent {
            kind: "alias-removed",
            version: None,
            alias: Some(alias.as_str()),
            from_version: Some(from),
            status: None,
        };
        self.record(&mut tx, group, generation, event, change, now)
            .await?;
        tx.commit().await?;
        Ok(from)
    }
}
