//! Drift detection: has the recent window of the data moved away from the window a model was
//! trained on? Per series and feature, Evidently's defaults: the two-sample Kolmogorov-Smirnov
//! test (drift when p < 0.05) while the reference has at most 1000 points, and beyond that the
//! Wasserstein distance in reference standard deviations (drift above 0.1); PSI with bins from
//! the reference's deciles is reported beside either. A series drifts when any of its features
//! does; the data drifts when at least half the series do. Pure: the caller brings the values.
//! [`accuracy`] scores stored forecasts against later actuals; [`store`] keeps the reports.

pub mod accuracy;
pub mod stats;
pub mod store;

use serde::Serialize;

/// Thresholds (Evidently's defaults).
#[derive(Debug, Clone, Copy)]
pub struct DriftOptions {
    /// References up to this size use KS, larger ones Wasserstein.
    pub ks_max_reference: usize,
    pub ks_p_value: f64,
    pub wasserstein_threshold: f64,
    pub psi_bins: usize,
    /// The share of drifted series at which the data drifts.
    pub drift_share: f64,
}

impl Default for DriftOptions {
    fn default() -> Self {
        Self {
            ks_max_reference: 1000,
            ks_p_value: 0.05,
            wasserstein_threshold: 0.1,
            psi_bins: 10,
            drift_share: 0.5,
        }
    }
}

/// One series' feature in the two windows.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub series: &'a str,
    pub feature: &'a str,
    pub reference: &'a [f64],
    pub current: &'a [f64],
}

/// The verdict on one feature of one series.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureDrift {
    pub series: String,
    pub feature: String,
    /// `ks` (score: the p-value) or `wasserstein` (score: the normalised distance).
    pub method: &'static str,
    pub score: f64,
    pub threshold: f64,
    pub drifted: bool,
    pub psi: f64,
    pub reference_points: usize,
    pub current_points: usize,
    pub reference_mean: f64,
    pub current_mean: f64,
}

/// The verdict on a dataset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DataDrift {
    pub series: usize,
    pub drifted_series: usize,
    pub share_drifted: f64,
    pub detected: bool,
    pub features: Vec<FeatureDrift>,
}

fn mean(values: &[f64]) -> f64 {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        f64::NAN
    } else {
        finite.iter().sum::<f64>() / finite.len() as f64
    }
}

/// Tests one feature of one series.
pub fn feature_drift(sample: &Sample<'_>, options: &DriftOptions) -> FeatureDrift {
    let reference_points = sample.reference.iter().filter(|v| v.is_finite()).count();
    let current_points = sample.current.iter().filter(|v| v.is_finite()).count();
    let (method, score, threshold, drifted) = if reference_points <= options.ks_max_reference {
        let (_, p) = stats::ks_2samp(sample.reference, sample.current);
        ("ks", p, options.ks_p_value, p < options.ks_p_value)
    } else {
        let distance = stats::wasserstein_normed(sample.reference, sample.current);
        (
            "wasserstein",
            distance,
            options.wasserstein_threshold,
            distance > options.wasserstein_threshold,
        )
    };
    FeatureDrift {
        series: sample.series.to_owned(),
        feature: sample.feature.to_owned(),
        method,
        score,
        threshold,
        // Too little data in either window is no evidence of drift.
        drifted: drifted && reference_points >= 2 && current_points >= 2,
        psi: stats::psi(sample.reference, sample.current, options.psi_bins),
        reference_points,
        current_points,
        reference_mean: mean(sample.reference),
        current_mean: mean(sample.current),
    }
}

/// Tests every sample and summarises per series.
pub fn data_drift(samples: &[Sample<'_>], options: &DriftOptions) -> DataDrift {
    let features: Vec<FeatureDrift> = samples.iter().map(|s| feature_drift(s, options)).collect();
    let mut series: Vec<&str> = samples.iter().map(|s| s.series).collect();
    series.sort_unstable();
    series.dedup();
    let drifted_series = series
        .iter()
        .filter(|name| features.iter().any(|f| f.series == **name && f.drifted))
        .count();
    let share_drifted = if series.is_empty() {
        0.0
    } else {
        drifted_series as f64 / series.len() as f64
    };
    DataDrift {
        series: series.len(),
        drifted_series,
        share_drifted,
        detected: !series.is_empty() && share_drifted >= options.drift_share,
        features,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daily cycle with noise, shifted by `shift`.
    fn series(days: usize, seed: u64, shift: f64) -> Vec<f64> {
        let mut state = seed;
        (0..days * 24)
            .map(|t| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (state >> 33) as f64 / (1u64 << 31) as f64 - 0.5;
                let day = (2.0 * std::f64::consts::PI * (t % 24) as f64 / 24.0).sin();
                50.0 + 10.0 * day + 4.0 * noise + shift
            })
            .collect()
    }

    #[test]
    fn a_shift_is_detected_and_its_absence_is_not() {
        let names: Vec<String> = (0..6).map(|i| format!("device-{i}")).collect();
        let references: Vec<Vec<f64>> = (0..6).map(|i| series(20, i + 1, 0.0)).collect();
        let same: Vec<Vec<f64>> = (0..6).map(|i| series(2, i + 100, 0.0)).collect();
        let shifted: Vec<Vec<f64>> = (0..6)
            .map(|i| series(2, i + 100, if i < 4 { 12.0 } else { 0.0 }))
            .collect();
        let samples = |current: &[Vec<f64>]| -> Vec<(String, Vec<f64>, Vec<f64>)> {
            names
                .iter()
                .zip(&references)
                .zip(current)
                .map(|((n, r), c)| (n.clone(), r.clone(), c.clone()))
                .collect()
        };
        let run = |data: &[(String, Vec<f64>, Vec<f64>)]| {
            let samples: Vec<Sample<'_>> = data
                .iter()
                .map(|(n, r, c)| Sample {
                    series: n,
                    feature: "target",
                    reference: r,
                    current: c,
                })
                .collect();
            data_drift(&samples, &DriftOptions::default())
        };
        let calm = run(&samples(&same));
        assert!(!calm.detected, "{calm:#?}");
        assert_eq!(calm.features[0].method, "ks");
        let moved = run(&samples(&shifted));
        assert!(moved.detected, "{moved:#?}");
        assert_eq!(moved.drifted_series, 4);
        assert!(moved.features[0].psi > moved.features[5].psi);
        // Past 1000 reference points the test is Wasserstein's.
        let long = vec![(names[0].clone(), series(60, 1, 0.0), series(2, 7, 12.0))];
        let verdict = run(&long);
        assert_eq!(verdict.features[0].method, "wasserstein");
        assert!(verdict.detected);
    }
}
