//! Human-readable summaries printed by the command line.

use crate::analytic::parallel_summary;
use crate::config::{Allocation, Config, Measure, SizeKind, StaffSpec};
use crate::design::{Design, SteppedWedgeDesign};
use std::fmt::Write;

/// The resolved design as `crtsim validate` prints it.
pub fn design_report(cfg: &Config, design: &Design) -> String {
    if let Some(sw) = design.stepped_wedge() {
        return sw_report(cfg, design, sw);
    }
    let mut s = String::new();
    let c = &cfg.clusters;
    let o = &cfg.outcome;
    let a = &cfg.attrition;
    let alloc = match c.allocation {
        Allocation::Simple => "simple",
        Allocation::Stratified => "stratified by site",
    };
    let _ = writeln!(
        s,
        "{}: parallel cluster-randomised trial, {} teams in {} site(s), {} allocation",
        cfg.trial.name,
        design.teams(),
        design.site_names.len(),
        alloc
    );
    let w = design
        .site_names
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "  {:<w$}  {:>5}  {:>7}  {:>7}",
        "site", "teams", "treated", "control"
    );
    for (i, name) in design.site_names.iter().enumerate() {
        let n = design.site_teams[i];
        match &design.treated_per_site {
            Some(t) => {
                let _ = writeln!(s, "  {:<w$}  {:>5}  {:>7}  {:>7}", name, n, t[i], n - t[i]);
            }
            None => {
                let _ = writeln!(
                    s,
                    "  {:<w$}  {:>5}  {:>7}  {:>7}",
                    name, n, "random", "random"
                );
            }
        }
    }
    let summary = parallel_summary(cfg, design);
    let _ = writeln!(
        s,
        "  {:<w$}  {:>5}  {:>7}  {:>7}",
        "all",
        design.teams(),
        summary.k_treated,
        summary.k_control
    );
    let sz = &c.size;
    let dist = match sz.dist {
        SizeKind::Fixed => format!("fixed {}", sz.mean),
        SizeKind::Poisson => format!("poisson(mean {})", sz.mean),
        SizeKind::Negbin => format!("negbin(mean {}, cv {})", sz.mean, sz.cv.unwrap_or(0.0)),
        SizeKind::Given => format!(
            "given per cluster{}",
            if sz.per_cluster_period.is_some() {
                " and period"
            } else {
                ""
            }
        ),
    };
    let _ = writeln!(
        s,
        "team size: {dist}, min {} -> mean {:.2} service users per team",
        sz.min, summary.mean_size
    );
    let staff = match c.staff_per_team {
        StaffSpec::Fixed(n) => n.to_string(),
        StaffSpec::Range { min, max } => format!("{min} to {max} (uniform)"),
    };
    let _ = writeln!(s, "staff per team: {staff}");
    let mech = match a.mechanism {
        crate::config::Mechanism::Mcar => "mcar".to_string(),
        crate::config::Mechanism::Mar => format!("mar, slope {} per SD of baseline", a.slope),
    };
    let _ = writeln!(
        s,
        "expected n: {:.1} at baseline, {:.1} at follow-up (attrition {}, {mech})",
        summary.n_baseline, summary.n_followup, a.rate
    );
    if discrete_lines(cfg, design, &mut s, "analytic power", "between-cluster df") {
        return s;
    }
    let measure = match o.measure {
        Measure::Qpr15 => "qpr15 (total 0-60)",
        Measure::Qpr15Items => "qpr15_items (15 items 0-4, summed)",
        Measure::Continuous => "continuous",
        Measure::Binary | Measure::Count => unreachable!("reported by discrete_lines"),
    };
    let _ = write!(
        s,
        "outcome: {measure}, mean {}, sd {}, icc {}, icc_staff {}",
        o.mean, o.sd, o.icc, o.icc_staff
    );
    if o.baseline {
        let _ = write!(
            s,
            ", baseline with cac {}, iac {}",
            o.cac.unwrap_or(0.0),
            o.iac.unwrap_or(0.0)
        );
    }
    let _ = writeln!(s);
    let itt = adherence_lines(cfg, design, &mut s);
    let _ = writeln!(
        s,
        "analytic: design effect {:.3} (m = {:.2} analysed per team, cv {:.2}), baseline-follow-up team-mean correlation r = {:.3}",
        summary.design_effect, summary.m_followup, summary.cv_followup, summary.r_cluster
    );
    let _ = writeln!(
        s,
        "analytic SE of the difference: {:.3} unadjusted, {:.3} baseline-adjusted (95% CI half-width {:.2})",
        summary.se_unadjusted,
        summary.se_ancova,
        1.959_964 * summary.se_ancova
    );
    let formula = cfg.analysis_formula();
    let what = if crate::analytic::adjusts_for_baseline(cfg, &formula) {
        "baseline-adjusted analysis"
    } else {
        "unadjusted analysis"
    };
    analytic_power_line(
        cfg,
        design,
        itt,
        &mut s,
        "analytic power",
        what,
        "between-cluster df",
    );
    s
}

