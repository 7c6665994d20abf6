//! Monte Carlo power, bias, coverage and type-I error (ADEMP: Morris, White &
//! Crowther 2019).
//!
//! * **Aims**: how often each analysis detects the configured effect (power),
//!   and how often it rejects when there is none (type-I error).
//! * **Data-generating mechanism**: the config's trial (see [`crate::simulate`]);
//!   replicate r uses the random stream (seed, r). The null scenario uses the
//!   same stream with δ = 0 (common random numbers).
//! * **Estimand**: the ITT difference in follow-up QPR, δ·E[g(a)] (= δ while
//!   adherence is not modelled).
//! * **Methods**: the LMM in `[analysis] formula` with Wald z, Satterthwaite,
//!   Kenward–Roger and between-within df, and a two-stage cluster-level t-test.
//! * **Performance measures**: power / type-I error, mean estimate and bias,
//!   empirical and mean model SE, CI coverage, with Monte Carlo SEs; counts of
//!   singular, non-converged and failed fits.
//!
//! Replicates run in batches of [`BATCH`] in parallel (rayon); each batch's
//! records are appended to `replicates.csv` in replicate order, so the file
//! and every summary are byte-identical whatever the thread count, and an
//! interrupted run keeps every finished batch.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::lmm::inference::{coef_tests_with, p_t, TestOptions};
use crate::lmm::Model;
use crate::rng::replicate_rng;
use crate::simulate::{Dataset, Simulator};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::path::Path;

mod run;
pub mod store;
mod tally;

pub use run::{execute, merge, Merged, RunOptions, MAX_REPS};
pub use store::{read_manifest, Manifest};
pub use tally::{performance, Performance, Tally};

/// Replicates per batch (the unit of streaming and of resumption).
pub const BATCH: u64 = 256;

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
    fn failed() -> Outcome {
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
}

/// A replicate's outcome for one scenario and analysis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    pub rep: u64,
    /// 0 = the configured effect, 1 = the null (δ = 0).
    pub scenario: u8,
    pub analysis: usize,
    pub outcome: Outcome,
}

/// A stepped-wedge analysis evaluated at the true variance parameters.
struct SmallSample {
    /// The effect the analysis estimates: the study's estimand times κ.
    effect: f64,
    /// GLS variance Φ of the treatment estimate.
    var_gls: f64,
    /// Kenward–Roger's adjusted variance Φ + 2Λ, and its df.
    var_kr: f64,
    df_kr: f64,
}

impl SmallSample {
    /// The KR test's power: t on KR's df with KR's variance.
    fn kr_power(&self, alpha: f64) -> Option<f64> {
        let p = crate::analytic::t_power(self.effect / self.var_kr.sqrt(), self.df_kr, alpha);
        p.is_finite().then_some(p)
    }

    /// The Wald z test's power: KR's adjustment is 2Λ, so δ̂ has variance
    /// about Φ + Λ (Kackar–Harville) while the model SE estimates about √Φ;
    /// the test rejects when |δ̂| > z·√Φ.
    fn z_power(&self, alpha: f64) -> Option<f64> {
        let lambda = 0.5 * (self.var_kr - self.var_gls).max(0.0);
        let sd = (self.var_gls + lambda).sqrt();
        let z = crate::stats::normal_quantile(1.0 - alpha / 2.0);
        let crit = z * self.var_gls.sqrt() / sd;
        let l = self.effect.abs() / sd;
        let p = crate::measure::norm_cdf(l - crit) + crate::measure::norm_cdf(-l - crit);
        p.is_finite().then_some(p)
    }
}

/// Per-thread scratch space for [`PowerStudy::replicate`]: the simulated
/// data and the last model (reused across replicates with the same design).
#[derive(Default)]
pub struct Workspace {
    /// The last simulated data set.
    pub data: Dataset,
    model: Option<Model>,
}

/// A configured power study.
pub struct PowerStudy {
    pub config: Config,
    sim: Simulator,
    sim_null: Option<Simulator>,
    pub formula: String,
    parsed: crate::lmm::formula::Formula,
    /// Columns the formula uses.
    vars: Vec<String>,
    pub term: String,
    pub methods: Vec<String>,
    pub alpha: f64,
    /// The estimand: ITT effect in points.
    pub true_effect: f64,
    /// The true value of each analysis' estimand (ITT analyses: δ·E[g];
    /// high vs low: δ times the causal contrast; dose-response and IV: δ).
    pub truths: Vec<f64>,
    /// The adherence analyses (when any is requested).
    adherence: Option<AdherenceAnalyses>,
    /// The resolved config as TOML (recorded in manifests and summaries).
    pub config_text: String,
    /// The run identity ([`config_hash`]).
    pub config_id: String,
}

/// An outcome from an estimate, SE and df: two-sided p and the (1 − alpha) CI.
pub fn make_outcome(
    est: f64,
    se: f64,
    df: f64,
    singular: bool,
    converged: bool,
    alpha: f64,
) -> Outcome {
    // A df a t test cannot have (≤ 0, tiny or NaN) or a non-finite estimate
    // or SE makes this analysis fail for this replicate; it is counted.
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
        p: p_t(est / se, df),
        lo: est - crit * se,
        hi: est + crit * se,
        singular,
        converged,
        failed: false,
    }
}

