//! Streaming performance measures: a run's records are folded in, replicate
//! by replicate, so memory does not grow with the number of replicates.
//!
//! Every path that summarises a run (a fresh run, a resumed or repaired one,
//! merged shards) folds records in replicate order, so the summary is
//! byte-identical whatever the threads, shards or interruptions.

use super::{Outcome, Record};
use crate::analysis::Analysis;

/// Running sums for one (scenario, analysis): Welford's mean and sum of
/// squared deviations for the estimate and the model SE, and counts.
#[derive(Debug, Clone, Default)]
struct Acc {
    total: u64,
    ok: u64,
    reject: u64,
    cover: u64,
    singular: u64,
    nonconverged: u64,
    mean_est: f64,
    m2_est: f64,
    mean_se: f64,
    m2_se: f64,
}

impl Acc {
    fn add(&mut self, o: &Outcome, truth: f64, alpha: f64) {
        self.total += 1;
        self.singular += u64::from(o.singular);
        if o.failed {
            return;
        }
        self.nonconverged += u64::from(!o.converged);
        self.ok += 1;
        self.reject += u64::from(o.p < alpha);
        self.cover += u64::from(o.lo <= truth && truth <= o.hi);
        let n = self.ok as f64;
        let d = o.estimate - self.mean_est;
        self.mean_est += d / n;
        self.m2_est += d * (o.estimate - self.mean_est);
        let d = o.se - self.mean_se;
        self.mean_se += d / n;
        self.m2_se += d * (o.se - self.mean_se);
    }

    fn performance(&self, truth: f64) -> Performance {
        let n = self.ok as usize;
        let nf = self.ok as f64;
        let reject = self.reject as f64 / nf;
        let var_est = self.m2_est / (nf - 1.0);
        let emp_se = var_est.sqrt();
        let var_se = self.m2_se / (nf - 1.0);
        // No true value (e.g. a dichotomised score's conditional odds
        // ratio): no coverage either.
        let cover = if truth.is_nan() {
            f64::NAN
        } else {
            self.cover as f64 / nf
        };
        let nan_if_empty = |x: f64| if n == 0 { f64::NAN } else { x };
        Performance {
            n,
            reject,
            reject_mc_se: (reject * (1.0 - reject) / nf).sqrt(),
            mean_estimate: nan_if_empty(self.mean_est),
            bias: nan_if_empty(self.mean_est - truth),
            bias_mc_se: (var_est / nf).sqrt(),
            empirical_se: emp_se,
            empirical_se_mc_se: emp_se / (2.0 * (nf - 1.0)).sqrt(),
            mean_model_se: nan_if_empty(self.mean_se),
            mean_model_se_mc_se: (var_se / nf).sqrt(),
            coverage: cover,
            coverage_mc_se: (cover * (1.0 - cover) / nf).sqrt(),
            n_singular: self.singular as usize,
            n_nonconverged: self.nonconverged as usize,
            n_failed: (self.total - self.ok) as usize,
        }
    }
}

/// Performance of one analysis in one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Performance {
    pub n: usize,
    pub reject: f64,
    pub reject_mc_se: f64,
    pub mean_estimate: f64,
    pub bias: f64,
    pub bias_mc_se: f64,
    pub empirical_se: f64,
    pub empirical_se_mc_se: f64,
    pub mean_model_se: f64,
    pub mean_model_se_mc_se: f64,
    pub coverage: f64,
    pub coverage_mc_se: f64,
    pub n_singular: usize,
    pub n_nonconverged: usize,
    pub n_failed: usize,
}

impl Performance {
    /// How the rejection rate (a type-I error, under the null) compares
    /// with `alpha`: `Equal` within 2 Monte Carlo SEs (or when it is not
    /// estimable), else above or below.
    pub fn type_one_departure(&self, alpha: f64) -> std::cmp::Ordering {
        let d = self.reject - alpha;
        // Not measurably different (or not estimable: NaN) counts as equal.
        if !(d.abs() > 2.0 * self.reject_mc_se.max(1e-9)) {
            std::cmp::Ordering::Equal
        } else {
            d.total_cmp(&0.0)
        }
    }

    /// Whether the Monte Carlo power differs from `analytic` by more than
    /// 2.5 Monte Carlo SEs (false without an analytic value).
    pub fn departs_from_analytic(&self, analytic: f64) -> bool {
        analytic.is_finite() && (self.reject - analytic).abs() > 2.5 * self.reject_mc_se.max(1e-9)
    }
}

/// Summarise the outcomes of one (scenario, analysis) against the true value.
pub fn performance(records: &[&Outcome], truth: f64, alpha: f64) -> Performance {
    let mut acc = Acc::default();
    for o in records {
        acc.add(o, truth, alpha);
    }
    acc.performance(truth)
}

/// The running summary of a run: one accumulator per (scenario, analysis).
#[derive(Debug, Clone)]
pub struct Tally {
    methods: Vec<Analysis>,
    scenarios: u8,
    alpha: f64,
    truths: Vec<f64>,
    accs: Vec<Acc>,
    records: u64,
}

impl Tally {
    /// An empty tally for `methods` (with true values `truths`, in the same
    /// order) in `scenarios` scenarios (scenario 0: the effect, with these
    /// true values; 1: the null, truth 0).
    pub fn new(methods: &[Analysis], truths: &[f64], scenarios: u8, alpha: f64) -> Tally {
        assert_eq!(methods.len(), truths.len(), "one true value per analysis");
        Tally {
            methods: methods.to_vec(),
            scenarios,
            alpha,
            truths: truths.to_vec(),
            accs: vec![Acc::default(); truths.len() * scenarios as usize],
            records: 0,
        }
    }

    /// Fold in one record (records must come in replicate order for the
    /// summary to be reproducible bit for bit).
    pub fn add(&mut self, r: &Record) {
        let Some(a) = self.methods.iter().position(|&m| m == r.analysis) else {
            return; // not one of this run's analyses (readers filter these)
        };
        let truth = if r.scenario == 0 { self.truths[a] } else { 0.0 };
        self.accs[r.scenario as usize * self.methods.len() + a].add(&r.outcome, truth, self.alpha);
        self.records += 1;
    }

    /// Replicates folded in.
    pub fn reps(&self) -> u64 {
        let per = (self.methods.len() * self.scenarios as usize).max(1) as u64;
        self.records / per
    }

    /// Per analysis, in the tally's order: the analysis, its performance in
    /// the effect scenario and in the null scenario if run.
    pub fn performances(&self) -> Vec<(Analysis, Performance, Option<Performance>)> {
        let k = self.methods.len();
        self.methods
            .iter()
            .enumerate()
            .map(|(a, &m)| {
                let eff = self.accs[a].performance(self.truths[a]);
                let null = (self.scenarios == 2).then(|| self.accs[k + a].performance(0.0));
                (m, eff, null)
            })
            .collect()
    }
}
