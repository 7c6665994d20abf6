//! The analyses a power run applies to every simulated trial, as a closed
//! set of types: [`Analysis`] names one, and each family lives in its own
//! file with everything that is particular to it.
//!
//! | family | file | analyses |
//! |---|---|---|
//! | the LMM with a df rule | [`lmm`] | `lmm_z`, `lmm_satterthwaite`, `lmm_kenward_roger`, `lmm_between_within`, `lmm_residual` |
//! | two-stage cluster-level t-test | [`cluster_t`] | `cluster_t` |
//! | binary and count outcomes: GLMM and GEE | [`glmm`] | `glmm_z`, `glmm_between_within`, `gee_md`, `gee_kc` |
//! | adherence (participation) analyses | [`adherence`] | `adh_high_low`, `adh_dose_response`, `adh_cace_iv` |
//!
//! Adding an LMM analysis with a new df rule is one variant of
//! [`lmm::LmmDf`] (its name, df and analytic reference) plus its test.
//!
//! This module imports nothing of the trial layer (config, design,
//! simulator): an analysis sees a data frame or a model and returns an
//! [`Outcome`].

pub mod adherence;
pub mod cluster_t;
pub mod glmm;
pub mod lmm;

pub use adherence::{AdherenceAnalyses, AdherenceAnalysis};
pub use glmm::{GlmmAnalyses, GlmmAnalysis};
pub use lmm::LmmDf;

use serde::{Deserialize, Serialize};

/// One analysis of a simulated (or real) trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Analysis {
    /// The configured LMM with a df rule for its test.
    Lmm(LmmDf),
    /// The two-stage cluster-level t-test (Hayes & Moulton).
    ClusterT,
    /// A GLMM or GEE analysis of a binary or count outcome.
    Glmm(GlmmAnalysis),
    /// An analysis of team participation (needs `[adherence]`).
    Adherence(AdherenceAnalysis),
}

/// What an analysis estimates, so a study can give each its true value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimand {
    /// The ITT difference in follow-up means (for a binary outcome the
    /// marginal risk difference, for a count the rate difference).
    Itt,
    /// A binary or count outcome's cluster-specific (conditional) log odds
    /// or rate ratio.
    Conditional,
    /// Its population-averaged (marginal) log odds or rate ratio.
    Marginal,
    /// δ times the high-minus-low participation contrast in E[g(a)].
    HighLowContrast,
    /// δ, the effect at full participation (per unit of participation).
    FullParticipation,
}

/// The closed-form reference its analytic power column uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// A Wald z test (known variance components, many clusters).
    Normal,
    /// A t test on the design's between-cluster df (the small-sample version).
    SmallSampleT,
    /// A t test on clusters − p df, p the fixed-effect coefficients (GEE).
    ClustersMinusP,
}

impl Analysis {
    /// Every analysis, in the order runs list them.
    pub fn all() -> impl Iterator<Item = Analysis> {
        LmmDf::ALL
            .into_iter()
            .map(Analysis::Lmm)
            .chain([Analysis::ClusterT])
            .chain(GlmmAnalysis::ALL.into_iter().map(Analysis::Glmm))
            .chain(AdherenceAnalysis::ALL.into_iter().map(Analysis::Adherence))
    }

