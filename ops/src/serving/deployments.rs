//! Deployments: shifting an endpoint's traffic to a new model version all at once, as a canary
//! or linearly, each step baking for a while, and rolling back by itself when the new version's
//! server-error rate or p99 latency passes its threshold during the bake.
//!
//! A deployment is a row (`deployments`) advanced by [`tick`], which every serving process runs
//! after flushing its figures: the step to take is a pure function of the settings, the
//! current weight, the time baked and the fleet's figures for the new version ([`next_step`]);
//! taking it rewrites the endpoint's variants and the row in one transaction guarded by the
//! row's `updated_at`, so concurrent controllers take each step once.

use std::time::Duration;

use models::registry::{AliasName, Change, Registry, Target};
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};

use super::Error;
use super::endpoints::{self, EndpointSpec, Variant};
use super::stats::{self, Stats};

/// How traffic moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    AllAtOnce,
    /// `percent` first, then everything.
    Canary {
        percent: u32,
    },
    /// `step` more percent after each bake.
    Linear {
        step: u32,
    },
}

impl Strategy {
    /// `all-at-once`, `canary` or `linear`, with the canary's first or the linear step's percent.
    pub fn parse(name: &str, percent: u32) -> Result<Self, Error> {
        match name {
            "all-at-once" => Ok(Strategy::AllAtOnce),
            "canary" => Ok(Strategy::Canary { percent }),
            "linear" => Ok(Strategy::Linear { step: percent }),
            other => Err(Error::Invalid(format!(
                "strategy {other:?}: use all-at-once, canary or linear"
            ))),
        }
    }
}

/// A deployment's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub strategy: Strategy,
    pub bake: Duration,
    pub max_error_rate: f64,
    pub max_p99_ms: f64,
    /// Figures from fewer answers than this are not judged.
    pub min_requests: u64,
}

impl Settings {
    fn to_json(self) -> Value {
        let (strategy, percent) = match self.strategy {
            Strategy::AllAtOnce => ("all-at-once", 100),
            Strategy::Canary { percent } => ("canary", percent),
            Strategy::Linear { step } => ("linear", step),
        };
        json!({"format": 1, "strategy": strategy, "percent": percent,
               "bake_ms": self.bake.as_millis() as u64, "max_error_rate": self.max_error_rate,
               "max_p99_ms": self.max_p99_ms, "min_requests": self.min_requests})
    }

    fn from_json(value: &Value) -> Result<Self, Error> {
        let percent = value["percent"].as_u64().unwrap_or(100) as u32;
        let strategy = match value["strategy"].as_str() {
            Some("all-at-once") => Strategy::AllAtOnce,
            Some("canary") => Strategy::Canary { percent },
            Some("linear") => Strategy::Linear { step: percent },
            other => return Err(Error::Invalid(format!("deployment strategy {other:?}"))),
        };
        Ok(Self {
            strategy,
            bake: Duration::from_millis(value["bake_ms"].as_u64().unwrap_or(0)),
            max_error_rate: value["max_error_rate"].as_f64().unwrap_or(0.01),
            max_p99_ms: value["max_p99_ms"].as_f64().unwrap_or(f64::INFINITY),
            min_requests: value["min_requests"].as_u64().unwrap_or(10),
        })
    }

    /// The weight of the first step.
    pub fn first_weight(&self) -> u32 {
        match self.strategy {
            Strategy::AllAtOnce => 100,
            Strategy::Canary { percent } | Strategy::Linear { step: percent } => {
                percent.clamp(1, 100)
            }
        }
    }
}

/// What to do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Wait,
    Shift(u32),
    Finish,
    RollBack(String),
}

/// The next step of a deployment at `weight` percent, `baked` into its step, given the new
/// version's figures since the step began.
pub fn next_step(settings: &Settings, weight: u32, baked: Duration, figures: &Stats) -> Step {
    if figures.requests >= settings.min_requests {
        let rate = figures.error_rate();
        if rate > settings.max_error_rate {
            return Step::RollBack(format!(
                "error rate {:.1} % over {} answers passed {:.1} %",
                rate * 100.0,
                figures.requests,
                settings.max_error_rate * 100.0
            ));
        }
        let p99 = figures.latency_quantile_ms(0.99);
        if p99 > settings.max_p99_ms {
            return Step::RollBack(format!(
                "p99 latency above {p99} ms over {} answers passed {} ms",
                figures.requests, settings.max_p99_ms
            ));
        }
    }
    if baked < settings.bake {
        return Step::Wait;
    }
    match settings.strategy {
        _ if weight >= 100 => Step::Finish,
        Strategy::AllAtOnce | Strategy::Canary { .. } => Step::Shift(100),
        Strategy::Linear { step } => Step::Shift((weight + step.max(1)).min(100)),
    }
}

