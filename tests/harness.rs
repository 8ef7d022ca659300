//! The integration tests' shared harness: a fresh catalog database per test (a SQLite file in a
//! temporary directory, or a new database on the Postgres server), lakes, landed objects made by
//! hand, and the real `sluice` binary.
//!
//! Real components are required, never skipped: Postgres at `SLUICE_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`) and, for S3 tests, the S3-compatible
//! server `scripts/test.sh` starts (`SLUICE_TEST_S3_ENDPOINT`). A missing one fails the test
//! with a message that says how to provide it.

use std::io::Write;
use std::path::{Path, PathBuf};

use jobs::catalog::{Catalog, ConnectOptions};
use jobs::lake::{Lake, LakeKey};

/// The catalog backends every catalog test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty catalog database for one test.
pub struct TestDb {
    pub url: String,
    pub catalog: Catalog,
    /// Keeps the SQLite file alive for the test.
    _dir: Option<tempfile::TempDir>,
}

/// The Postgres server tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    /// A new database on the backend, migrated.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}/catalog.db", dir.path().display());
                let catalog = Catalog::connect(&url, &ConnectOptions::default())
                    .await
                    .expect("sqlite catalog");
                Self {
                    url,
                    catalog,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("sluice_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.unwrap_or_else(|err| {
                    panic!(
                        "Postgres is required for the catalog tests and is not reachable at {admin}: {err}. \
                         Start it (scripts/test.sh does) or set SLUICE_TEST_POSTGRES."
                    )
                });
                sqlx::Executor::execute(
                    &mut conn,
                    sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
                )
                .await
                .expect("create test database");
                let url = match admin.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("SLUICE_TEST_POSTGRES must end in /DATABASE: {admin}"),
                };
                let catalog = Catalog::connect(&url, &ConnectOptions::default())
                    .await
                    .expect("postgres catalog");
                Self {
                    url,
                    catalog,
                    _dir: None,
                }
            }
        }
    }
}

/// Writes an object into a lake.
pub async fn put(lake: &Lake, key: &str, body: impl Into<bytes::Bytes>) {
    lake.put(&LakeKey::parse(key).expect("valid key"), body.into())
        .await
        .expect("put object");
}

/// GZIP of some bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("in memory");
    encoder.finish().expect("in memory")
}

/// The `sluice` binary built beside this test binary (scripts/test.sh builds it first).
pub fn sluice_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let binary = profile_dir.join("sluice");
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build -p scheduler --bin sluice` (scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// Runs `sluice` with arguments in a directory; returns (exit success, stdout, stderr).
pub fn run_sluice(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(sluice_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run sluice");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl TestDb {
    /// The orchestrator's engine over this database, with an in-memory lake.
    pub fn engine(&self) -> scheduler::orchestrator::engine::Engine {
        self.engine_with(scheduler::config::Config {
            lake: "memory://".into(),
            ..scheduler::config::Config::default()
        })
    }

    /// The engine with `config`'s settings, its database this test's.
    pub fn engine_with(
        &self,
        config: scheduler::config::Config,
    ) -> scheduler::orchestrator::engine::Engine {
        let config = scheduler::config::Config {
            database: self.url.clone(),
            ..config
        };
        scheduler::tasks::Resources::engine(
            ops::Ops::with_catalog(config.ops_settings(), self.catalog.clone()),
            self.catalog.pool().clone(),
        )
    }
}

/// Runs an execution's steps to its end, sleeping through their delays (retries, waits), with
/// the steps of the children its Parallel and Map states start, in the order they are due.
pub async fn run_to_end(
    engine: &scheduler::orchestrator::engine::Engine,
    first: scheduler::orchestrator::engine::Next,
) {
    let mut due = vec![(std::time::Instant::now() + first.delay, first.task)];
    for _ in 0..10_000 {
        due.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        let Some((at, task)) = due.pop() else {
            return;
        };
        tokio::time::sleep_until(at.into()).await;
        for next in engine.advance(&task).await.expect("a step runs") {
            due.push((std::time::Instant::now() + next.delay, next.task));
        }
    }
    panic!("runaway execution");
}

/// The one step a step made ready, in tests of executions without Parallel or Map.
pub fn only(
    mut steps: Vec<scheduler::orchestrator::engine::Next>,
) -> Option<scheduler::orchestrator::engine::Next> {
    assert!(steps.len() <= 1, "one step at most: {steps:?}");
    steps.pop()
}

/// A `sluice` process, killed (SIGKILL) when dropped, whatever happens.
pub struct Process(pub std::process::Child);

impl Process {
    /// SIGKILL, and wait for it to be gone.
    pub fn kill(mut self) {
        self.0.kill().expect("kill sluice");
        self.0.wait().expect("reap sluice");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sluice` with JSON output, on the directory's configuration: (success, the parsed output or
