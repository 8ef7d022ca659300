//! Tuning DeepAR's hyperparameters (`sluice tune`, `sluice:tune`), as SageMaker's automatic
//! model tuning does, by random search with successive halving.
//!
//! A tuning run is the shipped `tune` workflow: `sluice:tune`'s `plan` step draws the trials
//! (trial 0 is the run's own hyperparameters, the reference; the others are random draws from
//! the ranges) and the rungs; each rung is a Map whose iterations are `sluice:train` tasks any
//! worker may run, every trial trained with rolling windows of `prediction_length` points at the
//! end of each series held out and scored on them (the validation windows: never the test
//! windows); the `promote`
//! step keeps the best `1/eta` of a rung for the next one, trained `eta` times longer (the
//! others stop there: they are early-stopped on the validation windows); the last rung trains
//! the survivors, and the reference beside them, with the whole budget (the hyperparameters'
//! `epochs`), refitted on all the data; `finish` names the best trial and how it compares with
//! the reference at the same budget. Every trial's draws and scores are in the state the steps
//! pass on, so the execution's history records them all.
//!
//! With `N` trials and reduction `eta`, there are `R = 1 + floor(log_eta N)` rungs; rung `r`
//! trains `floor(N / eta^r)` trials (at least one) for `epochs / eta^(R-1-r)` epochs (at
//! least one): 16 trials with eta 3 are 16, 5 and 1 trials at a ninth, a third and all of the
//! budget.

mod ranges;
mod report;
#[cfg(test)]
mod tests;

use models::deepar::Hyperparameters;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use ranges::{CategoricalRange, NumericRange, Ranges, Scaling, TUNABLE};
pub use report::{Standing, TuneReport, finish};

use crate::{Error, Ops, Result};

/// A tuning run's settings (the `tune` workflow's input, `sluice tune`'s flags).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TuneSettings {
    /// Training series (JSON lines; a `lake:` key in scale-out).
    pub train: String,
    /// Test series, passed to every trial's training for its backtest (never used to choose).
    #[serde(default)]
    pub test: Option<String>,
    /// Where the trials' model directories go: `work/run/trial-NN/rung-R`.
    pub work: String,
    /// The run's name, a folder of `work` (the `tune` workflow passes its execution's name).
    #[serde(default)]
    pub run: String,
    /// How many configurations are tried, the reference included.
    #[serde(default = "default_trials")]
    pub trials: usize,
    /// The reduction factor: a rung keeps the best 1/eta of the one before.
    #[serde(default = "default_eta")]
    pub eta: usize,
    /// Draws the trials, and every trial's training seed (all trials share it, so that only
    /// their hyperparameters differ).
    #[serde(default)]
    pub seed: u64,
    /// The reference configuration and every trial's base: what a trial draws replaces its
    /// values. `epochs` is the budget of the last rung.
    #[serde(default)]
    pub hyperparameters: Map<String, Value>,
    /// SageMaker's `HyperParameterRanges` (default: [`Ranges::defaults`]).
    #[serde(default)]
    pub ranges: Option<Ranges>,
    #[serde(default)]
    pub snapshot_id: Option<String>,
}

fn default_trials() -> usize {
    16
}

fn default_eta() -> usize {
    3
}

/// One rung: how many trials it trains and for how many epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct Rung {
    pub rung: usize,
    pub trials: usize,
    pub epochs: usize,
}

/// One trial's score at one rung.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Score {
    pub rung: usize,
    pub epochs: usize,
    /// mean_wQuantileLoss on the validation windows; none when training failed.
    pub validation_mean_wql: Option<f64>,
    pub model_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A trial: its configuration and what became of it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Trial {
    pub trial: usize,
    /// The values drawn (the reference draws none).
    pub drawn: Map<String, Value>,
    /// The whole configuration trained (the base with the draws; `epochs` set per rung).
    pub hyperparameters: Map<String, Value>,
    pub scores: Vec<Score>,
    /// The rung after which it was stopped.
    pub stopped_after: Option<usize>,
}

/// One `sluice:train` of a rung (the rung's Map items).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TrialItem {
    pub trial: usize,
    pub rung: usize,
    pub train: String,
    pub test: Option<String>,
    pub model_dir: String,
    pub hyperparameters: Map<String, Value>,
    pub seed: u64,
    /// The last rung refits on all the data: its models can be published.
    pub refit: bool,
    pub snapshot_id: Option<String>,
}

