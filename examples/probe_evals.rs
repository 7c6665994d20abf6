//! Developer probe: optimiser evaluations per REFOCUS replicate fit.
use crtsim::config::Config;
use crtsim::lmm::Model;
use crtsim::simulate::Simulator;
fn main() {
    let cfg = Config::load("configs/refocus.toml", &[]).unwrap();
    let sim = Simulator::new(cfg).unwrap();
    let mut tot = 0;
    let mut hist = std::collections::BTreeMap::new();
    for r in 0..500 {
        let df = sim.data_frame(&sim.simulate(1, r));
        let mut m = Model::new("qpr ~ arm + baseline + site + (1|team)", &df, true).unwrap();
        let f = m.fit();
        tot += f.optimizer.evals;
        *hist.entry(f.optimizer.evals).or_insert(0) += 1;
    }
    println!("mean evals {:.1}; histogram {:?}", tot as f64 / 500.0, hist);
}
