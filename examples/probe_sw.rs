//! Developer probe: where a PULSAR replicate spends its time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crtsim::config::Config;
use crtsim::lmm::inference::{coef_tests_with, TestOptions};
use crtsim::lmm::Model;
use crtsim::rng::replicate_rng;
use crtsim::simulate::{Dataset, Simulator};
use std::time::Instant;
fn main() {
    let cfg = Config::load("configs/pulsar.toml", &[]).unwrap();
    let sim = Simulator::new(cfg).unwrap();
    let f = crtsim::lmm::formula::Formula::parse(
        "qpr ~ treat + period + (1|cluster) + (1|cluster:period)",
    )
    .unwrap();
    let mut d = Dataset::default();
    let n = 2000u64;
    let (mut ts, mut tb, mut tfit, mut tsat, mut evals) = (0.0, 0.0, 0.0, 0.0, 0usize);
    let sat = TestOptions {
        satterthwaite: true,
        kenward_roger: false,
        between_within: false,
    };
    for r in 0..n {
        let t = Instant::now();
        sim.simulate_into(&mut replicate_rng(1, r), &mut d);
        let df = sim.data_frame(&d);
        ts += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut m = Model::from_formula(&f, &df, true).unwrap();
        tb += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let fit = m.fit();
        evals += fit.optimizer.evals;
        tfit += t.elapsed().as_secs_f64();
        let t = Instant::now();
        std::hint::black_box(coef_tests_with(&m, &fit, sat));
        tsat += t.elapsed().as_secs_f64();
    }
    let us = |x: f64| x / n as f64 * 1e6;
    println!(
        "simulate+frame {:.1} µs, build {:.1}, fit {:.1} ({:.1} evals), satterthwaite {:.1}",
        us(ts),
        us(tb),
        us(tfit),
        evals as f64 / n as f64,
        us(tsat)
    );
}
