//! The LSTM cell as one candle custom operation on the CPU: from the pre-activation gates
//! `[batch, 4·cells]` (order i, f, g, o) without their bias, the bias (`[4·cells]`, or one per row
//! `[batch, 4·cells]`) and the previous cell state `[batch, cells]` to the new hidden and cell
//! states, stacked with the gate activations as `[7, batch, cells]` so that the backward pass is
//! plain arithmetic. One vectorised pass over memory instead of a dozen small tensor operations.
//! The bias is added inside because candle's backward of a broadcast add sums the gradient over
//! rows with a strided reduction: that was 11% of training time on aus_retail. Other devices use
//! the same cell composed of tensor ops.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

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

/// Planes of the op's output: the new states, then the activations the backward pass reuses.
const H: usize = 0;
const C: usize = 1;
const INPUT: usize = 2;
const FORGET: usize = 3;
const CANDIDATE: usize = 4;
const OUTPUT: usize = 5;
const TANH_C: usize = 6;
const PLANES: usize = 7;

impl CustomOp3 for LstmCell {
    fn name(&self) -> &'static str {
        "lstm-cell"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let gates = contiguous(s1, l1, "gates")?;
        let bias = contiguous(s2, l2, "bias")?;
        let c_prev = contiguous(s3, l3, "cell state")?;
        let (batch, cells) = l3.shape().dims2()?;
        if gates.len() != batch * 4 * cells
            || (bias.len() != 4 * cells && bias.len() != gates.len())
        {
            candle_core::bail!(
                "lstm cell: gates {:?} and bias {:?} do not fit the cell state {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let n = batch * cells;
        let mut out = vec![0f32; PLANES * n];
        pulp::Arch::new().dispatch(Forward {
            gates,
            bias,
            c_prev,
            out: &mut out,
            cells,
        });
        Ok((CpuStorage::F32(out), Shape::from((PLANES, batch, cells))))
    }

    fn bwd(
        &self,
        gates: &Tensor,
        bias: &Tensor,
        c_prev: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (batch, cells) = c_prev.dims2()?;
        let n = batch * cells;
        let cp = c_prev.flatten_all()?.to_vec1::<f32>()?;
        let res = res.flatten_all()?.to_vec1::<f32>()?;
        let grad = grad.flatten_all()?.to_vec1::<f32>()?;
        let mut d_gates = vec![0f32; 4 * n];
        let mut d_c_prev = vec![0f32; n];
        pulp::Arch::new().dispatch(Backward {
            planes: [
                &res[INPUT * n..(INPUT + 1) * n],
                &res[FORGET * n..(FORGET + 1) * n],
                &res[CANDIDATE * n..(CANDIDATE + 1) * n],
                &res[OUTPUT * n..(OUTPUT + 1) * n],
                &res[TANH_C * n..(TANH_C + 1) * n],
                &grad[H * n..(H + 1) * n],
                &grad[C * n..(C + 1) * n],
                &cp,
            ],
            d_gates: &mut d_gates,
            d_c_prev: &mut d_c_prev,
            cells,
        });
        let device = gates.device();
        // The bias's gradient: summed over rows when shared, else the gates' gradient itself
        // (the same immutable tensor, not a copy).
        let shared_sums = (bias.rank() == 1).then(|| {
            let mut sums = vec![0f32; 4 * cells];
            for row in d_gates.chunks_exact(4 * cells) {
                for (sum, d) in sums.iter_mut().zip(row) {
                    *sum += d;
                }
            }
            sums
        });
        let d_gates = Tensor::from_vec(d_gates, (batch, 4 * cells), device)?;
        let d_bias = match shared_sums {
            Some(sums) => Tensor::from_vec(sums, 4 * cells, device)?,
            None => d_gates.clone(),
        };
        Ok((
            Some(d_gates),
            Some(d_bias),
            Some(Tensor::from_vec(d_c_prev, (batch, cells), device)?),
        ))
    }
}

/// The forward pass over all rows, run through [`pulp::Arch::dispatch`] so that the loop is
/// compiled for (and vectorised with) the widest vector unit the CPU has: AVX2 where there is
/// one, SSE2 otherwise. Lanes are independent IEEE operations either way (no fused
/// multiply-adds), so results are the same on every x86-64 CPU.
struct Forward<'a> {
    gates: &'a [f32],
    /// `4·cells` values shared by every row, or one row of them per row.
    bias: &'a [f32],
    c_prev: &'a [f32],
    out: &'a mut [f32],
    cells: usize,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            gates,
            bias,
            c_prev,
            out,
            cells,
        } = self;
        let shared = bias.len() == 4 * cells;
        let n = c_prev.len();
        let mut planes: Vec<&mut [f32]> = out.chunks_exact_mut(n).collect();
        let [h, c, i, f, g, o, tc] = planes.as_mut_slice() else {
            unreachable!("seven planes")
        };
        // Rows zipped element by element (no indexing) so that the loop vectorises.
        for (row, gates) in gates.chunks_exact(4 * cells).enumerate() {
            let span = row * cells..(row + 1) * cells;
            let (gi, rest) = gates.split_at(cells);
            let (gf, rest) = rest.split_at(cells);
            let (gg, go) = rest.split_at(cells);
            let bias = if shared {
                bias
            } else {
                &bias[row * 4 * cells..(row + 1) * 4 * cells]
            };
            let (bi, rest) = bias.split_at(cells);
            let (bf, rest) = rest.split_at(cells);
            let (bg, bo) = rest.split_at(cells);
            let lanes = h[span.clone()]
                .iter_mut()
                .zip(c[span.clone()].iter_mut())
                .zip(i[span.clone()].iter_mut().zip(f[span.clone()].iter_mut()))
                .zip(g[span.clone()].iter_mut().zip(o[span.clone()].iter_mut()))
                .zip(tc[span.clone()].iter_mut().zip(&c_prev[span]))
                .zip(gi.iter().zip(gf).zip(gg.iter().zip(go)))
                .zip(bi.iter().zip(bf).zip(bg.iter().zip(bo)));
            for (
                (((((h, c), (i, f)), (g, o)), (tc, cp)), ((gi, gf), (gg, go))),
                ((bi, bf), (bg, bo)),
            ) in lanes
            {
                *i = sigmoid(gi + bi);
                *f = sigmoid(gf + bf);
                *g = tanh(gg + bg);
                *o = sigmoid(go + bo);
                *c = *f * cp + *i * *g;
                *tc = tanh(*c);
                *h = *o * *tc;
            }
        }
    }
}

