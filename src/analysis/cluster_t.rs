//! The two-stage cluster-level analysis (Hayes & Moulton): stage 1, an OLS
//! of the outcome on the individual-level covariates (fixed-effect columns
//! that vary within clusters; cluster = the grouping factor with fewest
//! levels); stage 2, an OLS of the clusters' mean residuals on the
//! treatment and the cluster-level covariates, whose t-test has
//! k − 2 − (cluster-level covariates) df. It needs the model frame (X, y
//! and the grouping factors) but no mixed-model fit.

use super::Outcome;
use crate::lmm::frame::ModelFrame;
use crate::stats::{ols, ols_with_cov};

/// The cluster-level test of column `j` of the frame's X.
pub fn cluster_t(fr: &ModelFrame, j: usize, alpha: f64) -> Outcome {
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
    Outcome::new(b2[1], cov[(1, 1)].sqrt(), df, false, true, alpha)
}
