//! Printing a fitted model: lme4-style summary text and the JSON schema of
//! the reference fits (`tests/data/lme4/fits/*.json`).

use super::inference::{CoefTests, Lrt};
use super::{Fit, Model};
use serde_json::{json, Map, Value};
use std::fmt::Write;

fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// The Wald intervals a report shows: the df method and the level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intervals {
    pub method: super::inference::DfMethod,
    pub level: f64,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            method: super::inference::DfMethod::Satterthwaite,
            level: 0.95,
        }
    }
}

/// The fit as JSON, in the reference schema: the df, SE and p of each
/// method `tests` computed (the others are left out), and the Wald
/// interval of `ci`.
pub fn to_json(
    model: &Model,
    fit: &Fit,
    tests: &CoefTests,
    lrt: Option<(&str, &Lrt)>,
    ci: Intervals,
) -> Value {
    let p = fit.beta.len();
    let fixed: Vec<Value> = (0..p)
        .map(|j| {
            let se = fit.se(j);
            let mut o = Map::new();
            o.insert("term".into(), json!(fit.names[j]));
            o.insert("estimate".into(), num(fit.beta[j]));
            o.insert("se".into(), num(se));
            o.insert("t".into(), num(fit.beta[j] / se));
            let mut put = |k: &str, v: &[f64]| {
                if let Some(&x) = v.get(j) {
                    o.insert(k.into(), num(x));
                }
            };
            put("df_satterthwaite", &tests.df_satterthwaite);
            put("p_satterthwaite", &tests.p_satterthwaite);
            put("df_kenward_roger", &tests.df_kenward_roger);
            put("se_kenward_roger", &tests.se_kenward_roger);
            put("p_kenward_roger", &tests.p_kenward_roger);
            put("df_between_within", &tests.df_between_within);
            put("p_between_within", &tests.p_between_within);
            o.insert("df_residual".into(), num(tests.df_residual));
            o.insert("p_z".into(), num(tests.p_z[j]));
            let (lo, hi) = tests.wald_interval(fit, ci.method, j, ci.level);
            o.insert("ci_lower".into(), num(lo));
            o.insert("ci_upper".into(), num(hi));
            o.insert("ci_level".into(), json!(ci.level));
            o.insert("ci_df".into(), json!(ci.method.name()));
            Value::Object(o)
        })
        .collect();
    let vcov: Vec<Vec<Value>> = (0..p)
        .map(|a| (0..p).map(|b| num(fit.vcov[a * p + b])).collect())
        .collect();
    let random: Vec<Value> = model
        .varcorr(fit)
        .into_iter()
        .map(|v| {
            json!({"group": v.group, "term1": v.term1, "term2": v.term2,
                   "vcov": num(v.vcov), "sdcor": num(v.sdcor)})
        })
        .collect();
    let mut groups = Map::new();
    for (g, n) in model.n_groups() {
        groups.insert(g, json!(n));
    }
    let mut ranef = Map::new();
    for (g, _, levels) in model.ranef(fit) {
        let mut m = Map::new();
        for (l, v) in levels {
            m.insert(l, if v.len() == 1 { num(v[0]) } else { json!(v) });
        }
        ranef.insert(g, Value::Object(m));
    }
    let mut out = json!({
        "formula": model.formula.text,
        "reml": fit.reml,
        "n_obs": fit.n,
        "n_dropped_missing": model.frame.n_missing,
        "n_groups": groups,
        "fixed": fixed,
        "vcov_fixed": vcov,
        "random": random,
        "theta": fit.theta,
        "objective": num(fit.objective),
        "loglik": num(fit.loglik()),
        "df_model": fit.df_model,
        "aic": num(fit.aic()),
        "bic": num(fit.bic()),
        "sigma": num(fit.sigma),
        "singular": fit.singular,
        "dropped_columns": model.frame.dropped,
        "optimizer": {"converged": fit.optimizer.converged, "gradient": num(fit.optimizer.grad),
                      "evaluations": fit.optimizer.evals, "method": fit.optimizer.message()},
        "notes": model.frame.notes().into_iter().chain(tests.notes.iter().cloned()).collect::<Vec<_>>(),
        "ranef": ranef,
    });
    if let Some((null_formula, l)) = lrt {
        out["lrt"] = json!({"null_formula": null_formula, "chisq": num(l.chisq), "df": num(l.df), "p": num(l.p)});
    }
    out
}