/// The ITT and adherence analyses of one dataset, for any data frame with the
/// formula's columns plus `team` and `team_adherence` (the team's
/// participation; 0 in control teams): ITT (LMM, Satterthwaite), high vs low
/// participation, dose–response LMM and CACE/IV. Used per replicate by
/// `power` and on real data by `crtsim adherence`.
#[derive(Debug, Clone)]
pub struct AdherenceAnalyses {
    parsed: crate::lmm::formula::Formula,
    term: String,
    /// The cluster column (whose participation is `team_adherence`).
    cluster: String,
    hl_formula: crate::lmm::formula::Formula,
    dr_formula: crate::lmm::formula::Formula,
    cut: Option<f64>,
    alpha: f64,
}

/// Names of the analyses [`AdherenceAnalyses::run`] returns, in order.
pub const ADHERENCE_ANALYSES: [&str; 4] = [
    "itt_satterthwaite",
    "adh_high_low",
    "adh_dose_response",
    "adh_cace_iv",
];

impl AdherenceAnalyses {
    /// Set up from the ITT formula and its treatment term.
    ///
    /// The cluster whose participation `team_adherence` holds is the
    /// formula's `team` or `cluster` grouping factor.
    pub fn new(
        formula: &str,
        term: &str,
        cut: Option<f64>,
        alpha: f64,
    ) -> Result<AdherenceAnalyses> {
        if !(alpha > 0.0 && alpha < 0.5) {
            return Err(Error::Usage(format!(
                "--alpha {alpha}: must be in (0, 0.5)"
            )));
        }
        if let Some(c) = cut.filter(|c| !(0.0..=1.0).contains(c)) {
            return Err(Error::Usage(format!(
                "--cut {c}: the high/low participation cut must be in [0, 1]"
            )));
        }
        let parsed = crate::lmm::formula::Formula::parse(formula)?;
        if !parsed.fixed.iter().any(|t| t.len() == 1 && t[0] == term) {
            return Err(Error::Usage(format!(
                "the formula `{formula}` has no `{term}` term to replace"
            )));
        }
        let swap = |name: &str| {
            let mut f = parsed.clone();
            for t in f.fixed.iter_mut() {
                for v in t.iter_mut() {
                    if *v == term {
                        *v = name.to_string();
                    }
                }
            }
            f
        };
        // The cluster: `team` (parallel designs) or `cluster` (stepped
        // wedge) when the formula uses it (as a grouping factor or a fixed
        // effect), else its first single-column grouping factor.
        let groups: Vec<&String> = parsed
            .random
            .iter()
            .filter(|r| r.group.len() == 1)
            .map(|r| &r.group[0])
            .collect();
        let vars = parsed.variables();
        let cluster = ["team", "cluster"]
            .iter()
            .find(|c| groups.iter().any(|g| g == *c) || vars.iter().any(|v| v == *c))
            .map(|c| c.to_string())
            .or_else(|| groups.first().map(|g| g.to_string()))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "the formula `{formula}` has no single-column grouping factor to take as the cluster, e.g. (1|team)"
                ))
            })?;
        Ok(AdherenceAnalyses {
            cluster,
            hl_formula: swap("high_participation"),
            dr_formula: swap("team_adherence"),
            parsed,
            term: term.to_string(),
            cut,
            alpha,
        })
    }

    /// The cluster column (the formula's `team` or `cluster` grouping).
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Run the four analyses (in [`ADHERENCE_ANALYSES`] order).
    pub fn run(&self, data: &crate::lmm::data::DataFrame) -> [Outcome; 4] {
        use crate::lmm::data::{Column, ColumnData, DataFrame};
        let failed = [Outcome::failed(); 4];
        let num = |name: &str| match data.column(name).map(|c| &c.data) {
            Ok(ColumnData::Numeric(v)) => Some(v.clone()),
            _ => None,
        };
        let (Some(arm), Some(part)) = (num(&self.term), num("team_adherence")) else {
            return failed;
        };
        let Ok(team) = data.column(&self.cluster) else {
            return failed;
        };
        // Participation of each treated team (first row of the team).
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..data.nrows() {
            if arm[i] == 1.0 && !part[i].is_nan() && !team.is_missing(i) {
                seen.entry(team.text(i)).or_insert(part[i]);
            }
        }
        let tp: Vec<f64> = seen.into_values().collect();
        let sat = TestOptions {
            satterthwaite: true,
            kenward_roger: false,
            between_within: false,
        };
        let lmm = |f: &crate::lmm::formula::Formula, df: &DataFrame, name: &str| -> Outcome {
            let Ok(mut m) = Model::from_formula(f, df, true) else {
                return Outcome::failed();
            };
            let Some(j) = m.frame.x_names.iter().position(|n| n == name) else {
                return Outcome::failed();
            };
            let fit = m.fit();
            let t = coef_tests_with(&m, &fit, sat);
            make_outcome(
                fit.beta[j],
                fit.se(j),
                t.df_satterthwaite[j],
                fit.singular,
                fit.optimizer.converged,
                self.alpha,
            )
        };
        let itt = lmm(&self.parsed, data, &self.term);
        let dose = lmm(&self.dr_formula, data, "team_adherence");
        let cut = self.cut.unwrap_or_else(|| median(&tp));
        let high: Vec<f64> = arm
            .iter()
            .zip(&part)
            .map(|(&a, &p)| {
                if a == 1.0 {
                    f64::from(u8::from(p > cut))
                } else {
                    f64::NAN
                }
            })
            .collect();
        let mut cols = data.columns.clone();
        cols.push(Column::numeric("high_participation", high));
        let hl = match DataFrame::from_columns(cols) {
            Ok(df) => lmm(&self.hl_formula, &df, "high_participation"),
            Err(_) => Outcome::failed(),
        };
        // Wald / IV: ITT over the treated teams' mean participation (control
        // participation is 0 by design); delta-method SE.
        let k1 = tp.len() as f64;
        let abar = tp.iter().sum::<f64>() / k1;
        let iv = if itt.failed || !(abar > 0.0) || k1 < 2.0 {
            Outcome::failed()
        } else {
            let var_a = tp.iter().map(|p| (p - abar).powi(2)).sum::<f64>() / (k1 - 1.0) / k1;
            let est = itt.estimate / abar;
            let se = (itt.se.powi(2) / abar.powi(2) + itt.estimate.powi(2) * var_a / abar.powi(4))
                .sqrt();
            make_outcome(est, se, itt.df, itt.singular, itt.converged, self.alpha)
        };
        [itt, hl, dose, iv]
    }
}

