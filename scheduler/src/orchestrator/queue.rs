//! The durable task queue: apalis's SQLite or Postgres storage of [`StepTask`]s, in the catalog's
//! database. apalis's own tables keep their migrations in `_apalis_migrations`, apart from sluice's.
//! Its retries are not used for ASL retries: a step that errors is logged and left to the sweep.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use tracing::{info, warn};

use super::Error;
use super::engine::{Engine, Next, StepTask};

/// The queue's name, and apalis's liveness settings, set explicitly: a worker beats every 5 s and
/// is taken for dead (its task handed to another worker) after 3 missed beats.
const QUEUE: &str = "sluice-steps";
const HEARTBEAT: Duration = Duration::from_secs(5);
const MISSED_HEARTBEATS: usize = 3;
/// How often an idle worker looks for steps: a started execution waits at most this long.
const POLL: Duration = Duration::from_millis(20);

/// The steps a worker runs at once: four per core, at least eight. It takes from the queue no
/// more than it can run (apalis's batch is the same size), so that workers share a burst of
/// steps (a Map's iterations) rather than the first one to poll locking it all.
fn steps_at_once() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (4 * cores).max(8)
}

/// How often a worker looks for stalled executions, and how long one may stall.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
const STALL: Duration = Duration::from_secs(120);
// A running step marks itself as moving every RUNNING_BEAT: a stall is several beats long, so
// a step that runs (however long) is never taken for a stalled one.
const _: () = assert!(STALL.as_secs() >= 3 * ops::workflows::engine::RUNNING_BEAT.as_secs());

/// Runs apalis's migrations; processes starting together on a new database retry.
async fn migrate<DB: sqlx::Database>(
    migrator: &sqlx::migrate::Migrator,
    pool: &sqlx::Pool<DB>,
) -> Result<(), Error>
where
    <DB as sqlx::Database>::Connection: sqlx::migrate::Migrate,
{
    let mut attempt = 0;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(err) => return Err(queue_error(err)),
        }
    }
}

/// The queue, on the backend of the catalog's database.
#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteStorage<StepTask>),
    Postgres(PostgresStorage<StepTask>),
}

fn queue_error(err: impl std::fmt::Display) -> Error {
    Error::Queue(err.to_string())
}

