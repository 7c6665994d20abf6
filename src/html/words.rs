//! The report's sentences and tables: the recommended analysis, the design
//! in words, the assumptions and their sources, the performance tables
//! with their flags, and the protocol paragraph. Every number comes from
//! the run.

use super::figures::{self, Curve, GridCell, Points};
use super::{escape, is_sw, pct};
use crate::analysis::{Analysis, Estimand, LmmDf};
use crate::config::{Allocation, Config, Sampling};
use crate::labels::{key_label, measure_label, round_sig, sampling_label, size_label};
use crate::power::Performance;
use crate::power::{PowerStudy, Summary};
use crate::sweep::{PointResult, Solution};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Order of preference among analyses that hold their size equally well.
/// Binary and count outcomes: the GLMM on between-within df, then the
/// Kauermann–Carroll GEE, ahead of the cluster-level test.
const PREFERENCE: [Analysis; 10] = [
    Analysis::Lmm(LmmDf::Satterthwaite),
    Analysis::Lmm(LmmDf::KenwardRoger),
    Analysis::Lmm(LmmDf::BetweenWithin),
    Analysis::Glmm(crate::analysis::GlmmAnalysis::BetweenWithin),
    Analysis::Glmm(crate::analysis::GlmmAnalysis::GeeKc),
    Analysis::ClusterT,
    Analysis::Glmm(crate::analysis::GlmmAnalysis::GeeMd),
    Analysis::Lmm(LmmDf::Z),
    Analysis::Glmm(crate::analysis::GlmmAnalysis::Z),
    Analysis::Lmm(LmmDf::Residual),
];

/// The analyses that test the intervention effect itself (every one but
/// the adherence analyses, which have estimands of their own).
fn tests_effect(a: Analysis) -> bool {
    matches!(
        a.estimand(),
        Estimand::Itt | Estimand::Conditional | Estimand::Marginal
    )
}

/// Whether a type-I error is consistent with alpha or above it (by more
/// than 2 Monte Carlo SEs).
fn holds_size(null: &Performance, alpha: f64) -> bool {
    null.reject.is_finite() && null.type_one_departure(alpha) != std::cmp::Ordering::Greater
}

/// The analysis to recommend for the ITT effect, and why: the first of
/// Satterthwaite, Kenward–Roger, between-within, cluster-level t and Wald z
/// whose simulated type-I error is not above the nominal level by more
/// than 2 MC SE (without a null run, the first of them that was run; if
/// none holds its size, the one that rejects a true null least often).
pub fn recommend(s: &Summary) -> (Analysis, String) {
    let itt: Vec<_> = s.rows.iter().filter(|r| tests_effect(r.analysis)).collect();
    let rank = |a: Analysis| PREFERENCE.iter().position(|&p| p == a).unwrap_or(99);
    if itt.is_empty() {
        let a = s
            .rows
            .first()
            .map_or(Analysis::Lmm(LmmDf::Satterthwaite), |r| r.analysis);
        return (a, "the only analysis run".into());
    }
    let with_null = itt.iter().all(|r| r.null.is_some());
    if !with_null {
        let best = itt
            .iter()
            .min_by_key(|r| rank(r.analysis))
            .expect("non-empty");
        return (
            best.analysis,
            "the type-I error was not simulated (no null run), so the analysis with small-sample degrees of freedom is preferred".into(),
        );
    }
    let valid: Vec<_> = itt
        .iter()
        .filter(|r| holds_size(r.null.as_ref().expect("null"), s.alpha))
        .collect();
    if let Some(best) = valid.iter().min_by_key(|r| rank(r.analysis)) {
        return (
            best.analysis,
            format!(
                "its simulated type-I error is consistent with the nominal {} or below it, and it is the first such analysis in the order {} (small-sample methods first; {} of {} analyses hold their size)",
                pct(s.alpha),
                PREFERENCE
                    .iter()
                    .filter(|a| itt.iter().any(|r| r.analysis == **a))
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                valid.len(),
                itt.len()
            ),
        );
    }
    let best = itt
        .iter()
        .min_by(|a, b| {
            let (na, nb) = (
                a.null.as_ref().expect("null"),
                b.null.as_ref().expect("null"),
            );
            na.reject.total_cmp(&nb.reject)
        })
        .expect("non-empty");
    (
        best.analysis,
        format!(
            "every analysis rejected a true null more often than the nominal {}; this one least often",
            pct(s.alpha)
        ),
    )
}

/// "a difference of 3 points on the QPR-15 total (0-60) (SD 10.1)".
pub fn effect_words(cfg: &Config, s: &Summary) -> String {
    let o = &cfg.outcome;
    if o.measure.is_discrete() || o.threshold.is_some() {
        return discrete_effect_words(cfg, s);
    }
    let mut t = format!(
        "a difference of {} points on {}, SD {}",
        round_sig(s.true_effect),
        measure_label(o.measure),
        round_sig(o.sd)
    );
    if (s.true_effect - cfg.effect.difference).abs() > 1e-9 {
        let _ = write!(
            t,
            " (what a {}-point effect at full adherence becomes on the reported scale)",
            round_sig(cfg.effect.difference)
        );
    }
    t
}

