//! Endpoint, token and deployment management: what `sluice endpoint|token`, the admin routes
//! and the console ask for, as operations of [`crate::Ops`], over the stores below. The
//! serving process (`scheduler::serving`) reads the same stores to answer predictions.
//!
//! - [`endpoints`]: endpoint definitions (weighted variants following aliases or versions);
//! - [`auth`]: hashed API tokens with `admin`, `predict` and `ingest` scopes;
//! - [`sessions`]: console sessions opened with a token, with their CSRF secret;
//! - [`sigv4`]: AWS Signature Version 4, checked for the Firehose API's SDK clients;
//! - [`stats`]: the fleet's figures per endpoint and version;
//! - [`deployments`]: canary or linear rollouts that roll back by themselves.

pub mod auth;
pub mod deployments;
pub mod endpoints;
pub mod sessions;
pub use wire::sigv4;
pub mod stats;

use models::registry::{GroupName, Target};
use serde::{Deserialize, Serialize};

use crate::{Missing, Ops, Result};

/// Errors of the endpoint stores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Registry(#[from] models::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Catalog(#[from] jobs::Error),
}

impl From<Error> for crate::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Invalid(reason) => Self::InvalidInput {
                field: String::new(),
                reason,
            },
            Error::NotFound(what) => Self::NotFound {
                missing: Missing::Other,
                what,
            },
            Error::Registry(err) => err.into(),
            Error::Catalog(err) => err.into(),
            Error::Database(err) => Self::Unavailable(format!("database: {err}")),
        }
    }
}

/// An endpoint: its name, the model group it serves and its variants, each
/// `NAME=TARGET[:WEIGHT]` (a target is an alias or a version; weights default to equal shares).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    pub name: String,
    pub group: String,
    pub variants: Vec<String>,
}

/// One variant of an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantView {
    pub variant: String,
    pub target: String,
    pub weight: f64,
}

/// What an endpoint's fleet did with one version over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionFigures {
    pub version: u32,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p99_ms: f64,
}

/// An endpoint as stored, with its generation (bumped by every change).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointView {
    pub endpoint: String,
    pub group: String,
    pub generation: i64,
    pub variants: Vec<VariantView>,
}

impl EndpointView {
    fn of(spec: &endpoints::EndpointSpec, generation: i64) -> Self {
        Self {
            endpoint: spec.name.clone(),
            group: spec.group.to_string(),
            generation,
            variants: spec
                .variants
                .iter()
                .map(|v| VariantView {
                    variant: v.name.clone(),
                    target: v.target.to_string(),
                    weight: v.weight,
                })
                .collect(),
        }
    }
}

/// A deployment of a version to an endpoint, with its defaults: a canary of 10 %, baked for
/// five minutes, rolled back past a 1 % error rate or a p99 of one second, judged once 20
/// requests have been seen.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The version to deploy (`3` or `"v3"`).
    #[serde(deserialize_with = "version_number")]
    pub version: u32,
    #[serde(default = "canary")]
    pub strategy: String,
    #[serde(default = "ten")]
    pub percent: u32,
    #[serde(default = "five_minutes")]
    pub bake_seconds: f64,
    #[serde(default = "one_percent")]
    pub max_error_rate: f64,
    #[serde(default = "one_second")]
    pub max_p99_ms: f64,
    #[serde(default = "twenty")]
    pub min_requests: u64,
}

fn canary() -> String {
    "canary".into()
}
fn ten() -> u32 {
    10
}
fn five_minutes() -> f64 {
    300.0
}
fn one_percent() -> f64 {
    0.01
}
fn one_second() -> f64 {
    1000.0
}
fn twenty() -> u64 {
    20
}

/// A version as a number or as `"v3"`/`"3"`; an alias is refused (a deployment pins a version).
fn version_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u32),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(text) => match Target::parse(&text) {
            Ok(Target::Version(v)) => Ok(v),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?}: a version number (3 or v3)"
            ))),
        },
    }
}

/// A deployment that started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentStarted {
    pub deployment: String,
    pub endpoint: String,
    pub version: u32,
}

/// A new API token; `token` is its secret, shown this once, and so are an ingest token's
/// SigV4 credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewToken {
    pub id: String,
    pub scope: String,
    pub token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// An ingest token's access key id (never its secret).
    pub access_key_id: Option<String>,
}

