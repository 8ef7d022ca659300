//! A finished tuning run's report: the best trial of the last rung, the reference beside it,
//! and every trial's record.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{REFERENCE, Rung, Trial, TuneState};
use crate::{Error, Result};

/// A trial as `finish` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing {
    pub trial: usize,
    pub drawn: Map<String, Value>,
    pub epochs: usize,
    pub validation_mean_wql: f64,
    pub model_dir: String,
}

/// `finish`'s output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TuneReport {
    /// The best trial of the last rung (the reference when nothing drawn beat it).
    pub best: Standing,
    /// The run's own hyperparameters, trained with the whole budget beside the best.
    pub reference: Option<Standing>,
    /// Whether the best is a drawn trial that beat the reference.
    pub beats_reference: bool,
    /// How much lower the best's validation loss is than the reference's, in percent.
    pub improvement_percent: Option<f64>,
    pub rungs: Vec<Rung>,
    /// Every trial: its draws, its score at each rung it reached, and where it stopped.
    pub trials: Vec<Trial>,
    /// One line for the history.
    pub summary: String,
}

/// The best trial of the last rung, and the reference beside it.
pub fn finish(state: &TuneState) -> Result<TuneReport> {
    if !state.done {
        return Err(Error::invalid(
            "state",
            format!(
                "rung {} of {} is not scored yet",
                state.rung,
                state.rungs.len()
            ),
        ));
    }
    let last = state.rungs.len() - 1;
    let standing = |trial: &Trial| {
        let score = trial.scores.iter().find(|s| s.rung == last)?;
        Some(Standing {
            trial: trial.trial,
            drawn: trial.drawn.clone(),
            epochs: score.epochs,
            validation_mean_wql: score.validation_mean_wql?,
            model_dir: score.model_dir.clone(),
        })
    };
    let best = state
        .trials
        .iter()
        .filter_map(standing)
        .min_by(|a, b| {
            a.validation_mean_wql
                .total_cmp(&b.validation_mean_wql)
                .then(a.trial.cmp(&b.trial))
        })
        .ok_or_else(|| {
            let errors: Vec<String> = state
                .trials
                .iter()
                .filter_map(|t| {
                    let s = t.scores.iter().find(|s| s.rung == last)?;
                    Some(format!("trial {}: {}", t.trial, s.error.as_deref()?))
                })
                .collect();
            Error::invalid(
                "results",
                format!(
                    "no trial of the last rung was scored ({})",
                    errors.join("; ")
                ),
            )
        })?;
    let reference = state.trials.get(REFERENCE).and_then(standing);
    let improvement_percent = reference
        .as_ref()
        .filter(|r| r.validation_mean_wql > 0.0)
        .map(|r| (1.0 - best.validation_mean_wql / r.validation_mean_wql) * 100.0);
    let beats_reference = best.trial != REFERENCE
        && reference
            .as_ref()
            .is_none_or(|r| best.validation_mean_wql < r.validation_mean_wql);
    let summary = match (&reference, beats_reference) {
        (Some(r), true) => format!(
            "trial {} wins with validation mean_wQuantileLoss {:.4}, {:.1} % below the reference's {:.4} at {} epochs ({} trials, {} rungs)",
            best.trial,
            best.validation_mean_wql,
            improvement_percent.unwrap_or(0.0),
            r.validation_mean_wql,
            best.epochs,
            state.trials.len(),
            state.rungs.len()
        ),
        (Some(r), false) => format!(
            "no drawn trial beat the reference ({:.4} at {} epochs); it stays the best ({} trials, {} rungs)",
            r.validation_mean_wql,
            r.epochs,
            state.trials.len(),
            state.rungs.len()
        ),
        (None, _) => format!(
            "trial {} wins with validation mean_wQuantileLoss {:.4}; the reference failed ({} trials)",
            best.trial,
            best.validation_mean_wql,
            state.trials.len()
        ),
    };
    Ok(TuneReport {
        best,
        reference,
        beats_reference,
        improvement_percent,
        rungs: state.rungs.clone(),
        trials: state.trials.clone(),
        summary,
    })
}
