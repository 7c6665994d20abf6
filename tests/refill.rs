//! A power loop refills one model in place (`Model::update_data`:
//! `ModelFrame::refill`, `Pls::refresh_single_scalar`); the refilled model
//! must be exactly the model built afresh from the same data, including
//! replicates that lose a whole team to attrition (the level set changes)
//! and the next one that gets it back.

use crtsim::config::Config;
use crtsim::lmm::inference::{
    coef_tests_into, coef_tests_with, CoefTests, Coefs, TestOptions, TestWork,
};
use crtsim::lmm::{Fit, Model};
use crtsim::rng::replicate_rng;
use crtsim::simulate::{Dataset, Simulator};

fn same_model(a: &Model, b: &Model, what: &str) {
    let (fa, fb) = (&a.frame, &b.frame);
    assert_eq!(fa.n, fb.n, "{what}: n");
    assert_eq!(fa.rows, fb.rows, "{what}: rows");
    assert_eq!(fa.n_missing, fb.n_missing, "{what}: n_missing");
    assert_eq!(fa.y, fb.y, "{what}: y");
    assert_eq!(fa.x, fb.x, "{what}: X");
    assert_eq!(fa.xtx, fb.xtx, "{what}: X'X");
    assert_eq!(fa.x_names, fb.x_names, "{what}: names");
    assert_eq!(fa.dropped, fb.dropped, "{what}: dropped");
    assert_eq!(fa.terms.len(), fb.terms.len(), "{what}: terms");
    for (s, t) in fa.terms.iter().zip(&fb.terms) {
        assert_eq!(s.group, t.group, "{what}: term order");
        assert_eq!(s.refs, t.refs, "{what}: refs of {}", s.group);
        assert_eq!(s.z, t.z, "{what}: z of {}", s.group);
        assert_eq!(s.nlevels(), t.nlevels(), "{what}: levels of {}", s.group);
        for k in 0..s.nlevels() {
            assert_eq!(s.levels.name(k), t.levels.name(k), "{what}: level names");
        }
    }
    let (pa, pb) = (&a.pls, &b.pls);
    assert_eq!((pa.n, pa.p, pa.q), (pb.n, pb.p, pb.q), "{what}: PLS sizes");
    assert_eq!(pa.ztxy, pb.ztxy, "{what}: Z'[X y]");
    assert_eq!(pa.xyxy, pb.xyxy, "{what}: [X y]'[X y]");
    assert_eq!(pa.components(), pb.components(), "{what}: components");
}

/// Refill through `reps` replicates of `cfg`; every model equals a fresh one,
/// and so do its fit and tests (bit for bit). Returns how many replicates
/// had a level set different from the previous replicate's.
fn check(cfg: Config, reps: u64) -> usize {
    let formula = cfg.analysis_formula();
    let term = cfg.analysis_term();
    let sim = Simulator::new(cfg).unwrap();
    let mut d = Dataset::default();
    let mut kept: Option<Model> = None;
    let (mut fit, mut tests, mut work) =
        (Fit::default(), CoefTests::default(), TestWork::default());
    let mut changes = 0;
    let mut last_levels = None;
    for rep in 0..reps {
        sim.simulate_into(&mut replicate_rng(11, rep), &mut d);
        let df = sim.data_frame(&d);
        let mut fresh = Model::new(&formula, &df, true).unwrap();
        let m = match kept.as_mut() {
            Some(m) => {
                m.update_data(&df).unwrap();
                m
            }
            None => kept.insert(Model::new(&formula, &df, true).unwrap()),
        };
        let what = format!("replicate {rep}");
        same_model(m, &fresh, &what);
        let levels: Vec<usize> = m.frame.terms.iter().map(|t| t.nlevels()).collect();
        if last_levels.as_ref().is_some_and(|l| *l != levels) {
            changes += 1;
        }
        last_levels = Some(levels);
        m.fit_into(&mut fit);
        let f2 = fresh.fit();
        assert_eq!(fit.theta, f2.theta, "{what}: theta");
        assert_eq!(fit.beta, f2.beta, "{what}: beta");
        assert_eq!(fit.vcov, f2.vcov, "{what}: vcov");
        assert_eq!(fit.b, f2.b, "{what}: b");
        let j = m.frame.x_names.iter().position(|n| n == &term).unwrap();
        coef_tests_into(
            m,
            &fit,
            TestOptions::ALL,
            Coefs::One(j),
            &mut work,
            &mut tests,
        );
        let t2 = coef_tests_with(&fresh, &f2, TestOptions::ALL);
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (s1, s2) = (tests.df_satterthwaite[j], t2.df_satterthwaite[j]);
        assert!(
            same(s1, s2) && s1.is_finite(),
            "{what}: Satterthwaite df {s1} {s2}"
        );
        let (k1, k2) = (tests.df_kenward_roger[j], t2.df_kenward_roger[j]);
        assert!(same(k1, k2), "{what}: KR df {k1} {k2}");
        let (e1, e2) = (tests.se_kenward_roger[j], t2.se_kenward_roger[j]);
        assert!(same(e1, e2), "{what}: KR SE {e1} {e2}");
        let (b1, b2) = (&tests.df_between_within, &t2.df_between_within);
        assert_eq!(bits(b1), bits(b2), "{what}: BW df");
    }
    changes
}

#[test]
fn refilled_models_equal_fresh_ones_with_attrition_that_loses_teams() {
    // Small teams and heavy attrition: whole teams vanish in some replicates.
    let cfg = Config::load(
        "configs/refocus.toml",
        &[
            "attrition.rate=0.6".to_string(),
            "clusters.size.mean=4".to_string(),
            "clusters.size.cv=0.6".to_string(),
        ],
    )
    .unwrap();
    let changes = check(cfg, 300);
    assert!(
        changes >= 10,
        "only {changes} replicates changed the level set"
    );
}

#[test]
fn refilled_models_equal_fresh_ones_in_a_stepped_wedge() {
    let cfg = Config::load("configs/pulsar.toml", &[]).unwrap();
    check(cfg, 100);
}

#[test]
fn refilled_models_equal_fresh_ones_with_staff_and_site_terms() {
    let cfg = Config::load(
        "configs/refocus.toml",
        &[
            "analysis.formula=\"qpr ~ arm + baseline + site + (1|team) + (1|staff)\"".to_string(),
            "attrition.rate=0.5".to_string(),
        ],
    )
    .unwrap();
    check(cfg, 100);
}

#[test]
fn refilled_models_equal_fresh_ones_with_poisson_cluster_period_sizes() {
    // Rows change every replicate; (1|cluster:period) is an interaction and
    // the PLS pattern is refreshed in place (`Pls::refresh_structure`).
    let cfg = Config::load("configs/example_stepped_wedge.toml", &[]).unwrap();
    check(cfg, 100);
    // And a cohort, with its person-level term.
    let cfg = Config::load(
        "configs/example_stepped_wedge.toml",
        &[
            "stepped_wedge.sampling=\"cohort\"".to_string(),
            "outcome.iac=0.5".to_string(),
        ],
    )
    .unwrap();
    check(cfg, 50);
}
