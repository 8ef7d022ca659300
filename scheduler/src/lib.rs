//! The `sluice` binary's library: CLI definition, configuration, and one function per command.
//!
//! The binary (`main.rs`) parses the command line, loads the configuration once, initialises
//! tracing, calls [`commands::execute`] and prints the [`output::Report`]. Tests call the same
//! functions in-process. [`orchestrator`] runs workflows ([`asl`]), [`api`] is their HTTP API and
//! [`serving`] the prediction endpoints.

pub mod api;
pub mod chart;
pub use ::asl;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod events_api;
pub mod http_error;
pub mod ingest;
pub mod orchestrator;
pub mod output;
pub mod process;
pub mod serving;
pub mod tasks;

use cli::{Cli, OutputFormat};
use config::{Config, Overrides};

/// Loads the configuration the CLI names.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Config::load(
        cli.config.as_deref(),
        &Overrides {
            database: cli.database.clone(),
            lake: cli.lake.clone(),
            curated_lake: cli.curated_lake.clone(),
        },
    )
}

/// Runs a parsed command line and renders its report.
pub async fn run(cli: &Cli) -> anyhow::Result<String> {
    let context = commands::Context::new(load_config(cli)?);
    let report = commands::execute(cli, &context).await;
    context.ops.close().await;
    render(&report?, cli.output)
}

/// A report as the format asks.
pub fn render(report: &output::Report, format: OutputFormat) -> anyhow::Result<String> {
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(&report.json)?,
        OutputFormat::Table => report.text.clone(),
    })
}

/// candle sizes its CPU parallelism from `RAYON_NUM_THREADS` on every matrix product and,
/// without it, parses /proc/cpuinfo each time: a third of DeepAR's training time. DeepAR's
/// products are small, one thread is fastest for them (two made a one-series forecast 70%
/// slower here), and parallelism comes from running several jobs or requests at once. Call it
/// first in `main`, before any thread exists.
#[allow(unsafe_code)]
pub fn pin_tensor_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called first in `main`, before the runtime or any other thread exists, so
        // nothing reads the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

/// Logs to stderr: warnings, or more with `-v` (`RUST_LOG` overrides).
pub fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info,sluice=debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Ends a command: its text on stdout, or one line naming what failed on stderr.
pub fn finish(outcome: anyhow::Result<String>) -> std::process::ExitCode {
    use std::io::Write;
    match outcome {
        Ok(text) => {
            // A closed pipe (`sluice ... | head`) is not a failure of the command.
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            let message = format!("{err:#}").replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
