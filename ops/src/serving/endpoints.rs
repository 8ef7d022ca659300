//! Endpoints: a model group served through weighted variants, each following an alias or
//! pinned to a version. Stored in the `endpoints` table; every change bumps the endpoint's
//! generation (and notifies Postgres listeners) so servers pick it up.

use models::registry::{GroupName, NOTIFY_CHANNEL, Target};
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};

use super::Error;

/// One variant of an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: String,
    pub target: Target,
    /// Relative share of the traffic without a target-variant header.
    pub weight: f64,
}

impl Variant {
    /// `NAME=TARGET[:WEIGHT]` (`primary=champion`, `b=v4:0.1`).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Invalid(format!("variant {text:?}: {reason}"));
        let (name, rest) = text
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=TARGET[:WEIGHT]"))?;
        let (target, weight) = match rest.split_once(':') {
            Some((target, weight)) => (
                target,
                weight
                    .parse::<f64>()
                    .ok()
                    .filter(|w| w.is_finite() && *w >= 0.0)
                    .ok_or_else(|| bad("the weight must be a number >= 0"))?,
            ),
            None => (rest, 1.0),
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(bad("the name must be letters, digits, '-' or '_'"));
        }
        Ok(Self {
            name: name.to_owned(),
            target: Target::parse(target.trim()).map_err(|e| bad(&e.to_string()))?,
            weight,
        })
    }
}

/// An endpoint's definition.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSpec {
    pub name: String,
    pub group: GroupName,
    pub variants: Vec<Variant>,
}

impl EndpointSpec {
    /// Checks names, uniqueness and that some variant carries traffic.
    pub fn new(name: &str, group: GroupName, variants: Vec<Variant>) -> Result<Self, Error> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(Error::Invalid(format!(
                "endpoint name {name:?}: use letters, digits, '-' or '_'"
            )));
        }
        let variants = if variants.is_empty() {
            vec![Variant {
                name: "primary".into(),
                target: Target::Alias(models::registry::AliasName::champion()),
                weight: 1.0,
            }]
        } else {
            variants
        };
        for (i, v) in variants.iter().enumerate() {
            if variants[..i].iter().any(|w| w.name == v.name) {
                return Err(Error::Invalid(format!(
                    "endpoint {name}: variant {} appears twice",
                    v.name
                )));
            }
        }
        if variants.iter().all(|v| v.weight == 0.0) {
            return Err(Error::Invalid(format!(
                "endpoint {name}: every variant has weight 0"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            group,
            variants,
        })
    }

    /// The stored document (explicit and versioned).
    pub fn variants_json(&self) -> String {
        json!({
            "format": 1,
            "variants": self.variants.iter().map(|v| json!({
                "name": v.name,
                "target": v.target.to_string(),
                "weight": v.weight,
            })).collect::<Vec<_>>(),
        })
        .to_string()
    }

    pub fn from_row(name: String, group: String, variants: &str) -> Result<Self, Error> {
        let corrupt = |reason: String| Error::Invalid(format!("endpoint {name}: {reason}"));
        let doc: Value = serde_json::from_str(variants).map_err(|e| corrupt(e.to_string()))?;
        if doc.get("format").and_then(Value::as_u64) != Some(1) {
            return Err(corrupt("unknown variants format".into()));
        }
        let variants = doc
            .get("variants")
            .and_then(Value::as_array)
            .ok_or_else(|| corrupt("no variants".into()))?
            .iter()
            .map(|v| {
                Ok(Variant {
                    name: v["name"].as_str().unwrap_or_default().to_owned(),
                    target: Target::parse(v["target"].as_str().unwrap_or_default())
                        .map_err(|e| corrupt(e.to_string()))?,
                    weight: v["weight"].as_f64().unwrap_or(0.0),
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Self {
            group: GroupName::parse(&group).map_err(|e| corrupt(e.to_string()))?,
            name,
            variants,
        })
    }
}

/// Creates or replaces an endpoint (creating its model group if it has no version yet).
pub async fn put(pool: &AnyPool, spec: &EndpointSpec) -> Result<i64, Error> {
    let mut tx = pool.begin().await?;
    let generation = put_in(&mut tx, spec).await?;
    tx.commit().await?;
    Ok(generation)
}

/// [`put`] inside a caller's transaction.
pub async fn put_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    spec: &EndpointSpec,
) -> Result<i64, Error> {
    let now = chrono::Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO model_groups (name, generation, created_at, updated_at) VALUES ($1, 0, $2, $2) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(spec.group.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let generation: i64 = sqlx::query_scalar(
        "INSERT INTO endpoints (name, model_group, variants, generation, created_at, updated_at) \
         VALUES ($1, $2, $3, 1, $4, $4) ON CONFLICT (name) DO UPDATE SET \
         model_group = excluded.model_group, variants = excluded.variants, \
         generation = endpoints.generation + 1, updated_at = excluded.updated_at \
         RETURNING generation",
    )
    .bind(&spec.name)
    .bind(spec.group.as_str())
    .bind(spec.variants_json())
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    jobs::catalog::notify(tx, NOTIFY_CHANNEL, &format!("endpoint:{}", spec.name)).await?;
    Ok(generation)
}

/// One endpoint.
pub async fn get(pool: &AnyPool, name: &str) -> Result<EndpointSpec, Error> {
    let row = sqlx::query("SELECT name, model_group, variants FROM endpoints WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("endpoint {name} not found")))?;
    EndpointSpec::from_row(
        row.try_get("name")?,
        row.try_get("model_group")?,
        &row.try_get::<String, _>("variants")?,
    )
}

/// Every endpoint with its generation, by name.
pub async fn list(pool: &AnyPool) -> Result<Vec<(EndpointSpec, i64)>, Error> {
    let rows =
        sqlx::query("SELECT name, model_group, variants, generation FROM endpoints ORDER BY name")
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|row| {
            let spec = EndpointSpec::from_row(
                row.try_get("name")?,
                row.try_get("model_group")?,
                &row.try_get::<String, _>("variants")?,
            )?;
            Ok((spec, row.try_get("generation")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_with_their_errors() {
        let v = Variant::parse("b=v4:0.25").unwrap();
        assert_eq!(v.name, "b");
        assert_eq!(v.target, Target::Version(4));
        assert_eq!(v.weight, 0.25);
        assert_eq!(Variant::parse("primary=champion").unwrap().weight, 1.0);
        for bad in [
            "champion",
            "a=champion:-1",
            "a=champion:x",
            "=v1",
            "a b=v1",
            "a=no way",
        ] {
            assert!(Variant::parse(bad).is_err(), "{bad}");
        }
        let group = GroupName::parse("g").unwrap();
        let spec = EndpointSpec::new("default", group.clone(), vec![]).unwrap();
        assert_eq!(spec.variants[0].name, "primary");
        let twice = vec![
            Variant::parse("a=v1").unwrap(),
            Variant::parse("a=v2").unwrap(),
        ];
        assert!(EndpointSpec::new("e", group.clone(), twice).is_err());
        let idle = vec![Variant::parse("a=v1:0").unwrap()];
        assert!(EndpointSpec::new("e", group.clone(), idle).is_err());
        let round = EndpointSpec::new(
            "e",
            group,
            vec![
                Variant::parse("a=champion:0.9").unwrap(),
                Variant::parse("b=v2:0.1").unwrap(),
            ],
        )
        .unwrap();
        let back = EndpointSpec::from_row("e".into(), "g".into(), &round.variants_json()).unwrap();
        assert_eq!(back, round);
    }
}
