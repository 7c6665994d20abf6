//! The two-stage cluster-level analysis (Hayes & Moulton): stage 1, an OLS
//! of the outcome on the individual-level covariates (fixed-effect columns
//! that vary within clusters; cluster = the grouping factor with fewest
//! levels); stage 2, an OLS of the clusters' mean residuals on the
//! treatment and the cluster-level covariates, whose t-test has
//! k − 2 − (cluster-level covariates) df. It needs the model frame (X, y
//! and the grouping factors) but no mixed-model fit.

use super::Outcome;
use crate::lmm::frame::ModelFrame;
use crate::stats::Ols;
use smallvec::SmallVec;

/// Reused storage for [`cluster_t_with`] (a power worker keeps one).
#[derive(Debug, Default)]
pub struct ClusterTWork {
    first: Vec<f64>,
    s1: Vec<usize>,
    cluster_cov: Vec<usize>,
    sum: Vec<f64>,
    cnt: Vec<f64>,
    /// Stage 2 design: 1, the treatment, the cluster-level covariates (each g long).
    x2: Vec<f64>,
    means: Vec<f64>,
    ols: Ols,
}

/// The cluster-level test of column `j` of the frame's X.
pub fn cluster_t(fr: &ModelFrame, j: usize, alpha: f64) -> Outcome {
    cluster_t_with(fr, j, alpha, &mut ClusterTWork::default())
}

/// [`cluster_t`] with reused storage: allocates nothing once `w` has seen
/// a design this large.
pub fn cluster_t_with(fr: &ModelFrame, j: usize, alpha: f64, w: &mut ClusterTWork) -> Outcome {
    let (n, p) = (fr.n, fr.p);
    let Some(term) = fr.terms.iter().min_by_key(|t| t.nlevels()) else {
        return Outcome::failed();
    };
    let g = term.nlevels();
    let col = |c: usize| &fr.x[c * n..(c + 1) * n];
    let first = &mut w.first;
    let mut constant_within = |c: usize| {
        first.clear();
        first.resize(g, f64::NAN);
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
    let is_int = |c: usize| fr.x_names[c] == "(Intercept)";
    // Stage 1 columns: the intercept, then the individual-level covariates.
    w.s1.clear();
    w.s1.extend((0..p).filter(|&c| is_int(c)));
    w.cluster_cov.clear();
    for c in 0..p {
        if c == j || is_int(c) {
            continue;
        }
        if constant_within(c) {
            w.cluster_cov.push(c);
        } else {
            w.s1.push(c);
        }
    }
    // (Individual covariates after the intercept, in column order.)
    let xs1: SmallVec<[&[f64]; 8]> = w.s1.iter().map(|&c| col(c)).collect();
    if !w.ols.fit(&xs1, &fr.y) {
        return Outcome::failed();
    }
    w.sum.clear();
    w.sum.resize(g, 0.0);
    w.cnt.clear();
    w.cnt.resize(g, 0.0);
    let k2 = 2 + w.cluster_cov.len();
    w.x2.clear();
    w.x2.resize(k2 * g, 1.0);
    for i in 0..n {
        let fitted: f64 = xs1.iter().zip(w.ols.beta()).map(|(x, b)| x[i] * b).sum();
        let l = term.refs[i] as usize;
        w.sum[l] += fr.y[i] - fitted;
        w.cnt[l] += 1.0;
        w.x2[g + l] = col(j)[i];
        for (k, &c) in w.cluster_cov.iter().enumerate() {
            w.x2[(k + 2) * g + l] = col(c)[i];
        }
    }
    w.means.clear();
    w.means.extend((0..g).map(|l| w.sum[l] / w.cnt[l]));
    // Stage 2: means ~ 1 + treatment + cluster-level covariates.
    let df = g as f64 - k2 as f64;
    if df < 1.0 {
        return Outcome::failed();
    }
    let xs2: SmallVec<[&[f64]; 8]> = w.x2.chunks_exact(g).collect();
    if !w.ols.fit(&xs2, &w.means) {
        return Outcome::failed();
    }
    let (b, v) = (w.ols.beta()[1], w.ols.var(1));
    Outcome::new(b, v.sqrt(), df, false, true, alpha)
}
