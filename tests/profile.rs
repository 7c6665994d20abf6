//! Profile-likelihood intervals (`crtsim fit --profile`) against lme4's
//! profiles (tests/data/lme4/profile, made by make_profile.R): sleepstudy's
//! random-slope model, correlated and uncorrelated, Penicillin's crossed
//! model at 95% and 90%, and a stepped wedge with cluster and
//! cluster-period effects: every SD, correlation, sigma and fixed effect.
//! lme4 inverts an interpolating spline of its tabulated profile, so the
//! references use a fine grid (on lme4's default grid one end is off by
//! 4e-3); crtsim finds each end as a root, and the two agree to 1e-5
//! relative (1.1e-7 measured), well inside the 1e-3 issue 14 asks for.

mod common;

use common::{lme4_dir, run_crtsim};
use serde_json::Value;

#[test]
fn profile_intervals_match_lme4() {
    let dir = lme4_dir();
    let path = dir.join("profile/profile.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r: Value = serde_json::from_str(&text).expect("JSON");
    let mut worst = 0.0f64;
    for case in r["cases"].as_array().unwrap() {
        let data = dir.join("data").join(case["data"].as_str().unwrap());
        let formula = case["formula"].as_str().unwrap();
        let level = case["level"].as_f64().unwrap();
        let level_arg = level.to_string();
        let (code, out, err) = run_crtsim(&[
            "fit",
            data.to_str().unwrap(),
            "--formula",
            formula,
            "--profile",
            "--level",
            &level_arg,
            "--json",
        ]);
        assert_eq!(code, 0, "{formula}: {err}");
        let v: Value = serde_json::from_str(&out).expect("JSON output");
        let got = v["profile"].as_array().expect("profile array");
        let want = case["intervals"].as_array().unwrap();
        assert_eq!(
            got.len(),
            want.len(),
            "{formula}: one interval per parameter"
        );
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                g["name"], w["name"],
                "{formula}: lme4's names, in its order"
            );
            assert_eq!(g["level"].as_f64(), Some(level));
            for end in ["lower", "upper"] {
                let (a, b) = (g[end].as_f64().unwrap(), w[end].as_f64().unwrap());
                let rel = (a - b).abs() / b.abs().max(0.1);
                worst = worst.max(rel);
                assert!(
                    rel < 1e-5,
                    "{formula} at {level}: {} {end} {a}, lme4 {b}",
                    w["name"]
                );
            }
        }
    }
    eprintln!("largest relative difference from lme4: {worst:.2e}");
}

/// The summary prints the table; a GLMM refuses --profile in one line.
#[test]
fn profile_table_and_refusals() {
    let dir = lme4_dir();
    let data = dir.join("data/penicillin.csv");
    let data = data.to_str().unwrap();
    let (code, out, err) = run_crtsim(&[
        "fit",
        data,
        "--formula",
        "diameter ~ 1 + (1|plate) + (1|sample)",
        "--profile",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Profile-likelihood 95% intervals"), "{out}");
    assert!(
        out.contains("sd_(Intercept)|plate") && out.contains(" sigma "),
        "{out}"
    );
    // The refusal comes before the data are read, so check the fixture
    // itself: a missing one fails here rather than passing unseen.
    let binary = dir.join("../glmm/data/crt_binary_parallel.csv");
    assert!(binary.is_file(), "{} is missing", binary.display());
    let (code, _, err) = run_crtsim(&[
        "fit",
        binary.to_str().unwrap(),
        "--formula",
        "recovered ~ arm + (1|team)",
        "--family",
        "binomial",
        "--profile",
    ]);
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--profile"), "{err}");
}
