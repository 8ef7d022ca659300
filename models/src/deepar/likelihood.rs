//! The output distributions DeepAR can learn, as GluonTS's `DistributionOutput`s: a linear
//! projection of the network's output gives raw arguments, a domain map makes them valid, the
//! mean-abs scale of the window rescales the distribution, and training minimises the negative
//! log-likelihood. The likelihood is built from candle operations (so autograd differentiates
//! it, on any device); sampling for forecasts happens on the host with seeded generators.

use std::f64::consts::PI;

use candle_core::Tensor;
use rand::Rng;
use rand_distr::{ChiSquared, Distribution, Gamma, Open01, Poisson, StandardNormal};
use statrs::distribution::ContinuousCDF;

use crate::{Error, Result};

/// Which distribution the network outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Likelihood {
    Gaussian,
    StudentT,
    NegativeBinomial,
}

impl std::str::FromStr for Likelihood {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "gaussian" | "normal" => Ok(Self::Gaussian),
            "student-t" | "student-T" | "studentt" | "student_t" => Ok(Self::StudentT),
            "negative-binomial" | "negative_binomial" => Ok(Self::NegativeBinomial),
            _ => Err(Error::InvalidArgument {
                field: "likelihood",
                reason: format!("{text:?}: use gaussian, student-T or negative-binomial"),
            }),
        }
    }
}

impl std::fmt::Display for Likelihood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gaussian => "gaussian",
            Self::StudentT => "student-T",
            Self::NegativeBinomial => "negative-binomial",
        })
    }
}

/// torch's `finfo(float32).eps`, GluonTS's lower bound for scales.
const EPS: f64 = f32::EPSILON as f64;

/// `log(1 + exp(x))`, computed without overflow.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((x.relu()? + tail)?)
}

/// `ln Γ(x)` for x > 0: Stirling's series at x + 6 (error below 1e-8), shifted back with
/// `ln Γ(x) = ln Γ(x + 6) - Σ ln(x + k)`. Built from plain operations, so its gradient (the
/// digamma function) comes from autograd.
pub fn lgamma(x: &Tensor) -> Result<Tensor> {
    let z = (x + 6.0)?;
    let inverse = z.recip()?;
    let inverse_sq = inverse.sqr()?;
    // 1/(12z) - 1/(360z^3) + 1/(1260z^5)
    let inner = ((&inverse_sq * (-1.0 / 1260.0))? + (1.0 / 360.0))?;
    let series = (&inverse * ((&inverse_sq * inner)?.neg()? + (1.0 / 12.0))?)?;
    let stirling = (((&z - 0.5)? * z.log()?)? - &z)?;
    let stirling = ((stirling + 0.5 * (2.0 * PI).ln())? + series)?;
    let mut shift = x.log()?;
    for k in 1..6 {
        shift = (shift + (x + k as f64)?.log()?)?;
    }
    Ok((stirling - shift)?)
}

fn column(raw: &Tensor, index: usize) -> Result<Tensor> {
    Ok(raw.narrow(1, index, 1)?.squeeze(1)?)
}

impl Likelihood {
    /// Raw arguments the projection must produce.
    pub fn num_args(&self) -> usize {
        match self {
            Self::Gaussian | Self::NegativeBinomial => 2,
            Self::StudentT => 3,
        }
    }

    /// Negative log-likelihood of each `target` (original units) under the distributions given
    /// by `raw` (`[n, num_args]`) and the window scales `scale` (`[n]`); returns `[n]`.
    pub fn negative_log_likelihood(
        &self,
        raw: &Tensor,
        target: &Tensor,
        scale: &Tensor,
    ) -> Result<Tensor> {
        let log_scale = scale.log()?;
        match self {
            Self::Gaussian => {
                let mu = column(raw, 0)?;
                let sigma = softplus(&column(raw, 1)?)?.clamp(EPS, f64::INFINITY)?;
                let z = ((target / scale)? - mu)?.div(&sigma)?;
                let nll = ((z.sqr()? * 0.5)? + sigma.log()?)?;
                Ok(((nll + 0.5 * (2.0 * PI).ln())? + log_scale)?)
            }
            Self::StudentT => {
                let df = (softplus(&column(raw, 0)?)? + 2.0)?;
                let mu = column(raw, 1)?;
                let sigma = softplus(&column(raw, 2)?)?.clamp(EPS, f64::INFINITY)?;
                let z = ((target / scale)? - mu)?.div(&sigma)?;
                let half_df_plus = ((&df + 1.0)? * 0.5)?;
                let normaliser = ((lgamma(&(&df * 0.5)?)? - lgamma(&half_df_plus)?)?
                    + ((&df * PI)?.log()? * 0.5)?)?;
                let kernel = (half_df_plus * ((z.sqr()? / &df)? + 1.0)?.log()?)?;
                Ok((((normaliser + kernel)? + sigma.log()?)? + log_scale)?)
            }
            Self::NegativeBinomial => {
                let count = softplus(&column(raw, 0)?)?.clamp(EPS, f64::INFINITY)?;
                let logits = (column(raw, 1)? + log_scale)?;
                // log p(k) = r·logσ(-l) + k·logσ(l) + lnΓ(k + r) - lnΓ(k + 1) - lnΓ(r)
                let log_sigmoid_neg = softplus(&logits)?.neg()?;
                let log_sigmoid = softplus(&logits.neg()?)?.neg()?;
                let log_prob = ((&count * log_sigmoid_neg)? + (target * log_sigmoid)?)?;
                let log_prob =
                    ((log_prob + lgamma(&(target + &count)?)?)? - lgamma(&(target + 1.0)?)?)?;
                Ok((log_prob - lgamma(&count)?)?.neg()?)
            }
        }
    }

