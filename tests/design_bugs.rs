//! Silent inconsistencies between the design, the analytic formulas and the
//! analyses (issue 11's bug list), each checked against its right answer.

use crtsim::config::Config;
use crtsim::design::Design;

fn refocus(sets: &[&str]) -> Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml"),
        &sets,
    )
    .unwrap()
}

#[test]
fn ancova_is_decided_by_the_fixed_terms_not_by_a_substring() {
    let cfg = refocus(&[]);
    let d = Design::from_config(&cfg).unwrap();
    let p = |f: &str| crtsim::analytic::power(&cfg, &d, 0.05, false, f);
    let adjusted = p("qpr ~ arm + baseline + site + (1|team)");
    let unadjusted = p("qpr ~ arm + site + (1|team)");
    assert!(adjusted > unadjusted + 0.05, "{adjusted} vs {unadjusted}");
    // A random slope on baseline is no adjustment of the fixed effects (it
    // used to count as one because the formula text contains "baseline").
    assert_eq!(p("qpr ~ arm + site + (baseline|team)"), unadjusted);
}

fn sw_err(sets: &[&str]) -> String {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/example_stepped_wedge.toml"
        ),
        &sets,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default()
}

#[test]
fn parallel_only_keys_are_refused_in_a_stepped_wedge() {
    // icc_staff 0.3 used to shrink the residual variance without simulating
    // staff effects: simulated variance 69 where 100 was configured.
    for (set, key) in [
        ("outcome.icc_staff=0.3", "outcome.icc_staff = 0.3"),
        ("clusters.staff_per_team=4", "clusters.staff_per_team = 4"),
        ("clusters.treated=6", "clusters.treated = 6"),
        ("clusters.sites=[\"a\", \"b\"]", "clusters.sites"),
    ] {
        let e = sw_err(&[set]);
        assert!(
            e.contains(key) && e.contains("not modelled in a stepped-wedge"),
            "{set}: {e}"
        );
    }
}

#[test]
fn cohort_iac_must_fit_the_measurement_noise() {
    // iac 0.99 with item noise 1 needs a latent correlation of 1.1; the
    // simulator used to clamp it silently.
    let e = sw_err(&[
        "stepped_wedge.sampling=\"cohort\"",
        "outcome.iac=0.99",
        "outcome.measure=\"qpr15_items\"",
        "outcome.item_noise=1",
    ]);
    assert!(
        e.contains("outcome.iac = 0.99") && e.contains("latent individual correlation"),
        "{e}"
    );
    assert_eq!(
        sw_err(&[
            "stepped_wedge.sampling=\"cohort\"",
            "outcome.iac=0.5",
            "outcome.measure=\"qpr15_items\"",
            "outcome.item_noise=1",
        ]),
        ""
    );
}

#[test]
fn stepped_wedge_expected_kr_power_uses_the_runs_seed() {
    // With variable cluster-period sizes the design the expected KR power is
    // evaluated on depends on the seed; it used to be trial.seed's whatever
    // --seed the run had.
    let sets: Vec<String> = [
        "clusters.size={ dist = \"poisson\", mean = 12 }",
        "analysis.methods=[\"lmm_kenward_roger\"]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = Config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml"),
        &sets,
    )
    .unwrap();
    let study = crtsim::power::PowerStudy::new(cfg, false).unwrap();
    let opts = |seed: u64| crtsim::power::RunOptions {
        reps: 2,
        seed,
        threads: 1,
        shard: (1, 1),
        out: None,
        resume: false,
    };
    let at_trial_seed = study.sw_expected_kr_power(2014).unwrap();
    let s = crtsim::power::execute(&study, &opts(99), |_, _| {}).unwrap();
    let at_99 = study.sw_expected_kr_power(99).unwrap();
    assert_ne!(at_99, at_trial_seed, "Poisson sizes: the designs differ");
    assert_eq!(s.rows[0].analytic, at_99);
}

#[test]
fn run_identity_is_canonical_and_old_manifests_still_resume() {
    // The identity hashes canonical JSON (sorted keys, shortest round-trip
    // numbers), not the TOML crate's layout: pinned, so a dependency upgrade
    // that changed it would fail here rather than orphan users' runs.
    let cfg = refocus(&[]);
    let id = crtsim::power::config_hash(&cfg).unwrap();
    assert_eq!(id, "4918bda6e291458b");
    // A manifest written before (hash of the TOML text) is still the same run.
    let dir = std::env::temp_dir().join(format!("crtsim-legacy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let study = crtsim::power::PowerStudy::new(cfg, false).unwrap();
    let mut o = crtsim::power::RunOptions {
        reps: 20,
        seed: 3,
        threads: 1,
        shard: (1, 1),
        out: Some(dir.clone()),
        resume: false,
    };
    crtsim::power::execute(&study, &o, |_, _| {}).unwrap();
    let path = dir.join("run.json");
    let legacy = crtsim::power::legacy_config_hash(&study.config_text);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&id, &legacy);
    std::fs::write(&path, text).unwrap();
    o.reps = 40;
    o.resume = true;
    let s = crtsim::power::execute(&study, &o, |_, _| {}).unwrap();
    assert_eq!(s.reps, 40);
    assert!(
        std::fs::read_to_string(&path).unwrap().contains(&id),
        "manifest upgraded"
    );
}
