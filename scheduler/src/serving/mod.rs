//! Prediction endpoints: SageMaker DeepAR's invocation contract over the registry's models.
//!
//! - [`endpoints`]: endpoint definitions (weighted variants following aliases or versions);
//! - [`live`]: the loaded models, rebuilt off the hot path and swapped atomically;
//! - [`metrics`]: Prometheus metrics per endpoint, variant and version;
//! - [`served`]: what endpoints answered, kept in the lake for accuracy monitoring;
//! - [`auth`]: hashed API tokens with `admin` and `predict` scopes; [`stats`] and
//!   [`deployments`]: the fleet's figures per version, canary or linear rollouts that roll back
//!   by themselves (these four are `ops::serving`'s, re-exported);
//! - [`routes`]: `/ping`, `/invocations`, `/endpoints/{name}/invocations`, `/metrics`;
//! - [`admin`]: the registry, endpoints' deployments over HTTP (admin scope).
//!
//! Servers follow the registry: every `refresh` interval they compare generations (one query),
//! and on Postgres they also wake on `NOTIFY sluice_registry`. Inference runs on blocking
//! threads behind two semaphores: `workers` bounds the CPU work, `queue` bounds what may wait;
//! past that a request gets 503 with `Retry-After` at once, and `/ping` never waits on either.

pub mod admin;
pub mod live;
pub mod metrics;
pub mod routes;
pub mod served;

/// Endpoint definitions, tokens, deployments and the fleet's figures are operations of
/// `ops::serving`, re-exported here for the serving code.
pub use ops::serving::{Error, auth, deployments, endpoints, stats};

use std::sync::Arc;
use std::time::Duration;

use jobs::lake::Lake;
use sqlx::AnyPool;
use tokio::sync::{Notify, Semaphore};

pub use routes::router;

/// How the endpoints serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The endpoint `/invocations` answers for.
    pub default_endpoint: String,
    /// Inferences run at once.
    pub workers: usize,
    /// Requests that may wait for a worker; beyond, 503.
    pub queue_depth: usize,
    pub max_body_bytes: usize,
    /// How often the registry is checked for changes.
    pub refresh: Duration,
    /// Sample paths when a request names none.
    pub default_samples: usize,
}

/// Who may call what.
#[derive(Debug, Clone, Copy)]
pub struct AuthOptions {
    /// Require tokens at all (off only for local experiments).
    pub enabled: bool,
    /// Let callers without a token predict.
    pub anonymous_predict: bool,
}

/// What the serving handlers share.
pub struct Serving {
    /// The operations the admin routes call.
    pub ops: ops::Ops,
    pub pool: AnyPool,
    pub lake: Lake,
    pub live: live::Live,
    pub metrics: metrics::Metrics,
    pub auth: Arc<Auth>,
    pub options: ServeOptions,
    pub stats: stats::Recorder,
    pub served: served::Served,
    /// This process's name in `serving_stats`.
    pub process: String,
    queue: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    wake: Notify,
}

/// Token checks shared by the API and the endpoints.
pub struct Auth {
    pub options: AuthOptions,
    pub verifier: auth::Verifier,
}

impl Auth {
    pub fn new(pool: AnyPool, options: AuthOptions) -> Self {
        Self {
            options,
            verifier: auth::Verifier::new(pool),
        }
    }
}

impl Serving {
    pub fn new(
        ops: ops::Ops,
        pool: AnyPool,
        lake: Lake,
        auth: Arc<Auth>,
        options: ServeOptions,
    ) -> Self {
        let workers = options.workers.max(1);
        Self {
            queue: Arc::new(Semaphore::new(workers + options.queue_depth)),
            workers: Arc::new(Semaphore::new(workers)),
            live: live::Live::default(),
            stats: stats::Recorder::default(),
            served: served::Served::default(),
            process: format!("serve-{}", uuid::Uuid::new_v4().simple()),
            metrics: metrics::Metrics::default(),
            ops,
            pool,
            lake,
            auth,
            options,
            wake: Notify::new(),
        }
    }

    /// Checks the registry now; `true` when the served models changed.
    pub async fn refresh(&self) -> Result<bool, Error> {
        let swapped = self.live.refresh(&self.pool, &self.lake).await?;
        if swapped {
            self.metrics.swapped();
            tracing::info!("served models updated");
        }
        Ok(swapped)
    }

    /// Flushes this process's figures and takes the due deployment steps, then refreshes.
    pub async fn housekeeping(&self) -> Result<(), Error> {
        self.stats.flush(&self.pool, &self.process).await?;
        if self.served.due() {
            // Forecast runs live in the curated lake, where charts, drift and retention look.
            let curated = self
                .ops
                .curated_lake()
                .map_err(|e| Error::Invalid(format!("cannot open the curated lake: {e}")))?;
            self.served.flush(&self.pool, &curated).await?;
        }
        if !deployments::tick(&self.pool).await?.is_empty() {
            self.refresh().await?;
        }
        Ok(())
    }

    /// Asks the follow loop to check the registry now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Keeps the served models current until `stop` resolves: a check every `refresh`
    /// interval, and at once when woken (Postgres notifications, see [`listen`]).
    pub async fn follow(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(err) = self.refresh().await {
                tracing::warn!(error = %err, "registry check failed");
            }
            if let Err(err) = self.housekeeping().await {
                tracing::warn!(error = %err, "serving figures or deployment step failed");
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.options.refresh) => {}
                () = self.wake.notified() => {}
            }
        }
    }
}

/// Wakes `serving` on every registry notification from Postgres (reconnecting as needed).
pub async fn listen(serving: Arc<Serving>, database_url: String) {
    loop {
        match sqlx::postgres::PgListener::connect(&database_url).await {
            Ok(mut listener) => {
                if let Err(err) = listener.listen(models::registry::NOTIFY_CHANNEL).await {
                    tracing::warn!(error = %err, "cannot listen for registry changes");
                } else {
                    // Changes made while disconnected are caught by this first check.
                    serving.wake();
                    while let Ok(note) = listener.recv().await {
                        tracing::debug!(payload = note.payload(), "registry changed");
                        serving.wake();
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot connect to listen for registry changes")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
