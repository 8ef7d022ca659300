//! The command line: a clap derive `Cli` with one subcommand enum; each arm calls one function.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod events;
mod forecasting;
mod ingest;
mod serving;
mod workflows;
pub use events::{
    NotifyCommand, NotifyCreateArgs, NotifyDeliveriesArgs, TriggerCommand, TriggerCreateArgs,
};
pub use forecasting::{Algorithm, DatasetArgs, DeviceKind, ForecastArgs, TrainArgs, TuneArgs};
pub use ingest::{IngestCommand, StreamCommand, StreamCreateArgs, StreamNameArgs};
pub use serving::{
    BatchForecastArgs, DeployArgs, DeploymentsArgs, DriftCommand, DriftRunArgs, DriftShowArgs,
    EndpointCommand, EndpointCreateArgs, ModelsCommand, ModelsGroupArgs, ModelsListArgs,
    ModelsVersionArgs, PromoteArgs, PublishArgs, RollbackArgs, ServeArgs, StatusArgs, TokenCommand,
    TokenCreateArgs, TokenRevokeArgs,
};
pub use workflows::{
    ConnectionCommand, ConnectionCreateArgs, ConnectionNameArgs, ExecutionArgs,
    ScheduleBackfillArgs, ScheduleCommand, ScheduleCreateArgs, ServerArgs, TaskCommand,
    TaskFailureArgs, TaskSuccessArgs, TaskTokenArgs, WorkerArgs, WorkflowCommand,
    WorkflowCreateArgs, WorkflowInstallArgs, WorkflowRunArgs, WorkflowStartArgs,
    WorkflowValidateArgs,
};

/// sluice: batch ETL and model-training workflows over Firehose landings.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (default: ./sluice.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Catalog database URL: sqlite://PATH or postgres://... [default: sqlite://.sluice/sluice.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// Lake URL: file://DIR, s3://bucket/prefix or memory:// [default: file://./lake]
    #[arg(long, global = true, value_name = "URL")]
    pub lake: Option<String>,
    /// Lake for curated Parquet and quarantine [default: the lake]
    #[arg(long, global = true, value_name = "URL")]
    pub curated_lake: Option<String>,
    /// How reports are printed.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// More logging (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables for people.
    Table,
    /// JSON for programs.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the end-to-end demo in a fresh directory.
    Demo(DemoArgs),
    /// Generate test data.
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Crawl landed objects into the catalog (like an AWS Glue crawler).
    Crawl(CrawlArgs),
    /// Convert a crawled table's new objects to partitioned Parquet (like AWS Glue ETL).
    Convert(ConvertArgs),
    /// Merge the small files of each partition of a curated table, atomically.
    Compact(CompactArgs),
    /// Finish interrupted conversions and delete what no committed run owns.
    Vacuum(VacuumArgs),
    /// Delete what the retention settings no longer keep: ended executions with their
    /// histories, old forecast runs with their files, ended notification deliveries.
    Expire,
    /// Build DeepAR training and test series from a curated table.
    Dataset(DatasetArgs),
    /// Train a DeepAR forecaster on SageMaker-style JSON lines and print its test metrics.
    Train(TrainArgs),
    /// Tune DeepAR's hyperparameters: random search with successive halving, trials spread
    /// over the workers, each scored on validation windows held out of the training data.
    Tune(TuneArgs),
    /// Forecast with a trained model from a SageMaker DeepAR request.
    Forecast(ForecastArgs),
    /// The model registry: versions, aliases, publishing, history.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Data and schema drift reports.
    #[command(subcommand)]
    Drift(DriftCommand),
    /// Prediction endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Delivery streams that `sluice server` takes records for (the Firehose API).
    #[command(subcommand)]
    Ingest(IngestCommand),
    /// Serve the prediction endpoints (without the workflow API, scheduler or worker).
    Serve(ServeArgs),
    /// Run workflow steps from the queue until SIGTERM (scale-out: one per process or machine).
    Worker(WorkerArgs),
    /// Run the HTTP API, the scheduler and a worker in one process until SIGTERM.
    Server(ServerArgs),
    /// Cron schedules of workflows.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Workflows in Amazon States Language.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Start workflows when objects land under a prefix or drift is detected.
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// Webhooks (JSON or Slack) when executions fail, drift is found, conversions quarantine
    /// or deployments roll back.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Answer callback tasks (`.waitForTaskToken`): success, failure, heartbeat.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Credentials HTTP Tasks authenticate with (`Authentication.ConnectionArn`).
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Look into the catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Run SQL over catalog tables (curated and landing), their partitions pruned by the
    /// query's conditions on partition keys.
    Query(QueryArgs),
    /// Build a derived curated table from a SELECT over curated tables (once per input: a
    /// rerun over the same files does nothing).
    Transform(TransformArgs),
    /// Manage the database.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The query: `SELECT ... FROM table ...` over the catalog database's tables.
    pub sql: String,
    #[arg(long)]
    pub catalog: Option<String>,
    /// How the rows print: a table, or CSV (`--output json` prints the whole report as JSON).
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
    /// Rows printed at most.
    #[arg(long, default_value_t = 1000)]
    pub max_rows: usize,
    /// Write the whole result as Parquet to this file.
    #[arg(long, value_name = "FILE")]
    pub parquet: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TransformArgs {
    /// The derived table to build (new, or one a transform made).
    pub table: String,
    /// The query: `SELECT ... FROM curated_table ...`.
    pub sql: String,
    /// Result columns that become Hive partition folders, in order (`--partition-by day`).
    #[arg(long, value_delimiter = ',')]
    pub partition_by: Vec<String>,
    /// Curated prefix; files go under `<dest>/<table>/`.
    #[arg(long, default_value = "curated")]
    pub dest: String,
    /// Build even when the table was already built from the same input.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub catalog: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    Table,
    Csv,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's database and lake; must be new or empty.
    #[arg(long, default_value = "sluice-demo")]
    pub dir: PathBuf,
    /// Devices in the fleet.
    #[arg(long, default_value_t = 20)]
    pub devices: u32,
    /// Days of landings.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// IANA time zone of the nightly schedule (02:00).
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// Training epochs each night.
    #[arg(long, default_value_t = 20)]
    pub epochs: u32,
    /// Batches per training epoch.
    #[arg(long, default_value_t = 40)]
    pub batches: u32,
    /// How the devices send the second night's day: as Firehose lands it (objects in the
    /// lake), or to sluice over MQTT (through the bridge) or through the Firehose API.
    #[arg(long, value_enum, default_value_t = DevicesVia::Files)]
    pub devices_via: DevicesVia,
    /// The MQTT broker the devices publish to (--devices-via mqtt).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub mqtt_broker: String,
}

