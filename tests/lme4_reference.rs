//! The LMM engine against lme4 / lmerTest / pbkrtest reference fits in
//! tests/data/lme4 (tolerances from its README; `make_reference.R` there
//! regenerates them).

use crtsim::lmm::data::DataFrame;
use crtsim::lmm::formula::Formula;
use crtsim::lmm::inference::{coef_tests, lrt};
use crtsim::lmm::Model;
use serde_json::Value;
use std::path::PathBuf;

/// The vendored reference fits (a missing fixture fails the test).
fn reference_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/lme4");
    assert!(d.join("fits").is_dir(), "{} is missing", d.display());
    d
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

struct Report {
    failures: Vec<String>,
}

impl Report {
    fn check(&mut self, case: &str, what: &str, ours: f64, theirs: f64, tol: f64, absolute: bool) {
        let err = if absolute {
            (ours - theirs).abs()
        } else {
            rel(ours, theirs)
        };
        if err.is_nan() || err > tol {
            self.failures.push(format!(
                "{case}: {what}: ours {ours:.10e}, lme4 {theirs:.10e} ({} error {err:.2e} > {tol:.0e})",
                if absolute { "absolute" } else { "relative" }
            ));
        }
    }
}

fn run_case(dir: &std::path::Path, name: &str, rep: &mut Report) {
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("fits/{name}.json"))).unwrap(),
    )
    .unwrap();
    let data = DataFrame::read_csv(dir.join(r["data"].as_str().unwrap())).unwrap();
    let reml = r["reml"].as_bool().unwrap();
    let mut model = Model::new(r["formula"].as_str().unwrap(), &data, reml).unwrap();
    let fit = model.fit();
    let tests = coef_tests(&model, &fit);
    let singular = r["singular"].as_bool().unwrap();
    assert_eq!(fit.singular, singular, "{name}: singular flag");
    assert_eq!(fit.n as u64, r["n_obs"].as_u64().unwrap(), "{name}: n_obs");
    // Objective: within 1e-5 absolute, or lower than lme4's.
    let obj = r["objective"].as_f64().unwrap();
    if fit.objective > obj {
        rep.check(name, "objective", fit.objective, obj, 1e-5, true);
    }
    eprintln!(
        "{name}: objective ours {:.8} lme4 {obj:.8} (diff {:+.2e}); theta {:?} vs {}",
        fit.objective,
        fit.objective - obj,
        fit.theta,
        r["theta"]
    );
    let fixed = r["fixed"].as_array().unwrap();
    assert_eq!(
        fixed.len(),
        fit.beta.len(),
        "{name}: number of coefficients"
    );
    for (j, f) in fixed.iter().enumerate() {
        let term = f["term"].as_str().unwrap();
        assert_eq!(term, fit.names[j], "{name}: coefficient name");
        let tol = 1e-4;
        rep.check(
            name,
            &format!("{term} estimate"),
            fit.beta[j],
            f["estimate"].as_f64().unwrap(),
            tol,
            false,
        );
        rep.check(
            name,
            &format!("{term} se"),
            fit.se(j),
            f["se"].as_f64().unwrap(),
            tol,
            false,
        );
        let dfs = f["df_satterthwaite"].as_f64().unwrap();
        rep.check(
            name,
            &format!("{term} df Satterthwaite"),
            tests.df_satterthwaite[j],
            dfs,
            1e-3,
            false,
        );
        rep.check(
            name,
            &format!("{term} p Satterthwaite"),
            tests.p_satterthwaite[j],
            f["p_satterthwaite"].as_f64().unwrap(),
            1e-3,
            false,
        );
        if let Some(dfk) = f["df_kenward_roger"].as_f64() {
            rep.check(
                name,
                &format!("{term} df KR"),
                tests.df_kenward_roger[j],
                dfk,
                1e-3,
                false,
            );
            rep.check(
                name,
                &format!("{term} se KR"),
                tests.se_kenward_roger[j],
                f["se_kenward_roger"].as_f64().unwrap(),
                1e-4,
                false,
            );
            rep.check(
                name,
                &format!("{term} p KR"),
                tests.p_kenward_roger[j],
                f["p_kenward_roger"].as_f64().unwrap(),
                1e-3,
                false,
            );
        }
    }
    if !singular {
        let vc = model.varcorr(&fit);
        let rv = r["random"].as_array().unwrap();
        assert_eq!(vc.len(), rv.len(), "{name}: variance components");
        for (a, b) in vc.iter().zip(rv) {
            assert_eq!(a.group, b["group"].as_str().unwrap(), "{name}: group order");
            rep.check(
                name,
                &format!("{} {:?} {:?} vcov", a.group, a.term1, a.term2),
                a.vcov,
                b["vcov"].as_f64().unwrap(),
                1e-4,
                false,
            );
        }
        rep.check(
            name,
            "sigma",
            fit.sigma,
            r["sigma"].as_f64().unwrap(),
            1e-4,
            false,
        );
        // Conditional modes.
        for (g, _, levels) in model.ranef(&fit) {
            let rg = &r["ranef"][&g];
            for (l, v) in levels {
                let rvals: Vec<f64> = match &rg[&l] {
                    Value::Array(a) => a.iter().map(|x| x.as_f64().unwrap()).collect(),
                    x => vec![x.as_f64().unwrap()],
                };
                for (a, b) in v.iter().zip(&rvals) {
                    // Scale-aware: relative to the spread of that factor's modes.
                    rep.check(
                        name,
                        &format!("ranef {g} {l}"),
                        *a,
                        *b,
                        1e-3 * (1.0 + b.abs()),
                        true,
                    );
                }
            }
        }
    }
    rep.check(
        name,
        "AIC",
        fit.aic(),
        r["aic"].as_f64().unwrap(),
        1e-5,
        true,
    );
    rep.check(
        name,
        "BIC",
        fit.bic(),
        r["bic"].as_f64().unwrap(),
        1e-5,
        true,
    );
    if let Some(l) = r.get("lrt") {
        let null_f = l["null_formula"].as_str().unwrap();
        let mut null = Model::new(null_f, &data, false).unwrap();
        let f0 = null.fit();
        let res = lrt(&f0, &fit);
        rep.check(
            name,
            "LRT chisq",
            res.chisq,
            l["chisq"].as_f64().unwrap(),
            1e-4,
            false,
        );
        rep.check(name, "LRT df", res.df, l["df"].as_f64().unwrap(), 0.0, true);
        rep.check(name, "LRT p", res.p, l["p"].as_f64().unwrap(), 1e-3, false);
        let _ = Formula::parse(null_f).unwrap();
    }
}

#[test]
fn all_reference_fits_match_lme4() {
    let dir = reference_dir();
    let mut names: Vec<String> = std::fs::read_dir(dir.join("fits"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 13);
    let mut rep = Report {
        failures: Vec::new(),
    };
    for n in &names {
        run_case(&dir, n, &mut rep);
    }
    assert!(
        rep.failures.is_empty(),
        "{} mismatches:\n{}",
        rep.failures.len(),
        rep.failures.join("\n")
    );
}
