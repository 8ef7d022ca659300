//! Task resources: the jobs a workflow's Task states run, as `sluice:<job>`, in one closed enum.
//! Each job is a plain async function of its JSON input; its report is the task's output, and
//! its errors become ASL error names (`Sluice.TableNotFound`, `Sluice.Reconciliation`, ...) that
//! Retry and Catch match.

use serde_json::{Value, json};

use crate::asl::Failure;
use crate::commands::Context;

mod heartbeat;
mod runner;
mod workspace;
pub use heartbeat::Heartbeat;
pub use runner::InProcess;

/// The built-in jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Returns its input (tests, plumbing).
    Echo,
    /// Fails with the `Error` and `Cause` of its input (tests).
    Fail,
    /// `{"prefix": "landing", "catalog"?, "recrawl"?}` → the crawl report.
    Crawl,
    /// `{"table": "telemetry", "catalog"?, "dest"?, "reprocess"?}` → the conversion report.
    Convert,
    /// `{"table": "telemetry", "catalog"?}` → the compaction report.
    Compact,
    /// `{"table", "item", "target", "prediction_length", "out", "timestamp"?, "freq"?, "agg"?,
    /// "dynamic"?, "cat"?, "test_windows"?, "catalog"?}` → the dataset manifest (with the paths of
    /// `train` and `test`).
    Dataset,
    /// `{"train", "test"?, "hyperparameters": {...}, "model_dir", "seed"?}` → the training report
    /// with the test metrics beside seasonal naive's.
    Train,
    /// `{"group", "model_dir", "test", "margin"?, "seed"?, "execution"?}` → registers the model
    /// and publishes it to `champion` if it wins: `{"version", "published", "reason", ...}`.
    Publish,
    /// `{"train", "test", "subject"?, "table"?, "group"?, "since_hours"?, "catalog"?}` → `{"drift":
    /// {"detected", "reasons", "share_drifted_series", "report_id", ...}}` (stored and in the lake).
    DetectDrift,
    /// `{"group", "input", "version"?, "num_samples"?, "quantiles"?, "seed"?}` → the run: its
    /// id, lake key, items and rows.
    BatchForecast,
    /// Plumbing: `{"seconds": 2, "started"?: path, "effect"?: path}` waits; a `started` file is
    /// created as it begins and a line appended to `effect` as it ends (worker-failover tests).
    Sleep,
}

impl Job {
    /// The job a Task resource names.
    pub fn from_resource(resource: &str) -> Option<Self> {
        Some(match resource.strip_prefix("sluice:")? {
            "echo" => Job::Echo,
            "fail" => Job::Fail,
            "crawl" => Job::Crawl,
            "convert" => Job::Convert,
            "compact" => Job::Compact,
            "dataset" => Job::Dataset,
            "train" => Job::Train,
            "publish" => Job::Publish,
            "detect-drift" => Job::DetectDrift,
            "batch-forecast" => Job::BatchForecast,
            "sleep" => Job::Sleep,
            _ => return None,
        })
    }
}

/// The ASL error name of a job's error.
fn failure(err: &jobs::Error) -> Failure {
    let name = match err {
        jobs::Error::TableNotFound { .. } => "Sluice.TableNotFound",
        jobs::Error::Reconciliation { .. } => "Sluice.Reconciliation",
        jobs::Error::InvalidArgument { .. } | jobs::Error::InvalidKey { .. } => {
            "Sluice.InvalidInput"
        }
        jobs::Error::ObjectStore(_) | jobs::Error::Database(_) => "Sluice.Unavailable",
        _ => "States.TaskFailed",
    };
    Failure::new(name, err.to_string())
}

fn field<'a>(input: &'a Value, name: &str) -> Result<&'a str, Failure> {
    input.get(name).and_then(Value::as_str).ok_or_else(|| {
        Failure::new(
            "Sluice.InvalidInput",
            format!("the task input needs a string field {name:?}: {input}"),
        )
    })
}

