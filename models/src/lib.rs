//! sluice's forecasting models.
//!
//! - [`metrics`]: forecast accuracy with GluonTS's definitions (MASE, sMAPE, ND, RMSE, NRMSE,
//!   quantile losses, coverage, MSIS), so sluice's figures compare with GluonTS's directly;
//! - [`baseline`]: the seasonal-naive forecaster every model must beat.
//!
//! The DeepAR model (candle), its training loop and the model registry build on these.

pub mod baseline;
pub mod metrics;

/// Errors of the models crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Forecasts and actuals do not line up.
    #[error("series {series}: {reason}")]
    Shape { series: usize, reason: String },
    /// A setting out of its range (a quantile outside (0, 1), a zero season).
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
