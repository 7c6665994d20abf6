//! Binary and count outcomes: the data-generating process against its
//! analytic moments (Monte Carlo tolerances), the true conditional and
//! marginal effects against closed forms, the analyses' bias against their
//! own estimands, and every bad key as one line with exit 2.

mod common;
use common::{assert_mc, cfg, run_study};
use crtsim::analysis::{Analysis, GlmmAnalysis};
use crtsim::config::Config;
use crtsim::discrete::{LinkScale, Moments};
use crtsim::power::PowerStudy;
use crtsim::simulate::Simulator;

/// A parallel binary trial (no attrition, fixed sizes).
const BINARY: &str = r#"
[trial]
name = "binary"
[clusters]
teams = 40
treated = 20
allocation = "simple"
size = { dist = "fixed", mean = 20 }
[outcome]
measure = "binary"
prevalence = 0.3
icc = 0.08
baseline = false
[effect]
odds_ratio = 2.0
"#;

/// A parallel count trial with gamma overdispersion.
const COUNT: &str = r#"
[trial]
name = "count"
[clusters]
teams = 40
treated = 20
allocation = "simple"
size = { dist = "fixed", mean = 20 }
[outcome]
measure = "count"
rate = 2.5
k = 0.3
overdispersion = 0.5
baseline = false
[effect]
rate_ratio = 0.7
"#;

/// Per replicate: the control and treated arms' mean outcome, and the
/// between-cluster variance of the control clusters' means.
fn arm_stats(sim: &Simulator, reps: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut c, mut t, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..reps {
        let d = sim.simulate(11, r);
        let teams = d.team_size.len();
        let mut sums = vec![(0.0, 0.0); teams];
        for i in 0..d.len() {
            let s = &mut sums[d.team[i] as usize];
            s.0 += d.qpr[i];
            s.1 += 1.0;
        }
        let mean_of = |arm: u8| -> Vec<f64> {
            (0..teams)
                .filter(|&j| d.team_arm[j] == arm)
                .map(|j| sums[j].0 / sums[j].1)
                .collect()
        };
        let (m0, m1) = (mean_of(0), mean_of(1));
        let avg = |m: &[f64]| m.iter().sum::<f64>() / m.len() as f64;
        c.push(avg(&m0));
        t.push(avg(&m1));
        let a0 = avg(&m0);
        v.push(m0.iter().map(|x| (x - a0).powi(2)).sum::<f64>() / (m0.len() - 1) as f64);
    }
    (c, t, v)
}

#[test]
fn binary_dgp_hits_its_prevalences_and_cluster_variance() {
    let sim = Simulator::new(cfg(BINARY, &[])).unwrap();
    let ls = *sim.link_scale().unwrap();
    // The latent ICC 0.08 on the logit scale: σ_u² = 0.08/0.92 · π²/3.
    let su2 = 0.08 / 0.92 * std::f64::consts::PI.powi(2) / 3.0;
    assert!((ls.sd_cluster.powi(2) - su2).abs() < 1e-12);
    assert!((ls.effect - 2f64.ln()).abs() < 1e-12);
    assert!((sim.control_mean() - 0.3).abs() < 1e-9);
    let (c, t, v) = arm_stats(&sim, 400);
    assert_mc("control prevalence", &c, 0.3, 4.0);
    assert_mc(
        "treated prevalence",
        &t,
        sim.control_mean() + sim.itt_effect(),
        4.0,
    );
    // Var of a cluster's observed proportion: τ² + (E[p(1−p)] − ... )/m,
    // i.e. τ² + (total − τ²)/m with m = 20 (binomial within clusters).
    let m = ls.control_moments();
    assert_mc(
        "between-cluster variance",
        &v,
        m.cluster + (m.total - m.cluster) / 20.0,
        4.0,
    );
}

