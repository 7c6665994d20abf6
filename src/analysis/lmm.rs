//! The LMM analyses: the configured formula fitted by REML, the treatment
//! coefficient tested with one df rule each. One fit serves them all; each
//! rule asks [`crate::lmm::inference`] only for what it needs.

use super::{Outcome, Reference};
use crate::lmm::inference::{CoefTests, TestOptions};
use crate::lmm::Fit;

/// The df rule (and SE) of an LMM analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LmmDf {
    /// Wald z (infinite df).
    Z,
    /// Satterthwaite df (as lmerTest).
    Satterthwaite,
    /// Kenward–Roger adjusted SE and df (as pbkrtest).
    KenwardRoger,
    /// Between-within (containment) df.
    BetweenWithin,
    /// Residual df, n − p (what a naive t test on the LMM would use).
    Residual,
}

impl LmmDf {
    /// Every rule, in the order runs list them.
    pub const ALL: [LmmDf; 5] = [
        LmmDf::Z,
        LmmDf::Satterthwaite,
        LmmDf::KenwardRoger,
        LmmDf::BetweenWithin,
        LmmDf::Residual,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LmmDf::Z => "lmm_z",
            LmmDf::Satterthwaite => "lmm_satterthwaite",
            LmmDf::KenwardRoger => "lmm_kenward_roger",
            LmmDf::BetweenWithin => "lmm_between_within",
            LmmDf::Residual => "lmm_residual",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            LmmDf::Z => "LMM, Wald z",
            LmmDf::Satterthwaite => "LMM, Satterthwaite df",
            LmmDf::KenwardRoger => "LMM, Kenward-Roger",
            LmmDf::BetweenWithin => "LMM, between-within df",
            LmmDf::Residual => "LMM, residual df (n - p)",
        }
    }

    /// Residual df ignore the clustering of the treatment; they are there to
    /// be compared, not run by default.
    pub fn in_default_set(self) -> bool {
        self != LmmDf::Residual
    }

    /// The analytic reference: a z test for z and residual df (large df),
    /// the small-sample t otherwise.
    pub fn reference(self) -> Reference {
        match self {
            LmmDf::Z | LmmDf::Residual => Reference::Normal,
            _ => Reference::SmallSampleT,
        }
    }

    /// The inference the rule needs beyond the fit.
    pub fn needs(self) -> TestOptions {
        TestOptions {
            satterthwaite: self == LmmDf::Satterthwaite,
            kenward_roger: self == LmmDf::KenwardRoger,
            between_within: self == LmmDf::BetweenWithin,
        }
    }

    /// The union of what `rules` need.
    pub fn needs_all(rules: impl IntoIterator<Item = LmmDf>) -> TestOptions {
        rules.into_iter().map(LmmDf::needs).fold(
            TestOptions {
                satterthwaite: false,
                kenward_roger: false,
                between_within: false,
            },
            |a, b| TestOptions {
                satterthwaite: a.satterthwaite || b.satterthwaite,
                kenward_roger: a.kenward_roger || b.kenward_roger,
                between_within: a.between_within || b.between_within,
            },
        )
    }

    /// The test of coefficient `j` under this rule (a failure when the fit
    /// is unusable: non-finite criterion or a residual SD that is not > 0).
    pub fn outcome(self, fit: &Fit, tests: &CoefTests, j: usize, alpha: f64) -> Outcome {
        if !(fit.objective.is_finite() && fit.sigma.is_finite() && fit.sigma > 0.0) {
            return Outcome::failed();
        }
        let se = fit.se(j);
        let (se, df) = match self {
            LmmDf::Z => (se, f64::INFINITY),
            LmmDf::Satterthwaite => (se, tests.df_satterthwaite[j]),
            LmmDf::KenwardRoger => (tests.se_kenward_roger[j], tests.df_kenward_roger[j]),
            LmmDf::BetweenWithin => (se, tests.df_between_within[j]),
            LmmDf::Residual => (se, tests.df_residual),
        };
        Outcome::new(
            fit.beta[j],
            se,
            df,
            fit.singular,
            fit.optimizer.converged,
            alpha,
        )
    }
}
