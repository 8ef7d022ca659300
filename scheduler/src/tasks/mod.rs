//! Task resources: the jobs a workflow's Task states run, as `sluice:<job>`, in one closed enum.
//! Each is an adapter over an operation of the `ops` crate: the state's input is deserialized
//! into the operation's request (a wrong type or an unknown field fails the task as
//! `Sluice.InvalidInput` naming the field), the operation's output is the task's output, and its
//! errors become ASL error names (`Sluice.TableNotFound`, `Sluice.Reconciliation`, ...) that
//! Retry and Catch match, by the one `From<ops::Error> for asl::Failure` (in `ops`).

use ops::{Observer, Ops};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::asl::Failure;

#[cfg(test)]
mod contract;
mod heartbeat;
mod http;
mod runner;
#[cfg(feature = "test-hooks")]
mod sleep;
mod workspace;
pub use heartbeat::Heartbeat;
pub use runner::InProcess;
use workspace::Workspace;

/// The built-in jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Returns its input (tests, plumbing).
    Echo,
    /// Fails with the `Error` and `Cause` of its input (tests).
    Fail,
    /// [`ops::CrawlRequest`] → the crawl report.
    Crawl,
    /// [`ops::ConvertRequest`] → the conversion report.
    Convert,
    /// [`ops::CompactRequest`] → the compaction report.
    Compact,
    /// [`ops::DatasetRequest`] → [`ops::DatasetManifest`] (with the paths of `train` and `test`).
    Dataset,
    /// [`ops::TrainRequest`] → [`ops::TrainOutput`], with the test metrics beside seasonal
    /// naive's.
    Train,
    /// [`ops::BlendRequest`] → [`ops::BlendOutput`]: the best DeepAR and classical candidates
    /// blended with the weight that scores best on the validation windows, when a mix beats
    /// both; `candidates` lists the request's and the blend.
    Blend,
    /// [`ops::PublishRequest`] → [`ops::PublishOutput`]: registered, and champion if it wins.
    Publish,
    /// [`ops::PromoteRequest`] → [`ops::AliasChange`]: an alias (the champion by default)
    /// points at a version, approving a pending one (after an approval gate).
    Promote,
    /// [`ops::DriftRequest`] → [`ops::DriftOutput`] (the report stored and in the lake).
    DetectDrift,
    /// [`ops::RetrainRequest`] → [`ops::RetrainCheck`]: whether the group is retrained
    /// tonight (no champion, drift, age, new data), and why.
    RetrainCheck,
    /// [`ops::TuneRequest`] → [`ops::TuneOutput`]: one step of a tuning run (the shipped `tune`
    /// workflow): `plan` draws the trials, `promote` keeps a rung's best for the next one,
    /// `finish` names the best trial.
    Tune,
    /// [`ops::BatchForecastRequest`] → the run: its id, lake key, items and rows.
    BatchForecast,
    /// [`ops::QueryRequest`] → [`ops::QueryOutput`]: the first rows, and the whole result in
    /// the lake when `out` names a key.
    Query,
    /// [`ops::TransformRequest`] → the transform report: a derived table built from a
    /// `SELECT` over curated tables, once per input (`status`: `built` or `unchanged`).
    Transform,
    /// Asks for a person's decision, as the job of a callback task
    /// (`sluice:approval.waitForTaskToken`): `{"token", "message", "details"?}` is checked and
    /// logged, and the task then waits for `sluice task success|failure TOKEN` (or the API's);
    /// `sluice task list` shows what is asked.
    Approval,
    /// Step Functions' HTTP Task (`arn:aws:states:::http:invoke`): `{ApiEndpoint, Method,
    /// Headers?, QueryParameters?, RequestBody?, Authentication?: {ConnectionArn}, Transform?}`
    /// → `{Headers, ResponseBody, StatusCode, StatusText}`.
    Http,
    /// Test plumbing, only in builds with the `test-hooks` feature: `{"seconds": 2, "started"?:
    /// path, "effect"?: path}` waits; a `started` file is created as it begins and a line
    /// appended to `effect` as it ends (worker-failover tests).
    #[cfg(feature = "test-hooks")]
    Sleep,
}

