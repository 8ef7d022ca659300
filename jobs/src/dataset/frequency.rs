//! Sampling frequencies: fixed ones (`30s`, `15min`, `1h`, `1d`) and calendar ones (`W`, weeks
//! from Monday; `M`, months; `Q`, quarters), any of them with a multiple (`2W`, `3M`). A bucket
//! is an index on the frequency's grid, so that a month is one step however long it is.

use chrono::{Datelike, NaiveDate};

use crate::{Error, Result};

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// A fixed length, with its name in pandas' spelling.
    Fixed { unit_ms: i64, name: &'static str },
    /// Weeks from Monday 00:00 UTC.
    Week,
    /// Calendar months (a quarter is three).
    Month { months: i64, name: &'static str },
}

/// A sampling frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frequency {
    pub multiple: u32,
    unit: Unit,
}

impl std::str::FromStr for Frequency {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidArgument {
            field: "frequency",
            reason: format!("{text:?}: {reason}"),
        };
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, name) = text.split_at(split);
        let multiple = if digits.is_empty() {
            1
        } else {
            digits.parse().map_err(|_| invalid("bad multiple"))?
        };
        if multiple == 0 {
            return Err(invalid("the multiple must be at least 1"));
        }
        let fixed = |unit_ms, name| Unit::Fixed { unit_ms, name };
        let unit = match name {
            "s" | "S" => fixed(1_000, "S"),
            "min" | "T" => fixed(60_000, "min"),
            "h" | "H" => fixed(3_600_000, "H"),
            "d" | "D" => fixed(DAY_MS, "D"),
            "w" | "W" => Unit::Week,
            "M" | "MS" | "ME" | "mo" => Unit::Month {
                months: 1,
                name: "M",
            },
            "Q" | "QS" | "QE" => Unit::Month {
                months: 3,
                name: "Q",
            },
            _ => {
                return Err(invalid(
                    "use a multiple of s, min, h, d, W (weeks from Monday), M (months) or Q (quarters)",
                ));
            }
        };
        Ok(Self { multiple, unit })
    }
}

fn month_start_ms(months_since_1970: i64) -> i64 {
    let year = 1970 + months_since_1970.div_euclid(12);
    let month = months_since_1970.rem_euclid(12) as u32 + 1;
    NaiveDate::from_ymd_opt(year as i32, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp_millis())
}

impl Frequency {
    /// The index of the bucket holding `ms` (epoch milliseconds).
    pub fn index(&self, ms: i64) -> i64 {
        let multiple = i64::from(self.multiple);
        match self.unit {
            Unit::Fixed { unit_ms, .. } => ms.div_euclid(unit_ms * multiple),
            // 1970-01-01 was a Thursday: Monday 1969-12-29 is three days before.
            Unit::Week => (ms.div_euclid(DAY_MS) + 3).div_euclid(7 * multiple),
            Unit::Month { months, .. } => {
                let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
                    return 0;
                };
                let since = i64::from(t.year() - 1970) * 12 + i64::from(t.month0());
                since.div_euclid(months * multiple)
            }
        }
    }

    /// Where bucket `index` starts (epoch milliseconds).
    pub fn start_ms(&self, index: i64) -> i64 {
        let multiple = i64::from(self.multiple);
        match self.unit {
            Unit::Fixed { unit_ms, .. } => index * unit_ms * multiple,
            Unit::Week => (index * 7 * multiple - 3) * DAY_MS,
            Unit::Month { months, .. } => month_start_ms(index * months * multiple),
        }
    }

    /// The frequency in DeepAR's (pandas') spelling, for `time_freq`.
    pub fn deepar(&self) -> String {
        let name = match self.unit {
            Unit::Fixed { name, .. } | Unit::Month { name, .. } => name,
            Unit::Week => "W",
        };
        if self.multiple == 1 {
            name.to_string()
        } else {
            format!("{}{name}", self.multiple)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn buckets_start_where_the_calendar_says() {
        let cases = [
            ("1h", "2024-03-01 10:59", "2024-03-01 10:00", "H"),
            ("15min", "2024-03-01 10:59", "2024-03-01 10:45", "15min"),
            ("1d", "2024-03-01 10:59", "2024-03-01 00:00", "D"),
            // 2024-03-07 is a Thursday; its week starts on Monday the 4th.
            ("W", "2024-03-07 10:00", "2024-03-04 00:00", "W"),
            ("W", "2024-03-04 00:00", "2024-03-04 00:00", "W"),
            ("M", "2024-02-29 23:59", "2024-02-01 00:00", "M"),
            ("Q", "2024-05-15 08:00", "2024-04-01 00:00", "Q"),
            ("2M", "2024-04-15 08:00", "2024-03-01 00:00", "2M"),
            ("M", "1969-12-31 23:00", "1969-12-01 00:00", "M"),
        ];
        for (text, at, start, deepar) in cases {
            let frequency: Frequency = text.parse().unwrap();
            let index = frequency.index(ms(at));
            assert_eq!(frequency.start_ms(index), ms(start), "{text} {at}");
            assert_eq!(
                frequency.index(ms(start)),
                index,
                "{text}: a start is in its bucket"
            );
            assert_eq!(frequency.deepar(), deepar);
        }
    }

    #[test]
    fn consecutive_buckets_are_one_step_apart_however_long() {
        let month: Frequency = "M".parse().unwrap();
        let january = month.index(ms("2024-01-31 12:00"));
        assert_eq!(month.index(ms("2024-02-01 00:00")), january + 1);
        assert_eq!(month.index(ms("2024-03-01 00:00")), january + 2);
        assert_eq!(month.start_ms(january + 12), ms("2025-01-01 00:00"));
        let week: Frequency = "W".parse().unwrap();
        let w = week.index(ms("2024-12-30 00:00"));
        assert_eq!(week.start_ms(w + 1), ms("2025-01-06 00:00"));
    }

    #[test]
    fn unknown_units_are_refused() {
        for text in ["1y", "0h", "h2", "fortnight"] {
            let err = text.parse::<Frequency>().unwrap_err().to_string();
            assert!(err.contains("frequency"), "{text}: {err}");
        }
    }
}
