//! The one-scalar-effect Laplace path (analytic gradient and Hessian, Newton) against
//! the general sparse-PIRLS path on the vendored trials and on simulated
//! binary and count trials: the same optimum, deviance and SEs.

use crtsim::glmm::{Family, Glmm, GlmmFit, Link};
use crtsim::lmm::data::DataFrame;

fn both(data: &DataFrame, formula: &str, family: Family) -> (GlmmFit, GlmmFit) {
    let link = family.canonical();
    let mut g = Glmm::new(formula, data, family, link, 1).unwrap();
    let fast = g.fit().unwrap();
    let mut g = Glmm::new(formula, data, family, link, 1).unwrap();
    let general = g.fit_general().unwrap();
    (fast, general)
}

fn agree(what: &str, fast: &GlmmFit, general: &GlmmFit) {
    assert!(
        fast.optimizer.method.contains("analytic"),
        "{what}: fast path not taken"
    );
    // The fast path's deviance is never worse than the general one's, and
    // both reach the same optimum.
    assert!(
        fast.deviance <= general.deviance + 1e-7,
        "{what}: deviance {} vs {}",
        fast.deviance,
        general.deviance
    );
    assert!(
        (fast.deviance - general.deviance).abs() < 1e-7,
        "{what}: deviance {} vs {}",
        fast.deviance,
        general.deviance
    );
    let (tf, tg) = (fast.theta[0], general.theta[0]);
    assert!(
        (tf - tg).abs() < 1e-4 * tg.max(0.05),
        "{what}: theta {tf} vs {tg}"
    );
    for j in 0..fast.beta.len() {
        let se = general.se(j);
        assert!(
            (fast.beta[j] - general.beta[j]).abs() < 1e-4 * se,
            "{what}: beta[{j}] {} vs {} (SE {se})",
            fast.beta[j],
            general.beta[j]
        );
        assert!(
            (fast.se(j) - se).abs() < 1e-4 * se,
            "{what}: SE[{j}] {} vs {se}",
            fast.se(j)
        );
    }
}

fn vendored(name: &str) -> DataFrame {
    let path = format!("{}/tests/data/glmm/data/{name}", env!("CARGO_MANIFEST_DIR"));
    DataFrame::read_csv(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn vendored_trials() {
    let d = vendored("crt_binary_parallel.csv");
    let (f, g) = both(
        &d,
        "recovered ~ arm + baseline_high + site + (1|team)",
        Family::Binomial,
    );
    agree("binary parallel", &f, &g);
    let (f, g) = both(&d, "contacts ~ arm + site + (1|team)", Family::Poisson);
    agree("count parallel", &f, &g);
    let d = vendored("cbpp_aggregated.csv");
    let (f, g) = both(
        &d,
        "cbind(incidence, healthy) ~ period + (1|herd)",
        Family::Binomial,
    );
    agree("cbpp", &f, &g);
}

#[test]
fn simulated_trials() {
    use crtsim::simulate::Simulator;
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus_binary.toml");
    let sets: [&[&str]; 3] = [
        &[],
        &["outcome.icc=0.2", "effect.odds_ratio=3"],
        &["outcome.prevalence=0.08"],
    ];
    let (mut singular, mut compared, mut refused) = (0, 0, 0);
    for set in sets {
        let sets: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        let sim = Simulator::new(crtsim::config::Config::load(base, &sets).unwrap()).unwrap();
        for r in 0..15 {
            let data = sim.data_frame(&sim.simulate(3, r));
            let mut g = match Glmm::new(
                "qpr ~ arm + site + (1|team)",
                &data,
                Family::Binomial,
                Link::Logit,
                1,
            ) {
                Ok(g) => g,
                // Only separation (a rare-outcome replicate) may refuse.
                Err(e) => {
                    assert!(e.to_string().contains("separation"), "{set:?} {r}: {e}");
                    refused += 1;
                    continue;
                }
            };
            // Both paths fit, or both refuse.
            match (g.fit(), g.fit_general()) {
                (Ok(f), Ok(gen)) => {
                    singular += usize::from(gen.singular);
                    compared += 1;
                    agree(&format!("{set:?} replicate {r}"), &f, &gen);
                }
                (Err(a), Err(b)) => {
                    // Only separation (a deviance that is not finite) may refuse.
                    for e in [a, b] {
                        assert!(e.to_string().contains("separation"), "{set:?} {r}: {e}");
                    }
                    refused += 1;
                }
                (a, b) => panic!(
                    "{set:?} replicate {r}: fast path {:?}, general path {:?}",
                    a.is_ok(),
                    b.is_ok()
                ),
            }
        }
    }
    assert!(
        compared >= 40 && compared + refused == 45,
        "{compared} of 45 trials compared ({refused} refused by separation)"
    );
    assert!(singular > 0, "the checks include singular fits");
}