/// The backward pass over all rows, dispatched as [`Forward`] is. `planes` are the forward's
/// activations (i, f, g, o, tanh c), the incoming gradients of h and c, and the previous cell
/// state.
struct Backward<'a> {
    planes: [&'a [f32]; 8],
    d_gates: &'a mut [f32],
    d_c_prev: &'a mut [f32],
    cells: usize,
}

impl pulp::WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            planes: [i, f, g, o, tc, grad_h, grad_c, cp],
            d_gates,
            d_c_prev,
            cells,
        } = self;
        for (row, dg) in d_gates.chunks_exact_mut(4 * cells).enumerate() {
            let span = row * cells..(row + 1) * cells;
            let (dgi, rest) = dg.split_at_mut(cells);
            let (dgf, rest) = rest.split_at_mut(cells);
            let (dgg, dgo) = rest.split_at_mut(cells);
            let lanes = dgi
                .iter_mut()
                .zip(dgf.iter_mut())
                .zip(dgg.iter_mut().zip(dgo.iter_mut()))
                .zip(d_c_prev[span.clone()].iter_mut().zip(&cp[span.clone()]))
                .zip(
                    i[span.clone()]
                        .iter()
                        .zip(&f[span.clone()])
                        .zip(g[span.clone()].iter().zip(&o[span.clone()])),
                )
                .zip(
                    tc[span.clone()]
                        .iter()
                        .zip(&grad_h[span.clone()])
                        .zip(&grad_c[span]),
                );
            for (((((dgi, dgf), (dgg, dgo)), (dcp, cp)), ((i, f), (g, o))), ((tc, gh), gc)) in lanes
            {
                let dc = gc + gh * o * (1.0 - tc * tc);
                *dgi = dc * g * i * (1.0 - i);
                *dgf = dc * cp * f * (1.0 - f);
                *dgg = dc * i * (1.0 - g * g);
                *dgo = gh * tc * o * (1.0 - o);
                *dcp = dc * f;
            }
        }
    }
}

/// The cell composed of tensor operations (any device); `(h, c)`.
pub fn composed(
    gates: &Tensor,
    bias: &Tensor,
    c_prev: &Tensor,
) -> candle_core::Result<(Tensor, Tensor)> {
    let gates = gates.broadcast_add(bias)?;
    let cells = c_prev.dim(1)?;
    let sig = candle_nn::ops::sigmoid(&gates)?;
    let input_gate = sig.narrow(1, 0, cells)?;
    let forget_gate = sig.narrow(1, cells, cells)?;
    let output_gate = sig.narrow(1, 3 * cells, cells)?;
    let candidate = gates.narrow(1, 2 * cells, cells)?.tanh()?;
    let c = ((forget_gate * c_prev)? + (input_gate * candidate)?)?;
    let h = (output_gate * c.tanh()?)?;
    Ok((h, c))
}

/// The cell: fused on the CPU, composed elsewhere; `(h, c)`. `gates` are the pre-activations
/// without the bias, `bias` is `[4·cells]` or `[batch, 4·cells]`.
pub fn lstm_cell(
    gates: &Tensor,
    bias: &Tensor,
    c_prev: &Tensor,
) -> candle_core::Result<(Tensor, Tensor)> {
    if gates.device().is_cpu() {
        let gates = gates.contiguous()?;
        let bias = bias.contiguous()?;
        let c_prev = c_prev.contiguous()?;
        let out = gates.apply_op3(&bias, &c_prev, LstmCell)?;
        Ok((out.get(0)?, out.get(1)?))
    } else {
        composed(gates, bias, c_prev)
    }
}
