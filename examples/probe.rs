use crtsim::lmm::Model;
use crtsim::simulate::Simulator;
use std::time::Instant;
fn main() {
    let cfg = crtsim::config::Config::load(
        "configs/refocus.toml",
        &[
            "clusters.teams=300".into(),
            "clusters.site_teams=[150,150]".into(),
            "clusters.treated=150".into(),
            "clusters.size={ dist = \"fixed\", mean = 30 }".into(),
            "clusters.staff_per_team=8".into(),
            "attrition.rate=0.0".into(),
            "outcome.icc_staff=0.03".into(),
        ],
    )
    .unwrap();
    let sim = Simulator::new(cfg).unwrap();
    let d = sim.simulate(3, 0).to_data_frame(sim.design());
    let t = Instant::now();
    let mut m = Model::new("qpr ~ arm + baseline + (1|team) + (1|staff)", &d, true).unwrap();
    let t1 = t.elapsed();
    let th = m.theta0();
    let t = Instant::now();
    for _ in 0..100 {
        m.pls.objective(&th, true);
    }
    let per = t.elapsed() / 100;
    let t = Instant::now();
    let fit = m.fit();
    println!(
        "build {:?}, per eval {:?}, fit {:?} with {} evals ({}), theta {:?}",
        t1,
        per,
        t.elapsed(),
        fit.optimizer.evals,
        fit.optimizer.message,
        fit.theta
    );
    let data = crtsim::lmm::data::DataFrame::read_csv("../shared/reference/data/crt_parallel.csv")
        .unwrap();
    let mut m = Model::new("qpr ~ arm + baseline + site + (1|team)", &data, true).unwrap();
    let th = m.theta0();
    let t = Instant::now();
    for _ in 0..1000 {
        m.pls.objective(&th, true);
    }
    let per = t.elapsed() / 1000;
    let fit = m.fit();
    println!("refocus: per eval {:?}, {} evals", per, fit.optimizer.evals);
}
