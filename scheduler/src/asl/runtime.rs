//! What the interpreter needs from outside: tasks to run and time to tell.

use serde_json::Value;

use super::Failure;

/// A Task state's time limits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// `TimeoutSeconds`: past it, `States.Timeout`.
    pub timeout: Option<std::time::Duration>,
    /// `HeartbeatSeconds`: this long without a heartbeat from the job, `States.HeartbeatTimeout`.
    pub heartbeat: Option<std::time::Duration>,
}

/// Runs a Task state's resource (`sluice:echo`, `sluice:crawl`, ...) on its effective input,
/// within the state's limits.
pub trait TaskRunner {
    fn run(&mut self, resource: &str, input: &Value, limits: Limits) -> Result<Value, Failure>;
}

/// The built-in test resources: `sluice:echo` returns its input, `sluice:fail` fails with the
/// `Error` and `Cause` its input names.
pub struct TestTasks;

impl TaskRunner for TestTasks {
    fn run(&mut self, resource: &str, input: &Value, _limits: Limits) -> Result<Value, Failure> {
        match resource {
            "sluice:echo" => Ok(input.clone()),
            "sluice:fail" => Err(Failure::new(
                input
                    .get("Error")
                    .and_then(Value::as_str)
                    .unwrap_or("Sluice.Failed"),
                input.get("Cause").and_then(Value::as_str).unwrap_or(""),
            )),
            other => Err(Failure::new(
                "States.TaskFailed",
                format!("unknown resource {other}"),
            )),
        }
    }
}

/// Time, in milliseconds since the epoch: waits and retry delays advance it.
pub trait Clock {
    fn now_ms(&self) -> i64;
    fn sleep_ms(&mut self, ms: i64);
}

/// The wall clock: waits and retry delays really sleep.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn sleep_ms(&mut self, ms: i64) {
        std::thread::sleep(std::time::Duration::from_millis(ms.max(0) as u64));
    }
}

/// A clock that only moves when told to (tests and the conformance corpus).
#[derive(Debug, Clone)]
pub struct VirtualClock {
    pub now_ms: i64,
    /// Every sleep, in order (retry backoff checks).
    pub sleeps: Vec<i64>,
}

impl VirtualClock {
    pub fn starting_at(now_ms: i64) -> Self {
        Self {
            now_ms,
            sleeps: Vec::new(),
        }
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms
    }

    fn sleep_ms(&mut self, ms: i64) {
        self.sleeps.push(ms);
        self.now_ms += ms.max(0);
    }
}