/// The adherence analyses of one data frame as a readable table.
pub fn adherence_table(names: &[&str], res: &[Outcome], alpha: f64) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<18} {:>10} {:>9} {:>8} {:>10} {:>22}",
        "analysis",
        "estimate",
        "SE",
        "df",
        "p",
        format!("{:.0}% CI", 100.0 * (1.0 - alpha))
    );
    for (n, o) in names.iter().zip(res) {
        if o.failed {
            let _ = writeln!(t, "{n:<18} {:>10}", "failed");
            continue;
        }
        let _ = writeln!(
            t,
            "{n:<18} {:>10.4} {:>9.4} {:>8.2} {:>10.4} {:>22}",
            o.estimate,
            o.se,
            o.df,
            o.p,
            format!("[{:.3}, {:.3}]", o.lo, o.hi)
        );
    }
    let _ = writeln!(
        t,
        "itt_satterthwaite estimates delta*E[g(a)]; adh_high_low the high-minus-low participation contrast among treated teams (confounded if better teams take part more); adh_dose_response the outcome slope per unit participation (likewise); adh_cace_iv the effect at full participation under a linear dose-response and the exclusion restriction (robust to such confounding)."
    );
    t
}

impl PowerStudy {
    /// Build the study from a validated config.
    pub fn new(config: Config, with_null: bool) -> Result<PowerStudy> {
        let sim = Simulator::new(config.clone())?;
        let sim_null = if with_null {
            let mut c0 = config.clone();
            c0.effect.difference = 0.0;
            Some(Simulator::new(c0)?)
        } else {
            None
        };
        // Check the formula against a simulated trial now: a bad formula is a
        // config error, not a thousand failed fits.
        let formula = config.analysis_formula();
        let term = config.analysis_term();
        let parsed = crate::lmm::formula::Formula::parse(&formula).map_err(|e| {
            Error::invalid("analysis.formula", format!("{formula:?}"), &e.to_string())
        })?;
        let probe_data = sim.simulate(0, 0);
        let probe = sim.data_frame(&probe_data);
        let model = Model::from_formula(&parsed, &probe, true).map_err(|e| {
            // A formula that parses but cannot be fitted to the design's data
            // (e.g. attrition leaves too few rows): say which trial was tried.
            let why = format!(
                "cannot be fitted to a simulated trial (seed 0, replicate 0: {} service users, {} with a follow-up): {e}",
                probe_data.len(),
                probe_data.n_followup()
            );
            Error::invalid("analysis.formula", format!("{formula:?}"), &why)
        })?;
        // Aliasing is order-dependent in the frame (later columns are
        // dropped): test the treatment last, so it counts as aliased whenever
        // it lies in the span of the other columns.
        let aliased = if model.frame.dropped.is_empty() {
            false
        } else {
            let mut last = parsed.clone();
            if let Some(i) = last.fixed.iter().position(|t| t.len() == 1 && t[0] == term) {
                let t = last.fixed.remove(i);
                last.fixed.push(t);
            }
            Model::from_formula(&last, &probe, true)
                .map(|m| m.frame.dropped.contains(&term))
                .unwrap_or(false)
        };
        if aliased {
            let hint = if config.trial.design == crate::config::DesignKind::SteppedWedge {
                ": in every period all sequences have the same exposure, so the effect is confounded with the period effects; give stepped_wedge.matrix (or sequences) at least two sequences that cross over at different times"
            } else {
                ": the design cannot separate it from the other fixed effects"
            };
            return Err(Error::invalid(
                "analysis.term",
                format!("{term:?}"),
                &format!("is aliased with other columns of {formula:?}{hint}"),
            ));
        }
        if !model.frame.x_names.contains(&term) {
            return Err(Error::invalid(
                "analysis.term",
                format!("{term:?}"),
                &format!(
                    "is not a coefficient of the formula; coefficients: {}",
                    model.frame.x_names.join(", ")
                ),
            ));
        }
        let methods = config.analysis_methods();
        let delta = config.effect.difference;
        let itt = sim.itt_effect();
        let teams = sim.design().teams();
        let truths = methods
            .iter()
            .map(|m| match m.as_str() {
                "adh_high_low" => delta * sim.adherence().high_low_contrast(teams),
                "adh_dose_response" | "adh_cace_iv" => delta,
                _ => itt,
            })
            .collect();
        let mut vars = parsed.variables();
        let adherence = if methods.iter().any(|m| m.starts_with("adh_")) {
            vars.push("team_adherence".into());
            Some(AdherenceAnalyses::new(
                &formula,
                &term,
                config.adherence.as_ref().and_then(|a| a.cut),
                config.alpha(),
            )?)
        } else {
            None
        };
        Ok(PowerStudy {
            config_text: config_toml(&config)?,
            config_id: config_hash(&config)?,
            vars,
            parsed,
            adherence,
            truths,
            methods,
            alpha: config.alpha(),
            true_effect: itt,
            formula,
            term,
            sim,
            sim_null,
            config,
        })
    }