/// Runs one job on its input, beating `heartbeat` as it makes progress.
pub async fn run(
    job: Job,
    input: &Value,
    context: &Context,
    heartbeat: &Heartbeat,
) -> Result<Value, Failure> {
    let invalid = |err: anyhow::Error| Failure::new("Sluice.InvalidInput", format!("{err:#}"));
    let unavailable = |err: anyhow::Error| Failure::new("Sluice.Unavailable", format!("{err:#}"));
    let catalog_db = |input: &Value| {
        context
            .catalog_db(input.get("catalog").and_then(Value::as_str))
            .map_err(invalid)
    };
    match job {
        Job::Echo => Ok(input.clone()),
        Job::Fail => Err(Failure::new(
            input
                .get("Error")
                .and_then(Value::as_str)
                .unwrap_or("Sluice.Failed"),
            input
                .get("Cause")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )),
        Job::Sleep => {
            let seconds = input.get("seconds").and_then(Value::as_f64).unwrap_or(1.0);
            let io = |e: std::io::Error| Failure::new("States.TaskFailed", e.to_string());
            if let Some(path) = input.get("started").and_then(Value::as_str) {
                std::fs::write(path, b"started\n").map_err(io)?;
            }
            let until =
                tokio::time::Instant::now() + std::time::Duration::from_secs_f64(seconds.max(0.0));
            let beat_every = input
                .get("beat_seconds")
                .and_then(Value::as_f64)
                .filter(|s| *s > 0.0)
                .map(std::time::Duration::from_secs_f64);
            while tokio::time::Instant::now() < until {
                match beat_every {
                    Some(every) => {
                        tokio::time::sleep_until(until.min(tokio::time::Instant::now() + every))
                            .await;
                        heartbeat.beat();
                    }
                    None => tokio::time::sleep_until(until).await,
                }
            }
            if let Some(path) = input.get("effect").and_then(Value::as_str) {
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
        Job::Crawl => {
            let prefix = jobs::lake::LakeKey::parse(
                input
                    .get("prefix")
                    .and_then(Value::as_str)
                    .unwrap_or("landing"),
            )
            .map_err(|e| failure(&e))?;
            let mut options = jobs::crawler::CrawlOptions::new(catalog_db(input)?, prefix);
            options.recrawl = input
                .get("recrawl")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let beating = heartbeat.clone();
            options.progress = Some(std::sync::Arc::new(move |_| beating.beat()));
            let (lake, catalog) = (
                context.lake().map_err(invalid)?,
                context.catalog().await.map_err(unavailable)?,
            );
            let report = jobs::crawler::crawl(&lake, &catalog, &options)
                .await
                .map_err(|e| failure(&e));
            catalog.close().await;
            Ok(serde_json::to_value(report?).expect("reports serialize"))
        }
        Job::Convert => {
            let mut options =
                jobs::convert::ConvertOptions::new(catalog_db(input)?, field(input, "table")?);
            if let Some(dest) = input.get("dest").and_then(Value::as_str) {
                options.dest = jobs::lake::LakeKey::parse(dest).map_err(|e| failure(&e))?;
            }
            options.reprocess = input
                .get("reprocess")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let date = |name: &str| -> Result<Option<chrono::NaiveDate>, Failure> {
                input
                    .get(name)
                    .and_then(Value::as_str)
                    .map(|text| {
                        text.parse().map_err(|_| {
                            Failure::new(
                                "Sluice.InvalidInput",
                                format!("{name} must be a date (YYYY-MM-DD): {text:?}"),
                            )
                        })
                    })
                    .transpose()
            };
            options.range = date("from")?.zip(date("to")?);
            let beating = heartbeat.clone();
            options.on_source = Some(jobs::convert::SourceDone(std::sync::Arc::new(
                move |_: &str| beating.beat(),
            )));
            let lake = context.lake().map_err(invalid)?;
            let curated_lake = context.curated_lake(&lake).map_err(invalid)?;
            let catalog = context.catalog().await.map_err(unavailable)?;
            let report = jobs::convert::convert(&lake, &curated_lake, &catalog, &options)
                .await
                .map_err(|e| failure(&e));
            catalog.close().await;
            Ok(serde_json::to_value(report?).expect("reports serialize"))
        }
        Job::Dataset => dataset(input, context).await,
        Job::Train => train(input, heartbeat).await,
        Job::Publish => publish(input, context).await,
        Job::BatchForecast => batch_forecast(input, context).await,
        Job::DetectDrift => {
            let since_hours = input
                .get("since_hours")
                .and_then(Value::as_f64)
                .unwrap_or(24.0);
            let spec = crate::commands::drift::DriftSpec {
                train: field(input, "train")?.into(),
                test: field(input, "test")?.into(),
                subject: input
                    .get("subject")
                    .and_then(Value::as_str)
                    .unwrap_or("dataset")
                    .to_owned(),
                table: input
                    .get("table")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                since_ms: Some(jobs::catalog::now_ms() - (since_hours * 3_600_000.0) as i64),
                catalog: input
                    .get("catalog")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                group: input
                    .get("group")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                reference_windows: match input.get("reference_windows") {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(value.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                        Failure::new(
                            "Sluice.InvalidInput",
                            format!("reference_windows must be a positive integer: {value}"),
                        )
                    })? as usize),
                },
            };
            crate::commands::drift::detect(&spec, context)
                .await
                .map(|report| report.json)
                .map_err(|e| command_failure(e, "States.TaskFailed"))
        }
        Job::Compact => {
            let options = jobs::convert::CompactOptions {
                catalog_db: catalog_db(input)?,
                table: field(input, "table")?.to_owned(),
                files: jobs::convert::FileOptions::default(),
            };
            let lake = context.lake().map_err(invalid)?;
            let curated_lake = context.curated_lake(&lake).map_err(invalid)?;
            let catalog = context.catalog().await.map_err(unavailable)?;
            let report = jobs::convert::compact(&curated_lake, &catalog, &options)
                .await
                .map_err(|e| failure(&e));
            catalog.close().await;
            Ok(json!(report?))
        }
    }
}

