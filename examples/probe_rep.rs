//! Developer probe: where a REFOCUS power replicate spends its time.
use crtsim::config::Config;
use crtsim::lmm::inference::{coef_tests_with, TestOptions};
use crtsim::lmm::Model;
use crtsim::rng::replicate_rng;
use crtsim::simulate::{Dataset, Simulator};
use std::time::Instant;
fn main() {
    let cfg = Config::load("configs/refocus.toml", &[]).unwrap();
    let sim = Simulator::new(cfg).unwrap();
    let mut d = Dataset::default();
    let n = 2000u64;
    let (mut ts, mut tf, mut tb, mut tfit, mut tsat) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let sat = TestOptions {
        satterthwaite: true,
        kenward_roger: false,
        between_within: false,
    };
    for r in 0..n {
        let t = Instant::now();
        let mut rng = replicate_rng(1, r);
        sim.simulate_into(&mut rng, &mut d);
        ts += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let df = sim.data_frame(&d);
        tf += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut m = Model::new("qpr ~ arm + baseline + site + (1|team)", &df, true).unwrap();
        tb += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let fit = m.fit();
        tfit += t.elapsed().as_secs_f64();
        let t = Instant::now();
        std::hint::black_box(coef_tests_with(&m, &fit, sat));
        tsat += t.elapsed().as_secs_f64();
    }
    let us = |x: f64| x / n as f64 * 1e6;
    println!(
        "simulate {:.1} µs, to_data_frame {:.1}, Model::new {:.1}, fit {:.1}, satterthwaite {:.1}",
        us(ts),
        us(tf),
        us(tb),
        us(tfit),
        us(tsat)
    );
}
