//! The forecasting contest's blend: DeepAR and the best classical challenger on validation,
//! blended as the nightly's blend step blends them (`models::blend`), DeepAR's weight chosen on
//! the validation windows; its test score is that of the blend of the paths its members drew
//! on the test windows.

use anyhow::Context as _;
use models::blend::{combine, search};
use models::deepar::evaluate::score;
use models::deepar::{Forecast, Hyperparameters, Series};

/// One seed's blend: its members, DeepAR's weight chosen on validation, and its scores
/// (test: none when no mix beat its members on validation, so no blend was made).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct BlendRun {
    pub(crate) local: String,
    pub(crate) deepar_weight: f64,
    pub(crate) validation: f64,
    pub(crate) test: Option<f64>,
}

/// The candidates' forecasts: DeepAR's (test, validation), each challenger's (test,
/// validation), the challengers' validation scores and names, in the same order.
pub(crate) struct Members<'a> {
    pub(crate) deepar: (&'a [Forecast], &'a [Forecast]),
    pub(crate) classical: &'a [(Vec<Forecast>, Vec<Forecast>)],
    pub(crate) classical_validation: &'a [f64],
    pub(crate) names: &'a [&'static str],
}

/// The blend of DeepAR and the challenger with the lowest validation score.
pub(crate) fn blend_run(
    members: &Members<'_>,
    validation_lines: &[Series],
    test_set: &[Series],
    hp: &Hyperparameters,
) -> anyhow::Result<BlendRun> {
    let local = members
        .classical_validation
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .context("no challenger")?
        .0;
    let (local_test, local_validation) = &members.classical[local];
    let horizon = hp.prediction_length;
    let found = search(
        members.deepar.1,
        local_validation,
        validation_lines,
        horizon,
        hp.time_freq,
        &hp.test_quantiles,
        "validation",
    )?;
    let test = if found.mixes() {
        let blended = combine(&[
            (found.weight, members.deepar.0),
            (1.0 - found.weight, local_test.as_slice()),
        ])?;
        let scored = score(
            "blend",
            blended,
            test_set,
            horizon,
            hp.time_freq.season(),
            &hp.test_quantiles,
            "test.jsonl",
        )?;
        Some(scored.model.mean_weighted_quantile_loss)
    } else {
        None
    };
    Ok(BlendRun {
        local: members.names[local].to_owned(),
        deepar_weight: found.weight,
        validation: found.backtest.model.mean_weighted_quantile_loss,
        test,
    })
}
