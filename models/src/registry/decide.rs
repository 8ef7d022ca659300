//! Whether a candidate version is published: it must beat seasonal naive on its backtest, and
//! the champion (scored on the same windows) by a relative margin. Pure: the publish job
//! gathers the scores, this decides, the job records the outcome.

use serde::Serialize;

/// Mean weighted quantile losses (lower is better) on one set of backtest windows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scores {
    pub mean_wql: f64,
    pub naive_mean_wql: f64,
}

/// The outcome, with a reason a person can read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Decision {
    Promote { reason: String },
    Reject { reason: String },
}

impl Decision {
    pub fn promotes(&self) -> bool {
        matches!(self, Decision::Promote { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Promote { reason } | Decision::Reject { reason } => reason,
        }
    }
}

/// Decides on `candidate` against the champion's score on the same windows (if there is a
/// champion); `margin` is the relative improvement required (0.02: 2 % lower loss).
pub fn decide(candidate: Scores, champion: Option<(u32, f64)>, margin: f64) -> Decision {
    let reject = |reason: String| Decision::Reject { reason };
    if !candidate.mean_wql.is_finite() {
        return reject(format!(
            "the candidate's mean_wQuantileLoss is {}",
            candidate.mean_wql
        ));
    }
    if candidate.mean_wql >= candidate.naive_mean_wql {
        return reject(format!(
            "mean_wQuantileLoss {:.4} does not beat seasonal naive's {:.4}",
            candidate.mean_wql, candidate.naive_mean_wql
        ));
    }
    match champion {
        None => Decision::Promote {
            reason: format!(
                "no champion yet; mean_wQuantileLoss {:.4} beats seasonal naive's {:.4}",
                candidate.mean_wql, candidate.naive_mean_wql
            ),
        },
        Some((version, score)) if !score.is_finite() => Decision::Promote {
            reason: format!("champion v{version} scores {score} on these windows"),
        },
        Some((version, score)) => {
            let bar = score * (1.0 - margin);
            if candidate.mean_wql < bar {
                Decision::Promote {
                    reason: format!(
                        "mean_wQuantileLoss {:.4} beats champion v{version}'s {:.4} by {:.1} % (margin {:.1} %)",
                        candidate.mean_wql,
                        score,
                        (1.0 - candidate.mean_wql / score) * 100.0,
                        margin * 100.0
                    ),
                }
            } else {
                reject(format!(
                    "mean_wQuantileLoss {:.4} does not beat champion v{version}'s {:.4} by the margin of {:.1} % (needs < {:.4})",
                    candidate.mean_wql,
                    score,
                    margin * 100.0,
                    bar
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(model: f64, naive: f64) -> Scores {
        Scores {
            mean_wql: model,
            naive_mean_wql: naive,
        }
    }

    #[test]
    fn first_version_needs_to_beat_naive_only() {
        assert!(decide(scores(0.10, 0.20), None, 0.02).promotes());
        let d = decide(scores(0.20, 0.20), None, 0.02);
        assert!(!d.promotes());
        assert!(d.reason().contains("seasonal naive"), "{}", d.reason());
    }

    #[test]
    fn the_champion_must_be_beaten_by_the_margin() {
        assert!(decide(scores(0.095, 0.2), Some((3, 0.1)), 0.02).promotes());
        let d = decide(scores(0.099, 0.2), Some((3, 0.1)), 0.02);
        assert!(!d.promotes());
        assert!(d.reason().contains("champion v3"), "{}", d.reason());
        // Zero margin: strictly better is enough.
        assert!(decide(scores(0.0999, 0.2), Some((3, 0.1)), 0.0).promotes());
        assert!(!decide(scores(0.1, 0.2), Some((3, 0.1)), 0.0).promotes());
    }

    #[test]
    fn a_diverged_candidate_is_rejected() {
        assert!(!decide(scores(f64::NAN, 0.2), None, 0.0).promotes());
        assert!(!decide(scores(f64::INFINITY, 0.2), Some((1, 0.1)), 0.0).promotes());
    }
}
