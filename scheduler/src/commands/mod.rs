//! One function per subcommand. Each opens what it needs from the configuration, calls the
//! library, and returns a [`Report`].

pub(crate) mod batch_forecast;
mod bench;
mod bench_forecast;
mod bench_orchestrator;
mod bench_serve;
mod catalog;
mod convert;
mod crawl;
pub(crate) mod dataset;
mod demo;
mod demo_show;
pub(crate) mod drift;
mod executions;
pub(crate) mod forecasting;
pub(crate) mod registry;
pub(crate) mod schedules;
mod serving;
mod workflow;

use std::io::IsTerminal;

use anyhow::Context as _;
use jobs::catalog::{Catalog, CatalogDbName, ConnectOptions};
use jobs::lake::Lake;

use crate::cli::{BenchCommand, Cli, Command, DbCommand, GenerateCommand, WorkflowCommand};
use crate::config::Config;
use crate::output::Report;

/// What every command gets: the configuration and how to talk to the person at the terminal.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Config,
    /// Draw progress bars (stderr is a terminal).
    pub progress: bool,
}

impl Context {
    /// A context for a configuration; progress bars when stderr is a terminal.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            progress: std::io::stderr().is_terminal(),
        }
    }

    pub(crate) async fn catalog(&self) -> anyhow::Result<Catalog> {
        Catalog::connect(&self.config.database, &ConnectOptions::default())
            .await
            .with_context(|| format!("cannot open catalog database {}", self.config.database))
    }

    pub(crate) fn lake(&self) -> anyhow::Result<Lake> {
        Ok(Lake::open(&self.config.lake, &self.config.s3_options())?)
    }

    /// The curated lake: its own URL, or the lake itself.
    pub(crate) fn curated_lake(&self, lake: &Lake) -> anyhow::Result<Lake> {
        match &self.config.curated_lake {
            Some(url) => Ok(Lake::open(url, &self.config.s3_options())?),
            None => Ok(lake.clone()),
        }
    }

    pub(crate) fn catalog_db(&self, flag: Option<&str>) -> anyhow::Result<CatalogDbName> {
        Ok(CatalogDbName::parse(flag.unwrap_or(&self.config.catalog))?)
    }
}

/// Runs the command the CLI names.
pub async fn execute(cli: &Cli, context: &Context) -> anyhow::Result<Report> {
    match &cli.command {
        Command::Demo(args) => demo::run(args, context).await,
        Command::Generate(GenerateCommand::Landings(args)) => crawl::generate(args, context).await,
        Command::Crawl(args) => crawl::crawl(args, context).await,
        Command::Convert(args) => convert::convert(args, context).await,
        Command::Compact(args) => convert::compact(args, context).await,
        Command::Vacuum(args) => convert::vacuum(args, context).await,
        Command::Workflow(WorkflowCommand::Validate(args)) => workflow::validate(args),
        Command::Workflow(WorkflowCommand::Run(args)) => workflow::run(args, context).await,
        Command::Workflow(WorkflowCommand::Create(args) | WorkflowCommand::Update(args)) => {
            executions::create(args, context).await
        }
        Command::Workflow(WorkflowCommand::Install(args)) => {
            schedules::install(args, context).await
        }
        Command::Workflow(WorkflowCommand::List) => executions::list(context).await,
        Command::Workflow(WorkflowCommand::Start(args)) => executions::start(args, context).await,
        Command::Workflow(WorkflowCommand::Describe(args)) => {
            executions::describe(args, context).await
        }
        Command::Workflow(WorkflowCommand::History(args)) => {
            executions::history(args, context).await
        }
        Command::Workflow(WorkflowCommand::Stop(args)) => executions::stop(args, context).await,
        Command::Workflow(WorkflowCommand::Redrive(args)) => {
            executions::redrive(args, context).await
        }
        Command::Dataset(args) => dataset::build(args, context).await,
        Command::Train(args) => forecasting::train(args, context).await,
        Command::Forecast(args) => forecasting::forecast(args).await,
        Command::Models(command) => registry::run(command, context).await,
        Command::Drift(command) => drift::run(command, context).await,
        Command::Endpoint(command) => serving::endpoint(command, context).await,
        Command::Token(command) => serving::token(command, context).await,
        Command::Serve(args) => serving::serve(args, context).await,
        Command::Worker(args) => executions::worker(args, context).await,
        Command::Server(args) => schedules::server(args, context).await,
        Command::Schedule(command) => schedules::run(command, context).await,
        Command::Catalog(command) => catalog::run(command, context).await,
        Command::Db(DbCommand::Migrate) => {
            let catalog = Catalog::connect(
                &context.config.database,
                &ConnectOptions {
                    migrate: false,
                    ..Default::default()
                },
            )
            .await?;
            let applied = catalog.migrate().await?;
            catalog.close().await;
            Ok(Report::new(
                serde_json::json!({"database": context.config.database, "applied": applied}),
                format!(
                    "{applied} migration(s) applied to {}",
                    context.config.database
                ),
            ))
        }
        Command::Bench(BenchCommand::Crawl(args)) => bench::crawl(args).await,
        Command::Bench(BenchCommand::Orchestrator(args)) => bench_orchestrator::run(args).await,
        Command::Bench(BenchCommand::Forecast(args)) => bench_forecast::run(args).await,
        Command::Bench(BenchCommand::Serve(args)) => bench_serve::run(args).await,
    }
}
