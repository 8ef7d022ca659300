//! `sluice-bench console`: the console's page budget. A catalog with 100,000 executions (statuses
//! and start times spread over 90 days, one of them with a history of 500 events) and 1,000
//! tables, the console served on loopback by the same router `sluice server` mounts, a logged-in
//! session, and sequential requests to each page: the executions list (first page, filtered by
//! status, by workflow and date, and a page 200 deep) and the 500-event execution's page.
//! Prints p50, p99 and max per page against the target, 100 ms at p99.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use ops::Ops;
use ops::workflows::Workflows;
use scheduler::config::Config;
use scheduler::orchestrator::queue::Queue;
use scheduler::orchestrator::store;
use scheduler::output::{Report, table};
use scheduler::serving::{Auth, AuthOptions};

use crate::BenchConsoleArgs;

const TARGET_P99_MS: f64 = 100.0;
const WORKFLOWS: [&str; 4] = [
    "nightly-retrain",
    "hourly-convert",
    "crawl-landing",
    "drift-check",
];

/// The nightly workflow's shape: twelve states, a Choice, a Parallel and a Catch.
fn definition() -> serde_json::Value {
    json!({"StartAt": "Crawl", "States": {
        "Crawl": {"Type": "Pass", "Next": "Convert"},
        "Convert": {"Type": "Pass", "Next": "Enough", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Notify"}]},
        "Enough": {"Type": "Choice", "Choices": [{"Variable": "$.rows", "NumericGreaterThan": 0, "Next": "Prepare"}], "Default": "Skip"},
        "Prepare": {"Type": "Parallel", "Next": "Train", "Branches": [
            {"StartAt": "Dataset", "States": {"Dataset": {"Type": "Pass", "End": true}}},
            {"StartAt": "Drift", "States": {"Drift": {"Type": "Pass", "End": true}}}]},
        "Train": {"Type": "Pass", "Next": "Backtest"},
        "Backtest": {"Type": "Pass", "Next": "Publish"},
        "Publish": {"Type": "Pass", "Next": "Forecast"},
        "Forecast": {"Type": "Pass", "End": true},
        "Skip": {"Type": "Succeed"},
        "Notify": {"Type": "Pass", "Next": "Failed"},
        "Failed": {"Type": "Fail", "Error": "Sluice.ConvertFailed"}}})
}

/// 100,000 executions, 500 events for one of them, 1,000 tables; returns that execution's id.
async fn seed(pool: &sqlx::AnyPool, executions: usize) -> anyhow::Result<String> {
    for name in WORKFLOWS {
        store::put_workflow(pool, name, &definition()).await?;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let span = 90 * 86_400_000_i64;
    let statuses = [
        "SUCCEEDED",
        "SUCCEEDED",
        "SUCCEEDED",
        "FAILED",
        "ABORTED",
        "RUNNING",
    ];
    let mut tx = pool.begin().await?;
    for chunk in (0..executions).collect::<Vec<_>>().chunks(500) {
        let mut sql = String::from(
            "INSERT INTO executions (id, workflow, name, version, status, input, output, error, cause, state, \
             state_input, variables, entered_at, step, started_at, stopped_at, updated_at) VALUES ",
        );
        for (n, i) in chunk.iter().enumerate() {
            let started = now - span + (*i as i64) * span / executions as i64;
            let status = statuses[i % statuses.len()];
            let stopped = if status == "RUNNING" {
                "NULL".to_owned()
            } else {
                (started + 95_000).to_string()
            };
            let (error, cause) = if status == "FAILED" {
                ("'Sluice.ConvertFailed'", "'3 objects could not be read'")
            } else {
                ("NULL", "NULL")
            };
            if n > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('{}', '{}', 'run-{i:06}', 1, '{status}', '{{\"day\": {i}}}', '{{\"rows\": 1200}}', {error}, {cause}, \
                 'Forecast', '{{}}', '{{}}', {started}, 9, {started}, {stopped}, {started})",
                uuid::Uuid::new_v4(),
                WORKFLOWS[i % WORKFLOWS.len()],
            ));
        }
        // Audited: generated numbers, uuids and fixed words only.
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?;
    }
    let long = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO executions (id, workflow, name, version, status, input, state, state_input, variables, \
         entered_at, step, started_at, stopped_at, updated_at) \
         VALUES ($1, 'nightly-retrain', 'long-history', 1, 'SUCCEEDED', '{}', 'Forecast', '{}', '{}', $2, 500, $2, $3, $3)",
    )
    .bind(&long)
    .bind(now)
    .bind(now + 500_000)
    .execute(&mut *tx)
    .await?;
    let states = [
        "Crawl", "Convert", "Train", "Backtest", "Publish", "Forecast",
    ];
    for seq in 0..500_i64 {
        let state = states[seq as usize % states.len()];
        let (kind, details) = if seq % 2 == 0 {
            (
                "TaskStateEntered",
                json!({"input": {"rows": seq, "keys": (0..20).map(|k| format!("landing/2026/12/05/{k:02}/a.gz")).collect::<Vec<_>>()}}),
            )
        } else {
            (
                "TaskStateExited",
                json!({"output": {"rows": seq, "written": seq * 10}}),
            )
        };
        sqlx::query(
            "INSERT INTO execution_events (execution_id, seq, kind, state, details, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&long)
        .bind(seq)
        .bind(kind)
        .bind(state)
        .bind(details.to_string())
        .bind(now + seq * 1000)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("INSERT INTO catalog_databases (name, created_at) VALUES ('bench', $1) ON CONFLICT DO NOTHING")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    for t in 0..1000 {
        sqlx::query(
            "INSERT INTO catalog_tables (catalog_db, name, location, kind, format, compression, schema_policy, \
             current_version, partition_keys, properties, created_at, updated_at) \
             VALUES ('bench', $1, $2, 'data', 'json', 'gzip', 'update', 1, '[]', '{}', $3, $3)",
        )
        .bind(format!("table_{t:04}"))
        .bind(format!("landing/table_{t:04}/"))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(long)
}

/// p50, p99 and max of `samples` sequential GETs of `url` (ms).
async fn measure(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    samples: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + 10 {
        let started = Instant::now();
        let response = client.get(url).header("cookie", cookie).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        anyhow::ensure!(status.is_success(), "{url} answered {status}");
        anyhow::ensure!(
            body.len() > 1000,
            "{url} answered a page of {} bytes",
            body.len()
        );
        if i >= 10 {
            times.push(started.elapsed().as_secs_f64() * 1000.);
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 - 1.) * q).round() as usize];
    Ok((at(0.5), at(0.99), times[times.len() - 1]))
}

pub async fn run(args: &BenchConsoleArgs) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let url = match &args.postgres {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", dir.path().join("catalog.db").display()),
    };
    let config = Config {
        database: url.clone(),
        lake: "memory://".into(),
        ..Config::default()
    };
    let ops = Ops::new(config.ops_settings());
    let pool = ops.catalog().await?.pool().clone();
    let seeding = Instant::now();
    let long = seed(&pool, args.executions)
        .await
        .context("seeding the catalog")?;
    let seeded = seeding.elapsed();
    let engine = scheduler::tasks::Resources::engine(ops.clone(), pool.clone());
    let queue = Queue::open(&url).await?;
    let workflows = Workflows::new(engine, Arc::new(queue));
    let auth = Arc::new(Auth::new(
        pool.clone(),
        AuthOptions {
            enabled: true,
            anonymous_predict: false,
        },
    ));
    let console = Arc::new(scheduler::console::Console::new(
        Some(workflows),
        ops.clone(),
        auth,
        pool.clone(),
    ));
    let token = ops::serving::auth::create(&pool, ops::serving::auth::Scope::Admin, "bench")
        .await?
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, scheduler::console::router(console)).into_future());

    jobs::install_tls();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let login = client
        .post(format!("{base}/ui/login"))
        .form(&[("token", token.as_str())])
        .send()
        .await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .context("no session cookie")?
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();

    // The cursor of a page 200 deep, found by walking there.
    let mut deep = format!("{base}/ui/executions");
    for _ in 0..200 {
        let html = client
            .get(&deep)
            .header("cookie", &cookie)
            .send()
            .await?
            .text()
            .await?;
        let next = html
            .split("href=\"")
            .filter_map(|s| s.split('"').next())
            .find(|h| h.contains("after="))
            .context("the list ran out of pages before 200")?
            .replace("&#38;", "&")
            .replace("&amp;", "&");
        deep = format!("{base}{next}");
    }
    let day = (chrono::Utc::now() - chrono::Duration::days(30)).format("%Y-%m-%d");
    let pages = [
        ("executions, first page", format!("{base}/ui/executions")),
        (
            "executions, status=failed",
            format!("{base}/ui/executions?status=failed"),
        ),
        (
            "executions, one workflow, one day",
            format!("{base}/ui/executions?workflow=drift-check&from={day}&to={day}"),
        ),
        ("executions, page 201", deep),
        (
            "execution with 500 events",
            format!("{base}/ui/executions/{long}"),
        ),
    ];
    let mut rows = Vec::new();
    let mut worst: f64 = 0.;
    for (what, url) in &pages {
        let (p50, p99, max) = measure(&client, url, &cookie, args.samples).await?;
        worst = worst.max(p99);
        rows.push([
            (*what).to_owned(),
            format!("{p50:.1}"),
            format!("{p99:.1}"),
            format!("{max:.1}"),
            format!("{:.2}", p99 / TARGET_P99_MS),
            if p99 <= TARGET_P99_MS { "yes" } else { "NO" }.to_owned(),
        ]);
    }
    let backend = if args.postgres.is_some() {
        "Postgres"
    } else {
        "SQLite"
    };
    let text = format!(
        "console page budget on {backend}: {} executions, 1,000 tables (seeded in {:.1} s), {} sequential requests per page\n{}",
        args.executions,
        seeded.as_secs_f64(),
        args.samples,
        table(
            [
                "page",
                "p50 ms",
                "p99 ms",
                "max ms",
                "p99 / 100 ms",
                "within"
            ],
            rows.iter().cloned()
        ),
    );
    Ok(Report::new(
        json!({"backend": backend, "executions": args.executions, "samples": args.samples,
               "pages": rows.iter().map(|r| json!({"page": r[0], "p50_ms": r[1], "p99_ms": r[2], "max_ms": r[3]})).collect::<Vec<_>>(),
               "worst_p99_ms": worst, "target_p99_ms": TARGET_P99_MS}),
        text,
    ))
}
