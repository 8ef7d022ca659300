//! Frequencies and the features derived from them, as GluonTS defines them: the lags DeepAR
//! feeds its network (`get_lags_for_frequency`), the calendar features scaled to [-0.5, 0.5]
//! (`time_features_from_frequency_str`) and the age feature (`log10(2 + index)`).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Duration, Months, NaiveDateTime, Timelike};

use crate::{Error, Result};

/// The unit of a frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    BusinessDay,
    Week,
    Month,
    Quarter,
    Year,
}

/// A sampling frequency such as `1h`, `5min`, `D`, `W` or `M` (pandas and SageMaker spellings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frequency {
    pub multiple: u32,
    pub unit: Unit,
}

impl FromStr for Frequency {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidArgument {
            field: "time_freq",
            reason: format!("{text:?}: {reason}"),
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, name) = trimmed.split_at(split);
        let multiple = if digits.is_empty() {
            1
        } else {
            digits
                .parse::<u32>()
                .map_err(|_| invalid("the multiple is not a number"))?
        };
        if multiple == 0 {
            return Err(invalid("the multiple must be at least 1"));
        }
        // `W-SUN`, `M-DEC` and the like anchor the period; the features do not depend on it.
        let name = name.split('-').next().unwrap_or_default();
        let unit = match name {
            "S" | "s" | "sec" => Unit::Second,
            "T" | "min" => Unit::Minute,
            "H" | "h" => Unit::Hour,
            "D" | "d" => Unit::Day,
            "B" => Unit::BusinessDay,
            "W" | "w" => Unit::Week,
            "M" | "MS" | "ME" => Unit::Month,
            "Q" | "QS" | "QE" => Unit::Quarter,
            "A" | "Y" | "YS" | "YE" | "AS" => Unit::Year,
            _ => {
                return Err(invalid(
                    "unknown frequency (use S, min, H, D, B, W, M, Q or Y with an optional multiple)",
                ));
            }
        };
        if unit == Unit::Quarter && multiple != 1 {
            return Err(invalid(
                "quarters take no multiple; use months instead (e.g. 6M)",
            ));
        }
        Ok(Self { multiple, unit })
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.unit {
            Unit::Second => "S",
            Unit::Minute => "min",
            Unit::Hour => "H",
            Unit::Day => "D",
            Unit::BusinessDay => "B",
            Unit::Week => "W",
            Unit::Month => "M",
            Unit::Quarter => "Q",
            Unit::Year => "Y",
        };
        if self.multiple == 1 {
            write!(f, "{name}")
        } else {
            write!(f, "{}{name}", self.multiple)
        }
    }
}

/// `[middle - delta, middle + delta]`.
fn around(middle: f64, delta: i64) -> Vec<i64> {
    let middle = middle.floor() as i64;
    (middle - delta..=middle + delta).collect()
}

fn cycles(count: u32, period: f64, multiple: f64, delta: i64) -> Vec<i64> {
    (1..=count)
        .flat_map(|k| around((k as f64 * period / multiple).floor(), delta))
        .collect()
}

fn lags_for_minute(multiple: f64) -> Vec<i64> {
    cycles(3, 60.0, multiple, 2)
}
fn lags_for_hour(multiple: f64) -> Vec<i64> {
    cycles(7, 24.0, multiple, 1)
}
fn lags_for_day(multiple: f64, days_in_week: f64, days_in_month: f64) -> Vec<i64> {
    let mut lags = cycles(4, days_in_week, multiple, 1);
    lags.extend(around((days_in_month / multiple).floor(), 1));
    lags
}
fn lags_for_week(multiple: f64) -> Vec<i64> {
    let mut lags = cycles(3, 52.0, multiple, 1);
    lags.extend([4.0, 8.0, 12.0].map(|w| (w / multiple).floor() as i64));
    lags
}
fn lags_for_month(multiple: f64) -> Vec<i64> {
    cycles(3, 12.0, multiple, 1)
}

