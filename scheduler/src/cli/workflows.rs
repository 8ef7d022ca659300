//! The arguments of the workflow commands: `workflow`, `schedule`, `server`, `worker`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Check a definition: errors name the JSON pointer of the offending field.
    Validate(WorkflowValidateArgs),
    /// Run a definition to its end in this process and print its outcome and history.
    Run(WorkflowRunArgs),
    /// Store a workflow (a new version when it exists).
    Create(WorkflowCreateArgs),
    /// Store a new version of a workflow; running executions keep theirs.
    Update(WorkflowCreateArgs),
    /// Install a shipped workflow (nightly-retrain) with its cron schedule, in one command.
    Install(WorkflowInstallArgs),
    /// List workflows and recent executions.
    List,
    /// Start a durable execution of a stored workflow.
    Start(WorkflowStartArgs),
    /// Show an execution.
    Describe(ExecutionArgs),
    /// Show an execution's history.
    History(ExecutionArgs),
    /// Stop a running execution.
    Stop(ExecutionArgs),
    /// Run a failed execution again from the state it failed in, with the workflow's latest version.
    Redrive(ExecutionArgs),
}

#[derive(Debug, Args)]
pub struct WorkflowInstallArgs {
    /// The shipped workflow.
    #[arg(value_parser = ["nightly-retrain"])]
    pub name: String,
    /// When it runs (cron, 5 fields).
    #[arg(long, default_value = "0 2 * * *")]
    pub cron: String,
    /// IANA time zone of the schedule.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// The executions' input (JSON) [default: the air-quality fleet's settings, work in ./work].
    #[arg(long)]
    pub input: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkflowCreateArgs {
    pub name: String,
    /// The definition (ASL JSON).
    #[arg(long)]
    pub definition: PathBuf,
}

#[derive(Debug, Args)]
pub struct WorkflowStartArgs {
    pub workflow: String,
    /// The execution's input (JSON) [default: {}].
    #[arg(long)]
    pub input: Option<String>,
    /// The execution's name: starting twice with one name starts it once [default: a UUID].
    #[arg(long)]
    pub name: Option<String>,
    /// Run an embedded worker until the execution ends.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ExecutionArgs {
    /// The execution's id.
    pub execution: String,
    /// (redrive) Run an embedded worker until the execution ends.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Schedule a workflow.
    Create(ScheduleCreateArgs),
    /// List schedules.
    List,
    /// Stop firing a schedule's ticks.
    Pause { name: String },
    /// Fire a paused schedule's ticks again (missed ones follow its catch-up policy).
    Resume { name: String },
    /// Delete a schedule (its executions stay).
    Delete { name: String },
    /// Start an execution for each tick in a time range not yet fired.
    Backfill(ScheduleBackfillArgs),
}

#[derive(Debug, Args)]
pub struct ScheduleCreateArgs {
    pub name: String,
    /// Cron expression: 5 fields (minute hour day month weekday), or 6 with seconds first.
    #[arg(long)]
    pub cron: String,
    /// IANA time zone of the expression.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// The workflow to start.
    #[arg(long)]
    pub workflow: String,
    /// The executions' input (JSON).
    #[arg(long)]
    pub input: Option<String>,
    /// Ticks missed while no scheduler ran: skip them, start the latest, or start all within --window.
    #[arg(long, default_value = "skip", value_parser = ["skip", "latest", "all"])]
    pub catchup: String,
    /// How far back missed ticks are caught up (30s, 10m, 6h, 2d).
    #[arg(long, default_value = "1d")]
    pub window: String,
    /// A tick while the previous execution runs: skip it, buffer one, or allow.
    #[arg(long, default_value = "skip", value_parser = ["skip", "buffer-one", "allow"])]
    pub overlap: String,
}

#[derive(Debug, Args)]
pub struct ScheduleBackfillArgs {
    pub name: String,
    /// First tick time (RFC 3339).
    #[arg(long)]
    pub from: String,
    /// Last tick time (RFC 3339).
    #[arg(long)]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address of the HTTP API [default: from config, 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<String>,
    /// Run no steps here: the API, the prediction endpoints and the schedules only, with the
    /// steps on `sluice worker` processes (the scale-out layout).
    #[arg(long)]
    pub no_worker: bool,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The worker's name [default: worker-<uuid>].
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkflowValidateArgs {
    /// The definition (ASL JSON).
    pub definition: PathBuf,
}

#[derive(Debug, Args)]
pub struct WorkflowRunArgs {
    /// The definition (ASL JSON).
    #[arg(long)]
    pub definition: PathBuf,
    /// The execution's input (JSON) [default: {}].
    #[arg(long)]
    pub input: Option<String>,
    /// The execution's name [default: a UUID].
    #[arg(long)]
    pub name: Option<String>,
}

/// Answers to callback tasks (`.waitForTaskToken`), as Step Functions' SendTask* calls.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Tasks waiting for their token: execution, state, what the task was given, deadline.
    List,
    /// SendTaskSuccess: the task succeeds with this output, and its execution goes on.
    Success(TaskSuccessArgs),
    /// SendTaskFailure: the task fails with this error (Retry and Catch see it).
    Failure(TaskFailureArgs),
    /// SendTaskHeartbeat: the task's HeartbeatSeconds start again.
    Heartbeat(TaskTokenArgs),
}

#[derive(Debug, Args)]
pub struct TaskTokenArgs {
    /// The task token (`$$.Task.Token`).
    pub token: String,
}

#[derive(Debug, Args)]
pub struct TaskSuccessArgs {
    /// The task token (`$$.Task.Token`).
    pub token: String,
    /// The task's output (JSON), as the AWS CLI's `send-task-success --task-output`.
    #[arg(long, default_value = "{}")]
    pub task_output: String,
}

#[derive(Debug, Args)]
pub struct TaskFailureArgs {
    /// The task token (`$$.Task.Token`).
    pub token: String,
    /// The error name Retry and Catch match [default: States.TaskFailed].
    #[arg(long)]
    pub error: Option<String>,
    #[arg(long, default_value = "")]
    pub cause: String,
}

/// Connections: credentials HTTP Tasks authenticate with (`Authentication.ConnectionArn`).
#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Store a connection (replacing one of the same name).
    Create(ConnectionCreateArgs),
    /// Connections: name, kind, header names; never a secret.
    List,
    /// Delete a connection.
    Delete(ConnectionNameArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("authorization").required(true).args(["basic", "api_key", "bearer"])))]
pub struct ConnectionCreateArgs {
    pub name: String,
    /// Basic authentication, `USER:PASSWORD`.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub basic: Option<String>,
    /// An API key header, `HEADER=VALUE`.
    #[arg(long, value_name = "HEADER=VALUE")]
    pub api_key: Option<String>,
    /// A bearer token.
    #[arg(long, value_name = "TOKEN")]
    pub bearer: Option<String>,
    /// A header every request carries, `NAME=VALUE` (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// A query parameter every request carries, `NAME=VALUE` (repeatable).
    #[arg(long = "query", value_name = "NAME=VALUE")]
    pub query: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConnectionNameArgs {
    pub name: String,
}