    /// Expected Kenward–Roger power of a stepped-wedge analysis: KR's
    /// adjusted variance and df depend only on the design and the variance
    /// parameters, not on the outcome, so evaluating them at the true
    /// parameters on one simulated design gives the power the KR test is
    /// planned to have, with the cost of estimating the variances from few
    /// clusters included (Kackar–Harville). None unless the design is a
    /// stepped wedge and the formula's random effects are the ones the data
    /// are generated with (cluster, cluster-period, and person for cohorts).
    ///
    /// The design is replicate 0 of the run's `seed` (it matters when sizes
    /// vary), the same design the run itself starts from.
    pub fn sw_expected_kr_power(&self, seed: u64) -> Option<f64> {
        self.sw_expected_small_sample(seed)?.kr_power(self.alpha)
    }

    /// Expected power of the Wald z test with estimated variances, from the
    /// same evaluation (Kackar–Harville): see [`SmallSample::z_power`].
    pub fn sw_expected_z_power(&self, seed: u64) -> Option<f64> {
        self.sw_expected_small_sample(seed)?.z_power(self.alpha)
    }

    fn sw_expected_small_sample(&self, seed: u64) -> Option<SmallSample> {
        use crate::config::{DesignKind, Sampling};
        let cfg = &self.config;
        let sw = cfg.stepped_wedge.as_ref()?;
        if cfg.trial.design != DesignKind::SteppedWedge {
            return None;
        }
        let o = &cfg.outcome;
        let var = o.sd * o.sd;
        let cac = o.cac?;
        let resid = (1.0 - o.icc - o.icc_staff) * var;
        let iac = match sw.sampling {
            Sampling::Cohort => o.iac.unwrap_or(0.0),
            Sampling::CrossSectional => 0.0,
        };
        let d = self.sim.simulate(seed, 0);
        let data = self.sim.data_frame(&d);
        let mut model = Model::from_formula(&self.parsed, &data, true).ok()?;
        let mut has_person = false;
        let mut theta = Vec::new();
        let s2 = resid * (1.0 - iac);
        for t in &model.frame.terms {
            if t.k != 1 {
                return None;
            }
            let v = match t.group.as_str() {
                "cluster" => o.icc * cac * var,
                "cluster:period" => o.icc * (1.0 - cac) * var,
                "cluster:individual" if iac > 0.0 => {
                    has_person = true;
                    iac * resid
                }
                _ => return None,
            };
            theta.push((v / s2).sqrt());
        }
        if iac > 0.0 && !has_person {
            return None; // a cohort analysed without its people: misspecified
        }
        let mut fit = model.fit_at(crate::lmm::optim::OptResult {
            x: theta,
            f: f64::NAN,
            evals: 0,
            converged: true,
            grad: 0.0,
            message: "true variance parameters".into(),
        });
        // fit_at estimated σ from this dataset; the truth replaces it (vcov
        // scales with σ², so Φ at the truth is vcov·σ²/σ̂²).
        let sigma_hat = fit.sigma;
        fit.sigma = s2.sqrt();
        let j = model.frame.x_names.iter().position(|n| n == &self.term)?;
        let t = coef_tests_with(
            &model,
            &fit,
            TestOptions {
                satterthwaite: false,
                kenward_roger: true,
                between_within: false,
            },
        );
        let (se, df) = (*t.se_kenward_roger.get(j)?, *t.df_kenward_roger.get(j)?);
        let (_, kappa) = crate::analytic::sw_config_gls(cfg, self.sim.design(), sw);
        Some(SmallSample {
            // The study's estimand (reported scale), diluted by any lag.
            effect: self.true_effect * kappa,
            var_gls: (fit.se(j) * fit.sigma / sigma_hat).powi(2),
            var_kr: se * se,
            df_kr: df,
        })
    }

    /// Scenarios run: 1 (effect) or 2 (effect and null).
    pub fn scenarios(&self) -> u8 {
        if self.sim_null.is_some() {
            2
        } else {
            1
        }
    }

    /// Simulate and analyse replicate `rep` of `scenario`.
    pub fn replicate(&self, seed: u64, rep: u64, scenario: u8, ws: &mut Workspace) -> Vec<Outcome> {
        let sim = if scenario == 0 {
            &self.sim
        } else {
            self.sim_null.as_ref().expect("null scenario configured")
        };
        let mut rng = replicate_rng(seed, rep);
        sim.simulate_into(&mut rng, &mut ws.data);
        self.analyse(ws, sim)
    }

