//! Developer probe: time the phases of a nested fit. `cargo run --release --example probe -- TEAMS`
use crtsim::lmm::inference::{coef_tests_with, TestOptions};
use crtsim::lmm::Model;
use crtsim::simulate::Simulator;
use std::time::Instant;
fn main() {
    let teams: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let cfg = crtsim::config::Config::load(
        "configs/refocus.toml",
        &[
            format!("clusters.teams={teams}"),
            format!("clusters.site_teams=[{}, {}]", teams - teams / 2, teams / 2),
            format!("clusters.treated={}", teams / 2),
            "clusters.size={ dist = \"fixed\", mean = 30 }".into(),
            "clusters.staff_per_team=8".into(),
            "attrition.rate=0.0".into(),
            "outcome.icc_staff=0.03".into(),
        ],
    )
    .unwrap();
    let sim = Simulator::new(cfg).unwrap();
    let d = sim.data_frame(&sim.simulate(3, 0));
    let t = Instant::now();
    let mut m = Model::new("qpr ~ arm + baseline + (1|team) + (1|staff)", &d, true).unwrap();
    let t1 = t.elapsed();
    let th = m.theta0();
    let t = Instant::now();
    for _ in 0..20 {
        m.pls.objective(&th, true);
    }
    let per = t.elapsed() / 20;
    let t = Instant::now();
    let fit = m.fit();
    let tf = t.elapsed();
    let t = Instant::now();
    let sat = TestOptions {
        satterthwaite: true,
        kenward_roger: false,
        between_within: false,
    };
    let tests = coef_tests_with(&m, &fit, sat);
    println!(
        "rows {}: build {t1:?}, per eval {per:?}, fit {tf:?} ({} evals), satterthwaite {:?} (arm df {:.2})",
        d.nrows(), fit.optimizer.evals, t.elapsed(), tests.df_satterthwaite[1]
    );
}
