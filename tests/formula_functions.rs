//! Formula functions (issue 14): `crtsim fit` on models with poly(),
//! scale(), I(), log(), exp(), sqrt(), factor(), as.numeric(), offset() and
//! (x || g) against lme4's lmer (tests/data/lme4/functions/functions.json,
//! made by make_functions.R beside it), and the errors for what it cannot do.

mod common;

use common::{lme4_dir as dir, run_crtsim as run};
use serde_json::Value;

#[test]
fn formula_functions_match_lmer() {
    check_against("functions/functions.json", &[], 10);
}

/// `--contrasts sum` gives R's contr.sum coding (names, estimates, SEs).
#[test]
fn sum_contrasts_match_lmer() {
    check_against("functions/contrasts_sum.json", &["--contrasts", "sum"], 2);
}

/// Type III F tests do not depend on the coding.
#[test]
fn type3_tests_are_the_same_under_either_coding() {
    let data = dir().join("data/cake.csv");
    let f = "angle ~ recipe * temp + (1|recipe:replicate)";
    let table = |extra: &[&str]| -> Vec<Value> {
        let mut a = vec![
            "fit",
            data.to_str().unwrap(),
            "--formula",
            f,
            "--anova",
            "--json",
        ];
        a.extend_from_slice(extra);
        let (code, out, err) = run(&a);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        v["anova"].as_array().unwrap().clone()
    };
    let (t, s) = (table(&[]), table(&["--contrasts", "sum"]));
    assert_eq!(t.len(), 3);
    for (a, b) in t.iter().zip(&s) {
        for k in ["f", "den_df"] {
            let (x, y) = (a[k].as_f64().unwrap(), b[k].as_f64().unwrap());
            assert!(
                (x - y).abs() < 1e-7 * (1.0 + x.abs()),
                "{}: {k} {x} vs {y}",
                a["term"]
            );
        }
    }
}

fn check_against(file: &str, extra: &[&str], n: usize) {
    let path = dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), n);
    for c in &cases {
        let data = dir().join("data").join(c["data"].as_str().unwrap());
        let formula = c["formula"].as_str().unwrap();
        let mut args = vec![
            "fit",
            data.to_str().unwrap(),
            "--formula",
            formula,
            "--df",
            "z",
            "--json",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{formula}: {err}");
        let ours: Value = serde_json::from_str(&out).unwrap();
        let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * (1.0 + b.abs());
        let (o, r) = (
            ours["objective"].as_f64().unwrap(),
            c["objective"].as_f64().unwrap(),
        );
        assert!(
            close(o, r, 1e-7),
            "{formula}: REML criterion {o} against {r}"
        );
        let ours_fixed = ours["fixed"].as_array().unwrap();
        let ref_fixed = c["fixed"].as_array().unwrap();
        let names = |v: &[Value]| -> Vec<String> {
            v.iter()
                .map(|f| f["term"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(ours_fixed), names(ref_fixed), "{formula}");
        for (a, b) in ours_fixed.iter().zip(ref_fixed) {
            let g = |v: &Value, k: &str| v[k].as_f64().unwrap();
            assert!(
                close(g(a, "estimate"), g(b, "estimate"), 1e-6),
                "{formula}: {} estimate {} against {}",
                b["term"],
                g(a, "estimate"),
                g(b, "estimate")
            );
            assert!(
                close(g(a, "se"), g(b, "se"), 1e-5),
                "{formula}: {} SE {} against {}",
                b["term"],
                g(a, "se"),
                g(b, "se")
            );
        }
    }
}

#[test]
fn unsupported_and_invalid_functions_are_one_line_errors() {
    for (file, formula, needle) in [
        (
            "sleepstudy.csv",
            "Reaction ~ foo(Days) + (1|Subject)",
            "unsupported function `foo()`",
        ),
        (
            "sleepstudy.csv",
            "Reaction ~ I(bar(Days)) + (1|Subject)",
            "unsupported function `bar()`",
        ),
        (
            "sleepstudy.csv",
            "Reaction ~ log(Days) + (1|Subject)",
            "`log(Days)` is -inf in data row 1",
        ),
        (
            "sleepstudy.csv",
            "Reaction ~ sqrt(Days - 5) + (1|Subject)",
            "`sqrt(Days - 5)` is NaN in data row 1",
        ),
        (
            "sleepstudy.csv",
            "Reaction ~ poly(Days, 0) + (1|Subject)",
            "poly's degree",
        ),
        (
            "sleepstudy.csv",
            "Reaction ~ poly(Days, 12) + (1|Subject)",
            "needs at least 13 distinct values",
        ),
        (
            "sleepstudy.csv",
            "Reaction ~ Days + (1 + offset(Days)|Subject)",
            "offset()",
        ),
        (
            "sleepstudy.csv",
            "Reaction ~ offset(Days):Days + (1|Subject)",
            "offset() is a term of its own",
        ),
        (
            "sleepstudy.csv",
            "Reaction ~ log(Reaction) + (1|Subject)",
            "cannot predict itself",
        ),
        (
            "crt_parallel.csv",
            "qpr ~ as.numeric(site) + (1|team)",
            "`site` has the value `S1`, which is not a number",
        ),
        (
            "crt_parallel.csv",
            "qpr ~ scale(site) + (1|team)",
            "`site` is a categorical column",
        ),
    ] {
        let data = dir().join("data").join(file);
        let (code, _, err) = run(&["fit", data.to_str().unwrap(), "--formula", formula]);
        assert_eq!(code, 2, "{formula}: {err}");
        assert!(err.contains(needle), "{formula}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// The basis of poly(x, 4) equals R's to 1e-10 (poly.json, by
/// make_functions.R).
#[test]
fn poly_basis_matches_r() {
    let path = dir().join("functions/poly.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    let f = |a: &Value| -> Vec<f64> {
        a.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let x = f(&v["x"]);
    let ours = crtsim::lmm::transform::poly(&x, 4).unwrap();
    for (k, col) in v["basis"].as_array().unwrap().iter().enumerate() {
        for (a, b) in ours[k].iter().zip(f(col)) {
            assert!(
                (a - b).abs() < 1e-10,
                "degree {}: {a} against R's {b}",
                k + 1
            );
        }
    }
}

/// An expression nested 20,000 deep is refused at a bounded depth (no stack
/// overflow), with one line that does not echo the whole formula.
#[test]
fn deeply_nested_expressions_are_refused() {
    let data = dir().join("data/sleepstudy.csv");
    let f = format!(
        "Reaction ~ I({}Days{}) + (1|Subject)",
        "(".repeat(20_000),
        ")".repeat(20_000)
    );
    let (code, _, err) = run(&["fit", data.to_str().unwrap(), "--formula", &f]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nests more than 100 deep"), "{err}");
    assert!(err.len() < 300, "{}", err.len());
}