    fn analyse(&self, ws: &mut Workspace, sim: &Simulator) -> Vec<Outcome> {
        let d = &ws.data;
        let data = sim.data_frame_with(d, Some(&self.vars));
        let mut out = vec![Outcome::failed(); self.methods.len()];
        let needs_lmm = self.methods.iter().any(|m| m.starts_with("lmm_"));
        // The previous replicate's model is updated in place: when the design
        // repeats its structure (fixed cluster sizes, no attrition) the sparse
        // analysis is not redone. The fit is the same either way.
        let built = match ws
            .model
            .as_mut()
            .filter(|m| m.formula == self.parsed && m.reml)
        {
            Some(m) => m.update_data(&data),
            None => Model::from_formula(&self.parsed, &data, true).map(|m| {
                ws.model = Some(m);
            }),
        };
        if built.is_err() {
            return out;
        }
        let model = ws.model.as_mut().expect("model built above");
        let Some(j) = model.frame.x_names.iter().position(|n| n == &self.term) else {
            return out;
        };
        if needs_lmm {
            let fit = model.fit();
            let model = &*model;
            let usable = fit.objective.is_finite() && fit.sigma.is_finite() && fit.sigma > 0.0;
            let opts = TestOptions {
                satterthwaite: self.methods.iter().any(|m| m == "lmm_satterthwaite"),
                kenward_roger: self.methods.iter().any(|m| m == "lmm_kenward_roger"),
                between_within: self.methods.iter().any(|m| m == "lmm_between_within"),
            };
            let tests = coef_tests_with(model, &fit, opts);
            let est = fit.beta[j];
            let se = fit.se(j);
            for (k, m) in self.methods.iter().enumerate() {
                let (se_k, df) = match m.as_str() {
                    "lmm_z" => (se, f64::INFINITY),
                    "lmm_satterthwaite" => (se, tests.df_satterthwaite[j]),
                    "lmm_kenward_roger" => (tests.se_kenward_roger[j], tests.df_kenward_roger[j]),
                    "lmm_between_within" => (se, tests.df_between_within[j]),
                    _ => continue,
                };
                if usable {
                    out[k] = self.outcome(est, se_k, df, fit.singular, fit.optimizer.converged);
                }
            }
        }
        if let Some(k) = self.methods.iter().position(|m| m == "cluster_t") {
            out[k] = self.cluster_t(model, j);
        }
        if self.methods.iter().any(|m| m.starts_with("adh_")) {
            self.adherence_analyses(d, &data, &mut out);
        }
        out
    }

    /// The adherence analyses of one dataset.
    fn adherence_analyses(
        &self,
        _d: &Dataset,
        data: &crate::lmm::data::DataFrame,
        out: &mut [Outcome],
    ) {
        let Some(aa) = &self.adherence else { return };
        let res = aa.run(data);
        for (k, m) in self.methods.iter().enumerate() {
            if let Some(i) = ADHERENCE_ANALYSES.iter().position(|a| a == m) {
                out[k] = res[i];
            }
        }
    }

    fn outcome(&self, est: f64, se: f64, df: f64, singular: bool, converged: bool) -> Outcome {
        make_outcome(est, se, df, singular, converged, self.alpha)
    }

    /// Two-stage cluster-level analysis (Hayes & Moulton): stage 1, an OLS of
    /// the outcome on the individual-level covariates (fixed-effect columns
    /// that vary within clusters; cluster = the grouping factor with fewest
    /// levels); stage 2, an OLS of the clusters' mean residuals on the
    /// treatment and the cluster-level covariates, whose t-test has
    /// k − 2 − (cluster-level covariates) df.
    fn cluster_t(&self, model: &Model, j: usize) -> Outcome {
        let fr = &model.frame;
        let (n, p) = (fr.n, fr.p);
        let Some(term) = fr.terms.iter().min_by_key(|t| t.nlevels()) else {
            return Outcome::failed();
        };
        let g = term.nlevels();
        let col = |c: usize| &fr.x[c * n..(c + 1) * n];
        let constant_within = |c: usize| {
            let mut first = vec![f64::NAN; g];
            (0..n).all(|i| {
                let l = term.refs[i] as usize;
                if first[l].is_nan() {
                    first[l] = col(c)[i];
                    true
                } else {
                    first[l] == col(c)[i]
                }
            })
        };
        if !constant_within(j) {
            return Outcome::failed(); // the treatment varies within clusters
        }
        let intercept: Vec<usize> = (0..p).filter(|&c| fr.x_names[c] == "(Intercept)").collect();
        let individual: Vec<usize> = (0..p)
            .filter(|&c| c != j && fr.x_names[c] != "(Intercept)" && !constant_within(c))
            .collect();
        let cluster_cov: Vec<usize> = (0..p)
            .filter(|&c| c != j && fr.x_names[c] != "(Intercept)" && constant_within(c))
            .collect();
        // Stage 1.
        let s1: Vec<usize> = intercept.iter().chain(&individual).copied().collect();
        let xs1: Vec<&[f64]> = s1.iter().map(|&c| col(c)).collect();
        let Some(b1) = ols(&xs1, &fr.y) else {
            return Outcome::failed();
        };
        let (mut sum, mut cnt) = (vec![0.0; g], vec![0.0; g]);
        let mut cl_x: Vec<Vec<f64>> = vec![vec![0.0; g]; 1 + cluster_cov.len()];
        for i in 0..n {
            let fitted: f64 = xs1.iter().zip(&b1).map(|(x, b)| x[i] * b).sum();
            let l = term.refs[i] as usize;
            sum[l] += fr.y[i] - fitted;
            cnt[l] += 1.0;
            cl_x[0][l] = col(j)[i];
            for (k, &c) in cluster_cov.iter().enumerate() {
                cl_x[k + 1][l] = col(c)[i];
            }
        }
        let means: Vec<f64> = (0..g).map(|l| sum[l] / cnt[l]).collect();
        // Stage 2: means ~ 1 + treatment + cluster-level covariates.
        let ones = vec![1.0; g];
        let mut xs2: Vec<&[f64]> = vec![&ones];
        xs2.extend(cl_x.iter().map(|v| v.as_slice()));
        let k2 = xs2.len();
        let df = g as f64 - k2 as f64;
        if df < 1.0 {
            return Outcome::failed();
        }
        let Some((b2, cov)) = ols_with_cov(&xs2, &means) else {
            return Outcome::failed();
        };
        self.outcome(b2[1], cov[(1, 1)].sqrt(), df, false, true)
    }

