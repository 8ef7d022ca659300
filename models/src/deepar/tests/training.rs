//! Training: refusals by line and field, learning a seasonal panel, reproducibility, save/load,
//! dynamic features at forecast time, forecast summaries.

use candle_core::{DType, Device, Tensor};
use serde_json::json;

use super::super::series::{Series, read_json_lines};
use super::super::*;
use super::{freq, hyperparameters, series};

fn write_lines(lines: &[serde_json::Value]) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    file
}

fn train_error(lines: &[serde_json::Value], extra: serde_json::Value) -> String {
    let file = write_lines(lines);
    let data = read_json_lines(file.path()).unwrap();
    let hp = hyperparameters(extra);
    let options = TrainOptions {
        seed: 0,
        device: Device::Cpu,
        source: "train.jsonl",
        on_epoch: None,
    };
    match train(&hp, &data, options) {
        Ok(_) => panic!("training should refuse the data"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn training_refuses_unusable_series_by_line_and_field() {
    let good =
        json!({"start": "2020-01-01", "target": vec![1.0; 60], "dynamic_feat": [vec![0.0; 60]]});
    let ragged =
        json!({"start": "2020-01-01", "target": vec![1.0; 60], "dynamic_feat": [vec![0.0; 59]]});
    let err = train_error(&[good.clone(), ragged], json!({}));
    assert!(
        err.contains("train.jsonl:2") && err.contains("dynamic_feat[0]") && err.contains("59"),
        "{err}"
    );
    let all_nan =
        json!({"start": "2020-01-01", "target": vec!["NaN"; 60], "dynamic_feat": [vec![0.0; 60]]});
    let err = train_error(&[good.clone(), all_nan], json!({}));
    assert!(
        err.contains("train.jsonl:2") && err.contains("target") && err.contains("missing"),
        "{err}"
    );
    let short =
        json!({"start": "2020-01-01", "target": vec![1.0; 10], "dynamic_feat": [vec![0.0; 10]]});
    let err = train_error(&[short, good.clone()], json!({}));
    assert!(
        err.contains("train.jsonl:1") && err.contains("at least 24"),
        "{err}"
    );
    let negative_target = [vec![1.0; 59], vec![-1.0]].concat();
    let negative =
        json!({"start": "2020-01-01", "target": negative_target, "dynamic_feat": [vec![0.0; 60]]});
    let err = train_error(&[negative], json!({"likelihood": "negative-binomial"}));
    assert!(
        err.contains("target[59]") && err.contains("non-negative"),
        "{err}"
    );
    let err = train_error(&[good], json!({"cardinality": "[2]"}));
    assert!(err.contains("cat") && err.contains("cardinality"), "{err}");
}

/// A panel of hourly series with a daily cycle, a weekly modulation and noise.
fn seasonal_panel(count: usize, length: usize, seed: u64) -> Vec<Series> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let level = 20.0 + 10.0 * i as f32;
            let target = (0..length)
                .map(|t| {
                    let day = (2.0 * std::f32::consts::PI * (t % 24) as f32 / 24.0).sin();
                    let week = if (t / 24) % 7 >= 5 { 0.6 } else { 1.0 };
                    level * (1.0 + 0.8 * day * week) + rng.random_range(-1.0..1.0) * 0.05 * level
                })
                .collect();
            let mut s = series("2021-03-01 00:00:00", target);
            s.cat = vec![i as u32 % 2];
            s
        })
        .collect()
}

fn small_model(epochs: usize, seed: u64) -> (Model, TrainReport, Vec<Series>) {
    small_model_with(epochs, seed, json!({}))
}

fn small_model_with(
    epochs: usize,
    seed: u64,
    extra: serde_json::Value,
) -> (Model, TrainReport, Vec<Series>) {
    small_model_on(&Device::Cpu, epochs, seed, extra)
}

/// A model trained on `device` for `epochs` on six seasonal series whose last day is held out;
/// the panel comes back whole, for backtests.
pub(super) fn small_model_on(
    device: &Device,
    epochs: usize,
    seed: u64,
    extra: serde_json::Value,
) -> (Model, TrainReport, Vec<Series>) {
    let panel = seasonal_panel(6, 24 * 21, 1);
    let train_set: Vec<Series> = panel
        .iter()
        .map(|s| {
            let mut t = s.clone();
            t.target.truncate(s.target.len() - 24);
            t
        })
        .collect();
    let mut settings = json!({"epochs": epochs.to_string(), "num_cells": "16",
        "mini_batch_size": "16", "num_batches_per_epoch": "25", "learning_rate": "0.005",
        "embedding_dimension": "2"});
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let hp = hyperparameters(settings);
    let options = TrainOptions {
        seed,
        device: device.clone(),
        source: "panel",
        on_epoch: None,
    };
    let (model, report) = train(&hp, &train_set, options).unwrap();
    (model, report, panel)
}

