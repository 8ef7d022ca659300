//! SageMaker DeepAR's inference format. A request holds `instances` (series as in training,
//! with `dynamic_feat` covering the horizon too) and an optional `configuration` (`num_samples`,
//! `output_types` among `mean`, `quantiles`, `samples`, and `quantiles` as strings); the response
//! holds one prediction per instance, keyed the same way. Parsing names the offending field
//! (`instances[2].target[5]`, `configuration.quantiles[0]`).

use serde_json::{Map, Value, json};

use crate::deepar::series::{Origin, Series, parse_series};
use crate::deepar::{Forecast, ForecastOptions};
use crate::forecaster::Forecasting;
use crate::{Error, Result};

/// What the caller wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    Mean,
    Quantiles,
    Samples,
}

/// A validated request.
#[derive(Debug, Clone)]
pub struct Request {
    pub instances: Vec<Series>,
    pub num_samples: usize,
    pub output_types: Vec<OutputType>,
    /// As the caller wrote them (they key the response), with their values.
    pub quantiles: Vec<(String, f64)>,
}

/// The most sample paths one request may ask for.
pub const MAX_SAMPLES: usize = 10_000;

fn bad(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Input {
        file: "request".into(),
        line: 0,
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parses a request body; `default_samples` applies when the request names none.
pub fn parse_request(body: &Value, default_samples: usize) -> Result<Request> {
    let object = body
        .as_object()
        .ok_or_else(|| bad("", "expected a JSON object with \"instances\""))?;
    let raw = object
        .get("instances")
        .ok_or_else(|| bad("instances", "missing"))?
        .as_array()
        .ok_or_else(|| bad("instances", "expected an array of series"))?;
    if raw.is_empty() {
        return Err(bad("instances", "empty"));
    }
    let instances = raw
        .iter()
        .enumerate()
        .map(|(i, value)| {
            parse_series(
                value,
                Origin {
                    source: "request",
                    line: 0,
                },
            )
            .map_err(|e| match e {
                Error::Input { field, reason, .. } => {
                    let field = if field.is_empty() {
                        format!("instances[{i}]")
                    } else {
                        format!("instances[{i}].{field}")
                    };
                    bad(field, reason)
                }
                other => other,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let empty = Map::new();
    let configuration = match object.get("configuration") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => return Err(bad("configuration", "expected an object")),
    };
    let num_samples = match configuration.get("num_samples") {
        None | Some(Value::Null) => default_samples,
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .map(|n| n as usize)
            .filter(|n| (1..=MAX_SAMPLES).contains(n))
            .ok_or_else(|| {
                bad(
                    "configuration.num_samples",
                    format!("{value} is not a whole number in 1..={MAX_SAMPLES}"),
                )
            })?,
    };
    let output_types = match configuration.get("output_types") {
        None | Some(Value::Null) => vec![OutputType::Mean, OutputType::Quantiles],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_str() {
                Some("mean") => Ok(OutputType::Mean),
                Some("quantiles") => Ok(OutputType::Quantiles),
                Some("samples") => Ok(OutputType::Samples),
                _ => Err(bad(
                    format!("configuration.output_types[{i}]"),
                    format!("{v}: use mean, quantiles or samples"),
                )),
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(bad("configuration.output_types", "expected an array")),
    };
    let quantiles = match configuration.get("quantiles") {
        None | Some(Value::Null) => (1..=9)
            .map(|i| (format!("0.{i}"), f64::from(i) / 10.0))
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match text.parse::<f64>() {
                    Ok(q) if q > 0.0 && q < 1.0 => Ok((text, q)),
                    _ => Err(bad(
                        format!("configuration.quantiles[{i}]"),
                        format!("{v} is not a number in (0, 1)"),
                    )),
                }
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(bad(
                "configuration.quantiles",
                "expected an array such as [\"0.1\", \"0.9\"]",
            ));
        }
    };
    Ok(Request {
        instances,
        num_samples,
        output_types,
        quantiles,
    })
}

/// Forecasts a request and renders SageMaker's response (`{"predictions": [...]}`).
pub fn predict<F: Forecasting + ?Sized>(model: &F, request: &Request, seed: u64) -> Result<Value> {
    predict_keeping(model, request, seed).map(|(response, _)| response)
}

/// [`predict`], also returning the forecasts (to keep what was served).
pub fn predict_keeping<F: Forecasting + ?Sized>(
    model: &F,
    request: &Request,
    seed: u64,
) -> Result<(Value, Vec<Forecast>)> {
    let options = ForecastOptions {
        num_samples: request.num_samples,
        seed,
        ..ForecastOptions::default()
    };
    let forecasts = model
        .forecast(&request.instances, options, "request")
        .map_err(|e| match e {
            Error::Input {
                line,
                field,
                reason,
                ..
            } => bad(format!("instances[{}].{field}", line - 1), reason),
            other => other,
        })?;
    let predictions: Vec<Value> = forecasts.iter().map(|f| render(f, request)).collect();
    Ok((json!({ "predictions": predictions }), forecasts))
}

fn render(forecast: &Forecast, request: &Request) -> Value {
    let mut prediction = Map::new();
    for output in &request.output_types {
        match output {
            OutputType::Mean => {
                prediction.insert("mean".into(), json!(forecast.mean()));
            }
            OutputType::Quantiles => {
                let quantiles: Map<String, Value> = request
                    .quantiles
                    .iter()
                    .map(|(name, q)| (name.clone(), json!(forecast.quantile(*q))))
                    .collect();
                prediction.insert("quantiles".into(), Value::Object(quantiles));
            }
            OutputType::Samples => {
                prediction.insert("samples".into(), json!(forecast.samples));
            }
        }
    }
    Value::Object(prediction)
}
