//! Notification rules: a webhook (JSON, or a body Slack's incoming webhooks take) sent when an
//! execution fails or times out, drift is found, a conversion quarantines more than a share of
//! its records, or a deployment rolls back ([`crate::events`]). Rules, their deliveries and the
//! pass that queues and sends them are operations of [`Ops`]; `sluice notify ...`, the HTTP API
//! and the server's loop are adapters over them.
//!
//! Each event is queued once per rule (a row keyed by rule and event, whichever server sees it
//! first), rendered once, then sent until the receiver takes it (2xx) or the rule's attempts run
//! out, with backoff between attempts; each attempt is recorded on the delivery. A delivery in
//! flight is leased to one server, so that several servers send it once; a server that dies
//! mid-send leaves the lease to run out and another sends it again (receivers deduplicate by the
//! `X-Sluice-Delivery` header).

mod queue;
mod render;
mod send;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::events::EventKind;
use crate::workflows::store::show_time;
use crate::{Error, Missing, Ops, Result};

pub use queue::Pass;
pub use render::body;
pub use send::signature;

/// The persisted definition's format.
const FORMAT: u32 = 1;

/// What a rule's webhook body looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// sluice's event document.
    #[default]
    Json,
    /// `{"text", "blocks"}`, as Slack's (and Mattermost's, Teams' workflows') incoming webhooks
    /// take it.
    Slack,
}

/// A rule to create or replace (`sluice notify create`, `POST /notifications/rules`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    pub name: String,
    /// Where the webhook goes (http or https).
    pub url: String,
    /// The events that send it: `execution.failed`, `execution.timed_out`, `drift.detected`,
    /// `conversion.quarantined`, `deployment.rolled_back`.
    pub events: Vec<String>,
    #[serde(default)]
    pub format: BodyFormat,
    /// Only events about this: a workflow, a drift report's subject, a table, an endpoint.
    #[serde(default)]
    pub subject: Option<String>,
    /// A conversion counts once it quarantines more than this share of what it read (0 to 1).
    #[serde(default = "one_percent")]
    pub min_quarantine_share: f64,
    /// A connection whose credentials and headers the webhook carries (`sluice connection`).
    #[serde(default)]
    pub connection: Option<String>,
    /// Signs each body: `X-Sluice-Signature: sha256=HMAC(secret, "<timestamp>.<body>")`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Attempts before a delivery is given up (1 to 20).
    #[serde(default = "eight")]
    pub max_attempts: u32,
}

fn one_percent() -> f64 {
    0.01
}
fn eight() -> u32 {
    8
}

/// A rule as stored (format 1), without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDefinition {
    pub format: u32,
    pub url: String,
    pub events: Vec<EventKind>,
    pub body: BodyFormat,
    pub subject: Option<String>,
    pub min_quarantine_share: f64,
    pub connection: Option<String>,
    pub max_attempts: u32,
}

impl RuleDefinition {
    /// Whether `event` sends this rule's webhook.
    pub fn wants(&self, event: &crate::events::Event) -> bool {
        self.events.contains(&event.kind)
            && self.subject.as_ref().is_none_or(|s| *s == event.subject)
            && (event.kind != EventKind::ConversionQuarantined
                || event.quarantine_share() > self.min_quarantine_share)
    }
}

impl RuleRequest {
    /// The definition to store: every field checked.
    pub fn definition(&self) -> Result<RuleDefinition> {
        crate::connections::check_name(&self.name)?;
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| Error::invalid("url", format!("{:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid("url", "http or https"));
        }
        if self.events.is_empty() {
            return Err(Error::invalid("events", "name at least one event"));
        }
        let mut events = self
            .events
            .iter()
            .map(|e| EventKind::parse(e))
            .collect::<Result<Vec<_>>>()?;
        events.sort();
        events.dedup();
        if !(0.0..=1.0).contains(&self.min_quarantine_share) {
            return Err(Error::invalid("min_quarantine_share", "0 to 1"));
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(Error::invalid("max_attempts", "1 to 20"));
        }
        if self.secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(Error::invalid("secret", "at least 16 characters"));
        }
        Ok(RuleDefinition {
            format: FORMAT,
            url: self.url.clone(),
            events,
            body: self.format,
            subject: self.subject.clone(),
            min_quarantine_share: self.min_quarantine_share,
            connection: self.connection.clone(),
            max_attempts: self.max_attempts,
        })
    }
}

/// A rule as listed: its definition, whether it signs, never the secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleView {
    pub name: String,
    #[serde(flatten)]
    pub definition: RuleDefinition,
    pub signed: bool,
    pub paused: bool,
    /// Events from this time on send it.
    pub since: String,
    pub updated_at: String,
}

/// Which deliveries to list: newest first, of one rule or all, of one status or all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryList {
    #[serde(default)]
    pub rule: Option<String>,
    /// `pending`, `delivered` or `failed`.
    #[serde(default)]
    pub status: Option<String>,
    /// 1 to 1,000; 100 by default.
    #[serde(default)]
    pub limit: Option<i64>,
}