/// The endpoint's variants at a step: the old version and the new one by weight.
fn split(
    original: &EndpointSpec,
    from: Option<u32>,
    to: u32,
    weight: u32,
) -> Result<EndpointSpec, Error> {
    let primary = original
        .variants
        .first()
        .map_or("primary", |v| v.name.as_str());
    let mut variants = Vec::new();
    match from {
        Some(from) if weight < 100 => {
            variants.push(Variant {
                name: primary.to_owned(),
                target: Target::Version(from),
                weight: f64::from(100 - weight),
            });
            variants.push(Variant {
                name: "canary".into(),
                target: Target::Version(to),
                weight: f64::from(weight),
            });
        }
        _ => variants.push(Variant {
            name: primary.to_owned(),
            target: Target::Version(to),
            weight: 1.0,
        }),
    }
    EndpointSpec::new(&original.name, original.group.clone(), variants)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Starts deploying `to` on an endpoint; returns the deployment's id.
pub async fn start(
    pool: &AnyPool,
    endpoint: &str,
    to: u32,
    settings: Settings,
) -> Result<String, Error> {
    let original = endpoints::get(pool, endpoint).await?;
    let registry = Registry::new(pool.clone());
    let target = registry.version(&original.group, to).await?;
    if !target.status.servable() {
        return Err(Error::Invalid(format!(
            "{} v{to} is {}; it cannot be deployed",
            original.group,
            target.status.as_str()
        )));
    }
    let from = match original.variants.first() {
        Some(v) => registry
            .resolve(&original.group, &v.target)
            .await?
            .map(|i| i.version),
        None => None,
    };
    let id = format!("deploy-{}", uuid::Uuid::new_v4().simple());
    let now = now_ms();
    let weight = if from.is_some() && from != Some(to) {
        settings.first_weight()
    } else {
        100
    };
    let mut tx = pool.begin().await?;
    let busy: Option<String> =
        sqlx::query_scalar("SELECT id FROM deployments WHERE endpoint = $1 AND status = 'baking'")
            .bind(endpoint)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(busy) = busy {
        return Err(Error::Invalid(format!(
            "endpoint {endpoint} is already deploying ({busy})"
        )));
    }
    sqlx::query(
        "INSERT INTO deployments (id, endpoint, from_version, to_version, settings, original_variants, status, \
         weight, step_started_at, reason, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'baking', $7, $8, NULL, $8, $8)",
    )
    .bind(&id)
    .bind(endpoint)
    .bind(from.map(i64::from))
    .bind(i64::from(to))
    .bind(settings.to_json().to_string())
    .bind(original.variants_json())
    .bind(i64::from(weight))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    endpoints::put_in(&mut tx, &split(&original, from, to, weight)?).await?;
    tx.commit().await?;
    Ok(id)
}

/// A deployment as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Deployment {
    pub id: String,
    pub endpoint: String,
    pub from_version: Option<u32>,
    pub to_version: u32,
    pub status: String,
    pub weight: u32,
    pub reason: Option<String>,
    pub settings: Value,
    #[serde(skip)]
    original_variants: String,
    #[serde(skip)]
    step_started_at: i64,
    #[serde(skip)]
    updated_at: i64,
}

/// The deployments, newest first (of one endpoint when given).
pub async fn list(pool: &AnyPool, endpoint: Option<&str>) -> Result<Vec<Deployment>, Error> {
    select(pool, endpoint.unwrap_or_default(), "").await
}