/// What a rung's iteration gives back: the trial's validation score, or why it failed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrialResult {
    pub trial: usize,
    pub rung: usize,
    #[serde(default)]
    pub model_dir: Option<String>,
    #[serde(default)]
    pub validation_mean_wql: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

/// The state a tuning run passes from step to step.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TuneState {
    pub settings: TuneSettings,
    pub rungs: Vec<Rung>,
    /// The rung `next` trains.
    pub rung: usize,
    pub trials: Vec<Trial>,
    /// The current rung's trainings (empty once done).
    pub next: Vec<TrialItem>,
    pub done: bool,
}

/// `sluice:tune`'s input: one step of a run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "step", rename_all = "lowercase", deny_unknown_fields)]
pub enum TuneRequest {
    /// Draws the trials and plans the rungs; `run` (the execution's name) replaces the
    /// settings'.
    Plan {
        settings: Box<TuneSettings>,
        #[serde(default)]
        run: Option<String>,
    },
    /// Records a rung's scores and keeps the best for the next rung.
    Promote {
        state: Box<TuneState>,
        results: Vec<TrialResult>,
    },
    /// Names the best trial.
    Finish { state: Box<TuneState> },
}

/// `sluice:tune`'s output: the state for the next step, or the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TuneOutput {
    State(Box<TuneState>),
    Report(Box<TuneReport>),
}

/// The rungs of `trials` configurations reduced by `eta` each time, the last one `epochs` long.
pub fn schedule(trials: usize, eta: usize, epochs: usize) -> Vec<Rung> {
    let mut count = 1;
    let mut power = 1;
    while power * eta <= trials {
        power *= eta;
        count += 1;
    }
    (0..count)
        .map(|r| {
            let shrink = eta.pow((count - 1 - r) as u32);
            Rung {
                rung: r,
                trials: (trials / eta.pow(r as u32)).max(1),
                epochs: ((epochs as f64 / shrink as f64).round() as usize).max(1),
            }
        })
        .collect()
}

/// The reference trial's number.
const REFERENCE: usize = 0;

/// Draws the trials and plans the rungs; every configuration is checked as training would
/// read it, so that a bad range fails here, naming the trial, not at a rung.
pub fn plan(settings: TuneSettings) -> Result<TuneState> {
    if settings.run.is_empty()
        || settings.run.contains(['/', '\\'])
        || settings.run.starts_with('.')
    {
        return Err(Error::invalid(
            "run",
            format!("{:?}: a run is named by one folder name", settings.run),
        ));
    }
    if settings.trials == 0 {
        return Err(Error::invalid("trials", "at least one"));
    }
    if settings.eta < 2 {
        return Err(Error::invalid("eta", "at least 2"));
    }
    if let Some(name) = settings
        .hyperparameters
        .keys()
        .find(|k| k.as_str() == "early_stopping_patience")
    {
        return Err(Error::invalid(
            "hyperparameters",
            format!("{name}: successive halving stops trials; a trial trains its rung's epochs"),
        ));
    }
    let base = Hyperparameters::from_map(&settings.hyperparameters)?;
    let ranges = settings
        .ranges
        .clone()
        .unwrap_or_else(|| Ranges::defaults(base.prediction_length));
    ranges.check()?;
    let rungs = schedule(settings.trials, settings.eta, base.epochs);
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut trials = Vec::with_capacity(settings.trials);
    for trial in 0..settings.trials {
        let drawn = if trial == REFERENCE {
            Map::new()
        } else {
            ranges.sample(&mut rng)
        };
        let mut hyperparameters = settings.hyperparameters.clone();
        hyperparameters.extend(drawn.clone());
        Hyperparameters::from_map(&hyperparameters).map_err(|e| {
            Error::invalid(
                "ranges",
                format!("trial {trial} ({}): {e}", Value::Object(drawn.clone())),
            )
        })?;
        trials.push(Trial {
            trial,
            drawn,
            hyperparameters,
            scores: vec![],
            stopped_after: None,
        });
    }
    let mut state = TuneState {
        settings,
        rung: 0,
        trials,
        next: vec![],
        done: false,
        rungs,
    };
    let all: Vec<usize> = (0..state.trials.len()).collect();
    state.next = items(&state, 0, &all);
    Ok(state)
}

