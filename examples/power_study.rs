//! A power study from Rust: the REFOCUS preset with 40 teams instead of 27,
//! 2000 replicates, and each analysis' power, type-I error and bias against
//! its own true value.
//!
//! `cargo run --release --example power_study`
use crtsim::{Config, Study};

fn main() -> Result<(), crtsim::Error> {
    let cfg = Config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml"),
        &[
            "clusters.teams=40".to_string(),
            "clusters.site_teams=[20, 20]".to_string(),
            "clusters.treated=20".to_string(),
        ],
    )?;
    let study = Study::new(cfg)?;
    let run = study.run(&study.options().reps(2000))?;
    let s = run.summary();
    println!(
        "{}: {} replicates, seed {}; estimand: ITT difference, true value {:.3}",
        s.trial, s.reps, s.seed, s.true_effect
    );
    for r in &s.rows {
        let e = &r.effect;
        let t1 = r.null.as_ref().map(|p| p.reject).unwrap_or(f64::NAN);
        println!(
            "{:<36} power {:.3} (MC SE {:.3})  type-I {:.3}  analytic {:.3}  bias {:+.3} (MC SE {:.3}) vs true {:.3}",
            r.analysis.label(),
            e.reject,
            e.reject_mc_se,
            t1,
            r.analytic,
            e.bias,
            e.bias_mc_se,
            r.true_value
        );
    }
    Ok(())
}
