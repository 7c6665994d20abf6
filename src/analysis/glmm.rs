//! The analyses of binary and count outcomes, each with its own estimand:
//!
//! | analysis | model and test | estimand |
//! |---|---|---|
//! | `glmm_z` | GLMM (Laplace), Wald z | conditional log odds or rate ratio |
//! | `glmm_between_within` | the same fit, t on between-within df (Li & Redden 2015) | conditional |
//! | `gee_md` | GEE, exchangeable, Mancl–DeRouen sandwich, t on clusters − p df | marginal log odds or rate ratio |
//! | `gee_kc` | the same, Kauermann–Carroll sandwich | marginal |
//!
//! The GLMM analyses share one fit and the GEE analyses one GEE fit. A fit
//! that fails (PIRLS divergence, separation, a singular GEE system) fails
//! only its own analyses of that replicate, and the run counts it.

use super::{Estimand, Outcome, Reference};
use crate::glmm::gee::{self, GeeVariance};
use crate::glmm::{Family, Glmm};
use crate::lmm::data::DataFrame;

/// The SE (log odds or log rate) beyond which a GLMM's tested coefficient
/// is taken as not finite (quasi-complete separation, e.g. no events in
/// one arm): an odds ratio known only to within a factor e^100.
pub const QUASI_SEPARATION_SE: f64 = 50.0;

/// One GLMM or GEE analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GlmmAnalysis {
    /// GLMM, Wald z.
    Z,
    /// GLMM, t on between-within df.
    BetweenWithin,
    /// GEE with the Mancl–DeRouen correction.
    GeeMd,
    /// GEE with the Kauermann–Carroll correction.
    GeeKc,
}

impl GlmmAnalysis {
    /// Every one, in the order runs list them.
    pub const ALL: [GlmmAnalysis; 4] = [
        GlmmAnalysis::Z,
        GlmmAnalysis::BetweenWithin,
        GlmmAnalysis::GeeMd,
        GlmmAnalysis::GeeKc,
    ];

    /// The name used in configs, CSVs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            GlmmAnalysis::Z => "glmm_z",
            GlmmAnalysis::BetweenWithin => "glmm_between_within",
            GlmmAnalysis::GeeMd => "gee_md",
            GlmmAnalysis::GeeKc => "gee_kc",
        }
    }

    /// A human label.
    pub fn label(self) -> &'static str {
        match self {
            GlmmAnalysis::Z => "GLMM (Laplace), Wald z",
            GlmmAnalysis::BetweenWithin => "GLMM (Laplace), t on between-within df",
            GlmmAnalysis::GeeMd => "GEE, Mancl-DeRouen SE, t on clusters - p df",
            GlmmAnalysis::GeeKc => "GEE, Kauermann-Carroll SE, t on clusters - p df",
        }
    }

    /// What it estimates.
    pub fn estimand(self) -> Estimand {
        match self {
            GlmmAnalysis::Z | GlmmAnalysis::BetweenWithin => Estimand::Conditional,
            GlmmAnalysis::GeeMd | GlmmAnalysis::GeeKc => Estimand::Marginal,
        }
    }

    /// The analytic reference of its power column.
    pub fn reference(self) -> Reference {
        match self {
            GlmmAnalysis::Z => Reference::Normal,
            GlmmAnalysis::BetweenWithin => Reference::SmallSampleT,
            GlmmAnalysis::GeeMd | GlmmAnalysis::GeeKc => Reference::ClustersMinusP,
        }
    }
}

/// The GLMM and GEE analyses of a study: the formula, family and tested
/// coefficient, and which fits they need.
#[derive(Debug, Clone)]
pub struct GlmmAnalyses {
    formula: String,
    term: String,
    family: Family,
    /// The random-effects term naming the clusters (the GEE's clustering).
    cluster_term: usize,
    alpha: f64,
    /// Which analyses were asked for, by [`GlmmAnalysis`] index.
    wanted: [bool; 4],
}

/// The results of one replicate: one outcome per [`GlmmAnalysis`].
#[derive(Debug, Clone, Copy)]
pub struct GlmmResults([Outcome; 4]);

