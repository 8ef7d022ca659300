//! The LSTM cell as one candle custom operation on the CPU: from the pre-activation gates
//! `[batch, 4·cells]` (order i, f, g, o) and the previous cell state `[batch, cells]` to the new
//! hidden and cell states, stacked as `[2, batch, cells]`. One pass over memory instead of a
//! dozen small tensor operations, with vectorisable exponentials; the backward pass recomputes
//! the activations from its inputs. Other devices use the same cell composed of tensor ops.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

/// `exp(x)` to about 2e-7 relative for |x| < 87, in plain arithmetic (no libm call, no FMA
/// instruction assumed) so that loops over it vectorise.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    let t = x.clamp(-87.0, 88.0) * std::f32::consts::LOG2_E;
    // floor(t) for t > -128 without a libm call: truncation of a positive number.
    let n = (t + 128.0) as i32 - 128;
    let f = t - n as f32;
    // 2^f on [0, 1): a degree-6 polynomial (error below 2e-7).
    let p = 1.535_336_2e-4_f32;
    let p = p * f + 1.339_887_4e-3;
    let p = p * f + 9.618_437e-3;
    let p = p * f + 5.550_332_5e-2;
    let p = p * f + 2.402_264_8e-1;
    let p = p * f + 6.931_472e-1;
    let p = p * f + 1.0;
    p * f32::from_bits(((n + 127) as u32) << 23)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    2.0 * sigmoid(2.0 * x) - 1.0
}

pub struct LstmCell;

fn contiguous<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let values = match storage {
        CpuStorage::F32(values) => values.as_slice(),
        _ => candle_core::bail!("lstm cell: {what} must be f32"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("lstm cell: {what} must be contiguous"),
    }
}

impl CustomOp2 for LstmCell {
    fn name(&self) -> &'static str {
        "lstm-cell"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let gates = contiguous(s1, l1, "gates")?;
        let c_prev = contiguous(s2, l2, "cell state")?;
        let (batch, cells) = l2.shape().dims2()?;
        let mut out = vec![0f32; 2 * batch * cells];
        let (h_out, c_out) = out.split_at_mut(batch * cells);
        for b in 0..batch {
            let g = &gates[b * 4 * cells..(b + 1) * 4 * cells];
            let row = b * cells..(b + 1) * cells;
            let (h, c, cp) = (
                &mut h_out[row.clone()],
                &mut c_out[row.clone()],
                &c_prev[row],
            );
            for j in 0..cells {
                let i = sigmoid(g[j]);
                let f = sigmoid(g[cells + j]);
                let candidate = tanh(g[2 * cells + j]);
                let o = sigmoid(g[3 * cells + j]);
                c[j] = f * cp[j] + i * candidate;
                h[j] = o * tanh(c[j]);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((2, batch, cells))))
    }

    fn bwd(
        &self,
        gates: &Tensor,
        c_prev: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (batch, cells) = c_prev.dims2()?;
        let g = gates.flatten_all()?.to_vec1::<f32>()?;
        let cp = c_prev.flatten_all()?.to_vec1::<f32>()?;
        let grad = grad.flatten_all()?.to_vec1::<f32>()?;
        let (grad_h, grad_c) = grad.split_at(batch * cells);
        let mut d_gates = vec![0f32; batch * 4 * cells];
        let mut d_c_prev = vec![0f32; batch * cells];
        for b in 0..batch {
            for j in 0..cells {
                let k = b * cells + j;
                let base = b * 4 * cells;
                let i = sigmoid(g[base + j]);
                let f = sigmoid(g[base + cells + j]);
                let candidate = tanh(g[base + 2 * cells + j]);
                let o = sigmoid(g[base + 3 * cells + j]);
                let c = f * cp[k] + i * candidate;
                let tc = tanh(c);
                let dc = grad_c[k] + grad_h[k] * o * (1.0 - tc * tc);
                d_gates[base + j] = dc * candidate * i * (1.0 - i);
                d_gates[base + cells + j] = dc * cp[k] * f * (1.0 - f);
                d_gates[base + 2 * cells + j] = dc * i * (1.0 - candidate * candidate);
                d_gates[base + 3 * cells + j] = grad_h[k] * tc * o * (1.0 - o);
                d_c_prev[k] = dc * f;
            }
        }
        let device = gates.device();
        Ok((
            Some(Tensor::from_vec(d_gates, (batch, 4 * cells), device)?),
            Some(Tensor::from_vec(d_c_prev, (batch, cells), device)?),
        ))
    }
}

/// The cell composed of tensor operations (any device); `(h, c)`.
pub fn composed(gates: &Tensor, c_prev: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let cells = c_prev.dim(1)?;
    let sig = candle_nn::ops::sigmoid(gates)?;
    let input_gate = sig.narrow(1, 0, cells)?;
    let forget_gate = sig.narrow(1, cells, cells)?;
    let output_gate = sig.narrow(1, 3 * cells, cells)?;
    let candidate = gates.narrow(1, 2 * cells, cells)?.tanh()?;
    let c = ((forget_gate * c_prev)? + (input_gate * candidate)?)?;
    let h = (output_gate * c.tanh()?)?;
    Ok((h, c))
}

/// The cell: fused on the CPU, composed elsewhere; `(h, c)`.
pub fn lstm_cell(gates: &Tensor, c_prev: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    if gates.device().is_cpu() {
        let gates = gates.contiguous()?;
        let c_prev = c_prev.contiguous()?;
        let out = gates.apply_op2(&c_prev, LstmCell)?;
        Ok((out.get(0)?, out.get(1)?))
    } else {
        composed(gates, c_prev)
    }
}