/// How the demo's devices send data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DevicesVia {
    /// Objects written into the lake, as Kinesis Data Firehose lands them.
    Files,
    /// MQTT messages, through sluice's bridge.
    Mqtt,
    /// PutRecordBatch calls to sluice's Firehose API.
    Firehose,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Write Firehose-style landings of an air-quality fleet into the lake.
    Landings(LandingsArgs),
}

#[derive(Debug, Args)]
pub struct LandingsArgs {
    /// Devices in the fleet.
    #[arg(long, default_value_t = 20)]
    pub devices: u32,
    /// Days of landings.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Seed: the same seed writes the same objects.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First day (UTC), YYYY-MM-DD.
    #[arg(long, default_value = "2024-05-01")]
    pub start: chrono::NaiveDate,
    /// Write records back to back (`}{`, Firehose's default) instead of one per line.
    #[arg(long)]
    pub concat: bool,
    /// Key prefix of the delivery stream's objects.
    #[arg(long, default_value = "landing/telemetry")]
    pub prefix: String,
    /// Key prefix of processing-failed envelopes.
    #[arg(long, default_value = "landing/errors")]
    pub error_prefix: String,
    /// Delivery stream name, as in the object names.
    #[arg(long, default_value = "aq-telemetry")]
    pub stream: String,
    /// Write only from this day of the period on (0-based): the earlier days were landed by an
    /// earlier run with the same seed (`--days 30`, then `--days 31 --from-day 30`).
    #[arg(long, default_value_t = 0)]
    pub from_day: u32,
    /// From this day of the period on (0-based), smoke multiplies particulate matter.
    #[arg(long, requires = "shift_factor")]
    pub shift_from_day: Option<u32>,
    /// How much smoke multiplies particulate matter by (with --shift-from-day).
    #[arg(long, requires = "shift_from_day")]
    pub shift_factor: Option<f64>,
}