impl Frequency {
    /// GluonTS's `get_lags_for_frequency` (upper bound 1200, 7 default lags): 1..=7, then the
    /// same season ± a delta in earlier cycles, sorted and deduplicated.
    pub fn lags(&self) -> Vec<usize> {
        let n = f64::from(self.multiple);
        let seasonal = match self.unit {
            Unit::Year => vec![],
            Unit::Quarter => lags_for_month(3.0 * n),
            Unit::Month => lags_for_month(n),
            Unit::Week => lags_for_week(n),
            Unit::Day => [lags_for_day(n, 7.0, 30.0), lags_for_week(n / 7.0)].concat(),
            Unit::BusinessDay => [lags_for_day(n, 5.0, 22.0), lags_for_week(n / 5.0)].concat(),
            Unit::Hour => [
                lags_for_hour(n),
                lags_for_day(n / 24.0, 7.0, 30.0),
                lags_for_week(n / 168.0),
            ]
            .concat(),
            Unit::Minute => [
                lags_for_minute(n),
                lags_for_hour(n / 60.0),
                lags_for_day(n / 1440.0, 7.0, 30.0),
                lags_for_week(n / 10080.0),
            ]
            .concat(),
            Unit::Second => [
                cycles(3, 60.0, n, 2),
                lags_for_minute(n / 60.0),
                lags_for_hour(n / 3600.0),
            ]
            .concat(),
        };
        let mut extra: Vec<usize> = seasonal
            .into_iter()
            .filter(|lag| (8..=1200).contains(lag))
            .map(|lag| lag as usize)
            .collect();
        extra.sort_unstable();
        extra.dedup();
        (1..=7).chain(extra).collect()
    }

    /// The calendar features GluonTS uses for this frequency, in its order.
    pub fn time_features(&self) -> &'static [TimeFeature] {
        use TimeFeature::*;
        match self.unit {
            Unit::Year => &[],
            Unit::Quarter | Unit::Month => &[MonthOfYear],
            Unit::Week => &[DayOfMonth, WeekOfYear],
            Unit::Day | Unit::BusinessDay => &[DayOfWeek, DayOfMonth, DayOfYear],
            Unit::Hour => &[HourOfDay, DayOfWeek, DayOfMonth, DayOfYear],
            Unit::Minute => &[MinuteOfHour, HourOfDay, DayOfWeek, DayOfMonth, DayOfYear],
            Unit::Second => &[
                SecondOfMinute,
                MinuteOfHour,
                HourOfDay,
                DayOfWeek,
                DayOfMonth,
                DayOfYear,
            ],
        }
    }

    /// The season of seasonal naive and MASE (GluonTS's `get_seasonality`).
    pub fn season(&self) -> usize {
        crate::baseline::seasonality(&self.to_string()).unwrap_or(1)
    }

    /// The timestamp `steps` periods after `start` (negative steps go back).
    pub fn add(&self, start: NaiveDateTime, steps: i64) -> NaiveDateTime {
        let n = i64::from(self.multiple) * steps;
        let months = |count: i64| {
            if count >= 0 {
                start.checked_add_months(Months::new(count as u32))
            } else {
                start.checked_sub_months(Months::new((-count) as u32))
            }
            .unwrap_or(start)
        };
        match self.unit {
            Unit::Second => start + Duration::seconds(n),
            Unit::Minute => start + Duration::minutes(n),
            Unit::Hour => start + Duration::hours(n),
            Unit::Day => start + Duration::days(n),
            Unit::BusinessDay => add_business_days(start, n),
            Unit::Week => start + Duration::weeks(n),
            Unit::Month => months(n),
            Unit::Quarter => months(3 * n),
            Unit::Year => months(12 * n),
        }
    }
}

fn add_business_days(start: NaiveDateTime, days: i64) -> NaiveDateTime {
    let step = if days >= 0 { 1 } else { -1 };
    let mut at = start;
    let mut left = days.abs();
    while left > 0 {
        at += Duration::days(step);
        if at.weekday().num_days_from_monday() < 5 {
            left -= 1;
        }
    }
    at
}

/// One calendar feature, scaled to [-0.5, 0.5] as in `gluonts.time_feature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFeature {
    SecondOfMinute,
    MinuteOfHour,
    HourOfDay,
    DayOfWeek,
    DayOfMonth,
    DayOfYear,
    WeekOfYear,
    MonthOfYear,
}

impl TimeFeature {
    pub fn value(&self, at: NaiveDateTime) -> f32 {
        let (position, span) = match self {
            Self::SecondOfMinute => (at.second(), 59),
            Self::MinuteOfHour => (at.minute(), 59),
            Self::HourOfDay => (at.hour(), 23),
            Self::DayOfWeek => (at.weekday().num_days_from_monday(), 6),
            Self::DayOfMonth => (at.day() - 1, 30),
            Self::DayOfYear => (at.ordinal() - 1, 365),
            Self::WeekOfYear => (at.iso_week().week() - 1, 52),
            Self::MonthOfYear => (at.month() - 1, 11),
        };
        position as f32 / span as f32 - 0.5
    }
}

/// GluonTS's age feature: `log10(2 + index)` for the index-th point since the series start.
pub fn age(index: usize) -> f32 {
    (2.0 + index as f64).log10() as f32
}
