//! Console sessions: a person logs in with an API token and gets a session whose id travels
//! in a cookie. Only the id's SHA-256 is stored, beside the token it was opened with and a
//! CSRF secret that every state-changing form of the session sends back. A session ends when
//! it expires, when its person logs out, or when its token is revoked (checked on every use,
//! not cached: a revoked token's sessions stop at once).

use std::time::Duration;

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use super::Error;
use super::auth::{Scope, digest};

/// How long a session lasts from its login.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The scope of the token it was opened with.
    pub scope: Scope,
    /// The token's name, shown in the console's header.
    pub token_name: String,
    /// What state-changing requests of this session must carry.
    pub csrf: String,
    /// When it ends (ms since the epoch).
    pub expires_at: i64,
}

/// A session just opened: the cookie's value (shown once), and the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub id: String,
    pub session: Session,
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Opens a session for a live token (`None`: the token is unknown or revoked), lasting `ttl`
/// from `now` (ms). Expired sessions are swept on the way.
pub async fn open(
    pool: &AnyPool,
    token: &str,
    now: i64,
    ttl: Duration,
) -> Result<Option<Opened>, Error> {
    sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    let Some(row) = sqlx::query(
        "SELECT id, name, scope FROM api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL",
    )
    .bind(digest(token))
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let token_id: String = row.try_get("id")?;
    let session = Session {
        scope: Scope::parse(&row.try_get::<String, _>("scope")?)?,
        token_name: row.try_get("name")?,
        csrf: random(),
        expires_at: now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2),
    };
    let id = random();
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, token_id, csrf, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash(&id))
    .bind(&token_id)
    .bind(&session.csrf)
    .bind(now)
    .bind(session.expires_at)
    .execute(pool)
    .await?;
    Ok(Some(Opened { id, session }))
}

/// The live session of a cookie's id at `now` (`None`: unknown, expired, logged out, or its
/// token revoked).
pub async fn find(pool: &AnyPool, id: &str, now: i64) -> Result<Option<Session>, Error> {
    let row = sqlx::query(
        "SELECT s.csrf, s.expires_at, t.name, t.scope FROM console_sessions s \
         JOIN api_tokens t ON t.id = s.token_id \
         WHERE s.id_hash = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL",
    )
    .bind(hash(id))
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(Session {
            scope: Scope::parse(&row.try_get::<String, _>("scope")?)?,
            token_name: row.try_get("name")?,
            csrf: row.try_get("csrf")?,
            expires_at: row.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// Ends a session (logging out); an unknown id is already ended.
pub async fn close(pool: &AnyPool, id: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
        .bind(hash(id))
        .execute(pool)
        .await?;
    Ok(())
}
