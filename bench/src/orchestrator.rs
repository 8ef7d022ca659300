//! `sluice-bench orchestrator`: a workflow of 40 sequential `sluice:echo` Task states, run as a
//! durable execution through the queue and a worker, on SQLite and on Postgres, and (given its
//! Python) Prefect 3 running 40 sequential trivial tasks, in the same run.

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

/// Best and median seconds of `runs` executions (after one warm-up) on the database at `url`.
async fn measure(url: &str, runs: u32) -> anyhow::Result<(f64, f64)> {
    let config = Config {
        database: url.to_owned(),
        lake: "memory://".into(),
        ..Config::default()
    };
    let ops = Ops::new(config.ops_settings());
    let engine = Engine::new(ops.clone(), ops.catalog().await?.pool().clone());
    store::put_workflow(&engine.pool, "chain", &chain()).await?;
    let queue = Queue::open(url).await?;
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
    let admin = args.postgres.clone();
    let name = format!("sluice_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin_conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .with_context(|| format!("cannot reach Postgres at {admin}"))?;
    sqlx::Executor::execute(
        &mut admin_conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await?;
    let url = format!(
        "{}/{name}",
        admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(server, _)| server)
    );
    let postgres = measure(&url, args.runs).await;
    let _ = sqlx::Executor::execute(
        &mut admin_conn,
        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
    )
    .await;
    let postgres = postgres?;
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
    let text = format!(
        "{STEPS} sequential sluice:echo Task states, durable (each transition committed), through the queue and a worker; best and median of {} runs\n{}",
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
        )
    );
    Ok(Report::new(
        json!({"steps": STEPS, "sqlite": {"best_s": sqlite.0, "median_s": sqlite.1}, "postgres": {"best_s": postgres.0, "median_s": postgres.1},
               "prefect_s": prefect, "targets": {"sqlite_s": 0.4, "postgres_s": 0.8, "vs_prefect": 10}}),
        text,
    ))
}
