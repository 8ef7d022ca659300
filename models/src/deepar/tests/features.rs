//! Features per frequency, scaling, the step input, hyperparameters and series parsing.

use chrono::NaiveDate;
use serde_json::json;

use super::super::frequency::{Frequency, TimeFeature, age};
use super::super::inputs::{Layout, Prepared, scales, write_step};
use super::super::likelihood::Likelihood;
use super::super::series::{Origin, parse_series};
use super::super::*;
use super::{freq, hyperparameters, series};

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

#[test]
fn scale_is_the_observed_mean_abs_with_a_batch_default() {
    let s = scales(&[(10.0, 4.0), (0.0, 3.0), (0.0, 0.0)]);
    // Windows without a non-zero observation take the batch's Σ|x| / Σ observed = 10 / 7.
    assert_eq!(s, vec![2.5, 10.0 / 7.0, 10.0 / 7.0]);
    assert_eq!(scales(&[(0.0, 0.0)]), vec![1e-10]);
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

#[test]
fn hyperparameters_take_sagemaker_names_and_string_values() {
    let hp = hyperparameters(
        json!({"num_cells": "8", "likelihood": "negative-binomial", "test_quantiles": "[0.1, 0.5, 0.9]",
        "cardinality": "[3, 2]", "num_dynamic_feat": 2, "early_stopping_patience": "4", "learning_rate": "0.01",
        "scheduled_sampling": "0.25"}),
    );
    assert_eq!(hp.scheduled_sampling, 0.25);
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
    refuse(json!({"scheduled_sampling": "-0.1"}), "scheduled_sampling");
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
