//! The network: categorical embeddings, a stack of LSTM layers with dropout between them, and a
//! linear projection to the likelihood's raw arguments. Parameters follow PyTorch's layout and
//! initialisation (uniform ±1/√cells for the LSTM, ±1/√in for the projection, N(0, 1) for
//! embeddings), drawn from a seeded generator so training is reproducible on the CPU.
//!
//! The recurrence runs step by step over per-step inputs that are plain data (not tracked), so
//! backpropagation through time costs O(T): no tracked tensor is sliced per step.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};

use crate::Result;

/// The sizes that fix the parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Per-step data features (lags, log-scale, time features, age, dynamic features).
    pub input_size: usize,
    pub cardinality: Vec<u32>,
    pub embedding_dimension: Vec<usize>,
    pub num_layers: usize,
    pub num_cells: usize,
    pub num_args: usize,
}

struct Layer {
    /// `[in, 4·cells]`, gate order i, f, g, o (PyTorch's).
    w_input: Var,
    /// `[cells, 4·cells]`.
    w_hidden: Var,
    b_input: Var,
    b_hidden: Var,
}

/// The LSTM state of every layer: `(h, c)`, each `[batch, cells]`.
#[derive(Clone)]
pub struct State(pub Vec<(Tensor, Tensor)>);

/// Each row of `[rows, width]` repeated `times` times in a row (`[a, b]` → `[a, a, b, b]`).
pub fn repeat_rows(t: &Tensor, times: usize) -> Result<Tensor> {
    let (rows, width) = t.dims2()?;
    Ok(t.unsqueeze(1)?
        .broadcast_as((rows, times, width))?
        .reshape((rows * times, width))?)
}

impl State {
    /// The same values cut from the computation graph. Inference must detach the state after
    /// every step: the weights are variables, so each step's tensors record the operations
    /// that made them, and the state would otherwise keep every earlier step's tensors alive
    /// until the forecast ends (520 MB for pedestrian's 28-series backtest, all of it freshly
    /// faulted-in memory).
    pub fn detach(&self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(h, c)| (h.detach(), c.detach()))
                .collect(),
        )
    }

    /// Every row repeated `times` times in a row, one per sample path.
    pub fn repeat_rows(&self, times: usize) -> Result<Self> {
        Ok(Self(
            self.0
                .iter()
                .map(|(h, c)| Ok((repeat_rows(h, times)?, repeat_rows(c, times)?)))
                .collect::<Result<_>>()?,
        ))
    }
}

/// DeepAR's network.
pub struct Network {
    pub shape: Shape,
    device: Device,
    embeddings: Vec<Var>,
    /// Layer 0's weights for the embeddings, `[Σ embedding_dimension, 4·cells]`.
    w_embedding: Option<Var>,
    layers: Vec<Layer>,
    w_projection: Var,
    b_projection: Var,
}

fn uniform(rng: &mut ChaCha8Rng, shape: &[usize], bound: f64, device: &Device) -> Result<Var> {
    let dist = Uniform::new_inclusive(-bound as f32, bound as f32).expect("finite bound");
    let count = shape.iter().product();
    let values: Vec<f32> = (0..count).map(|_| dist.sample(rng)).collect();
    Ok(Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?)
}

