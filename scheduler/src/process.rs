//! Process assembly: what `sluice server`, `sluice worker` and `sluice serve` run, and how they
//! stop. On SIGTERM or Ctrl-C each part finishes what it holds: the HTTP servers stop taking
//! connections and finish their requests, the cron, trigger and notification loops finish
//! their pass and exit (they are drained, not aborted, so a tick, a window or a delivery being
//! claimed is claimed whole), and a worker finishes its
//! step.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;

use crate::commands::Context;
use crate::orchestrator::queue::Queue;
use crate::serving::{self, Auth, Serving};
use ops::workflows::Workflows;

/// A flag raised once on SIGTERM or Ctrl-C, that every part of the process watches.
#[derive(Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// Raised by the process's signals.
    pub fn on_signal() -> Self {
        let (raise, flag) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal().await;
            let _ = raise.send(true);
        });
        Self(flag)
    }

    /// Resolves once the flag is raised.
    pub async fn stopped(self) {
        let mut flag = self.0;
        let _ = flag.wait_for(|stop| *stop).await;
    }
}

async fn signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// A listener on `address`, with an error that names it.
pub async fn bind(address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))
}

/// The serving state of a process, following the registry until `stop` resolves.
pub async fn start_serving(
    context: &Context,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Arc<Serving>> {
    let catalog = context.catalog().await?;
    let auth = Arc::new(Auth::new(
        catalog.pool().clone(),
        context.config.auth_options(),
    ));
    let serving = Arc::new(Serving::new(
        context.ops.clone(),
        catalog.pool().clone(),
        context.lake()?,
        auth,
        context.config.serve_options(),
    ));
    serving
        .refresh()
        .await
        .context("cannot load the endpoints' models")?;
    tokio::spawn(serving.clone().follow(stop));
    if catalog.backend() == jobs::catalog::Backend::Postgres {
        tokio::spawn(serving::listen(
            serving.clone(),
            context.config.database.clone(),
        ));
    }
    Ok(serving)
}

/// `sluice serve`: the prediction endpoints on `listen` until SIGTERM; returns the address.
pub async fn serve(context: &Context, listen: &str) -> anyhow::Result<SocketAddr> {
    let shutdown = Shutdown::on_signal();
    let serving = start_serving(context, shutdown.clone().stopped()).await?;
    let listener = bind(listen).await?;
    let address = listener.local_addr()?;
    tracing::info!(address = %address, "serving the prediction endpoints");
    // The console's serving pages (models, endpoints, the catalog) beside the endpoints.
    let console = Arc::new(crate::console::Console::new(
        None,
        context.ops.clone(),
        serving.auth.clone(),
        serving.pool.clone(),
    ));
    let routes = serving::router(serving).merge(crate::console::router(console));
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown.stopped())
        .await?;
    Ok(address)
}

/// `sluice worker`: workflow steps from the queue until SIGTERM.
pub async fn worker(context: &Context, name: &str) -> anyhow::Result<()> {
    let catalog = context.catalog().await?;
    let engine = crate::tasks::Resources::engine(context.ops.clone(), catalog.pool().clone());
    let queue = Queue::open(&context.config.database).await?;
    queue
        .work(engine, name.to_owned(), Shutdown::on_signal().stopped())
        .await?;
    Ok(())
}

/// `sluice ingest mqtt`: the MQTT bridge alone (its own write-ahead log directory) until
/// SIGTERM, then what it buffered is delivered.
pub async fn mqtt_bridge(context: &Context) -> anyhow::Result<()> {
    let mqtt = context
        .config
        .ingest
        .mqtt
        .clone()
        .context("no [ingest.mqtt] section in the configuration: the broker and the rules")?;
    mqtt.check()?;
    let ingest = ops::ingest::Ingest::open(context.ops.clone(), context.config.ingest_options())
        .await
        .context("cannot open the ingest write-ahead log")?;
    crate::ingest::mqtt::run(ingest.clone(), mqtt, Shutdown::on_signal().stopped()).await?;
    match tokio::time::timeout(Duration::from_secs(30), ingest.flush()).await {
        Ok(Ok(())) => {}
        _ => tracing::warn!("ingested records stay in the write-ahead log for the next start"),
    }
    Ok(())
}

/// A loop of passes, one every `period`, until `shutdown`, which lets a pass finish (a tick, a
/// trigger's window or a delivery being claimed is claimed whole). A failed pass is logged and
/// the next one tries again.
async fn every<F, Fut>(period: Duration, what: &'static str, shutdown: Shutdown, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ops::Error>>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopped = shutdown.stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            _ = ticks.tick() => {}
        }
        if let Err(err) = pass().await {
            tracing::warn!(error = %err, "{what} failed");
        }
    }
}

/// How often the server looks for new landings and drift (a listing of each landing trigger's
/// prefix per pass).
const TRIGGER_PASS: Duration = Duration::from_secs(5);
/// How often it queues and sends notifications.
const NOTIFY_PASS: Duration = Duration::from_secs(2);