#[test]
fn count_dgp_hits_its_rates_and_overdispersion() {
    let sim = Simulator::new(cfg(COUNT, &[])).unwrap();
    let ls = *sim.link_scale().unwrap();
    // k = 0.3 gives σ_u² = ln(1 + k²) exactly; the marginal rate is 2.5.
    assert!((ls.sd_cluster.powi(2) - 0.09f64.ln_1p()).abs() < 1e-12);
    assert!((ls.k() - 0.3).abs() < 1e-9);
    assert!((sim.control_mean() - 2.5).abs() < 1e-9);
    // Under a log link the conditional and marginal rate ratios agree.
    let (cond, marg) = sim.log_ratios().unwrap();
    assert!((cond - 0.7f64.ln()).abs() < 1e-12);
    assert!((marg - cond).abs() < 1e-9, "{marg} vs {cond}");
    let (c, t, v) = arm_stats(&sim, 400);
    assert_mc("control rate", &c, 2.5, 4.0);
    assert_mc("treated rate", &t, 2.5 * 0.7, 4.0);
    // Within a cluster Var(y) = μ + φμ²: cluster means vary by τ² + that/m.
    let m = ls.control_moments();
    assert!((m.cluster - 2.5f64.powi(2) * 0.09).abs() < 1e-9);
    assert_mc(
        "between-cluster variance",
        &v,
        m.cluster + (m.total - m.cluster) / 20.0,
        4.0,
    );
    // The lognormal overdispersion has the same mean and variance.
    let sim = Simulator::new(cfg(COUNT, &["outcome.overdispersion_dist=\"lognormal\""])).unwrap();
    let (c, _, v) = arm_stats(&sim, 400);
    assert_mc("control rate (lognormal)", &c, 2.5, 4.0);
    assert_mc(
        "between-cluster variance (lognormal)",
        &v,
        m.cluster + (m.total - m.cluster) / 20.0,
        4.0,
    );
}

#[test]
fn effects_given_on_other_scales_resolve_to_the_same_model() {
    // A risk difference, or a treated-arm prevalence, is solved for the
    // conditional log OR whose marginal risk difference it is.
    let sim = Simulator::new(cfg(BINARY, &[])).unwrap();
    let rd = sim.itt_effect();
    for set in [
        format!("effect.risk_difference={rd}"),
        format!("effect.treated_prevalence={}", 0.3 + rd),
    ] {
        let text = BINARY.replace("odds_ratio = 2.0", "");
        let s2 = Simulator::new(cfg(&text, &[&set])).unwrap();
        let (cond, _) = s2.log_ratios().unwrap();
        assert!((cond - 2f64.ln()).abs() < 1e-8, "{set}: {cond}");
        assert!((s2.itt_effect() - rd).abs() < 1e-9);
    }
    // k instead of the latent ICC: the cluster SD is solved so that the
    // control clusters' true proportions have that coefficient of variation.
    let k = LinkScale::from_config(&cfg(BINARY, &[])).unwrap().k();
    let text = BINARY.replace("icc = 0.08", &format!("k = {k}"));
    let ls = LinkScale::from_config(&cfg(&text, &[])).unwrap();
    assert!((ls.latent_icc() - 0.08).abs() < 1e-8, "{}", ls.latent_icc());
    // The marginal log OR against a direct integral (midpoint rule over
    // ±10 SD), and attenuated from the conditional one about as Zeger et
    // al. (1988) approximate: log OR / sqrt(1 + 0.346 σ²).
    let (cond, marg) = sim.log_ratios().unwrap();
    let ls = sim.link_scale().unwrap();
    let prev = |shift: f64| -> f64 {
        let h = 1e-3;
        (0..20_000)
            .map(|i| {
                let z = -10.0 + (i as f64 + 0.5) * h;
                let phi = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
                h * phi / (1.0 + (-(ls.intercept + shift + ls.sd_cluster * z)).exp())
            })
            .sum()
    };
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let direct = logit(prev(ls.effect)) - logit(prev(0.0));
    assert!((prev(0.0) - 0.3).abs() < 1e-8);
    assert!((marg - direct).abs() < 1e-8, "{marg} vs {direct}");
    let approx = cond / (1.0 + 0.346 * ls.sd_cluster.powi(2)).sqrt();
    assert!(
        marg < cond && (marg - approx).abs() < 0.02 * cond,
        "{marg} {approx}"
    );
}