/// The Type III F tests as lmerTest prints them.
pub fn anova_table(rows: &[super::anova::AnovaRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nType III Analysis of Variance Table with Satterthwaite's method:"
    );
    let _ = writeln!(
        s,
        " {:<24} {:>6} {:>9} {:>9} {:>10}",
        "", "NumDF", "DenDF", "F value", "Pr(>F)"
    );
    for r in rows {
        let _ = writeln!(
            s,
            " {:<24} {:>6} {:>9} {:>9} {:>10}",
            r.term,
            r.num_df,
            fmt_num(r.den_df, 3),
            fmt_num(r.f, 4),
            fmt_p(r.p)
        );
    }
    if rows.is_empty() {
        let _ = writeln!(s, " (no fixed-effect terms besides the intercept)");
    }
    for r in rows {
        if let Some(why) = &r.not_tested {
            let _ = writeln!(s, "note: {why}");
        }
    }
    s
}

/// The Type III F tests as JSON rows.
pub fn anova_json(rows: &[super::anova::AnovaRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({"term": r.term, "num_df": r.num_df, "den_df": num(r.den_df),
                       "f": num(r.f), "p": num(r.p), "not_tested": r.not_tested})
            })
            .collect(),
    )
}

/// Profile-likelihood intervals as a table.
pub fn profile_table(rows: &[super::profile::ProfileInterval], level: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nProfile-likelihood {}% intervals (ML deviance, as lme4's confint(method = \"profile\")):",
        (100.0 * level * 1e6).round() / 1e6
    );
    let _ = writeln!(
        s,
        " {:<36} {:>12} {:>12} {:>12}",
        "", "ML estimate", "lower", "upper"
    );
    for r in rows {
        let _ = writeln!(
            s,
            " {:<36} {:>12} {:>12} {:>12}",
            r.name,
            fmt_num(r.estimate, 6),
            fmt_num(r.lower, 6),
            fmt_num(r.upper, 6)
        );
    }
    s
}

/// Profile-likelihood intervals as JSON.
pub fn profile_json(rows: &[super::profile::ProfileInterval], level: f64) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({"name": r.name, "estimate": num(r.estimate), "lower": num(r.lower),
                       "upper": num(r.upper), "level": level})
            })
            .collect(),
    )
}

