//! The Task runner of the interpreter in this process: each job on the runtime, within the
//! state's `TimeoutSeconds` and `HeartbeatSeconds`, with `lake:` paths resolved around it.

use serde_json::Value;

use super::{Heartbeat, Job, run};
use crate::asl::Failure;
use crate::asl::run::{Limits, ObjectEntry, TaskRunner};

/// Runs Task states in-process: each job on the runtime, from the interpreter's blocking thread.
pub struct InProcess<'a> {
    pub ops: &'a ops::Ops,
    pub handle: tokio::runtime::Handle,
}

impl TaskRunner for InProcess<'_> {
    fn run(&mut self, resource: &str, input: &Value, limits: Limits) -> Result<Value, Failure> {
        if let Some(name) = resource.strip_prefix(super::PROCESS_PREFIX) {
            let request: ops::ProcessRequest = super::request(input)?;
            let ops = self.ops;
            return self.limited(resource, limits, &Heartbeat::new(), async {
                Ok(ops.run_process(name, &request).await?)
            });
        }
        let job = Job::from_resource(resource).ok_or_else(|| {
            let known: Vec<&str> = Job::ALL.iter().map(|(_, name)| *name).collect();
            Failure::new(
                "States.TaskFailed",
                format!("unknown resource {resource:?}: {}", known.join(", ")),
            )
        })?;
        let heartbeat = Heartbeat::new();
        let ops = self.ops;
        self.limited(
            resource,
            limits,
            &heartbeat,
            run(job, input, ops, &heartbeat),
        )
    }

    /// A distributed Map's `s3:getObject`: every bucket names the lake, the key a key in it.
    fn get_object(&mut self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let lake = self.lake()?;
        let what = format!("s3://{bucket}/{key} (the lake's {key})");
        let key = jobs::lake::LakeKey::parse(key).map_err(|e| format!("{what}: {e}"))?;
        self.handle
            .block_on(lake.get(&key))
            .map(|bytes| bytes.to_vec())
            .map_err(|e| format!("{what}: {e}"))
    }

    /// A distributed Map's `ItemReader` over a Parquet object: its rows as JSON objects.
    fn parquet_rows(&mut self, bytes: Vec<u8>, limit: usize) -> Result<Vec<Value>, String> {
        jobs::lake::parquet_rows(bytes::Bytes::from(bytes), limit).map_err(|e| e.to_string())
    }

    /// A distributed Map's `ResultWriter` (`s3:putObject`): the lake's `key`, replaced.
    fn put_object(&mut self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
        let lake = self.lake()?;
        let what = format!("s3://{bucket}/{key} (the lake's {key})");
        let key = jobs::lake::LakeKey::parse(key).map_err(|e| format!("{what}: {e}"))?;
        self.handle
            .block_on(lake.put(&key, bytes::Bytes::from(body)))
            .map_err(|e| format!("{what}: {e}"))
    }

    /// A distributed Map's `s3:listObjectsV2`: the lake's objects whose key starts with
    /// `prefix`, by key.
    fn list_objects(&mut self, bucket: &str, prefix: &str) -> Result<Vec<ObjectEntry>, String> {
        use futures::TryStreamExt;
        let lake = self.lake()?;
        // The store lists by folder: the prefix's folder, then the prefix as text.
        let folder = prefix.rsplit_once('/').map(|(folder, _)| folder);
        let path = folder.map(object_store::path::Path::from);
        let listed: Vec<object_store::ObjectMeta> = self
            .handle
            .block_on(lake.store().list(path.as_ref()).try_collect())
            .map_err(|e| format!("s3://{bucket}/{prefix}: {e}"))?;
        let mut entries: Vec<ObjectEntry> = listed
            .into_iter()
            .filter(|meta| meta.location.as_ref().starts_with(prefix))
            .map(|meta| ObjectEntry {
                key: meta.location.to_string(),
                size: meta.size,
                etag: meta.e_tag.unwrap_or_default(),
                last_modified: meta.last_modified.timestamp_millis(),
            })
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }
}

impl InProcess<'_> {
    fn lake(&self) -> Result<jobs::lake::Lake, String> {
        self.ops.lake().map_err(|e| format!("the lake: {e}"))
    }

    /// Runs a task's work on the runtime within its `TimeoutSeconds` and `HeartbeatSeconds`.
    fn limited(
        &self,
        resource: &str,
        limits: Limits,
        heartbeat: &Heartbeat,
        work: impl Future<Output = Result<Value, Failure>>,
    ) -> Result<Value, Failure> {
        self.handle.block_on(async {
            let timed_out = async {
                match limits.timeout {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            let lapsed = async {
                match limits.heartbeat {
                    Some(every) => heartbeat.lapse(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = work => result,
                () = timed_out => Err(Failure::new(
                    "States.Timeout",
                    format!(
                        "the task ran past its {} s TimeoutSeconds",
                        limits.timeout.unwrap_or_default().as_secs_f64()
                    ),
                )),
                () = lapsed => Err(Failure::new(
                    "States.HeartbeatTimeout",
                    format!(
                        "{resource} sent no heartbeat for {} s (HeartbeatSeconds)",
                        limits.heartbeat.unwrap_or_default().as_secs_f64()
                    ),
                )),
            }
        })
    }
}
