use serde_json::json;

use super::*;

fn settings(trials: usize) -> TuneSettings {
    serde_json::from_value(json!({
        "train": "data/train.jsonl",
        "work": "work/",
        "run": "tune-1",
        "trials": trials,
        "seed": 7,
        "hyperparameters": {"time_freq": "1h", "prediction_length": "24", "epochs": "27",
                            "context_length": "24", "num_cells": "32"}
    }))
    .unwrap()
}

fn result(trial: usize, rung: usize, loss: Option<f64>) -> TrialResult {
    TrialResult {
        trial,
        rung,
        model_dir: None,
        validation_mean_wql: loss,
        error: loss.is_none().then(|| "Sluice.Training".into()),
        cause: loss.is_none().then(|| "the loss diverged".into()),
    }
}

/// Scores the current rung: trial t's loss is `loss(t)`.
fn score(state: TuneState, loss: impl Fn(usize) -> Option<f64>) -> TuneState {
    let results = state
        .next
        .iter()
        .map(|i| result(i.trial, i.rung, loss(i.trial)))
        .collect();
    promote(state, results).unwrap()
}

#[test]
fn the_schedule_reduces_by_eta_and_ends_with_the_whole_budget() {
    let rungs = |n, eta, epochs| -> Vec<(usize, usize)> {
        schedule(n, eta, epochs)
            .iter()
            .map(|r| (r.trials, r.epochs))
            .collect()
    };
    assert_eq!(rungs(16, 3, 27), [(16, 3), (5, 9), (1, 27)]);
    assert_eq!(
        rungs(16, 2, 32),
        [(16, 2), (8, 4), (4, 8), (2, 16), (1, 32)]
    );
    assert_eq!(
        rungs(9, 3, 2),
        [(9, 1), (3, 1), (1, 2)],
        "at least one epoch"
    );
    assert_eq!(rungs(1, 3, 10), [(1, 10)]);
}

#[test]
fn plan_draws_reproducible_trials_around_the_reference() {
    let a = plan(settings(16)).unwrap();
    let b = plan(settings(16)).unwrap();
    assert_eq!(a, b, "the same seed draws the same trials");
    assert_eq!(a.trials.len(), 16);
    assert!(a.trials[0].drawn.is_empty(), "trial 0 is the reference");
    assert_eq!(a.trials[0].hyperparameters, settings(16).hyperparameters);
    let names: Vec<&str> = a.trials[1].drawn.keys().map(String::as_str).collect();
    for name in TUNABLE {
        assert!(names.contains(&name), "{name} is drawn: {names:?}");
    }
    assert_ne!(a.trials[1].drawn, a.trials[2].drawn);
    for trial in &a.trials[1..] {
        let lr: f64 = trial.drawn["learning_rate"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1e-4..=1e-2).contains(&lr), "{lr}");
        let cells: usize = trial.drawn["num_cells"].as_str().unwrap().parse().unwrap();
        assert!((16..=64).contains(&cells));
        let context: usize = trial.drawn["context_length"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((12..=48).contains(&context));
    }
    assert_eq!(a.next.len(), 16);
    let item = &a.next[3];
    assert_eq!(item.model_dir, "work/tune-1/trial-03/rung-0");
    assert_eq!(item.hyperparameters["epochs"], "3");
    assert!(!item.refit);
    assert_eq!(item.seed, 7);
    let mut other = settings(16);
    other.seed = 8;
    assert_ne!(plan(other).unwrap().trials[1].drawn, a.trials[1].drawn);
}

#[test]
fn rungs_keep_the_best_and_train_the_reference_beside_them_at_the_end() {
    // Lower trial numbers do worse, except that trial 5 fails in the first rung.
    let loss = |t: usize| (t != 5).then(|| 1.0 / (t as f64 + 1.0));
    let state = score(plan(settings(16)).unwrap(), loss);
    assert_eq!(state.rung, 1);
    let kept: Vec<usize> = state.next.iter().map(|i| i.trial).collect();
    assert_eq!(kept, [15, 14, 13, 12, 11]);
    assert!(
        state
            .next
            .iter()
            .all(|i| i.hyperparameters["epochs"] == "9" && !i.refit)
    );
    assert_eq!(state.trials[0].stopped_after, Some(0));
    assert_eq!(state.trials[5].stopped_after, Some(0));
    assert_eq!(
        state.trials[5].scores[0].error.as_deref(),
        Some("Sluice.Training: the loss diverged")
    );
    assert_eq!(state.trials[5].scores[0].validation_mean_wql, None);

    let state = score(state, loss);
    let last: Vec<usize> = state.next.iter().map(|i| i.trial).collect();
    assert_eq!(last, [15, 0], "the best, and the reference for comparison");
    assert_eq!(
        state.trials[0].stopped_after, None,
        "the reference goes on to the last rung"
    );
    assert_eq!(state.trials[14].stopped_after, Some(1));
    assert!(
        state
            .next
            .iter()
            .all(|i| i.refit && i.hyperparameters["epochs"] == "27")
    );
    assert_eq!(state.next[0].model_dir, "work/tune-1/trial-15/rung-2");

    let state = score(state, loss);
    assert!(state.done && state.next.is_empty());
    let report = finish(&state).unwrap();
    assert_eq!(report.best.trial, 15);
    assert_eq!(report.best.epochs, 27);
    assert_eq!(report.reference.as_ref().unwrap().trial, 0);
    assert!(report.beats_reference);
    let improvement = report.improvement_percent.unwrap();
    assert!((improvement - 93.75).abs() < 1e-9, "{improvement}");
    assert!(
        report.summary.contains("trial 15 wins"),
        "{}",
        report.summary
    );
    assert_eq!(report.trials.len(), 16, "every trial is recorded");
    assert_eq!(report.trials[15].scores.len(), 3);
}

