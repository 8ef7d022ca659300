//! Series in SageMaker DeepAR's JSON-lines format: `{"start": "2016-05-04 00:00:00",
//! "target": [...], "cat": [...], "dynamic_feat": [[...], ...]}`, one per line. Missing target
//! values are `"NaN"` or `null`. Parsing checks everything DeepAR relies on and names the line and
//! field of the first problem.

use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::Value;

use crate::{Error, Result};

/// One time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub start: NaiveDateTime,
    /// Observations; NaN where missing.
    pub target: Vec<f32>,
    /// Categorical features (indices into each feature's cardinality).
    pub cat: Vec<u32>,
    /// `dynamic_feat[feature][step]`, covering the target (and the horizon when forecasting).
    pub dynamic_feat: Vec<Vec<f32>>,
    /// The caller's identifier, kept for output.
    pub item_id: Option<String>,
}

impl Series {
    /// How many target values are observed.
    pub fn observed(&self) -> usize {
        self.target.iter().filter(|v| !v.is_nan()).count()
    }
}

/// Where a series came from, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub source: &'a str,
    pub line: usize,
}

impl Origin<'_> {
    pub fn error(&self, field: &str, reason: impl Into<String>) -> Error {
        Error::Input {
            file: self.source.to_string(),
            line: self.line,
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// Parses a timestamp in the forms SageMaker and pandas write.
pub fn parse_start(text: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    let text = text.trim().trim_end_matches('Z');
    let text = text.split('.').next().unwrap_or(text);
    FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

fn number(value: &Value) -> Option<f32> {
    match value {
        Value::Number(n) => n.as_f64().map(|v| v as f32),
        Value::Null => Some(f32::NAN),
        Value::String(s) if s.eq_ignore_ascii_case("nan") => Some(f32::NAN),
        _ => None,
    }
}

/// Parses one JSON object (a line of a dataset, or an instance of a request).
pub fn parse_series(value: &Value, origin: Origin<'_>) -> Result<Series> {
    let object = value
        .as_object()
        .ok_or_else(|| origin.error("", "expected a JSON object"))?;
    let start_text = object
        .get("start")
        .ok_or_else(|| origin.error("start", "missing"))?
        .as_str()
        .ok_or_else(|| {
            origin.error("start", "expected a string such as \"2016-05-04 00:00:00\"")
        })?;
    let start = parse_start(start_text).ok_or_else(|| {
        origin.error(
            "start",
            format!("{start_text:?} is not a timestamp (YYYY-MM-DD[ HH:MM:SS])"),
        )
    })?;
    let raw_target = object
        .get("target")
        .ok_or_else(|| origin.error("target", "missing"))?
        .as_array()
        .ok_or_else(|| origin.error("target", "expected an array of numbers"))?;
    let target = raw_target
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let value = number(v).ok_or_else(|| {
                origin.error(&format!("target[{i}]"), format!("{v} is not a number"))
            })?;
            if value.is_infinite() {
                return Err(origin.error(&format!("target[{i}]"), "infinite"));
            }
            Ok(value)
        })
        .collect::<Result<Vec<f32>>>()?;
    let cat = match object.get("cat") {
        None | Some(Value::Null) => vec![],
        Some(Value::Number(n)) => vec![category(n.as_i64(), "cat", origin)?],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| category(v.as_i64(), &format!("cat[{i}]"), origin))
            .collect::<Result<_>>()?,
        Some(_) => return Err(origin.error("cat", "expected an array of non-negative integers")),
    };
    let dynamic_feat = match object.get("dynamic_feat") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(rows)) => rows
            .iter()
            .enumerate()
            .map(|(f, row)| {
                let field = format!("dynamic_feat[{f}]");
                let row = row
                    .as_array()
                    .ok_or_else(|| origin.error(&field, "expected an array of numbers"))?;
                row.iter()
                    .enumerate()
                    .map(|(i, v)| match number(v) {
                        Some(x) if x.is_finite() => Ok(x),
                        _ => Err(origin.error(
                            &format!("{field}[{i}]"),
                            format!("{v} is not a finite number"),
                        )),
                    })
                    .collect::<Result<Vec<f32>>>()
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(origin.error("dynamic_feat", "expected an array of arrays")),
    };
    let item_id = object
        .get("item_id")
        .or_else(|| object.get("id"))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    Ok(Series {
        start,
        target,
        cat,
        dynamic_feat,
        item_id,
    })
}

fn category(value: Option<i64>, field: &str, origin: Origin<'_>) -> Result<u32> {
    value
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| origin.error(field, "expected a non-negative integer"))
}

/// Reads a JSON-lines dataset; blank lines are skipped, line numbers start at 1.
pub fn read_json_lines(path: &Path) -> Result<Vec<Series>> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: source.clone(),
        reason: e.to_string(),
    })?;
    let mut series = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = Origin {
            source: &source,
            line: index + 1,
        };
        let value: Value = serde_json::from_str(line)
            .map_err(|e| origin.error("", format!("invalid JSON: {e}")))?;
        series.push(parse_series(&value, origin)?);
    }
    if series.is_empty() {
        return Err(Error::Input {
            file: source,
            line: 0,
            field: String::new(),
            reason: "no series".into(),
        });
    }
    Ok(series)
}

/// What a dataset must satisfy for a model: the dynamic features line up with the target
/// (`extra` more points when forecasting), the categories fit the cardinalities, and every
/// series has an observed value.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    pub num_dynamic_feat: usize,
    pub cardinality: &'a [u32],
    /// Points the dynamic features must extend past the target (the horizon at inference).
    pub extra: usize,
    /// The shortest target allowed.
    pub min_length: usize,
}

/// Checks one series against what the model needs; `origin` names it in errors.
pub fn check_series(series: &Series, expect: Expectations<'_>, origin: Origin<'_>) -> Result<()> {
    if series.target.len() < expect.min_length {
        return Err(origin.error(
            "target",
            format!(
                "{} points; at least {} are needed",
                series.target.len(),
                expect.min_length
            ),
        ));
    }
    if series.observed() == 0 {
        return Err(origin.error("target", "every value is missing (NaN)"));
    }
    if series.dynamic_feat.len() != expect.num_dynamic_feat {
        return Err(origin.error(
            "dynamic_feat",
            format!(
                "{} features; the model has num_dynamic_feat = {}",
                series.dynamic_feat.len(),
                expect.num_dynamic_feat
            ),
        ));
    }
    let wanted = series.target.len() + expect.extra;
    for (f, row) in series.dynamic_feat.iter().enumerate() {
        if row.len() != wanted {
            return Err(origin.error(
                &format!("dynamic_feat[{f}]"),
                format!(
                    "{} values; {wanted} expected (the target's length{})",
                    row.len(),
                    if expect.extra > 0 {
                        " plus prediction_length"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    if series.cat.len() != expect.cardinality.len() {
        return Err(origin.error(
            "cat",
            format!(
                "{} categories; the model has {} (cardinality)",
                series.cat.len(),
                expect.cardinality.len()
            ),
        ));
    }
    for (i, (&value, &cardinality)) in series.cat.iter().zip(expect.cardinality).enumerate() {
        if value >= cardinality {
            return Err(origin.error(
                &format!("cat[{i}]"),
                format!("{value} is not below the cardinality {cardinality}"),
            ));
        }
    }
    Ok(())
}
