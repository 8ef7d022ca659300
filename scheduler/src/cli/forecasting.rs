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
    /// Points forecast, and the length of each test window.
    #[arg(long)]
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
    /// Only this series, by item id (repeat for more: a group's dataset) [default: every one].
    #[arg(long = "only-item", value_name = "ITEM_ID")]
    pub only_items: Vec<String>,
}

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    Cpu,
    /// An NVIDIA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// The model family `sluice train` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    /// DeepAR: a network trained on every series.
    Deepar,
    /// MSTL with an AutoETS trend, fitted per series when it forecasts.
    Mstl,
    /// AutoETS (error, trend and season chosen by AICc), fitted per series when it forecasts.
    Ets,
    /// AutoARIMA (orders by stepwise search), fitted per series when it forecasts.
    Arima,
    /// AutoTheta (the best theta model by in-sample error), fitted per series when it forecasts.
    Theta,
    /// AutoARIMA, AutoETS, MSTL and AutoTheta fitted per series, their quantiles averaged with
    /// weights from each one's loss on the series' last season (`ensemble_members` in the
    /// hyperparameters chooses others).
    Ensemble,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training series, SageMaker DeepAR JSON lines (`start`, `target`, `cat`, `dynamic_feat`).
    #[arg(long, value_name = "FILE")]
    pub train: PathBuf,
    /// Test series: each is scored on its last prediction_length points.
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// The model family: DeepAR, or a classical challenger (whose settings are the model).
    #[arg(long, value_enum, default_value_t = Algorithm::Deepar)]
    pub algorithm: Algorithm,
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
    /// Hold out rolling windows of prediction_length points at the end of every training
    /// series and score a model trained without them on them (validation.json), to choose
    /// among candidates without the test windows.
    #[arg(long)]
    pub validation: bool,
    /// With --validation: how many windows, one horizon apart (default: enough to score about
    /// 1,000 points, one to seven, at most a quarter of the median series).
    #[arg(long, requires = "validation", value_parser = clap::value_parser!(u64).range(1..))]
    pub validation_windows: Option<u64>,
}

/// `sluice tune`: DeepAR's hyperparameters searched by random search with successive halving,
/// as the shipped `tune` workflow (its rungs' trials are Map iterations any worker may run).
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// Training series (JSON lines): every trial holds out rolling windows of prediction_length
    /// points at their end and is scored on them.
    #[arg(long, value_name = "FILE")]
    pub train: PathBuf,
    /// Test series, for every trial's backtest and for registering the best (`--group`).
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// The reference configuration and every trial's base (SageMaker names, string values);
    /// its `epochs` is the whole budget, the last rung's.
    #[arg(long, value_name = "FILE")]
    pub hyperparameters: Option<PathBuf>,
    /// One hyperparameter, NAME=VALUE (repeatable; overrides the file).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// The search space, SageMaker's HyperParameterRanges JSON (IntegerParameterRanges,
    /// ContinuousParameterRanges, CategoricalParameterRanges) [default: ranges around DeepAR's
    /// usual settings].
    #[arg(long, value_name = "FILE")]
    pub ranges: Option<PathBuf>,
    /// Configurations tried, the reference included.
    #[arg(long, default_value_t = 16)]
    pub trials: usize,
    /// Each rung keeps the best 1/eta of the one before, trained eta times longer.
    #[arg(long, default_value_t = 3)]
    pub eta: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the trials' model directories go (a `lake:` key in scale-out).
    #[arg(long, value_name = "DIR", default_value = "work/tune")]
    pub work: String,
    /// The run's name (the execution's): starting twice with one name starts it once.
    #[arg(long)]
    pub name: Option<String>,
    /// Register the best trial in this model group (published if it beats the champion).
    #[arg(long)]
    pub group: Option<String>,
    /// With --group: the improvement over the champion required (0.02: 2 %).
    #[arg(long, default_value_t = 0.0)]
    pub margin: f64,
    /// Start the run and return: `sluice worker` processes run its trials.
    #[arg(long)]
    pub no_wait: bool,
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
