//! Stepped-wedge designs: structure, transitions, lag, cohort sampling,
//! Monte Carlo against exact GLS power, and bad input.

mod common;
use crtsim::power::{self, PowerStudy};
use crtsim::simulate::Simulator;

fn pulsar(sets: &[&str]) -> crtsim::config::Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    crtsim::config::Config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml"),
        &sets,
    )
    .unwrap()
}

#[test]
fn pulsar_structure_and_csv() {
    let sim = Simulator::new(pulsar(&[])).unwrap();
    for r in 0..20 {
        let d = sim.simulate(1, r);
        assert_eq!(d.len(), 14 * 3 * 18);
        let seq1 = d.team_sequence.iter().filter(|&&q| q == 0).count();
        assert_eq!(seq1, 7, "7 + 7 clusters per sequence");
        for i in 0..d.len() {
            let q = d.team_sequence[d.team[i] as usize] as usize;
            let want = [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]][q][d.period[i] as usize];
            assert_eq!(d.exposure[i], want);
            assert_eq!(d.arm[i] as f64, want);
            let since = if want == 1.0 {
                d.period[i] as i32 - (q as i32 + 1)
            } else {
                -1
            };
            assert_eq!(d.time_since[i], since);
        }
    }
    let mut buf = Vec::new();
    crtsim::output::write_sw_csv(&sim.simulate(1, 0), false, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with(
        "cluster,period,sequence,exposure,time_since_crossover,individual,treat,qpr\n"
    ));
    assert!(text.lines().nth(1).unwrap().contains(",t1,") && text.contains(",NA,"));
}

#[test]
fn transitions_lag_and_cohorts() {
    let ex = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/example_stepped_wedge.toml"
    );
    let cfg = crtsim::config::Config::load(ex, &[]).unwrap();
    let sim = Simulator::new(cfg).unwrap();
    let d = sim.simulate(2, 0);
    for i in 0..d.len() {
        match d.time_since[i] {
            0 => assert_eq!(d.exposure[i], 0.5, "half-exposed transition period"),
            e if e > 0 => assert_eq!(d.exposure[i], 1.0),
            _ => assert_eq!(d.exposure[i], 0.0),
        }
    }
    let cfg = crtsim::config::Config::load(ex, &["stepped_wedge.transition=exclude".to_string()])
        .unwrap();
    let d = Simulator::new(cfg).unwrap().simulate(2, 0);
    assert!(
        d.time_since.iter().all(|&e| e != 0),
        "first exposed period excluded"
    );
    // Lag: with δ = 4 and lag [0.5], the first exposed period's mean effect is 2.
    let cfg = pulsar(&[
        "outcome.measure=continuous",
        "outcome.icc=0.0",
        "stepped_wedge.lag=[0.5]",
        "effect.difference=4.0",
    ]);
    let sim = Simulator::new(cfg).unwrap();
    let (mut first, mut later) = (Vec::new(), Vec::new());
    for r in 0..300 {
        let d = sim.simulate(3, r);
        let mean = |f: &dyn Fn(usize) -> bool| {
            let v: Vec<f64> = (0..d.len()).filter(|&i| f(i)).map(|i| d.qpr[i]).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let ctrl = mean(&|i| d.exposure[i] == 0.0);
        first.push(mean(&|i| d.time_since[i] == 0) - ctrl);
        later.push(mean(&|i| d.time_since[i] == 1) - ctrl);
    }
    common::assert_mc(
        "effect in the first exposed period (lag 0.5)",
        &first,
        2.0,
        4.0,
    );
    common::assert_mc("effect one period later (full)", &later, 4.0, 4.0);
    // Cohort: the same individuals in every period of a cluster.
    let cfg = pulsar(&[
        "stepped_wedge.sampling=cohort",
        "outcome.iac=0.5",
        "clusters.size={ dist = \"poisson\", mean = 10 }",
    ]);
    let d = Simulator::new(cfg).unwrap().simulate(4, 0);
    for c in 0..14u32 {
        let per: Vec<usize> = (0..3u16)
            .map(|t| {
                (0..d.len())
                    .filter(|&i| d.team[i] == c && d.period[i] == t)
                    .count()
            })
            .collect();
        assert!(per[0] == per[1] && per[1] == per[2], "cluster {c}: {per:?}");
    }
}