/// A binary or count outcome's effect: the difference in means the
/// power refers to, the arms' means, and the effect as configured.
fn discrete_effect_words(cfg: &Config, s: &Summary) -> String {
    let Ok(sim) = crate::simulate::Simulator::new(cfg.clone()) else {
        return format!("a difference of {}", round_sig(s.true_effect));
    };
    let p0 = sim.control_mean();
    let count = sim.family() == Some(crate::glmm::Family::Poisson);
    let (what, mean) = if count {
        ("rate difference", "mean count")
    } else {
        ("risk difference", "prevalence")
    };
    let e = &cfg.effect;
    let given = match (e.odds_ratio, e.rate_ratio) {
        (Some(v), _) => format!(
            "; a cluster-specific odds ratio of {} at full adherence",
            round_sig(v)
        ),
        (_, Some(v)) => format!("; a rate ratio of {} at full adherence", round_sig(v)),
        _ if cfg.outcome.threshold.is_some() => format!(
            "; a {}-point effect on the score, dichotomised at {} or more",
            round_sig(e.difference),
            round_sig(cfg.outcome.threshold.unwrap_or(f64::NAN))
        ),
        _ => String::new(),
    };
    format!(
        "a {what} of {} ({mean} {} in the control arm, {} in the intervention arm{given})",
        round_sig(s.true_effect),
        round_sig(p0),
        round_sig(p0 + s.true_effect)
    )
}

/// "27 teams of on average 14.9 service users".
pub fn size_words(cfg: &Config) -> String {
    let (m, _) = crate::design::size_moments(&cfg.clusters.size);
    if is_sw(cfg) {
        format!(
            "{} clusters of on average {} participants per period",
            cfg.clusters.teams,
            round_sig(m)
        )
    } else {
        format!(
            "{} teams of on average {} service users",
            cfg.clusters.teams,
            round_sig(m)
        )
    }
}

/// One sentence describing the design.
pub fn design_sentence(cfg: &Config, study: &PowerStudy) -> String {
    let design = study.simulator().design();
    if let Some(sw) = design.stepped_wedge() {
        let split = crate::design::even_split(cfg.clusters.teams, sw.matrix.len());
        let steps = split
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return format!(
            "Stepped wedge: {} clusters randomised to {} sequences ({} clusters each) over {} periods; {} sampling; cluster size {}.",
            cfg.clusters.teams,
            sw.matrix.len(),
            steps,
            sw.periods,
            sampling_label(sw.sampling),
            size_label(cfg)
        );
    }
    let sites = &design.site_names;
    let arms = match cfg.clusters.treated {
        Some(t) => format!("{t} intervention, {} control", cfg.clusters.teams - t),
        None => "about half to each arm by chance".into(),
    };
    let strat = match (cfg.clusters.allocation, sites.len()) {
        (_, 1) => String::new(),
        (Allocation::Stratified, n) => format!(", randomised within {n} sites"),
        (Allocation::Simple, n) => format!(" in {n} sites (simple randomisation)"),
    };
    format!(
        "Parallel cluster-randomised trial: {} teams ({arms}){strat}; team size {}; {}.",
        cfg.clusters.teams,
        size_label(cfg),
        if cfg.outcome.baseline {
            "outcome measured at baseline and follow-up"
        } else {
            "outcome measured at follow-up"
        }
    )
}

/// The design diagram and its caption.
pub fn design_figure(study: &PowerStudy) -> (String, String) {
    let cfg = &study.config;
    let design = study.simulator().design();
    let (m, _) = crate::design::size_moments(&cfg.clusters.size);
    let keep = 1.0 - cfg.attrition.rate;
    if let Some(sw) = design.stepped_wedge() {
        let split = crate::design::even_split(cfg.clusters.teams, sw.matrix.len());
        let rows: Vec<(usize, Vec<GridCell>)> = (0..sw.matrix.len())
            .map(|q| {
                let cells = (0..sw.periods)
                    .map(|t| GridCell {
                        exposure: sw.cell(q, t).exposure,
                        n: m * keep,
                    })
                    .collect();
                (split[q] as usize, cells)
            })
            .collect();
        let what = if sw.sampling == Sampling::Cohort {
            "cohort members analysed"
        } else {
            "participants analysed"
        };
        return (
            figures::sw_grid(&rows),
            format!(
                "Each row is a sequence, each column a period; the number in a cell is the expected {what} per cluster in that period{}.",
                if cfg.attrition.rate > 0.0 {
                    format!(" (mean size {} after {} attrition)", round_sig(m), pct(cfg.attrition.rate))
                } else {
                    String::new()
                }
            ),
        );
    }
    let treated_per_site: Vec<u32> = match &design.treated_per_site {
        Some(t) => t.clone(),
        None => design.site_teams.iter().map(|&n| n.div_ceil(2)).collect(),
    };
    let sites: Vec<(String, u32, u32)> = design
        .site_names
        .iter()
        .zip(&design.site_teams)
        .zip(&treated_per_site)
        .map(|((name, &n), &t)| (name.clone(), t, n - t))
        .collect();
    let caption = if design.treated_per_site.is_some() {
        "Clusters by site and arm, as randomised (stratified by site)."
    } else {
        "Clusters by site and arm: the split shown is the expected one (allocation by chance)."
    };
    (
        figures::parallel_design(&sites),
        format!(
            "{caption} Each square is one cluster of {} service users on average.",
            round_sig(m)
        ),
    )
}

