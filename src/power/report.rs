//! A power run's summary as JSON and as a readable ADEMP table.

use super::{store, PowerStudy, Summary};
use crate::analysis::{Analysis, Estimand};
use crate::error::Result;
use serde_json::{json, Value};
use std::path::Path;

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

/// A readable ADEMP report.
pub fn summary_table(study: &PowerStudy, s: &Summary) -> String {
    summary_table_for(study, s, (1, 1))
}

/// The ADEMP report of shard `(i, n)` of a run: with n > 1 it says it is
/// partial, and leaves judging the type-I error to the merged run.
pub fn summary_table_for(study: &PowerStudy, s: &Summary, shard: (u64, u64)) -> String {
    use std::fmt::Write as _;
    let c = &study.config;
    let mut t = String::new();
    let partial = shard.1 > 1;
    if partial {
        let _ = writeln!(
            t,
            "PARTIAL: shard {}/{} only (replicates r with r mod {} = {}); merge the shards with `crtsim merge DIR...` for the run's summary. Type-I and analytic comparisons are left to the merged run.",
            shard.0,
            shard.1,
            shard.1,
            shard.0 - 1
        );
    }
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
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    let design = match study.simulator().design().stepped_wedge() {
        Some(sw) => format!(
            "stepped wedge, {} clusters in {} sequences over {} periods ({} sampling), cluster size {}",
            c.clusters.teams,
            sw.matrix.len(),
            sw.periods,
            if sw.is_cohort() { "closed-cohort" } else { "cross-sectional" },
            crate::labels::size_label(c)
        ),
        None => format!(
            "parallel, {} teams ({} treated), team size {}, icc_staff {}",
            c.clusters.teams,
            c.clusters
                .treated
                .map(|v| v.to_string())
                .unwrap_or_else(|| "allocated by chance".into()),
            crate::labels::size_label(c),
            c.outcome.icc_staff
        ),
    };
    let mech = match c.attrition.mechanism {
        crate::config::Mechanism::Mcar => "mcar",
        crate::config::Mechanism::Mar => "mar",
    };
    let outcome = match study.simulator().link_scale() {
        Some(ls) => {
            let r = crate::labels::round_sig;
            let o = &c.outcome;
            let between = match (ls.family, o.k) {
                (crate::glmm::Family::Binomial, None) => format!("latent icc {}", r(o.icc)),
                _ => format!("k {}", r(ls.k())),
            };
            format!(
                "{} outcome, control-arm mean {} (marginal), {between}, cluster SD {:.4} and effect {:.4} on the link scale{}, cac {}",
                if ls.family == crate::glmm::Family::Binomial { "binary" } else { "count" },
                r(study.simulator().control_mean()),
                ls.sd_cluster,
                ls.effect,
                if ls.overdispersion > 0.0 {
                    format!(", overdispersion {}", r(ls.overdispersion))
                } else {
                    String::new()
                },
                opt(o.cac)
            )
        }
        None => format!(
            "{}icc {}, cac {}, iac {}, sd {}",
            c.outcome
                .threshold
                .map(|t| format!("score dichotomised at >= {t}, "))
                .unwrap_or_default(),
            c.outcome.icc,
            opt(c.outcome.cac),
            opt(c.outcome.iac),
            c.outcome.sd
        ),
    };
    let _ = writeln!(
        t,
        "Data-generating mechanism: {design}; {outcome}, attrition {} ({mech}); replicate r uses random stream (seed, r); config hash {}",
        c.attrition.rate,
        study.config_id
    );
    if study.simulator().family().is_some() {
        // Each analysis has its own estimand: list every one in the run.
        let (ratio, diff) = match study.simulator().family() {
            Some(crate::glmm::Family::Poisson) => ("rate ratio", "rate difference"),
            _ => ("odds ratio", "risk difference"),
        };
        let mut parts: Vec<String> = Vec::new();
        for (e, words) in [
            (Estimand::Itt, diff.to_string()),
            (
                Estimand::Conditional,
                format!("conditional (cluster-specific) log {ratio}"),
            ),
            (
                Estimand::Marginal,
                format!("marginal (population-averaged) log {ratio}"),
            ),
        ] {
            let rows: Vec<&crate::power::AnalysisSummary> = s
                .rows
                .iter()
                .filter(|r| r.analysis.estimand() == e)
                .collect();
            if let Some(first) = rows.first() {
                let v = first.true_value;
                parts.push(format!(
                    "{words} {} ({})",
                    if v.is_finite() {
                        format!("{v:.4}")
                    } else {
                        "not defined".into()
                    },
                    rows.iter()
                        .map(|r| r.analysis.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        let _ = writeln!(
            t,
            "Estimands (bias and coverage against each analysis's own; all 0 under the null): {}",
            parts.join("; ")
        );
    } else {
        let _ = writeln!(
            t,
            "Estimand: ITT difference in mean outcome on the reported scale, true value {} (0 under the null)",
            crate::labels::round_sig(s.true_effect)
        );
    }
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
                if e.n == 0 {
                    "every one"
                } else if r.analysis.is_glmm() {
                    "PIRLS or GEE divergence, separation, a singular GEE system, or no valid df"
                } else {
                    "too few rows, a non-identifiable variance, or no valid df"
                },
                e.n
            );
        }
        if partial {
            continue;
        }
        if e.departs_from_analytic(r.analytic) {
            let why = analytic_gap_reason(study, r);
            let _ = writeln!(t, "note: {name}: Monte Carlo power differs from analytic by more than 2.5 MC SE: {why}");
        }
        if let Some(p) = nl {
            if p.type_one_departure(s.alpha) != std::cmp::Ordering::Equal {
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

/// Why an analysis' Monte Carlo power may differ from its analytic power
/// (the table's note and the HTML report's).
pub fn analytic_gap_reason(study: &PowerStudy, r: &crate::power::AnalysisSummary) -> String {
    let e = &r.effect;
    if study.simulator().family().is_some() {
        // Whether the test's own SE over- or understates the spread of
        // its estimates says which way the small-sample behaviour goes.
        let ratio = e.mean_model_se / e.empirical_se;
        let se = if ratio > 1.02 {
            format!(
                "its SE overstates the spread of its estimates (mean {:.3} against an empirical {:.3}), so with {} clusters the test is conservative and loses power",
                e.mean_model_se,
                e.empirical_se,
                study.simulator().design().teams()
            )
        } else if ratio < 0.98 {
            format!(
                "its SE understates the spread of its estimates (mean {:.3} against an empirical {:.3}: {} of {} fits singular), so with {} clusters the test rejects too often",
                e.mean_model_se,
                e.empirical_se,
                e.n_singular,
                e.n,
                study.simulator().design().teams()
            )
        } else {
            format!(
                "with {} clusters the asymptotics are not yet reached ({} of {} fits singular)",
                study.simulator().design().teams(),
                e.n_singular,
                e.n
            )
        };
        format!(
            "the closed form linearises the outcome on its own scale (a design effect on proportions or rates, for the {} difference in means) with known variance components; {se}",
            if study.simulator().family() == Some(crate::glmm::Family::Poisson) { "rate" } else { "risk" },
        )
    } else if r.analysis == Analysis::ClusterT {
        "the closed form is the LMM's; the cluster-level test weights teams equally, which loses efficiency when team sizes vary".to_string()
    } else if study.simulator().adherence().is_active() {
        "varying participation makes the effect vary between treated teams, adding between-team variance the closed form ignores".to_string()
    } else if study.simulator().is_stepped_wedge() {
        format!(
            "the exact GLS power assumes known variance components; estimating them from {} clusters ({} of {} fits singular) changes the test's size and power (Kackar-Harville), and a bounded outcome scale is not Gaussian",
            study.simulator().design().teams(),
            e.n_singular,
            e.n
        )
    } else {
        format!(
            "the closed form assumes many clusters, known variance components and the design effect's approximation of variable sizes ({} of {} fits singular)",
            e.n_singular, e.n
        )
    }
}