/// One event's delivery to one rule's webhook, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryView {
    pub id: i64,
    pub rule: String,
    pub event: String,
    pub kind: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    /// The receiver's last HTTP status.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub event_at: String,
    pub queued_at: String,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    /// What was (or will be) sent.
    pub body: Value,
}

pub(crate) fn unavailable(err: sqlx::Error) -> Error {
    Error::Unavailable(format!("notifications: {err}"))
}

fn stored(err: serde_json::Error) -> Error {
    Error::Failed(format!("a stored notification rule cannot be read: {err}"))
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        missing: Missing::Other,
        what: format!("notification rule {name:?} does not exist (sluice notify create)"),
    }
}

fn rule_of(row: &sqlx::any::AnyRow) -> Result<RuleView> {
    let definition: RuleDefinition = serde_json::from_str(
        &row.try_get::<String, _>("definition")
            .map_err(unavailable)?,
    )
    .map_err(stored)?;
    Ok(RuleView {
        name: row.try_get("name").map_err(unavailable)?,
        definition,
        signed: row
            .try_get::<Option<String>, _>("secret")
            .map_err(unavailable)?
            .is_some(),
        paused: row.try_get::<i64, _>("paused").map_err(unavailable)? != 0,
        since: show_time(row.try_get("since").map_err(unavailable)?),
        updated_at: show_time(row.try_get("updated_at").map_err(unavailable)?),
    })
}

fn delivery_of(row: &sqlx::any::AnyRow) -> Result<DeliveryView> {
    let get_time = |column: &str| -> Result<Option<String>> {
        Ok(row
            .try_get::<Option<i64>, _>(column)
            .map_err(unavailable)?
            .map(show_time))
    };
    let status: String = row.try_get("status").map_err(unavailable)?;
    Ok(DeliveryView {
        id: row.try_get("id").map_err(unavailable)?,
        rule: row.try_get("rule").map_err(unavailable)?,
        event: row.try_get("event").map_err(unavailable)?,
        kind: row.try_get("kind").map_err(unavailable)?,
        attempts: row.try_get("attempts").map_err(unavailable)?,
        last_status: row.try_get("last_status").map_err(unavailable)?,
        last_error: row.try_get("last_error").map_err(unavailable)?,
        event_at: show_time(row.try_get("event_at").map_err(unavailable)?),
        queued_at: show_time(row.try_get("created_at").map_err(unavailable)?),
        next_attempt_at: if status == "pending" {
            get_time("next_attempt_at")?
        } else {
            None
        },
        delivered_at: get_time("delivered_at")?,
        body: serde_json::from_str(&row.try_get::<String, _>("body").map_err(unavailable)?)
            .unwrap_or(Value::Null),
        status,
    })
}

impl Ops {
    /// Creates a notification rule, or replaces the definition (and secret) of the one of that
    /// name; a new rule sends events from now on, a replaced one keeps its place.
    pub async fn put_notification_rule(&self, request: &RuleRequest) -> Result<RuleView> {
        let definition = request.definition()?;
        if let Some(connection) = &definition.connection {
            self.connection(connection).await?;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let pool = self.catalog().await?.pool().clone();
        sqlx::query(
            "INSERT INTO notification_rules (name, definition, secret, paused, since, cursor, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, $4, $4, $4, $4) ON CONFLICT (name) DO UPDATE SET \
             definition = excluded.definition, secret = excluded.secret, updated_at = excluded.updated_at",
        )
        .bind(&request.name)
        .bind(serde_json::to_string(&definition).expect("serializes"))
        .bind(request.secret.as_deref())
        .bind(now)
        .execute(&pool)
        .await
        .map_err(unavailable)?;
        self.notification_rule(&request.name).await
    }

    /// One rule.
    pub async fn notification_rule(&self, name: &str) -> Result<RuleView> {
        let pool = self.catalog().await?.pool().clone();
        let row = sqlx::query("SELECT * FROM notification_rules WHERE name = $1")
            .bind(name)
            .fetch_optional(&pool)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| not_found(name))?;
        rule_of(&row)
    }

