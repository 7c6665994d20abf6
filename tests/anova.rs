//! `crtsim fit --anova`: Type III F tests with Satterthwaite's df against
//! lmerTest's `anova(fit, type = 3)` (tests/data/lme4/anova/anova.json, made
//! by make_anova.R beside it, with the Oats and cake CSVs it exports).

mod common;

use common::{lme4_dir as dir, run_crtsim as run};
use serde_json::Value;

#[test]
fn type3_f_tests_match_lmertest() {
    let path = dir().join("anova/anova.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 4);
    let mut tested = 0;
    for c in &cases {
        let data = dir().join("data").join(c["data"].as_str().unwrap());
        let formula = c["formula"].as_str().unwrap();
        let (code, out, err) = run(&[
            "fit",
            data.to_str().unwrap(),
            "--formula",
            formula,
            "--anova",
            "--json",
        ]);
        assert_eq!(code, 0, "{formula}: {err}");
        let ours: Value = serde_json::from_str(&out).unwrap();
        let rows = ours["anova"].as_array().unwrap();
        for r in c["rows"].as_array().unwrap() {
            let term = r["term"].as_str().unwrap();
            let o = rows
                .iter()
                .find(|x| x["term"] == r["term"])
                .unwrap_or_else(|| panic!("{formula}: no row for {term}"));
            assert_eq!(o["num_df"], r["num_df"], "{formula}: {term}");
            assert!(o["not_tested"].is_null(), "{formula}: {o}");
            let rel = |k: &str| {
                let (a, b) = (o[k].as_f64().unwrap(), r[k].as_f64().unwrap());
                (a - b).abs() / b.abs().max(1e-300)
            };
            assert!(rel("f") < 1e-4, "{formula}: {term} F {o} against {r}");
            assert!(rel("den_df") < 1e-4, "{formula}: {term} df {o} against {r}");
            assert!(rel("p") < 1e-4, "{formula}: {term} p {o} against {r}");
            tested += 1;
        }
    }
    // SW treat and period, Oats nitro and Variety, cake recipe, temp (both
    // contained in recipe:temp) and recipe:temp, and an unbalanced trial's
    // factor(arm) and site (contained in their interaction), baseline and
    // factor(arm):site.
    assert_eq!(tested, 11);
}

#[test]
fn a_one_df_term_has_the_coefficient_tests_df_and_f_is_t_squared() {
    let data = dir().join("data/crt_stepped_wedge.csv");
    let f = "qpr ~ treat + period + (1|cluster) + (1|cluster:period)";
    let (code, out, err) = run(&[
        "fit",
        data.to_str().unwrap(),
        "--formula",
        f,
        "--anova",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let treat = v["fixed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["term"] == "treat")
        .unwrap();
    let row = &v["anova"][0];
    assert_eq!(row["term"], "treat");
    let t = treat["t"].as_f64().unwrap();
    assert!((row["f"].as_f64().unwrap() - t * t).abs() < 1e-9 * (1.0 + t * t));
    let (a, b) = (
        row["den_df"].as_f64().unwrap(),
        treat["df_satterthwaite"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-8 * b, "{a} against {b}");
}

#[test]
fn anova_with_other_df_or_a_glmm_is_refused() {
    let data = dir().join("data/crt_parallel.csv");
    let d = data.to_str().unwrap();
    for extra in [vec!["--df", "kenward-roger"], vec!["--family", "poisson"]] {
        let mut a = vec!["fit", d, "--formula", "qpr ~ arm + (1|team)", "--anova"];
        a.extend(extra.iter().copied());
        let (code, _, err) = run(&a);
        assert_eq!(code, 2, "{a:?}: {err}");
        assert!(err.contains("--anova"), "{err}");
    }
}