#[test]
fn a_dichotomised_score_has_its_prevalence_and_marginal_effect() {
    // QPR-15 at or above 45 in REFOCUS: the prevalence is P(latent ≥ 44.5).
    let c = common::refocus(&["outcome.threshold=45"]);
    let sim = Simulator::new(c).unwrap();
    let (cond, marg) = sim.log_ratios().unwrap();
    assert!(cond.is_nan());
    assert!(marg > 0.0);
    let mut ctl = Vec::new();
    let mut trt = Vec::new();
    for r in 0..300 {
        let d = sim.simulate(5, r);
        let (mut s0, mut n0, mut s1, mut n1) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..d.len() {
            if d.qpr[i].is_nan() {
                continue;
            }
            assert!(d.qpr[i] == 0.0 || d.qpr[i] == 1.0);
            if d.arm[i] == 1 {
                s1 += d.qpr[i];
                n1 += 1.0;
            } else {
                s0 += d.qpr[i];
                n0 += 1.0;
            }
        }
        ctl.push(s0 / n0);
        trt.push(s1 / n1);
    }
    assert_mc("QPR >= 45, control", &ctl, sim.control_mean(), 4.0);
    assert_mc(
        "QPR >= 45, treated",
        &trt,
        sim.control_mean() + sim.itt_effect(),
        4.0,
    );
}

#[test]
fn moments_match_closed_forms() {
    // Poisson–lognormal: mean e^{α+σ²/2}, cluster variance m²(e^{σ²} − 1).
    let m = Moments::integrate(
        |e| crtsim::discrete::conditional(crtsim::glmm::Family::Poisson, 0.0, e),
        0.1,
        0.6,
        0.0,
    );
    let mean = (0.1f64 + 0.18).exp();
    assert!((m.mean - mean).abs() < 1e-10);
    assert!((m.cluster - mean * mean * (0.36f64.exp() - 1.0)).abs() < 1e-9);
}

#[test]
fn power_run_analyses_are_unbiased_for_their_own_estimands() {
    let c = cfg(BINARY, &["clusters.teams=30", "clusters.treated=15"]);
    let study = PowerStudy::new(c, true).unwrap();
    let s = run_study(&study, 300, 7);
    let sim = study.simulator();
    let (cond, marg) = sim.log_ratios().unwrap();
    for (a, truth) in [
        (Analysis::Glmm(GlmmAnalysis::Z), cond),
        (Analysis::Glmm(GlmmAnalysis::BetweenWithin), cond),
        (Analysis::Glmm(GlmmAnalysis::GeeMd), marg),
        (Analysis::Glmm(GlmmAnalysis::GeeKc), marg),
        (Analysis::ClusterT, sim.itt_effect()),
    ] {
        let r = s.get(a).unwrap();
        assert!((r.true_value - truth).abs() < 1e-12, "{a}");
        let e = &r.effect;
        assert_eq!(e.n_failed, 0, "{a}");
        // Bias within 3.5 MC SE plus the small-sample bias of a
        // 30-cluster logistic fit (about 2% of the log OR).
        assert!(
            e.bias.abs() <= 3.5 * e.bias_mc_se + 0.02 * truth.abs(),
            "{a}: bias {} (MC SE {}) against {truth}",
            e.bias,
            e.bias_mc_se
        );
        // Monte Carlo power near the linearised analytic power.
        assert!(
            (e.reject - r.analytic).abs() <= 3.5 * e.reject_mc_se + 0.03,
            "{a}: power {} (MC SE {}) vs analytic {}",
            e.reject,
            e.reject_mc_se,
            r.analytic
        );
        let null = r.null.as_ref().unwrap();
        assert!(
            null.reject < 0.05 + 3.5 * null.reject_mc_se + 0.02,
            "{a}: size {}",
            null.reject
        );
    }
}