    /// The distribution of one step on the host, in scaled units for the continuous ones and in
    /// original units for the negative binomial (whose scale enters its logits).
    pub fn host_distribution(&self, raw: &[f32], scale: f32) -> Distribution1 {
        let softplus = |x: f32| x.max(0.0) + (-x.abs()).exp().ln_1p();
        match self {
            Self::Gaussian => Distribution1::Gaussian {
                mu: raw[0],
                sigma: softplus(raw[1]).max(EPS as f32),
            },
            Self::StudentT => Distribution1::StudentT {
                df: 2.0 + softplus(raw[0]),
                mu: raw[1],
                sigma: softplus(raw[2]).max(EPS as f32),
            },
            Self::NegativeBinomial => Distribution1::NegativeBinomial {
                count: softplus(raw[0]).max(EPS as f32),
                logits: raw[1] + scale.ln(),
            },
        }
    }

    /// A draw of [`Self::host_distribution`] in scaled units: the continuous likelihoods draw
    /// in them already, the negative binomial in original units.
    pub fn scaled_draw(&self, draw: f32, scale: f32) -> f32 {
        match self {
            Self::NegativeBinomial => draw / scale,
            _ => draw,
        }
    }
}

/// One step's distribution on the host.
#[derive(Debug, Clone, Copy)]
pub enum Distribution1 {
    Gaussian { mu: f32, sigma: f32 },
    StudentT { df: f32, mu: f32, sigma: f32 },
    NegativeBinomial { count: f32, logits: f32 },
}

impl Distribution1 {
    /// One draw.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        match *self {
            Self::NegativeBinomial { count, logits } => {
                sample_negative_binomial(count, logits, rng)
            }
            _ => self.sample_from_normal(StandardNormal.sample(rng), rng),
        }
    }

    /// One draw whose normal part is `z`, a standard normal draw the caller chose (a stratum of
    /// [`stratified_normals`]): a Gaussian is `μ + σz`, a Student-t `μ + σz/√(χ²_ν/ν)` with the
    /// χ² drawn here, which is exactly Student-t distributed when `z` is standard normal. A
    /// negative binomial has no normal part and ignores `z`.
    pub fn sample_from_normal<R: Rng + ?Sized>(&self, z: f64, rng: &mut R) -> f32 {
        match *self {
            Self::Gaussian { mu, sigma } => mu + sigma * z as f32,
            Self::StudentT { df, mu, sigma } => {
                let df = f64::from(df);
                let ratio = ChiSquared::new(df).map_or(1.0, |d| d.sample(rng) / df);
                mu + sigma * (z / ratio.sqrt()) as f32
            }
            Self::NegativeBinomial { count, logits } => {
                sample_negative_binomial(count, logits, rng)
            }
        }
    }

    /// The mean (for a negative binomial, `r·exp(logits)`).
    pub fn mean(&self) -> f32 {
        match *self {
            Self::Gaussian { mu, .. } | Self::StudentT { mu, .. } => mu,
            Self::NegativeBinomial { count, logits } => count * logits.exp(),
        }
    }
}

/// A Gamma-Poisson draw: the negative binomial with `count` and `logits`.
fn sample_negative_binomial<R: Rng + ?Sized>(count: f32, logits: f32, rng: &mut R) -> f32 {
    let scale = f64::from(logits).exp().min(1e30);
    let rate = Gamma::new(f64::from(count), scale)
        .map(|g| g.sample(rng))
        .unwrap_or(0.0);
    if rate <= 0.0 || !rate.is_finite() {
        return 0.0;
    }
    Poisson::new(rate).map(|p| p.sample(rng)).unwrap_or(rate) as f32
}

/// Standard normal draws for `n` sample paths by Latin hypercube sampling: one draw from each of
/// `n` equiprobable strata of N(0, 1), assigned to paths in random order. Each path's draw is
/// still standard normal, and independent of its draws at other steps (every step shuffles
/// anew), so every path remains an exact ancestral sample; but together the `n` draws cover the
/// distribution evenly instead of clumping, which takes much of the Monte-Carlo noise out of
/// quantiles read off 100 paths.
pub fn stratified_normals<R: Rng + ?Sized>(n: usize, rng: &mut R, out: &mut Vec<f64>) {
    use rand::seq::SliceRandom;
    let normal = statrs::distribution::Normal::standard();
    let mut strata: Vec<usize> = (0..n).collect();
    strata.shuffle(rng);
    out.clear();
    out.extend(strata.into_iter().map(|stratum| {
        let u: f64 = Open01.sample(rng);
        normal.inverse_cdf((stratum as f64 + u) / n as f64)
    }));
}
