//! Satterthwaite's df by numerical derivatives of the sparse factor (the
//! route of models with one large block of crossed levels) against the
//! analytic route, which matches lmerTest on every vendored reference, on
//! models small enough for both: one to four covariance parameters,
//! crossed, nested and random-slope, REML and ML.

mod common;

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

/// On the boundary: a crossed design whose second and third factors carry
/// no variance (θ_b = 0 exactly), where the numerical derivatives straddle
/// θ = 0.
#[test]
fn numerical_satterthwaite_on_the_boundary() {
    use crtsim::lmm::data::Column;
    let mut next = common::uniforms(99);
    let (mut a, mut b, mut c, mut y) = (vec![], vec![], vec![], vec![]);
    for _ in 0..600 {
        let ai = (next() * 40.0).floor();
        a.push(ai);
        b.push((next() * 30.0).floor());
        c.push((next() * 20.0).floor());
        y.push((ai * 0.37).sin() + (next() - 0.5) * 2.0);
    }
    let d = DataFrame::from_columns(vec![
        Column::numeric("a", a),
        Column::numeric("b", b),
        Column::numeric("c", c),
        Column::numeric("y", y),
    ])
    .unwrap();
    for formula in ["y ~ 1 + (1|a) + (1|b)", "y ~ 1 + (1|a) + (1|b) + (1|c)"] {
        let mut model = Model::new(formula, &d, true).unwrap();
        let fit = model.fit();
        assert!(
            fit.singular && fit.theta[1] == 0.0,
            "{formula}: {:?}",
            fit.theta
        );
        let ls = vec![vec![1.0]];
        let (analytic, _) = inference::contrast_df(&model, &fit, &ls);
        let (numeric, _) = numeric_df::contrast_df(&model, &fit, &ls);
        assert!(
            (analytic[0] - numeric[0]).abs() <= 2e-5 * analytic[0],
            "{formula}: numerical df {}, analytic {}",
            numeric[0],
            analytic[0]
        );
    }
}