#[test]
fn a_reference_nothing_beats_stays_the_best() {
    let state = plan(settings(3)).unwrap();
    assert_eq!(state.rungs.len(), 2);
    let state = score(state, |t| Some(1.0 + t as f64));
    assert_eq!(state.next.iter().map(|i| i.trial).collect::<Vec<_>>(), [0]);
    let state = score(state, |_| Some(0.5));
    let report = finish(&state).unwrap();
    assert_eq!(report.best.trial, 0);
    assert!(!report.beats_reference);
    assert!(report.summary.contains("no drawn trial beat the reference"));
}

#[test]
fn results_must_match_the_rung_and_finish_waits_for_the_last_one() {
    let state = plan(settings(4)).unwrap();
    let partial: Vec<TrialResult> = (0..3).map(|t| result(t, 0, Some(1.0))).collect();
    let err = promote(state.clone(), partial).unwrap_err().to_string();
    assert!(err.contains("trial 3 has no result for rung 0"), "{err}");
    let mut stray: Vec<TrialResult> = (0..4).map(|t| result(t, 0, Some(1.0))).collect();
    stray.push(result(9, 0, Some(1.0)));
    let err = promote(state.clone(), stray).unwrap_err().to_string();
    assert!(err.contains("trial 9"), "{err}");
    let err = finish(&state).unwrap_err().to_string();
    assert!(err.contains("rung 0 of 2 is not scored"), "{err}");
    // Every trial of the last rung failing names their errors.
    let state = score(state, |t| Some(t as f64 + 1.0));
    let state = score(state, |_| None);
    let err = finish(&state).unwrap_err().to_string();
    assert!(err.contains("trial 0: Sluice.Training"), "{err}");
}

#[test]
fn sagemaker_ranges_are_read_and_what_cannot_be_searched_is_refused() {
    let mut s = settings(4);
    s.ranges = Some(
        serde_json::from_value(json!({
            "IntegerParameterRanges": [{"Name": "num_layers", "MinValue": "1", "MaxValue": "2",
                                        "ScalingType": "Linear"}],
            "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.0001",
                                           "MaxValue": 0.01, "ScalingType": "Auto"}],
            "CategoricalParameterRanges": [{"Name": "likelihood", "Values": ["student-T"]}]
        }))
        .unwrap(),
    );
    let state = plan(s.clone()).unwrap();
    let drawn = &state.trials[2].drawn;
    assert_eq!(drawn.len(), 3);
    assert_eq!(drawn["likelihood"], "student-T");
    assert!(["1", "2"].contains(&drawn["num_layers"].as_str().unwrap()));

    let refused = |ranges: Value| {
        let mut s = settings(4);
        s.ranges = Some(serde_json::from_value(ranges).unwrap());
        plan(s).unwrap_err().to_string()
    };
    let e = refused(json!({"IntegerParameterRanges": [
        {"Name": "epochs", "MinValue": 1, "MaxValue": 9}]}));
    assert!(
        e.contains("\"epochs\"") && e.contains("successive halving"),
        "{e}"
    );
    let e = refused(json!({"IntegerParameterRanges": [
        {"Name": "num_celz", "MinValue": 1, "MaxValue": 9}]}));
    assert!(
        e.contains("num_celz") && e.contains("tunable: context_length"),
        "{e}"
    );
    let e = refused(json!({"ContinuousParameterRanges": [
        {"Name": "num_cells", "MinValue": 1, "MaxValue": 9}]}));
    assert!(e.contains("num_cells") && e.contains("whole"), "{e}");
    let e = refused(json!({"ContinuousParameterRanges": [
        {"Name": "learning_rate", "MinValue": 0, "MaxValue": 0.1, "ScalingType": "Logarithmic"}]}));
    assert!(e.contains("above zero"), "{e}");
    let e = refused(json!({"IntegerParameterRanges": [
        {"Name": "num_cells", "MinValue": 64, "MaxValue": 16}]}));
    assert!(e.contains("no greater than MaxValue"), "{e}");
    let e = refused(json!({"CategoricalParameterRanges": [
        {"Name": "likelihood", "Values": ["poisson"]}]}));
    assert!(e.contains("trial 1") && e.contains("poisson"), "{e}");
    assert!(
        serde_json::from_value::<Ranges>(json!({"IntegerParameterRanges": [
            {"Name": "num_cells", "MinValue": "many", "MaxValue": 9}]}))
        .unwrap_err()
        .to_string()
        .contains("\"many\" is not a number")
    );
}

#[test]
fn requests_name_their_step() {
    let plan: TuneRequest = serde_json::from_value(json!({
        "step": "plan", "settings": settings(2)
    }))
    .unwrap();
    assert!(matches!(plan, TuneRequest::Plan { .. }));
    let mut bad = serde_json::to_value(settings(2)).unwrap();
    bad["trails"] = json!(3);
    let err = serde_json::from_value::<TuneRequest>(json!({"step": "plan", "settings": bad}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("trails"), "{err}");
    let err = serde_json::from_value::<TuneRequest>(json!({
        "step": "plan", "settings": settings(2), "trials": 3
    }))
    .unwrap_err()
    .to_string();
    assert!(err.contains("trials"), "{err}");
    let err = serde_json::from_value::<TuneRequest>(json!({"step": "guess"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("guess"), "{err}");
}
