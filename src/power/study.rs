//! A configured power study: the simulators (effect and null), the parsed
//! analysis model, the analyses and their true values; one replicate
//! simulated and analysed into a reusable workspace; batches of replicates
//! in parallel.

use super::Tally;
use super::{config_hash, config_toml, Record, BATCH};
use crate::analysis::{AdherenceAnalyses, Analysis, Estimand, GlmmAnalyses, LmmDf, Outcome};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lmm::data::DataFrame;
use crate::lmm::frame::ModelFrame;
use crate::lmm::inference::{
    coef_tests_into, coef_tests_with, CoefTests, Coefs, TestOptions, TestWork,
};
use crate::lmm::{Fit, Model};
use crate::rng::replicate_rng;
use crate::simulate::{Dataset, Simulator};
use crate::variance::Level;
use rayon::prelude::*;

/// A stepped-wedge analysis evaluated at the true variance parameters.
pub(super) struct SmallSample {
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
    pub(super) fn kr_power(&self, alpha: f64) -> Option<f64> {
        let p = crate::analytic::t_power(self.effect / self.var_kr.sqrt(), self.df_kr, alpha);
        p.is_finite().then_some(p)
    }

    /// The Wald z test's power: KR's adjustment is 2Λ, so δ̂ has variance
    /// about Φ + Λ (Kackar–Harville) while the model SE estimates about √Φ;
    /// the test rejects when |δ̂| > z·√Φ.
    pub(super) fn z_power(&self, alpha: f64) -> Option<f64> {
        let lambda = 0.5 * (self.var_kr - self.var_gls).max(0.0);
        let sd = (self.var_gls + lambda).sqrt();
        let z = crate::stats::normal_quantile(1.0 - alpha / 2.0);
        let crit = z * self.var_gls.sqrt() / sd;
        let p = crate::stats::normal_power(self.effect.abs() / sd, crit);
        p.is_finite().then_some(p)
    }
}

/// Per-thread scratch space for [`PowerStudy::replicate`]: the simulated
/// data and the last model or model frame (reused across replicates with
/// the same design).
#[derive(Default)]
pub struct Workspace {
    /// The last simulated data set.
    pub data: Dataset,
    model: Option<Model>,
    /// The fixed-effect design alone, for studies whose analyses need no
    /// mixed-model fit (`cluster_t`).
    frame: Option<ModelFrame>,
    /// The last replicate's outcomes, one per analysis.
    outcomes: Vec<Outcome>,
    /// Inference buffers and results for the LMM analyses.
    tests: CoefTests,
    test_work: TestWork,
    fit: Fit,
    /// The simulated trial as a data frame.
    frame_data: DataFrame,
    cluster_t: crate::analysis::cluster_t::ClusterTWork,
    adherence: crate::analysis::adherence::AdherenceWork,
    /// The GLMM (and GEE) analyses' model, refilled per replicate.
    glmm: Option<crate::glmm::Glmm>,
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
    pub methods: Vec<Analysis>,
    /// The LMM df rules among `methods`, and the inference they need.
    lmm_rules: Vec<(usize, LmmDf)>,
    tests_needed: TestOptions,
    pub alpha: f64,
    /// The estimand: ITT effect in points.
    pub true_effect: f64,
    /// The true value of each analysis' estimand (ITT analyses: δ·E[g];
    /// high vs low: δ times the causal contrast; dose-response and IV: δ).
    pub truths: Vec<f64>,
    /// The adherence analyses (when any is requested).
    adherence: Option<AdherenceAnalyses>,
    /// The GLMM and GEE analyses (when any is requested).
    glmm: Option<GlmmAnalyses>,
    /// A binary or count outcome linearised on its own scale (what the
    /// analytic power formulas read; see
    /// [`Simulator::linearised_config`]).
    pub(super) linearised: Option<Config>,
    /// Fixed-effect coefficients of the analysis model (on the probe
    /// trial), for the GEE's clusters − p df.
    pub(super) fixed_p: usize,
    /// The resolved config as TOML (recorded in manifests and summaries).
    pub config_text: String,
    /// The run identity ([`config_hash`]).
    pub config_id: String,
}

