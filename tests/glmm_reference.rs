//! crtsim's GLMM (`crtsim::glmm`) against lme4's `glmer` on the six
//! reference fits vendored in tests/data/glmm (made by
//! `make_reference_glmm.R` there; tolerances from its README): estimates,
//! SEs and random-effect SDs to a relative 1e-3, −2 log-likelihood to an
//! absolute 1e-3 or lower (a better optimum). A missing fixture fails.

use crtsim::glmm::{report, Family, Glmm, Link};
use crtsim::lmm::data::DataFrame;
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/glmm");
    assert!(
        d.join("fits").is_dir(),
        "missing fixture directory {}",
        d.display()
    );
    d
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-8)
}

fn fit(name: &str) -> (Value, Value) {
    let d = dir();
    let text = std::fs::read_to_string(d.join(format!("fits/{name}.json")))
        .unwrap_or_else(|e| panic!("missing fixture fits/{name}.json: {e}"));
    let r: Value = serde_json::from_str(&text).unwrap();
    let data = DataFrame::read_csv(d.join(r["data"].as_str().unwrap())).unwrap();
    let family = match r["family"].as_str().unwrap() {
        "binomial" => Family::Binomial,
        _ => Family::Poisson,
    };
    let nagq = r["nAGQ"].as_u64().unwrap() as usize;
    let mut g = Glmm::new(
        r["formula"].as_str().unwrap(),
        &data,
        family,
        family.canonical(),
        nagq,
    )
    .unwrap();
    assert_eq!(
        g.link,
        if family == Family::Binomial {
            Link::Logit
        } else {
            Link::Log
        }
    );
    let f = g.fit().unwrap();
    assert!(f.optimizer.converged, "{name}: optimiser did not converge");
    (r, report::to_json(&g, &f))
}

