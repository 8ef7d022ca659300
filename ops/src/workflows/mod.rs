//! Workflow and execution management: durable executions of ASL workflows, their callbacks
//! and cron schedules, as operations ([`Workflows`]) the CLI and the HTTP API adapt.
//!
//! An execution advances one top-level state per step (and the pure states after it: Pass,
//! Choice, Succeed and Fail commit with the state before them). A step is an apalis task
//! `{execution, step}`: the worker runs the state with the ASL interpreter, then commits its
//! history events and the execution's new position in one transaction guarded by the step
//! number ([`store::commit_step`]), and enqueues the next step. A duplicate delivery finds the
//! step already taken and does nothing; a worker that dies mid-step leaves the position where it
//! was, and the step runs again (jobs are idempotent: conversion by its bookmarks, the crawl by
//! its etags). A Wait state is a step enqueued to run at the time it ends, never a sleep. Should
//! the process stop between a commit and its enqueue, [`engine::Engine::sweep`] re-enqueues
//! executions that have not moved.
//!
//! A Retry's delay is a step of its own, due after its backoff. A callback task
//! (`.waitForTaskToken`) runs its job, then its execution waits for the token holding no worker:
//! `SendTaskSuccess`/`SendTaskFailure` ([`engine::Engine::answer`]) enqueue the step that resumes
//! it, and a step due when the wait runs out times it out. A Parallel's branches and a Map's
//! iterations run as child executions of their own (`store::fanout`): the state's step starts
//! them and waits holding no worker; the child whose end decides the run wakes it.
//!
//! Two things come from outside, so that this layer knows neither the queue nor the Task
//! resources: a [`Dispatch`] takes the steps to run (the scheduler's apalis queue), and
//! [`Resources`] says which Task resources a definition may name and runs them (the
//! scheduler's `tasks/`, adapters over these same operations).

mod callbacks;
mod chain;
pub mod engine;
mod names;
mod operations;
mod running;
pub mod schedules;
pub mod store;
pub mod triggers;
mod views;

use std::future::Future;
use std::pin::Pin;

use asl::definition::{StateMachine, ValidationError};
use asl::run::TaskRunner;
use serde_json::Value;

pub use operations::Workflows;
pub use views::{
    Answered, ExecutionList, ExecutionPage, ExecutionView, HistoryEvent, NextTick, ScheduleDetail,
    ScheduleRequest, ScheduleView, StartRequest, Started, TaskFailureRequest, TaskHeartbeatRequest,
    TaskSuccessRequest, TickView, TokenView, Validated, VersionEntry, WorkflowDefinition,
    WorkflowSummary, WorkflowVersion,
};

/// Where steps go to run: the durable queue. A pushed step runs once its delay has passed, on
/// whichever worker takes it; pushing a step already queued for the same time is a no-op.
pub trait Dispatch: Send + Sync {
    fn push<'a>(
        &'a self,
        next: &'a engine::Next,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

    /// Deletes the queue's record of deliveries that ended before `before` (retention); the
    /// number deleted. A queue that keeps none has nothing to delete.
    fn expire<'a>(
        &'a self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Pin<Box<dyn Future<Output = Result<u64, Error>> + Send + 'a>> {
        let _ = before;
        Box::pin(async { Ok(0) })
    }
}

/// The Task resources this process runs.
pub trait Resources: Send + Sync + 'static {
    /// Parses a definition and checks each Task resource it names (the JSON pointer of the
    /// first that this process cannot run).
    fn runnable(
        &self,
        ops: &crate::Ops,
        definition: &Value,
    ) -> Result<StateMachine, ValidationError>;

    /// Runs Task states for one step from a blocking thread, their jobs on `handle`.
    fn runner<'a>(
        &'a self,
        ops: &'a crate::Ops,
        handle: tokio::runtime::Handle,
    ) -> Box<dyn TaskRunner + 'a>;
}

/// Errors of the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("invalid workflow: {0}")]
    Definition(#[from] ValidationError),
    #[error("execution {id} is {status}: {action} needs it {needed}")]
    WrongStatus {
        id: String,
        status: String,
        action: &'static str,
        needed: &'static str,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("task queue: {0}")]
    Queue(String),
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Invalid(String),
    /// Step Functions' `TaskTimedOut`: a task token is answered once, while its execution runs
    /// and before its wait runs out.
    #[error(
        "task token {token} is {status}: a token is answered once, while its execution runs and before its wait runs out"
    )]
    TokenClosed { token: String, status: String },
    /// Step Functions' `ExecutionAlreadyExists`: a name is used once, unless the start repeats
    /// one that is still running with the same input.
    #[error(
        "execution {name:?} of workflow {workflow} already exists ({id}, {status}): a name starts one execution; starting it again returns it only while it runs with the same input"
    )]
    AlreadyExists {
        workflow: String,
        name: String,
        id: String,
        status: String,
    },
}