/// null, stderr).
pub fn run_sluice_json(dir: &Path, args: &[&str]) -> (bool, serde_json::Value, String) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--output", "json"]);
    let (ok, stdout, stderr) = run_sluice(dir, &all);
    (
        ok,
        serde_json::from_str(&stdout).unwrap_or_default(),
        stderr,
    )
}

/// `sluice` on the directory's own embedded catalog (`db/sluice.db`) and lake (`lake/`), with
/// JSON output: (success, the parsed output or null, stderr).
pub fn sluice_json(dir: &Path, args: &[&str]) -> (bool, serde_json::Value, String) {
    let mut all = vec![
        "--database",
        "sqlite://db/sluice.db",
        "--lake",
        "file://lake",
    ];
    all.extend_from_slice(args);
    run_sluice_json(dir, &all)
}

/// Four hourly series (`meter-0` ... `meter-3`) of `hours` points with daily and weekly cycles,
/// noise, and a missing value (`"NaN"`) every 97 hours.
pub fn hourly_cycles(hours: usize) -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut state = 11u64;
    (0..4)
        .map(|i| {
            let level = 80.0 + 30.0 * i as f64;
            let target: Vec<serde_json::Value> = (0..hours)
                .map(|t| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let noise = ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
                    let day = (2.0 * std::f64::consts::PI * (t % 24) as f64 / 24.0).sin();
                    let weekend = if (t / 24) % 7 >= 5 { -0.3 } else { 0.1 };
                    let value = (level * (1.0 + 0.5 * day + weekend) + 8.0 * noise).round();
                    if t % 97 == 40 { json!("NaN") } else { json!(value) }
                })
                .collect();
            json!({"start": "2024-01-01 00:00:00", "target": target, "item_id": format!("meter-{i}")})
        })
        .collect()
}

/// Writes one JSON value per line.
pub fn write_lines(path: &Path, lines: &[serde_json::Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).expect("write JSON lines");
}

/// The `sluice worker` among `names` that holds a running step now, if any (Postgres).
pub async fn worker_holding_a_step(pool: &sqlx::PgPool, names: &[&str]) -> Option<String> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    sqlx::query_scalar(
        "SELECT lock_by FROM apalis.jobs WHERE status = 'Running' AND lock_by = ANY($1) LIMIT 1",
    )
    .bind(names)
    .fetch_optional(pool)
    .await
    .expect("read the queue")
}

pub fn spawn(dir: &Path, args: &[&str]) -> Process {
    Process(
        std::process::Command::new(sluice_binary())
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start sluice"),
    )
}

/// A TCP port free on loopback now.
/// An HTTP client for the tests, after the process's TLS provider is installed (as the binary
/// does first thing).
pub fn http() -> reqwest::Client {
    jobs::install_tls();
    reqwest::Client::new()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("a local address")
        .port()
}

/// Polls `sluice workflow describe` until the execution leaves RUNNING or `timeout` passes;
/// returns its last status.
pub fn wait_for_execution(dir: &Path, id: &str, timeout: std::time::Duration) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (_, stdout, _) = run_sluice(dir, &["workflow", "describe", id, "--output", "json"]);
        let status = serde_json::from_str::<serde_json::Value>(&stdout).map_or_else(
            |_| String::new(),
            |v| v["status"].as_str().unwrap_or_default().to_owned(),
        );
        if status != "RUNNING" || std::time::Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Defines, for each named `async fn case(backend: Backend)`, a test on SQLite and one on Postgres.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Postgres).await })*
        }
    };
}

/// Every record (one JSON value per line) of every object under `prefix` in the file lake at
/// `dir/lake`, gunzipped when the name ends in `.gz`. A put still staged by the file store
/// (`<key>#<n>`, renamed when complete) is not an object yet and is skipped.
pub fn lake_records(dir: &Path, prefix: &str) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    let mut stack = vec![dir.join("lake").join(prefix)];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.to_string_lossy().contains('#') {
                continue;
            }
            let bytes = std::fs::read(&path).expect("an object");
            let mut text = String::new();
            if path.extension().is_some_and(|e| e == "gz") {
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(&bytes[..]),
                    &mut text,
                )
                .expect("gzip");
            } else {
                text = String::from_utf8(bytes).expect("UTF-8");
            }
            records.extend(
                text.lines()
                    .map(|line| serde_json::from_str(line).expect("a JSON line")),
            );
        }
    }
    records
}

/// Starts `sluice` with `args` (a server listening on `port`) and waits until its `/health`
/// answers.
pub async fn spawn_server(dir: &Path, port: u16, args: &[&str]) -> Process {
    let server = spawn(dir, args);
    let client = http();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while client
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "sluice {args:?} never answered on port {port}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server
}
