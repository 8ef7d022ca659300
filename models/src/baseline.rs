//! The seasonal-naive forecast: each future step repeats the value one season earlier
//! (GluonTS's `SeasonalNaivePredictor`); with less than a season of history, the last value.

use crate::{Error, Result};

/// The seasonality GluonTS uses for a frequency (`H` → 24, `D` → 1, `W` → 1, `M` → 12, ...).
pub fn seasonality(freq: &str) -> Result<usize> {
    let unit: String = freq
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .to_ascii_uppercase();
    let multiple: usize = freq[..freq.len() - unit.len()].parse().unwrap_or(1).max(1);
    let base = match unit.as_str() {
        "S" => 3600,
        "T" | "MIN" => 1440,
        "H" => 24,
        "D" => 1,
        "B" => 5,
        "W" => 1,
        "M" | "MS" => 12,
        "Q" | "QS" => 4,
        "A" | "Y" => 1,
        _ => {
            return Err(Error::InvalidArgument {
                field: "frequency",
                reason: format!("unknown frequency {freq:?}"),
            });
        }
    };
    // A multiple of the unit shortens the season when it divides it (2H → 12), as GluonTS does.
    Ok(if base % multiple == 0 {
        base / multiple
    } else {
        1
    })
}

/// Forecasts `horizon` steps after `history` (NaN are gaps).
pub fn seasonal_naive(history: &[f64], season: usize, horizon: usize) -> Result<Vec<f64>> {
    if season == 0 {
        return Err(Error::InvalidArgument {
            field: "season",
            reason: "must be at least 1".into(),
        });
    }
    let Some(last) = history.iter().rev().copied().find(|v| !v.is_nan()) else {
        return Err(Error::InvalidArgument {
            field: "history",
            reason: "has no observed value".into(),
        });
    };
    if history.len() < season {
        return Ok(vec![last; horizon]);
    }
    let start = history.len() - season;
    Ok((0..horizon)
        .map(|h| {
            let value = history[start + h % season];
            if value.is_nan() { last } else { value }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_the_last_season() {
        let history = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
        assert_eq!(
            seasonal_naive(&history, 3, 5).unwrap(),
            [10.0, 20.0, 30.0, 10.0, 20.0]
        );
        assert_eq!(seasonal_naive(&[5.0, 7.0], 3, 2).unwrap(), [7.0, 7.0]);
        assert_eq!(
            seasonal_naive(&[1.0, f64::NAN, 3.0], 3, 3).unwrap(),
            [1.0, 3.0, 3.0],
            "gaps fall back to the last value"
        );
        assert!(seasonal_naive(&[f64::NAN], 1, 1).is_err());
    }

    #[test]
    fn seasonality_follows_gluonts() {
        assert_eq!(seasonality("H").unwrap(), 24);
        assert_eq!(seasonality("1h").unwrap(), 24);
        assert_eq!(seasonality("2H").unwrap(), 12);
        assert_eq!(seasonality("D").unwrap(), 1);
        assert_eq!(seasonality("M").unwrap(), 12);
        assert!(seasonality("fortnight").is_err());
    }
}
