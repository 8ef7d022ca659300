//! API tokens: `sluice_<id>_<secret>`, of which only a SHA-256 is stored; scope `admin`
//! (workflows, registry, endpoints; implies the others), `predict` or `ingest` (the Firehose
//! API). An ingest token also comes with AWS-style credentials, an access key id and a secret
//! access key, that SDKs sign requests with (SigV4, checked by [`super::sigv4`]); that secret is
//! stored as it is, since a signature is checked by computing it again. Verifications are
//! cached for a few seconds, so a revoked token stops working within [`CACHE_TTL`] on every
//! server.

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
    Ingest,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "admin" => Ok(Scope::Admin),
            "predict" => Ok(Scope::Predict),
            "ingest" => Ok(Scope::Ingest),
            other => Err(Error::Invalid(format!(
                "scope {other:?}: use admin, predict or ingest"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Predict => "predict",
            Scope::Ingest => "ingest",
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin || self == needed
    }
}

pub(crate) fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token just created: what is handed over, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    pub token: String,
    /// An ingest token's SigV4 credentials.
    pub keys: Option<AccessKeys>,
}

/// AWS-style credentials: `SLUI` and 16 characters of AWS's key id alphabet, and 40 of base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl AccessKeys {
    fn generate() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut rng = rand::rng();
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let mut secret = [0u8; 30];
        rng.fill_bytes(&mut secret);
        Self {
            access_key_id: std::iter::once("SLUI".to_owned())
                .chain(
                    id.iter()
                        .map(|b| char::from(ALPHABET[usize::from(b % 32)]).to_string()),
                )
                .collect(),
            secret_access_key: base64::engine::general_purpose::STANDARD.encode(secret),
        }
    }
}

/// Creates a token (with SigV4 credentials when its scope is `ingest`); what it returns is
/// shown once.
pub async fn create(pool: &AnyPool, scope: Scope, name: &str) -> Result<Created, Error> {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!(
        "sluice_{id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let keys = (scope == Scope::Ingest).then(AccessKeys::generate);
    sqlx::query(
        "INSERT INTO api_tokens (id, name, secret_hash, scope, created_at, access_key_id, secret_access_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(name)
    .bind(digest(&token))
    .bind(scope.as_str())
    .bind(chrono::Utc::now().timestamp_millis())
    .bind(keys.as_ref().map(|k| k.access_key_id.clone()))
    .bind(keys.as_ref().map(|k| k.secret_access_key.clone()))
    .execute(pool)
    .await?;
    Ok(Created { id, token, keys })
}

/// The tokens, without secrets.
pub async fn list(pool: &AnyPool) -> Result<Vec<super::TokenInfo>, Error> {
    let rows = sqlx::query(
        "SELECT id, name, scope, created_at, revoked_at, access_key_id FROM api_tokens ORDER BY created_at",
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
                access_key_id: row.try_get("access_key_id")?,
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

/// A live access key's secret and its token's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub secret_access_key: String,
    pub scope: Scope,
}

type Cache<T> = Mutex<HashMap<String, (T, Instant)>>;

/// Checks bearer tokens and access keys against the database, with a short-lived cache.
pub struct Verifier {
    pool: AnyPool,
    cache: Cache<Option<Scope>>,
    keys: Cache<Option<SigningKey>>,
}

fn cached<T: Clone>(cache: &Cache<T>, key: &str) -> Option<T> {
    let cache = cache.lock().expect("not poisoned");
    let (value, at) = cache.get(key)?;
    (at.elapsed() < CACHE_TTL).then(|| value.clone())
}

fn remember<T>(cache: &Cache<T>, key: String, value: T) {
    let mut cache = cache.lock().expect("not poisoned");
    if cache.len() > 10_000 {
        cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
    }
    cache.insert(key, (value, Instant::now()));
}

impl Verifier {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            cache: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The secret of a live token's access key (`None`: unknown or revoked).
    pub async fn signing_key(&self, access_key_id: &str) -> Result<Option<SigningKey>, Error> {
        if let Some(known) = cached(&self.keys, access_key_id) {
            return Ok(known);
        }
        let row = sqlx::query(
            "SELECT secret_access_key, scope FROM api_tokens \
             WHERE access_key_id = $1 AND revoked_at IS NULL",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        let key = match row {
            Some(row) => {
                let scope: String = row.try_get("scope")?;
                Some(SigningKey {
                    secret_access_key: row.try_get("secret_access_key")?,
                    scope: Scope::parse(&scope)?,
                })
            }
            None => None,
        };
        remember(&self.keys, access_key_id.to_owned(), key.clone());
        Ok(key)
    }

    /// The scope of a live token (`None`: unknown or revoked).
    pub async fn scope(&self, token: &str) -> Result<Option<Scope>, Error> {
        let hash = digest(token);
        if let Some(scope) = cached(&self.cache, &hash) {
            return Ok(scope);
        }
        let scope: Option<String> = sqlx::query_scalar(
            "SELECT scope FROM api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let scope = scope.map(|s| Scope::parse(&s)).transpose()?;
        remember(&self.cache, hash, scope);
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
        assert!(Scope::Admin.allows(Scope::Ingest));
        assert!(!Scope::Ingest.allows(Scope::Predict));
        assert!(!Scope::Predict.allows(Scope::Ingest));
        let keys = AccessKeys::generate();
        assert_eq!(keys.access_key_id.len(), 20);
        assert!(keys.access_key_id.starts_with("SLUI"));
        assert_eq!(keys.secret_access_key.len(), 40);
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
        assert!(Scope::parse("root").is_err());
    }
}