/// Check one case; `se_tol` is the relative tolerance on the SEs.
fn check(name: &str, se_tol: f64) {
    let (r, o) = fit(name);
    let dev = o["minus_two_loglik"].as_f64().unwrap();
    let rdev = r["minus_two_loglik"].as_f64().unwrap();
    assert!(dev <= rdev + 1e-3, "{name}: -2logLik {dev} vs lme4 {rdev}");
    assert_eq!(o["n_obs"], r["n_obs"], "{name}: n_obs");
    assert_eq!(o["singular"], r["singular"], "{name}: singular");
    let singular = r["singular"].as_bool().unwrap();
    // The README's tolerances leave a singular fit's SEs unchecked (only
    // estimates and the log-likelihood); they are still held to 1e-2 here.
    let se_tol = if singular { se_tol.max(1e-2) } else { se_tol };
    let (rf, of) = (
        r["fixed"].as_array().unwrap(),
        o["fixed"].as_array().unwrap(),
    );
    assert_eq!(of.len(), rf.len(), "{name}: number of fixed effects");
    let mut worst = (0.0f64, 0.0f64);
    for (a, b) in rf.iter().zip(of) {
        let term = a["term"].as_str().unwrap();
        assert_eq!(b["term"].as_str().unwrap(), term);
        let (e1, e2) = (
            b["estimate"].as_f64().unwrap(),
            a["estimate"].as_f64().unwrap(),
        );
        assert!(rel(e1, e2) < 1e-3, "{name} {term}: estimate {e1} vs {e2}");
        let (s1, s2) = (b["se"].as_f64().unwrap(), a["se"].as_f64().unwrap());
        assert!(rel(s1, s2) < se_tol, "{name} {term}: se {s1} vs {s2}");
        worst = (worst.0.max(rel(e1, e2)), worst.1.max(rel(s1, s2)));
    }
    let th_r: Vec<f64> = match &r["theta"] {
        Value::Array(v) => v.iter().map(|x| x.as_f64().unwrap()).collect(),
        x => vec![x.as_f64().unwrap()],
    };
    let th_o: Vec<f64> = o["theta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(th_o.len(), th_r.len(), "{name}: length of theta");
    let th_worst = th_o
        .iter()
        .zip(&th_r)
        .map(|(a, b)| if *b == 0.0 { a.abs() } else { rel(*a, *b) })
        .fold(0.0f64, f64::max);
    // The README's table (visible with --nocapture).
    eprintln!(
        "{name}: -2logLik difference {:+.2e}, worst estimate {:.1e}, worst SE {:.1e}, theta {:.1e}",
        dev - rdev,
        worst.0,
        worst.1,
        th_worst
    );
    for (a, b) in th_o.iter().zip(&th_r) {
        let ok = if *b == 0.0 {
            a.abs() < 1e-3
        } else {
            rel(*a, *b) < 1e-3
        };
        assert!(ok, "{name}: theta {a} vs {b}");
    }
}

#[test]
fn binary_parallel_trial_laplace() {
    check("crt_binary_laplace", 1e-3);
}

#[test]
fn binary_parallel_trial_agq10() {
    check("crt_binary_agq10", 1e-3);
}

#[test]
fn count_parallel_trial_poisson() {
    check("crt_count_poisson", 1e-3);
}

#[test]
fn singular_stepped_wedge_laplace() {
    check("crt_sw_binary_laplace", 1e-3);
}

#[test]
fn cbpp_agq25() {
    check("cbpp_agq25", 1e-3);
}

/// lme4's `cbind(incidence, size - incidence) ~ period + (1|herd)` on the
/// aggregated cbpp equals the fit on the expanded 0/1 rows: the same
/// estimates, SEs and θ; the log-likelihood differs by the binomial
/// coefficients Σ log C(size, incidence), which the aggregated one includes.
#[test]
fn cbpp_aggregated_equals_expanded() {
    let d = dir();
    let text = std::fs::read_to_string(d.join("data/cbpp_bernoulli.csv")).unwrap();
    let mut cells: std::collections::BTreeMap<(u32, u32), (u32, u32)> = Default::default();
    for line in text.lines().skip(1) {
        let f: Vec<u32> = line
            .split(',')
            .map(|s| s.trim_matches('"').parse().unwrap())
            .collect();
        let c = cells.entry((f[0], f[1])).or_default();
        c.0 += f[2];
        c.1 += 1 - f[2];
    }
    let mut csv = String::from("herd,period,incidence,healthy\n");
    let mut lchoose = 0.0;
    for ((h, p), (s, f)) in &cells {
        csv += &format!("{h},{p},{s},{f}\n");
        lchoose += crtsim::glmm::family::ln_choose(f64::from(s + f), f64::from(*s));
    }
    let path = std::env::temp_dir().join(format!("crtsim_cbpp_agg_{}.csv", std::process::id()));
    std::fs::write(&path, csv).unwrap();
    let agg = DataFrame::read_csv(&path).unwrap();
    let bern = DataFrame::read_csv(d.join("data/cbpp_bernoulli.csv")).unwrap();
    let fit = |data: &DataFrame, f: &str| {
        let mut g = Glmm::new(f, data, Family::Binomial, Link::Logit, 1).unwrap();
        g.fit().unwrap()
    };
    let a = fit(&agg, "cbind(incidence, healthy) ~ period + (1|herd)");
    let b = fit(&bern, "y ~ period + (1|herd)");
    assert_eq!(cells.len(), 56);
    for j in 0..2 {
        assert!(
            rel(a.beta[j], b.beta[j]) < 1e-6,
            "beta {j}: {} vs {}",
            a.beta[j],
            b.beta[j]
        );
        assert!(
            rel(a.se(j), b.se(j)) < 1e-5,
            "se {j}: {} vs {}",
            a.se(j),
            b.se(j)
        );
    }
    assert!(rel(a.theta[0], b.theta[0]) < 1e-6);
    let gap = b.deviance - 2.0 * lchoose - a.deviance;
    assert!(
        gap.abs() < 1e-6,
        "deviances {} and {} differ by {gap} beyond the binomial coefficients",
        a.deviance,
        b.deviance
    );
}

/// cbpp by Laplace against glmer with PIRLS converged (tolPwrss = 1e-13;
/// `make_tight_cbpp.R`): every quantity to 1e-3.
#[test]
fn cbpp_laplace_converged() {
    check("cbpp_laplace_tight", 1e-3);
}

/// Against glmer's default (tolPwrss = 1e-7), whose PIRLS stops short on
/// cbpp's 0/1 rows: its deviance is 5.4e-4 above the converged one and its
/// SEs 0.8% and 1.2% below. The estimates still agree to 1e-3 and crtsim's
/// deviance is the lower; the SEs agree to 1.5%.
#[test]
fn cbpp_laplace_default_tolerance() {
    let (r, o) = fit("cbpp_laplace");
    let dev = o["minus_two_loglik"].as_f64().unwrap();
    let rdev = r["minus_two_loglik"].as_f64().unwrap();
    assert!(dev < rdev - 5e-4 && dev > rdev - 6e-4, "{dev} vs {rdev}");
    check("cbpp_laplace", 1.5e-2);
}

/// A correlated random slope (singular in glmer: the slope's own SD is 0).
#[test]
fn random_slope_binary() {
    check("crt_binary_slope", 1e-3);
}

/// Two terms on one factor, uncorrelated (singular), Poisson.
#[test]
fn uncorrelated_terms_poisson() {
    check("crt_count_uncorrelated", 1e-3);
}

/// glmer's own aggregated fit, `cbind(incidence, healthy)`, at its default
/// PIRLS tolerance (see `cbpp_laplace_default_tolerance`).
#[test]
fn cbpp_cbind_against_glmer() {
    let (r, o) = fit("cbpp_cbind");
    let dev = o["minus_two_loglik"].as_f64().unwrap();
    let rdev = r["minus_two_loglik"].as_f64().unwrap();
    assert!(dev < rdev - 5e-4 && dev > rdev - 6e-4, "{dev} vs {rdev}");
    check("cbpp_cbind", 1.5e-2);
}

/// `--df between-within` on the parallel binary trial: arm and site are
/// team-level, so 27 − 1 − 2 = 24 df; the individual-level covariate and
/// the intercept get the observation level's 298 − 27 − 1 = 270.
#[test]
fn between_within_df_for_the_glmm() {
    let d = dir();
    let data = DataFrame::read_csv(d.join("data/crt_binary_parallel.csv")).unwrap();
    let g = Glmm::new(
        "recovered ~ arm + baseline_high + site + (1|team)",
        &data,
        Family::Binomial,
        Link::Logit,
        1,
    )
    .unwrap();
    let df = crtsim::lmm::inference::between_within(&g.model).unwrap();
    assert_eq!(df, vec![270.0, 24.0, 270.0, 24.0]);
}
