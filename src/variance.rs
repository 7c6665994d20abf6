//! The outcome's variance components, defined once: from the config's ICCs
//! and SD on the reported scale, to the latent scale the simulator draws on
//! (through the measurement calibration), and to the true θ of a fitted
//! model's random-effect terms. The simulator, the analytic formulas and the
//! Kenward–Roger expectation all read from here.
//!
//! Reported scale, σ² the total variance:
//!
//! | level | parallel | stepped wedge |
//! |---|---|---|
//! | cluster (team) | ρσ² (baseline and follow-up effects correlated `cac`) | ρ·cac·σ² |
//! | cluster-period | — | ρ(1 − cac)σ² |
//! | staff | ρ_sσ² (correlated `cac`) | — |
//! | individual | (1 − ρ − ρ_s)σ² (baseline/follow-up correlated `iac`) | the same (cohort: person share `iac`) |

use crate::config::Config;
use crate::design::{Design, DesignSpec};
use crate::measure::Calibration;

/// A level of the data-generating process at which a random effect acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A parallel trial's team, or a stepped wedge's cluster.
    Cluster,
    /// A stepped wedge's cluster in one period.
    ClusterPeriod,
    /// A parallel trial's staff member.
    Staff,
    /// A cohort member, followed over periods.
    Person,
}

/// The variance components of a config's outcome (reported scale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VarianceComponents {
    /// σ, the total SD.
    pub sd: f64,
    /// ρ, the cluster-level ICC.
    pub icc: f64,
    /// ρ_s, the staff-level ICC (parallel designs).
    pub icc_staff: f64,
    /// Cluster autocorrelation: parallel, corr(u^B, u^Y) (default 0);
    /// stepped wedge, the cluster share of the cluster-level variance
    /// (required; 1 when absent means no cluster-period effect).
    pub cac: f64,
    /// Individual autocorrelation: parallel, corr(e^B, e^Y); a stepped-wedge
    /// cohort, the person share of the individual variance; 0 otherwise.
    pub iac: f64,
}

impl VarianceComponents {
    /// The components of a validated config's outcome for its design.
    pub fn new(cfg: &Config, design: &Design) -> VarianceComponents {
        let o = &cfg.outcome;
        let (cac, iac) = match &design.spec {
            DesignSpec::Parallel => (o.cac.unwrap_or(0.0), o.iac.unwrap_or(0.0)),
            DesignSpec::SteppedWedge(sw) => (
                o.cac.unwrap_or(1.0),
                if sw.is_cohort() {
                    o.iac.unwrap_or(0.0)
                } else {
                    0.0
                },
            ),
        };
        VarianceComponents {
            sd: o.sd,
            icc: o.icc,
            icc_staff: o.icc_staff,
            cac,
            iac,
        }
    }

    /// σ².
    pub fn total(&self) -> f64 {
        self.sd * self.sd
    }

    /// The cluster (team) variance ρσ² of a parallel trial.
    pub fn team(&self) -> f64 {
        self.icc * self.total()
    }

    /// The staff variance ρ_sσ².
    pub fn staff(&self) -> f64 {
        self.icc_staff * self.total()
    }

    /// The individual variance (1 − ρ − ρ_s)σ².
    pub fn individual(&self) -> f64 {
        (1.0 - self.icc - self.icc_staff) * self.total()
    }

    /// A stepped wedge's cluster variance ρ·cac·σ².
    pub fn sw_cluster(&self) -> f64 {
        self.icc * self.cac * self.total()
    }

    /// A stepped wedge's cluster-period variance ρ(1 − cac)σ².
    pub fn sw_cluster_period(&self) -> f64 {
        self.icc * (1.0 - self.cac) * self.total()
    }

    /// The variance of `level`'s effect (reported scale).
    pub fn of_level(&self, level: Level, stepped_wedge: bool) -> f64 {
        match (level, stepped_wedge) {
            (Level::Cluster, false) => self.team(),
            (Level::Cluster, true) => self.sw_cluster(),
            (Level::ClusterPeriod, _) => self.sw_cluster_period(),
            (Level::Staff, _) => self.staff(),
            (Level::Person, _) => self.iac * self.individual(),
        }
    }

    /// The residual variance a model with a person term (cohort) or
    /// without one leaves: (1 − iac) times the individual variance.
    pub fn residual(&self) -> f64 {
        self.individual() * (1.0 - self.iac)
    }

    /// The latent-scale components, given the calibration of the
    /// measurement model (reported = c + b·latent + noise).
    pub fn latent(&self, cal: &Calibration) -> Latent {
        let b = cal.slope;
        let resid = self.individual();
        let var_e = resid - cal.noise_var;
        let var = self.total();
        Latent {
            sd_team: (self.icc * var).sqrt() / b,
            sd_staff: (self.icc_staff * var).sqrt() / b,
            sd_e: var_e.sqrt() / b,
            iac: self.iac * resid / var_e,
            sd_cluster: (self.icc * self.cac * var).sqrt() / b,
            sd_cluster_period: (self.icc * (1.0 - self.cac) * var).sqrt() / b,
        }
    }

    /// The true relative covariance parameters θ (lme4's, one per scalar
    /// term) of a model whose terms act at `levels`, with the residual
    /// variance of [`VarianceComponents::residual`]. None when a term is at
    /// no level of the data-generating process, or when a cohort's people
    /// have no term (the model is then misspecified).
    pub fn true_theta(&self, levels: &[Option<Level>], stepped_wedge: bool) -> Option<Vec<f64>> {
        let s2 = self.residual();
        let mut has_person = false;
        let mut theta = Vec::with_capacity(levels.len());
        for level in levels {
            let level = (*level)?;
            if level == Level::Person {
                if self.iac <= 0.0 {
                    return None;
                }
                has_person = true;
            }
            theta.push((self.of_level(level, stepped_wedge) / s2).sqrt());
        }
        (self.iac <= 0.0 || has_person).then_some(theta)
    }
}

/// Latent-scale SDs and correlations (what the simulator draws).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latent {
    pub sd_team: f64,
    pub sd_staff: f64,
    /// SD of the individual residual.
    pub sd_e: f64,
    /// Individual autocorrelation on the latent scale (the measurement
    /// noise is carved out of the individual variance).
    pub iac: f64,
    /// A stepped wedge's cluster and cluster-period SDs.
    pub sd_cluster: f64,
    pub sd_cluster_period: f64,
}
