//! `sluice-bench orchestrator`: a workflow of 40 sequential `sluice:echo` Task states, run as a
//! durable execution through the queue and a worker, on SQLite and on Postgres, and (given its
//! Python) Prefect 3 running 40 sequential trivial tasks, in the same run (latency); then 1,000
//! executions of 10 Pass and Task states started at once, on SQLite with one worker and on
//! Postgres with two (throughput: durable transitions a second, each committed).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use ops::Ops;
use scheduler::config::Config;
use scheduler::orchestrator::engine::Engine;
use scheduler::orchestrator::queue::Queue;
use scheduler::orchestrator::store;
use scheduler::output::{Report, table};

use crate::BenchOrchestratorArgs;

const STEPS: usize = 40;

fn chain() -> Value {
    let mut states = serde_json::Map::new();
    for i in 0..STEPS {
        let mut state = json!({"Type": "Task", "Resource": "sluice:echo"});
        if i + 1 == STEPS {
            state["End"] = json!(true);
        } else {
            state["Next"] = json!(format!("Echo{}", i + 1));
        }
        states.insert(format!("Echo{i}"), state);
    }
    json!({"StartAt": "Echo0", "States": states})
}

/// The operations, the engine and the queue on the database at `url`, with `definition` stored
/// as the workflow `name`.
async fn setup(url: &str, name: &str, definition: &Value) -> anyhow::Result<(Ops, Engine, Queue)> {
    let config = Config {
        database: url.to_owned(),
        lake: "memory://".into(),
        ..Config::default()
    };
    let ops = Ops::new(config.ops_settings());
    let engine =
        scheduler::tasks::Resources::engine(ops.clone(), ops.catalog().await?.pool().clone());
    store::put_workflow(&engine.pool, name, definition).await?;
    let queue = Queue::open(url).await?;
    Ok((ops, engine, queue))
}

/// Ten states, Pass and `sluice:echo` Task in turn.
fn wide() -> Value {
    let mut states = serde_json::Map::new();
    for i in 0..WIDE_STATES {
        let mut state = if i % 2 == 0 {
            json!({"Type": "Pass", "Parameters": {"i": i, "input.$": "$"}})
        } else {
            json!({"Type": "Task", "Resource": "sluice:echo", "Parameters": {"i": i, "n.$": "$.input.n"}})
        };
        if i + 1 == WIDE_STATES {
            state["End"] = json!(true);
        } else {
            state["Next"] = json!(format!("S{}", i + 1));
        }
        states.insert(format!("S{i}"), state);
    }
    json!({"StartAt": "S0", "States": states})
}

const WIDE_STATES: usize = 10;

/// Seconds for `executions` executions of [`wide`], started at once, to finish with `workers`
/// workers on the database at `url`.
#[allow(
    clippy::print_stderr,
    reason = "the person running the benchmark is told of an aborted worker"
)]
async fn throughput(url: &str, executions: usize, workers: usize) -> anyhow::Result<f64> {
    let (ops, engine, queue) = setup(url, "wide", &wide()).await?;
    let mut stops = Vec::new();
    let mut running = Vec::new();
    for w in 0..workers {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        running.push(tokio::spawn(queue.clone().work(
            engine.clone(),
            format!("bench-worker-{w}"),
            async move {
                let _ = stopped.await;
            },
        )));
    }
    let started = Instant::now();
    for n in 0..executions {
        let (_, first) = engine.start("wide", json!({"n": n}), None).await?;
        queue.push(&first.expect("a new execution")).await?;
    }
    loop {
        let (done, failed): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE status = 'SUCCEEDED'), COUNT(*) FILTER (WHERE status NOT IN ('RUNNING', 'SUCCEEDED')) \
             FROM executions WHERE workflow = 'wide'",
        )
        .fetch_one(&engine.pool)
        .await?;
        anyhow::ensure!(
            failed == 0,
            "{failed} throughput executions did not succeed"
        );
        if done as usize >= executions {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    for stop in stops {
        let _ = stop.send(());
    }
    // The figure is taken; a worker that does not stop within a few seconds is aborted (seen
    // once on SQLite after 1,000 executions: tasks left `Running` in apalis's table).
    for worker in running {
        let abort = worker.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), worker)
            .await
            .is_err()
        {
            eprintln!("a throughput worker did not stop within 5 s; aborted");
            abort.abort();
        }
    }
    ops.close().await;
    Ok(seconds)
}

