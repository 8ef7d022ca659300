//! sluice's operations layer: every operation a person or a workflow can ask for, each a typed
//! request in (`Deserialize`, unknown fields refused, its defaults in one place), a typed output
//! out (`Serialize`: the contract workflows select fields from) and one [`Error`].
//!
//! The CLI (`scheduler::commands`), the workflows' Task resources (`scheduler::tasks`) and the
//! HTTP routes are adapters over it: they turn their input into a request, call [`Ops`] and
//! render or return the output. This crate depends on `jobs` and `models`, never on clap, axum,
//! apalis or anyhow.
//!
//! [`Ops`] is the process's handle: the catalog database (one pool, migrated once, opened on
//! first use), the lake and the curated lake, and the defaults of the configuration.

mod blend;
mod catalog;
mod connections;
mod convert;
mod crawl;
mod dataset;
mod drift;
mod drift_reports;
mod error;
pub mod events;
mod forecast;
mod forecast_series;
pub mod ingest;
pub mod notifications;
mod process;
mod publish;
mod query;
mod registry;
pub mod request;
mod retention;
mod retrain;
pub mod serving;
#[cfg(test)]
mod tests;
mod train;
mod transform;
pub mod tune;
pub mod workflows;

use std::sync::Arc;

use jobs::catalog::{Catalog, CatalogDbName, ConnectOptions};
use jobs::lake::{Lake, S3Options};

pub use blend::{BlendMade, BlendMember, BlendOutput, BlendRequest};
pub use catalog::{
    QuarantineView, TableDetail, TypeChangeDecision, TypeChangesOutput, TypeChangesRequest,
    reason_kind,
};
pub use connections::{
    Authorization, Connection, ConnectionInfo, ConnectionRequest, connection_name,
};
pub use convert::{CompactRequest, ConvertMode, ConvertRequest, VacuumRequest};
pub use crawl::{CrawlDefaults, CrawlRequest};
pub use dataset::{DatasetManifest, DatasetRequest, DroppedItem};
pub use drift::{DriftOutput, DriftReport, DriftRequest, DriftSummary};
pub use error::{Error, Missing, Result};
pub use forecast::{BatchForecastRequest, ForecastRequest};
pub use forecast_series::{ActualsSource, ForecastPoint, SeriesForecast};
pub use process::{ProcessCommand, ProcessCommands, ProcessRequest, check_command};
pub use publish::{
    ChampionScore, PublishOutput, PublishRequest, PublishScores, load_version, upload_model,
};
pub use query::{QueryColumn, QueryOutput, QueryRequest};
pub use registry::{
    AliasChange, PromoteRequest, RollbackRequest, SetStatusRequest, VersionRequest,
};
pub use retention::{ExpiryReport, Retention, parse_retention};
pub use retrain::{DriftVerdict, NewRows, RetrainCheck, RetrainPolicy, RetrainRequest, VersionAge};
pub use train::{Algorithm, DeviceKind, TestMetrics, TrainOutput, TrainRequest, device};
pub use transform::TransformRequest;
pub use tune::{TuneOutput, TuneReport, TuneRequest, TuneSettings, TuneState};

/// Where an operation reports progress: crawl and conversion progress, training epochs. The
/// CLI draws bars from it; a Task beats its heartbeat.
#[derive(Clone)]
pub struct Observer(Arc<dyn Fn(Progress<'_>) + Send + Sync>);

/// One step of progress.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// The crawl knows how many objects it reads.
    CrawlPlanned { objects: usize },
    /// The crawl read one object.
    ObjectCrawled { key: &'a str },
    /// Conversion finished one source object.
    SourceConverted { key: &'a str },
    /// Training finished an epoch.
    Epoch {
        epoch: usize,
        epochs: usize,
        loss: f64,
    },
}

impl Observer {
    pub fn new(f: impl Fn(Progress<'_>) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Observes nothing.
    pub fn none() -> Self {
        Self::new(|_| {})
    }

    pub fn report(&self, progress: Progress<'_>) {
        (self.0)(progress)
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer(..)")
    }
}

/// What the operations need from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `sqlite://PATH` or `postgres://...`.
    pub database: String,
    /// The lake's URL.
    pub lake: String,
    /// The curated lake's URL (None: the lake).
    pub curated_lake: Option<String>,
    pub s3: S3Options,
    /// The catalog database a request without `catalog` uses.
    pub catalog: String,
    /// Crawler settings a request does not set.
    pub crawl: CrawlDefaults,
    /// Commands workflows may run (`sluice:process:NAME`); none by default.
    pub process: ProcessCommands,
    /// How long records of sluice's own work are kept.
    pub retention: Retention,
}

/// The process's handle on the operations (cheap to clone: every clone shares one pool).
#[derive(Clone)]
pub struct Ops {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    catalog: tokio::sync::OnceCell<Catalog>,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Ops {
    /// A handle over `settings`; nothing is opened until an operation needs it.
    pub fn new(settings: Settings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                catalog: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// A handle over an already open catalog (a test's database, a server's pool).
    pub fn with_catalog(settings: Settings, catalog: Catalog) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                catalog: tokio::sync::OnceCell::new_with(Some(catalog)),
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The catalog database: connected and migrated on first use, then shared.
    pub async fn catalog(&self) -> Result<&Catalog> {
        let url = &self.inner.settings.database;
        self.inner
            .catalog
            .get_or_try_init(|| async {
                Catalog::connect(url, &ConnectOptions::default())
                    .await
                    .map_err(|err| match Error::from(err) {
                        Error::Unavailable(reason) => {
                            Error::Unavailable(format!("cannot open database {url}: {reason}"))
                        }
                        other => other,
                    })
            })
            .await
    }

    pub fn lake(&self) -> Result<Lake> {
        Ok(Lake::open(
            &self.inner.settings.lake,
            &self.inner.settings.s3,
        )?)
    }

    /// The curated lake: its own URL, or the lake itself.
    pub fn curated_lake(&self) -> Result<Lake> {
        match &self.inner.settings.curated_lake {
            Some(url) => Ok(Lake::open(url, &self.inner.settings.s3)?),
            None => self.lake(),
        }
    }

    /// Closes the database pool, when one was opened (at the end of a process).
    pub async fn close(&self) {
        if let Some(catalog) = self.inner.catalog.get() {
            catalog.close().await;
        }
    }

    /// A request's catalog database, or the configured one.
    pub fn catalog_db(&self, requested: Option<&str>) -> Result<CatalogDbName> {
        Ok(CatalogDbName::parse(
            requested.unwrap_or(&self.inner.settings.catalog),
        )?)
    }
}
