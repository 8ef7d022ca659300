//! Triggers: a workflow started when new objects land under a prefix of the lake (debounced: the
//! first new object opens a window, and when it closes one execution starts with every object
//! the window saw in its input), or when a drift report finds drift (at once, at most once per
//! window: the retraining run drift asks for). Decide, then do: [`plan`] says what is new and
//! when a window fires; the IO shell here lists, claims and starts.
//!
//! Exactly once with several servers polling, as the cron schedules are: an item (an object's
//! key, a drift report) is counted by inserting its row (one server wins), a window is claimed by
//! inserting its firing together with taking the pending items (a second claim finds none and
//! rolls back), and its execution is named after the window, so that a start repeated after a
//! crash starts one execution.

mod pass;
mod plan;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};

use super::store::show_time;
use crate::{Error, Missing, Result};
pub(crate) use pass::fire_due;
use plan::{Bounds, Window};

/// The persisted definition's format.
const FORMAT: u32 = 1;

/// What starts a trigger's workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum On {
    /// New objects under a prefix of the lake.
    Landing,
    /// A drift report that found drift.
    Drift,
}

/// A trigger to create (`sluice trigger create`, `POST /triggers`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    pub name: String,
    pub workflow: String,
    pub on: On,
    /// (landing) The lake prefix whose new objects count.
    #[serde(default)]
    pub prefix: Option<String>,
    /// (drift) Only reports about this subject (a model group, a table).
    #[serde(default)]
    pub subject: Option<String>,
    /// Landing: how long the window stays open after its first object (60 by default). Drift:
    /// the least time between two executions (3,600 by default).
    #[serde(default)]
    pub window_seconds: Option<u64>,
    /// The executions' input (a JSON object, `{}` by default); `trigger` is added to it.
    #[serde(default)]
    pub input: Option<Value>,
}

/// A trigger's definition as stored (format 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDefinition {
    pub format: u32,
    pub on: On,
    pub prefix: Option<String>,
    pub subject: Option<String>,
    pub window_seconds: u64,
    pub input: Value,
}

impl TriggerDefinition {
    fn window(&self) -> Window {
        match self.on {
            On::Landing => Window::debounce(self.window_seconds),
            On::Drift => Window::throttle(self.window_seconds),
        }
    }
}

impl TriggerRequest {
    /// The definition to store: every field checked.
    pub fn definition(&self) -> Result<TriggerDefinition> {
        if self.name.is_empty()
            || self.name.len() > 50
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::invalid(
                "name",
                format!("{:?}: 1 to 50 letters, digits, '-', '_' or '.'", self.name),
            ));
        }
        let input = self.input.clone().unwrap_or_else(|| json!({}));
        if !input.is_object() {
            return Err(Error::invalid("input", "a JSON object"));
        }
        let (prefix, subject, window) = match self.on {
            On::Landing => {
                let prefix = self.prefix.as_deref().ok_or_else(|| {
                    Error::invalid("prefix", "a landing trigger names the prefix it watches")
                })?;
                let key = jobs::lake::LakeKey::parse(prefix.trim_end_matches('/'))
                    .map_err(|e| Error::invalid("prefix", e))?;
                if self.subject.is_some() {
                    return Err(Error::invalid("subject", "only drift triggers have one"));
                }
                (Some(format!("{}/", key.as_str())), None, 60)
            }
            On::Drift => {
                if self.prefix.is_some() {
                    return Err(Error::invalid("prefix", "only landing triggers have one"));
                }
                (None, self.subject.clone(), 3600)
            }
        };
        let window_seconds = self.window_seconds.unwrap_or(window);
        if window_seconds > 7 * 86_400 {
            return Err(Error::invalid("window_seconds", "at most 7 days (604,800)"));
        }
        Ok(TriggerDefinition {
            format: FORMAT,
            on: self.on,
            prefix,
            subject,
            window_seconds,
            input,
        })
    }
}

/// A trigger as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerView {
    pub name: String,
    pub workflow: String,
    #[serde(flatten)]
    pub definition: TriggerDefinition,
    pub paused: bool,
    /// Items from this time on count.
    pub since: String,
    /// Items counted and waiting for their window.
    pub pending: i64,
}

/// One firing of a trigger: the window it closed, what it saw, the execution it started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FireView {
    pub trigger: String,
    pub fire: String,
    /// `claimed` (its execution is being started) or `started`.
    pub outcome: String,
    pub execution_id: Option<String>,
    pub detail: Value,
    pub at: String,
}

fn unavailable(err: sqlx::Error) -> Error {
    Error::Unavailable(format!("triggers: {err}"))
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        missing: Missing::Other,
        what: format!("trigger {name:?} does not exist (sluice trigger create)"),
    }
}

struct Stored {
    name: String,
    workflow: String,
    definition: TriggerDefinition,
    paused: bool,
    bounds: Bounds,
}

