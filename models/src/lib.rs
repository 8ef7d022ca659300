//! sluice's forecasting models.
//!
//! - [`metrics`]: forecast accuracy with GluonTS's definitions (MASE, sMAPE, ND, RMSE, NRMSE,
//!   quantile losses, coverage, MSIS), so sluice's figures compare with GluonTS's directly;
//! - [`baseline`]: the seasonal-naive forecaster every model must beat.
//!
//! - [`forecaster`]: every model family behind one face ([`forecaster::Forecasting`]), and
//!   model directories of any family;
//! - [`blend`]: a global and a local model's forecasts averaged quantile by quantile, the
//!   weight chosen on validation windows;
//! - [`classical`]: the challengers fitted per series (MSTL, AutoETS, AutoARIMA, AutoTheta and
//!   their weighted ensemble);
//! - [`deepar`]: DeepAR (Salinas et al.; GluonTS's design) on candle: features, likelihoods,
//!   training, sampling forecasts and the model directory;
//! - [`inference`]: SageMaker DeepAR's request and response JSON;
//! - [`registry`]: model groups, numbered versions with lineage, statuses, aliases and their
//!   history, and the publish decision.

pub mod baseline;
pub mod blend;
pub mod classical;
pub mod deepar;
pub mod forecaster;
pub mod inference;
pub mod metrics;
pub mod registry;

/// Errors of the models crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Forecasts and actuals do not line up.
    #[error("series {series}: {reason}")]
    Shape { series: usize, reason: String },
    /// A setting out of its range (a quantile outside (0, 1), a zero season).
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// A series (a dataset line or a request instance) the model cannot use.
    #[error("{file}:{line}: {field}: {reason}")]
    Input {
        file: String,
        line: usize,
        field: String,
        reason: String,
    },
    /// A model directory or dataset that cannot be read or written.
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    /// Training diverged (a NaN loss) or could not start.
    #[error("training failed: {reason}")]
    Training { reason: String },
    /// A registry object that does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// A registry change that the current state forbids (promoting a rejected version).
    #[error("{what}: {reason}")]
    Conflict { what: String, reason: String },
    /// The registry database failed.
    #[error("registry database: {0}")]
    Database(#[from] sqlx::Error),
    /// The tensor library failed (a device, a shape).
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
