//! lme4's InstEval, the ratings of its first 500 students (13,049 rows;
//! 500 students crossed with 1,080 lecturers), against lme4 and lmerTest
//! (tests/data/lme4/insteval, made by make_insteval_subsample.R): the
//! crossed fit whose filled-in block is factored dense, and Satterthwaite's
//! df by the numerical route for one large block of levels.

use crtsim::lmm::data::DataFrame;
use crtsim::lmm::inference::{coef_tests_with, TestOptions};
use crtsim::lmm::{numeric_df, Model};

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/data/lme4/insteval/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn insteval_subsample_matches_lme4_and_lmertest() {
    let path = fixture("insteval_500.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let r: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {path}"));
    let data = DataFrame::read_csv(fixture("insteval_500.csv")).expect("insteval_500.csv");
    let mut model = Model::new(r["formula"].as_str().unwrap(), &data, true).unwrap();
    assert_eq!(model.frame.n as f64, num("n_obs"));
    // The 500 students' columns fill in once the 1,080 lecturers are
    // eliminated: most of them (404) are the dense block.
    let (q, from) = (model.pls.q, model.pls.dense_from);
    assert!(from >= 1080 && q - from >= 300, "dense block {from}..{q}");
    assert!(numeric_df::applies(&model));
    let fit = model.fit();
    let crit = num("reml_criterion");
    assert!(
        fit.objective <= crit + 1e-6 * crit.abs(),
        "REML criterion {} against lme4's {crit}",
        fit.objective
    );
    assert!((fit.objective - crit).abs() < 1e-6 * crit.abs());
    for (t, want) in fit.theta.iter().zip(r["theta"].as_array().unwrap()) {
        let want = want.as_f64().unwrap();
        assert!((t - want).abs() < 1e-4 * want, "theta {t} against {want}");
    }
    assert!((fit.sigma - num("sigma")).abs() < 1e-6 * num("sigma"));
    let est = r["estimate"].as_f64().unwrap();
    assert!((fit.beta[0] - est).abs() < 1e-6 * est.abs());
    let se = r["se"].as_f64().unwrap();
    assert!(
        (fit.se(0) - se).abs() < 1e-5 * se,
        "SE {} against {se}",
        fit.se(0)
    );
    let df = r["df_satterthwaite"].as_f64().unwrap();
    let tests = coef_tests_with(
        &model,
        &fit,
        TestOptions {
            satterthwaite: true,
            kenward_roger: false,
            between_within: false,
        },
    );
    let got = tests.df_satterthwaite[0];
    assert!(
        (got - df).abs() < 1e-4 * df,
        "Satterthwaite df {got} against lmerTest's {df}"
    );
}
