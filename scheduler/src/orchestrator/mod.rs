//! The orchestrator's process side: the durable queue (apalis) that steps run from, and the
//! handler that advances executions from it. What an execution is, how it advances, its
//! callbacks and schedules are operations of `ops::workflows`, re-exported here.

pub mod queue;
pub use ops::workflows::{Error, engine, schedules, store};