/// Expected numbers at each stage: recruited, and analysed after attrition.
pub fn stages_table(study: &PowerStudy) -> String {
    let cfg = &study.config;
    let design = study.simulator().design();
    let (m, _) = crate::design::size_moments(&cfg.clusters.size);
    let keep = 1.0 - cfg.attrition.rate;
    let k = f64::from(cfg.clusters.teams);
    let mut t = String::from("<table><thead><tr><th>Stage</th><th class=\"n\">Clusters</th><th class=\"n\">Participants (expected)</th><th class=\"n\">Per cluster</th></tr></thead><tbody>");
    let mut row = |stage: &str, clusters: f64, n: f64, per: f64| {
        let _ = write!(
            t,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(stage),
            round_sig(clusters),
            round_sig(n.round()),
            round_sig(per)
        );
    };
    if let Some(sw) = design.stepped_wedge() {
        let periods = sw.periods as f64;
        if sw.sampling == Sampling::Cohort {
            row("Recruited (cohort)", k, k * m, m);
            row(
                "Analysed observations (all periods, after attrition)",
                k,
                k * m * periods * keep,
                m * periods * keep,
            );
        } else {
            row("Recruited (all periods)", k, k * m * periods, m * periods);
            row(
                "Analysed (after attrition)",
                k,
                k * m * periods * keep,
                m * periods * keep,
            );
        }
    } else {
        row("Recruited (baseline)", k, k * m, m);
        row(
            "Analysed at follow-up (after attrition)",
            k,
            k * m * keep,
            m * keep,
        );
    }
    t.push_str("</tbody></table>\n");
    if cfg.attrition.rate > 0.0 {
        let _ = writeln!(
            t,
            "<p class=\"muted\">Attrition {} ({}).</p>",
            pct(cfg.attrition.rate),
            match cfg.attrition.mechanism {
                crate::config::Mechanism::Mcar => "missing completely at random",
                crate::config::Mechanism::Mar => "missing at random given the baseline score",
            }
        );
    }
    t
}

/// The config's parameters (section.key, value), every key of every
/// section but the sweep and the sources, in file order of sections.
pub fn parameters(cfg: &Config) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(top)) = serde_json::to_value(cfg) else {
        return Vec::new();
    };
    let order = [
        "trial",
        "clusters",
        "stepped_wedge",
        "outcome",
        "effect",
        "attrition",
        "adherence",
        "analysis",
    ];
    let mut out = Vec::new();
    for sec in order {
        let Some(serde_json::Value::Object(fields)) = top.get(sec) else {
            continue;
        };
        for (k, v) in fields {
            let key = format!("{sec}.{k}");
            if v.is_null() || (sec == "trial" && k == "name") || !applies(cfg, &key) {
                continue;
            }
            let text = if sec == "clusters" && k == "size" {
                size_label(cfg)
            } else {
                value_text(v)
            };
            out.push((key, text));
        }
    }
    out
}

/// A config value as a reader would write it.
fn value_text(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "-".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => n
            .as_f64()
            .map(|x| {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    format!("{x}")
                } else {
                    round_sig(x)
                }
            })
            .unwrap_or_else(|| n.to_string()),
        Value::String(s) => s.replace('_', " "),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(value_text).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(o) => {
            let parts: Vec<String> = o
                .iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| format!("{k} {}", value_text(x)))
                .collect();
            parts.join(", ")
        }
    }
}