/// Fit each simulated trial by GLS at the true variance components (the
/// estimator the formula is about) and compare with the exact GLS:
/// returns nothing, asserts that δ̂ has the formula's mean κ·δ and variance
/// and that the known-variance z test has the formula's power.
fn oracle_check(sets: &[&str], reps: u64) {
    use crtsim::lmm::optim::OptResult;
    use crtsim::lmm::Model;
    use crtsim::rng::replicate_rng;
    use crtsim::simulate::Dataset;
    let mut all = vec!["outcome.measure=continuous"];
    all.extend_from_slice(sets);
    let cfg = pulsar(&all);
    let (sd, icc, cac, delta) = (
        cfg.outcome.sd,
        cfg.outcome.icc,
        cfg.outcome.cac.unwrap(),
        cfg.effect.difference,
    );
    let sim = Simulator::new(cfg.clone()).unwrap();
    let (gls_var, kappa) =
        crtsim::analytic::sw_config_gls(&cfg, sim.design(), sim.design().stepped_wedge().unwrap());
    let gls_power = crtsim::analytic::power(&cfg, sim.design(), 0.05, true, "");
    let gls_se = gls_var.sqrt();
    let z = 1.959963984540054;
    // True relative factors: (1|cluster:period) first (more levels), then (1|cluster).
    let s2e = (1.0 - icc) * sd * sd;
    let theta = vec![
        (icc * (1.0 - cac) * sd * sd / s2e).sqrt(),
        (icc * cac * sd * sd / s2e).sqrt(),
    ];
    let f = "qpr ~ treat + period + (1|cluster) + (1|cluster:period)";
    let (mut rej, mut sum, mut sum2) = (0usize, 0.0, 0.0);
    let mut d = Dataset::default();
    let mut model: Option<Model> = None;
    for r in 0..reps {
        sim.simulate_into(&mut replicate_rng(5, r), &mut d);
        let df = sim.data_frame(&d);
        match model.as_mut() {
            Some(m) => m.update_data(&df).unwrap(),
            None => model = Some(Model::new(f, &df, true).unwrap()),
        }
        let m = model.as_mut().unwrap();
        let fit = m.fit_at(OptResult::given(&theta, "given"));
        let j = m.frame.x_names.iter().position(|n| n == "treat").unwrap();
        let est = fit.beta[j];
        let se_known = fit.se(j) / fit.sigma * s2e.sqrt();
        assert!(
            (se_known - gls_se).abs() < 1e-9 * gls_se,
            "SE {se_known} vs {gls_se}"
        );
        if (est / se_known).abs() > z {
            rej += 1;
        }
        sum += est;
        sum2 += est * est;
    }
    let n = reps as f64;
    let power = rej as f64 / n;
    let mcse = (power * (1.0 - power) / n).sqrt();
    let mean = sum / n;
    let var = (sum2 - n * mean * mean) / (n - 1.0);
    eprintln!(
        "oracle GLS {sets:?}: power {power:.4} (MC SE {mcse:.4}) vs exact {gls_power:.4}; \
         SD {:.4} vs GLS SE {gls_se:.4}; mean {mean:.3} vs kappa * delta = {:.3}",
        var.sqrt(),
        kappa * delta
    );
    assert!((power - gls_power).abs() < 2.5 * mcse);
    // Var of a normal sample variance: 2σ⁴/(n − 1).
    let se_var = (2.0 / (n - 1.0)).sqrt() * gls_var;
    assert!((var - gls_var).abs() < 3.0 * se_var, "var {var}");
    assert!((mean - kappa * delta).abs() < 3.0 * gls_se / n.sqrt());
}

/// The simulator and the exact GLS formula describe the same model, with
/// and without an implementation lag (which an analysis that ignores it
/// dilutes to κ·δ).
#[test]
fn oracle_gls_matches_exact_gls_power() {
    oracle_check(&[], 6000);
    oracle_check(&["stepped_wedge.lag=[0.5]"], 3000);
}