    /// An empty tally of this study's analyses and scenarios.
    pub fn tally(&self) -> Tally {
        Tally::new(&self.truths, self.scenarios(), self.alpha)
    }

    /// Run replicates `reps` (in order), in parallel batches of [`BATCH`],
    /// handing each finished batch's records (sorted) to `sink`. The
    /// replicate numbers are drawn from the iterator one batch at a time, so
    /// memory does not grow with their number.
    pub fn run<F: FnMut(&[Record]) -> Result<()>>(
        &self,
        seed: u64,
        reps: impl IntoIterator<Item = u64>,
        threads: usize,
        mut sink: F,
    ) -> Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| Error::Usage(format!("cannot start {threads} threads: {e}")))?;
        let scen = self.scenarios();
        let mut reps = reps.into_iter();
        let mut chunk: Vec<u64> = Vec::with_capacity(BATCH as usize);
        loop {
            chunk.clear();
            chunk.extend(reps.by_ref().take(BATCH as usize));
            if chunk.is_empty() {
                return Ok(());
            }
            let mut recs: Vec<Record> = pool.install(|| {
                chunk
                    .par_iter()
                    .map_init(Workspace::default, |buf, &rep| {
                        let mut v = Vec::new();
                        for s in 0..scen {
                            for (a, o) in self.replicate(seed, rep, s, buf).into_iter().enumerate()
                            {
                                v.push(Record {
                                    rep,
                                    scenario: s,
                                    analysis: a,
                                    outcome: o,
                                });
                            }
                        }
                        v
                    })
                    .flatten()
                    .collect()
            });
            recs.sort_by_key(|r| (r.rep, r.scenario, r.analysis));
            sink(&recs)?;
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// The summary of a power run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub reps: u64,
    pub seed: u64,
    pub alpha: f64,
    pub true_effect: f64,
    pub methods: Vec<String>,
    /// Per analysis: (effect scenario, null scenario if run).
    pub perf: Vec<(Performance, Option<Performance>)>,
    /// Per analysis: analytic power.
    pub analytic: Vec<f64>,
}

/// Summarise records (any order: they are sorted first).
pub fn summarise(study: &PowerStudy, seed: u64, records: &[Record]) -> Summary {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| (r.rep, r.scenario, r.analysis));
    let mut tally = study.tally();
    for r in sorted {
        tally.add(r);
    }
    summary_from_tally(study, seed, &tally)
}

/// The summary of a run from its tally.
pub fn summary_from_tally(study: &PowerStudy, seed: u64, tally: &Tally) -> Summary {
    let reps = tally.reps();
    let perf = tally.performances();
    // Stepped wedges: KR and z at the true parameters (one evaluation).
    let small = study
        .methods
        .iter()
        .any(|m| m == "lmm_kenward_roger" || m == "lmm_z")
        .then(|| study.sw_expected_small_sample(seed))
        .flatten();
    let expected = |m: &str| match (m, &small) {
        ("lmm_kenward_roger", Some(e)) => e.kr_power(study.alpha),
        ("lmm_z", Some(e)) => e.z_power(study.alpha),
        _ => None,
    };
    let analytic = study
        .methods
        .iter()
        .map(|m| {
            if m.starts_with("adh_") {
                f64::NAN // no closed form for the adherence analyses
            } else if let Some(p) = expected(m) {
                p
            } else {
                // At the study's estimand, so that every column of the row
                // refers to the same (reported-scale) ITT effect.
                crate::analytic::power_for(
                    &study.config,
                    study.sim.design(),
                    study.alpha,
                    m == "lmm_z",
                    &study.formula,
                    study.true_effect,
                )
            }
        })
        .collect();
    Summary {
        reps,
        seed,
        alpha: study.alpha,
        true_effect: study.true_effect,
        methods: study.methods.clone(),
        perf,
        analytic,
    }
}

fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// The summary as JSON (the schema plus MC SEs for every measure).
pub fn summary_json(study: &PowerStudy, s: &Summary) -> Value {
    let analyses: Vec<Value> = s
        .methods
        .iter()
        .enumerate()
        .map(|(a, name)| {
            let (e, nl) = &s.perf[a];
            json!({
                "name": name,
                "true_value": num(study.truths[a]),
                "power": num(e.reject), "power_mc_se": num(e.reject_mc_se),
                "type1": nl.as_ref().map(|p| num(p.reject)).unwrap_or(Value::Null),
                "type1_mc_se": nl.as_ref().map(|p| num(p.reject_mc_se)).unwrap_or(Value::Null),
                "mean_estimate": num(e.mean_estimate),
                "bias": num(e.bias), "bias_mc_se": num(e.bias_mc_se),
                "empirical_se": num(e.empirical_se), "empirical_se_mc_se": num(e.empirical_se_mc_se),
                "mean_model_se": num(e.mean_model_se), "mean_model_se_mc_se": num(e.mean_model_se_mc_se),
                "coverage": num(e.coverage), "coverage_mc_se": num(e.coverage_mc_se),
                "n_singular": e.n_singular, "n_nonconverged": e.n_nonconverged, "n_failed": e.n_failed,
                "null_n_singular": nl.as_ref().map(|p| json!(p.n_singular)).unwrap_or(Value::Null),
                "null_n_failed": nl.as_ref().map(|p| json!(p.n_failed)).unwrap_or(Value::Null),
                "analytic_power": num(s.analytic[a]),
            })
        })
        .collect();
    json!({
        "crtsim_version": env!("CARGO_PKG_VERSION"),
        "trial": study.config.trial.name,
        "reps": s.reps,
        "seed": s.seed,
        "alpha": s.alpha,
        "estimand": {"name": "ITT difference in follow-up QPR", "true_value": s.true_effect},
        "formula": study.formula,
        "term": study.term,
        "config": study.config_text,
        "analyses": analyses,
    })
}

/// Write `dir/summary.json` (atomically).
pub fn store_summary(study: &PowerStudy, summary: &Summary, dir: &Path) -> Result<()> {
    let v = summary_json(study, summary);
    store::atomic_write(
        &dir.join("summary.json"),
        (serde_json::to_string_pretty(&v).unwrap_or_default() + "\n").as_bytes(),
    )
}

/// The resolved config as TOML text (recorded with every output).
pub fn config_toml(cfg: &Config) -> Result<String> {
    toml::to_string(cfg).map_err(|e| Error::Usage(format!("cannot write the config as TOML: {e}")))
}

/// A readable ADEMP report.
pub fn summary_table(study: &PowerStudy, s: &Summary) -> String {
    use std::fmt::Write as _;
    let c = &study.config;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "crtsim {} power study: {} (seed {}, {} replicates{})",
        env!("CARGO_PKG_VERSION"),
        c.trial.name,
        s.seed,
        s.reps,
        if study.scenarios() == 2 {
            ", each also under the null"
        } else {
            ""
        }
    );
    let _ = writeln!(
        t,
        "Aims: power and type-I error of the test of `{}` at alpha = {}",
        study.term, s.alpha
    );
    let dist = match c.clusters.size.dist {
        crate::config::SizeKind::Fixed => "fixed",
        crate::config::SizeKind::Poisson => "poisson",
        crate::config::SizeKind::Negbin => "negbin",
    };
    let mech = match c.attrition.mechanism {
        crate::config::Mechanism::Mcar => "mcar",
        crate::config::Mechanism::Mar => "mar",
    };
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        t,
        "Data-generating mechanism: {} teams ({} treated), team size {dist} mean {} (min {}), icc {}, icc_staff {}, cac {}, iac {}, sd {}, attrition {} ({mech}); replicate r uses random stream (seed, r); config hash {}",
        c.clusters.teams,
        c.clusters.treated.map(|v| v.to_string()).unwrap_or_else(|| "random".into()),
        c.clusters.size.mean,
        c.clusters.size.min,
        c.outcome.icc,
        c.outcome.icc_staff,
        opt(c.outcome.cac),
        opt(c.outcome.iac),
        c.outcome.sd,
        c.attrition.rate,
        study.config_id
    );
    let _ = writeln!(
        t,
        "Estimand: ITT difference in follow-up QPR, true value {} (0 under the null)",
        s.true_effect
    );
    let _ = writeln!(
        t,
        "Methods: {} with {}",
        study.formula,
        s.methods.join(", ")
    );
    let _ = writeln!(t, "Performance (Monte Carlo SE in brackets):");
    let _ = writeln!(
        t,
        "  {:<20} {:>15} {:>15} {:>8} {:>16} {:>15} {:>15} {:>15} {:>9} {:>7}",
        "analysis",
        "power",
        "type-I error",
        "analytic",
        "bias",
        "empirical SE",
        "model SE",
        "coverage",
        "singular",
        "failed"
    );
    for (a, name) in s.methods.iter().enumerate() {
        let (e, nl) = &s.perf[a];
        // Not estimable (e.g. every replicate failed, or one success leaves
        // no SD): a dash, never NaN.
        let cell = |v: f64, se: f64, signed: bool| {
            let v_txt = if signed {
                format!("{v:+.3}")
            } else {
                format!("{v:.3}")
            };
            if !v.is_finite() {
                "-".to_string()
            } else if !se.is_finite() {
                format!("{v_txt} (-)")
            } else {
                format!("{v_txt} ({se:.3})")
            }
        };
        let f = |v: f64, se: f64| cell(v, se, false);
        let _ = writeln!(
            t,
            "  {:<20} {:>15} {:>15} {:>8} {:>16} {:>15} {:>15} {:>15} {:>9} {:>7}",
            name,
            f(e.reject, e.reject_mc_se),
            nl.as_ref()
                .map(|p| f(p.reject, p.reject_mc_se))
                .unwrap_or_else(|| "-".into()),
            if s.analytic[a].is_finite() {
                format!("{:.3}", s.analytic[a])
            } else {
                "-".to_string()
            },
            cell(e.bias, e.bias_mc_se, true),
            f(e.empirical_se, e.empirical_se_mc_se),
            f(e.mean_model_se, e.mean_model_se_mc_se),
            f(e.coverage, e.coverage_mc_se),
            e.n_singular,
            e.n_failed
        );
    }
    // Where Monte Carlo and analytic power disagree, say why.
    for (a, name) in s.methods.iter().enumerate() {
        let (e, nl) = &s.perf[a];
        if e.n_failed > 0 {
            let _ = writeln!(
                t,
                "note: {name}: {} of {} replicates failed (no usable fit: {}); the measures above use the {} that did not",
                e.n_failed,
                e.n + e.n_failed,
                if e.n == 0 { "every one" } else { "too few rows, a non-identifiable variance, or no valid df" },
                e.n
            );
        }
        if s.analytic[a].is_finite()
            && (e.reject - s.analytic[a]).abs() > 2.5 * e.reject_mc_se.max(1e-9)
        {
            let why = if name == "cluster_t" {
                "the closed form is the LMM's; the cluster-level test weights teams equally, which loses efficiency when team sizes vary".to_string()
            } else if study.sim.adherence().is_active() {
                "varying participation makes the effect vary between treated teams, adding between-team variance the closed form ignores".to_string()
            } else if study.sim.is_stepped_wedge() {
                format!(
                    "the exact GLS power assumes known variance components; estimating them from {} clusters ({} of {} fits singular) changes the test's size and power (Kackar-Harville), and a bounded outcome scale is not Gaussian",
                    study.sim.design().teams(),
                    e.n_singular,
                    e.n
                )
            } else {
                format!(
                    "the closed form assumes many clusters, known variance components and the design effect's approximation of variable sizes ({} of {} fits singular)",
                    e.n_singular, e.n
                )
            };
            let _ = writeln!(t, "note: {name}: Monte Carlo power differs from analytic by more than 2.5 MC SE: {why}");
        }
        if let Some(p) = nl {
            if (p.reject - s.alpha).abs() > 2.0 * p.reject_mc_se.max(1e-9) {
                let _ = writeln!(
                    t,
                    "note: {name}: type-I error {:.3} differs from alpha {} by more than 2 MC SE",
                    p.reject, s.alpha
                );
            }
        }
    }
    t
}