impl Job {
    /// Every job, with its resource name.
    pub const ALL: &[(Job, &'static str)] = &[
        (Job::Echo, "sluice:echo"),
        (Job::Fail, "sluice:fail"),
        (Job::Crawl, "sluice:crawl"),
        (Job::Convert, "sluice:convert"),
        (Job::Compact, "sluice:compact"),
        (Job::Dataset, "sluice:dataset"),
        (Job::Train, "sluice:train"),
        (Job::Blend, "sluice:blend"),
        (Job::Publish, "sluice:publish"),
        (Job::Promote, "sluice:promote"),
        (Job::DetectDrift, "sluice:detect-drift"),
        (Job::RetrainCheck, "sluice:retrain-check"),
        (Job::Tune, "sluice:tune"),
        (Job::BatchForecast, "sluice:batch-forecast"),
        (Job::Query, "sluice:query"),
        (Job::Transform, "sluice:transform"),
        (Job::Approval, "sluice:approval"),
        (Job::Http, http::RESOURCE),
        #[cfg(feature = "test-hooks")]
        (Job::Sleep, "sluice:sleep"),
    ];

    /// The job a Task resource names.
    pub fn from_resource(resource: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, name)| *name == resource)
            .map(|(job, _)| *job)
    }

    /// The Task resource that names this job.
    pub fn resource(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(job, _)| *job == self)
            .map(|(_, name)| *name)
            .expect("every job has a resource")
    }
}

/// The resource prefix of an allow-listed command: `sluice:process:NAME`.
pub const PROCESS_PREFIX: &str = "sluice:process:";

/// Whether a Task resource names a job this runner has, or a command `commands` allow-lists
/// (the check of `StateMachine::parse_with_resources`): an unknown or unsupported one is
/// refused at validation with why.
pub fn check_resource(resource: &str, commands: &ops::ProcessCommands) -> Result<(), String> {
    let job = crate::asl::run::callback_base(resource).unwrap_or(resource);
    if Job::from_resource(job).is_some() {
        return Ok(());
    }
    if let Some(name) = job.strip_prefix(PROCESS_PREFIX) {
        return ops::check_command(name, commands);
    }
    if resource.ends_with(".sync") || resource.ends_with(".sync:2") {
        return Err(format!(
            "{resource:?}: .sync integrations are not supported; sluice runs its own jobs"
        ));
    }
    let known: Vec<&str> = Job::ALL.iter().map(|(_, name)| *name).collect();
    Err(format!(
        "unknown resource {resource:?}: sluice runs {}",
        known.join(", ")
    ))
}

/// The Task resources of this binary, for the engine: sluice's jobs and the commands the
/// configuration allow-lists, each run in-process by [`InProcess`].
pub struct Resources;

impl ops::workflows::Resources for Resources {
    fn runnable(
        &self,
        ops: &Ops,
        definition: &Value,
    ) -> Result<crate::asl::definition::StateMachine, crate::asl::definition::ValidationError> {
        runnable(definition, &ops.settings().process)
    }

    fn runner<'a>(
        &'a self,
        ops: &'a Ops,
        handle: tokio::runtime::Handle,
    ) -> Box<dyn crate::asl::run::TaskRunner + 'a> {
        Box::new(InProcess { ops, handle })
    }
}

impl Resources {
    /// An engine over the catalog's pool that runs this binary's Task resources.
    pub fn engine(ops: Ops, pool: sqlx::AnyPool) -> ops::workflows::engine::Engine {
        ops::workflows::engine::Engine::new(ops, pool, std::sync::Arc::new(Resources))
    }
}

/// Parses and validates a definition that sluice can run: valid ASL whose Task resources are
/// all sluice jobs or commands `commands` allow-lists.
pub fn runnable(
    definition: &Value,
    commands: &ops::ProcessCommands,
) -> Result<crate::asl::definition::StateMachine, crate::asl::definition::ValidationError> {
    crate::asl::definition::StateMachine::parse_with_resources(definition, |resource| {
        check_resource(resource, commands)
    })
}

/// The request a job's input holds.
pub(crate) fn request<T: DeserializeOwned>(input: &Value) -> Result<T, Failure> {
    Ok(ops::request::from_json(input.clone())?)
}

/// An operation's output as the task's output.
fn output<T: Serialize>(result: ops::Result<T>) -> Result<Value, Failure> {
    Ok(serde_json::to_value(result?).expect("outputs serialize"))
}

