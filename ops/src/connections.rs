//! Connections: named credentials that HTTP Tasks authenticate with, as EventBridge connections
//! are for Step Functions. A definition names one (`"Authentication": {"ConnectionArn":
//! "stripe"}`); its secret is stored by sluice, in the catalog database, and never appears in a
//! definition, an execution's history or a listing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Error, Missing, Ops, Result};

/// How a connection authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Authorization {
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// A header carrying a key (`x-api-key: ...`).
    ApiKey { header: String, value: String },
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
}

impl Authorization {
    fn kind(&self) -> &'static str {
        match self {
            Self::Basic { .. } => "basic",
            Self::ApiKey { .. } => "api_key",
            Self::Bearer { .. } => "bearer",
        }
    }
}

/// `{"name", "authorization": {"type": "basic"|"api_key"|"bearer", ...}, "headers"?, "query"?}`:
/// creates a connection, or replaces the one of that name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRequest {
    pub name: String,
    pub authorization: Authorization,
    /// Headers every request through the connection carries.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters every request through the connection carries.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
}

/// A connection as listed: what it is, never its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionInfo {
    pub name: String,
    /// `basic`, `api_key` or `bearer`.
    pub authorization: &'static str,
    /// The names of the headers it adds (the API key's header among them).
    pub headers: Vec<String>,
    pub query: Vec<String>,
    pub updated_at: i64,
}

/// A connection with its secret: what an HTTP Task sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub name: String,
    pub authorization: Authorization,
    pub headers: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
}

/// A connection name: 1 to 64 letters, digits, `-`, `_` or `.`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(Error::invalid(
            "name",
            format!("{name:?}: 1 to 64 letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(())
}

/// The connection a definition's `ConnectionArn` names: a name, or an EventBridge connection
/// ARN (`arn:aws:events:REGION:ACCOUNT:connection/NAME/ID`), whose NAME is used.
pub fn connection_name(arn_or_name: &str) -> &str {
    match arn_or_name.split_once(":connection/") {
        Some((_, rest)) => rest.split('/').next().unwrap_or(rest),
        None => arn_or_name,
    }
}

fn unavailable(err: sqlx::Error) -> Error {
    Error::Unavailable(format!("connections: {err}"))
}

impl Ops {
    /// Stores a connection (replacing one of the same name).
    pub async fn put_connection(&self, request: &ConnectionRequest) -> Result<ConnectionInfo> {
        check_name(&request.name)?;
        let secret = serde_json::to_string(&request.authorization).expect("serializes");
        let now = chrono::Utc::now().timestamp_millis();
        let pool = self.catalog().await?.pool().clone();
        sqlx::query(
            "INSERT INTO connections (name, secret, headers, query, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO UPDATE SET secret = excluded.secret, \
             headers = excluded.headers, query = excluded.query, updated_at = excluded.updated_at",
        )
        .bind(&request.name)
        .bind(secret)
        .bind(serde_json::to_string(&request.headers).expect("serializes"))
        .bind(serde_json::to_string(&request.query).expect("serializes"))
        .bind(now)
        .execute(&pool)
        .await
        .map_err(unavailable)?;
        Ok(info(
            &Connection {
                name: request.name.clone(),
                authorization: request.authorization.clone(),
                headers: request.headers.clone(),
                query: request.query.clone(),
            },
            now,
        ))
    }

    /// Every connection, by name, without secrets.
    pub async fn connections(&self) -> Result<Vec<ConnectionInfo>> {
        let pool = self.catalog().await?.pool().clone();
        let rows = sqlx::query(
            "SELECT name, secret, headers, query, updated_at FROM connections ORDER BY name",
        )
        .fetch_all(&pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(info(
                    &connection_of(row)?,
                    row.try_get("updated_at").map_err(unavailable)?,
                ))
            })
            .collect()
    }

    /// One connection with its secret (the HTTP Task's lookup).
    pub async fn connection(&self, name: &str) -> Result<Connection> {
        let pool = self.catalog().await?.pool().clone();
        let row = sqlx::query(
            "SELECT name, secret, headers, query, updated_at FROM connections WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&pool)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| Error::NotFound {
            missing: Missing::Other,
            what: format!("connection {name:?} does not exist (sluice connection create)"),
        })?;
        connection_of(&row)
    }

    /// Deletes a connection.
    pub async fn delete_connection(&self, name: &str) -> Result<()> {
        let pool = self.catalog().await?.pool().clone();
        let deleted = sqlx::query("DELETE FROM connections WHERE name = $1")
            .bind(name)
            .execute(&pool)
            .await
            .map_err(unavailable)?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound {
                missing: Missing::Other,
                what: format!("connection {name:?} does not exist"),
            });
        }
        Ok(())
    }
}

fn connection_of(row: &sqlx::any::AnyRow) -> Result<Connection> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(unavailable);
    let stored = |column: &str, err: serde_json::Error| {
        Error::Failed(format!(
            "the stored connection's {column} cannot be read: {err}"
        ))
    };
    Ok(Connection {
        name: text("name")?,
        authorization: serde_json::from_str(&text("secret")?)
            .map_err(|e| stored("authorization", e))?,
        headers: serde_json::from_str(&text("headers")?).map_err(|e| stored("headers", e))?,
        query: serde_json::from_str(&text("query")?).map_err(|e| stored("query", e))?,
    })
}

fn info(connection: &Connection, updated_at: i64) -> ConnectionInfo {
    let mut headers: Vec<String> = connection.headers.keys().cloned().collect();
    if let Authorization::ApiKey { header, .. } = &connection.authorization {
        headers.push(header.clone());
    }
    ConnectionInfo {
        name: connection.name.clone(),
        authorization: connection.authorization.kind(),
        headers,
        query: connection.query.keys().cloned().collect(),
        updated_at,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_eventbridge_arn_names_its_connection() {
        assert_eq!(
            super::connection_name(
                "arn:aws:events:us-east-2:123456789012:connection/Stripe/81210c42-8af1"
            ),
            "Stripe"
        );
        assert_eq!(super::connection_name("stripe"), "stripe");
        assert!(super::check_name("a b").is_err());
        assert!(super::check_name("stripe-prod_1.0").is_ok());
    }
}