/// The trainings of `rung` for `trials`.
fn items(state: &TuneState, rung: usize, trials: &[usize]) -> Vec<TrialItem> {
    let settings = &state.settings;
    let last = rung + 1 == state.rungs.len();
    trials
        .iter()
        .map(|&t| {
            let mut hyperparameters = state.trials[t].hyperparameters.clone();
            hyperparameters.insert(
                "epochs".into(),
                Value::String(state.rungs[rung].epochs.to_string()),
            );
            TrialItem {
                trial: t,
                rung,
                train: settings.train.clone(),
                test: settings.test.clone(),
                model_dir: format!(
                    "{}/{}/trial-{t:02}/rung-{rung}",
                    settings.work.trim_end_matches('/'),
                    settings.run
                ),
                hyperparameters,
                seed: settings.seed,
                refit: last,
                snapshot_id: settings.snapshot_id.clone(),
            }
        })
        .collect()
}

/// A score's rank key: failed or non-finite scores last, ties by trial number.
fn loss(score: Option<f64>) -> f64 {
    score.filter(|v| v.is_finite()).unwrap_or(f64::INFINITY)
}

/// Records a rung's results and keeps the best `trials` of the next rung (with the reference
/// beside them in the last rung); done after the last rung.
pub fn promote(mut state: TuneState, results: Vec<TrialResult>) -> Result<TuneState> {
    if state.done {
        return Err(Error::invalid(
            "state",
            "the run is done: nothing to promote",
        ));
    }
    let rung = state.rung;
    let epochs = state.rungs[rung].epochs;
    let expected: Vec<usize> = state.next.iter().map(|i| i.trial).collect();
    for item in std::mem::take(&mut state.next) {
        let Some(result) = results
            .iter()
            .find(|r| r.trial == item.trial && r.rung == rung)
        else {
            return Err(Error::invalid(
                "results",
                format!("trial {} has no result for rung {rung}", item.trial),
            ));
        };
        let error = result.error.as_ref().map(|e| match &result.cause {
            Some(cause) => format!("{e}: {cause}"),
            None => e.clone(),
        });
        state.trials[item.trial].scores.push(Score {
            rung,
            epochs,
            validation_mean_wql: result.validation_mean_wql.filter(|v| v.is_finite()),
            model_dir: result.model_dir.clone().unwrap_or(item.model_dir),
            error,
        });
    }
    if let Some(stray) = results
        .iter()
        .find(|r| !expected.contains(&r.trial) || r.rung != rung)
    {
        return Err(Error::invalid(
            "results",
            format!(
                "trial {} rung {} was not trained in rung {rung}",
                stray.trial, stray.rung
            ),
        ));
    }
    let mut ranked = expected.clone();
    ranked.sort_by(|&a, &b| {
        let score = |t: usize| {
            loss(
                state.trials[t]
                    .scores
                    .last()
                    .and_then(|s| s.validation_mean_wql),
            )
        };
        score(a).total_cmp(&score(b)).then(a.cmp(&b))
    });
    if rung + 1 == state.rungs.len() {
        state.done = true;
        return Ok(state);
    }
    let keep = state.rungs[rung + 1].trials.min(ranked.len());
    let (kept, stopped) = ranked.split_at(keep);
    let mut kept = kept.to_vec();
    for &t in stopped {
        state.trials[t].stopped_after = Some(rung);
    }
    // The last rung trains the reference beside the survivors, at the same budget, so that the
    // best is compared with the run's own hyperparameters on equal terms.
    if rung + 2 == state.rungs.len() && !kept.contains(&REFERENCE) {
        kept.push(REFERENCE);
        // It was stopped only as a contender; it goes on as the reference.
        state.trials[REFERENCE].stopped_after = None;
    }
    state.rung = rung + 1;
    state.next = items(&state, rung + 1, &kept);
    Ok(state)
}

impl Ops {
    /// `sluice:tune`: one step of a tuning run (no I/O: the trials train in the rungs' Maps).
    pub async fn tune(&self, request: TuneRequest) -> Result<TuneOutput> {
        Ok(match request {
            TuneRequest::Plan { mut settings, run } => {
                if let Some(run) = run {
                    settings.run = run;
                }
                TuneOutput::State(Box::new(plan(*settings)?))
            }
            TuneRequest::Promote { state, results } => {
                TuneOutput::State(Box::new(promote(*state, results)?))
            }
            TuneRequest::Finish { state } => TuneOutput::Report(Box::new(finish(&state)?)),
        })
    }
}