/// A scratch Postgres database on the server at `admin`: its URL; dropped by [`drop_database`].
async fn scratch_database(admin: &str) -> anyhow::Result<(sqlx::PgConnection, String, String)> {
    let name = format!("sluice_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin_conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
        .await
        .with_context(|| format!("cannot reach Postgres at {admin}"))?;
    sqlx::Executor::execute(
        &mut admin_conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await?;
    let url = format!(
        "{}/{name}",
        admin.rsplit_once('/').map_or(admin, |(server, _)| server)
    );
    Ok((admin_conn, name, url))
}

async fn drop_database(admin_conn: &mut sqlx::PgConnection, name: &str) {
    let _ = sqlx::Executor::execute(
        admin_conn,
        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
    )
    .await;
}

/// Best and median seconds of `runs` executions (after one warm-up) on the database at `url`.
async fn measure(url: &str, runs: u32) -> anyhow::Result<(f64, f64)> {
    let (ops, engine, queue) = setup(url, "chain", &chain()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(queue.clone().work(
        engine.clone(),
        "bench-worker".into(),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut times = Vec::new();
    for run in 0..=runs {
        let started = Instant::now();
        let (execution, first) = engine.start("chain", json!({"i": 0}), None).await?;
        queue.push(&first.expect("a new execution")).await?;
        loop {
            let current = store::execution(&engine.pool, &execution.id).await?;
            match current.status.as_str() {
                "RUNNING" => tokio::time::sleep(Duration::from_millis(2)).await,
                "SUCCEEDED" => break,
                other => anyhow::bail!("the benchmark execution ended {other}"),
            }
        }
        if run > 0 {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    let _ = stop.send(());
    worker.await??;
    ops.close().await;
    times.sort_by(f64::total_cmp);
    Ok((times[0], times[times.len() / 2]))
}

fn prefect(python: &std::path::Path, script: &std::path::Path) -> anyhow::Result<f64> {
    let output = std::process::Command::new(python)
        .arg(script)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "prefect failed: {}",
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    text.lines()
        .find_map(|l| {
            l.strip_prefix("prefect 40 sequential tasks: ")
                .and_then(|r| r.split(' ').next())
                .and_then(|s| s.parse().ok())
        })
        .with_context(|| format!("unexpected prefect output: {text}"))
}

pub async fn run(args: &BenchOrchestratorArgs) -> anyhow::Result<Report> {
    let scratch = tempfile::tempdir()?;
    let sqlite = measure(
        &format!("sqlite://{}/bench.db", scratch.path().display()),
        args.runs,
    )
    .await?;
    let (mut admin_conn, name, url) = scratch_database(&args.postgres).await?;
    let postgres = measure(&url, args.runs).await;
    drop_database(&mut admin_conn, &name).await;
    let postgres = postgres?;
    // Throughput: fresh databases, so the latency runs' rows do not weigh on it.
    let sqlite_wide = throughput(
        &format!("sqlite://{}/wide.db", scratch.path().display()),
        args.executions,
        1,
    )
    .await?;
    let (mut admin_conn, name, url) = scratch_database(&args.postgres).await?;
    let postgres_wide = throughput(&url, args.executions, args.workers).await;
    drop_database(&mut admin_conn, &name).await;
    let postgres_wide = postgres_wide?;
    let transitions = (args.executions * WIDE_STATES) as f64;
    let prefect = match (&args.prefect_python, &args.prefect_script) {
        (Some(python), Some(script)) => Some(prefect(python, script)?),
        _ => None,
    };
    let row = |label: &str, (best, median): (f64, f64), target: f64| {
        [
            label.to_owned(),
            format!("{best:.3}"),
            format!("{median:.3}"),
            format!("{:.1}", best / STEPS as f64 * 1000.0),
            format!("{target}"),
            if best <= target {
                "met".to_owned()
            } else {
                "MISSED".to_owned()
            },
            prefect.map_or_else(|| "-".to_owned(), |p| format!("{:.1}x", p / median)),
        ]
    };
    let mut rows = vec![
        row("sluice on SQLite", sqlite, 0.4),
        row("sluice on Postgres", postgres, 0.8),
    ];
    if let Some(p) = prefect {
        rows.push([
            "Prefect 3 (local, in-process)".into(),
            format!("{p:.3}"),
            "-".into(),
            format!("{:.1}", p / STEPS as f64 * 1000.0),
            "-".into(),
            "-".into(),
            "1.0x".into(),
        ]);
    }
    let rate = |seconds: f64| transitions / seconds;
    let throughput_rows = [
        [
            "sluice on SQLite, 1 worker".to_owned(),
            format!("{sqlite_wide:.2}"),
            format!("{:.0}", rate(sqlite_wide)),
            "-".to_owned(),
            "-".to_owned(),
        ],
        [
            format!("sluice on Postgres, {} workers", args.workers),
            format!("{postgres_wide:.2}"),
            format!("{:.0}", rate(postgres_wide)),
            "1000".to_owned(),
            if rate(postgres_wide) >= 1000.0 {
                "met".to_owned()
            } else {
                "MISSED".to_owned()
            },
        ],
    ];
    let text = format!(
        "{STEPS} sequential sluice:echo Task states, durable (each transition committed), through the queue and a worker; best and median of {} runs\n{}\n\n{} executions of {WIDE_STATES} Pass and Task states started at once ({transitions} durable transitions)\n{}",
        args.runs,
        table(
            [
                "engine",
                "best s",
                "median s",
                "ms per transition",
                "target s",
                "",
                "Prefect s / median s"
            ],
            rows
        ),
        args.executions,
        table(
            ["engine", "seconds", "transitions/s", "target /s", ""],
            throughput_rows
        )
    );
    Ok(Report::new(
        json!({"steps": STEPS, "sqlite": {"best_s": sqlite.0, "median_s": sqlite.1}, "postgres": {"best_s": postgres.0, "median_s": postgres.1},
               "prefect_s": prefect, "targets": {"sqlite_s": 0.4, "postgres_s": 0.8, "vs_prefect": 10, "postgres_transitions_per_s": 1000},
               "throughput": {"executions": args.executions, "states": WIDE_STATES, "workers_postgres": args.workers,
                              "sqlite_s": sqlite_wide, "sqlite_transitions_per_s": rate(sqlite_wide),
                              "postgres_s": postgres_wide, "postgres_transitions_per_s": rate(postgres_wide)}}),
        text,
    ))
}
