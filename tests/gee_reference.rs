//! crtsim's GEE (`crtsim::glmm::gee`, `crtsim fit --family F --gee V`)
//! against geepack's `geeglm` (exchangeable working correlation) and the
//! Mancl–DeRouen and Kauermann–Carroll SEs computed in R from geepack's
//! solution (tests/data/gee/make_reference_gee.R, whose own sandwich equals
//! geepack's). A missing fixture fails.

use crtsim::glmm::gee::{self, GeeVariance};
use crtsim::glmm::{Family, Glmm};
use crtsim::lmm::data::DataFrame;
use serde_json::Value;
use std::path::PathBuf;

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-8)
}

fn check(name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/gee");
    let text = std::fs::read_to_string(dir.join(format!("fits/{name}.json")))
        .unwrap_or_else(|e| panic!("missing fixture tests/data/gee/fits/{name}.json: {e}"));
    let r: Value = serde_json::from_str(&text).unwrap();
    let data = DataFrame::read_csv(dir.join(r["data"].as_str().unwrap())).unwrap();
    let family = if r["family"] == "binomial" {
        Family::Binomial
    } else {
        Family::Poisson
    };
    let formula = format!(
        "{} + (1|{})",
        r["formula"].as_str().unwrap(),
        r["cluster"].as_str().unwrap()
    );
    let g = Glmm::new(&formula, &data, family, family.canonical(), 1).unwrap();
    let f = gee::fit(&g.model.frame, family, family.canonical(), &g.weights).unwrap();
    assert!(f.converged, "{name}: not converged");
    assert_eq!(f.n as u64, r["n_obs"].as_u64().unwrap(), "{name}: n");
    assert_eq!(
        f.clusters as u64,
        r["n_clusters"].as_u64().unwrap(),
        "{name}: clusters"
    );
    assert!(
        rel(f.alpha, r["alpha"].as_f64().unwrap()) < 1e-4,
        "{name}: alpha {}",
        f.alpha
    );
    assert!(
        rel(f.phi, r["phi"].as_f64().unwrap()) < 1e-6,
        "{name}: phi {}",
        f.phi
    );
    let p = f.beta.len();
    let fixed = r["fixed"].as_array().unwrap();
    assert_eq!(p, fixed.len(), "{name}: number of coefficients");
    for (j, fx) in fixed.iter().enumerate() {
        let term = fx["term"].as_str().unwrap();
        assert_eq!(f.names[j], term);
        let ours = [
            ("estimate", f.beta[j]),
            ("se_model", f.vcov_model[j * p + j].sqrt()),
            ("se_robust", f.se(j, GeeVariance::Robust)),
            ("se_md", f.se(j, GeeVariance::ManclDeRouen)),
            ("se_kc", f.se(j, GeeVariance::KauermannCarroll)),
        ];
        // geepack stops at its own tolerance: estimates agree to 1e-4 of
        // their SE, SEs to a relative 1e-4.
        let se = fx["se_robust"].as_f64().unwrap();
        for (key, v) in ours {
            let want = fx[key].as_f64().unwrap();
            let ok = if key == "estimate" {
                (v - want).abs() < 1e-4 * se
            } else {
                rel(v, want) < 1e-4
            };
            assert!(ok, "{name} {term} {key}: {v} vs {want}");
        }
    }
    assert_eq!(f.df(), (f.clusters - p) as f64);
}

#[test]
fn binary_parallel_trial() {
    check("gee_binary_parallel");
}

#[test]
fn count_parallel_trial() {
    check("gee_count_parallel");
}

#[test]
fn binary_stepped_wedge() {
    check("gee_binary_sw");
}