/// A p-value as lme4 prints it (`<2e-16`, scientific below 1e-4).
pub fn fmt_p(p: f64) -> String {
    if p.is_nan() {
        "NA".into()
    } else if p < 2e-16 {
        "<2e-16".into()
    } else if p < 1e-4 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

/// The random-effects table (variances, SDs, correlations; the residual
/// row when `residual`) and the observation and group counts, as lme4
/// prints them.
pub fn random_effects_table(s: &mut String, model: &Model, fit: &Fit, residual: bool) {
    let _ = writeln!(s, "\nRandom effects:");
    let _ = writeln!(
        s,
        " {:<14} {:<12} {:>12} {:>10} {:>6}",
        "Groups", "Name", "Variance", "Std.Dev.", "Corr"
    );
    let vc: Vec<_> = model
        .varcorr(fit)
        .into_iter()
        .filter(|v| residual || v.group != "Residual")
        .collect();
    for v in vc.iter().filter(|v| v.term2.is_none()) {
        let name = v.term1.clone().unwrap_or_default();
        let corr: Vec<String> = vc
            .iter()
            .filter(|c| {
                v.term1.is_some() && c.group == v.group && c.term2.as_ref() == v.term1.as_ref()
            })
            .map(|c| format!("{:.3}", c.sdcor))
            .collect();
        let _ = writeln!(
            s,
            " {:<14} {:<12} {:>12} {:>10} {:>6}",
            v.group,
            name,
            fmt_num(v.vcov, 4),
            fmt_num(v.sdcor, 4),
            corr.join(" ")
        );
    }
    let groups: Vec<String> = model
        .n_groups()
        .iter()
        .map(|(g, n)| format!("{g}, {n}"))
        .collect();
    let _ = writeln!(
        s,
        "Number of obs: {}, groups:  {}",
        fit.n,
        groups.join("; ")
    );
}

/// A readable summary in lme4's layout.
pub fn summary(
    model: &Model,
    fit: &Fit,
    tests: &CoefTests,
    ci: Intervals,
    lrt: Option<(&str, &Lrt)>,
) -> String {
    use super::inference::DfMethod::*;
    let df = ci.method;
    let mut s = String::new();
    let method = if fit.reml {
        "REML"
    } else {
        "maximum likelihood"
    };
    let _ = writeln!(s, "Linear mixed model fit by {method}");
    let _ = writeln!(s, "Formula: {}", model.formula.text);
    if model.frame.n_missing > 0 {
        let _ = writeln!(
            s,
            "({} rows dropped for missing values)",
            model.frame.n_missing
        );
    }
    let crit = if fit.reml {
        "REML criterion"
    } else {
        "deviance"
    };
    let _ = writeln!(
        s,
        "{crit} at convergence: {}   logLik {}   AIC {}   BIC {}",
        fmt_num(fit.objective, 4),
        fmt_num(fit.loglik(), 4),
        fmt_num(fit.aic(), 4),
        fmt_num(fit.bic(), 4)
    );
    random_effects_table(&mut s, model, fit, true);
    let label = match df {
        Satterthwaite => "Satterthwaite",
        KenwardRoger => "Kenward-Roger",
        BetweenWithin => "between-within",
        Residual => "residual (n - p)",
        Z => "z (Wald, infinite)",
    };
    let pct = format!("{}%", 100.0 * ci.level);
    let _ = writeln!(
        s,
        "\nFixed effects (df: {label}; Wald {pct} intervals on these df):"
    );
    let _ = writeln!(
        s,
        " {:<16} {:>12} {:>11} {:>9} {:>8} {:>10} {:>11} {:>11}",
        "", "Estimate", "Std. Error", "df", "t value", "Pr(>|t|)", "lower", "upper"
    );
    for j in 0..fit.beta.len() {
        let (se, d, p) = tests.test(fit, df, j);
        let (lo, hi) = tests.wald_interval(fit, df, j, ci.level);
        let _ = writeln!(
            s,
            " {:<16} {:>12} {:>11} {:>9} {:>8} {:>10} {:>11} {:>11}",
            fit.names[j],
            fmt_num(fit.beta[j], 5),
            fmt_num(se, 5),
            if d == f64::INFINITY {
                "Inf".to_string()
            } else {
                fmt_num(d, 2)
            },
            fmt_num(fit.beta[j] / se, 3),
            fmt_p(p),
            fmt_num(lo, 5),
            fmt_num(hi, 5)
        );
    }
    let _ = writeln!(s, "Residual SD (sigma): {}", fmt_num(fit.sigma, 5));
    for note in model.frame.notes() {
        let _ = writeln!(s, "note: {note}");
    }
    if !model.frame.dropped.is_empty() {
        let _ = writeln!(
            s,
            "fixed-effect model matrix is rank deficient so dropping {} column(s): {}",
            model.frame.dropped.len(),
            model.frame.dropped.join(", ")
        );
    }
    if fit.singular {
        let _ = writeln!(
            s,
            "boundary (singular) fit: a variance component is at or near zero (theta = {:?})",
            fit.theta
        );
    }
    if !fit.optimizer.converged {
        let _ = writeln!(
            s,
            "warning: the optimiser did not meet its convergence test (largest gradient {})",
            if fit.optimizer.grad.is_finite() {
                format!("{:.2e}", fit.optimizer.grad)
            } else {
                "not finite: the criterion is not finite near the optimum".to_string()
            }
        );
    }
    for note in &tests.notes {
        let _ = writeln!(s, "note: {note}");
    }
    if let Some((null, l)) = lrt {
        let _ = writeln!(
            s,
            "\nLikelihood-ratio test against {null}: Chisq = {:.4}, df = {}, p = {}",
            l.chisq,
            l.df,
            fmt_p(l.p)
        );
    }
    s
}

/// A number with `prec` decimals, or in scientific notation when that would
/// print more than 10 digits before the point or hide it in zeros.
fn fmt_num(x: f64, prec: usize) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "NA".to_string()
    } else if x != 0.0 && !(1e-4..1e10).contains(&a) {
        format!("{x:.prec$e}")
    } else {
        format!("{x:.prec$}")
    }
}