/// Runs an operation whose request has path fields: lake keys among them (`lake:work/...`) are
/// fetched to a scratch folder first, and the folders it writes copied to the lake after it
/// succeeds, with the output's paths pointing back into the lake.
async fn staged<R, T, F, Fut>(ops: &Ops, mut request: R, run: F) -> Result<Value, Failure>
where
    R: ops::request::PathFields,
    T: Serialize,
    F: FnOnce(R) -> Fut,
    Fut: Future<Output = ops::Result<T>>,
{
    if !Workspace::wanted(&mut request) {
        return output(run(request).await);
    }
    let lake = ops.lake()?;
    let workspace = Workspace::prepare(&lake, &mut request).await?;
    let result = output(run(request).await)?;
    workspace.finish(&lake, result).await
}

/// `sluice:fail`'s input: the error and cause to fail with (other fields are whatever the state
/// passed on).
#[derive(serde::Deserialize)]
struct FailInput {
    #[serde(rename = "Error", default = "FailInput::default_error")]
    error: String,
    #[serde(rename = "Cause", default)]
    cause: String,
}

impl FailInput {
    fn default_error() -> String {
        "Sluice.Failed".to_owned()
    }
}

/// `sluice:approval`'s input: the callback's token, and what the approver is asked.
#[derive(serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ApprovalInput {
    token: String,
    message: String,
    #[serde(default)]
    details: Value,
}

fn approval(input: &Value) -> Result<Value, Failure> {
    let approval: ApprovalInput = request(input)?;
    if approval.token.is_empty() {
        return Err(Failure::new(
            "Sluice.InvalidInput",
            "token: empty; pass the callback's token (\"token.$\": \"$$.Task.Token\")",
        ));
    }
    tracing::info!(message = %approval.message, details = %approval.details,
        "approval requested: answer with `sluice task success|failure {}`", approval.token);
    Ok(serde_json::to_value(approval).expect("serializes"))
}

/// Runs one job on its input, beating `heartbeat` as it makes progress.
pub async fn run(
    job: Job,
    input: &Value,
    ops: &Ops,
    heartbeat: &Heartbeat,
) -> Result<Value, Failure> {
    let beating = heartbeat.clone();
    let observer = Observer::new(move |_| beating.beat());
    match job {
        Job::Echo => Ok(input.clone()),
        Job::Approval => approval(input),
        Job::Http => http::invoke(input, ops).await,
        Job::Fail => {
            let fail: FailInput = request(input)?;
            Err(Failure::new(fail.error, fail.cause))
        }
        #[cfg(feature = "test-hooks")]
        Job::Sleep => sleep::run(request(input)?, input, heartbeat).await,
        Job::Crawl => output(ops.crawl(&request(input)?, &observer).await),
        Job::Convert => output(ops.convert(&request(input)?, &observer).await),
        Job::Compact => output(ops.compact(&request(input)?).await),
        Job::Dataset => {
            staged(
                ops,
                request(input)?,
                |r| async move { ops.dataset(&r).await },
            )
            .await
        }
        Job::Train => {
            let observer = &observer;
            staged(ops, request(input)?, |r| async move {
                ops.train(&r, observer).await
            })
            .await
        }
        Job::Blend => staged(ops, request(input)?, |r| async move { ops.blend(&r).await }).await,
        Job::Publish => {
            staged(
                ops,
                request(input)?,
                |publish: ops::PublishRequest| async move {
                    let actor = match &publish.execution {
                        Some(id) => format!("execution:{id}"),
                        None => "workflow".to_owned(),
                    };
                    ops.publish(&publish, &actor).await
                },
            )
            .await
        }
        Job::Promote => output(ops.promote(&request(input)?, "workflow").await),
        Job::DetectDrift => {
            staged(ops, request(input)?, |r| async move {
                ops.detect_drift(&r).await
            })
            .await
        }
        Job::RetrainCheck => output(ops.retrain_check(&request(input)?).await),
        Job::Tune => output(ops.tune(request(input)?).await),
        Job::BatchForecast => {
            staged(ops, request(input)?, |r| async move {
                ops.batch_forecast(&r).await
            })
            .await
        }
        Job::Query => output(ops.query(&request(input)?).await),
        Job::Transform => output(ops.transform(&request(input)?).await),
    }
}
