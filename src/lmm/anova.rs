//! F tests of the fixed-effect terms (`crtsim fit --anova`), as lmerTest's
//! `anova(fit, type = 3)` with Satterthwaite's denominator df.
//!
//! For a term with columns C of X (q of them), L selects them and
//!
//!   F = (Lβ̂)' (L Φ L')⁻¹ (Lβ̂) / q,
//!
//! with Φ = vcov(β̂). The denominator df follow lmerTest's `contestMD`: with
//! L Φ L' = P D P', each row p_i'L is a 1-df contrast with Satterthwaite df
//! ν_i; the F's df is ν₁ when q = 1 or all ν_i agree, else 2E/(E − q) with
//! E = Σ ν_i/(ν_i − 2) (and 2 when some ν_i ≤ 2 or E ≤ q).
//!
//! For a term not contained in a higher-order term, L selects its columns.
//! For a term contained in interactions (`recipe` beside
//! `recipe:temperature`), each of its rows also takes the matching columns
//! of the containing terms, weighted 1/Π(levels of their other factors):
//! equal marginal means averaged with equal weights over the other
//! factors (SAS's and lmerTest's Type III, whatever the coding). A term
//! contained in an interaction with a numeric variable is not tested yet.

use super::inference::contrast_df;
use super::{dense, Fit, Model};

/// One term's F test.
#[derive(Debug, Clone)]
pub struct AnovaRow {
    pub term: String,
    /// Numerator df (the term's columns in X).
    pub num_df: usize,
    pub den_df: f64,
    pub f: f64,
    pub p: f64,
    /// Why the term was not tested, if it was not.
    pub not_tested: Option<String>,
}

/// lmerTest's denominator df for an F test from its 1-df contrasts' df.
pub fn f_ddf(nu: &[f64]) -> f64 {
    if nu.len() == 1 || nu.iter().all(|v| (v - nu[0]).abs() < 1e-8) {
        return nu[0];
    }
    if nu.iter().any(|&v| v <= 2.0) {
        return 2.0;
    }
    let e: f64 = nu.iter().map(|v| v / (v - 2.0)).sum();
    let q = nu.len() as f64;
    if e <= q {
        2.0
    } else {
        2.0 * e / (e - q)
    }
}

/// The F test of every fixed-effect term of a fitted model, in the
/// formula's order.
pub fn type3(model: &Model, fit: &Fit) -> Vec<AnovaRow> {
    let fr = &model.frame;
    let formula = &model.formula;
    let p = fit.beta.len();
    let mut rows = Vec::new();
    for term in &formula.fixed {
        let name = term.join(":");
        // A column's variables against the term's: the term's own column
        // has exactly them, a containing term's column has more.
        let has_all = |j: usize| {
            term.iter()
                .all(|v| fr.x_parts[j].iter().any(|x| &x.var == v))
        };
        let nvars = |j: usize| fr.x_parts[j].len();
        let cols: Vec<usize> = (0..p)
            .filter(|&j| nvars(j) == term.len() && has_all(j))
            .collect();
        let q = cols.len();
        let mut row = AnovaRow {
            term: name.clone(),
            num_df: q,
            den_df: f64::NAN,
            f: f64::NAN,
            p: f64::NAN,
            not_tested: None,
        };
        if q == 0 {
            row.not_tested = Some(format!(
                "`{name}` has no column left in the model (one level, or aliased)"
            ));
            rows.push(row);
            continue;
        }
        // L (q × p): the term's columns, and for a term contained in
        // interactions, each containing column whose levels on the term's
        // variables match, weighted 1/Π(levels of its other factors): the
        // hypothesis of equal marginal means, averaged with equal weights
        // over the other factors' levels (SAS's and lmerTest's Type III).
        let mut ls: Vec<Vec<f64>> = Vec::with_capacity(q);
        let restrict = |j: usize| -> Vec<(String, Option<u32>)> {
            fr.x_parts[j]
                .iter()
                .filter(|x| term.contains(&x.var))
                .map(|x| (x.var.clone(), x.level.map(|l| l.0)))
                .collect()
        };
        // With sum-to-zero contrasts the term's own columns already test
        // the equal-weight marginal means.
        let sum_coded = formula.contrasts == super::formula::Contrasts::Sum;
        let containers: Vec<usize> = (0..p)
            .filter(|&j| !sum_coded && nvars(j) > term.len() && has_all(j))
            .collect();
        let numeric_other = containers.iter().any(|&j| {
            fr.x_parts[j]
                .iter()
                .any(|x| x.level.is_none() && !term.contains(&x.var))
        });
        if numeric_other {
            row.not_tested = Some(format!(
                "`{name}` is contained in an interaction with a numeric variable; its Type III test is not computed yet"
            ));
            rows.push(row);
            continue;
        }
        for &c in &cols {
            let mut l = vec![0.0; p];
            l[c] = 1.0;
            let key = restrict(c);
            for &d in &containers {
                if restrict(d) == key {
                    let w: f64 = fr.x_parts[d]
                        .iter()
                        .filter(|x| !term.contains(&x.var))
                        .map(|x| 1.0 / x.level.map_or(1.0, |l| l.1 as f64))
                        .product();
                    l[d] += w;
                }
            }
            ls.push(l);
        }
        // L Φ L' = P D P'.
        let mut m = dense::Mat::zeros(q, q);
        for a in 0..q {
            for b in 0..q {
                m[(a, b)] = (0..p)
                    .map(|i| ls[a][i] * (0..p).map(|k| fit.vcov[i * p + k] * ls[b][k]).sum::<f64>())
                    .sum();
            }
        }
        let (mut vals, mut vecs) = (Vec::new(), dense::Mat::default());
        dense::sym_eigen(&mut m, &mut vals, &mut vecs);
        let lb: Vec<f64> = ls
            .iter()
            .map(|l| l.iter().zip(&fit.beta).map(|(a, b)| a * b).sum())
            .collect();
        let mut f = 0.0;
        let mut contrasts = Vec::with_capacity(q);
        for i in 0..q {
            let pl: f64 = (0..q).map(|a| vecs[(a, i)] * lb[a]).sum();
            f += pl * pl / vals[i];
            let mut l = vec![0.0; p];
            for (a, la) in ls.iter().enumerate() {
                for (k, v) in la.iter().enumerate() {
                    l[k] += vecs[(a, i)] * v;
                }
            }
            contrasts.push(l);
        }
        f /= q as f64;
        let (nu, _) = contrast_df(model, fit, &contrasts);
        let ddf = f_ddf(&nu);
        row.f = f;
        row.den_df = ddf;
        row.p = crate::stats::f_sf(f, q as f64, ddf);
        rows.push(row);
    }
    rows
}
