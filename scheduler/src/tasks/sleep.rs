//! `sluice:sleep`, plumbing for tests of workers and limits: waits `seconds`, beating every
//! `beat_seconds`; a `started` file is written as it begins and a line appended to `effect` as
//! it ends (worker-failover tests). Its output is its input.

use std::time::Duration;

use serde_json::Value;

use super::Heartbeat;
use crate::asl::Failure;

/// `{"seconds"?: 1, "beat_seconds"?, "started"?: path, "effect"?: path}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SleepInput {
    #[serde(default = "SleepInput::one")]
    seconds: f64,
    #[serde(default)]
    beat_seconds: Option<f64>,
    #[serde(default)]
    started: Option<String>,
    #[serde(default)]
    effect: Option<String>,
}

impl SleepInput {
    fn one() -> f64 {
        1.0
    }
}

pub(super) async fn run(
    sleep: SleepInput,
    input: &Value,
    heartbeat: &Heartbeat,
) -> Result<Value, Failure> {
    let io = |e: std::io::Error| Failure::new("States.TaskFailed", e.to_string());
    if let Some(path) = &sleep.started {
        std::fs::write(path, b"started\n").map_err(io)?;
    }
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(sleep.seconds.max(0.0));
    let beat_every = sleep
        .beat_seconds
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64);
    while tokio::time::Instant::now() < until {
        match beat_every {
            Some(every) => {
                tokio::time::sleep_until(until.min(tokio::time::Instant::now() + every)).await;
                heartbeat.beat();
            }
            None => tokio::time::sleep_until(until).await,
        }
    }
    if let Some(path) = &sleep.effect {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        writeln!(file, "done").map_err(io)?;
    }
    Ok(input.clone())
}
