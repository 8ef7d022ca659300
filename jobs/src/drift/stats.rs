//! Two-sample drift statistics, as Evidently computes them: the population stability index with
//! bins from the reference's quantiles, the two-sample Kolmogorov-Smirnov test (asymptotic
//! p-value, as scipy's `ks_2samp` gives for large samples), and the Wasserstein-1 distance
//! normalised by the reference's standard deviation. NaNs are left out by the caller.

/// Sorted copy of the finite values.
pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The fraction of `sorted` that is `<= x`.
fn cdf(sorted: &[f64], x: f64) -> f64 {
    sorted.partition_point(|v| *v <= x) as f64 / sorted.len() as f64
}

/// The KS statistic (largest CDF gap) and its asymptotic p-value.
pub fn ks_2samp(reference: &[f64], current: &[f64]) -> (f64, f64) {
    let (a, b) = (sorted(reference), sorted(current));
    if a.is_empty() || b.is_empty() {
        return (0.0, 1.0);
    }
    let mut d: f64 = 0.0;
    for x in a.iter().chain(&b) {
        d = d.max((cdf(&a, *x) - cdf(&b, *x)).abs());
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let effective = (n * m / (n + m)).sqrt();
    (d, kolmogorov_q(effective * d))
}

/// The Kolmogorov distribution's survival function Q(λ) = 2 Σ (-1)^(j-1) exp(-2 j² λ²).
fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for j in 1..=100 {
        let term = (-2.0 * f64::from(j * j) * lambda * lambda).exp();
        sum += sign * term;
        if term < 1e-12 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Wasserstein-1 distance between the two empirical distributions.
pub fn wasserstein(reference: &[f64], current: &[f64]) -> f64 {
    let (a, b) = (sorted(reference), sorted(current));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut all: Vec<f64> = a.iter().chain(&b).copied().collect();
    all.sort_by(f64::total_cmp);
    all.windows(2)
        .map(|w| (cdf(&a, w[0]) - cdf(&b, w[0])).abs() * (w[1] - w[0]))
        .sum()
}

/// Population standard deviation.
pub fn std(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    if n == 0.0 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// Wasserstein distance in units of the reference's standard deviation (Evidently's
/// `wasserstein` drift score); a constant reference uses 1.
pub fn wasserstein_normed(reference: &[f64], current: &[f64]) -> f64 {
    let finite: Vec<f64> = reference
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    let spread = std(&finite);
    wasserstein(reference, current) / if spread > 0.0 { spread } else { 1.0 }
}

/// PSI over `bins` bins cut at the reference's quantiles; empty bins count as 0.0001 (as
/// Evidently does), so the index stays finite.
pub fn psi(reference: &[f64], current: &[f64], bins: usize) -> f64 {
    let (a, b) = (sorted(reference), sorted(current));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut edges: Vec<f64> = (1..bins)
        .map(|i| a[(i * a.len() / bins).min(a.len() - 1)])
        .collect();
    edges.dedup();
    let shares = |values: &[f64]| {
        let mut counts = vec![0usize; edges.len() + 1];
        for v in values {
            counts[edges.partition_point(|e| e < v)] += 1;
        }
        counts
            .into_iter()
            .map(|c| (c as f64 / values.len() as f64).max(1e-4))
            .collect::<Vec<_>>()
    };
    let (p, q) = (shares(&a), shares(&b));
    p.iter().zip(&q).map(|(p, q)| (q - p) * (q / p).ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn ks_matches_scipy() {
        // scipy.stats.ks_2samp([1..=10], [6..=15], method="asymp"): D = 0.5, p ≈ 0.1641.
        let a: Vec<f64> = (1..=10).map(f64::from).collect();
        let b: Vec<f64> = (6..=15).map(f64::from).collect();
        let (d, p) = ks_2samp(&a, &b);
        assert!(close(d, 0.5, 1e-12), "{d}");
        assert!(close(p, 0.1641, 1e-3), "{p}");
        let (d, p) = ks_2samp(&a, &a);
        assert_eq!((d, p), (0.0, 1.0));
    }

    #[test]
    fn wasserstein_by_hand() {
        // Shifting every point by 2 moves the distribution by 2.
        let a = [0.0, 1.0, 2.0, 3.0];
        let b = [2.0, 3.0, 4.0, 5.0];
        assert!(close(wasserstein(&a, &b), 2.0, 1e-12));
        assert!(close(wasserstein(&a, &a), 0.0, 1e-12));
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) = 5.
        assert!(close(
            wasserstein(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]),
            5.0,
            1e-12
        ));
        assert!(close(wasserstein_normed(&a, &b), 2.0 / std(&a), 1e-12));
    }

    #[test]
    fn psi_is_zero_for_the_same_data_and_grows_with_a_shift() {
        let a: Vec<f64> = (0..1000).map(|i| f64::from(i % 100)).collect();
        assert!(psi(&a, &a, 10) < 1e-9);
        let shifted: Vec<f64> = a.iter().map(|v| v + 30.0).collect();
        let small: Vec<f64> = a.iter().map(|v| v + 3.0).collect();
        let (big, little) = (psi(&a, &shifted, 10), psi(&a, &small, 10));
        assert!(big > 0.25 && little < big, "{big} {little}");
    }
}