/// The message of a config that must be refused.
fn refused(text: &str, sets: &[&str]) -> String {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    match Config::from_toml_str(text, &sets).and_then(|c| Simulator::new(c).map(|_| ())) {
        Ok(()) => panic!("{sets:?} should be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_keys_name_the_key_and_what_is_allowed() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            BINARY,
            &["outcome.prevalence=1.2"],
            &["outcome.prevalence = 1.2", "(0, 1)"],
        ),
        (
            BINARY,
            &["outcome.k=0.2"],
            &["outcome.k", "either outcome.icc or outcome.k"],
        ),
        (
            BINARY,
            &["effect.difference=2"],
            &[
                "effect.difference = 2",
                "does not apply",
                "\"binary\"",
                "effect.odds_ratio",
            ],
        ),
        (
            BINARY,
            &["effect.rate_ratio=2"],
            &["effect.rate_ratio", "does not apply"],
        ),
        (BINARY, &["effect.risk_difference=0.8"], &["effect"]),
        (
            BINARY,
            &["effect.odds_ratio=0"],
            &["effect.odds_ratio = 0", "[0.001, 1000]"],
        ),
        (
            BINARY,
            &["outcome.iac=0.3"],
            &["outcome.iac", "binary or count"],
        ),
        (
            BINARY,
            &["outcome.sd=3"],
            &["outcome.sd = 3", "does not apply"],
        ),
        (
            BINARY,
            &["outcome.threshold=3"],
            &["outcome.threshold", "does not apply"],
        ),
        (
            BINARY,
            &["analysis.methods=[\"adh_high_low\"]"],
            &["analysis.methods", "adh_high_low"],
        ),
        (
            COUNT,
            &["outcome.icc=0.1"],
            &[
                "outcome.icc = 0.1",
                "\"count\"",
                "outcome.rate and outcome.k",
            ],
        ),
        (
            COUNT,
            &["outcome.overdispersion=-1"],
            &["outcome.overdispersion = -1", "[0, 100]"],
        ),
        (COUNT, &["outcome.k=11"], &["outcome.k = 11", "[0, 10]"]),
        (
            COUNT,
            &["outcome.rate=0"],
            &["outcome.rate = 0", "(0, 1e6]"],
        ),
        (
            COUNT,
            &["outcome.icc_staff=0.1"],
            &["outcome.icc_staff", "not modelled for counts"],
        ),
        (
            COUNT,
            &["effect.odds_ratio=2"],
            &["effect.odds_ratio", "does not apply"],
        ),
    ];
    for (text, sets, needles) in cases {
        let msg = refused(text, sets);
        assert!(!msg.contains('\n'), "one line: {msg}");
        for n in *needles {
            assert!(msg.contains(n), "{sets:?}: `{msg}` should mention `{n}`");
        }
    }
    // Missing keys.
    let msg = refused(&BINARY.replace("prevalence = 0.3", ""), &[]);
    assert!(
        msg.contains("outcome.prevalence") && msg.contains("required"),
        "{msg}"
    );
    let msg = refused(&BINARY.replace("icc = 0.08", ""), &[]);
    assert!(
        msg.contains("outcome.icc") && msg.contains("outcome.k"),
        "{msg}"
    );
    let msg = refused(&COUNT.replace("k = 0.3", ""), &[]);
    assert!(
        msg.contains("outcome.k") && msg.contains("required"),
        "{msg}"
    );
    // k beyond what the prevalence allows.
    let msg = refused(&BINARY.replace("icc = 0.08", "k = 1.6"), &[]);
    assert!(
        msg.contains("outcome.k = 1.6") && msg.contains("at prevalence 0.3"),
        "{msg}"
    );
    // Scores: GLMM analyses need a binary or count outcome; a threshold
    // must lie on the scale.
    let refocus =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml"))
            .unwrap();
    let msg = refused(&refocus, &["analysis.methods=[\"glmm_z\"]"]);
    assert!(
        msg.contains("glmm_z") && msg.contains("binary or count"),
        "{msg}"
    );
    let msg = refused(&refocus, &["outcome.threshold=70"]);
    assert!(
        msg.contains("outcome.threshold = 70") && msg.contains("(0, 60]"),
        "{msg}"
    );
    let pulsar = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/pulsar_binary.toml"
    ))
    .unwrap();
    let msg = refused(&pulsar, &["stepped_wedge.sampling=\"cohort\""]);
    assert!(
        msg.contains("stepped_wedge.sampling") && msg.contains("cross_sectional"),
        "{msg}"
    );
    let msg = refused(&refocus, &["outcome.prevalence=0.3"]);
    assert!(
        msg.contains("outcome.prevalence") && msg.contains("\"qpr15\""),
        "{msg}"
    );
}