/// A token to create: its scope (`admin`, `predict` or `ingest`) and a name for people.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub scope: String,
    #[serde(default)]
    pub name: String,
}

impl Ops {
    async fn pool(&self) -> Result<&sqlx::AnyPool> {
        Ok(self.catalog().await?.pool())
    }

    /// Creates or replaces an endpoint; servers follow it at their next check.
    pub async fn put_endpoint(&self, request: &EndpointRequest) -> Result<EndpointView> {
        let group = GroupName::parse(&request.group)?;
        let variants = request
            .variants
            .iter()
            .map(|v| endpoints::Variant::parse(v))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = endpoints::EndpointSpec::new(&request.name, group, variants)?;
        let generation = endpoints::put(self.pool().await?, &spec).await?;
        Ok(EndpointView::of(&spec, generation))
    }

    /// Every endpoint, by name.
    pub async fn endpoints(&self) -> Result<Vec<EndpointView>> {
        Ok(endpoints::list(self.pool().await?)
            .await?
            .iter()
            .map(|(spec, generation)| EndpointView::of(spec, *generation))
            .collect())
    }

    /// The fleet's figures for each version an endpoint answered with since `since` (ms):
    /// requests, the share that failed, p99 latency, by version.
    pub async fn endpoint_figures(
        &self,
        endpoint: &str,
        since: i64,
    ) -> Result<Vec<VersionFigures>> {
        let pool = self.pool().await?;
        let versions: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT version FROM serving_stats WHERE endpoint = $1 AND at >= $2 ORDER BY version",
        )
        .bind(endpoint)
        .bind(since)
        .fetch_all(pool)
        .await
        .map_err(Error::from)?;
        let mut figures = Vec::with_capacity(versions.len());
        for version in versions {
            let version = u32::try_from(version).unwrap_or_default();
            let counts = stats::since(pool, endpoint, version, since).await?;
            figures.push(VersionFigures {
                version,
                requests: counts.requests,
                errors: counts.errors,
                error_rate: counts.error_rate(),
                p99_ms: counts.latency_quantile_ms(0.99),
            });
        }
        Ok(figures)
    }

    /// Starts deploying a version to an endpoint; servers take the next steps.
    pub async fn deploy(
        &self,
        endpoint: &str,
        request: &DeployRequest,
    ) -> Result<DeploymentStarted> {
        let strategy = deployments::Strategy::parse(&request.strategy, request.percent)?;
        let settings = deployments::Settings {
            strategy,
            bake: std::time::Duration::from_secs_f64(request.bake_seconds.max(0.0)),
            max_error_rate: request.max_error_rate,
            max_p99_ms: request.max_p99_ms,
            min_requests: request.min_requests,
        };
        let id =
            deployments::start(self.pool().await?, endpoint, request.version, settings).await?;
        Ok(DeploymentStarted {
            deployment: id,
            endpoint: endpoint.to_owned(),
            version: request.version,
        })
    }

    /// Deployments, newest first (of one endpoint when given).
    pub async fn deployments(
        &self,
        endpoint: Option<&str>,
    ) -> Result<Vec<deployments::Deployment>> {
        Ok(deployments::list(self.pool().await?, endpoint).await?)
    }

    /// Creates an API token.
    pub async fn create_token(&self, request: &TokenRequest) -> Result<NewToken> {
        let scope = auth::Scope::parse(&request.scope)?;
        let created = auth::create(self.pool().await?, scope, &request.name).await?;
        let (access_key_id, secret_access_key) = created
            .keys
            .map(|k| (k.access_key_id, k.secret_access_key))
            .unzip();
        Ok(NewToken {
            id: created.id,
            scope: scope.as_str().to_owned(),
            token: created.token,
            access_key_id,
            secret_access_key,
        })
    }

    /// The API tokens, without their secrets.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        Ok(auth::list(self.pool().await?).await?)
    }

    /// Revokes a live token.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        if auth::revoke(self.pool().await?, id).await? {
            Ok(())
        } else {
            Err(crate::Error::NotFound {
                missing: Missing::Other,
                what: format!("no live token {id}"),
            })
        }
    }
}
