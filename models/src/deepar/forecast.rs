//! Forecasting by ancestral sampling, batched across series and sample paths: the network
//! reads each series' context once, its state is repeated for every path, and each of the
//! `prediction_length` steps draws one value per path that becomes the next step's lag. The
//! paths of a series share each step's draws by Latin hypercube sampling
//! ([`likelihood::stratified_normals`]): every path is still an exact sample, but quantiles read
//! off 100 paths agree with those of 2000 independent ones (pedestrian: mean_wQuantileLoss
//! 0.1772 with 100 stratified paths, 0.1775 with 2000; independent draws cost about 0.6 %).

use candle_core::Tensor;
use chrono::NaiveDateTime;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Model;
use super::inputs::{Prepared, scales, write_step};
use super::series::{Expectations, Origin, Series, check_series};
use super::{likelihood, network};
use crate::Result;

/// How to forecast.
#[derive(Debug, Clone, Copy)]
pub struct ForecastOptions {
    pub num_samples: usize,
    pub seed: u64,
    /// Series forecast together (memory grows with `series × samples`).
    pub batch_series: usize,
}

impl Default for ForecastOptions {
    fn default() -> Self {
        Self {
            num_samples: 100,
            seed: 0,
            batch_series: 64,
        }
    }
}

/// Sample paths of one series' future.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// The timestamp of the first forecast point.
    pub start: NaiveDateTime,
    /// `samples[path][step]`, original units.
    pub samples: Vec<Vec<f32>>,
}

impl Forecast {
    pub fn mean(&self) -> Vec<f32> {
        let paths = self.samples.len() as f32;
        let steps = self.samples.first().map_or(0, Vec::len);
        (0..steps)
            .map(|k| self.samples.iter().map(|p| p[k]).sum::<f32>() / paths)
            .collect()
    }

    /// The q-quantile of each step (linear interpolation, as numpy).
    pub fn quantile(&self, q: f64) -> Vec<f32> {
        let steps = self.samples.first().map_or(0, Vec::len);
        (0..steps)
            .map(|k| {
                let mut values: Vec<f64> = self.samples.iter().map(|p| f64::from(p[k])).collect();
                crate::metrics::quantile(&mut values, q) as f32
            })
            .collect()
    }
}

/// Forecasts `prediction_length` points after the end of each series. Series must carry their
/// dynamic features for the horizon too. `source` names the input in errors.
pub fn forecast(
    model: &Model,
    series: &[Series],
    options: ForecastOptions,
    source: &str,
) -> Result<Vec<Forecast>> {
    let horizon = model.layout.prediction_length;
    for (index, s) in series.iter().enumerate() {
        let expect = Expectations {
            num_dynamic_feat: model.layout.num_dynamic_feat,
            cardinality: &model.network.shape.cardinality,
            extra: horizon,
            min_length: 1,
        };
        check_series(
            &model.strip(s),
            expect,
            Origin {
                source,
                line: index + 1,
            },
        )?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut forecasts = Vec::with_capacity(series.len());
    for chunk in series.chunks(options.batch_series.max(1)) {
        forecasts.extend(forecast_chunk(
            model,
            chunk,
            options.num_samples.max(1),
            &mut rng,
        )?);
    }
    Ok(forecasts)
}

fn forecast_chunk(
    model: &Model,
    series: &[Series],
    paths: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Forecast>> {
    let layout = &model.layout;
    let network = &model.network;
    let device = network.device();
    let likelihood = model.hyperparameters.likelihood;
    let (context, horizon, width) = (
        layout.context_length,
        layout.prediction_length,
        layout.input_size(),
    );
    let prepared: Vec<Prepared> = series.iter().map(|s| model.prepare(s, horizon)).collect();
    let count = prepared.len();
    let sums: Vec<(f64, f64)> = prepared
        .iter()
        .map(|p| p.context_sums(p.len(), context))
        .collect();
    let series_scales = scales(&sums);

    // Read the context: `context` steps, the last one predicting the first future point.
    let mut inputs = vec![0f32; context * count * width];
    for (b, p) in prepared.iter().enumerate() {
        let scale = series_scales[b];
        for i in 0..context {
            let position = p.len() as isize - context as isize + i as isize;
            let row = i * count + b;
            write_step(
                layout,
                p,
                position,
                scale.ln(),
                |q| p.value(q) / scale,
                &mut inputs[row * width..(row + 1) * width],
            );
        }
    }
    let inputs = Tensor::from_vec(inputs, (context, count, width), device)?;
    let cat = if network.shape.cardinality.is_empty() {
        None
    } else {
        let cats: Vec<u32> = prepared
            .iter()
            .flat_map(|p| p.cat.iter().copied())
            .collect();
        Some(Tensor::from_vec(
            cats,
            (count, network.shape.cardinality.len()),
            device,
        )?)
    };
    let static_bias = network.static_bias(cat.as_ref())?.detach();
    let mut state = network.zero_state(count)?;
    let mut output = None;
    for i in 0..context {
        let (out, next) = network.step(&inputs.get(i)?, &static_bias, &state, None)?;
        output = Some(out.detach());
        state = next.detach();
    }
    let output = output.expect("context_length is at least 1");

    // Every path continues from its series' state.
    let rows = count * paths;
    let mut state = state.repeat_rows(paths)?;
    let static_bias = if static_bias.rank() == 2 {
        network::repeat_rows(&static_bias, paths)?
    } else {
        static_bias
    };
    let mut raw = network.project(&output)?.to_vec2::<f32>()?;
    raw = raw
        .into_iter()
        .flat_map(|r| std::iter::repeat_n(r, paths))
        .collect();
    // Scaled samples: `drawn[row][step]`.
    let mut drawn = vec![vec![0f32; horizon]; rows];
    let mut step_input = vec![0f32; rows * width];
    let mut normals = Vec::with_capacity(paths);
    for k in 0..horizon {
        for (row, args) in raw.iter().enumerate() {
            let b = row / paths;
            if row % paths == 0 {
                likelihood::stratified_normals(paths, rng, &mut normals);
            }
            let scale = series_scales[b];
            let value = likelihood
                .host_distribution(args, scale)
                .sample_from_normal(normals[row % paths], rng);
            drawn[row][k] = likelihood.scaled_draw(value, scale);
        }
        if k + 1 == horizon {
            break;
        }
        for row in 0..rows {
            let b = row / paths;
            let p = &prepared[b];
            let scale = series_scales[b];
            let end = p.len() as isize;
            let path = &drawn[row];
            let scaled = |q: isize| {
                if q >= end {
                    path[(q - end) as usize]
                } else {
                    p.value(q) / scale
                }
            };
            write_step(
                layout,
                p,
                end + k as isize,
                scale.ln(),
                scaled,
                &mut step_input[row * width..(row + 1) * width],
            );
        }
        let input = Tensor::from_slice(&step_input, (rows, width), device)?;
        let (out, next) = network.step(&input, &static_bias, &state, None)?;
        state = next.detach();
        raw = network.project(&out)?.to_vec2::<f32>()?;
    }
    Ok(prepared
        .iter()
        .enumerate()
        .map(|(b, p)| Forecast {
            start: layout.freq.add(p.start, p.len() as i64),
            samples: drawn[b * paths..(b + 1) * paths]
                .iter()
                .map(|path| path.iter().map(|v| v * series_scales[b]).collect())
                .collect(),
        })
        .collect())
}
