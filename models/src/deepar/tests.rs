//! Unit tests of DeepAR's pieces: features per frequency, the likelihoods against closed forms
//! and finite differences, scaling, parsing with its errors, save/load, and learning.

use candle_core::{Device, Tensor, Var};
use chrono::NaiveDate;
use serde_json::json;

use super::frequency::{Frequency, TimeFeature, age};
use super::inputs::{Layout, Prepared, scales, write_step};
use super::likelihood::{Likelihood, lgamma, softplus};
use super::series::{Origin, Series, parse_series, read_json_lines};
use super::*;

fn freq(text: &str) -> Frequency {
    text.parse().unwrap()
}

#[test]
fn lags_match_gluonts_per_frequency() {
    let hourly: Vec<usize> = [
        1, 2, 3, 4, 5, 6, 7, 23, 24, 25, 47, 48, 49, 71, 72, 73, 95, 96, 97, 119, 120, 121, 143,
        144, 145, 167, 168, 169, 335, 336, 337, 503, 504, 505, 671, 672, 673, 719, 720, 721,
    ]
    .into();
    assert_eq!(freq("H").lags(), hourly);
    assert_eq!(freq("1h").lags(), hourly);
    assert_eq!(
        freq("M").lags(),
        vec![1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 23, 24, 25, 35, 36, 37]
    );
    assert_eq!(
        freq("Q").lags(),
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]
    );
    assert_eq!(
        freq("W").lags(),
        vec![
            1, 2, 3, 4, 5, 6, 7, 8, 12, 51, 52, 53, 103, 104, 105, 155, 156, 157
        ]
    );
    assert_eq!(
        freq("D").lags(),
        vec![
            1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 15, 20, 21, 22, 27, 28, 29, 30, 31, 56, 84, 363, 364,
            365, 727, 728, 729, 1091, 1092, 1093
        ]
    );
    // Two-hourly: the daily cycle is 12 steps.
    assert_eq!(&freq("2H").lags()[..10], &[1, 2, 3, 4, 5, 6, 7, 11, 12, 13]);
    // 15 minutes: the hourly cycle is 4 steps (±2), the daily one 96 (±1).
    assert_eq!(
        &freq("15min").lags()[..10],
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    );
    assert!(freq("15min").lags().ends_with(&[
        95, 96, 97, 191, 192, 193, 287, 288, 289, 383, 384, 385, 479, 480, 481, 575, 576, 577, 671,
        672, 673
    ]));
    assert_eq!(freq("Y").lags(), vec![1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn frequencies_parse_in_pandas_and_sagemaker_spellings() {
    assert_eq!(
        freq("5min"),
        Frequency {
            multiple: 5,
            unit: frequency::Unit::Minute
        }
    );
    assert_eq!(freq("W-SUN").unit, frequency::Unit::Week);
    assert_eq!(freq("MS").unit, frequency::Unit::Month);
    let err = "fortnight".parse::<Frequency>().unwrap_err().to_string();
    assert!(
        err.contains("time_freq") && err.contains("fortnight"),
        "{err}"
    );
    assert!("0H".parse::<Frequency>().is_err());
}

#[test]
fn time_features_are_scaled_like_gluonts() {
    // Wednesday 2016-05-04 13:00, the 125th day of a leap year.
    let at = NaiveDate::from_ymd_opt(2016, 5, 4)
        .unwrap()
        .and_hms_opt(13, 0, 0)
        .unwrap();
    let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-6, "{a} != {b}");
    close(TimeFeature::HourOfDay.value(at), 13.0 / 23.0 - 0.5);
    close(TimeFeature::DayOfWeek.value(at), 2.0 / 6.0 - 0.5);
    close(TimeFeature::DayOfMonth.value(at), 3.0 / 30.0 - 0.5);
    close(TimeFeature::DayOfYear.value(at), 124.0 / 365.0 - 0.5);
    close(TimeFeature::MonthOfYear.value(at), 4.0 / 11.0 - 0.5);
    close(TimeFeature::WeekOfYear.value(at), 17.0 / 52.0 - 0.5);
    close(age(0), 2f32.log10());
    close(age(98), 100f32.log10());
    assert_eq!(freq("H").time_features().len(), 4);
    assert_eq!(freq("M").time_features(), &[TimeFeature::MonthOfYear]);
    // Month arithmetic keeps the day; hours cross midnight.
    assert_eq!(
        freq("M").add(at, 9),
        NaiveDate::from_ymd_opt(2017, 2, 4)
            .unwrap()
            .and_hms_opt(13, 0, 0)
            .unwrap()
    );
    assert_eq!(
        freq("H").add(at, 11),
        NaiveDate::from_ymd_opt(2016, 5, 5)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    );
}

fn tensor(values: &[f64]) -> Tensor {
    Tensor::from_slice(values, values.len(), &Device::Cpu).unwrap()
}

#[test]
fn lgamma_and_softplus_match_known_values() {
    let x = tensor(&[0.5, 1.0, 2.0, 3.5, 10.0, 150.0]);
    let got = lgamma(&x).unwrap().to_vec1::<f64>().unwrap();
    let want = [
        0.5723649429247001,
        0.0,
        0.0,
        1.2009736023470743,
        12.801827480081469,
        600.0094705553274,
    ];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-8, "lgamma {g} != {w}");
    }
    let s = softplus(&tensor(&[-30.0, 0.0, 30.0]))
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert!(
        (s[0] - (-30f64).exp()).abs() < 1e-15
            && (s[1] - 2f64.ln()).abs() < 1e-12
            && (s[2] - 30.0).abs() < 1e-12
    );
}