fn strings(input: &Value, name: &str) -> Vec<String> {
    match input.get(name) {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec![],
    }
}

/// The ASL error of a command-level failure: the job's own name when it is a library error.
fn command_failure(err: anyhow::Error, otherwise: &str) -> Failure {
    if let Some(e) = err.downcast_ref::<jobs::Error>() {
        return failure(e);
    }
    match err.downcast_ref::<models::Error>() {
        Some(models::Error::Input { .. } | models::Error::InvalidArgument { .. }) => {
            Failure::new("Sluice.InvalidInput", format!("{err:#}"))
        }
        Some(models::Error::Conflict { .. }) => {
            Failure::new("Sluice.RegistryConflict", format!("{err:#}"))
        }
        Some(models::Error::NotFound { .. }) => Failure::new("Sluice.NotFound", format!("{err:#}")),
        Some(models::Error::Database(_)) => Failure::new("Sluice.Unavailable", format!("{err:#}")),
        _ => Failure::new(otherwise, format!("{err:#}")),
    }
}

async fn batch_forecast(input: &Value, context: &Context) -> Result<Value, Failure> {
    let invalid = |reason: String| Failure::new("Sluice.InvalidInput", reason);
    let quantiles = match input.get("quantiles") {
        None => vec![0.1, 0.5, 0.9],
        Some(value) => value
            .as_array()
            .map(|items| items.iter().filter_map(Value::as_f64).collect())
            .filter(|q: &Vec<f64>| !q.is_empty() && q.iter().all(|q| *q > 0.0 && *q < 1.0))
            .ok_or_else(|| invalid(format!("quantiles: expected numbers in (0, 1): {value}")))?,
    };
    let spec = crate::commands::batch_forecast::BatchSpec {
        group: models::registry::GroupName::parse(field(input, "group")?)
            .map_err(|e| invalid(e.to_string()))?,
        target: models::registry::Target::parse(
            input
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("champion"),
        )
        .map_err(|e| invalid(e.to_string()))?,
        input: field(input, "input")?.into(),
        num_samples: input
            .get("num_samples")
            .and_then(Value::as_u64)
            .unwrap_or(100) as usize,
        quantiles,
        seed: input.get("seed").and_then(Value::as_u64).unwrap_or(0),
    };
    crate::commands::batch_forecast::batch_forecast(&spec, context)
        .await
        .map(|report| report.json)
        .map_err(|e| command_failure(e, "States.TaskFailed"))
}

