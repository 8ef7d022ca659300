//! API tokens: `sluice_<id>_<secret>`, of which only a SHA-256 is stored; scope `admin`
//! (workflows, registry, endpoints; implies `predict`) or `predict`. Verifications are cached
//! for a few seconds, so a revoked token stops working within [`CACHE_TTL`] on every server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngCore;

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use super::Error;

/// How long a verification is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Predict,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "admin" => Ok(Scope::Admin),
            "predict" => Ok(Scope::Predict),
            other => Err(Error::Invalid(format!(
                "scope {other:?}: use admin or predict"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Predict => "predict",
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin || needed == Scope::Predict
    }
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates a token; returns its id and the secret to hand over (shown once).
pub async fn create(pool: &AnyPool, scope: Scope, name: &str) -> Result<(String, String), Error> {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!(
        "sluice_{id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    sqlx::query(
        "INSERT INTO api_tokens (id, name, secret_hash, scope, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(name)
    .bind(digest(&token))
    .bind(scope.as_str())
    .bind(chrono::Utc::now().timestamp_millis())
    .execute(pool)
    .await?;
    Ok((id, token))
}

/// The tokens, without secrets.
pub async fn list(pool: &AnyPool) -> Result<Vec<super::TokenInfo>, Error> {
    let rows = sqlx::query(
        "SELECT id, name, scope, created_at, revoked_at FROM api_tokens ORDER BY created_at",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(super::TokenInfo {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                scope: row.try_get("scope")?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Revokes a token; `false` when no live token has that id.
pub async fn revoke(pool: &AnyPool, id: &str) -> Result<bool, Error> {
    let done =
        sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Checks bearer tokens against the database, with a short-lived cache.
pub struct Verifier {
    pool: AnyPool,
    cache: Mutex<HashMap<String, (Option<Scope>, Instant)>>,
}

impl Verifier {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The scope of a live token (`None`: unknown or revoked).
    pub async fn scope(&self, token: &str) -> Result<Option<Scope>, Error> {
        let hash = digest(token);
        if let Some((scope, at)) = self.cache.lock().expect("not poisoned").get(&hash)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(*scope);
        }
        let scope: Option<String> = sqlx::query_scalar(
            "SELECT scope FROM api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let scope = scope.map(|s| Scope::parse(&s)).transpose()?;
        let mut cache = self.cache.lock().expect("not poisoned");
        if cache.len() > 10_000 {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        cache.insert(hash, (scope, Instant::now()));
        Ok(scope)
    }
}

/// The token of an `Authorization: Bearer ...` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (kind, token) = value.split_once(' ')?;
    kind.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_headers() {
        assert!(Scope::Admin.allows(Scope::Predict));
        assert!(Scope::Admin.allows(Scope::Admin));
        assert!(!Scope::Predict.allows(Scope::Admin));
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
        assert!(Scope::parse("root").is_err());
    }
}