impl Queue {
    /// Opens the queue in the database at `url`, creating its tables.
    pub async fn open(url: &str) -> Result<Self, Error> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let options = path
                .split('?')
                .next()
                .unwrap_or(path)
                .parse::<std::path::PathBuf>()
                .map(|file| {
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(file)
                        .create_if_missing(true)
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                        .busy_timeout(Duration::from_secs(10))
                })
                .map_err(queue_error)?;
            let pool = sqlx::SqlitePool::connect_with(options).await?;
            let mut migrator = SqliteStorage::<()>::migrations();
            migrator.dangerous_set_table_name("_apalis_migrations");
            migrate(&migrator, &pool).await?;
            let config = apalis_sqlite::Config {
                batch_size: steps_at_once(),
                heartbeat_interval: HEARTBEAT,
                missed_heartbeats: MISSED_HEARTBEATS,
                queue: apalis_sqlite::Config::default().queue(QUEUE).queue,
                ..apalis_sqlite::Config::default()
            };
            Ok(Queue::Sqlite(SqliteStorage::new(&pool).with_config(config)))
        } else {
            let pool = sqlx::PgPool::connect(url).await?;
            let mut migrator = PostgresStorage::<()>::migrations();
            migrator.dangerous_set_table_name("_apalis_migrations");
            migrate(&migrator, &pool).await?;
            let config = apalis_postgres::Config {
                batch_size: steps_at_once(),
                heartbeat_interval: HEARTBEAT,
                missed_heartbeats: MISSED_HEARTBEATS,
                queue: apalis_postgres::Config::default().queue(QUEUE).queue,
                ..apalis_postgres::Config::default()
            };
            Ok(Queue::Postgres(
                PostgresStorage::new(&pool).with_config(config),
            ))
        }
    }

    /// Enqueues a step. The key (execution, step, the minute it is due) turns a repeated push of
    /// a step within a minute into a no-op; a push due at another time is a new task (the answer
    /// to a callback, due now, beside the check due when its wait runs out; the sweep's), harmless
    /// since a step that has been taken is not run again.
    pub async fn push(&self, next: &Next) -> Result<(), Error> {
        let due = chrono::Utc::now().timestamp_millis() + next.delay.as_millis() as i64;
        let key = format!(
            "{}:{}:{}",
            next.task.execution,
            next.task.step,
            due / 60_000
        );
        let task = TaskBuilder::new(next.task.clone())
            .idempotency_key(key)
            .run_after(next.delay)
            .build();
        match self.clone() {
            Queue::Sqlite(mut storage) => storage.push_task(task).await.map_err(queue_error),
            Queue::Postgres(mut storage) => storage.push_task(task).await.map_err(queue_error),
        }
    }

    /// Makes sure no live process holds `name`: a worker restarted under its name (a systemd
    /// unit's, a StatefulSet pod's) waits out its predecessor's last heartbeat on SQLite (apalis
    /// refuses a name seen within a heartbeat), and on Postgres finds the name's advisory lock
    /// free (a live worker's connection holds it). A name a live worker holds is an error.
    async fn claim_name(&self, name: &str) -> Result<(), Error> {
        let taken = || {
            Error::Queue(format!(
                "a worker named {name:?} is running: give each worker its own --name"
            ))
        };
        match self {
            Queue::Sqlite(storage) => {
                let last_seen = || async {
                    sqlx::query_scalar::<_, i64>("SELECT last_seen FROM Workers WHERE id = ?1")
                        .bind(name)
                        .fetch_optional(storage.pool())
                        .await
                };
                let Some(seen) = last_seen().await? else {
                    return Ok(());
                };
                let age = chrono::Utc::now().timestamp() - seen;
                let heartbeat = HEARTBEAT.as_secs() as i64;
                if age <= heartbeat {
                    tokio::time::sleep(Duration::from_secs((heartbeat - age + 1) as u64)).await;
                    if last_seen().await? != Some(seen) {
                        return Err(taken());
                    }
                }
                Ok(())
            }
            Queue::Postgres(storage) => {
                let mut conn = storage.pool().acquire().await?;
                let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
                    .bind(name)
                    .fetch_one(&mut *conn)
                    .await?;
                if !free {
                    return Err(taken());
                }
                sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
                    .bind(name)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }
        }
    }

    /// Steps a process of this worker's name held when it died: taken again. Once the name is
    /// this process's ([`Self::claim_name`]), whatever is locked under it was its
    /// predecessor's; apalis would keep it (the restarted worker's heartbeat makes the name look
    /// alive), and only the stall sweep would free its execution, minutes later.
    async fn release_predecessors(&self, name: &str) -> Result<u64, Error> {
        let released = match self {
            Queue::Sqlite(storage) => sqlx::query(
                "UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL \
                 WHERE lock_by = ?1 AND status IN ('Running', 'Queued')",
            )
            .bind(name)
            .execute(storage.pool())
            .await?
            .rows_affected(),
            Queue::Postgres(storage) => sqlx::query(
                "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL \
                 WHERE lock_by = $1 AND status IN ('Running', 'Queued')",
            )
            .bind(name)
            .execute(storage.pool())
            .await?
            .rows_affected(),
        };
        if released > 0 {
            tracing::info!(
                worker = name,
                steps = released,
                "took back the steps a killed worker of this name held"
            );
        }
        Ok(released)
    }

    /// Deletes apalis's records of the deliveries that ended (done, killed, or failed for good)
    /// before `before`: the step's effects are in the execution's history, and without this
    /// the jobs table grows by a row per step for ever.
    pub async fn expire(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, Error> {
        let ended =
            "(status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))";
        Ok(match self {
            Queue::Sqlite(storage) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM Jobs WHERE {ended} AND done_at IS NOT NULL AND done_at < ?1"
            )))
            .bind(before.timestamp())
            .execute(storage.pool())
            .await?
            .rows_affected(),
            Queue::Postgres(storage) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM apalis.jobs WHERE {ended} AND done_at IS NOT NULL AND done_at < to_timestamp($1)"
            )))
            .bind(before.timestamp() as f64)
            .execute(storage.pool())
            .await?
            .rows_affected(),
        })
    }

    /// Runs a worker until `shutdown` resolves, with a sweep for stalled executions beside it
    /// (at start, then every [`SWEEP_EVERY`]).
    pub async fn work(
        self,
        engine: Engine,
        name: String,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        self.claim_name(&name).await?;
        self.release_predecessors(&name).await?;
        let state = Arc::new((engine.clone(), self.clone()));
        let sweeper = {
            let (engine, queue) = (engine, self.clone());
            tokio::spawn(async move {
                let mut first = true;
                loop {
                    if !std::mem::take(&mut first) {
                        tokio::time::sleep(SWEEP_EVERY).await;
                    }
                    match engine.sweep(STALL).await {
                        Ok(stalled) => {
                            for next in stalled {
                                if let Err(err) = queue.push(&next).await {
                                    warn!(execution = %next.task.execution, error = %err, "could not re-enqueue a stalled step");
                                }
                            }
                        }
                        Err(err) => warn!(error = %err, "sweep failed"),
                    }
                }
            })
        };
        // The worker lives as long as the process means it to: when apalis gives up on the
        // database (a restart of Postgres resets every connection, and its poller stops), it is
        // started again under the same name after a backoff, rather than taking the process down.
        let shutdown = futures::FutureExt::shared(shutdown);
        let mut backoff = Duration::from_secs(1);
        let result = loop {
            let signal = {
                let shutdown = shutdown.clone();
                async move {
                    shutdown.await;
                    Ok::<(), std::io::Error>(())
                }
            };
            let run = match self.clone() {
                Queue::Sqlite(storage) => {
                    WorkerBuilder::new(name.as_str())
                        .backend(storage.poll_with_interval(POLL))
                        .data(state.clone())
                        .concurrency(steps_at_once())
                        .build(step)
                        .run_until(signal)
                        .await
                }
                Queue::Postgres(storage) => {
                    WorkerBuilder::new(name.as_str())
                        .backend(storage.poll_with_interval(POLL))
                        .data(state.clone())
                        .concurrency(steps_at_once())
                        .build(step)
                        .run_until(signal)
                        .await
                }
            };
            if shutdown.peek().is_some() {
                break run;
            }
            match &run {
                Ok(()) => warn!(worker = %name, "the worker stopped; starting it again"),
                Err(err) => {
                    warn!(worker = %name, error = %err, retry_in = ?backoff, "the worker lost the queue; starting it again")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.clone() => break Ok(()),
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        };
        sweeper.abort();
        result.map_err(queue_error)
    }
}

impl ops::workflows::Dispatch for Queue {
    fn push<'a>(
        &'a self,
        next: &'a Next,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>> {
        Box::pin(Queue::push(self, next))
    }

    fn expire<'a>(
        &'a self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<u64, Error>> + Send + 'a>> {
        Box::pin(Queue::expire(self, before))
    }
}