fn stored_of(row: &sqlx::any::AnyRow) -> Result<Stored> {
    let definition = serde_json::from_str(
        &row.try_get::<String, _>("definition")
            .map_err(unavailable)?,
    )
    .map_err(|e| Error::Failed(format!("a stored trigger cannot be read: {e}")))?;
    Ok(Stored {
        name: row.try_get("name").map_err(unavailable)?,
        workflow: row.try_get("workflow").map_err(unavailable)?,
        definition,
        paused: row.try_get::<i64, _>("paused").map_err(unavailable)? != 0,
        bounds: Bounds {
            since: row.try_get("since").map_err(unavailable)?,
            cursor: row.try_get("cursor").map_err(unavailable)?,
        },
    })
}

async fn view(pool: &AnyPool, stored: Stored) -> Result<TriggerView> {
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM trigger_objects WHERE trigger_name = $1 AND fire IS NULL",
    )
    .bind(&stored.name)
    .fetch_one(pool)
    .await
    .map_err(unavailable)?;
    Ok(TriggerView {
        name: stored.name,
        workflow: stored.workflow,
        definition: stored.definition,
        paused: stored.paused,
        since: show_time(stored.bounds.since),
        pending,
    })
}

/// Stores a trigger; items from `now` on count.
pub async fn create(pool: &AnyPool, request: &TriggerRequest, now: i64) -> Result<TriggerView> {
    let definition = request.definition()?;
    super::store::workflow(pool, &request.workflow, None).await?;
    let inserted = sqlx::query(
        "INSERT INTO triggers (name, definition, workflow, paused, since, cursor, created_at, updated_at) \
         VALUES ($1, $2, $3, 0, $4, $4, $4, $4) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&request.name)
    .bind(serde_json::to_string(&definition).expect("serializes"))
    .bind(&request.workflow)
    .bind(now)
    .execute(pool)
    .await
    .map_err(unavailable)?;
    if inserted.rows_affected() == 0 {
        return Err(Error::Conflict(format!(
            "trigger {:?} exists: delete it first to change it",
            request.name
        )));
    }
    get(pool, &request.name).await
}

/// One trigger.
pub async fn get(pool: &AnyPool, name: &str) -> Result<TriggerView> {
    let row = sqlx::query("SELECT * FROM triggers WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| not_found(name))?;
    view(pool, stored_of(&row)?).await
}

/// Every trigger, by name.
pub async fn list(pool: &AnyPool) -> Result<Vec<TriggerView>> {
    let rows = sqlx::query("SELECT * FROM triggers ORDER BY name")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    let mut views = Vec::with_capacity(rows.len());
    for row in &rows {
        views.push(view(pool, stored_of(row)?).await?);
    }
    Ok(views)
}

/// Pauses a trigger, or resumes it: what landed or drifted while it was paused does not count.
pub async fn set_paused(pool: &AnyPool, name: &str, paused: bool, now: i64) -> Result<TriggerView> {
    let updated = sqlx::query(
        "UPDATE triggers SET paused = $1, since = CASE WHEN $1 = 0 THEN $2 ELSE since END, \
         cursor = CASE WHEN $1 = 0 THEN $2 ELSE cursor END, updated_at = $2 WHERE name = $3",
    )
    .bind(i64::from(paused))
    .bind(now)
    .bind(name)
    .execute(pool)
    .await
    .map_err(unavailable)?;
    if updated.rows_affected() == 0 {
        return Err(not_found(name));
    }
    get(pool, name).await
}

/// Deletes a trigger with its records (its executions stay).
pub async fn delete(pool: &AnyPool, name: &str) -> Result<()> {
    let mut tx = pool.begin().await.map_err(unavailable)?;
    for table in ["trigger_objects", "trigger_fires"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE trigger_name = $1"
        )))
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    let deleted = sqlx::query("DELETE FROM triggers WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    if deleted.rows_affected() == 0 {
        return Err(not_found(name));
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(())
}

/// A trigger's firings, newest first.
pub async fn fires(pool: &AnyPool, name: &str, limit: i64) -> Result<Vec<FireView>> {
    get(pool, name).await?;
    sqlx::query(
        "SELECT trigger_name, fire, outcome, execution_id, detail, created_at FROM trigger_fires \
         WHERE trigger_name = $1 ORDER BY created_at DESC, fire DESC LIMIT $2",
    )
    .bind(name)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(|row| {
        Ok(FireView {
            trigger: row.try_get("trigger_name").map_err(unavailable)?,
            fire: row.try_get("fire").map_err(unavailable)?,
            outcome: row.try_get("outcome").map_err(unavailable)?,
            execution_id: row.try_get("execution_id").map_err(unavailable)?,
            detail: serde_json::from_str(&row.try_get::<String, _>("detail").map_err(unavailable)?)
                .unwrap_or(Value::Null),
            at: show_time(row.try_get("created_at").map_err(unavailable)?),
        })
    })
    .collect()
}