/// The analytic power at the reported-scale ITT effect, z and small-sample t.
fn analytic_power_line(
    cfg: &Config,
    design: &Design,
    itt: Option<f64>,
    s: &mut String,
    name: &str,
    what: &str,
    df: &str,
) {
    let Some(itt) = itt else {
        return;
    };
    let formula = cfg.analysis_formula();
    let at = |normal| crate::analytic::power_for(cfg, design, cfg.alpha(), normal, &formula, itt);
    let _ = writeln!(
        s,
        "{name} at alpha {} to detect the ITT effect {} ({what}): {:.3} with a z test, {:.3} with a t test on the {df}",
        cfg.alpha(),
        crate::labels::round_sig(itt),
        at(true),
        at(false)
    );
}

/// The adherence model (if any) and the ITT effect it implies; returns
/// that effect on the reported scale (computed once: on the QPR scale with
/// confounding it is a numerical integral).
fn adherence_lines(cfg: &Config, design: &Design, s: &mut String) -> Option<f64> {
    let d = cfg.effect.difference;
    let adh = crate::adherence::AdherenceModel::new(cfg.adherence.as_ref());
    let eg = adh.mean_g(design.teams());
    if adh.is_active() {
        let (m, v) = adh.team_moments(design.teams());
        let _ = writeln!(
            s,
            "adherence: team participation mean {m:.3} (sd {:.3}), confounding {}, dose-response {}; E[g(a)] = {eg:.4}",
            v.sqrt(),
            adh.confounding,
            match adh.dose() {
                crate::adherence::Dose::Linear => "linear".to_string(),
                crate::adherence::Dose::Threshold(t) => format!("threshold at {t}"),
                crate::adherence::Dose::Emax(e) => format!("Emax with EC50 {e}"),
            }
        );
    }
    let _ = writeln!(
        s,
        "effect: {d} points at full adherence; implied ITT effect delta * E[g(a)] = {:.4}",
        d * eg
    );
    let itt = crate::simulate::Simulator::new(cfg.clone())
        .ok()
        .map(|sim| sim.itt_effect());
    if let (Some(itt), true) = (
        itt,
        cfg.outcome.measure != crate::config::Measure::Continuous,
    ) {
        let _ = writeln!(
            s,
            "on the bounded QPR-15 scale that is a difference in mean reported scores of {itt:.4} (the estimand power studies use)"
        );
    }
    itt
}

