//! The Glue-style catalog, stored in SQLite (embedded) or Postgres (scale-out) through sqlx.
//!
//! One set of queries serves both backends: they go through sqlx's `Any` driver with `$N`
//! placeholders, times are epoch milliseconds and documents are JSON text. Each backend has its
//! own migrations (`migrations/sqlite`, `migrations/postgres`), applied on connect.
//!
//! Writes of a crawl happen in one transaction ([`Catalog::commit_crawl`]): a crawl is either
//! recorded whole or not at all.

mod compaction;
pub mod conversion;
mod conversion_commit;
pub mod evolve;
mod model;
mod read;
pub mod schema;
pub mod transform;
pub mod type_changes;
mod write;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use model::{
    CatalogDbName, ConversionRunInfo, CrawlInfo, CrawlStatus, ObjectInfo, ObjectStatus,
    PartitionInfo, SchemaChange, SchemaPolicy, SchemaVersion, TableInfo, TableKind, TableName,
};
pub use write::{CrawlCommit, ObjectWrite, PartitionWrite, TableWrite};

use crate::{Error, Result};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The database behind the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    /// Apply pending migrations on connect.
    pub migrate: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            migrate: true,
        }
    }
}

/// A connection pool to the catalog database.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: AnyPool,
    backend: Backend,
}

/// Wakes the listeners of `channel` (Postgres `NOTIFY`, sent when the connection's transaction
/// commits) with `payload`. A no-op on SQLite, whose processes poll instead: callers never ask
/// which backend they are on.
pub async fn notify(conn: &mut sqlx::AnyConnection, channel: &str, payload: &str) -> Result<()> {
    if conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Milliseconds since the epoch, the catalog's time unit.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Catalog {
    /// Connects to `sqlite://PATH` (created, with its folder, in WAL mode with full synchronous
    /// commits) or `postgres://...`, and applies migrations unless told not to.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(parent) = std::path::Path::new(file)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent).map_err(|err| Error::InvalidArgument {
                    field: "database",
                    reason: format!("cannot create {}: {err}", parent.display()),
                })?;
            }
            let url = if path.contains("mode=") {
                url.to_owned()
            } else if path.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(Error::UnsupportedDatabase {
                url: url.to_owned(),
            });
        };
        let connect_options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite {
                options.max_connections.min(4)
            } else {
                options.max_connections
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await?;
        let catalog = Self { pool, backend };
        if options.migrate {
            catalog.migrate().await?;
        }
        Ok(catalog)
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> Result<usize> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let before: i64 = self.applied_migrations().await.unwrap_or(0);
        // Several processes starting on a new database migrate at once; the losers retry.
        let mut attempt = 0;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => break,
                Err(_) if attempt < 10 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
        let after = self.applied_migrations().await?;
        Ok((after - before).max(0) as usize)
    }

    async fn applied_migrations(&self) -> Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for the jobs that keep their own tables.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection (a clean WAL checkpoint on SQLite).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