impl GlmmResults {
    /// The outcome of `a`.
    pub fn pick(&self, a: GlmmAnalysis) -> Outcome {
        self.0[a as usize]
    }
}

impl GlmmAnalyses {
    /// The analyses `wanted` of `term` in `formula` for `family`, the GEE
    /// clustered by random-effects term `cluster_term`.
    pub fn new(
        formula: &str,
        term: &str,
        family: Family,
        cluster_term: usize,
        alpha: f64,
        wanted: impl IntoIterator<Item = GlmmAnalysis>,
    ) -> GlmmAnalyses {
        let mut asked = [false; 4];
        for a in wanted {
            asked[a as usize] = true;
        }
        GlmmAnalyses {
            formula: formula.to_string(),
            term: term.to_string(),
            family,
            cluster_term,
            alpha,
            wanted: asked,
        }
    }

    /// Fit and test one data set, the model kept in `slot` for the next
    /// (see [`Glmm::update_or_build`]).
    pub fn run(&self, data: &DataFrame, slot: &mut Option<Glmm>) -> GlmmResults {
        let mut out = [Outcome::failed(); 4];
        let link = self.family.canonical();
        let Ok(g) = Glmm::update_or_build(slot, &self.formula, data, self.family, link) else {
            return GlmmResults(out);
        };
        let Some(j) = g.model.frame.x_names.iter().position(|n| n == &self.term) else {
            return GlmmResults(out);
        };
        // One GLM start for both fits.
        let Ok(beta0) = g.glm_start() else {
            return GlmmResults(out);
        };
        let asked = |a: GlmmAnalysis| self.wanted[a as usize];
        if asked(GlmmAnalysis::GeeMd) || asked(GlmmAnalysis::GeeKc) {
            if let Ok(fit) = gee::fit_by_from(
                &g.model.frame,
                self.cluster_term,
                self.family,
                link,
                &g.weights,
                beta0.clone(),
                g.patterns(self.cluster_term),
                gee::Corrections {
                    mancl_derouen: asked(GlmmAnalysis::GeeMd),
                    kauermann_carroll: asked(GlmmAnalysis::GeeKc),
                },
            ) {
                // Scoring that did not converge (β drifting off under
                // separation) is a failed fit, not a huge estimate.
                let pairs = if fit.converged {
                    &[
                        (GlmmAnalysis::GeeMd, GeeVariance::ManclDeRouen),
                        (GlmmAnalysis::GeeKc, GeeVariance::KauermannCarroll),
                    ][..]
                } else {
                    &[][..]
                };
                for &(a, v) in pairs.iter().filter(|(a, _)| asked(*a)) {
                    out[a as usize] = Outcome::new(
                        fit.beta[j],
                        fit.se(j, v),
                        fit.df(),
                        false,
                        fit.converged,
                        self.alpha,
                    );
                }
            }
        }
        if asked(GlmmAnalysis::Z) || asked(GlmmAnalysis::BetweenWithin) {
            // A tested coefficient with an SE beyond QUASI_SEPARATION_SE
            // (log scale) is quasi-separated (e.g. no events in one arm):
            // its estimate is not finite, so the fit counts as failed.
            let fit = g
                .fit_from(&beta0)
                .ok()
                .filter(|f| f.se(j) < QUASI_SEPARATION_SE);
            if let Some(fit) = fit {
                let se = fit.se(j);
                let converged = fit.optimizer.converged;
                out[GlmmAnalysis::Z as usize] = Outcome::new(
                    fit.beta[j],
                    se,
                    f64::INFINITY,
                    fit.singular,
                    converged,
                    self.alpha,
                );
                // The between-within df only when that test was asked for.
                if asked(GlmmAnalysis::BetweenWithin) {
                    let df = crate::lmm::inference::between_within(&g.model)
                        .ok()
                        .and_then(|d| d.get(j).copied())
                        .unwrap_or(f64::NAN);
                    out[GlmmAnalysis::BetweenWithin as usize] =
                        Outcome::new(fit.beta[j], se, df, fit.singular, converged, self.alpha);
                }
            }
        }
        GlmmResults(out)
    }
}