// ------------------------------------------------------------------ storage

/// The run identity of a resolved config: FNV-1a of its canonical JSON
/// (every key, sorted; numbers in shortest round-trip form). Unlike the TOML
/// text it does not depend on a serialiser's layout, so it survives
/// dependency upgrades.
pub fn config_hash(cfg: &Config) -> Result<String> {
    let v = serde_json::to_value(cfg)
        .map_err(|e| Error::Usage(format!("cannot write the config canonically: {e}")))?;
    Ok(store::hash_text(&v.to_string()))
}

/// The identity crtsim 0.1 manifests recorded: FNV-1a of the TOML text
/// (accepted when resuming or merging their runs).
pub fn legacy_config_hash(config_toml: &str) -> String {
    store::hash_text(config_toml)
}

/// Parse `i/n` (1 ≤ i ≤ n).
pub fn parse_shard(s: &str) -> Result<(u64, u64)> {
    let err = || {
        Error::Usage(format!(
            "--shard {s}: expected i/n with 1 <= i <= n, e.g. 2/8"
        ))
    };
    let (a, b) = s.split_once('/').ok_or_else(err)?;
    let (i, n): (u64, u64) = (
        a.trim().parse().map_err(|_| err())?,
        b.trim().parse().map_err(|_| err())?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(err());
    }
    Ok((i, n))
}

/// OLS coefficients of y on the columns `xs` (None if singular).
fn ols(xs: &[&[f64]], y: &[f64]) -> Option<Vec<f64>> {
    ols_with_cov(xs, y).map(|(b, _)| b)
}

/// OLS coefficients and their covariance (σ̂² (X'X)⁻¹).
fn ols_with_cov(xs: &[&[f64]], y: &[f64]) -> Option<(Vec<f64>, nalgebra::DMatrix<f64>)> {
    let k = xs.len();
    let n = y.len();
    let mut xtx = nalgebra::DMatrix::<f64>::zeros(k, k);
    let mut xty = nalgebra::DVector::<f64>::zeros(k);
    for a in 0..k {
        xty[a] = xs[a].iter().zip(y).map(|(u, v)| u * v).sum();
        for b in 0..=a {
            let v: f64 = xs[a].iter().zip(xs[b]).map(|(u, v)| u * v).sum();
            xtx[(a, b)] = v;
            xtx[(b, a)] = v;
        }
    }
    let ch = xtx.cholesky()?;
    let b = ch.solve(&xty);
    let rss: f64 = (0..n)
        .map(|i| {
            let f: f64 = (0..k).map(|a| xs[a][i] * b[a]).sum();
            (y[i] - f).powi(2)
        })
        .sum();
    let s2 = rss / (n as f64 - k as f64).max(1.0);
    Some((b.iter().copied().collect(), ch.inverse() * s2))
}
