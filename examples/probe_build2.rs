//! Developer probe: Model::from_formula on one REFOCUS replicate, repeated.
use crtsim::config::Config;
use crtsim::lmm::formula::Formula;
use crtsim::lmm::Model;
use crtsim::simulate::Simulator;
fn main() {
    let cfg = Config::load("configs/refocus.toml", &[]).unwrap();
    let sim = Simulator::new(cfg).unwrap();
    let df = sim.data_frame(&sim.simulate(1, 0));
    let f = Formula::parse("qpr ~ arm + baseline + site + (1|team)").unwrap();
    let t = std::time::Instant::now();
    for _ in 0..20000 {
        std::hint::black_box(Model::from_formula(&f, &df, true).unwrap());
    }
    println!(
        "from_formula {:.2} µs",
        t.elapsed().as_secs_f64() / 20000.0 * 1e6
    );
}