/// How early a delivery may come and be waited out in the handler rather than pushed again.
const EARLY: Duration = Duration::from_secs(2);

/// Steps one delivery may run back to back before handing the execution back to the queue.
const MAX_INLINE_STEPS: usize = 1000;

/// The apalis handler, a thin adapter over the engine: runs the step, and the steps after it
/// while none has to wait (each is committed before the next runs, so this is as durable as
/// enqueueing each one); a step that waits, or the thousandth, goes back to the queue. Of the
/// steps a step makes ready, the execution's own next one (or the only one: the next child of a
/// Map, or the parent a last child wakes) runs here; the others (the children a Parallel or
/// Map starts) go to the queue, for every worker to take.
async fn step(task: StepTask, state: Data<Arc<(Engine, Queue)>>) -> Result<(), BoxDynError> {
    let (engine, queue) = state.as_ref();
    let mut current = task;
    for _ in 0..MAX_INLINE_STEPS {
        let steps = match engine.advance(&current).await {
            Ok(steps) => steps,
            Err(err) => {
                warn!(execution = %current.execution, step = current.step, error = %err, "step failed; the sweep will retry it");
                return Ok(());
            }
        };
        let own = steps
            .iter()
            .position(|n| n.delay.is_zero() && n.task.execution == current.execution)
            .or_else(|| {
                let ready: Vec<usize> = (0..steps.len())
                    .filter(|i| steps[*i].delay.is_zero())
                    .collect();
                (ready.len() == 1).then(|| ready[0])
            });
        let mut here = None;
        for (i, next) in steps.into_iter().enumerate() {
            if Some(i) == own {
                here = Some(next.task);
            } else if next.task == current && next.delay <= EARLY {
                // Delivered a moment early (the queue keeps due times to the second): wait
                // here. A push of the same step due at the same time would be taken for this
                // very task (same idempotency key) and dropped.
                tokio::time::sleep(next.delay + Duration::from_millis(5)).await;
                here = Some(next.task);
            } else {
                queue
                    .push(&next)
                    .await
                    .map_err(|e| Box::new(e) as BoxDynError)?;
            }
        }
        match here {
            Some(task) => current = task,
            None => {
                info!(execution = %current.execution, step = current.step, "execution step done");
                return Ok(());
            }
        }
    }
    let next = Next {
        task: current,
        delay: Duration::ZERO,
    };
    queue
        .push(&next)
        .await
        .map_err(|e| Box::new(e) as BoxDynError)
}