/// Deployments of an endpoint (`""`: all) in a status (`""`: any), newest first.
async fn select(pool: &AnyPool, endpoint: &str, status: &str) -> Result<Vec<Deployment>, Error> {
    let rows = sqlx::query(
        "SELECT id, endpoint, from_version, to_version, settings, original_variants, status, weight, \
         step_started_at, reason, updated_at FROM deployments \
         WHERE ($1 = '' OR endpoint = $1) AND ($2 = '' OR status = $2) \
         ORDER BY created_at DESC, id DESC",
    )
    .bind(endpoint)
    .bind(status)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Deployment {
                id: row.try_get("id")?,
                endpoint: row.try_get("endpoint")?,
                from_version: row
                    .try_get::<Option<i64>, _>("from_version")?
                    .map(|v| v as u32),
                to_version: row.try_get::<i64, _>("to_version")? as u32,
                status: row.try_get("status")?,
                weight: row.try_get::<i64, _>("weight")? as u32,
                reason: row.try_get("reason")?,
                settings: serde_json::from_str(&row.try_get::<String, _>("settings")?)
                    .unwrap_or(Value::Null),
                original_variants: row.try_get("original_variants")?,
                step_started_at: row.try_get("step_started_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Takes the due step of every deployment in progress; returns the steps taken.
pub async fn tick(pool: &AnyPool) -> Result<Vec<(String, Step)>, Error> {
    let mut taken = Vec::new();
    for deployment in select(pool, "", "baking").await? {
        let settings = Settings::from_json(&deployment.settings)?;
        let figures = stats::since(
            pool,
            &deployment.endpoint,
            deployment.to_version,
            deployment.step_started_at,
        )
        .await?;
        let now = now_ms();
        let baked = Duration::from_millis((now - deployment.step_started_at).max(0) as u64);
        let step = next_step(&settings, deployment.weight, baked, &figures);
        if step == Step::Wait {
            continue;
        }
        let current = endpoints::get(pool, &deployment.endpoint).await?;
        let original = EndpointSpec::from_row(
            deployment.endpoint.clone(),
            current.group.to_string(),
            &deployment.original_variants,
        )?;
        let (status, weight, reason, spec) = match &step {
            Step::Shift(weight) => (
                "baking",
                *weight,
                None,
                split(
                    &original,
                    deployment.from_version,
                    deployment.to_version,
                    *weight,
                )?,
            ),
            Step::RollBack(reason) => ("rolled-back", 0, Some(reason.clone()), original.clone()),
            Step::Finish => {
                let mut done = original.clone();
                if let Some(first) = done.variants.first_mut()
                    && matches!(first.target, Target::Version(_))
                {
                    first.target = Target::Version(deployment.to_version);
                }
                ("succeeded", 100, None, done)
            }
            Step::Wait => unreachable!("handled above"),
        };
        let mut tx = pool.begin().await?;
        let claimed = sqlx::query(
            "UPDATE deployments SET status = $2, weight = $3, reason = $4, step_started_at = $5, updated_at = $5 \
             WHERE id = $1 AND updated_at = $6 AND status = 'baking'",
        )
        .bind(&deployment.id)
        .bind(status)
        .bind(i64::from(weight))
        .bind(&reason)
        .bind(now.max(deployment.updated_at + 1))
        .bind(deployment.updated_at)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            continue;
        }
        endpoints::put_in(&mut tx, &spec).await?;
        tx.commit().await?;
        if step == Step::Finish
            && let Some(Target::Alias(alias)) = original.variants.first().map(|v| v.target.clone())
        {
            // The endpoint follows an alias: the deployed version becomes what it names.
            move_alias(pool, &original, &alias, &deployment).await?;
        }
        tracing::info!(deployment = %deployment.id, endpoint = %deployment.endpoint, step = ?step, "deployment step");
        taken.push((deployment.id.clone(), step));
    }
    Ok(taken)
}

async fn move_alias(
    pool: &AnyPool,
    endpoint: &EndpointSpec,
    alias: &AliasName,
    deployment: &Deployment,
) -> Result<(), Error> {
    let change = Change {
        actor: format!("deployment:{}", deployment.id),
        reason: format!("deployed to endpoint {} after its bake", endpoint.name),
    };
    Registry::new(pool.clone())
        .move_alias(&endpoint.group, alias, deployment.to_version, &change)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(strategy: Strategy) -> Settings {
        Settings {
            strategy,
            bake: Duration::from_secs(60),
            max_error_rate: 0.05,
            max_p99_ms: 100.0,
            min_requests: 10,
        }
    }

    fn figures(requests: u64, errors: u64, slow: u64) -> Stats {
        let mut buckets = vec![0; stats::BOUNDS_MS.len() + 1];
        buckets[2] = requests - slow;
        buckets[8] = slow; // 200-500 ms
        Stats {
            requests,
            errors,
            buckets,
        }
    }

    #[test]
    fn steps_follow_the_strategy_and_roll_back_on_bad_figures() {
        let baked = Duration::from_secs(61);
        let early = Duration::from_secs(5);
        let fine = figures(100, 1, 0);
        let canary = settings(Strategy::Canary { percent: 10 });
        assert_eq!(canary.first_weight(), 10);
        assert_eq!(next_step(&canary, 10, early, &fine), Step::Wait);
        assert_eq!(next_step(&canary, 10, baked, &fine), Step::Shift(100));
        assert_eq!(next_step(&canary, 100, baked, &fine), Step::Finish);
        let linear = settings(Strategy::Linear { step: 30 });
        assert_eq!(next_step(&linear, 30, baked, &fine), Step::Shift(60));
        assert_eq!(next_step(&linear, 90, baked, &fine), Step::Shift(100));
        assert_eq!(
            next_step(&settings(Strategy::AllAtOnce), 100, baked, &fine),
            Step::Finish
        );
        // Bad figures roll back at once, even before the bake ends.
        assert!(
            matches!(next_step(&canary, 10, early, &figures(100, 10, 0)), Step::RollBack(r) if r.contains("error rate"))
        );
        assert!(
            matches!(next_step(&canary, 10, early, &figures(100, 0, 5)), Step::RollBack(r) if r.contains("p99"))
        );
        // Too few answers are not judged.
        assert_eq!(next_step(&canary, 10, early, &figures(5, 5, 5)), Step::Wait);
    }

    #[test]
    fn settings_round_trip() {
        let s = settings(Strategy::Linear { step: 25 });
        assert_eq!(Settings::from_json(&s.to_json()).unwrap(), s);
    }
}
