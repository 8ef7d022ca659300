//! The arguments of the forecasting commands: `dataset`, `train`, `forecast`, `bench forecast`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// The table (crawled or curated); its converted Parquet is read.
    pub table: String,
    /// Column(s) that identify a series (repeat or comma-separate).
    #[arg(long = "item", value_delimiter = ',', required = true)]
    pub items: Vec<String>,
    /// Timestamp column.
    #[arg(long, default_value = "ts")]
    pub timestamp: String,
    /// The column to forecast.
    #[arg(long)]
    pub target: String,
    /// Sampling frequency: 30s, 15min, 1h, 1d, or by the calendar W (weeks from Monday), M, Q;
    /// with a multiple (2h, 2W).
    #[arg(long = "freq", default_value = "1h")]
    pub frequency: String,
    /// How the points of a bucket become one value.
    #[arg(long = "agg", default_value = "mean", value_parser = ["mean", "sum", "last", "max"])]
    pub aggregation: String,
    /// Dynamic real features (bucket means, carried over gaps).
    #[arg(long = "dynamic", value_delimiter = ',')]
    pub dynamic_features: Vec<String>,
    /// Categorical features (one value per item: its last).
    #[arg(long = "cat", value_delimiter = ',')]
    pub categorical_features: Vec<String>,
    #[arg(long, default_value_t = 24)]
    pub prediction_length: usize,
    /// Rolling test windows after the cut.
    #[arg(long, default_value_t = 1)]
    pub test_windows: usize,
    /// Directory for train.jsonl, test.jsonl and dataset.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Catalog database [default: from config, "default"].
    #[arg(long)]
    pub catalog: Option<String>,
}

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    Cpu,
    /// An NVIDIA GPU (needs a build with `--features cuda`).
    Cuda,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training series, SageMaker DeepAR JSON lines (`start`, `target`, `cat`, `dynamic_feat`).
    #[arg(long, value_name = "FILE")]
    pub train: PathBuf,
    /// Test series: each is scored on its last prediction_length points.
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// Hyperparameters as a JSON object with SageMaker's names and (string) values.
    #[arg(long, value_name = "FILE")]
    pub hyperparameters: Option<PathBuf>,
    /// One hyperparameter, NAME=VALUE (repeatable; overrides the file).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Directory for the model (config.json, model.safetensors, metrics.json, training.json).
    #[arg(long, value_name = "DIR")]
    pub model_dir: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
}

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// A model directory written by `sluice train`.
    #[arg(long, value_name = "DIR")]
    pub model_dir: PathBuf,
    /// A SageMaker DeepAR request (`{"instances": [...], "configuration": {...}}`); `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Seed of the sample paths.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
}

#[derive(Debug, Clone, Args)]
pub struct BenchForecastArgs {
    /// The benchmark's data: one folder per dataset with train.jsonl, test.jsonl, metadata.json.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Datasets to run.
    #[arg(long, value_delimiter = ',', default_value = "pedestrian,aus_retail")]
    pub datasets: Vec<String>,
    /// Seeds 0..N for each engine.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Epochs (the peer's fixed setting is 20).
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Python with GluonTS, to run the peer in the same run (scripts/bench-forecast.sh sets it up).
    #[arg(long, requires = "gluonts_script")]
    pub gluonts_python: Option<PathBuf>,
    /// The peer's script (../shared/bench/forecast/run_gluonts.py).
    #[arg(long)]
    pub gluonts_script: Option<PathBuf>,
    /// Torch thread counts to run GluonTS with; its best is the reference.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub gluonts_threads: Vec<u32>,
}

#[derive(Debug, Args)]
pub struct BenchServeArgs {
    /// Hourly series (train.jsonl): ../shared/bench/forecast/data/pedestrian.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Python with GluonTS, to measure the peer in the same run (scripts/bench-serve.sh sets it up).
    #[arg(long)]
    pub gluonts_python: Option<PathBuf>,
    /// Sequential requests for the latency percentiles.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Clients at once for the saturation phase.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Length of the saturation phase.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Hours of history each request sends.
    #[arg(long, default_value_t = 800)]
    pub history: usize,
    /// Training epochs of both models (10 batches each; latency does not depend on the fit).
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
}
