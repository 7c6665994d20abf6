//! Printing a fitted GLMM: a glmer-style summary and the JSON schema of the
//! glmer reference fits (`tests/data/glmm/fits/*.json`).

use super::{Glmm, GlmmFit};
use crate::lmm::inference::p_t;
use crate::lmm::Fit;
use serde_json::{json, Map, Value};
use std::fmt::Write;

fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// The LMM view of the fit (σ = 1) for the variance table and the modes.
fn as_lmm(fit: &GlmmFit) -> Fit {
    Fit {
        theta: fit.theta.clone(),
        beta: fit.beta.clone(),
        sigma: 1.0,
        n: fit.n,
        b: fit.b.clone(),
        ..Fit::default()
    }
}

/// The fit as JSON, in the glmer reference schema.
pub fn to_json(g: &Glmm, fit: &GlmmFit) -> Value {
    let p = fit.beta.len();
    let fixed: Vec<Value> = (0..p)
        .map(|j| {
            let (est, se) = (fit.beta[j], fit.se(j));
            json!({"term": fit.names[j], "estimate": num(est), "se": num(se),
                   "z": num(est / se), "p": num(p_t(est / se, f64::INFINITY))})
        })
        .collect();
    let vcov: Vec<Vec<Value>> = (0..p)
        .map(|a| (0..p).map(|b| num(fit.vcov[a * p + b])).collect())
        .collect();
    let lf = as_lmm(fit);
    let random: Vec<Value> = g
        .model
        .varcorr(&lf)
        .into_iter()
        .filter(|v| v.group != "Residual")
        .map(|v| {
            json!({"group": v.group, "term1": v.term1, "term2": v.term2,
                   "vcov": num(v.vcov), "sdcor": num(v.sdcor)})
        })
        .collect();
    let mut groups = Map::new();
    for (name, n) in g.model.n_groups() {
        groups.insert(name, json!(n));
    }
    let mut ranef = Map::new();
    for (name, _, levels) in g.model.ranef(&lf) {
        let mut m = Map::new();
        for (l, v) in levels {
            m.insert(l, if v.len() == 1 { num(v[0]) } else { json!(v) });
        }
        ranef.insert(name, Value::Object(m));
    }
    json!({
        "formula": g.model.formula.text,
        "family": g.family.name(),
        "link": g.link.name(),
        "nAGQ": g.nagq,
        "n_obs": fit.n,
        "n_dropped_missing": g.model.frame.n_missing,
        "n_groups": groups,
        "fixed": fixed,
        "vcov_fixed": vcov,
        "random": random,
        "theta": fit.theta,
        "minus_two_loglik": num(fit.deviance),
        "loglik": num(-0.5 * fit.deviance),
        "df_model": fit.df_model,
        "aic": num(fit.aic()),
        "bic": num(fit.bic()),
        "singular": fit.singular,
        "optimizer": {"converged": fit.optimizer.converged, "gradient": num(fit.optimizer.grad),
                      "evaluations": fit.optimizer.evals, "method": fit.optimizer.message()},
        "ranef": ranef,
    })
}

/// Between-within df and their t-test p-values added to each fixed effect
/// of the JSON (when given).
pub fn add_between_within(v: &mut Value, fit: &GlmmFit, df: Option<&[f64]>) {
    let Some(df) = df else {
        return;
    };
    if let Some(fx) = v["fixed"].as_array_mut() {
        for (j, o) in fx.iter_mut().enumerate() {
            let t = fit.beta[j] / fit.se(j);
            o["df_between_within"] = num(df[j]);
            o["p_between_within"] = num(p_t(t, df[j]));
        }
    }
}

/// A glmer-style summary (with t tests on between-within df when given).
pub fn summary(g: &Glmm, fit: &GlmmFit, bw: Option<&[f64]>) -> String {
    let mut s = String::new();
    let how = if g.nagq == 1 {
        "Laplace approximation".to_string()
    } else {
        format!("adaptive Gauss-Hermite quadrature, nAGQ = {}", g.nagq)
    };
    let _ = writeln!(
        s,
        "Generalized linear mixed model fit by maximum likelihood ({how})"
    );
    let _ = writeln!(s, " Family: {} ( {} )", g.family.name(), g.link.name());
    let _ = writeln!(s, "Formula: {}\n", g.model.formula.text);
    let _ = writeln!(
        s,
        "     AIC      BIC   logLik deviance\n{:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        fit.aic(),
        fit.bic(),
        -0.5 * fit.deviance,
        fit.deviance
    );
    crate::lmm::report::random_effects_table(&mut s, &g.model, &as_lmm(fit), false);
    let _ = writeln!(s);
    let bw_head = if bw.is_some() {
        "   BW df   Pr(>|t|)"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "Fixed effects:\n                      Estimate  Std. Error  z value   Pr(>|z|){bw_head}"
    );
    for j in 0..fit.beta.len() {
        let (est, se) = (fit.beta[j], fit.se(j));
        let pv = p_t(est / se, f64::INFINITY);
        let extra = bw.map_or(String::new(), |d| {
            format!(
                " {:>7.1} {:>10}",
                d[j],
                crate::lmm::report::fmt_p(p_t(est / se, d[j]))
            )
        });
        let _ = writeln!(
            s,
            " {:<20} {:>9.5} {:>11.5} {:>8.3} {:>10}{extra}",
            fit.names[j],
            est,
            se,
            est / se,
            crate::lmm::report::fmt_p(pv)
        );
    }
    if fit.singular {
        let _ = writeln!(
            s,
            "\nnote: the fit is singular (a random-effect SD is at or near 0)"
        );
    }
    if !fit.optimizer.converged {
        let _ = writeln!(
            s,
            "warning: the optimiser did not meet its convergence test (largest gradient {:.2e})",
            fit.optimizer.grad
        );
    }
    s
}