/// How often the server deletes what retention no longer keeps (`[retention]`).
const RETENTION_PASS: Duration = Duration::from_secs(300);

/// The server's background loops: cron ticks every second, triggers, notifications and
/// retention.
fn background(
    workflows: &Workflows,
    ops: &ops::Ops,
    shutdown: &Shutdown,
) -> Vec<tokio::task::JoinHandle<()>> {
    let cron = workflows.clone();
    let triggers = workflows.clone();
    let ops = ops.clone();
    let (expiring, expire_ops) = (workflows.clone(), ops.clone());
    vec![
        tokio::spawn(every(
            Duration::from_secs(1),
            "scheduler pass",
            shutdown.clone(),
            move || {
                let cron = cron.clone();
                async move { cron.fire_due(Utc::now()).await.map(drop) }
            },
        )),
        tokio::spawn(every(
            TRIGGER_PASS,
            "trigger pass",
            shutdown.clone(),
            move || {
                let triggers = triggers.clone();
                async move { triggers.fire_triggers(Utc::now()).await.map(drop) }
            },
        )),
        tokio::spawn(every(
            NOTIFY_PASS,
            "notification pass",
            shutdown.clone(),
            move || {
                let ops = ops.clone();
                async move { ops.notify(Utc::now()).await.map(drop) }
            },
        )),
        tokio::spawn(every(
            RETENTION_PASS,
            "retention pass",
            shutdown.clone(),
            move || {
                let (workflows, ops) = (expiring.clone(), expire_ops.clone());
                async move {
                    let expired = ops.expire(&workflows, Utc::now()).await?;
                    if expired != ops::ExpiryReport::default() {
                        tracing::info!(?expired, "retention: deleted what is past its time");
                    }
                    Ok(())
                }
            },
        )),
    ]
}

/// What `sluice server` runs besides the API.
pub struct ServerParts<'a> {
    /// Address of the API and the prediction endpoints.
    pub listen: &'a str,
    /// The embedded worker's name; None: no worker in this process.
    pub worker: Option<String>,
}

/// `sluice server`: the HTTP API with the prediction endpoints and ingest (the Firehose API), the cron loop and (unless told
/// not to) a worker, until SIGTERM; returns the API's address.
pub async fn server(context: &Context, parts: ServerParts<'_>) -> anyhow::Result<SocketAddr> {
    let catalog = context.catalog().await?;
    let engine = crate::tasks::Resources::engine(context.ops.clone(), catalog.pool().clone());
    let queue = Queue::open(&context.config.database).await?;
    let shutdown = Shutdown::on_signal();
    let workflows = Workflows::new(engine.clone(), Arc::new(queue.clone()));
    let loops = background(&workflows, &context.ops, &shutdown);
    let listener = bind(parts.listen).await?;
    let address = listener.local_addr()?;
    tracing::info!(address = %address, "serving the API");
    let serving = start_serving(context, shutdown.clone().stopped()).await?;
    let ingest = ops::ingest::Ingest::open(context.ops.clone(), context.config.ingest_options())
        .await
        .context("cannot open the ingest write-ahead log")?;
    let ingest_state = Arc::new(crate::ingest::IngestState {
        ingest: ingest.clone(),
        ops: context.ops.clone(),
        auth: serving.auth.clone(),
    });
    let console = Arc::new(crate::console::Console::new(
        Some(workflows.clone()),
        context.ops.clone(),
        serving.auth.clone(),
        catalog.pool().clone(),
    ));
    let state = Arc::new(crate::api::ApiState {
        workflows,
        auth: serving.auth.clone(),
    });
    let routes = crate::api::router(state)
        .merge(crate::console::router(console))
        .merge(serving::router(serving))
        .merge(crate::ingest::router(ingest_state));
    let bridge = match context.config.ingest.mqtt.clone() {
        Some(mqtt) => {
            mqtt.check()?;
            Some(tokio::spawn(crate::ingest::mqtt::run(
                ingest.clone(),
                mqtt,
                shutdown.clone().stopped(),
            )))
        }
        None => None,
    };
    let api = tokio::spawn(
        axum::serve(listener, routes)
            .with_graceful_shutdown(shutdown.clone().stopped())
            .into_future(),
    );
    match parts.worker {
        Some(name) => queue.work(engine, name, shutdown.stopped()).await?,
        None => shutdown.stopped().await,
    }
    api.await??;
    for background in loops {
        background.await?;
    }
    if let Some(bridge) = bridge {
        bridge.await??;
    }
    // What was acknowledged is durable either way; a graceful stop also delivers it.
    match tokio::time::timeout(Duration::from_secs(30), ingest.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "ingested records stay in the write-ahead log for the next start")
        }
        Err(_) => tracing::warn!(
            "delivering ingested records took too long: the rest stays in the write-ahead log for the next start"
        ),
    }
    Ok(address)
}