#[test]
fn the_cli_refuses_with_exit_2() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus_binary.toml");
    for (cmd, set) in [
        ("validate", "outcome.prevalence=0"),
        ("power", "effect.odds_ratio=-1"),
        ("simulate", "effect.difference=1"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtsim"))
            .args([cmd, path, "--set", set])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd} --set {set}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.starts_with("error:"), "{err}");
    }
}

#[test]
fn count_analytic_power_is_hayes_and_bennetts_formula() {
    // Equal sizes, no overdispersion: the linearised design effect is
    // exactly Hayes & Bennett's Var = Σ_arms (λ/m + k²λ²)/clusters.
    let sim = Simulator::new(cfg(COUNT, &["outcome.overdispersion=0"])).unwrap();
    let lin = sim.linearised_config().unwrap();
    let design = crtsim::design::Design::from_config(&lin).unwrap();
    let itt = sim.itt_effect();
    assert!((itt - (1.75 - 2.5)).abs() < 1e-9);
    let power = |normal| {
        crtsim::analytic::power_for(&lin, &design, 0.05, normal, &lin.analysis_formula(), itt)
    };
    let (l0, l1, k, m, c) = (2.5f64, 1.75f64, 0.3f64, 20.0, 20.0);
    let var = (l0 / m + k * k * l0 * l0) / c + (l1 / m + k * k * l1 * l1) / c;
    let z = crtsim::stats::normal_quantile(0.975);
    let want = crtsim::stats::normal_power((l0 - l1) / var.sqrt(), z);
    assert!(
        (power(true) - want).abs() < 1e-9,
        "{} vs {want}",
        power(true)
    );
    // The sample-size search's bracket reads the same figure from the
    // config itself.
    let c = cfg(COUNT, &["outcome.overdispersion=0"]);
    let bracket = crtsim::analytic::power(&c, &design, 0.05, true, &c.analysis_formula());
    assert!((bracket - want).abs() < 1e-9, "{bracket} vs {want}");
    // The small-sample column: t on 40 − 2 df.
    let want_t = crtsim::stats::t_power((l0 - l1) / var.sqrt(), 38.0, 0.05);
    assert!((power(false) - want_t).abs() < 1e-9);
}

#[test]
fn rare_events_and_separation_are_counted_failures_not_numbers() {
    // About two events per trial, or almost every user with the outcome:
    // trials with no events in an arm are separated. Those fits fail and
    // are counted; no estimate is a runaway number.
    for sets in [
        &["outcome.prevalence=0.003"][..],
        &["outcome.prevalence=0.999", "effect.odds_ratio=1.0"][..],
    ] {
        let study = PowerStudy::new(cfg(BINARY, sets), true).unwrap();
        let s = run_study(&study, 60, 3);
        let failed: usize = s.rows.iter().map(|r| r.effect.n_failed).sum();
        assert!(failed > 0, "{sets:?}: some fits should fail");
        for r in &s.rows {
            let e = &r.effect;
            if e.n > 0 {
                assert!(
                    e.bias.abs() < 5.0,
                    "{sets:?} {}: bias {}",
                    r.analysis,
                    e.bias
                );
                assert!(
                    e.mean_model_se < 50.0,
                    "{sets:?} {}: SE {}",
                    r.analysis,
                    e.mean_model_se
                );
            }
            let null = r.null.as_ref().unwrap();
            if null.n > 0 {
                assert!(
                    null.reject < 0.5,
                    "{sets:?} {}: size {}",
                    r.analysis,
                    null.reject
                );
            }
        }
    }
}
