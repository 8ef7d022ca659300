//! Forecast-accuracy drift: stored forecasts joined with the actuals that landed later. Each
//! run is scored with GluonTS's definitions over its quantile columns (weighted quantile loss,
//! and the coverage of its outer quantiles' interval), set against the backtest's figures for
//! the same quantiles; a Page-Hinkley test over the runs' ratios of realised to backtest loss
//! flags a sustained rise. Pure: the caller reads the files.

use serde::Serialize;

use crate::forecasts::ForecastRows;

/// One run's realised accuracy.
#[derive(Debug, Clone, Serialize)]
pub struct RunAccuracy {
    pub run: String,
    pub model_version: u32,
    /// Forecast points with an actual.
    pub points: usize,
    /// Mean over the quantiles of Σ quantile loss / Σ |actual|.
    pub mean_wql: f64,
    /// The share of actuals inside [lowest quantile, highest quantile].
    pub coverage: f64,
    /// What that interval should cover.
    pub nominal_coverage: f64,
    /// The backtest's mean weighted quantile loss on the same quantiles.
    pub backtest_mean_wql: Option<f64>,
}

/// Scores a run's rows against `actual(item, timestamp_ms)`; `None` when no point has one.
pub fn score_run(
    run: &str,
    model_version: u32,
    rows: &ForecastRows,
    actual: impl Fn(&str, i64) -> Option<f64>,
    backtest_mean_wql: Option<f64>,
) -> Option<RunAccuracy> {
    let mut losses = vec![0.0; rows.quantiles.len()];
    let (mut scale, mut points, mut inside) = (0.0, 0usize, 0usize);
    let lowest = rows
        .quantiles
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.0.total_cmp(&b.1.0));
    let highest = rows
        .quantiles
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.0.total_cmp(&b.1.0));
    for i in 0..rows.item_id.len() {
        let Some(y) = actual(&rows.item_id[i], rows.timestamp_ms[i]).filter(|y| y.is_finite())
        else {
            continue;
        };
        points += 1;
        scale += y.abs();
        for (loss, (q, values)) in losses.iter_mut().zip(&rows.quantiles) {
            let forecast = f64::from(values[i]);
            let under = if y <= forecast { 1.0 } else { 0.0 };
            *loss += 2.0 * ((y - forecast) * (under - q)).abs();
        }
        if let (Some((lo, _)), Some((hi, _))) = (lowest, highest)
            && f64::from(rows.quantiles[lo].1[i]) <= y
            && y <= f64::from(rows.quantiles[hi].1[i])
        {
            inside += 1;
        }
    }
    if points == 0 || losses.is_empty() {
        return None;
    }
    let mean_wql = losses
        .iter()
        .map(|l| l / scale.max(f64::EPSILON))
        .sum::<f64>()
        / losses.len() as f64;
    let nominal_coverage = match (lowest, highest) {
        (Some((_, lo)), Some((_, hi))) => hi.0 - lo.0,
        _ => 0.0,
    };
    Some(RunAccuracy {
        run: run.to_owned(),
        model_version,
        points,
        mean_wql,
        coverage: inside as f64 / points as f64,
        nominal_coverage,
        backtest_mean_wql,
    })
}

/// Page-Hinkley test for an increase of the mean: the first index at which the cumulative
/// deviation above the running mean (less `delta` per step) exceeds its minimum by `threshold`.
pub fn page_hinkley(values: &[f64], delta: f64, threshold: f64) -> Option<usize> {
    let (mut mean, mut cumulative, mut minimum) = (0.0, 0.0, 0.0f64);
    for (i, x) in values.iter().enumerate() {
        mean += (x - mean) / (i + 1) as f64;
        cumulative += x - mean - delta;
        minimum = minimum.min(cumulative);
        if cumulative - minimum > threshold {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_scored_with_gluonts_quantile_loss() {
        let rows = ForecastRows {
            item_id: vec!["a".into(), "a".into()],
            timestamp_ms: vec![0, 1],
            step: vec![1, 2],
            mean: vec![10.0, 10.0],
            quantiles: vec![(0.1, vec![8.0, 8.0]), (0.9, vec![12.0, 12.0])],
            ..ForecastRows::default()
        };
        // Actuals 10 and 14: q0.1 loses 2·0.1·2 + 2·0.1·6 = 1.6, q0.9 loses 2·0.1·2 + 2·0.9·2 = 4.0.
        let scored = score_run(
            "r",
            1,
            &rows,
            |_, t| Some(if t == 0 { 10.0 } else { 14.0 }),
            Some(0.1),
        )
        .unwrap();
        assert_eq!(scored.points, 2);
        assert!(
            (scored.mean_wql - (1.6 / 24.0 + 4.0 / 24.0) / 2.0).abs() < 1e-12,
            "{scored:?}"
        );
        assert!((scored.coverage - 0.5).abs() < 1e-12);
        assert!((scored.nominal_coverage - 0.8).abs() < 1e-12);
        assert!(score_run("r", 1, &rows, |_, _| None, None).is_none());
    }

    #[test]
    fn page_hinkley_flags_a_sustained_rise_only() {
        let steady = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.02];
        assert_eq!(page_hinkley(&steady, 0.05, 1.0), None);
        let rising = [1.0, 1.1, 0.9, 1.0, 2.0, 2.1, 2.2, 2.0];
        assert!(page_hinkley(&rising, 0.05, 1.0).is_some_and(|i| i >= 4));
    }
}