fn softplus_host(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Closed-form negative log-likelihoods (original units) for a few points.
fn nll_closed_form(likelihood: Likelihood, raw: &[f64], y: f64, scale: f64) -> f64 {
    match likelihood {
        Likelihood::Gaussian => {
            let (mu, sigma) = (raw[0] * scale, softplus_host(raw[1]) * scale);
            0.5 * (2.0 * std::f64::consts::PI).ln() + sigma.ln() + 0.5 * ((y - mu) / sigma).powi(2)
        }
        Likelihood::StudentT => {
            let (df, mu, sigma) = (
                2.0 + softplus_host(raw[0]),
                raw[1] * scale,
                softplus_host(raw[2]) * scale,
            );
            let z = (y - mu) / sigma;
            let lg = |v: f64| lgamma(&tensor(&[v])).unwrap().to_vec1::<f64>().unwrap()[0];
            -(lg((df + 1.0) / 2.0)
                - lg(df / 2.0)
                - 0.5 * (df * std::f64::consts::PI).ln()
                - sigma.ln()
                - (df + 1.0) / 2.0 * (1.0 + z * z / df).ln())
        }
        Likelihood::NegativeBinomial => {
            let (r, mean) = (
                softplus_host(raw[0]),
                (raw[1] + scale.ln()).exp() * softplus_host(raw[0]),
            );
            let p = mean / (mean + r);
            let lg = |v: f64| lgamma(&tensor(&[v])).unwrap().to_vec1::<f64>().unwrap()[0];
            -(lg(y + r) - lg(y + 1.0) - lg(r) + r * (1.0 - p).ln() + y * p.ln())
        }
    }
}

#[test]
fn likelihoods_match_closed_forms_and_finite_differences() {
    let cases: [(Likelihood, Vec<f64>); 3] = [
        (Likelihood::Gaussian, vec![0.3, -0.2, 1.5, 0.7]),
        (Likelihood::StudentT, vec![0.4, 0.3, -0.2, -1.0, 1.5, 0.7]),
        (Likelihood::NegativeBinomial, vec![0.4, -0.3, 1.2, 0.5]),
    ];
    let targets = [3.0, 7.0];
    let scale = 2.5;
    for (likelihood, raw) in cases {
        let k = likelihood.num_args();
        let var =
            Var::from_tensor(&Tensor::from_slice(&raw, (2, k), &Device::Cpu).unwrap()).unwrap();
        let y = tensor(&targets);
        let s = tensor(&[scale, scale]);
        let nll = likelihood
            .negative_log_likelihood(var.as_tensor(), &y, &s)
            .unwrap();
        let values = nll.to_vec1::<f64>().unwrap();
        for (row, &target) in targets.iter().enumerate() {
            let want = nll_closed_form(likelihood, &raw[row * k..(row + 1) * k], target, scale);
            assert!(
                (values[row] - want).abs() < 1e-8,
                "{likelihood}: {} != {want}",
                values[row]
            );
        }
        let grads = nll.sum_all().unwrap().backward().unwrap();
        let analytic = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for i in 0..raw.len() {
            let at = |delta: f64| {
                let mut moved = raw.clone();
                moved[i] += delta;
                let t = Tensor::from_slice(&moved, (2, k), &Device::Cpu).unwrap();
                likelihood
                    .negative_log_likelihood(&t, &y, &s)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let numeric = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!(
                (numeric - analytic[i]).abs() < 1e-5 * (1.0 + numeric.abs()),
                "{likelihood} d/draw[{i}]: autograd {} vs finite difference {numeric}",
                analytic[i]
            );
        }
    }
}

#[test]
fn samples_follow_their_distribution() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for (likelihood, raw, scale) in [
        (Likelihood::Gaussian, vec![1.0f32, 0.5], 1.0f32),
        (Likelihood::StudentT, vec![3.0, 1.0, 0.5], 1.0),
        (Likelihood::NegativeBinomial, vec![1.0, 0.5], 4.0),
    ] {
        let d = likelihood.host_distribution(&raw, scale);
        let n = 20_000;
        let mean = (0..n).map(|_| f64::from(d.sample(&mut rng))).sum::<f64>() / n as f64;
        let want = f64::from(d.mean());
        assert!(
            (mean - want).abs() < 0.05 * want.abs().max(1.0),
            "{likelihood}: sample mean {mean}, mean {want}"
        );
    }
}

#[test]
fn scale_is_the_observed_mean_abs_with_a_batch_default() {
    let s = scales(&[(10.0, 4.0), (0.0, 3.0), (0.0, 0.0)]);
    // Windows without a non-zero observation take the batch's Σ|x| / Σ observed = 10 / 7.
    assert_eq!(s, vec![2.5, 10.0 / 7.0, 10.0 / 7.0]);
    assert_eq!(scales(&[(0.0, 0.0)]), vec![1e-10]);
}

fn series(start: &str, target: Vec<f32>) -> Series {
    Series {
        start: super::series::parse_start(start).unwrap(),
        target,
        cat: vec![],
        dynamic_feat: vec![],
        item_id: None,
    }
}

#[test]
fn step_inputs_read_lags_scale_calendar_and_features() {
    let layout = Layout::new(freq("M"), 3, 2, 1);
    let mut s = series("2020-01-01", (1..=40).map(|v| v as f32).collect());
    s.target[36] = f32::NAN;
    s.dynamic_feat = vec![(0..42).map(|v| v as f32 * 0.5).collect()];
    let prepared = Prepared::new(&s, &layout, 2);
    let mut out = vec![0f32; layout.input_size()];
    // Lag-1 point is position 37 (value 38); the predicted point is 38 (2023-03).
    write_step(
        &layout,
        &prepared,
        37,
        0.25,
        |q| prepared.value(q) / 2.0,
        &mut out,
    );
    let lags = &layout.lags; // 1..7, 11, 12, 13, 23, 24, 25, 35, 36, 37
    for (k, &lag) in lags.iter().enumerate() {
        let position = 38 - lag as isize;
        let want = if position == 36 || position < 0 {
            0.0
        } else {
            (position + 1) as f32 / 2.0
        };
        assert_eq!(out[k], want, "lag {lag}");
    }
    let k = lags.len();
    assert_eq!(out[k], 0.25);
    assert!(
        (out[k + 1] - (2.0 / 11.0 - 0.5)).abs() < 1e-6,
        "month of 2023-03"
    );
    assert!((out[k + 2] - age(38)).abs() < 1e-6);
    assert_eq!(out[k + 3], 19.0);
    assert_eq!(layout.input_size(), k + 4);
    assert_eq!(layout.history(), 3 + 36);
}

fn hyperparameters(extra: serde_json::Value) -> Hyperparameters {
    let mut map =
        json!({"time_freq": "H", "context_length": "24", "prediction_length": "24", "epochs": "1"});
    map.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    Hyperparameters::from_map(map.as_object().unwrap()).unwrap()
}

#[test]
fn hyperparameters_take_sagemaker_names_and_string_values() {
    let hp = hyperparameters(
        json!({"num_cells": "8", "likelihood": "negative-binomial", "test_quantiles": "[0.1, 0.5, 0.9]",
        "cardinality": "[3, 2]", "num_dynamic_feat": 2, "early_stopping_patience": "4", "learning_rate": "0.01"}),
    );
    assert_eq!(hp.num_cells, 8);
    assert_eq!(hp.likelihood, Likelihood::NegativeBinomial);
    assert_eq!(hp.test_quantiles, vec![0.1, 0.5, 0.9]);
    assert_eq!(hp.cardinality, Cardinality::Fixed(vec![3, 2]));
    assert_eq!(hp.num_dynamic_feat, DynamicFeatures::Fixed(2));
    assert_eq!(hp.early_stopping_patience, Some(4));
    assert_eq!(Hyperparameters::from_map(&hp.to_map()).unwrap(), hp);
    let refuse = |extra: serde_json::Value, field: &str| {
        let mut map = json!({"time_freq": "H", "context_length": "24", "prediction_length": "24", "epochs": "1"});
        map.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let err = Hyperparameters::from_map(map.as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{err} should name {field}");
    };
    refuse(json!({"num_cell": "8"}), "num_cell");
    refuse(json!({"time_freq": "fortnight"}), "time_freq");
    refuse(json!({"likelihood": "poisson"}), "likelihood");
    refuse(json!({"dropout_rate": "1.5"}), "dropout_rate");
    refuse(json!({"test_quantiles": "[0.5, 1.0]"}), "test_quantiles");
    refuse(json!({"epochs": "ten"}), "epochs");
}

fn origin() -> Origin<'static> {
    Origin {
        source: "train.jsonl",
        line: 7,
    }
}

#[test]
fn bad_series_name_the_line_and_field() {
    let check = |value: serde_json::Value, want: &str| {
        let err = parse_series(&value, origin()).unwrap_err().to_string();
        assert!(
            err.contains("train.jsonl:7") && err.contains(want),
            "{err} should name {want}"
        );
    };
    check(json!({"target": [1]}), "start");
    check(json!({"start": "yesterday", "target": [1]}), "start");
    check(
        json!({"start": "2020-01-01", "target": [1, "x"]}),
        "target[1]",
    );
    check(
        json!({"start": "2020-01-01", "target": [1], "cat": [-1]}),
        "cat[0]",
    );
    check(
        json!({"start": "2020-01-01", "target": [1], "dynamic_feat": [[1], [2, "a"]]}),
        "dynamic_feat[1][1]",
    );
    let ok = parse_series(
        &json!({"start": "2020-01-01 10:00:00", "target": [1, "NaN", null, 2.5]}),
        origin(),
    )
    .unwrap();
    assert!(ok.target[1].is_nan() && ok.target[2].is_nan() && ok.observed() == 2);
}

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
    let panel = seasonal_panel(6, 24 * 21, 1);
    let train_set: Vec<Series> = panel
        .iter()
        .map(|s| {
            let mut t = s.clone();
            t.target.truncate(s.target.len() - 24);
            t
        })
        .collect();
    let hp = hyperparameters(
        json!({"epochs": epochs.to_string(), "num_cells": "16", "mini_batch_size": "16",
        "num_batches_per_epoch": "25", "learning_rate": "0.005", "embedding_dimension": "2"}),
    );
    let options = TrainOptions {
        seed,
        device: Device::Cpu,
        source: "panel",
        on_epoch: None,
    };
    let (model, report) = train(&hp, &train_set, options).unwrap();
    (model, report, panel)
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
    let backtest = evaluate::backtest(&model, &panel, ForecastOptions::default(), "panel").unwrap();
    let (deepar, naive) = (
        backtest.deepar.mean_weighted_quantile_loss,
        backtest.seasonal_naive.mean_weighted_quantile_loss,
    );
    assert!(
        deepar < naive,
        "DeepAR mean_wQuantileLoss {deepar} should beat seasonal naive's {naive}"
    );
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

#[test]
fn training_is_reproducible_and_save_load_keeps_forecasts() {
    let (model, report, panel) = small_model(1, 11);
    let (_, again, _) = small_model(1, 11);
    assert_eq!(
        report.epochs[0].loss, again.epochs[0].loss,
        "same seed, same loss"
    );
    let dir = tempfile::tempdir().unwrap();
    let lineage = artifact::Lineage {
        seed: 11,
        train: "panel".into(),
        dataset_snapshot: Some("snap-1".into()),
    };
    artifact::save(&model, dir.path(), &lineage).unwrap();
    let (loaded, read_lineage) = artifact::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(read_lineage, lineage);
    let options = ForecastOptions {
        num_samples: 20,
        seed: 5,
        batch_series: 4,
    };
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
fn the_fused_lstm_cell_matches_the_composed_one_and_its_gradients() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (batch, cells) = (3, 5);
    let gates: Vec<f32> = (0..batch * 4 * cells)
        .map(|_| rng.random_range(-4.0..4.0))
        .collect();
    let c_prev: Vec<f32> = (0..batch * cells)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let gates =
        Var::from_tensor(&Tensor::from_vec(gates, (batch, 4 * cells), &Device::Cpu).unwrap())
            .unwrap();
    let c_prev =
        Var::from_tensor(&Tensor::from_vec(c_prev, (batch, cells), &Device::Cpu).unwrap()).unwrap();
    let weights = Tensor::from_vec(
        (0..2 * batch * cells)
            .map(|i| (i % 7) as f32 - 3.0)
            .collect::<Vec<_>>(),
        (2, batch, cells),
        &Device::Cpu,
    )
    .unwrap();
    let run = |fused: bool| {
        let (h, c) = if fused {
            cell::lstm_cell(gates.as_tensor(), c_prev.as_tensor()).unwrap()
        } else {
            cell::composed(gates.as_tensor(), c_prev.as_tensor()).unwrap()
        };
        // A loss that weighs every output differently.
        let loss = ((h * weights.get(0).unwrap()).unwrap().sum_all().unwrap()
            + (c.clone() * weights.get(1).unwrap())
                .unwrap()
                .sum_all()
                .unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (
            flat(&c),
            flat(grads.get(gates.as_tensor()).unwrap()),
            flat(grads.get(c_prev.as_tensor()).unwrap()),
        )
    };
    let (fused, composed) = (run(true), run(false));
    for (name, a, b) in [
        ("c", &fused.0, &composed.0),
        ("d gates", &fused.1, &composed.1),
        ("d c_prev", &fused.2, &composed.2),
    ] {
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(
                (x - y).abs() < 1e-5 * (1.0 + y.abs()),
                "{name}: fused {x} vs composed {y}"
            );
        }
    }
}