/// With estimated variance components (14 clusters) the analyses come close
/// to the exact GLS power and, with small-sample df, to the nominal level.
#[test]
fn monte_carlo_power_and_type_one_error() {
    let study = PowerStudy::new(pulsar(&["outcome.measure=continuous"]), true).unwrap();
    let s = common::run_study(&study, 3000, 2026);
    eprint!("{}", power::summary_table(&study, &s));
    let at = |m: &str| s.by_name(m).unwrap();
    let z = &at("lmm_z").effect;
    // The analytic z power allows for estimating the variances
    // (Kackar–Harville; see `expected_small_sample_power`).
    assert!(
        (z.reject - at("lmm_z").analytic).abs() < 2.5 * z.reject_mc_se,
        "z power {} vs expected {}",
        z.reject,
        at("lmm_z").analytic
    );
    let t1 = |m: &str| at(m).null.clone().unwrap();
    let sat = t1("lmm_satterthwaite");
    assert!(
        (sat.reject - 0.05).abs() <= 2.0 * sat.reject_mc_se,
        "Satterthwaite type-I {} (MC SE {})",
        sat.reject,
        sat.reject_mc_se
    );
    // Kenward–Roger is conservative here (0.042, MC SE 0.002 at 10,000
    // replicates); it must not be liberal.
    let kr = t1("lmm_kenward_roger");
    assert!(kr.reject <= 0.05 + 2.0 * kr.reject_mc_se && kr.reject > 0.03);
    // Wald z with 14 clusters is liberal.
    assert!(t1("lmm_z").reject > 0.05);
}

#[test]
fn bad_stepped_wedge_input() {
    let err = |sets: &[&str]| -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        crtsim::config::Config::load(
            concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml"),
            &sets,
        )
        .unwrap_err()
        .to_string()
    };
    assert!(err(&["stepped_wedge.matrix=[[0,1,1],[0,1]]"]).contains("ragged"));
    assert!(err(&["stepped_wedge.sequences=0"]).contains("zero periods"));
    assert!(err(&["outcome.cac=1.2"]).contains("outcome.cac = 1.2: must be in [0, 1]"));
    assert!(err(&["stepped_wedge.lag=[0.5, 0.7, 0.9, 1.0]"])
        .contains("longer than the number of periods (3)"));
    assert!(err(&["outcome.baseline=true"]).contains("outcome.baseline"));
    assert!(err(&["stepped_wedge.sampling=cohort"]).contains("outcome.iac"));
    // A sequence never or always treated is allowed, with a warning.
    let c = pulsar(&["stepped_wedge.matrix=[[0,1,1],[0,0,0],[1,1,1]]"]);
    let d = crtsim::design::Design::from_config(&c).unwrap();
    let w = d.stepped_wedge().unwrap().warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("never") && w[1].contains("every period"));
    assert_eq!(d.warnings(), w);
    // The commands that run the design say so too (stderr), and still run.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtsim"))
        .args([
            "simulate",
            concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml"),
            "--set",
            "stepped_wedge.matrix=[[0,1,1],[0,0,0]]",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: sequence 2 never receives the intervention"),
        "{stderr}"
    );
}