/// Backtests `model` on `panel`'s last day and asserts it beats seasonal naive there.
pub(super) fn backtest_beating_seasonal_naive(
    model: &Model,
    panel: &[Series],
) -> evaluate::Backtest {
    let backtest = evaluate::backtest(model, panel, ForecastOptions::default(), "panel").unwrap();
    let (deepar, naive) = (
        backtest.model.mean_weighted_quantile_loss,
        backtest.seasonal_naive.mean_weighted_quantile_loss,
    );
    assert!(
        deepar < naive,
        "DeepAR mean_wQuantileLoss {deepar} should beat seasonal naive's {naive}"
    );
    backtest
}

#[test]
fn a_trained_model_beats_seasonal_naive_on_a_seasonal_panel() {
    let (model, report, panel) = small_model(12, 3);
    assert_eq!(report.epochs.len(), 12);
    assert!(
        report.epochs.last().unwrap().loss < report.epochs[0].loss,
        "{:?}",
        report.epochs
    );
    assert_eq!(model.network.shape.cardinality, vec![2]);
    let backtest = backtest_beating_seasonal_naive(&model, &panel);
    // Forecasts start right after each history and have the asked shape.
    let f = &backtest.forecasts[0];
    assert_eq!(f.samples.len(), 100);
    assert_eq!(f.samples[0].len(), 24);
    assert_eq!(
        f.start,
        model
            .layout
            .freq
            .add(panel[0].start, panel[0].target.len() as i64 - 24)
    );
}

/// What the save/load tests forecast with: few paths, a fixed seed.
pub(super) const FEW_PATHS: ForecastOptions = ForecastOptions {
    num_samples: 20,
    seed: 5,
    batch_series: 4,
};

/// Saves `model` into a fresh directory and loads it onto `device`, checking that its lineage
/// comes back; the directory lives as long as the returned handle.
pub(super) fn save_and_load(model: &Model, device: &Device) -> (tempfile::TempDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    let lineage = artifact::Lineage {
        seed: 11,
        train: "panel".into(),
        dataset_snapshot: Some("snap-1".into()),
    };
    artifact::save(model, dir.path(), &lineage).unwrap();
    let (loaded, read_lineage) = artifact::load(dir.path(), device).unwrap();
    assert_eq!(read_lineage, lineage);
    (dir, loaded)
}

#[test]
fn training_is_reproducible_and_save_load_keeps_forecasts() {
    let (model, report, panel) = small_model(1, 11);
    let (_, again, _) = small_model(1, 11);
    assert_eq!(
        report.epochs[0].loss, again.epochs[0].loss,
        "same seed, same loss"
    );
    let (dir, loaded) = save_and_load(&model, &Device::Cpu);
    let options = FEW_PATHS;
    let before = forecast(&model, &panel, options, "panel").unwrap();
    let after = forecast(&loaded, &panel, options, "panel").unwrap();
    assert_eq!(before, after);
    let other_seed = forecast(
        &loaded,
        &panel,
        ForecastOptions { seed: 6, ..options },
        "panel",
    )
    .unwrap();
    assert_ne!(before, other_seed);
    // A damaged weights file is refused with its path.
    std::fs::write(dir.path().join(artifact::WEIGHTS), b"not safetensors").unwrap();
    let err = artifact::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn forecasts_need_dynamic_features_for_the_horizon() {
    let hp = hyperparameters(
        json!({"num_cells": "4", "num_batches_per_epoch": "1", "mini_batch_size": "4"}),
    );
    let mut s = series("2020-01-01", vec![1.0; 60]);
    s.dynamic_feat = vec![vec![0.5; 60]];
    let options = TrainOptions {
        seed: 0,
        device: Device::Cpu,
        source: "train",
        on_epoch: None,
    };
    let (model, _) = train(&hp, std::slice::from_ref(&s), options).unwrap();
    assert_eq!(model.layout.num_dynamic_feat, 1);
    let err = forecast(&model, &[s.clone()], ForecastOptions::default(), "request")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("request:1") && err.contains("dynamic_feat[0]") && err.contains("84 expected"),
        "{err}"
    );
    s.dynamic_feat[0].extend(vec![0.5; 24]);
    assert_eq!(
        forecast(&model, &[s], ForecastOptions::default(), "request").unwrap()[0].samples[0].len(),
        24
    );
}

#[test]
fn quantiles_and_mean_of_a_forecast() {
    let f = Forecast {
        start: series("2020-01-01", vec![1.0]).start,
        samples: vec![vec![1.0, 10.0], vec![3.0, 30.0], vec![2.0, 20.0]],
    };
    assert_eq!(f.mean(), vec![2.0, 20.0]);
    assert_eq!(f.quantile(0.5), vec![2.0, 20.0]);
    assert_eq!(f.quantile(0.25), vec![1.5, 15.0]);
}