/// The source of each key: the config's `[sources]` table, else the
/// comment block directly above the key (or on its line) in the file.
pub fn sources(text: Option<&str>, cfg: &Config) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(text) = text {
        let mut section = String::new();
        let mut block: Vec<String> = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if let Some(c) = l.strip_prefix('#') {
                block.push(c.trim().to_string());
                continue;
            }
            if l.starts_with('[') {
                section = l
                    .trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                block.clear();
                continue;
            }
            if let Some((key, rest)) = l.split_once('=') {
                let key = key.trim().trim_matches('"');
                let trailing = rest
                    .rsplit_once('#')
                    .filter(|(v, _)| v.matches('"').count() % 2 == 0)
                    .map(|(_, c)| c.trim().to_string());
                let mut parts: Vec<String> =
                    block.iter().filter(|s| !s.is_empty()).cloned().collect();
                parts.extend(trailing);
                if !parts.is_empty() && !key.is_empty() {
                    let full = if section.is_empty() {
                        key.to_string()
                    } else {
                        format!("{section}.{key}")
                    };
                    out.insert(full, parts.join(" "));
                }
            }
            block.clear();
        }
    }
    for (k, v) in &cfg.sources {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// ADEMP: aims, data-generating mechanism, estimand, methods, performance.
pub fn ademp(study: &PowerStudy, s: &Summary) -> String {
    let cfg = &study.config;
    let methods: Vec<&str> = s.rows.iter().map(|r| r.analysis.label()).collect();
    format!(
        "<table><caption>Aims, data-generating mechanism, estimand, methods and performance measures (ADEMP; Morris, White &amp; Crowther 2019).</caption><tbody><tr><th>Aims</th><td>Power and type-I error of a two-sided test at {} of the intervention effect (<code>{}</code>).</td></tr><tr><th>Data-generating mechanism</th><td>{} {} simulated trials{}.</td></tr><tr><th>Estimand</th><td>The intention-to-treat difference in mean outcome, on the reported scale: {} (0 under the null). Adherence analyses, where run, have their own estimands (below).</td></tr><tr><th>Methods</th><td>Model <code>{}</code>; analyses: {}.</td></tr><tr><th>Performance</th><td>Power (rejection rate under the effect), type-I error (under the null), bias, empirical and model SE, 95% CI coverage, each with its Monte Carlo SE; analytic power at the same estimand.</td></tr></tbody></table>\n",
        pct(s.alpha),
        escape(&s.term),
        escape(&design_sentence(cfg, study)),
        s.reps,
        if study.scenarios() == 2 {
            " under the configured effect, and as many under the null on common random numbers"
        } else {
            ""
        },
        round_sig(s.true_effect),
        escape(&s.formula),
        escape(&methods.join("; "))
    )
}

/// "0.648 (0.005)" as a table cell.
fn cell(p: f64, se: f64) -> String {
    if !p.is_finite() {
        return "<td class=\"n\">-</td>".into();
    }
    format!(
        "<td class=\"n\">{} <small>({})</small></td>",
        pct(p),
        pct(se)
    )
}

/// The type-I error in words: consistent with alpha, or above or below it.
pub fn type_one_words(null: &Performance, alpha: f64) -> (String, bool) {
    match null.type_one_departure(alpha) {
        std::cmp::Ordering::Equal => ("consistent with the nominal level".into(), false),
        std::cmp::Ordering::Greater => {
            (format!("above the nominal {} (liberal)", pct(alpha)), true)
        }
        std::cmp::Ordering::Less => (
            format!("below the nominal {} (conservative)", pct(alpha)),
            true,
        ),
    }
}

/// Per-analysis performance with MC SEs, type-I error beside power, and
/// the departures in words.
pub fn performance_table(study: &PowerStudy, s: &Summary) -> String {
    let mut t = format!(
        "<table><caption>{} simulated trials per scenario, seed {}. Monte Carlo SEs in brackets. A type-I error is flagged when it is more than 2 MC SE from the nominal {}.</caption>",
        s.reps,
        s.seed,
        pct(s.alpha)
    );
    t.push_str("<thead><tr><th>Analysis</th><th class=\"n\">Power (MC SE)</th><th class=\"n\">Type-I error (MC SE)</th><th class=\"n\">Analytic power</th><th class=\"n\">Bias (MC SE)</th><th class=\"n\">Coverage (MC SE)</th><th>Notes</th></tr></thead><tbody>");
    for r in &s.rows {
        let e = &r.effect;
        let mut notes = Vec::new();
        let t1 = match &r.null {
            Some(n) => {
                let (w, flag) = type_one_words(n, s.alpha);
                if flag {
                    notes.push(format!("<span class=\"flag\">type-I error {w}</span>"));
                }
                cell(n.reject, n.reject_mc_se)
            }
            None => "<td class=\"n\">not run</td>".into(),
        };
        if e.departs_from_analytic(r.analytic) {
            notes.push(format!(
                "Monte Carlo and analytic power differ by more than 2.5 MC SE: {}",
                crate::power::analytic_gap_reason(study, r)
            ));
        }
        if e.n_failed > 0 {
            notes.push(format!("{} fits failed", e.n_failed));
        }
        if e.n_nonconverged > 0 {
            notes.push(format!("{} fits did not converge", e.n_nonconverged));
        }
        if r.analysis.estimand() != Estimand::Itt {
            notes.push(format!(
                "estimand: {} (true value {})",
                estimand_words(r.analysis.estimand()),
                round_sig(r.true_value)
            ));
        }
        let bias = format!(
            "<td class=\"n\">{} <small>({})</small></td>",
            fixed3(e.bias),
            fixed3(e.bias_mc_se)
        );
        let _ = write!(
            t,
            "<tr><td>{}</td>{}{}<td class=\"n\">{}</td>{}{}<td>{}</td></tr>",
            escape(r.analysis.label()),
            cell(e.reject, e.reject_mc_se),
            t1,
            if r.analytic.is_finite() {
                pct(r.analytic)
            } else {
                "-".into()
            },
            bias,
            cell(e.coverage, e.coverage_mc_se),
            notes.join("; ")
        );
    }
    t.push_str("</tbody></table>\n");
    t
}

fn estimand_words(e: Estimand) -> &'static str {
    match e {
        Estimand::Itt => "the intention-to-treat difference",
        Estimand::HighLowContrast => "the difference between high- and low-participating teams",
        Estimand::FullParticipation => "the effect of full participation",
        Estimand::Conditional => "the cluster-specific (conditional) log odds or rate ratio",
        Estimand::Marginal => "the population-averaged (marginal) log odds or rate ratio",
    }
}

