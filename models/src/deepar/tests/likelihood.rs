//! The likelihoods against closed forms and finite differences, sampling, and the fused cell.

use candle_core::{Device, Tensor, Var};

use super::super::cell;
use super::super::likelihood::{Likelihood, lgamma, softplus};
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

#[test]
fn the_fused_lstm_cell_matches_the_composed_one_and_its_gradients() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (batch, cells) = (3, 5);
    let gates: Vec<f32> = (0..batch * 4 * cells)
        .map(|_| rng.random_range(-4.0..4.0))
        .collect();
    let c_prev: Vec<f32> = (0..batch * cells)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let gates =
        Var::from_tensor(&Tensor::from_vec(gates, (batch, 4 * cells), &Device::Cpu).unwrap())
            .unwrap();
    let c_prev =
        Var::from_tensor(&Tensor::from_vec(c_prev, (batch, cells), &Device::Cpu).unwrap()).unwrap();
    let weights = Tensor::from_vec(
        (0..2 * batch * cells)
            .map(|i| (i % 7) as f32 - 3.0)
            .collect::<Vec<_>>(),
        (2, batch, cells),
        &Device::Cpu,
    )
    .unwrap();
    let run = |fused: bool| {
        let (h, c) = if fused {
            cell::lstm_cell(gates.as_tensor(), c_prev.as_tensor()).unwrap()
        } else {
            cell::composed(gates.as_tensor(), c_prev.as_tensor()).unwrap()
        };
        // A loss that weighs every output differently.
        let loss = ((h * weights.get(0).unwrap()).unwrap().sum_all().unwrap()
            + (c.clone() * weights.get(1).unwrap())
                .unwrap()
                .sum_all()
                .unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (
            flat(&c),
            flat(grads.get(gates.as_tensor()).unwrap()),
            flat(grads.get(c_prev.as_tensor()).unwrap()),
        )
    };
    let (fused, composed) = (run(true), run(false));
    for (name, a, b) in [
        ("c", &fused.0, &composed.0),
        ("d gates", &fused.1, &composed.1),
        ("d c_prev", &fused.2, &composed.2),
    ] {
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(
                (x - y).abs() < 1e-5 * (1.0 + y.abs()),
                "{name}: fused {x} vs composed {y}"
            );
        }
    }
}
