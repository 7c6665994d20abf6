//! The summary of a power run: per analysis, its true value, Monte Carlo
//! performance (with the null's) and analytic power at the same estimand.

use super::study::SmallSample;
use super::tally::{Performance, Tally};
use super::{PowerStudy, Record};
use crate::analysis::{Analysis, LmmDf, Reference};

/// The summary of a power run: self-contained, with each analysis' true
/// value and analytic power beside its Monte Carlo performance.
#[derive(Debug, Clone)]
pub struct Summary {
    pub trial: String,
    pub reps: u64,
    pub seed: u64,
    pub alpha: f64,
    /// The study's estimand (the ITT difference on the reported scale).
    pub true_effect: f64,
    /// The model and the tested coefficient.
    pub formula: String,
    pub term: String,
    /// The run identity ([`config_hash`]).
    pub config_id: String,
    /// One row per analysis, in the configured order.
    pub rows: Vec<AnalysisSummary>,
}

/// One analysis' row of a [`Summary`].
#[derive(Debug, Clone)]
pub struct AnalysisSummary {
    pub analysis: Analysis,
    /// The true value of what this analysis estimates.
    pub true_value: f64,
    /// Performance with the configured effect.
    pub effect: Performance,
    /// Performance under the null (δ = 0), if it was run.
    pub null: Option<Performance>,
    /// Analytic power at the same estimand (NaN: no closed form).
    pub analytic: f64,
}

impl Summary {
    /// The row of `analysis` (None if the run did not include it).
    pub fn get(&self, analysis: Analysis) -> Option<&AnalysisSummary> {
        self.rows.iter().find(|r| r.analysis == analysis)
    }

    /// The row of the analysis called `name`.
    pub fn by_name(&self, name: &str) -> Option<&AnalysisSummary> {
        self.get(Analysis::from_name(name)?)
    }

    /// The analyses, in order.
    pub fn methods(&self) -> Vec<Analysis> {
        self.rows.iter().map(|r| r.analysis).collect()
    }
}

/// Summarise records (any order: they are sorted first).
pub fn summarise(study: &PowerStudy, seed: u64, records: &[Record]) -> Summary {
    let slot = |r: &Record| study.methods.iter().position(|&m| m == r.analysis);
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| (r.rep, r.scenario, slot(r)));
    let mut tally = study.tally();
    for r in sorted {
        tally.add(r);
    }
    summary_from_tally(study, seed, &tally)
}

/// The summary of a run from its tally.
pub fn summary_from_tally(study: &PowerStudy, seed: u64, tally: &Tally) -> Summary {
    // Stepped wedges: KR and z at the true parameters (one evaluation).
    let small = study
        .methods
        .iter()
        .any(|&m| m == Analysis::Lmm(LmmDf::KenwardRoger) || m == Analysis::Lmm(LmmDf::Z))
        .then(|| study.sw_expected_small_sample(seed))
        .flatten();
    let rows = tally
        .performances()
        .into_iter()
        .zip(&study.truths)
        .map(|((analysis, effect, null), &true_value)| AnalysisSummary {
            analysis,
            true_value,
            effect,
            null,
            analytic: study.analytic_power(analysis, small.as_ref()),
        })
        .collect();
    Summary {
        trial: study.config.trial.name.clone(),
        reps: tally.reps(),
        seed,
        alpha: study.alpha,
        true_effect: study.true_effect,
        formula: study.formula.clone(),
        term: study.term.clone(),
        config_id: study.config_id.clone(),
        rows,
    }
}

impl PowerStudy {
    /// The analytic power of `analysis` at the study's estimand, so that
    /// every column of its row refers to the same (reported-scale) ITT
    /// effect; NaN where there is no closed form. `small` is the stepped
    /// wedge's evaluation at the true parameters, when made.
    fn analytic_power(&self, analysis: Analysis, small: Option<&SmallSample>) -> f64 {
        let expected = match (analysis, small) {
            (Analysis::Lmm(LmmDf::KenwardRoger), Some(e)) => e.kr_power(self.alpha),
            (Analysis::Lmm(LmmDf::Z), Some(e)) => e.z_power(self.alpha),
            _ => None,
        };
        match (expected, analysis.reference()) {
            (Some(p), _) => p,
            (None, None) => f64::NAN,
            (None, Some(r)) => {
                use crate::analytic::Ref;
                let reference = match r {
                    Reference::Normal => Ref::Normal,
                    Reference::SmallSampleT => Ref::DesignT,
                    Reference::ClustersMinusP => {
                        Ref::T(self.simulator().design().teams() as f64 - self.fixed_p as f64)
                    }
                };
                // A binary or count outcome: the formulas for scores on
                // its linearised config, at the ITT difference in means.
                let (cfg, formula) = match &self.linearised {
                    Some(lin) => (lin, lin.analysis_formula()),
                    None => (&self.config, self.formula.clone()),
                };
                crate::analytic::power_ref(
                    cfg,
                    self.simulator().design(),
                    self.alpha,
                    reference,
                    &formula,
                    self.true_effect,
                )
            }
        }
    }
}