    /// Every rule, by name.
    pub async fn notification_rules(&self) -> Result<Vec<RuleView>> {
        let pool = self.catalog().await?.pool().clone();
        sqlx::query("SELECT * FROM notification_rules ORDER BY name")
            .fetch_all(&pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(rule_of)
            .collect()
    }

    /// Pauses a rule (nothing is queued for it; what is queued is still sent) or resumes it
    /// (events while it was paused are not sent).
    pub async fn set_notification_rule_paused(&self, name: &str, paused: bool) -> Result<RuleView> {
        let pool = self.catalog().await?.pool().clone();
        let now = chrono::Utc::now().timestamp_millis();
        let updated = sqlx::query(
            "UPDATE notification_rules SET paused = $1, since = CASE WHEN $1 = 0 THEN $2 ELSE since END, \
             cursor = CASE WHEN $1 = 0 THEN $2 ELSE cursor END, updated_at = $2 WHERE name = $3",
        )
        .bind(i64::from(paused))
        .bind(now)
        .bind(name)
        .execute(&pool)
        .await
        .map_err(unavailable)?;
        if updated.rows_affected() == 0 {
            return Err(not_found(name));
        }
        self.notification_rule(name).await
    }

    /// Deletes a rule and its deliveries' records.
    pub async fn delete_notification_rule(&self, name: &str) -> Result<()> {
        let pool = self.catalog().await?.pool().clone();
        let mut tx = pool.begin().await.map_err(unavailable)?;
        sqlx::query("DELETE FROM notification_deliveries WHERE rule = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let deleted = sqlx::query("DELETE FROM notification_rules WHERE name = $1")
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

    /// Deliveries, newest first.
    pub async fn notification_deliveries(
        &self,
        request: &DeliveryList,
    ) -> Result<Vec<DeliveryView>> {
        let limit = request.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(Error::invalid("limit", "1 to 1,000"));
        }
        if let Some(status) = &request.status
            && !["pending", "delivered", "failed"].contains(&status.as_str())
        {
            return Err(Error::invalid("status", "pending, delivered or failed"));
        }
        let pool = self.catalog().await?.pool().clone();
        let mut conditions = Vec::new();
        if request.rule.is_some() {
            conditions.push(format!("rule = ${}", conditions.len() + 1));
        }
        if request.status.is_some() {
            conditions.push(format!("status = ${}", conditions.len() + 1));
        }
        let sql = format!(
            "SELECT * FROM notification_deliveries {} ORDER BY id DESC LIMIT ${}",
            if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            },
            conditions.len() + 1
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in [&request.rule, &request.status].into_iter().flatten() {
            query = query.bind(value.as_str());
        }
        query
            .bind(limit)
            .fetch_all(&pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(delivery_of)
            .collect()
    }

    /// Sends a failed delivery again: it is pending from now, with its attempts so far.
    pub async fn retry_notification(&self, id: i64) -> Result<DeliveryView> {
        let pool = self.catalog().await?.pool().clone();
        let now = chrono::Utc::now().timestamp_millis();
        let updated = sqlx::query(
            "UPDATE notification_deliveries SET status = 'pending', next_attempt_at = $1, lease_until = 0 \
             WHERE id = $2 AND status = 'failed'",
        )
        .bind(now)
        .bind(id)
        .execute(&pool)
        .await
        .map_err(unavailable)?;
        let row = sqlx::query("SELECT * FROM notification_deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(&pool)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| Error::NotFound {
                missing: Missing::Other,
                what: format!("notification delivery {id} does not exist"),
            })?;
        let delivery = delivery_of(&row)?;
        if updated.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "notification delivery {id} is {}: only a failed one is retried",
                delivery.status
            )));
        }
        Ok(delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RuleRequest {
        serde_json::from_value(serde_json::json!({
            "name": "on-call", "url": "https://hooks.example.com/T000/B000",
            "events": ["drift.detected", "execution.failed", "execution.failed"]
        }))
        .unwrap()
    }

    #[test]
    fn a_request_becomes_a_checked_definition_with_defaults() {
        let definition = request().definition().unwrap();
        assert_eq!(
            definition.events,
            vec![EventKind::ExecutionFailed, EventKind::DriftDetected]
        );
        assert_eq!(definition.body, BodyFormat::Json);
        assert_eq!(definition.max_attempts, 8);
        assert_eq!(definition.min_quarantine_share, 0.01);
    }

    #[test]
    fn bad_fields_are_named() {
        let check = |change: fn(&mut RuleRequest), field: &str| {
            let mut request = request();
            change(&mut request);
            match request.definition() {
                Err(Error::InvalidInput { field: named, .. }) => assert_eq!(named, field),
                other => panic!("{field}: {other:?}"),
            }
        };
        check(|r| r.url = "ftp://example.com".into(), "url");
        check(|r| r.url = "not a url".into(), "url");
        check(|r| r.events = vec![], "events");
        check(|r| r.events = vec!["execution.exploded".into()], "events");
        check(|r| r.min_quarantine_share = 1.5, "min_quarantine_share");
        check(|r| r.max_attempts = 0, "max_attempts");
        check(|r| r.secret = Some("short".into()), "secret");
        check(|r| r.name = "no spaces".into(), "name");
    }

    #[test]
    fn the_stored_definition_is_pinned() {
        let stored = serde_json::to_value(request().definition().unwrap()).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"format": 1, "url": "https://hooks.example.com/T000/B000",
                "events": ["execution.failed", "drift.detected"], "body": "json", "subject": null,
                "min_quarantine_share": 0.01, "connection": null, "max_attempts": 8})
        );
    }
}