fn sw_report(cfg: &Config, design: &Design, sw: &SteppedWedgeDesign) -> String {
    let mut s = String::new();
    let m = &sw.matrix;
    let split = crate::design::even_split(cfg.clusters.teams, m.len());
    let _ = writeln!(
        s,
        "{}: stepped-wedge trial, {} clusters in {} sequences over {} periods; {} sampling; transition periods: {}",
        cfg.trial.name,
        design.teams(),
        m.len(),
        m[0].len(),
        crate::labels::sampling_label(sw.sampling),
        crate::labels::transition_label(sw.transition)
    );
    for (q, row) in m.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        let _ = writeln!(
            s,
            "  sequence {}: [{}] x {} clusters",
            q + 1,
            cells.join(", "),
            split[q]
        );
    }
    for w in sw.warnings() {
        let _ = writeln!(s, "warning: {w}");
    }
    let o = &cfg.outcome;
    if discrete_lines(
        cfg,
        design,
        &mut s,
        "analytic GLS power",
        "between-within df",
    ) {
        return s;
    }
    let _ = writeln!(
        s,
        "outcome: mean {}, sd {}, icc {}, cac {} (cluster variance icc*cac*sd^2, cluster-period variance icc*(1-cac)*sd^2){}",
        o.mean,
        o.sd,
        o.icc,
        o.cac.map_or("-".to_string(), |c| c.to_string()),
        match (sw.sampling, o.iac) {
            (crate::config::Sampling::Cohort, Some(i)) => format!(", iac {i}"),
            _ => String::new(),
        }
    );
    let (mbar, _) = crate::design::size_moments(&cfg.clusters.size);
    let periods = m[0].len() as f64;
    let k = design.teams() as f64;
    let keep = 1.0 - cfg.attrition.rate;
    let attrition = if cfg.attrition.rate > 0.0 {
        format!(
            " after {}% attrition",
            crate::labels::round_sig(100.0 * cfg.attrition.rate)
        )
    } else {
        " (no attrition)".to_string()
    };
    let _ = if sw.is_cohort() {
        writeln!(
            s,
            "expected n: {} people in the cohorts ({} per cluster, cluster size {}), {} observations over {} periods, {} analysed{}",
            crate::labels::round_sig((k * mbar).round()),
            crate::labels::round_sig(mbar),
            crate::labels::size_label(cfg),
            crate::labels::round_sig((k * mbar * periods).round()),
            periods,
            crate::labels::round_sig((k * mbar * periods * keep).round()),
            attrition
        )
    } else {
        writeln!(
            s,
            "expected n: {} participants in total ({} per cluster-period, cluster size {}; {} clusters x {} periods), {} analysed{}",
            crate::labels::round_sig((k * mbar * periods).round()),
            crate::labels::round_sig(mbar),
            crate::labels::size_label(cfg),
            k,
            periods,
            crate::labels::round_sig((k * mbar * periods * keep).round()),
            attrition
        )
    };
    if !sw.lag.is_empty() {
        let (_, kappa) = crate::analytic::sw_config_gls(cfg, design, sw);
        let _ = writeln!(
            s,
            "implementation lag: {} of the effect in the first exposed periods; an analysis that ignores it estimates {kappa:.3} x delta (GLS)",
            sw.lag.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let itt = adherence_lines(cfg, design, &mut s);
    analytic_power_line(
        cfg,
        design,
        itt,
        &mut s,
        "analytic GLS power",
        "nested exchangeable",
        "between-within df",
    );
    s
}

/// A binary or count outcome (or a dichotomised score): its parameters on
/// the link and outcome scales, both true effects, and the analytic power
/// of the linearised design. False (nothing written) for scores.
fn discrete_lines(cfg: &Config, design: &Design, s: &mut String, name: &str, df: &str) -> bool {
    let o = &cfg.outcome;
    if !o.measure.is_discrete() && o.threshold.is_none() {
        return false;
    }
    let Ok(sim) = crate::simulate::Simulator::new(cfg.clone()) else {
        return true;
    };
    let Some(lin) = sim.linearised_config() else {
        return true;
    };
    let r = crate::labels::round_sig;
    let p0 = sim.control_mean();
    let itt = sim.itt_effect();
    let lo = &lin.outcome;
    let cac = if design.stepped_wedge().is_some() {
        format!(", cac {}", o.cac.unwrap_or(1.0))
    } else {
        String::new()
    };
    match (o.measure, sim.link_scale()) {
        (Measure::Binary, Some(ls)) => {
            let _ = writeln!(
                s,
                "outcome: binary, control-arm prevalence {} (marginal over clusters); latent ICC {:.4} (logit scale, residual variance pi^2/3), k {:.4}, ICC on the proportion scale {:.4}{cac}",
                r(p0),
                ls.latent_icc(),
                ls.k(),
                lo.icc
            );
            let _ = writeln!(
                s,
                "  link scale: intercept {:.4}, cluster SD {:.4}, staff SD {:.4}",
                ls.intercept, ls.sd_cluster, ls.sd_staff
            );
        }
        (Measure::Count, Some(ls)) => {
            let od = if ls.overdispersion > 0.0 {
                format!(
                    ", overdispersion {} ({:?})",
                    r(ls.overdispersion),
                    o.overdispersion_dist
                )
                .to_lowercase()
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "outcome: count, control-arm rate {} per person (marginal over clusters); k {:.4} (cluster SD {:.4} on the log scale){od}, ICC on the count scale {:.4}{cac}",
                r(p0),
                ls.k(),
                ls.sd_cluster,
                lo.icc
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "outcome: {} dichotomised at >= {} (mean {}, sd {}, icc {} on the score); control-arm prevalence {:.4}, ICC on the proportion scale {:.4}{cac}",
                crate::labels::measure_label(o.measure),
                r(o.threshold.unwrap_or(f64::NAN)),
                o.mean,
                o.sd,
                o.icc,
                p0,
                lo.icc
            );
        }
    }
    let eg = sim.adherence().mean_g(design.teams());
    let (what, ratio) = match sim.family() {
        Some(crate::glmm::Family::Poisson) => ("rate difference", "rate ratio"),
        _ => ("risk difference", "odds ratio"),
    };
    let e = &cfg.effect;
    let given = match (
        e.odds_ratio,
        e.risk_difference,
        e.treated_prevalence,
        e.rate_ratio,
    ) {
        (Some(v), ..) => format!("odds ratio {}", r(v)),
        (_, Some(v), ..) => format!("risk difference {}", r(v)),
        (_, _, Some(v), _) => format!("treated-arm prevalence {}", r(v)),
        (.., Some(v)) => format!("rate ratio {}", r(v)),
        _ if o.threshold.is_some() => format!("{} points on the score", r(e.difference)),
        _ => "none".to_string(),
    };
    let _ = writeln!(s, "effect: {given} at full adherence; E[g(a)] = {eg:.4}");
    if let Some((cond, marg)) = sim.log_ratios() {
        let cond = if cond.is_nan() {
            "not defined (the score's cut has no cluster-specific odds ratio)".to_string()
        } else {
            format!("log {ratio} {cond:.4} ({ratio} {:.4})", cond.exp())
        };
        let _ = writeln!(
            s,
            "true values: conditional (cluster-specific, glmm_*) {cond}; marginal (population-averaged, gee_*) log {ratio} {marg:.4} ({ratio} {:.4}); {what} (cluster_t, lmm_*) {itt:.4} ({} vs {})",
            marg.exp(),
            r(p0 + itt),
            r(p0)
        );
    }
    let formula = lin.analysis_formula();
    let at = |normal| crate::analytic::power_for(&lin, design, cfg.alpha(), normal, &formula, itt);
    let how = if design.stepped_wedge().is_some() {
        format!("ICC {:.4}, cac {}", lo.icc, lo.cac.unwrap_or(1.0))
    } else {
        format!(
            "design effect {:.3}, ICC {:.4}",
            parallel_summary(&lin, design).design_effect,
            lo.icc
        )
    };
    let _ = writeln!(
        s,
        "{name} at alpha {} (linearised on the outcome scale: {how}; the {what} {:.4}): {:.3} with a z test, {:.3} with a t test on the {df}",
        cfg.alpha(),
        itt,
        at(true),
        at(false)
    );
    true
}