/// An outcome from an estimate, SE and df (see [`Outcome::new`]).
pub fn make_outcome(
    est: f64,
    se: f64,
    df: f64,
    singular: bool,
    converged: bool,
    alpha: f64,
) -> Outcome {
    Outcome::new(est, se, df, singular, converged, alpha)
}

impl PowerStudy {
    /// Build the study from a validated config.
    pub fn new(config: Config, with_null: bool) -> Result<PowerStudy> {
        let sim = Simulator::new(config.clone())?;
        let sim_null = if with_null {
            let mut c0 = config.clone();
            c0.effect = crate::config::Effect::null();
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
        // A binary or count outcome may not vary in one trial (a rare
        // event): the probe tries up to PROBES trials before refusing.
        const PROBES: u64 = 20;
        let tries = if sim.family().is_some() { PROBES } else { 1 };
        let mut probe_data = sim.simulate(0, 0);
        let mut probe = sim.data_frame(&probe_data);
        let mut built = Model::from_formula(&parsed, &probe, true);
        for rep in 1..tries {
            if built.is_ok() {
                break;
            }
            probe_data = sim.simulate(0, rep);
            probe = sim.data_frame(&probe_data);
            built = Model::from_formula(&parsed, &probe, true);
        }
        let model = built.map_err(|e| {
            // A formula that parses but cannot be fitted to the design's data
            // (e.g. attrition leaves too few rows): say which trial was tried.
            let which = if tries > 1 {
                format!(
                    "in none of {tries} simulated trials (seed 0, replicates 0 to {}; the last had",
                    tries - 1
                )
            } else {
                "to a simulated trial (seed 0, replicate 0:".to_string()
            };
            let why = format!(
                "cannot be fitted {which} {} service users, {} with a follow-up): {e}",
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
        let ratios = sim.log_ratios().unwrap_or((f64::NAN, f64::NAN));
        let truths = methods
            .iter()
            .map(|m| match m.estimand() {
                Estimand::HighLowContrast => delta * sim.adherence().high_low_contrast(teams),
                Estimand::FullParticipation => delta,
                Estimand::Itt => itt,
                Estimand::Conditional => ratios.0,
                Estimand::Marginal => ratios.1,
            })
            .collect();
        let glmm = if methods.iter().any(|m| m.is_glmm()) {
            let family = sim.family().ok_or_else(|| {
                Error::invalid(
                    "analysis.methods",
                    "(glmm_*, gee_*)",
                    "needs a binary or count outcome (outcome.measure = \"binary\" or \"count\", or outcome.threshold)",
                )
            })?;
            // The GEE's clusters: the term at the cluster level of the
            // data-generating process (else the first).
            let cluster_term = model
                .frame
                .terms
                .iter()
                .position(|t| t.k == 1 && sim.level_of(&t.spec.group) == Some(Level::Cluster))
                .unwrap_or(0);
            Some(GlmmAnalyses::new(
                &formula,
                &term,
                family,
                cluster_term,
                config.alpha(),
                methods.iter().filter_map(|m| match m {
                    Analysis::Glmm(a) => Some(*a),
                    _ => None,
                }),
            ))
        } else {
            None
        };
        let linearised = sim.linearised_config();
        let lmm_rules: Vec<(usize, LmmDf)> = methods
            .iter()
            .enumerate()
            .filter_map(|(k, m)| match m {
                Analysis::Lmm(df) => Some((k, *df)),
                _ => None,
            })
            .collect();
        let tests_needed = LmmDf::needs_all(lmm_rules.iter().map(|r| r.1));
        let mut vars = parsed.variables();
        let adherence = if methods.iter().any(|m| m.is_adherence()) {
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
            fixed_p: model.frame.p,
            glmm,
            linearised,
            config_text: config_toml(&config)?,
            config_id: config_hash(&config)?,
            vars,
            parsed,
            adherence,
            truths,
            methods,
            lmm_rules,
            tests_needed,
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

    pub(super) fn sw_expected_small_sample(&self, seed: u64) -> Option<SmallSample> {
        let design = self.sim.design();
        let sw = design.stepped_wedge()?;
        self.config.outcome.cac?;
        // The variance parameters of an LMM on a binary or count outcome
        // have no true values.
        if self.linearised.is_some() {
            return None;
        }
        let vc = self.sim.variance();
        let d = self.sim.simulate(seed, 0);
        let data = self.sim.data_frame(&d);
        let mut model = Model::from_formula(&self.parsed, &data, true).ok()?;
        // Only scalar terms at levels the data are generated with (cluster,
        // cluster-period, and person for cohorts) have a true θ.
        let levels: Vec<Option<Level>> = model
            .frame
            .terms
            .iter()
            .map(|t| {
                (t.k == 1)
                    .then(|| self.sim.level_of(&t.spec.group))
                    .flatten()
            })
            .collect();
        let theta = vc.true_theta(&levels, true)?;
        let s2 = vc.residual();
        let mut fit = model.fit_at(crate::lmm::optim::OptResult::given(
            &theta,
            "true variance parameters",
        ));
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
        let (_, kappa) = crate::analytic::sw_config_gls(&self.config, design, sw);
        Some(SmallSample {
            // The study's estimand (reported scale), diluted by any lag.
            effect: self.true_effect * kappa,
            var_gls: (fit.se(j) * fit.sigma / sigma_hat).powi(2),
            var_kr: se * se,
            df_kr: df,
        })
    }

    /// The simulator of the configured effect.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// Scenarios run: 1 (effect) or 2 (effect and null).
    pub fn scenarios(&self) -> u8 {
        if self.sim_null.is_some() {
            2
        } else {
            1
        }
    }

    /// Simulate and analyse replicate `rep` of `scenario`: one outcome per
    /// analysis, in [`PowerStudy::methods`] order (held in `ws`, reused).
    pub fn replicate<'w>(
        &self,
        seed: u64,
        rep: u64,
        scenario: u8,
        ws: &'w mut Workspace,
    ) -> &'w [Outcome] {
        let sim = if scenario == 0 {
            &self.sim
        } else {
            self.sim_null.as_ref().expect("null scenario configured")
        };
        let mut rng = replicate_rng(seed, rep);
        sim.simulate_into(&mut rng, &mut ws.data);
        self.analyse(ws, sim);
        &ws.outcomes
    }

    fn analyse(&self, ws: &mut Workspace, sim: &Simulator) {
        sim.data_frame_into(&ws.data, Some(&self.vars), &mut ws.frame_data);
        let Workspace {
            model,
            frame,
            outcomes: out,
            tests,
            test_work,
            fit,
            frame_data: data,
            cluster_t: ctw,
            adherence: adh,
            glmm,
            ..
        } = ws;
        out.clear();
        out.resize(self.methods.len(), Outcome::failed());
        if let Some(ga) = &self.glmm {
            let res = ga.run(data, glmm);
            for (k, m) in self.methods.iter().enumerate() {
                if let Analysis::Glmm(a) = m {
                    out[k] = res.pick(*a);
                }
            }
        }
        // The LMM analyses share one fit; without any, only the model frame
        // (X, y, grouping factors) is built, and only when `cluster_t` or an
        // adherence analysis needs it. A design that cannot be built fails
        // every analysis of this replicate.
        let frame_used = self.adherence.is_some() || self.methods.contains(&Analysis::ClusterT);
        if self.lmm_rules.is_empty() && !frame_used {
            return;
        }
        let fr: &ModelFrame = if self.lmm_rules.is_empty() {
            let Some(f) = update_frame(frame, &self.parsed, data) else {
                return;
            };
            f
        } else {
            let Some(m) = Model::update_or_build(model, &self.parsed, data) else {
                return;
            };
            if let Some(j) = self.term_index(&m.frame) {
                m.fit_into(fit);
                let need = self.tests_needed;
                coef_tests_into(m, fit, need, Coefs::One(j), test_work, tests);
                for &(k, rule) in &self.lmm_rules {
                    out[k] = rule.outcome(fit, tests, j, self.alpha);
                }
            }
            &m.frame
        };
        let Some(j) = self.term_index(fr) else {
            return;
        };
        for (k, m) in self.methods.iter().enumerate() {
            if *m == Analysis::ClusterT {
                out[k] = crate::analysis::cluster_t::cluster_t_with(fr, j, self.alpha, ctw);
            }
        }
        if let Some(aa) = &self.adherence {
            let res = aa.run_with(data, adh);
            for (k, m) in self.methods.iter().enumerate() {
                if let Analysis::Adherence(a) = m {
                    out[k] = a.pick(&res);
                }
            }
        }
    }

    /// The treatment's column in the fixed-effect design.
    fn term_index(&self, fr: &ModelFrame) -> Option<usize> {
        fr.x_names.iter().position(|n| n == &self.term)
    }

    /// An empty tally of this study's analyses and scenarios.
    pub fn tally(&self) -> Tally {
        Tally::new(&self.methods, &self.truths, self.scenarios(), self.alpha)
    }

    /// Run replicates `reps` (in order), in parallel batches of [`BATCH`],
    /// handing each finished batch's records (in replicate, scenario and
    /// analysis order) to `sink`. The replicate numbers are drawn from the
    /// iterator one batch at a time, so memory does not grow with their
    /// number; each worker thread keeps one workspace for the whole run, so
    /// a replicate reuses the previous one's allocations and model.
    pub fn run<F: FnMut(&[Record]) -> Result<()>>(
        &self,
        seed: u64,
        reps: impl IntoIterator<Item = u64>,
        threads: usize,
        mut sink: F,
    ) -> Result<()> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Usage(format!("cannot start {threads} threads: {e}")))?;
        let workspaces: Vec<std::sync::Mutex<Workspace>> =
            (0..threads).map(|_| Default::default()).collect();
        let scen = self.scenarios();
        let per_rep = self.methods.len() * scen as usize;
        let blank = Record {
            rep: 0,
            scenario: 0,
            analysis: self.methods[0],
            outcome: Outcome::failed(),
        };
        let mut reps = reps.into_iter();
        let mut chunk: Vec<u64> = Vec::with_capacity(BATCH as usize);
        let mut recs: Vec<Record> = Vec::with_capacity(BATCH as usize * per_rep);
        loop {
            chunk.clear();
            chunk.extend(reps.by_ref().take(BATCH as usize));
            if chunk.is_empty() {
                return Ok(());
            }
            recs.clear();
            recs.resize(chunk.len() * per_rep, blank);
            pool.install(|| {
                recs.par_chunks_mut(per_rep)
                    .zip(chunk.par_iter())
                    .for_each(|(slots, &rep)| {
                        let i = rayon::current_thread_index().unwrap_or(0) % threads;
                        let mut ws = workspaces[i].lock().unwrap_or_else(|e| e.into_inner());
                        let mut slots = slots.iter_mut();
                        for s in 0..scen {
                            let outs = self.replicate(seed, rep, s, &mut ws);
                            for (&analysis, &outcome) in self.methods.iter().zip(outs) {
                                if let Some(r) = slots.next() {
                                    *r = Record {
                                        rep,
                                        scenario: s,
                                        analysis,
                                        outcome,
                                    };
                                }
                            }
                        }
                    })
            });
            sink(&recs)?;
        }
    }
}

/// The model frame alone, reusing the previous frame's grouping codes.
fn update_frame<'f>(
    slot: &'f mut Option<ModelFrame>,
    formula: &crate::lmm::formula::Formula,
    data: &crate::lmm::data::DataFrame,
) -> Option<&'f ModelFrame> {
    if let Some(f) = slot.as_mut() {
        if f.refill(formula, data) != crate::lmm::frame::Refilled::No {
            return slot.as_ref();
        }
    }
    *slot = Some(ModelFrame::build(formula, data, None).ok()?);
    slot.as_ref()
}
