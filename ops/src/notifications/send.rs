//! Sending due deliveries: each leased to this server, POSTed to its rule's URL with the rule's
//! connection and signature, and its outcome recorded: delivered (2xx), tried again later (a
//! network error, 408, 429 or 5xx, after [`retry_delay`]), or failed (any other status, or the
//! rule's attempts spent).

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sqlx::{AnyPool, Row};

use super::{Pass, RuleDefinition, stored, unavailable};
use crate::connections::{Authorization, Connection};
use crate::serving::sigv4::hex;
use crate::{Ops, Result};

/// How long a server holds a delivery it is sending (ms); past it, another may send it.
const LEASE: i64 = 60_000;
/// A receiver has this long to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries sent in one pass.
const DUE_BATCH: i64 = 50;
/// The first retry's delay; each next one doubles, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(10);
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The wait before the next attempt after `attempts` failed ones: 10 s, 20 s, 40 s, ... up to an
/// hour, or the receiver's `Retry-After` (up to an hour) when it sent one.
pub fn retry_delay(attempts: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(after) = retry_after {
        return after.min(MAX_DELAY);
    }
    let doublings = attempts.saturating_sub(1).min(20);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`: what `X-Sluice-Signature` carries, so
/// that a receiver checks both the body and its time (and refuses replays of old bodies).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// How one attempt went.
#[derive(Debug)]
enum Outcome {
    Delivered(u16),
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    Refused {
        status: u16,
        error: String,
    },
}

/// One leased delivery with what sending it needs.
struct Sending {
    id: i64,
    rule: String,
    event: String,
    kind: String,
    body: String,
    attempts: u32,
    definition: RuleDefinition,
    secret: Option<String>,
    connection: Option<Connection>,
}

async fn attempt(client: &reqwest::Client, sending: &Sending) -> Outcome {
    let timestamp = chrono::Utc::now().timestamp();
    let mut url = match reqwest::Url::parse(&sending.definition.url) {
        Ok(url) => url,
        Err(err) => {
            return Outcome::Refused {
                status: 0,
                error: format!("url: {err}"),
            };
        }
    };
    if let Some(connection) = &sending.connection
        && !connection.query.is_empty()
    {
        url.query_pairs_mut().extend_pairs(&connection.query);
    }
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .header("x-sluice-event", sending.kind.as_str())
        .header(
            "x-sluice-delivery",
            format!("{}:{}", sending.rule, sending.event),
        )
        .header("x-sluice-timestamp", timestamp.to_string());
    if let Some(secret) = &sending.secret {
        request = request.header(
            "x-sluice-signature",
            signature(secret, timestamp, &sending.body),
        );
    }
    if let Some(connection) = &sending.connection {
        request = match &connection.authorization {
            Authorization::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
            Authorization::ApiKey { header, value } => {
                request.header(header.as_str(), value.as_str())
            }
            Authorization::Bearer { token } => request.bearer_auth(token),
        };
        for (name, value) in &connection.headers {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    match request.body(sending.body.clone()).send().await {
        Err(err) => Outcome::Retry {
            status: None,
            error: format!("{err}"),
            after: None,
        },
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                return Outcome::Delivered(status.as_u16());
            }
            let after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response.text().await.unwrap_or_default();
            let error = format!(
                "the receiver answered {status}: {}",
                text.chars().take(200).collect::<String>()
            );
            if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                Outcome::Retry {
                    status: Some(status.as_u16()),
                    error,
                    after,
                }
            } else {
                Outcome::Refused {
                    status: status.as_u16(),
                    error,
                }
            }
        }
    }
}

impl Ops {
    /// Leases the deliveries due at `now` (ms) and sends them.
    pub(super) async fn send_due(&self, pool: &AnyPool, now: i64) -> Result<Pass> {
        let due = sqlx::query(
            "SELECT d.id, d.rule, d.event, d.kind, d.body, d.attempts, r.definition, r.secret \
             FROM notification_deliveries d JOIN notification_rules r ON r.name = d.rule \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until <= $1 \
             ORDER BY d.next_attempt_at, d.id LIMIT $2",
        )
        .bind(now)
        .bind(DUE_BATCH)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
        if due.is_empty() {
            return Ok(Pass::default());
        }
        let mut connections: BTreeMap<String, Option<Connection>> = BTreeMap::new();
        let mut sends = tokio::task::JoinSet::new();
        jobs::install_tls();
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::Error::Failed(format!("the webhook client cannot start: {e}")))?;
        for row in &due {
            let id: i64 = row.try_get("id").map_err(unavailable)?;
            let leased = sqlx::query(
                "UPDATE notification_deliveries SET lease_until = $1 \
                 WHERE id = $2 AND status = 'pending' AND lease_until <= $3 AND next_attempt_at <= $3",
            )
            .bind(now + LEASE)
            .bind(id)
            .bind(now)
            .execute(pool)
            .await
            .map_err(unavailable)?;
            if leased.rows_affected() != 1 {
                continue; // another server is sending it, or sent it since the listing
            }
            let definition: RuleDefinition = serde_json::from_str(
                &row.try_get::<String, _>("definition")
                    .map_err(unavailable)?,
            )
            .map_err(stored)?;
            let connection = match &definition.connection {
                None => None,
                Some(name) => match connections.get(name) {
                    Some(found) => found.clone(),
                    None => {
                        // A connection deleted since the rule was made: sent without it, and
                        // the receiver's refusal says so.
                        let found = self.connection(name).await.ok();
                        connections.insert(name.clone(), found.clone());
                        found
                    }
                },
            };
            let sending = Sending {
                id,
                rule: row.try_get("rule").map_err(unavailable)?,
                event: row.try_get("event").map_err(unavailable)?,
                kind: row.try_get("kind").map_err(unavailable)?,
                body: row.try_get("body").map_err(unavailable)?,
                attempts: row.try_get::<i64, _>("attempts").map_err(unavailable)? as u32,
                secret: row.try_get("secret").map_err(unavailable)?,
                definition,
                connection,
            };
            let client = client.clone();
            sends.spawn(async move {
                let outcome = attempt(&client, &sending).await;
                (sending, outcome)
            });
        }
        let mut pass = Pass::default();
        while let Some(sent) = sends.join_next().await {
            let (sending, outcome) = sent.map_err(|e| crate::Error::Failed(e.to_string()))?;
            record(pool, now, &sending, &outcome, &mut pass).await?;
        }
        Ok(pass)
    }
}

async fn record(
    pool: &AnyPool,
    now: i64,
    sending: &Sending,
    outcome: &Outcome,
    pass: &mut Pass,
) -> Result<()> {
    let attempts = sending.attempts + 1;
    let (status, http, error, next) = match outcome {
        Outcome::Delivered(http) => {
            pass.delivered += 1;
            ("delivered", Some(*http), None, now)
        }
        Outcome::Retry {
            status,
            error,
            after,
        } if attempts < sending.definition.max_attempts => {
            pass.retrying += 1;
            let delay = retry_delay(attempts, *after).as_millis() as i64;
            ("pending", *status, Some(error.clone()), now + delay)
        }
        Outcome::Retry { status, error, .. } => {
            pass.failed += 1;
            let error = format!("{error} (gave up after {attempts} attempts)");
            ("failed", *status, Some(error), now)
        }
        Outcome::Refused { status, error } => {
            pass.failed += 1;
            ("failed", Some(*status), Some(error.clone()), now)
        }
    };
    tracing::info!(delivery = sending.id, rule = %sending.rule, event = %sending.event, status, attempts, error = error.as_deref().unwrap_or(""), "notification attempt");
    sqlx::query(
        "UPDATE notification_deliveries SET status = $1, attempts = $2, last_status = $3, last_error = $4, \
         next_attempt_at = $5, lease_until = 0, delivered_at = CASE WHEN $1 = 'delivered' THEN $6 ELSE NULL END \
         WHERE id = $7",
    )
    .bind(status)
    .bind(i64::from(attempts))
    .bind(http.map(i64::from))
    .bind(error)
    .bind(next)
    .bind(now)
    .bind(sending.id)
    .execute(pool)
    .await
    .map_err(unavailable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_an_hour_and_follow_retry_after() {
        let secs = |attempts| retry_delay(attempts, None).as_secs();
        assert_eq!([secs(1), secs(2), secs(3), secs(4)], [10, 20, 40, 80]);
        assert_eq!(secs(12), 3600);
        assert_eq!(secs(u32::MAX), 3600);
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(86_400))),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let a = signature("0123456789abcdef", 1_700_000_000, "{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64, "{a}");
        assert_ne!(a, signature("0123456789abcdef", 1_700_000_001, "{}"));
        assert_ne!(a, signature("0123456789abcdef", 1_700_000_000, "{ }"));
        // RFC 4231's first test case, through the same HMAC: the key and data as bytes.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&[0x0b; 20]).unwrap();
        mac.update(b"Hi There");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }
}
