use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::*;
use crate::classical::{Classical, Family};
use crate::deepar::artifact::{self, Lineage};
use crate::deepar::{Hyperparameters, Model};
use crate::forecaster;

fn start() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap()
}

fn forecast(samples: Vec<Vec<f32>>) -> Forecast {
    Forecast {
        start: start(),
        samples,
    }
}

fn series(target: Vec<f32>) -> Series {
    Series {
        start: start(),
        target,
        cat: vec![],
        dynamic_feat: vec![],
        item_id: None,
    }
}

fn settings(value: serde_json::Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn deepar(horizon: usize) -> Model {
    let hp = Hyperparameters::from_map(&settings(json!({
        "time_freq": "H", "prediction_length": horizon.to_string(), "context_length": "24",
        "num_cells": "8", "epochs": "1",
    })))
    .unwrap();
    Model::initialise(hp, &mut ChaCha8Rng::seed_from_u64(7), &Device::Cpu).unwrap()
}

fn classical(family: Family, horizon: usize) -> Classical {
    Classical::from_map(
        family,
        &settings(json!({"time_freq": "H", "prediction_length": horizon.to_string()})),
    )
    .unwrap()
}

#[test]
fn paths_are_sorted_step_by_step_and_averaged_with_the_weights() {
    // Member 0's paths cross (path 0 is low then high); sorted per step they are quantile
    // tracks, and the blend's path i is the weighted sum of the members' i-th smallest values.
    let a = [forecast(vec![vec![1.0, 9.0], vec![5.0, 3.0]])];
    let b = [forecast(vec![vec![20.0, 40.0], vec![10.0, 30.0]])];
    let blended = combine(&[(0.25, &a[..]), (0.75, &b[..])]).unwrap();
    assert_eq!(blended.len(), 1);
    assert_eq!(
        blended[0].samples,
        [
            vec![0.25 * 1.0 + 0.75 * 10.0, 0.25 * 3.0 + 0.75 * 30.0],
            vec![0.25 * 5.0 + 0.75 * 20.0, 0.25 * 9.0 + 0.75 * 40.0],
        ]
    );
    // All the weight on one member: its sorted paths.
    let alone = combine(&[(1.0, &a[..]), (0.0, &b[..])]).unwrap();
    assert_eq!(alone[0].samples, [vec![1.0, 3.0], vec![5.0, 9.0]]);
    // Members that drew different paths cannot be blended path by path.
    let short = [forecast(vec![vec![1.0, 2.0]])];
    let err = combine(&[(0.5, &a[..]), (0.5, &short[..])])
        .unwrap_err()
        .to_string();
    assert!(err.contains("member 1 drew 1 paths of 2 steps"), "{err}");
    let none: Vec<Forecast> = vec![];
    let err = combine(&[(0.5, &a[..]), (0.5, &none[..])])
        .unwrap_err()
        .to_string();
    assert!(err.contains("member 1 forecast 0 series"), "{err}");
}

#[test]
fn the_weight_is_the_one_that_scores_best_on_the_windows() {
    // Two windows whose last two points are 10: one member forecasts 8 with a little spread,
    // the other 12; their even blend is right, and the search finds it.
    let scored = vec![
        series(vec![10.0, 11.0, 9.0, 10.0, 10.0, 10.0]),
        series(vec![9.0, 10.0, 11.0, 10.0, 10.0]),
    ];
    let around = |centre: f32| -> Vec<Forecast> {
        (0..2)
            .map(|_| {
                forecast(
                    (0..10)
                        .map(|i| vec![centre + 0.1 * i as f32 - 0.45; 2])
                        .collect(),
                )
            })
            .collect()
    };
    let freq: Frequency = "H".parse().unwrap();
    let quantiles = [0.1, 0.5, 0.9];
    let found = search(
        &around(8.0),
        &around(12.0),
        &scored,
        2,
        freq,
        &quantiles,
        "v",
    )
    .unwrap();
    assert_eq!(found.trials.len(), GRID_STEPS as usize + 1);
    assert_eq!(found.weight, 0.5);
    assert!(found.mixes());
    assert_eq!(found.backtest.family, "blend");
    let at = |w: f64| {
        found
            .trials
            .iter()
            .find(|t| t.weight == w)
            .unwrap()
            .mean_wql
    };
    assert!(at(0.5) < at(0.4) && at(0.5) < at(0.6) && at(0.0) > at(0.3));
    assert_eq!(found.backtest.model.mean_weighted_quantile_loss, at(0.5));
    // When one member is right on its own, the blend is that member alone.
    let alone = search(
        &around(10.0),
        &around(14.0),
        &scored,
        2,
        freq,
        &quantiles,
        "v",
    )
    .unwrap();
    assert_eq!(alone.weight, 1.0);
    assert!(!alone.mixes());
    // Forecasts that do not match the windows are refused, naming them.
    let err = search(
        &around(8.0)[..1],
        &around(12.0),
        &scored,
        2,
        freq,
        &quantiles,
        "v",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("member 1 forecast 2 series, member 0 1"),
        "{err}"
    );
}

#[test]
fn members_must_be_two_or_more_of_the_same_horizon_and_frequency() {
    let err = |members: Vec<Member>| Blend::new(members).err().unwrap().to_string();
    let ets = |h| Forecaster::Classical(classical(Family::Ets, h));
    assert!(
        err(vec![Member {
            weight: 1.0,
            model: ets(24)
        }])
        .contains("has one")
    );
    let mismatch = err(vec![
        Member {
            weight: 0.5,
            model: ets(24),
        },
        Member {
            weight: 0.5,
            model: ets(12),
        },
    ]);
    assert!(
        mismatch.contains("member 1 (ets) forecasts 12 steps"),
        "{mismatch}"
    );
    let negative = err(vec![
        Member {
            weight: -0.5,
            model: ets(24),
        },
        Member {
            weight: 0.5,
            model: ets(24),
        },
    ]);
    assert!(
        negative.contains("member 0 (ets): weight -0.5"),
        "{negative}"
    );
    // Weights are shares: 1 and 3 are a quarter and three quarters.
    let blend = Blend::new(vec![
        Member {
            weight: 1.0,
            model: ets(24),
        },
        Member {
            weight: 3.0,
            model: ets(24),
        },
    ])
    .unwrap();
    assert_eq!(blend.describe(), "ets 0.25, ets 0.75");
}

#[test]
fn a_blend_directory_holds_its_members_and_forecasts_as_their_blend() {
    let work = tempfile::tempdir().unwrap();
    let lineage = Lineage {
        seed: 1,
        train: "train.jsonl".into(),
        dataset_snapshot: Some("ds-9".into()),
    };
    let (net_dir, ets_dir) = (work.path().join("deepar"), work.path().join("ets"));
    let network = deepar(6);
    artifact::save(&network, &net_dir, &lineage).unwrap();
    let ets = classical(Family::Ets, 6);
    ets.save(&ets_dir, &lineage).unwrap();
    let dir = work.path().join("blend");
    save(&dir, &[(0.3, &net_dir), (0.7, &ets_dir)], &lineage).unwrap();
    // No leftovers of the writes; the weights under the member's prefix.
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, [artifact::CONFIG, artifact::WEIGHTS]);
    let tensors =
        candle_core::safetensors::load(dir.join(artifact::WEIGHTS), &Device::Cpu).unwrap();
    assert!(tensors.keys().all(|k| k.starts_with("member0.")));
    assert_eq!(tensors.len(), network.network.snapshot().unwrap().len());

    let (loaded, read) = forecaster::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(read, lineage);
    assert_eq!(loaded.family(), "blend");
    assert_eq!(loaded.prediction_length(), 6);
    let settings = loaded.settings();
    assert_eq!(settings["members"], "deepar 0.3, ets 0.7");
    assert_eq!(settings["member1.algorithm"], "ets");
    assert_eq!(settings["member0.num_cells"], "8");
    loaded.check().unwrap();
    // The probe is long enough for the DeepAR member's context.
    assert!(loaded.probe().target.len() >= 48);

    // It forecasts what its members' forecasts blend to, with the same options.
    let history = vec![series(
        (0..96).map(|t| 10.0 + (t % 24) as f32 * 0.5).collect(),
    )];
    let options = ForecastOptions {
        num_samples: 20,
        seed: 5,
        ..ForecastOptions::default()
    };
    let got = loaded.forecast(&history, options, "h").unwrap();
    let from_net = network.forecast(&history, options, "h").unwrap();
    let from_ets = ets.forecast(&history, options, "h").unwrap();
    let expected = combine(&[(0.3, &from_net[..]), (0.7, &from_ets[..])]).unwrap();
    assert_eq!(got[0].samples, expected[0].samples);

    // A blend whose DeepAR member's weights are gone says which member.
    std::fs::remove_file(dir.join(artifact::WEIGHTS)).unwrap();
    let err = forecaster::load(&dir, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    let config = std::fs::read(dir.join(artifact::CONFIG)).unwrap();
    let err = forecaster::from_bytes(&config, Some(&[]), "b", &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("b/model.safetensors"), "{err}");
    // Without a DeepAR member there is no weights file, and none is needed.
    let theta_dir = work.path().join("theta");
    classical(Family::Theta, 6)
        .save(&theta_dir, &lineage)
        .unwrap();
    let local = work.path().join("local");
    save(&local, &[(0.5, &ets_dir), (0.5, &theta_dir)], &lineage).unwrap();
    assert!(!local.join(artifact::WEIGHTS).exists());
    let (loaded, _) = forecaster::load(&local, &Device::Cpu).unwrap();
    assert_eq!(loaded.settings()["members"], "ets 0.5, theta 0.5");
    // A blend is never a member.
    let err = save(
        &work.path().join("nested"),
        &[(0.5, &dir), (0.5, &ets_dir)],
        &lineage,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("is a blend itself"), "{err}");
}

#[test]
fn sample_paths_round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("validation_forecasts.safetensors");
    let forecasts = vec![
        forecast(vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]),
        forecast(vec![vec![7.0, 8.0, 9.0], vec![10.0, 11.0, 12.5]]),
    ];
    save_paths(&path, &forecasts).unwrap();
    let read = load_paths(&path).unwrap();
    assert_eq!(
        read,
        [forecasts[0].samples.clone(), forecasts[1].samples.clone()]
    );
    assert!(
        !dir.path()
            .join(".validation_forecasts.safetensors.partial")
            .exists()
    );
    // Forecasts of different shapes are refused, naming the one that differs.
    let ragged = vec![forecasts[0].clone(), forecast(vec![vec![1.0, 2.0]])];
    let err = save_paths(&path, &ragged).unwrap_err().to_string();
    assert!(
        err.contains("series 1") && err.contains("not 2 paths of 3 steps"),
        "{err}"
    );
    let err = load_paths(&dir.path().join("none"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("none"), "{err}");
}
