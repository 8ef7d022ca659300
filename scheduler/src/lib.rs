//! The `sluice` binary's library: CLI definition, configuration, and one function per command.
//!
//! The binary (`main.rs`) parses the command line, loads the configuration once, initialises
//! tracing, calls [`commands::execute`] and prints the [`output::Report`]. Tests call the same
//! functions in-process. [`orchestrator`] runs workflows ([`asl`]), [`api`] is their HTTP API and
//! [`serving`] the prediction endpoints.

pub mod api;
pub mod asl;
pub mod cli;
pub mod commands;
pub mod config;
pub mod orchestrator;
pub mod output;
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
    let report = commands::execute(cli, &context).await?;
    Ok(match cli.output {
        OutputFormat::Json => serde_json::to_string_pretty(&report.json)?,
        OutputFormat::Table => report.text,
    })
}