#[test]
fn design_diagram_is_drawn() {
    let dir = std::env::temp_dir().join(format!("crtsim-swplot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for w in crtsim::plot::design_diagram(&pulsar(&[]), &dir.join("design")).unwrap() {
        assert!(
            std::fs::metadata(&w).unwrap().len() > 3000,
            "{}",
            w.display()
        );
    }
    let parallel = common::refocus(&[]);
    let e = crtsim::plot::design_diagram(&parallel, &dir.join("x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("stepped-wedge"), "{e}");
}

/// The default stepped-wedge analyses match lme4 / lmerTest / pbkrtest on
/// two simulated cross-sectional PULSAR trials, one of them a singular fit
/// (the cluster-period variance at zero, as in a third of PULSAR
/// replicates), and a closed cohort (with the individual's own intercept).
/// Values from tests/data/pulsar_lme4.R.
#[test]
fn sw_fits_match_lme4() {
    use crtsim::lmm::inference::{coef_tests_with, TestOptions};
    let cross = "qpr ~ treat + period + (1|cluster) + (1|cluster:period)";
    let cohort = "qpr ~ treat + period + (1|cluster) + (1|cluster:period) + (1|cluster:individual)";
    // (file, formula, singular, REML criterion, θ, [estimate, SE,
    //  Satterthwaite df, p, KR SE, KR df, KR p])
    type Case<'a> = (&'a str, &'a str, bool, f64, &'a [f64], [f64; 7]);
    let want: [Case; 3] = [
        (
            "pulsar_rep0",
            cross,
            false,
            5951.08275229,
            &[0.06474835, 0.12267868],
            [
                7.37820094,
                1.75024664,
                35.831826,
                0.00016105496,
                1.82148299,
                35.846568,
                0.00026140144,
            ],
        ),
        (
            "pulsar_rep1",
            cross,
            true,
            5919.66388591,
            &[0.0, 0.30589562],
            [
                5.00457748,
                1.78489169,
                623.599060,
                0.0052067119,
                1.81439504,
                28.949134,
                0.0099629607,
            ],
        ),
        (
            "pulsar_cohort_rep3",
            cohort,
            false,
            5668.97064609,
            &[1.11988072, 0.15423408, 0.21011792],
            [
                5.93093531,
                1.39189374,
                29.241986,
                0.00019343771,
                1.41760400,
                29.468005,
                0.00023637985,
            ],
        ),
    ];
    let close = |a: f64, b: f64, rel: f64| (a - b).abs() <= rel * b.abs().max(1e-12);
    for (file, formula, singular, reml, theta, exp) in want {
        let path = format!("{}/tests/data/{file}.csv", env!("CARGO_MANIFEST_DIR"));
        let data = crtsim::lmm::data::DataFrame::read_csv(&path).unwrap();
        let mut m = crtsim::lmm::Model::new(formula, &data, true).unwrap();
        let fit = m.fit();
        assert_eq!(fit.singular, singular, "{file}");
        assert!(fit.objective <= reml + 1e-6, "{file}: {}", fit.objective);
        for (a, b) in fit.theta.iter().zip(theta) {
            assert!((a - b).abs() < 1e-4, "{file}: θ {a} vs {b}");
        }
        let j = m.frame.x_names.iter().position(|n| n == "treat").unwrap();
        let t = coef_tests_with(
            &m,
            &fit,
            TestOptions {
                satterthwaite: true,
                kenward_roger: true,
                between_within: false,
            },
        );
        let got = [
            fit.beta[j],
            fit.se(j),
            t.df_satterthwaite[j],
            t.p_satterthwaite[j],
            t.se_kenward_roger[j],
            t.df_kenward_roger[j],
            t.p_kenward_roger[j],
        ];
        for (k, (g, e)) in got.iter().zip(exp).enumerate() {
            assert!(close(*g, e, 1e-3), "{file}, quantity {k}: {g} vs {e}");
        }
    }
}

/// Adherence works in stepped-wedge designs as in parallel ones: each
/// cluster's participation (copula with its cluster effect) scales the effect
/// once it has crossed over; ITT and IV stay unbiased under confounding,
/// the participation analyses do not; participation has its configured mean.
#[test]
fn adherence_in_stepped_wedge() {
    let adh = |conf: f64| {
        pulsar(&[
            "outcome.measure=continuous",
            "adherence.team={dist=\"beta\",mean=0.6,concentration=4}",
            &format!("adherence.confounding={conf}"),
            "analysis.methods=[\"lmm_satterthwaite\",\"adh_dose_response\",\"adh_cace_iv\"]",
        ])
    };
    // Participation: mean 0.6 over clusters (14 per trial).
    let sim = Simulator::new(adh(0.5)).unwrap();
    let n = 2000u64;
    let (mut s1, mut s2, mut k) = (0.0, 0.0, 0.0);
    for r in 0..n {
        let d = sim.simulate(3, r);
        for &p in &d.team_participation {
            s1 += p;
            s2 += p * p;
            k += 1.0;
        }
        if r == 0 {
            // The CSV carries each row's dose: participation once crossed over.
            let mut buf = Vec::new();
            crtsim::output::write_sw_csv(&d, true, &mut buf).unwrap();
            let text = String::from_utf8(buf).unwrap();
            assert!(text.starts_with(
                "cluster,period,sequence,exposure,time_since_crossover,individual,treat,team_adherence,qpr\n"
            ));
        }
    }
    let mean = s1 / k;
    let var = s2 / k - mean * mean;
    assert!((mean - 0.6).abs() < 4.0 * (var / k).sqrt(), "mean {mean}");
    assert!((var - 0.048).abs() < 0.004, "var {var}");

    for (conf, dose_biased) in [(0.0, false), (0.5, true)] {
        let study = PowerStudy::new(adh(conf), false).unwrap();
        let s = common::run_study(&study, 600, 17);
        eprint!("{}", power::summary_table(&study, &s));
        let at = |m: &str| &s.by_name(m).unwrap().effect;
        let (itt, iv, dr) = (
            at("lmm_satterthwaite"),
            at("adh_cace_iv"),
            at("adh_dose_response"),
        );
        assert!((s.true_effect - 6.34 * 0.6).abs() < 1e-9);
        assert!(
            itt.bias.abs() < 3.5 * itt.bias_mc_se,
            "ITT bias {}",
            itt.bias
        );
        assert!(iv.bias.abs() < 3.5 * iv.bias_mc_se, "IV bias {}", iv.bias);
        if dose_biased {
            assert!(
                dr.bias > 4.0 * dr.bias_mc_se,
                "dose-response bias {}",
                dr.bias
            );
        } else {
            assert!(dr.bias.abs() < 3.5 * dr.bias_mc_se, "dose bias {}", dr.bias);
        }
    }
    // Each cluster is its own control: with cluster fixed effects the
    // dose-response compares periods within clusters, and stable cluster
    // quality (the confounder here) drops out.
    let within = PowerStudy::new(
        pulsar(&[
            "outcome.measure=continuous",
            "adherence.team={dist=\"beta\",mean=0.6,concentration=4}",
            "adherence.confounding=0.5",
            "analysis.formula=\"qpr ~ treat + period + cluster + (1|cluster:period)\"",
            "analysis.methods=[\"adh_dose_response\"]",
        ]),
        false,
    )
    .unwrap();
    let sw = common::run_study(&within, 600, 17);
    let dr = &sw.rows[0].effect;
    assert!(
        dr.bias.abs() < 3.5 * dr.bias_mc_se,
        "within-cluster dose bias {}",
        dr.bias
    );
    // The plot's points: each cluster's period-adjusted change after crossover.
    let dir = std::env::temp_dir().join(format!("crtsim-swadh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("sw.csv");
    let sim = Simulator::new(adh(0.5)).unwrap();
    let mut f = std::fs::File::create(&csv).unwrap();
    crtsim::output::write_sw_csv(&sim.simulate(3, 1), true, &mut f).unwrap();
    drop(f);
    let pts = crtsim::plot::adherence_points(&csv).unwrap();
    assert_eq!(pts.len(), 14);
    assert!(pts
        .iter()
        .all(|p| p.participation > 0.0 && p.participation < 1.0));
    for w in crtsim::plot::adherence_scatter(&csv, &dir.join("sw")).unwrap() {
        assert!(std::fs::metadata(&w).unwrap().len() > 5000);
    }
    // No staff level in a stepped-wedge cluster.
    let e = crtsim::config::Config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml"),
        &[
            "adherence.team={dist=\"beta\",mean=0.6,concentration=4}".to_string(),
            "adherence.staff_concentration=5".to_string(),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("adherence.staff_concentration"), "{e}");
}

/// Closed cohorts: the default analysis adds each person's own intercept;
/// its model SE tracks the empirical SE, Satterthwaite holds 5%, and Monte
/// Carlo power agrees with the exact cohort GLS power (individual
/// autocorrelation in the period means). Without the person term the SE is
/// far too large (tested through the formula override).
#[test]
fn cohort_analysis_and_power() {
    let cohort = |sets: &[&str]| {
        let mut all = vec![
            "stepped_wedge.sampling=cohort",
            "outcome.iac=0.6",
            "outcome.measure=continuous",
            // A smaller effect, so that power is informative (about 0.8).
            "effect.difference=4.0",
        ];
        all.extend_from_slice(sets);
        pulsar(&all)
    };
    let c = cohort(&[]);
    assert!(c.analysis_formula().contains("(1|cluster:individual)"));
    assert!(!c
        .analysis_methods()
        .iter()
        .any(|m| m.name() == "lmm_between_within"));
    let study = PowerStudy::new(c, true).unwrap();
    let s = common::run_study(&study, 600, 8);
    eprint!("{}", power::summary_table(&study, &s));
    let at = |m: &str| s.by_name(m).unwrap();
    let z = &at("lmm_z").effect;
    assert!(
        (z.mean_model_se / z.empirical_se - 1.0).abs()
            < 3.0 * z.empirical_se_mc_se / z.empirical_se,
        "model SE {} vs empirical {}",
        z.mean_model_se,
        z.empirical_se
    );
    assert!(
        (z.reject - at("lmm_z").analytic).abs() < 3.0 * z.reject_mc_se,
        "z power {} vs cohort GLS {}",
        z.reject,
        at("lmm_z").analytic
    );
    let sat = at("lmm_satterthwaite").null.clone().unwrap();
    assert!(
        (sat.reject - 0.05).abs() <= 2.5 * sat.reject_mc_se,
        "{}",
        sat.reject
    );
    // Ignoring the cohort (the cross-sectional model) overstates the SE.
    let naive = PowerStudy::new(
        cohort(&["analysis.formula=\"qpr ~ treat + period + (1|cluster) + (1|cluster:period)\""]),
        false,
    )
    .unwrap();
    let sn = common::run_study(&naive, 200, 8);
    let nz = &sn.by_name("lmm_z").unwrap().effect;
    assert!(nz.mean_model_se > 1.15 * nz.empirical_se, "{nz:?}");
}

/// The expected Kenward–Roger power (KR's variance and df at the true
/// parameters, which do not depend on the outcome) predicts the KR test's
/// Monte Carlo power with 14 clusters, where the known-variance GLS power
/// does not; the Kackar–Harville-adjusted z power does the same for the
/// Wald z test. 10,000 replicates.
#[test]
fn expected_small_sample_power() {
    let study = PowerStudy::new(
        pulsar(&[
            "outcome.measure=continuous",
            "analysis.methods=[\"lmm_z\", \"lmm_kenward_roger\"]",
        ]),
        false,
    )
    .unwrap();
    let (ez, ekr) = (
        study.sw_expected_z_power(2014).unwrap(),
        study.sw_expected_kr_power(2014).unwrap(),
    );
    let s = common::run_study(&study, 10_000, 2014);
    for (k, expected) in [(0, ez), (1, ekr)] {
        let e = &s.rows[k].effect;
        eprintln!(
            "{}: Monte Carlo {:.4} (MC SE {:.4}), expected {expected:.4}, known-variance GLS 0.909",
            s.rows[k].analysis, e.reject, e.reject_mc_se
        );
        assert_eq!(s.rows[k].analytic, expected);
        assert!((e.reject - expected).abs() < 2.5 * e.reject_mc_se);
    }
    // The known-variance GLS power is too optimistic for KR.
    let kr = &s.rows[1].effect;
    assert!(0.909 - kr.reject > 5.0 * kr.reject_mc_se);
}

/// Known-variance GLS on simulated trials: each trial of `sets` (on the
/// continuous PULSAR) fitted by GLS at the true variance components and
/// tested with its own known-variance SE. Returns the Monte Carlo power and
/// its SE, the analytic power (averaged over size matrices) and the power at
/// the mean size.
fn gls_at_truth(sets: &[&str], reps: u64) -> (f64, f64, f64, f64) {
    use crtsim::lmm::optim::OptResult;
    use crtsim::lmm::Model;
    use crtsim::rng::replicate_rng;
    use crtsim::simulate::Dataset;
    let mut all = vec!["outcome.measure=continuous"];
    all.extend_from_slice(sets);
    let cfg = pulsar(&all);
    let (sd, icc, cac) = (cfg.outcome.sd, cfg.outcome.icc, cfg.outcome.cac.unwrap());
    let sim = Simulator::new(cfg.clone()).unwrap();
    let averaged = crtsim::analytic::power(&cfg, sim.design(), 0.05, true, "");
    let (var_mean, _) =
        crtsim::analytic::sw_config_gls(&cfg, sim.design(), sim.design().stepped_wedge().unwrap());
    let at_mean = crtsim::analytic::power_from_variance(cfg.effect.difference, var_mean, 0.05);
    let s2e = (1.0 - icc) * sd * sd;
    let theta = vec![
        (icc * (1.0 - cac) * sd * sd / s2e).sqrt(),
        (icc * cac * sd * sd / s2e).sqrt(),
    ];
    let f = "qpr ~ treat + period + (1|cluster) + (1|cluster:period)";
    let mut rej = 0usize;
    let mut d = Dataset::default();
    for r in 0..reps {
        sim.simulate_into(&mut replicate_rng(11, r), &mut d);
        let df = sim.data_frame(&d);
        // Every simulated trial must give a model: a failure fails the test
        // (skipping it would count as a non-rejection and bias the check).
        let mut m = Model::new(f, &df, true)
            .unwrap_or_else(|e| panic!("{sets:?}: replicate {r} gives no model: {e}"));
        let fit = m.fit_at(OptResult::given(&theta, "given"));
        let j = m.frame.x_names.iter().position(|n| n == "treat").unwrap();
        let se_known = fit.se(j) / fit.sigma * s2e.sqrt();
        if (fit.beta[j] / se_known).abs() > 1.959963984540054 {
            rej += 1;
        }
    }
    let p = rej as f64 / reps as f64;
    let mc_se = (p * (1.0 - p) / reps as f64).sqrt();
    eprintln!(
        "{sets:?}: known-variance GLS Monte Carlo {p:.4} (MC SE {mc_se:.4}); averaged over size matrices {averaged:.4}; at the mean size {at_mean:.4}"
    );
    (p, mc_se, averaged, at_mean)
}

fn sw_reps(default: u64) -> u64 {
    std::env::var("CRTSIM_SW_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// With variable cluster-period sizes the known-variance GLS power is the
/// GLS power averaged over size matrices, not the power at the mean size
/// (which is optimistic).
#[test]
fn variable_sizes_average_the_gls_power() {
    let (p, mc_se, averaged, at_mean) = gls_at_truth(
        &["clusters.size={ dist = \"negbin\", mean = 6, cv = 1.0 }"],
        sw_reps(4000),
    );
    assert!(
        (p - averaged).abs() < 2.5 * mc_se,
        "{p} vs averaged {averaged}"
    );
    assert!(
        at_mean - p > 2.5 * mc_se,
        "the mean-size power {at_mean} is optimistic"
    );
}

/// Unequal sizes given per cluster and period, as a trial team knows them.
const GIVEN: &str = "clusters.size={ dist = \"given\", per_cluster_period = [[2,3,2],[30,25,20],[4,4,4],[3,2,30],[6,6,6],[2,2,2],[40,2,2],[5,5,5],[2,30,2],[8,8,8],[3,3,3],[6,4,2],[12,1,1],[2,0,9]] }";

/// Sizes given per cluster and period are simulated exactly (they travel
/// with their cluster, whichever sequence it is randomised to), and the
/// analytic power is the GLS power averaged over randomisations, which
/// matches GLS at the true variances on the simulated trials; the power at
/// the mean size is far from it.
#[test]
fn given_cluster_period_sizes() {
    let cfg = pulsar(&[GIVEN]);
    let rows = cfg.clusters.size.per_cluster_period.clone().unwrap();
    let sim = Simulator::new(cfg).unwrap();
    for r in 0..5 {
        let d = sim.simulate(3, r);
        let mut count = [[0u32; 3]; 14];
        for i in 0..d.len() {
            count[d.team[i] as usize][d.period[i] as usize] += 1;
        }
        for (c, row) in rows.iter().enumerate() {
            assert_eq!(&count[c][..], &row[..], "cluster {c}, replicate {r}");
        }
    }
    let (p, mc_se, averaged, at_mean) = gls_at_truth(&[GIVEN], sw_reps(3000));
    assert!(
        (p - averaged).abs() < 2.5 * mc_se,
        "{p} vs averaged {averaged}"
    );
    assert!(
        (at_mean - p).abs() > 4.0 * mc_se,
        "the mean-size power {at_mean} is not the power of these sizes"
    );
}

/// Sizes given per cluster: a closed cohort of that size in every period;
/// equal given sizes give exactly the fixed-size analytic power.
#[test]
fn given_cluster_sizes() {
    let sizes = "[5,10,15,20,25,30,35,5,10,15,20,25,30,35]";
    let cfg = pulsar(&[
        &format!("clusters.size={{ dist = \"given\", per_cluster = {sizes} }}"),
        "stepped_wedge.sampling=\"cohort\"",
        "outcome.iac=0.5",
    ]);
    assert_eq!(cfg.clusters.size.mean, 20.0);
    let sim = Simulator::new(cfg).unwrap();
    let d = sim.simulate(3, 0);
    let want: Vec<u32> = (0..14).map(|c| 5 * (1 + c % 7) * 3).collect();
    assert_eq!(d.team_size, want, "cohort size x 3 periods");
    let equal = pulsar(&["clusters.size={ dist = \"given\", per_cluster = [18,18,18,18,18,18,18,18,18,18,18,18,18,18] }"]);
    let fixed = pulsar(&[]);
    let p = |c: &crtsim::config::Config| {
        let sim = Simulator::new(c.clone()).unwrap();
        crtsim::analytic::power(c, sim.design(), 0.05, true, "")
    };
    assert_eq!(p(&equal), p(&fixed));
}