impl Network {
    /// A freshly initialised network.
    pub fn new(shape: Shape, rng: &mut ChaCha8Rng, device: &Device) -> Result<Self> {
        let cells = shape.num_cells;
        let gate = 4 * cells;
        let bound = 1.0 / (cells as f64).sqrt();
        let embeddings = shape
            .cardinality
            .iter()
            .zip(&shape.embedding_dimension)
            .map(|(&card, &dim)| {
                let values: Vec<f32> = (0..card as usize * dim)
                    .map(|_| StandardNormal.sample(rng))
                    .collect();
                Ok(Var::from_tensor(&Tensor::from_vec(
                    values,
                    (card as usize, dim),
                    device,
                )?)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let embedding_total: usize = shape.embedding_dimension.iter().sum();
        let w_embedding = if embedding_total > 0 {
            Some(uniform(rng, &[embedding_total, gate], bound, device)?)
        } else {
            None
        };
        let layers = (0..shape.num_layers)
            .map(|l| {
                let input = if l == 0 { shape.input_size } else { cells };
                Ok(Layer {
                    w_input: uniform(rng, &[input, gate], bound, device)?,
                    w_hidden: uniform(rng, &[cells, gate], bound, device)?,
                    b_input: uniform(rng, &[gate], bound, device)?,
                    b_hidden: uniform(rng, &[gate], bound, device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let projection_bound = 1.0 / (cells as f64).sqrt();
        let w_projection = uniform(rng, &[cells, shape.num_args], projection_bound, device)?;
        let b_projection = uniform(rng, &[shape.num_args], projection_bound, device)?;
        Ok(Self {
            shape,
            device: device.clone(),
            embeddings,
            w_embedding,
            layers,
            w_projection,
            b_projection,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every parameter with its name (the names of the safetensors file).
    pub fn named_vars(&self) -> Vec<(String, &Var)> {
        let mut vars: Vec<(String, &Var)> = Vec::new();
        for (i, e) in self.embeddings.iter().enumerate() {
            vars.push((format!("embedding.{i}.weight"), e));
        }
        if let Some(w) = &self.w_embedding {
            vars.push(("lstm.0.weight_embedding".into(), w));
        }
        for (l, layer) in self.layers.iter().enumerate() {
            vars.push((format!("lstm.{l}.weight_input"), &layer.w_input));
            vars.push((format!("lstm.{l}.weight_hidden"), &layer.w_hidden));
            vars.push((format!("lstm.{l}.bias_input"), &layer.b_input));
            vars.push((format!("lstm.{l}.bias_hidden"), &layer.b_hidden));
        }
        vars.push(("projection.weight".into(), &self.w_projection));
        vars.push(("projection.bias".into(), &self.b_projection));
        vars
    }

    pub fn vars(&self) -> Vec<Var> {
        self.named_vars()
            .into_iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A copy of every parameter's current value.
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        self.named_vars()
            .into_iter()
            .map(|(name, var)| Ok((name, var.as_tensor().copy()?)))
            .collect()
    }

    /// Sets every parameter from `tensors` (a snapshot or a loaded file); shapes must match.
    pub fn restore(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.named_vars() {
            let tensor = tensors.get(&name).ok_or_else(|| crate::Error::Io {
                path: "model.safetensors".into(),
                reason: format!("parameter {name} is missing"),
            })?;
            if tensor.dims() != var.dims() {
                return Err(crate::Error::Io {
                    path: "model.safetensors".into(),
                    reason: format!(
                        "parameter {name} has shape {:?}, the config implies {:?}",
                        tensor.dims(),
                        var.dims()
                    ),
                });
            }
            var.set(&tensor.to_dtype(DType::F32)?.to_device(&self.device)?)?;
        }
        Ok(())
    }

    /// What the static features add to layer 0's gates: both biases plus the embeddings'
    /// contribution, `[batch, 4·cells]` (or `[4·cells]` without categorical features).
    pub fn static_bias(&self, cat: Option<&Tensor>) -> Result<Tensor> {
        let layer = &self.layers[0];
        let bias = (layer.b_input.as_tensor() + layer.b_hidden.as_tensor())?;
        match (&self.w_embedding, cat) {
            (Some(w), Some(cat)) => {
                let parts = self
                    .embeddings
                    .iter()
                    .enumerate()
                    .map(|(i, table)| {
                        Ok(table
                            .as_tensor()
                            .index_select(&cat.narrow(1, i, 1)?.squeeze(1)?, 0)?)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let embedded = Tensor::cat(&parts, 1)?;
                Ok(embedded.matmul(w.as_tensor())?.broadcast_add(&bias)?)
            }
            _ => Ok(bias),
        }
    }

    /// A zero state for `batch` rows.
    pub fn zero_state(&self, batch: usize) -> Result<State> {
        let zeros = Tensor::zeros((batch, self.shape.num_cells), DType::F32, &self.device)?;
        Ok(State(vec![(zeros.clone(), zeros); self.layers.len()]))
    }

    /// One step: `input` is `[batch, input_size]`; `dropout` holds the masks applied to the
    /// outputs of every layer but the last (`None` at inference). Returns the top layer's output.
    pub fn step(
        &self,
        input: &Tensor,
        static_bias: &Tensor,
        state: &State,
        dropout: Option<&[Tensor]>,
    ) -> Result<(Tensor, State)> {
        let mut x = input.clone();
        let mut next = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let (h, c) = &state.0[l];
            let gates =
                (x.matmul(layer.w_input.as_tensor())? + h.matmul(layer.w_hidden.as_tensor())?)?;
            let layer_bias;
            let bias = if l == 0 {
                static_bias
            } else {
                layer_bias = (layer.b_input.as_tensor() + layer.b_hidden.as_tensor())?;
                &layer_bias
            };
            let (h_next, c_next) = super::cell::lstm_cell(&gates, bias, c)?;
            x = match dropout {
                Some(masks) if l + 1 < self.layers.len() => (&h_next * &masks[l])?,
                _ => h_next.clone(),
            };
            next.push((h_next, c_next));
        }
        Ok((x, State(next)))
    }

    /// The likelihood's raw arguments for the outputs `hidden` (`[n, cells]`): `[n, num_args]`.
    pub fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden
            .matmul(self.w_projection.as_tensor())?
            .broadcast_add(self.b_projection.as_tensor())?)
    }

    /// Inverted-dropout masks (`0` or `1/(1-p)`) for the outputs of every layer but the last.
    pub fn dropout_masks(
        &self,
        batch: usize,
        rate: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Tensor>> {
        let keep = 1.0 / (1.0 - rate) as f32;
        (0..self.layers.len().saturating_sub(1))
            .map(|_| {
                let values: Vec<f32> = (0..batch * self.shape.num_cells)
                    .map(|_| {
                        if rng.random::<f64>() < rate {
                            0.0
                        } else {
                            keep
                        }
                    })
                    .collect();
                Ok(Tensor::from_vec(
                    values,
                    (batch, self.shape.num_cells),
                    &self.device,
                )?)
            })
            .collect()
    }
}
