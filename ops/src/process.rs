//! Commands of the operator's own, run as workflow steps (`sluice:process:NAME`): only those the
//! configuration allow-lists (`[process.commands.NAME] argv = [...]`; none by default), with no
//! shell: the command's argv, then the request's `args`; `stdin` written as JSON; stdout (JSON,
//! or else its text) is the output; a non-zero exit or the command's time limit fails it with
//! the end of its stderr.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::{Error, Ops, Result};

/// The most of a command's stdout a state may hold (Step Functions' payload limit).
const MAX_STDOUT_BYTES: usize = 256 * 1024;
/// How much of stderr an error quotes.
const STDERR_TAIL: usize = 2000;

/// An allow-listed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessCommand {
    /// The program and its first arguments (never through a shell).
    pub argv: Vec<String>,
    /// Killed past this long.
    #[serde(default = "ProcessCommand::default_timeout")]
    pub timeout_seconds: f64,
}

impl ProcessCommand {
    fn default_timeout() -> f64 {
        300.0
    }
}

/// The allow-list, by name.
pub type ProcessCommands = BTreeMap<String, ProcessCommand>;

/// `{"args"?: [...], "stdin"?: any}`: arguments after the command's own, and the JSON written to
/// its stdin (null: nothing).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessRequest {
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub stdin: Value,
}

/// Why a name cannot run: not allow-listed (the validation's check, naming what is).
pub fn check_command(name: &str, commands: &ProcessCommands) -> std::result::Result<(), String> {
    if commands.contains_key(name) {
        return Ok(());
    }
    let allowed: Vec<&str> = commands.keys().map(String::as_str).collect();
    Err(if allowed.is_empty() {
        format!(
            "command {name:?} is not allow-listed: no command is (add [process.commands.{name}] argv = [...] to the configuration)"
        )
    } else {
        format!(
            "command {name:?} is not allow-listed; the configuration allows {}",
            allowed.join(", ")
        )
    })
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().rev().nth(STDERR_TAIL) {
        Some((at, _)) => format!("…{}", &text[at..]),
        None => text.to_owned(),
    }
}

impl Ops {
    /// Runs an allow-listed command on a request; its stdout is the output.
    pub async fn run_process(&self, name: &str, request: &ProcessRequest) -> Result<Value> {
        let commands = &self.settings().process;
        check_command(name, commands).map_err(|reason| Error::invalid("command", reason))?;
        let command = &commands[name];
        let (program, first) = command
            .argv
            .split_first()
            .ok_or_else(|| Error::invalid("command", format!("{name:?} has an empty argv")))?;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(program)
            .args(first)
            .args(&request.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::Failed(format!("command {name:?} ({program}) cannot start: {e}"))
            })?;
        let stdin = match &request.stdin {
            Value::Null => Vec::new(),
            value => serde_json::to_vec(value).expect("serializes"),
        };
        let mut pipe = child.stdin.take().expect("piped");
        let writer = tokio::spawn(async move {
            // A command that does not read its stdin closes the pipe: not an error.
            let _ = pipe.write_all(&stdin).await;
        });
        let limit = Duration::from_secs_f64(command.timeout_seconds.max(0.0));
        let output = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .map_err(|_| {
                Error::Failed(format!(
                    "command {name:?} ran past its {} s limit and was killed",
                    command.timeout_seconds
                ))
            })?
            .map_err(|e| Error::Failed(format!("command {name:?}: {e}")))?;
        let _ = writer.await;
        if !output.status.success() {
            return Err(Error::Failed(format!(
                "command {name:?} exited with {} after {} ms: {}",
                output
                    .status
                    .code()
                    .map_or_else(|| "a signal".to_owned(), |c| c.to_string()),
                started.elapsed().as_millis(),
                tail(&output.stderr)
            )));
        }
        if output.stdout.len() > MAX_STDOUT_BYTES {
            return Err(Error::Failed(format!(
                "command {name:?} printed {} bytes, over the 256 KiB a state's data may hold",
                output.stdout.len()
            )));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        Ok(serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.trim().to_owned())))
    }
}
