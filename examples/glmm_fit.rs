//! A GLMM and a GEE from Rust: the vendored binary cluster-trial data,
//! fitted by Laplace (as glmer) and by GEE with the Mancl–DeRouen SE.
//!
//! cargo run --release --example glmm_fit

use crtsim::glmm::gee::{self, GeeVariance};
use crtsim::glmm::{Family, Glmm, Link};
use crtsim::lmm::data::DataFrame;

fn main() -> Result<(), crtsim::Error> {
    let data = DataFrame::read_csv("tests/data/glmm/data/crt_binary_parallel.csv")?;
    let formula = "recovered ~ arm + baseline_high + site + (1|team)";
    let mut g = Glmm::new(formula, &data, Family::Binomial, Link::Logit, 1)?;
    let fit = g.fit()?;
    println!(
        "GLMM (conditional) log OR for arm {:.4} (SE {:.4}), team SD {:.4}, -2logLik {:.4}",
        fit.beta[1],
        fit.se(1),
        fit.theta[0],
        fit.deviance
    );
    let m = gee::fit(&g.model.frame, Family::Binomial, Link::Logit, &g.weights)?;
    println!(
        "GEE (marginal) log OR for arm {:.4} (MD SE {:.4}, t on {} df), alpha {:.4}",
        m.beta[1],
        m.se(1, GeeVariance::ManclDeRouen),
        m.df(),
        m.alpha
    );
    Ok(())
}