    /// The name used in configs, CSVs, JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Analysis::Lmm(df) => df.name(),
            Analysis::ClusterT => "cluster_t",
            Analysis::Glmm(a) => a.name(),
            Analysis::Adherence(a) => a.name(),
        }
    }

    /// A human label for plots, reports and tables.
    pub fn label(self) -> &'static str {
        match self {
            Analysis::Lmm(df) => df.label(),
            Analysis::ClusterT => "Cluster-level t-test (two-stage)",
            Analysis::Glmm(a) => a.label(),
            Analysis::Adherence(a) => a.label(),
        }
    }

    /// The analysis called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Analysis> {
        Analysis::all().find(|a| a.name() == name)
    }

    /// Every name, comma-separated (for error messages).
    pub fn names() -> String {
        Analysis::all()
            .map(Analysis::name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether this analysis fits the configured LMM (and so needs the full
    /// mixed-model machinery, not only the fixed-effect design).
    pub fn needs_lmm(self) -> bool {
        matches!(self, Analysis::Lmm(_))
    }

    /// Whether this is an adherence analysis (needs `[adherence]`).
    pub fn is_adherence(self) -> bool {
        matches!(self, Analysis::Adherence(_))
    }

    /// Whether this analysis needs a binary or count outcome.
    pub fn is_glmm(self) -> bool {
        matches!(self, Analysis::Glmm(_))
    }

    /// Whether runs include it when `analysis.methods` is not given (the
    /// design and outcome may still leave it out: see the config's defaults).
    pub fn in_default_set(self) -> bool {
        match self {
            Analysis::Lmm(df) => df.in_default_set(),
            Analysis::ClusterT | Analysis::Glmm(_) | Analysis::Adherence(_) => true,
        }
    }

    /// What it estimates.
    pub fn estimand(self) -> Estimand {
        match self {
            Analysis::Lmm(_) | Analysis::ClusterT => Estimand::Itt,
            Analysis::Glmm(a) => a.estimand(),
            Analysis::Adherence(a) => a.estimand(),
        }
    }

    /// The analytic power reference (None: no closed form).
    pub fn reference(self) -> Option<Reference> {
        match self {
            Analysis::Lmm(df) => Some(df.reference()),
            Analysis::ClusterT => Some(Reference::SmallSampleT),
            Analysis::Glmm(a) => Some(a.reference()),
            Analysis::Adherence(_) => None,
        }
    }
}

impl std::fmt::Display for Analysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Analysis {
    type Err = String;
    fn from_str(s: &str) -> Result<Analysis, String> {
        Analysis::from_name(s).ok_or_else(|| {
            format!(
                "`{s}` is not an analysis; choose from {}",
                Analysis::names()
            )
        })
    }
}

impl Serialize for Analysis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Analysis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Analysis, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One analysis of one dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub estimate: f64,
    pub se: f64,
    pub df: f64,
    pub p: f64,
    pub lo: f64,
    pub hi: f64,
    pub singular: bool,
    pub converged: bool,
    pub failed: bool,
}

impl Outcome {
    /// An analysis that produced no usable result.
    pub fn failed() -> Outcome {
        Outcome {
            estimate: f64::NAN,
            se: f64::NAN,
            df: f64::NAN,
            p: f64::NAN,
            lo: f64::NAN,
            hi: f64::NAN,
            singular: false,
            converged: false,
            failed: true,
        }
    }

    /// An outcome from an estimate, SE and df: two-sided p and the
    /// (1 − alpha) CI. A df a t test cannot have (≤ 0, tiny or NaN) or a
    /// non-finite estimate or SE makes it a failure (counted by the run).
    pub fn new(est: f64, se: f64, df: f64, singular: bool, converged: bool, alpha: f64) -> Outcome {
        let crit = crate::stats::t_quantile(1.0 - alpha / 2.0, df);
        if !(est.is_finite() && se.is_finite() && se > 0.0 && crit.is_finite()) {
            let mut o = Outcome::failed();
            o.estimate = est;
            o.singular = singular;
            return o;
        }
        Outcome {
            estimate: est,
            se,
            df,
            p: crate::lmm::inference::p_t(est / se, df),
            lo: est - crit * se,
            hi: est + crit * se,
            singular,
            converged,
            failed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_default_order_is_unchanged() {
        for a in Analysis::all() {
            assert_eq!(Analysis::from_name(a.name()), Some(a));
            assert_eq!(a.to_string().parse::<Analysis>(), Ok(a));
        }
        let defaults: Vec<&str> = Analysis::all()
            .filter(|a| a.in_default_set())
            .map(Analysis::name)
            .collect();
        assert_eq!(
            defaults,
            [
                "lmm_z",
                "lmm_satterthwaite",
                "lmm_kenward_roger",
                "lmm_between_within",
                "cluster_t",
                "glmm_z",
                "glmm_between_within",
                "gee_md",
                "gee_kc",
                "adh_high_low",
                "adh_dose_response",
                "adh_cace_iv"
            ]
        );
        assert!("lmm_nope".parse::<Analysis>().is_err());
    }
}
