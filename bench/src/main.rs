//! `sluice-bench`: sluice measured against its targets and its peers, in the same run. Not part
//! of the product's binary: the scripts under `scripts/bench-*.sh` build and run it, and set up
//! the peers (GluonTS, Prefect, DuckDB and polars) from `../shared/bench`.

mod console;
mod crawl;
mod forecast;
mod forecast_blend;
mod forecast_peers;
mod forecast_sluice;
mod ingest;
mod ingest_mqtt;
mod orchestrator;
mod overload;
mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use scheduler::cli::OutputFormat;
use scheduler::output::Report;

/// sluice's benchmarks, each against its targets and its peers in the same run.
#[derive(Debug, Parser)]
#[command(name = "sluice-bench", version)]
struct Cli {
    /// How reports are printed.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Crawl a landing directory twice (first crawl, then nothing new) and print the timings.
    Crawl(BenchCrawlArgs),
    /// 40 sequential echo tasks as a durable execution on SQLite and Postgres (and Prefect), and
    /// the throughput of 1,000 executions of 10 states started at once.
    Orchestrator(BenchOrchestratorArgs),
    /// DeepAR on the forecasting benchmark's data, seed by seed, against GluonTS in the same run.
    Forecast(BenchForecastArgs),
    /// The prediction endpoint under load, against GluonTS behind a Python HTTP server.
    Serve(BenchServeArgs),
    /// The prediction endpoint at twice its capacity (the excess refused with 503 and
    /// Retry-After, no timeout, memory flat), then its champion moved back and forth under load
    /// with no failed request (`scripts/drill.sh overload`).
    Overload(BenchOverloadArgs),
    /// Acknowledged records per second through the Firehose API of `sluice server` and through
    /// its MQTT bridge, and the latency of acknowledgements (fsync'd), from several clients.
    Ingest(BenchIngestArgs),
    /// The console's pages with 100,000 executions and 1,000 tables in the catalog: p50 and
    /// p99 per page against the 100 ms target.
    Console(BenchConsoleArgs),
}

#[derive(Debug, Args)]
pub struct BenchConsoleArgs {
    /// Executions in the catalog.
    #[arg(long, default_value_t = 100_000)]
    pub executions: usize,
    /// Sequential requests per page (after 10 to warm up).
    #[arg(long, default_value_t = 300)]
    pub samples: usize,
    /// A Postgres database to seed instead of a new SQLite file (it must be empty).
    #[arg(long)]
    pub postgres: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Clients sending batches of 500 records at once.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Seconds of each phase (bearer tokens, SigV4, MQTT).
    #[arg(long, default_value_t = 15.0)]
    pub seconds: f64,
    /// MQTT publishers (to the broker on 127.0.0.1:1883).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// The bridge's connections to the broker.
    #[arg(long, default_value_t = 4)]
    pub mqtt_connections: usize,
}

#[derive(Debug, Args)]
pub struct BenchOrchestratorArgs {
    /// Timed executions per database (after a warm-up).
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// Postgres server (a database is created there and dropped after).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres: String,
    /// Python with Prefect 3, to run the peer in the same run (scripts/bench-orchestrator.sh sets it up).
    #[arg(long, requires = "prefect_script")]
    pub prefect_python: Option<PathBuf>,
    /// The peer's script (../shared/bench/orchestrator/prefect_chain.py).
    #[arg(long)]
    pub prefect_script: Option<PathBuf>,
    /// Executions started at once for the throughput figure.
    #[arg(long, default_value_t = 1000)]
    pub executions: usize,
    /// Workers sharing them on Postgres (SQLite has one).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

#[derive(Debug, Args)]
pub struct BenchCrawlArgs {
    /// Landing directory (e.g. the one ../shared/bench/etl/gen_landing.py writes).
    #[arg(long)]
    pub source: PathBuf,
    /// Repetitions; the best of each is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
}

#[derive(Debug, Clone, Args)]
pub struct BenchForecastArgs {
    /// The benchmark's data: one folder per dataset with train.jsonl, test.jsonl, metadata.json.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Datasets to run.
    #[arg(long, value_delimiter = ',', default_value = "pedestrian,aus_retail")]
    pub datasets: Vec<String>,
    /// Seeds 0..N for each engine.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Epochs (the peer's fixed setting is 20).
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Python with GluonTS, to run the peer in the same run (scripts/bench-forecast.sh sets it up).
    #[arg(long, requires = "gluonts_script")]
    pub gluonts_python: Option<PathBuf>,
    /// The peer's script (../shared/bench/forecast/run_gluonts.py).
    #[arg(long)]
    pub gluonts_script: Option<PathBuf>,
    /// Torch thread counts to run GluonTS with; its best is the reference.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub gluonts_threads: Vec<u32>,
    /// Python with statsforecast, to run its classical models in the same run
    /// (scripts/bench-forecast.sh sets it up).
    #[arg(long, requires = "statsforecast_script")]
    pub statsforecast_python: Option<PathBuf>,
    /// bench/peers/statsforecast_peer.py.
    #[arg(long)]
    pub statsforecast_script: Option<PathBuf>,
    /// Wall-clock seconds each statsforecast model may take on a dataset before it is
    /// reported as not finished (0: no limit).
    #[arg(long, default_value_t = 1800)]
    pub statsforecast_time_limit: u64,
    /// Rolling validation windows the contest holds out of each training series (default:
    /// as the nightly holds out, `models::deepar::evaluate::validation_windows`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub validation_windows: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BenchOverloadArgs {
    /// Hourly series (train.jsonl): ../shared/bench/forecast/data/pedestrian.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Seconds at twice the capacity.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Seconds of closed-loop load that measure the capacity.
    #[arg(long, default_value_t = 10.0)]
    pub capacity_seconds: f64,
    /// Closed-loop clients that measure the capacity.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Champion moves under load (one a second).
    #[arg(long, default_value_t = 20)]
    pub swaps: usize,
}

#[derive(Debug, Args)]
pub struct BenchServeArgs {
    /// Hourly series (train.jsonl): ../shared/bench/forecast/data/pedestrian.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Python with GluonTS, to measure the peer in the same run (scripts/bench-serve.sh sets it up).
    #[arg(long)]
    pub gluonts_python: Option<PathBuf>,
    /// Sequential requests for the latency percentiles.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Clients at once for the saturation phase.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Length of the saturation phase.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Hours of history each request sends.
    #[arg(long, default_value_t = 800)]
    pub history: usize,
    /// Training epochs of both models (10 batches each; latency does not depend on the fit).
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
}

/// The same allocator as `sluice` (see its `main.rs`): the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn run(cli: &Cli) -> anyhow::Result<String> {
    let report: Report = match &cli.command {
        Command::Crawl(args) => crawl::crawl(args).await?,
        Command::Orchestrator(args) => orchestrator::run(args).await?,
        Command::Forecast(args) => forecast::run(args).await?,
        Command::Serve(args) => serve::run(args).await?,
        Command::Overload(args) => overload::run(args).await?,
        Command::Ingest(args) => ingest::run(args).await?,
        Command::Console(args) => console::run(args).await?,
    };
    scheduler::render(&report, cli.output)
}

fn main() -> std::process::ExitCode {
    scheduler::pin_tensor_threads();
    jobs::install_tls();
    let cli = Cli::parse();
    scheduler::init_tracing(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    scheduler::finish(runtime.block_on(run(&cli)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