#[test]
fn training_windows_have_their_whole_history_where_the_series_is_long_enough() {
    use rand::SeedableRng;

    use super::super::inputs::{Layout, Prepared};
    use super::super::train::Sampler;
    let layout = Layout::new(freq("H"), 24, 24, 0);
    // Context 24 plus the longest hourly lag (721) minus one.
    assert_eq!(layout.history(), 744);
    let at = "2016-01-01 00:00:00";
    // Split points 0..=1976, of which 744..=1976 (more than half) have the whole history.
    let long = Prepared::new(&series(at, vec![1.0; 2000]), &layout, 0);
    // Split points 0..=1000: fewer than half have it, so all are drawn.
    let short = Prepared::new(&series(at, vec![1.0; 1024]), &layout, 0);
    let sampler = Sampler::new(&[long, short], 24, layout.history());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let mut splits = [Vec::new(), Vec::new()];
    for _ in 0..50_000 {
        let (index, split) = sampler.draw(&mut rng);
        splits[index].push(split);
    }
    let range = |s: &Vec<usize>| (*s.iter().min().unwrap(), *s.iter().max().unwrap());
    assert_eq!(range(&splits[0]), (744, 1976));
    assert_eq!(range(&splits[1]), (0, 1000));
    // Uniform over the 1233 + 1001 (series, split) pairs.
    let share = splits[0].len() as f64 / 50_000.0;
    assert!((share - 1233.0 / 2234.0).abs() < 0.01, "{share}");
}

/// The weights are variables, so arithmetic on them records a computation graph. Whatever
/// outlives a step (the running average of the weights, the LSTM state carried between
/// forecast steps) must hold plain values, or every earlier step's tensors stay alive: memory
/// grew by 17 MB an epoch in training and to 520 MB in one pedestrian backtest.
#[test]
fn weight_averages_and_carried_states_hold_no_computation_graph() {
    let (model, _, _) = small_model(1, 3);
    let network = &model.network;
    let mut average = super::super::train::WeightAverage::new(network).unwrap();
    for _ in 0..3 {
        average.update(network, 0.9).unwrap();
    }
    for (name, value) in average.weights() {
        assert!(
            !value.track_op(),
            "the average of {name} records its history"
        );
    }

    let rows = 2;
    let input = Tensor::zeros((rows, network.shape.input_size), DType::F32, &Device::Cpu).unwrap();
    let bias = network.static_bias(None).unwrap().detach();
    let state = network.zero_state(rows).unwrap();
    let (_, next) = network.step(&input, &bias, &state, None).unwrap();
    assert!(next.0.iter().all(|(h, c)| h.track_op() && c.track_op()));
    let carried = next.detach();
    assert!(
        carried
            .0
            .iter()
            .all(|(h, c)| !h.track_op() && !c.track_op())
    );
    for ((h, c), (h0, c0)) in carried.0.iter().zip(&next.0) {
        assert_eq!(h.to_vec2::<f32>().unwrap(), h0.to_vec2::<f32>().unwrap());
        assert_eq!(c.to_vec2::<f32>().unwrap(), c0.to_vec2::<f32>().unwrap());
    }
}

/// Scheduled sampling writes a draw for predicted point `j` exactly where the step inputs read
/// that point: the same input as [`write_step`] gives for a history continued by the draws.
#[test]
fn fed_back_draws_land_in_the_lags_that_read_them() {
    use super::super::inputs::{Layout, Prepared, write_step};
    use super::super::train::feed_back;
    let layout = Layout::new(freq("H"), 24, 24, 0);
    let values: Vec<f32> = (0..2000).map(|t| t as f32).collect();
    let prepared = Prepared::new(&series("2016-01-01 00:00:00", values), &layout, 0);
    let (split, context) = (1500isize, 24isize);
    // The draws: predicted point j is -(j + 1), unlike any observed value.
    let path: Vec<f32> = (0..24).map(|j| -(j as f32 + 1.0)).collect();
    let width = layout.input_size();
    let mut rewritten = 0;
    for i in context..context + 23 {
        let position = split - context + i;
        let mut truth = vec![0f32; width];
        write_step(
            &layout,
            &prepared,
            position,
            0.0,
            |q| prepared.value(q),
            &mut truth,
        );
        let mut expected = vec![0f32; width];
        let continued = |q: isize| {
            if q >= split {
                path[(q - split) as usize]
            } else {
                prepared.value(q)
            }
        };
        write_step(&layout, &prepared, position, 0.0, continued, &mut expected);
        let mut fed = truth.clone();
        feed_back(&layout.lags, (i + 1 - context) as usize, &path, &mut fed);
        assert_eq!(fed, expected, "step {i}");
        rewritten += fed.iter().zip(&truth).filter(|(a, b)| a != b).count();
    }
    // Lag l reads a draw from step l on: 24 - l of the 23 steps for lags 1-7, one for lag 23.
    assert_eq!(rewritten, 140 + 1);
}

#[test]
fn scheduled_sampling_is_seeded_and_changes_what_the_model_learns() {
    let sampled = || {
        let (_, report, _) = small_model_with(1, 4, json!({"scheduled_sampling": "0.5"}));
        report.epochs[0].loss
    };
    let (_, forced, _) = small_model_with(1, 4, json!({"scheduled_sampling": "0"}));
    let loss = sampled();
    assert_eq!(loss, sampled(), "same seed, same loss");
    assert_ne!(loss, forced.epochs[0].loss);
}
