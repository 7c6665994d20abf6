//! Satterthwaite's df by numerical derivatives of the sparse factor (the
//! route of models with one large block of crossed levels) against the
//! analytic route, which matches lmerTest on every vendored reference, on
//! models small enough for both: one to four covariance parameters,
//! crossed, nested and random-slope, REML and ML.

use crtsim::lmm::data::DataFrame;
use crtsim::lmm::{inference, numeric_df, Model};

fn data(name: &str) -> DataFrame {
    let path = format!(
        "{}/tests/data/lme4/data/{name}.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    DataFrame::read_csv(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn numerical_satterthwaite_equals_the_analytic_df() {
    for (file, formula) in [
        ("penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
        ("sleepstudy", "Reaction ~ Days + (Days|Subject)"),
        ("pastes", "strength ~ 1 + (1|batch) + (1|batch:cask)"),
        (
            "crt_stepped_wedge",
            "qpr ~ treat + factor(period) + (1|cluster) + (1|cluster:period)",
        ),
        (
            "oats",
            "yield ~ nitro + Variety + (1|Block) + (1|Block:Variety)",
        ),
    ] {
        let d = data(file);
        for reml in [true, false] {
            let mut model = Model::new(formula, &d, reml).unwrap();
            let fit = model.fit();
            let p = fit.beta.len();
            let ls: Vec<Vec<f64>> = (0..p)
                .map(|j| (0..p).map(|c| f64::from(u8::from(c == j))).collect())
                .chain(std::iter::once(vec![1.0; p]))
                .collect();
            let (analytic, cut_a) = inference::contrast_df(&model, &fit, &ls);
            let (numeric, cut_n) = numeric_df::contrast_df(&model, &fit, &ls);
            assert_eq!(cut_a, cut_n, "{formula} (REML {reml}): eigenvalues cut");
            for (k, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
                assert!(
                    (a - n).abs() <= 2e-5 * a.abs(),
                    "{formula} (REML {reml}), contrast {k}: numerical df {n}, analytic {a}"
                );
            }
        }
    }
}
