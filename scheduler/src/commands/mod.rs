//! One function per subcommand. Each opens what it needs from the configuration, calls the
//! library, and returns a [`Report`].

mod catalog;
mod convert;
mod crawl;
mod dataset;
mod demo;
mod demo_devices;
mod demo_hooks;
mod demo_show;
mod drift;
mod events;
mod executions;
mod forecasting;
mod ingest;
mod query;
mod registry;
pub(crate) mod schedules;
mod serving;
#[cfg(test)]
mod tests;
mod transform;
mod tune;
mod workflow;

use std::io::IsTerminal;

use jobs::catalog::{Catalog, CatalogDbName, ConnectOptions};
use jobs::lake::Lake;
use ops::Ops;

use crate::cli::{Cli, Command, DbCommand, GenerateCommand, WorkflowCommand};
use crate::config::Config;
use crate::output::Report;

/// What every command gets: the configuration, the operations over it (one database pool for
/// the process) and how to talk to the person at the terminal.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Config,
    pub ops: Ops,
    /// Draw progress bars (stderr is a terminal).
    pub progress: bool,
}

impl Context {
    /// A context for a configuration; progress bars when stderr is a terminal.
    pub fn new(config: Config) -> Self {
        Self::with_progress(config, std::io::stderr().is_terminal())
    }

    pub fn with_progress(config: Config, progress: bool) -> Self {
        Self {
            ops: Ops::new(config.ops_settings()),
            config,
            progress,
        }
    }

    /// Where an operation reports progress: `bar()` when stderr is a terminal, else nowhere.
    pub(crate) fn observer(&self, bar: impl FnOnce() -> ops::Observer) -> ops::Observer {
        if self.progress {
            bar()
        } else {
            ops::Observer::none()
        }
    }

    /// The catalog database (the process's one pool).
    pub(crate) async fn catalog(&self) -> anyhow::Result<Catalog> {
        Ok(self.ops.catalog().await?.clone())
    }

    pub(crate) fn lake(&self) -> anyhow::Result<Lake> {
        Ok(self.ops.lake()?)
    }

    /// The workflow operations (an engine over the catalog, steps pushed to the durable
    /// queue), and the queue for an embedded worker (`--wait`).
    pub(crate) async fn workflows(
        &self,
    ) -> anyhow::Result<(ops::workflows::Workflows, crate::orchestrator::queue::Queue)> {
        let catalog = self.catalog().await?;
        let engine = crate::tasks::Resources::engine(self.ops.clone(), catalog.pool().clone());
        let queue = crate::orchestrator::queue::Queue::open(&self.config.database).await?;
        let workflows = ops::workflows::Workflows::new(engine, std::sync::Arc::new(queue.clone()));
        Ok((workflows, queue))
    }

    pub(crate) fn catalog_db(&self, flag: Option<&str>) -> anyhow::Result<CatalogDbName> {
        Ok(self.ops.catalog_db(flag)?)
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
        Command::Expire => convert::expire(context).await,
        Command::Workflow(WorkflowCommand::Validate(args)) => workflow::validate(args, context),
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
        Command::Task(command) => executions::task(command, context).await,
        Command::Connection(command) => executions::connection(command, context).await,
        Command::Dataset(args) => dataset::build(args, context).await,
        Command::Train(args) => forecasting::train(args, context).await,
        Command::Tune(args) => tune::run(args, context).await,
        Command::Forecast(args) => forecasting::forecast(args, context).await,
        Command::Models(command) => registry::run(command, context).await,
        Command::Drift(command) => drift::run(command, context).await,
        Command::Endpoint(command) => serving::endpoint(command, context).await,
        Command::Token(command) => serving::token(command, context).await,
        Command::Ingest(command) => ingest::run(command, context).await,
        Command::Serve(args) => serving::serve(args, context).await,
        Command::Worker(args) => executions::worker(args, context).await,
        Command::Server(args) => schedules::server(args, context).await,
        Command::Schedule(command) => schedules::run(command, context).await,
        Command::Trigger(command) => events::triggers(command, context).await,
        Command::Notify(command) => events::notify(command, context).await,
        Command::Catalog(command) => catalog::run(command, context).await,
        Command::Query(args) => query::run(args, context).await,
        Command::Transform(args) => transform::run(args, context).await,
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
    }
}
