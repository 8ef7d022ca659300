//! Choosing among candidates of different families trained on the same data: each is scored on
//! the same validation windows (cut from the training data, never the test windows), and the
//! lowest mean_wQuantileLoss wins. Pure: training writes the scores, this chooses and says why
//! each candidate won or lost, and publishing records it with the winner's version.

use serde::{Deserialize, Serialize};

/// One candidate's validation score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The family (`deepar`, `mstl`, `ets`).
    pub family: String,
    /// Where the candidate's model directory is.
    pub model_dir: String,
    #[serde(rename = "validation_mean_wQuantileLoss")]
    pub mean_wql: f64,
    #[serde(rename = "validation_seasonal_naive_mean_wQuantileLoss")]
    pub naive_mean_wql: f64,
}

/// A candidate with its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub entry: Entry,
    pub won: bool,
    pub reason: String,
}

/// The choice: the winner's index into the entries, and every entry's outcome in their order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    pub winner: usize,
    pub outcomes: Vec<Outcome>,
}

/// Chooses the entry with the lowest finite validation loss (the first of equals). None when
/// no entry has a finite loss.
pub fn select(entries: &[Entry]) -> Option<Selection> {
    let winner = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.mean_wql.is_finite())
        .min_by(|(_, a), (_, b)| a.mean_wql.total_cmp(&b.mean_wql))?
        .0;
    let best = &entries[winner];
    let runner_up = entries
        .iter()
        .enumerate()
        .filter(|(i, e)| *i != winner && e.mean_wql.is_finite())
        .min_by(|(_, a), (_, b)| a.mean_wql.total_cmp(&b.mean_wql))
        .map(|(_, e)| e);
    let outcomes = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let reason = if i == winner {
                match runner_up {
                    Some(next) => format!(
                        "lowest validation mean_wQuantileLoss {:.4}, {:.1} % below {}'s {:.4}",
                        e.mean_wql,
                        (1.0 - e.mean_wql / next.mean_wql) * 100.0,
                        next.family,
                        next.mean_wql
                    ),
                    None => format!(
                        "the only candidate with a finite validation mean_wQuantileLoss ({:.4})",
                        e.mean_wql
                    ),
                }
            } else if !e.mean_wql.is_finite() {
                format!("validation mean_wQuantileLoss is {}", e.mean_wql)
            } else {
                format!(
                    "validation mean_wQuantileLoss {:.4} is {:.1} % above {}'s {:.4}",
                    e.mean_wql,
                    (e.mean_wql / best.mean_wql - 1.0) * 100.0,
                    best.family,
                    best.mean_wql
                )
            };
            Outcome {
                entry: e.clone(),
                won: i == winner,
                reason,
            }
        })
        .collect();
    Some(Selection { winner, outcomes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(family: &str, wql: f64) -> Entry {
        Entry {
            family: family.into(),
            model_dir: format!("work/{family}"),
            mean_wql: wql,
            naive_mean_wql: 0.3,
        }
    }

    #[test]
    fn the_lowest_validation_loss_wins_and_every_candidate_says_why() {
        let chosen = select(&[
            entry("deepar", 0.2),
            entry("mstl", 0.16),
            entry("ets", f64::NAN),
        ])
        .unwrap();
        assert_eq!(chosen.winner, 1);
        let reasons: Vec<&str> = chosen.outcomes.iter().map(|o| o.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "validation mean_wQuantileLoss 0.2000 is 25.0 % above mstl's 0.1600",
                "lowest validation mean_wQuantileLoss 0.1600, 20.0 % below deepar's 0.2000",
                "validation mean_wQuantileLoss is NaN",
            ]
        );
        assert!(chosen.outcomes[1].won && !chosen.outcomes[0].won);
        let json = serde_json::to_value(&chosen.outcomes[1]).unwrap();
        assert_eq!(json["family"], "mstl");
        assert_eq!(json["validation_mean_wQuantileLoss"], 0.16);
    }

    #[test]
    fn a_lone_candidate_wins_and_no_finite_loss_chooses_nothing() {
        let chosen = select(&[entry("mstl", 0.1)]).unwrap();
        assert!(chosen.outcomes[0].reason.starts_with("the only candidate"));
        assert!(select(&[entry("deepar", f64::INFINITY)]).is_none());
        assert!(select(&[]).is_none());
    }
}
