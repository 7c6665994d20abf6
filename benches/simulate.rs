//! Time to simulate one REFOCUS trial (configs/refocus.toml) into a reused buffer.

// Same allocator as the crtsim binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use crtsim::config::Config;
use crtsim::rng::replicate_rng;
use crtsim::simulate::{Dataset, Simulator};
use std::hint::black_box;

fn bench_refocus(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml");
    let cfg = Config::load(path, &[]).expect("refocus preset");
    let sim = Simulator::new(cfg).expect("simulator");
    let mut data = Dataset::default();
    let mut rep = 0u64;
    c.bench_function("simulate_refocus_trial", |b| {
        b.iter(|| {
            let mut rng = replicate_rng(20111, rep);
            rep += 1;
            sim.simulate_into(&mut rng, &mut data);
            black_box(data.len())
        })
    });
    let cfg = Config::load(path, &["outcome.measure=qpr15_items".to_string()]).expect("items");
    let sim = Simulator::new(cfg).expect("simulator");
    c.bench_function("simulate_refocus_trial_items", |b| {
        b.iter(|| {
            let mut rng = replicate_rng(20111, rep);
            rep += 1;
            sim.simulate_into(&mut rng, &mut data);
            black_box(data.len())
        })
    });
}

criterion_group!(benches, bench_refocus);
criterion_main!(benches);
