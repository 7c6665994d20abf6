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

pub use crate::analysis::adherence::{adherence_table, AdherenceAnalyses};
pub use crate::analysis::Outcome;
use crate::analysis::{Analysis, Estimand, LmmDf, Reference};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lmm::frame::ModelFrame;
use crate::lmm::inference::{coef_tests_with, TestOptions};
use crate::lmm::Model;
use crate::rng::replicate_rng;
use crate::simulate::{Dataset, Simulator};
use crate::variance::Level;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::path::Path;

mod run;
pub mod store;
mod tally;

pub use run::{execute, merge, worker_threads, Merged, RunOptions, MAX_REPS};
pub use store::{read_manifest, Manifest};
pub use tally::{performance, Performance, Tally};

/// Replicates per batch (the unit of streaming and of resumption).
pub const BATCH: u64 = 256;

/// A replicate's outcome for one scenario and analysis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    pub rep: u64,
    /// 0 = the configured effect, 1 = the null (δ = 0).
    pub scenario: u8,
    pub analysis: Analysis,
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
            .map(|m| match m.estimand() {
                Estimand::HighLowContrast => delta * sim.adherence().high_low_contrast(teams),
                Estimand::FullParticipation => delta,
                Estimand::Itt => itt,
            })
            .collect();
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

    fn sw_expected_small_sample(&self, seed: u64) -> Option<SmallSample> {
        let design = self.sim.design();
        let sw = design.stepped_wedge()?;
        self.config.outcome.cac?;
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
        let (_, kappa) = crate::analytic::sw_config_gls(&self.config, design, sw);
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
        let data = sim.data_frame_with(&ws.data, Some(&self.vars));
        let Workspace {
            model,
            frame,
            outcomes: out,
            ..
        } = ws;
        out.clear();
        out.resize(self.methods.len(), Outcome::failed());
        // The LMM analyses share one fit; without any, only the model frame
        // (X, y, grouping factors) is built. A design that cannot be built
        // fails every analysis of this replicate.
        let fr: &ModelFrame = if self.lmm_rules.is_empty() {
            let Some(f) = update_frame(frame, &self.parsed, &data) else {
                return;
            };
            f
        } else {
            let Some(m) = update_model(model, &self.parsed, &data) else {
                return;
            };
            if let Some(j) = self.term_index(&m.frame) {
                let fit = m.fit();
                let tests = coef_tests_with(m, &fit, self.tests_needed);
                for &(k, rule) in &self.lmm_rules {
                    out[k] = rule.outcome(&fit, &tests, j, self.alpha);
                }
            }
            &m.frame
        };
        let Some(j) = self.term_index(fr) else {
            return;
        };
        for (k, m) in self.methods.iter().enumerate() {
            if *m == Analysis::ClusterT {
                out[k] = crate::analysis::cluster_t::cluster_t(fr, j, self.alpha);
            }
        }
        if let Some(aa) = &self.adherence {
            let res = aa.run(&data);
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
            (None, Some(r)) => crate::analytic::power_for(
                &self.config,
                self.sim.design(),
                self.alpha,
                r == Reference::Normal,
                &self.formula,
                self.true_effect,
            ),
        }
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
        .rows
        .iter()
        .map(|r| {
            let (e, nl) = (&r.effect, &r.null);
            json!({
                "name": r.analysis.name(),
                "true_value": num(r.true_value),
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
                "analytic_power": num(r.analytic),
            })
        })
        .collect();
    json!({
        "crtsim_version": env!("CARGO_PKG_VERSION"),
        "trial": s.trial,
        "reps": s.reps,
        "seed": s.seed,
        "alpha": s.alpha,
        "estimand": {"name": "ITT difference in follow-up QPR", "true_value": s.true_effect},
        "formula": s.formula,
        "term": s.term,
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
        s.formula,
        s.rows
            .iter()
            .map(|r| r.analysis.name())
            .collect::<Vec<_>>()
            .join(", ")
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
    for r in &s.rows {
        let (name, e, nl) = (r.analysis.name(), &r.effect, &r.null);
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
            if r.analytic.is_finite() {
                format!("{:.3}", r.analytic)
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
    for r in &s.rows {
        let (name, e, nl) = (r.analysis.name(), &r.effect, &r.null);
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
        if r.analytic.is_finite() && (e.reject - r.analytic).abs() > 2.5 * e.reject_mc_se.max(1e-9)
        {
            let why = if r.analysis == Analysis::ClusterT {
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

/// Parse `--shard i/n` for the command line (the message of [`parse_shard`]).
pub fn shard_arg(s: &str) -> std::result::Result<(u64, u64), String> {
    parse_shard(s).map_err(|e| e.to_string())
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

/// The workspace's model updated in place for `data` (the sparse analysis
/// is not redone when the design repeats its structure; the fit is the same
/// either way), or built afresh. None when the data cannot be modelled
/// (the previous model is then kept).
fn update_model<'m>(
    slot: &'m mut Option<Model>,
    formula: &crate::lmm::formula::Formula,
    data: &crate::lmm::data::DataFrame,
) -> Option<&'m mut Model> {
    match slot.as_mut().filter(|m| m.formula == *formula && m.reml) {
        Some(m) => m.update_data(data).ok()?,
        None => *slot = Some(Model::from_formula(formula, data, true).ok()?),
    }
    slot.as_mut()
}

/// The model frame alone, reusing the previous frame's grouping codes.
fn update_frame<'f>(
    slot: &'f mut Option<ModelFrame>,
    formula: &crate::lmm::formula::Formula,
    data: &crate::lmm::data::DataFrame,
) -> Option<&'f ModelFrame> {
    let f = ModelFrame::build(formula, data, slot.as_ref()).ok()?;
    *slot = Some(f);
    slot.as_ref()
}
