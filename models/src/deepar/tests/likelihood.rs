//! The likelihoods against closed forms and finite differences, sampling, and the fused cell.

use candle_core::{Device, Tensor, Var};

use super::super::cell;
use super::super::likelihood::{Likelihood, lgamma, softplus, stratified_normals};
use super::tensor;

#[test]
fn lgamma_and_softplus_match_known_values() {
    let x = tensor(&[0.5, 1.0, 2.0, 3.5, 10.0, 150.0]);
    let got = lgamma(&x).unwrap().to_vec1::<f64>().unwrap();
    let want = [
        0.5723649429247001,
        0.0,
        0.0,
        1.2009736023470743,
        12.801827480081469,
        600.0094705553274,
    ];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-8, "lgamma {g} != {w}");
    }
    let s = softplus(&tensor(&[-30.0, 0.0, 30.0]))
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert!(
        (s[0] - (-30f64).exp()).abs() < 1e-15
            && (s[1] - 2f64.ln()).abs() < 1e-12
            && (s[2] - 30.0).abs() < 1e-12
    );
}

fn softplus_host(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Closed-form negative log-likelihoods (original units) for a few points.
fn nll_closed_form(likelihood: Likelihood, raw: &[f64], y: f64, scale: f64) -> f64 {
    match likelihood {
        Likelihood::Gaussian => {
            let (mu, sigma) = (raw[0] * scale, softplus_host(raw[1]) * scale);
            0.5 * (2.0 * std::f64::consts::PI).ln() + sigma.ln() + 0.5 * ((y - mu) / sigma).powi(2)
        }
        Likelihood::StudentT => {
            let (df, mu, sigma) = (
                2.0 + softplus_host(raw[0]),
                raw[1] * scale,
                softplus_host(raw[2]) * scale,
            );
            let z = (y - mu) / sigma;
            let lg = |v: f64| lgamma(&tensor(&[v])).unwrap().to_vec1::<f64>().unwrap()[0];
            -(lg((df + 1.0) / 2.0)
                - lg(df / 2.0)
                - 0.5 * (df * std::f64::consts::PI).ln()
                - sigma.ln()
                - (df + 1.0) / 2.0 * (1.0 + z * z / df).ln())
        }
        Likelihood::NegativeBinomial => {
            let (r, mean) = (
                softplus_host(raw[0]),
                (raw[1] + scale.ln()).exp() * softplus_host(raw[0]),
            );
            let p = mean / (mean + r);
            let lg = |v: f64| lgamma(&tensor(&[v])).unwrap().to_vec1::<f64>().unwrap()[0];
            -(lg(y + r) - lg(y + 1.0) - lg(r) + r * (1.0 - p).ln() + y * p.ln())
        }
    }
}

#[test]
fn likelihoods_match_closed_forms_and_finite_differences() {
    let cases: [(Likelihood, Vec<f64>); 3] = [
        (Likelihood::Gaussian, vec![0.3, -0.2, 1.5, 0.7]),
        (Likelihood::StudentT, vec![0.4, 0.3, -0.2, -1.0, 1.5, 0.7]),
        (Likelihood::NegativeBinomial, vec![0.4, -0.3, 1.2, 0.5]),
    ];
    let targets = [3.0, 7.0];
    let scale = 2.5;
    for (likelihood, raw) in cases {
        let k = likelihood.num_args();
        let var =
            Var::from_tensor(&Tensor::from_slice(&raw, (2, k), &Device::Cpu).unwrap()).unwrap();
        let y = tensor(&targets);
        let s = tensor(&[scale, scale]);
        let nll = likelihood
            .negative_log_likelihood(var.as_tensor(), &y, &s)
            .unwrap();
        let values = nll.to_vec1::<f64>().unwrap();
        for (row, &target) in targets.iter().enumerate() {
            let want = nll_closed_form(likelihood, &raw[row * k..(row + 1) * k], target, scale);
            assert!(
                (values[row] - want).abs() < 1e-8,
                "{likelihood}: {} != {want}",
                values[row]
            );
        }
        let grads = nll.sum_all().unwrap().backward().unwrap();
        let analytic = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for i in 0..raw.len() {
            let at = |delta: f64| {
                let mut moved = raw.clone();
                moved[i] += delta;
                let t = Tensor::from_slice(&moved, (2, k), &Device::Cpu).unwrap();
                likelihood
                    .negative_log_likelihood(&t, &y, &s)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let numeric = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!(
                (numeric - analytic[i]).abs() < 1e-5 * (1.0 + numeric.abs()),
                "{likelihood} d/draw[{i}]: autograd {} vs finite difference {numeric}",
                analytic[i]
            );
        }
    }
}

#[test]
fn samples_follow_their_distribution() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for (likelihood, raw, scale) in [
        (Likelihood::Gaussian, vec![1.0f32, 0.5], 1.0f32),
        (Likelihood::StudentT, vec![3.0, 1.0, 0.5], 1.0),
        (Likelihood::NegativeBinomial, vec![1.0, 0.5], 4.0),
    ] {
        let d = likelihood.host_distribution(&raw, scale);
        let n = 20_000;
        let mean = (0..n).map(|_| f64::from(d.sample(&mut rng))).sum::<f64>() / n as f64;
        let want = f64::from(d.mean());
        assert!(
            (mean - want).abs() < 0.05 * want.abs().max(1.0),
            "{likelihood}: sample mean {mean}, mean {want}"
        );
    }
}

/// The Kolmogorov-Smirnov distance between the empirical distribution of `sorted` and `cdf`.
fn ks_distance(sorted: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max((f - (i + 1) as f64 / n).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn stratified_normals_put_one_draw_in_every_stratum() {
    use rand::SeedableRng;
    use statrs::distribution::{ContinuousCDF, Normal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let phi = Normal::standard();
    let mut draws = Vec::new();
    for n in [1, 2, 7, 100] {
        stratified_normals(n, &mut rng, &mut draws);
        assert_eq!(draws.len(), n);
        let mut strata: Vec<usize> = draws
            .iter()
            .map(|z| (phi.cdf(*z) * n as f64) as usize)
            .collect();
        strata.sort_unstable();
        assert_eq!(strata, (0..n).collect::<Vec<_>>(), "n = {n}: {draws:?}");
    }
}

#[test]
fn one_path_s_stratified_draws_are_independent_standard_normals() {
    use rand::SeedableRng;
    use statrs::distribution::{ContinuousCDF, Normal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let (calls, paths) = (20_000, 10);
    let mut draws = Vec::new();
    // Path 3's draw at every call (a call is one forecast step).
    let path: Vec<f64> = (0..calls)
        .map(|_| {
            stratified_normals(paths, &mut rng, &mut draws);
            draws[3]
        })
        .collect();
    let mut sorted = path.clone();
    sorted.sort_by(f64::total_cmp);
    let phi = Normal::standard();
    // 0.0136 is the 5 % critical value for n = 20 000.
    let ks = ks_distance(&sorted, |z| phi.cdf(z));
    assert!(ks < 0.0136, "KS distance {ks}");
    let mean = path.iter().sum::<f64>() / calls as f64;
    let lag1 = path
        .windows(2)
        .map(|w| (w[0] - mean) * (w[1] - mean))
        .sum::<f64>()
        / (calls - 1) as f64;
    assert!(
        lag1.abs() < 0.03,
        "draws of consecutive steps correlate: {lag1}"
    );
}

#[test]
fn student_t_from_a_normal_draw_is_student_t() {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    // df = 2 + softplus(1.0), mu 1, sigma softplus(0.5).
    let d = Likelihood::StudentT.host_distribution(&[1.0, 1.0, 0.5], 1.0);
    let super::super::likelihood::Distribution1::StudentT { df, mu, sigma } = d else {
        panic!("{d:?}")
    };
    let want = StudentsT::new(f64::from(mu), f64::from(sigma), f64::from(df)).unwrap();
    let n = 20_000;
    let mut sorted: Vec<f64> = (0..n)
        .map(|_| f64::from(d.sample_from_normal(StandardNormal.sample(&mut rng), &mut rng)))
        .collect();
    sorted.sort_by(f64::total_cmp);
    let ks = ks_distance(&sorted, |x| want.cdf(x));
    assert!(ks < 0.0136, "KS distance to Student-t({df}): {ks}");
}

/// One LSTM cell step's inputs on a device, the same values on every device: gates, the
/// previous cell state, two biases (one shared by every row, and one per row as layer 0 has with
/// categorical embeddings) and the weights of a loss that weighs every output differently.
pub(super) struct CellCase {
    gates: Var,
    c_prev: Var,
    pub(super) biases: [Var; 2],
    weights: Tensor,
}

/// What a cell gives for a [`CellCase`]: `c` and the loss's gradients with respect to the
/// gates, `c_prev` and the bias, each flattened.
pub(super) type CellOutputs = [Vec<f32>; 4];

impl CellCase {
    pub(super) fn new(device: &Device) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (batch, cells) = (3, 5);
        let mut var = |shape: &[usize], bound: f32| {
            let values: Vec<f32> = (0..shape.iter().product())
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            Var::from_tensor(&Tensor::from_vec(values, shape, device).unwrap()).unwrap()
        };
        let gates = var(&[batch, 4 * cells], 4.0);
        let c_prev = var(&[batch, cells], 2.0);
        let biases = [var(&[4 * cells], 1.0), var(&[batch, 4 * cells], 1.0)];
        let weights: Vec<f32> = (0..2 * batch * cells)
            .map(|i| (i % 7) as f32 - 3.0)
            .collect();
        let weights = Tensor::from_vec(weights, (2, batch, cells), device).unwrap();
        Self {
            gates,
            c_prev,
            biases,
            weights,
        }
    }

    /// Runs `cell` with bias `bias` (0: shared, 1: per row) and back-propagates the loss.
    pub(super) fn run(
        &self,
        bias: usize,
        cell: impl Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<(Tensor, Tensor)>,
    ) -> CellOutputs {
        let bias = &self.biases[bias];
        let (h, c) = cell(
            self.gates.as_tensor(),
            bias.as_tensor(),
            self.c_prev.as_tensor(),
        )
        .unwrap();
        let loss = ((h * self.weights.get(0).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            + (c.clone() * self.weights.get(1).unwrap())
                .unwrap()
                .sum_all()
                .unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        [
            flat(&c),
            flat(grads.get(self.gates.as_tensor()).unwrap()),
            flat(grads.get(self.c_prev.as_tensor()).unwrap()),
            flat(grads.get(bias.as_tensor()).unwrap()),
        ]
    }
}

/// Asserts two cells' outputs agree to within `1e-5` relative.
pub(super) fn assert_cells_agree(what: &str, a: &CellOutputs, b: &CellOutputs) {
    for (name, (a, b)) in ["c", "d gates", "d c_prev", "d bias"]
        .iter()
        .zip(a.iter().zip(b))
    {
        assert_eq!(a.len(), b.len(), "{what} {name}");
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() < 1e-5 * (1.0 + y.abs()),
                "{what} {name}: {x} vs {y}"
            );
        }
    }
}

#[test]
fn the_fused_lstm_cell_matches_the_composed_one_and_its_gradients() {
    let case = CellCase::new(&Device::Cpu);
    for bias in 0..2 {
        let fused = case.run(bias, cell::lstm_cell);
        let composed = case.run(bias, cell::composed);
        assert_eq!(fused[3].len(), case.biases[bias].elem_count());
        assert_cells_agree("fused vs composed", &fused, &composed);
    }
}