#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// Key prefix to crawl, relative to the lake root (empty: the whole lake).
    #[arg(default_value = "landing")]
    pub prefix: String,
    /// Catalog database to register tables in [default: from config, "default"].
    #[arg(long)]
    pub catalog: Option<String>,
    /// Crawl every object again, not only new and changed ones.
    #[arg(long)]
    pub recrawl: bool,
    /// Records sampled per object.
    #[arg(long)]
    pub sample_records: Option<usize>,
    /// Do not read objects to their end (faster; record counts become estimates).
    #[arg(long)]
    pub no_verify: bool,
    /// Schema-change policy of new tables.
    #[arg(long, value_parser = ["add_columns", "update", "log"])]
    pub schema_policy: Option<String>,
    /// Prefix for the names of new tables.
    #[arg(long, default_value = "")]
    pub table_prefix: String,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The crawled table.
    pub table: String,
    /// Curated prefix in the curated lake; files go under DEST/TABLE/.
    #[arg(long, default_value = "curated")]
    pub dest: String,
    /// Partition columns: year,month,day (default) or year,month,day,hour.
    #[arg(long, default_value = "year,month,day", value_parser = ["year,month,day", "year,month,day,hour"])]
    pub partition_by: String,
    /// Event-time column [default: the table's `ts`-like timestamp column].
    #[arg(long)]
    pub event_time: Option<String>,
    /// Show what would be converted, and convert nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Convert every object again, replacing the table's files atomically.
    #[arg(long)]
    pub reprocess: bool,
    /// With --reprocess and --to: rebuild only the partitions of these event dates (YYYY-MM-DD,
    /// inclusive), with every file their source objects also fed, in one commit.
    #[arg(long, requires_all = ["reprocess", "to"])]
    pub from: Option<chrono::NaiveDate>,
    /// The last event date of --from's range.
    #[arg(long, requires_all = ["reprocess", "from"])]
    pub to: Option<chrono::NaiveDate>,
    /// Target size of output files, in MiB.
    #[arg(long, default_value_t = 128)]
    pub target_file_mib: u64,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 131_072)]
    pub row_group_rows: usize,
    /// Catalog database [default: from config, "default"].
    #[arg(long)]
    pub catalog: Option<String>,
    /// Convert only this new landing object (repeat the flag for more) [default: every new one].
    #[arg(long = "object", value_name = "KEY")]
    pub objects: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The crawled table, or its curated table.
    pub table: String,
    /// Files of a partition are merged up to about this size, in MiB.
    #[arg(long, default_value_t = 128)]
    pub target_file_mib: u64,
    /// Catalog database [default: from config, "default"].
    #[arg(long)]
    pub catalog: Option<String>,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Leave runs younger than this alone (they may still be running elsewhere).
    #[arg(long, default_value_t = 60)]
    pub grace_minutes: i64,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Catalog database [default: from config, "default"].
    #[arg(long)]
    pub catalog: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List tables.
    Tables(CatalogArgs),
    /// Show a table: location, format, partition keys and columns.
    Show {
        table: String,
        #[command(flatten)]
        args: CatalogArgs,
    },
    /// List a table's schema versions.
    Versions {
        table: String,
        #[command(flatten)]
        args: CatalogArgs,
    },
    /// Compare two schema versions of a table.
    Diff {
        table: String,
        from: i64,
        to: i64,
        #[command(flatten)]
        args: CatalogArgs,
    },
    /// List a table's partitions.
    Partitions {
        table: String,
        #[command(flatten)]
        args: CatalogArgs,
    },
    /// List crawled objects.
    Objects {
        /// Only failed objects, with their reasons.
        #[arg(long)]
        failed: bool,
    },
    /// List recent crawls.
    Crawls {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Set (or clear) the mapping conversion applies to a table: rename, cast, drop, flatten.
    SetMapping {
        table: String,
        /// JSON file: {"flatten": true, "drop": [..], "cast": {"col": "double"}, "rename": {"old": "new"}}
        #[arg(required_unless_present = "clear")]
        file: Option<std::path::PathBuf>,
        /// Remove the mapping: structs stay structs, columns keep their names and types.
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        args: CatalogArgs,
    },
    /// Set what a crawl does when a table's schema changes.
    SetPolicy {
        table: String,
        #[arg(value_parser = ["add_columns", "update", "log"])]
        policy: String,
        #[command(flatten)]
        args: CatalogArgs,
    },
    /// List type changes a crawl held for a person's decision, with their evidence.
    Conflicts {
        /// One table's changes [default: every table's].
        table: Option<String>,
        /// Decided changes too (accepted, dismissed).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        args: CatalogArgs,
    },
    /// Accept a pending type change: the table gets a new schema version with the new type.
    AcceptChange {
        table: String,
        /// Dotted column path, as listed (`pm25`, `location.alt`).
        column: String,
        /// The proposed type, as listed (`string`, `double`, ...).
        #[arg(value_name = "TYPE")]
        to: String,
        /// Why, recorded with the decision.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        args: CatalogArgs,
    },
    /// Dismiss a pending type change: the table keeps its type, and conversion goes on
    /// quarantining the values that do not fit it.
    DismissChange {
        table: String,
        column: String,
        #[arg(value_name = "TYPE")]
        to: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        args: CatalogArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations.
    Migrate,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        // clap checks every subcommand (unique names, valid defaults) only when asked.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
