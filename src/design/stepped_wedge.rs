//! Stepped-wedge designs: the sequence × period matrix, the exposure of
//! each cluster-period (transition periods and implementation lag), the
//! randomisation of clusters to sequences, and the design's warnings.

use super::parallel::even_split;
use crate::config::{Config, Sampling, SteppedWedge, Transition};
use crate::error::{Error, Result};
use rand::Rng;

/// A resolved stepped-wedge design.
#[derive(Debug, Clone, PartialEq)]
pub struct SteppedWedgeDesign {
    /// One 0/1 row per sequence, one column per period.
    pub matrix: Vec<Vec<u8>>,
    pub periods: usize,
    pub sampling: Sampling,
    pub transition: Transition,
    /// Share of the effect in the 1st, 2nd, … exposed period (then 1).
    pub lag: Vec<f64>,
    /// Period effects in points (time_trend plus trend_slope·t).
    pub trend: Vec<f64>,
}

impl SteppedWedgeDesign {
    /// Resolve `[stepped_wedge]` of a validated config, checking that some
    /// period compares exposed with unexposed clusters.
    pub fn from_config(sw: &SteppedWedge) -> Result<SteppedWedgeDesign> {
        let m = sw.matrix();
        let periods = m.first().map(|r| r.len()).unwrap_or(0);
        // Some period must compare exposed with unexposed clusters, else the
        // effect is confounded with the period effects (a before-after study).
        let contrast = (0..periods).any(|t| {
            let mut seen: Option<f64> = None;
            m.iter().any(
                |row| match sw_cell(row, t, sw.transition, &sw.lag).exposure {
                    Some(e) => match seen {
                        Some(v) => v != e,
                        None => {
                            seen = Some(e);
                            false
                        }
                    },
                    None => false,
                },
            )
        });
        if !contrast {
            return Err(Error::invalid(
                "stepped_wedge.matrix",
                format!("{m:?}"),
                "in every period all sequences have the same exposure, so the effect is confounded with time; a stepped wedge needs at least two sequences that cross over at different times",
            ));
        }
        let trend = (0..periods)
            .map(|t| {
                sw.time_trend.as_ref().map(|v| v[t]).unwrap_or(0.0) + sw.trend_slope * t as f64
            })
            .collect();
        Ok(SteppedWedgeDesign {
            matrix: m,
            periods,
            sampling: sw.sampling,
            transition: sw.transition,
            lag: sw.lag.clone(),
            trend,
        })
    }

    /// Whether the same people are measured in every period.
    pub fn is_cohort(&self) -> bool {
        self.sampling == Sampling::Cohort
    }

    /// Period `t` of sequence `q`.
    pub fn cell(&self, q: usize, t: usize) -> SwCell {
        sw_cell(&self.matrix[q], t, self.transition, &self.lag)
    }

    /// Randomise `clusters` clusters to the sequences (an even split, earlier
    /// sequences taking the remainder): each cluster's sequence into `seq_of`.
    pub fn randomise<R: Rng + ?Sized>(&self, rng: &mut R, clusters: usize, seq_of: &mut Vec<u16>) {
        let mut order: Vec<usize> = (0..clusters).collect();
        for i in 0..clusters {
            let j = rng.random_range(i..clusters);
            order.swap(i, j);
        }
        let split = even_split(clusters as u32, self.matrix.len());
        seq_of.clear();
        seq_of.resize(clusters, 0);
        let mut k = 0;
        for (q, &n) in split.iter().enumerate() {
            for _ in 0..n {
                seq_of[order[k]] = q as u16;
                k += 1;
            }
        }
    }

    /// Sequences that never or always receive treatment (allowed; worth a warning).
    pub fn warnings(&self) -> Vec<String> {
        self.matrix
            .iter()
            .enumerate()
            .filter_map(|(s, r)| {
                if r.iter().all(|&v| v == 0) {
                    Some(format!(
                        "sequence {} never receives the intervention",
                        s + 1
                    ))
                } else if r.iter().all(|&v| v == 1) {
                    Some(format!(
                        "sequence {} receives the intervention in every period",
                        s + 1
                    ))
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Whether `cfg` is a stepped wedge (its `[stepped_wedge]` section, when
/// `trial.design` says so).
pub(super) fn section(cfg: &Config) -> Option<&SteppedWedge> {
    use crate::config::DesignKind;
    cfg.stepped_wedge
        .as_ref()
        .filter(|_| cfg.trial.design == DesignKind::SteppedWedge)
}

/// One cluster-period of a stepped-wedge sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwCell {
    /// The treatment column the analysis sees: 0/1, 0.5 in a half-exposed
    /// transition period, None when the transition period is excluded.
    pub exposure: Option<f64>,
    /// Periods since crossover (0 in the first exposed period; −1 before).
    pub since: i32,
    /// Share of the effect reached (the implementation lag; 1 without one).
    pub lag: f64,
}

/// Period `t` of a sequence's 0/1 `row`: the one rule the simulator and the
/// GLS power both use for transitions and implementation lag.
pub fn sw_cell(row: &[u8], t: usize, transition: Transition, lag: &[f64]) -> SwCell {
    let first = row.iter().position(|&x| x == 1);
    let since = match first {
        Some(f) if row[t] == 1 => t as i32 - f as i32,
        _ => -1,
    };
    let exposure = match (since, transition) {
        (0, Transition::Exclude) => None,
        (0, Transition::Half) => Some(0.5),
        _ => Some(f64::from(row[t])),
    };
    let lag = if since >= 0 {
        lag.get(since as usize).copied().unwrap_or(1.0)
    } else {
        1.0
    };
    SwCell {
        exposure,
        since,
        lag,
    }
}
