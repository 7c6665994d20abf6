//! Stepped-wedge designs: the sequence × period matrix, the exposure of
//! each cluster-period (transition periods and implementation lag), the
//! randomisation of clusters to sequences, and the design's warnings.

pub use crate::config::{sw_cell, SwCell};
use crate::config::{Config, Sampling, SteppedWedge, Transition};
use crate::error::Result;
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
    /// Resolve `[stepped_wedge]` of a validated config.
    pub fn from_config(sw: &SteppedWedge) -> Result<SteppedWedgeDesign> {
        let m = sw.matrix();
        let periods = m.first().map(|r| r.len()).unwrap_or(0);
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
    pub fn randomise<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        clusters: usize,
        seq_of: &mut Vec<u16>,
        order: &mut Vec<usize>,
    ) {
        order.clear();
        order.extend(0..clusters);
        for i in 0..clusters {
            let j = rng.random_range(i..clusters);
            order.swap(i, j);
        }
        // The clusters split over the sequences as `even_split` does.
        let nseq = self.matrix.len();
        seq_of.clear();
        seq_of.resize(clusters, 0);
        let mut k = 0;
        for q in 0..nseq {
            let n = clusters / nseq + usize::from(q < clusters % nseq);
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
