//! What the interpreter needs from outside: tasks to run and time to tell.

use md5::Digest;
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

/// An object a distributed Map's `ItemReader` lists (`s3:listObjectsV2`).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// Milliseconds since the epoch.
    pub last_modified: i64,
}

/// Runs a Task state's resource (`sluice:echo`, `sluice:crawl`, ...) on its effective input,
/// within the state's limits; and reads objects for a distributed Map's `ItemReader` (a bucket
/// names the lake, or a store the runner knows).
pub trait TaskRunner {
    fn run(&mut self, resource: &str, input: &Value, limits: Limits) -> Result<Value, Failure>;

    /// An object's bytes (`s3:getObject`).
    fn get_object(&mut self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        Err(format!("s3://{bucket}/{key}: this runner reads no objects"))
    }

    /// The objects under a prefix, by key (`s3:listObjectsV2`).
    fn list_objects(&mut self, bucket: &str, _prefix: &str) -> Result<Vec<ObjectEntry>, String> {
        Err(format!("s3://{bucket}: this runner lists no objects"))
    }

    /// A Parquet object's rows as JSON objects, at most `limit` (an `ItemReader` with
    /// `"InputType": "PARQUET"`).
    fn parquet_rows(&mut self, _bytes: Vec<u8>, _limit: usize) -> Result<Vec<Value>, String> {
        Err("this runner reads no Parquet".into())
    }

    /// Writes an object (`s3:putObject`: a distributed Map's `ResultWriter`), replacing it.
    fn put_object(&mut self, bucket: &str, key: &str, _body: Vec<u8>) -> Result<(), String> {
        Err(format!(
            "s3://{bucket}/{key}: this runner writes no objects"
        ))
    }
}

/// [`TestTasks`] with objects in memory, by (bucket, key): the conformance corpus's fixtures.
#[derive(Debug, Default)]
pub struct ObjectTasks {
    pub objects: std::collections::BTreeMap<(String, String), Vec<u8>>,
}

impl TaskRunner for ObjectTasks {
    fn run(&mut self, resource: &str, input: &Value, limits: Limits) -> Result<Value, Failure> {
        TestTasks.run(resource, input, limits)
    }

    fn get_object(&mut self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        self.objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
            .ok_or_else(|| format!("s3://{bucket}/{key} does not exist"))
    }

    fn put_object(&mut self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
        self.objects
            .insert((bucket.to_owned(), key.to_owned()), body);
        Ok(())
    }

    fn list_objects(&mut self, bucket: &str, prefix: &str) -> Result<Vec<ObjectEntry>, String> {
        Ok(self
            .objects
            .iter()
            .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((_, key), body)| ObjectEntry {
                key: key.clone(),
                size: body.len() as u64,
                etag: format!(
                    "\"{}\"",
                    md5::Md5::digest(body)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                ),
                last_modified: 0,
            })
            .collect())
    }
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
