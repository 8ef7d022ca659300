//! The arguments of the registry and serving commands: `models`, `endpoint`, `token`, `serve`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Model groups, or one group's versions.
    List(ModelsListArgs),
    /// One version: status, lineage, metrics, aliases.
    Show(ModelsVersionArgs),
    /// Blend the best DeepAR and the best classical candidate (trained with `--validation` on
    /// the same data) with the weight that scores best on their validation windows, when a mix
    /// beats both: the blend is one more candidate for `publish`.
    Blend(BlendArgs),
    /// Register a trained model directory and promote it to champion only if it beats the
    /// champion (on the same test windows) by the margin and beats seasonal naive.
    Publish(PublishArgs),
    /// Point an alias (default: champion) at a version.
    Promote(PromoteArgs),
    /// Undo an alias's last move.
    Rollback(RollbackArgs),
    /// Set a version's status (approved, rejected, archived).
    Status(StatusArgs),
    /// A group's history: registrations, statuses and every alias move.
    History(ModelsGroupArgs),
    /// Forecast every series of a file with a version (default: the champion) into the lake.
    BatchForecast(BatchForecastArgs),
}

#[derive(Debug, Args)]
pub struct BatchForecastArgs {
    #[arg(long)]
    pub group: String,
    /// Series (SageMaker JSON lines), each forecast past its end.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The version: an alias or a number.
    #[arg(long = "model", value_name = "VERSION", default_value = "champion")]
    pub target: String,
    #[arg(long, default_value_t = 100)]
    pub num_samples: usize,
    /// Quantile columns written (q10, q50, q90, ...).
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,0.9")]
    pub quantiles: Vec<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct ModelsListArgs {
    /// A group: list its versions.
    pub group: Option<String>,
}

#[derive(Debug, Args)]
pub struct ModelsGroupArgs {
    pub group: String,
}

#[derive(Debug, Args)]
pub struct ModelsVersionArgs {
    pub group: String,
    /// A version number (3 or v3) or an alias.
    #[arg(value_name = "VERSION")]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct BlendArgs {
    /// A candidate model directory trained with `--validation` (repeatable).
    #[arg(long, value_name = "DIR", required = true)]
    pub candidate: Vec<PathBuf>,
    /// The training series the candidates were trained on.
    #[arg(long, value_name = "FILE")]
    pub train: PathBuf,
    /// Where the blend's model directory is written.
    #[arg(long, value_name = "DIR")]
    pub model_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The model group.
    #[arg(long)]
    pub group: String,
    /// The trained model directory (`sluice train --model-dir`).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "candidate",
        conflicts_with = "candidate"
    )]
    pub model_dir: Option<PathBuf>,
    /// A candidate model directory trained with `--validation` (repeatable): the one with the
    /// lowest validation loss is published.
    #[arg(long, value_name = "DIR")]
    pub candidate: Vec<PathBuf>,
    /// Test series: the candidate and the champion are scored on the same windows.
    #[arg(long, value_name = "FILE")]
    pub test: PathBuf,
    /// Relative improvement over the champion required (0.02: 2 % lower mean_wQuantileLoss).
    #[arg(long, default_value_t = 0.0)]
    pub margin: f64,
    /// Seed of the backtests' sample paths.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Register a winner as pending instead of promoting it (`sluice models promote` later).
    #[arg(long)]
    pub hold: bool,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    pub group: String,
    /// The version (3 or v3).
    #[arg(value_name = "VERSION")]
    pub number: String,
    #[arg(long, default_value = "champion")]
    pub alias: String,
    /// Why (kept in the history).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    pub group: String,
    #[arg(long, default_value = "champion")]
    pub alias: String,
    /// Why (kept in the history).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub group: String,
    /// The version (3 or v3).
    #[arg(value_name = "VERSION")]
    pub number: String,
    #[arg(value_parser = ["pending", "approved", "rejected", "archived"])]
    pub status: String,
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Create or replace an endpoint: a model group served through weighted variants.
    Create(EndpointCreateArgs),
    /// The endpoints and what each variant serves now.
    List,
    /// Shift an endpoint's traffic to a version, with a bake time and automatic rollback.
    Deploy(DeployArgs),
    /// Deployments, newest first.
    Deployments(DeploymentsArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    pub endpoint: String,
    /// The version to deploy (3 or v3).
    #[arg(long = "model", value_name = "VERSION")]
    pub target: String,
    /// [default: canary]
    #[arg(long, value_parser = ["all-at-once", "canary", "linear"])]
    pub strategy: Option<String>,
    /// Canary: the share of the first step; linear: the share added each step [default: 10].
    #[arg(long)]
    pub percent: Option<u32>,
    /// How long each step watches the new version before the next [default: 300].
    #[arg(long)]
    pub bake_seconds: Option<f64>,
    /// Roll back when more than this share of the new version's answers are 5xx
    /// [default: 0.01].
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Roll back when the new version's p99 latency passes this [default: 1000].
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Answers needed before the figures are judged [default: 20].
    #[arg(long)]
    pub min_requests: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DeploymentsArgs {
    pub endpoint: Option<String>,
}

#[derive(Debug, Args)]
pub struct EndpointCreateArgs {
    pub name: String,
    #[arg(long)]
    pub group: String,
    /// NAME=TARGET[:WEIGHT], TARGET an alias or a version (repeat for A/B)
    /// [default: primary=champion:1].
    #[arg(long = "variant")]
    pub variants: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; its secret is printed once.
    Create(TokenCreateArgs),
    /// The tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// admin (everything), predict (the endpoints) or ingest (the Firehose API; also prints
    /// an access key id and a secret access key for AWS SDKs).
    #[arg(long, value_parser = ["admin", "predict", "ingest"])]
    pub scope: String,
    /// A name to recognise it by.
    #[arg(long, default_value = "")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: from config, serve.listen].
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Compare a dataset's recent window with its training window (and a table's schema changes).
    Run(DriftRunArgs),
    /// A stored report (the latest, of a subject when given).
    Show(DriftShowArgs),
    /// The latest reports.
    List,
}

#[derive(Debug, Args)]
pub struct DriftRunArgs {
    /// Training series (the reference window).
    #[arg(long, value_name = "FILE")]
    pub train: PathBuf,
    /// The same series, longer: their points past the training series' end are the recent window.
    #[arg(long, value_name = "FILE")]
    pub test: PathBuf,
    /// What the report is about (a model group, a table).
    #[arg(long, default_value = "dataset")]
    pub subject: String,
    /// A table whose schema changes are reported too.
    #[arg(long)]
    pub table: Option<String>,
    /// How far back schema changes count.
    #[arg(long, default_value_t = 24.0)]
    pub since_hours: f64,
    /// Catalog database of the table [default: from config].
    #[arg(long)]
    pub catalog: Option<String>,
    /// A model group whose stored batch forecasts are scored against the test series.
    #[arg(long)]
    pub group: Option<String>,
    /// Compare the recent window with only the last N windows of its length before it (by
    /// default the whole training window): with a trend or a slow season, like with like.
    #[arg(long)]
    pub reference_windows: Option<usize>,
}

#[derive(Debug, Args)]
pub struct DriftShowArgs {
    /// A report id [default: the latest].
    pub id: Option<String>,
    #[arg(long)]
    pub subject: Option<String>,
}