async fn publish(input: &Value, context: &Context) -> Result<Value, Failure> {
    let invalid = |reason: String| Failure::new("Sluice.InvalidInput", reason);
    let spec = crate::commands::registry::PublishSpec {
        group: models::registry::GroupName::parse(field(input, "group")?)
            .map_err(|e| invalid(e.to_string()))?,
        model_dir: field(input, "model_dir")?.into(),
        test: field(input, "test")?.into(),
        margin: input.get("margin").and_then(Value::as_f64).unwrap_or(0.0),
        seed: input.get("seed").and_then(Value::as_u64).unwrap_or(0),
        actor: match input.get("execution").and_then(Value::as_str) {
            Some(id) => format!("execution:{id}"),
            None => "workflow".to_owned(),
        },
        training_execution: input
            .get("execution")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let report = crate::commands::registry::publish(spec, context)
        .await
        .map_err(|e| command_failure(e, "States.TaskFailed"))?;
    Ok(report.json)
}

async fn dataset(input: &Value, context: &Context) -> Result<Value, Failure> {
    let invalid = |reason: String| Failure::new("Sluice.InvalidInput", reason);
    let prediction_length = input
        .get("prediction_length")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            invalid(format!(
                "the task input needs a number \"prediction_length\": {input}"
            ))
        })?;
    let spec = jobs::dataset::DatasetSpec {
        item_columns: strings(input, "item"),
        timestamp: input
            .get("timestamp")
            .and_then(Value::as_str)
            .unwrap_or("ts")
            .to_owned(),
        target: field(input, "target")?.to_owned(),
        frequency: input
            .get("freq")
            .and_then(Value::as_str)
            .unwrap_or("1h")
            .to_owned(),
        aggregation: input
            .get("agg")
            .and_then(Value::as_str)
            .unwrap_or("mean")
            .parse()
            .map_err(|e: jobs::Error| invalid(e.to_string()))?,
        dynamic_features: strings(input, "dynamic"),
        categorical_features: strings(input, "cat"),
        prediction_length: prediction_length as usize,
        test_windows: input
            .get("test_windows")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize,
    };
    let out = std::path::PathBuf::from(field(input, "out")?);
    let catalog = input.get("catalog").and_then(Value::as_str);
    let report =
        crate::commands::dataset::build_to(&spec, field(input, "table")?, catalog, &out, context)
            .await
            .map_err(|e| command_failure(e, "States.TaskFailed"))?;
    Ok(report.json)
}

async fn train(input: &Value, heartbeat: &Heartbeat) -> Result<Value, Failure> {
    let empty = serde_json::Map::new();
    let map = input
        .get("hyperparameters")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let hp = models::deepar::Hyperparameters::from_map(map)
        .map_err(|e| Failure::new("Sluice.InvalidInput", e.to_string()))?;
    let kind = match input.get("device").and_then(Value::as_str).unwrap_or("cpu") {
        "cpu" => crate::cli::DeviceKind::Cpu,
        "cuda" => crate::cli::DeviceKind::Cuda,
        other => {
            return Err(Failure::new(
                "Sluice.InvalidInput",
                format!("device {other:?}: use cpu or cuda"),
            ));
        }
    };
    let device = crate::commands::forecasting::device(kind)
        .map_err(|e| command_failure(e, "Sluice.InvalidInput"))?;
    let run = crate::commands::forecasting::TrainRun {
        train: field(input, "train")?.into(),
        test: input.get("test").and_then(Value::as_str).map(Into::into),
        model_dir: field(input, "model_dir")?.into(),
        seed: input.get("seed").and_then(Value::as_u64).unwrap_or(0),
        device,
        progress: false,
        heartbeat: Some(heartbeat.clone()),
    };
    let report = crate::commands::forecasting::train_to(hp, run)
        .await
        .map_err(|e| command_failure(e, "Sluice.TrainingFailed"))?;
    Ok(report.json)
}