/// Power of every analysis at every grid point (with MC SE).
pub fn sweep_table(points: &[PointResult]) -> String {
    let keys: Vec<String> = points[0].point.iter().map(|(k, _)| k.clone()).collect();
    let methods: Vec<Analysis> = points[0].summary.methods();
    let caption = format!(
        "<caption>Monte Carlo power (MC SE), {} simulated trials per point. Type-I errors and the other measures are under each point below.</caption>",
        points[0].summary.reps
    );
    // Few points: one row per analysis, one column per point (analysis
    // names wrap in their own column); many points: one row per point.
    if points.len() <= 8 {
        let mut t = format!(
            "<table>{caption}<thead><tr><th rowspan=\"2\">Analysis</th><th colspan=\"{}\" class=\"sub\">{}</th></tr><tr>",
            points.len(),
            escape(
                &keys
                    .iter()
                    .map(|k| key_label(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
        for p in points {
            let at: Vec<String> = p
                .point
                .iter()
                .map(|(k, v)| {
                    if keys.len() == 1 {
                        v.clone()
                    } else {
                        format!("{k} = {v}")
                    }
                })
                .collect();
            let _ = write!(t, "<th class=\"n\">{}</th>", escape(&at.join(", ")));
        }
        t.push_str("</tr></thead><tbody>");
        for m in &methods {
            let _ = write!(t, "<tr><td>{}</td>", escape(m.label()));
            for p in points {
                match p.summary.get(*m) {
                    Some(r) => t.push_str(&cell(r.effect.reject, r.effect.reject_mc_se)),
                    None => t.push_str("<td class=\"n\">-</td>"),
                }
            }
            t.push_str("</tr>");
        }
        t.push_str("</tbody></table>\n");
        return t;
    }
    let mut t = format!("<table class=\"wide\">{caption}<thead><tr>");
    for k in &keys {
        let _ = write!(t, "<th class=\"n\">{}</th>", escape(&key_label(k)));
    }
    for m in &methods {
        let _ = write!(t, "<th class=\"n\">{}</th>", escape(m.label()));
    }
    t.push_str("</tr></thead><tbody>");
    for p in points {
        t.push_str("<tr>");
        for (_, v) in &p.point {
            let _ = write!(t, "<td class=\"n\">{}</td>", escape(v));
        }
        for m in &methods {
            match p.summary.get(*m) {
                Some(r) => t.push_str(&cell(r.effect.reject, r.effect.reject_mc_se)),
                None => t.push_str("<td class=\"n\">-</td>"),
            }
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>\n");
    t
}

/// The power curves of a sweep over its first key (other keys, if any,
/// become separate curves), merging analyses whose curves agree within
/// Monte Carlo error at every point, and the recommended analysis'
/// analytic power dashed.
pub fn power_curves(points: &[PointResult]) -> (String, Vec<Curve>) {
    let key = points[0].point[0].0.clone();
    let x_of = |p: &PointResult| p.point[0].1.parse::<f64>().unwrap_or(f64::NAN);
    let rest = |p: &PointResult| -> String {
        p.point[1..]
            .iter()
            .map(|(k, v)| format!("{} {v}", key_label(k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut groups: Vec<String> = points.iter().map(rest).collect();
    groups.dedup();
    groups.sort();
    groups.dedup();
    let methods = points[0].summary.methods();
    let rec = recommend(&points[points.len() - 1].summary).0;
    let mut curves = Vec::new();
    for g in &groups {
        let pts: Vec<&PointResult> = points.iter().filter(|p| &rest(p) == g).collect();
        let series: Vec<(Analysis, Points)> = methods
            .iter()
            .filter(|m| m.estimand() == Estimand::Itt)
            .map(|&m| {
                let v = pts
                    .iter()
                    .filter_map(|p| {
                        p.summary
                            .get(m)
                            .map(|r| (x_of(p), r.effect.reject, r.effect.reject_mc_se))
                    })
                    .filter(|q| q.0.is_finite())
                    .collect();
                (m, v)
            })
            .collect();
        let suffix = if g.is_empty() {
            String::new()
        } else {
            format!(" ({g})")
        };
        for (labels, v) in merge_coinciding(&series) {
            curves.push(Curve {
                label: format!("{}{suffix}", labels.join(" / ")),
                points: v,
                dashed: false,
            });
        }
        let analytic: Vec<(f64, f64, f64)> = pts
            .iter()
            .filter_map(|p| p.summary.get(rec).map(|r| (x_of(p), r.analytic, 0.0)))
            .filter(|q| q.0.is_finite() && q.1.is_finite())
            .collect();
        if !analytic.is_empty() {
            curves.push(Curve {
                label: format!("Analytic, {}{suffix}", rec.label()),
                points: analytic,
                dashed: true,
            });
        }
    }
    (key, curves)
}

/// Group analyses whose powers agree within one Monte Carlo SE at every
/// point (they are simulated on the same trials, so their difference is
/// far more precise than either); each group is drawn once, labelled with
/// all its names.
fn merge_coinciding(series: &[(Analysis, Points)]) -> Vec<(Vec<&'static str>, Points)> {
    let mut out: Vec<(Vec<&'static str>, Points)> = Vec::new();
    'next: for (a, v) in series {
        for (labels, w) in out.iter_mut() {
            if figures::curves_coincide(v.iter().copied(), w.iter().copied()) {
                labels.push(a.label());
                continue 'next;
            }
        }
        out.push((vec![a.label()], v.clone()));
    }
    out
}

/// The answer of a sweep: the power range and where the targets are met.
pub fn sweep_answer(points: &[PointResult], rec: Analysis, targets: &[f64]) -> String {
    // Where several keys are swept, each further combination is its own
    // curve: state the answer for each.
    let rest = |p: &PointResult| -> Vec<(String, String)> { p.point[1..].to_vec() };
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    for p in points {
        let g = rest(p);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut parts = Vec::new();
    for g in &groups {
        let sel: Vec<&PointResult> = points.iter().filter(|p| rest(p) == *g).collect();
        parts.push(sweep_answer_one(&sel, rec, targets, g));
    }
    parts.join(" ")
}

fn sweep_answer_one(
    points: &[&PointResult],
    rec: Analysis,
    targets: &[f64],
    fixed: &[(String, String)],
) -> String {
    let Some(first_point) = points.first() else {
        return String::new();
    };
    let key = &first_point.point[0].0;
    let pw: Vec<(String, f64, f64, u64)> = points
        .iter()
        .filter_map(|p| {
            p.summary.get(rec).map(|r| {
                (
                    p.point[0].1.clone(),
                    r.effect.reject,
                    r.effect.reject_mc_se,
                    p.summary.reps,
                )
            })
        })
        .collect();
    let (Some(first), Some(last)) = (pw.first(), pw.last()) else {
        return String::new();
    };
    let at = if fixed.is_empty() {
        String::new()
    } else {
        let f: Vec<String> = fixed
            .iter()
            .map(|(k, v)| format!("{} = {v}", key_label(k).to_lowercase()))
            .collect();
        format!(" (at {})", f.join(", "))
    };
    let mut t = format!(
        "Power with {}{at} goes from {} {} to {} {}.",
        rec.label(),
        pct(first.1),
        point_words(key, &first.0),
        pct(last.1),
        point_words(key, &last.0)
    );
    for &target in targets {
        match pw.iter().find(|p| p.1 >= target) {
            Some(p) => {
                let _ = write!(
                    t,
                    " {} power is first reached {} (power {}, {}).",
                    pct(target),
                    point_words(key, &p.0),
                    pct(p.1),
                    mc_se_words(p.1, p.2, p.3)
                );
            }
            None => {
                let _ = write!(t, " {} power is not reached in this range.", pct(target));
            }
        }
    }
    t
}

/// "MC SE 1.5%", or, when every (or no) simulated trial rejected, what
/// that means (the binomial MC SE is then 0 and says nothing).
pub fn mc_se_words(p: f64, se: f64, reps: u64) -> String {
    if se > 0.0 || !(p == 0.0 || p == 1.0) {
        format!("Monte Carlo SE {}", pct(se))
    } else if p == 1.0 {
        format!("every one of {reps} simulated trials rejected")
    } else {
        format!("none of {reps} simulated trials rejected")
    }
}

/// The values a sample-size search simulated.
pub fn solve_table(s: &Solution) -> String {
    let mut t = format!(
        "<table><thead><tr><th class=\"n\">{}</th><th class=\"n\">Monte Carlo power (MC SE)</th><th>Reaches {}?</th></tr></thead><tbody>",
        escape(&key_label(&s.key)),
        pct(s.target)
    );
    for &(v, p, se) in &s.evaluated {
        let _ = write!(
            t,
            "<tr><td class=\"n\">{v}</td>{}<td>{}</td></tr>",
            cell(p, se),
            if p >= s.target { "yes" } else { "no" }
        );
    }
    t.push_str("</tbody></table>\n");
    t
}

/// The adherence analyses against their own estimands.
pub fn adherence_table(s: &Summary) -> String {
    let mut t = String::from("<table><thead><tr><th>Analysis</th><th>Estimand</th><th class=\"n\">True value</th><th class=\"n\">Bias (MC SE)</th><th class=\"n\">Coverage (MC SE)</th><th class=\"n\">Power (MC SE)</th></tr></thead><tbody>");
    let mut any = false;
    for r in s
        .rows
        .iter()
        .filter(|r| matches!(r.analysis, Analysis::Adherence(_)))
    {
        any = true;
        let e = &r.effect;
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{} <small>({})</small></td>{}{}</tr>",
            escape(r.analysis.label()),
            estimand_words(r.analysis.estimand()),
            round_sig(r.true_value),
            fixed3(e.bias),
            fixed3(e.bias_mc_se),
            cell(e.coverage, e.coverage_mc_se),
            cell(e.reject, e.reject_mc_se)
        );
    }
    if !any {
        return "<p class=\"muted\">No adherence analysis was run (add adh_high_low, adh_dose_response or adh_cace_iv to analysis.methods).</p>\n".into();
    }
    t.push_str("</tbody></table>\n");
    t
}

/// One simulated trial's teams: (participation, mean follow-up outcome,
/// intervention arm).
pub fn example_team_means(study: &PowerStudy) -> Vec<(f64, f64, bool)> {
    let sim = study.simulator();
    let d = sim.simulate(study.config.trial.seed.unwrap_or(1), 0);
    if sim.is_stepped_wedge() {
        // Each cluster is its own control: its period-adjusted change after
        // crossover (as `crtsim plot adherence` draws it).
        let df = sim.data_frame(&d);
        return crate::plot::sw_adherence_points(std::path::Path::new("the example trial"), &df)
            .map(|v| {
                v.into_iter()
                    .map(|p| (p.participation, p.mean_qpr, p.treated))
                    .collect()
            })
            .unwrap_or_default();
    }
    let k = d.team_arm.len();
    let (mut sum, mut cnt) = (vec![0.0; k], vec![0usize; k]);
    for i in 0..d.len() {
        let y = d.qpr[i];
        if y.is_finite() {
            sum[d.team[i] as usize] += y;
            cnt[d.team[i] as usize] += 1;
        }
    }
    (0..k)
        .filter(|&j| cnt[j] > 0)
        .map(|j| {
            let treated = d.team_arm[j] == 1;
            let part = if treated {
                d.team_participation[j]
            } else {
                0.0
            };
            (part, sum[j] / cnt[j] as f64, treated)
        })
        .collect()
}

/// The protocol paragraph of one run.
pub fn protocol_paragraph(study: &PowerStudy, s: &Summary, rec: Analysis) -> String {
    let cfg = &study.config;
    let Some(r) = s.get(rec) else {
        return String::new();
    };
    let type_one = r
        .null
        .as_ref()
        .map(|n| {
            format!(
                " Under the null the same test rejected in {} of simulated trials (Monte Carlo SE {}), {}.",
                pct(n.reject),
                pct(n.reject_mc_se),
                type_one_words(n, s.alpha).0
            )
        })
        .unwrap_or_default();
    format!(
        "{} a two-sided test at the {} level using {} has {} power ({}, {} simulated trials) to detect {}, assuming {}.{type_one} Simulated with crtsim {} (seed {}).",
        design_lead(cfg, study),
        pct(s.alpha),
        analysis_words(rec),
        pct(r.effect.reject),
        mc_se_words(r.effect.reject, r.effect.reject_mc_se, s.reps),
        s.reps,
        effect_words(cfg, s),
        assumption_words(cfg),
        env!("CARGO_PKG_VERSION"),
        s.seed
    )
}

/// The protocol paragraph of a sample-size search.
pub fn solve_paragraph(study: &PowerStudy, s: &Summary, sol: &Solution) -> String {
    let base = protocol_paragraph(study, s, sol.analysis);
    format!(
        "A sample-size search over {} found {} to be the smallest value reaching {} power (Monte Carlo; the analytic formula gives {}). {base}",
        key_label(&sol.key).to_lowercase(),
        sol.value,
        pct(sol.target),
        sol.analytic_value
    )
}

/// The protocol paragraph of a sweep.
pub fn sweep_paragraph(points: &[PointResult], rec: Analysis, targets: &[f64]) -> String {
    let last = &points[points.len() - 1];
    let detail = protocol_paragraph(&last.study, &last.summary, rec);
    let mut chars = detail.chars();
    let detail = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect::<String>(),
        None => detail,
    };
    format!(
        "{} At the last point of the sweep, {detail}",
        sweep_answer(points, rec, targets)
    )
}

fn design_lead(cfg: &Config, study: &PowerStudy) -> String {
    let (m, _) = crate::design::size_moments(&cfg.clusters.size);
    let design = study.simulator().design();
    if let Some(sw) = design.stepped_wedge() {
        return format!(
            "In a stepped-wedge trial of {} clusters randomised to {} sequences over {} periods ({} sampling, on average {} participants per cluster and period{}),",
            cfg.clusters.teams,
            sw.matrix.len(),
            sw.periods,
            if sw.sampling == Sampling::Cohort { "closed-cohort" } else { "cross-sectional" },
            round_sig(m),
            attrition_words(cfg)
        );
    }
    let arms = match cfg.clusters.treated {
        Some(t) => format!(" ({t} intervention, {} control)", cfg.clusters.teams - t),
        None => String::new(),
    };
    let sites = if design.site_names.len() > 1 {
        format!(" in {} sites", design.site_names.len())
    } else {
        String::new()
    };
    format!(
        "With {} teams{arms}{sites} of on average {} service users ({} recruited{}),",
        cfg.clusters.teams,
        round_sig(m),
        round_sig((f64::from(cfg.clusters.teams) * m).round()),
        attrition_words(cfg)
    )
}

fn attrition_words(cfg: &Config) -> String {
    if cfg.attrition.rate > 0.0 {
        format!("; {} lost to follow-up", pct(cfg.attrition.rate))
    } else {
        String::new()
    }
}

fn analysis_words(a: Analysis) -> &'static str {
    match a {
        Analysis::Lmm(LmmDf::Satterthwaite) => {
            "a linear mixed model with Satterthwaite degrees of freedom"
        }
        Analysis::Lmm(LmmDf::KenwardRoger) => {
            "a linear mixed model with the Kenward-Roger correction"
        }
        Analysis::Lmm(LmmDf::BetweenWithin) => {
            "a linear mixed model with between-within degrees of freedom"
        }
        Analysis::Lmm(LmmDf::Z) => "a linear mixed model with a Wald z test",
        Analysis::Lmm(LmmDf::Residual) => "a linear mixed model with residual degrees of freedom",
        Analysis::ClusterT => "a two-stage cluster-level t-test",
        Analysis::Glmm(crate::analysis::GlmmAnalysis::Z) => {
            "a generalised linear mixed model with a Wald z test"
        }
        Analysis::Glmm(crate::analysis::GlmmAnalysis::BetweenWithin) => {
            "a generalised linear mixed model with between-within degrees of freedom"
        }
        Analysis::Glmm(_) => "a GEE with a bias-corrected sandwich variance",
        Analysis::Adherence(_) => "an adherence analysis",
    }
}

fn assumption_words(cfg: &Config) -> String {
    let o = &cfg.outcome;
    let mut parts = vec![format!(
        "an intracluster correlation of {}",
        round_sig(o.icc)
    )];
    if o.icc_staff > 0.0 {
        parts.push(format!("a staff-level ICC of {}", round_sig(o.icc_staff)));
    }
    if let Some(c) = o.cac {
        parts.push(format!("a cluster autocorrelation of {}", round_sig(c)));
    }
    if o.baseline {
        if let Some(i) = o.iac {
            parts.push(format!(
                "an individual autocorrelation of {} with adjustment for the baseline score",
                round_sig(i)
            ));
        }
    } else if let Some(i) = o.iac.filter(|_| is_sw(cfg)) {
        parts.push(format!("an individual autocorrelation of {}", round_sig(i)));
    }
    match parts.len() {
        1 => parts.remove(0),
        _ => {
            let last = parts.pop().expect("two or more");
            format!("{} and {last}", parts.join(", "))
        }
    }
}

/// A bias or its SE: three decimals (a signed figure next to zero).
fn fixed3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".into()
    }
}

/// "with 14 clusters", or "at outcome SD = 12".
fn point_words(key: &str, value: &str) -> String {
    match key {
        "clusters.teams" => format!("with {value} clusters"),
        "clusters.size.mean" => format!("with {value} participants per cluster"),
        _ => format!("at {} = {value}", key_label(key).to_lowercase()),
    }
}

/// Whether a key means anything in this config (parameters a design does
/// not use are left out of the assumptions).
fn applies(cfg: &Config, key: &str) -> bool {
    let sw = is_sw(cfg);
    match key {
        "clusters.allocation"
        | "clusters.sites"
        | "clusters.staff_per_team"
        | "outcome.icc_staff"
        | "outcome.baseline" => !sw,
        "clusters.site_teams" | "clusters.treated" => !sw,
        "outcome.item_noise" => cfg.outcome.measure == crate::config::Measure::Qpr15Items,
        "attrition.slope" => cfg.attrition.mechanism == crate::config::Mechanism::Mar,
        "attrition.mechanism" => cfg.attrition.rate > 0.0,
        "outcome.iac" => {
            cfg.outcome.baseline
                || cfg
                    .stepped_wedge
                    .as_ref()
                    .is_some_and(|s| s.sampling == Sampling::Cohort)
        }
        _ => true,
    }
}

/// "39 clusters", or "mean cluster size = 20".
pub fn value_words(key: &str, v: i64) -> String {
    match key {
        "clusters.teams" => format!("{v} clusters"),
        _ => format!("{} = {v}", key_label(key)),
    }
}

/// Power and bias of the adherence analyses across a sweep (against each
/// one's own estimand), as two figures.
pub fn adherence_sweep_figures(points: &[PointResult]) -> String {
    let key = points[0].point[0].0.clone();
    let x_of = |p: &PointResult| p.point[0].1.parse::<f64>().unwrap_or(f64::NAN);
    let methods: Vec<Analysis> = points[0]
        .summary
        .methods()
        .into_iter()
        .filter(|m| matches!(m, Analysis::Adherence(_)))
        .collect();
    if methods.is_empty() {
        return String::new();
    }
    let series = |f: &dyn Fn(&Performance) -> (f64, f64)| -> Vec<Curve> {
        methods
            .iter()
            .map(|&m| Curve {
                label: m.label().to_string(),
                points: points
                    .iter()
                    .filter_map(|p| {
                        p.summary.get(m).map(|r| {
                            let (v, se) = f(&r.effect);
                            (x_of(p), v, se)
                        })
                    })
                    .filter(|q| q.0.is_finite() && q.1.is_finite())
                    .collect(),
                dashed: false,
            })
            .collect()
    };
    let label = key_label(&key);
    let power = series(&|e| (e.reject, e.reject_mc_se));
    let bias = series(&|e| (e.bias, e.bias_mc_se));
    let (lo, hi) = bias
        .iter()
        .flat_map(|c| c.points.iter())
        .fold((0.0f64, 0.0f64), |(a, b), p| {
            (a.min(p.1 - 2.0 * p.2), b.max(p.1 + 2.0 * p.2))
        });
    let pad = ((hi - lo) * 0.1).max(0.05);
    let axes = |title: &str, y: &str, range, percent, targets: &'static [f64]| -> String {
        figures::line_chart(
            if percent { &power } else { &bias },
            &figures::Axes {
                title,
                x: &label,
                y,
                integer_x: crate::labels::key_is_integer(&key),
                targets,
                y_range: range,
                percent,
            },
        )
    };
    format!(
        "<figure>{}<figcaption>Bias of each adherence analysis against its own estimand, with 95% Monte Carlo error bars; the line at 0 is no bias.</figcaption></figure>\n<figure>{}<figcaption>Power of each adherence analysis across the sweep.</figcaption></figure>\n",
        axes(
            &format!("Bias by {}", label.to_lowercase()),
            "Bias (estimate minus estimand)",
            Some((lo - pad, hi + pad)),
            false,
            &[0.0]
        ),
        axes(
            &format!("Power by {}", label.to_lowercase()),
            "Power",
            None,
            true,
            &[]
        )
    )
}
