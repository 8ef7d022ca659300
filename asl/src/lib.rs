//! Amazon States Language: the language sluice's workflows are written in.
//!
//! - [`definition`] parses and validates a definition into typed states, with errors that name
//!   the JSON pointer of the offending field (statelint's rules);
//! - [`paths`] evaluates JSONPath (`InputPath`, `Parameters`, `ResultSelector`, `ResultPath`,
//!   `OutputPath`), the context object `$$` and `Assign` variables;
//! - [`intrinsics`] implements the `States.*` intrinsic functions;
//! - [`jsonata`] evaluates JSONata (`{% %}` expressions, `$states`, Step Functions' functions)
//!   for states written in it;
//! - [`choice`] evaluates Choice rules;
//! - [`run`] runs an execution to its end over an injected task runner and clock, producing the
//!   execution's history.
//!
//! Errors raised while running are [`Failure`]s: ASL error names (`States.TaskFailed`, a job's
//! own `Sluice.SchemaConflict`) with a cause, which Retry and Catch match.

mod body;
pub mod choice;
pub mod definition;
mod distributed;
mod durable;
mod fanout;
pub mod intrinsics;
pub mod jsonata;
mod jsonata_states;
mod map_run_end;
pub mod paths;
pub mod run;
pub mod runtime;
mod task;

/// An ASL error raised while running: a name Retry/Catch can match, and a cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }

    /// `States.Runtime`: a path or payload could not be evaluated.
    pub fn runtime(cause: impl Into<String>) -> Self {
        Self::new("States.Runtime", cause)
    }

    /// `States.IntrinsicFailure`: an intrinsic function failed.
    pub fn intrinsic(cause: impl Into<String>) -> Self {
        Self::new("States.IntrinsicFailure", cause)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}
