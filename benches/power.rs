//! Power-engine timings: one REFOCUS replicate (simulate + REML + Satterthwaite),
//! and the same with every analysis.

// Same allocator as the crtsim binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use crtsim::config::Config;
use crtsim::power::{PowerStudy, Workspace};
use std::hint::black_box;

fn refocus(sets: &[&str]) -> Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml"),
        &sets,
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let study = PowerStudy::new(
        refocus(&["analysis.methods=[\"lmm_satterthwaite\"]"]),
        false,
    )
    .unwrap();
    let mut buf = Workspace::default();
    let mut rep = 0;
    c.bench_function("replicate_refocus_simulate_reml_satterthwaite", |b| {
        b.iter(|| {
            rep += 1;
            black_box(study.replicate(2011, rep, 0, &mut buf)[0].p)
        })
    });
    let all = PowerStudy::new(refocus(&[]), false).unwrap();
    c.bench_function("replicate_refocus_all_five_analyses", |b| {
        b.iter(|| {
            rep += 1;
            black_box(all.replicate(2011, rep, 0, &mut buf)[0].p)
        })
    });
}

fn bench_sw(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml");
    let cfg = Config::load(
        path,
        &["analysis.methods=[\"lmm_satterthwaite\"]".to_string()],
    )
    .unwrap();
    let study = PowerStudy::new(cfg, false).unwrap();
    let mut buf = Workspace::default();
    let mut rep = 0;
    c.bench_function("replicate_pulsar_simulate_reml_satterthwaite", |b| {
        b.iter(|| {
            rep += 1;
            black_box(study.replicate(2014, rep, 0, &mut buf)[0].p)
        })
    });
}

/// PULSAR with Poisson cluster-period sizes: the design changes every
/// replicate, so the sparse structure is rebuilt each time (no reuse).
fn bench_sw_variable(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml");
    let cfg = Config::load(
        path,
        &[
            "analysis.methods=[\"lmm_satterthwaite\"]".to_string(),
            "clusters.size={dist=\"poisson\",mean=18}".to_string(),
        ],
    )
    .unwrap();
    let study = PowerStudy::new(cfg, false).unwrap();
    let mut buf = Workspace::default();
    let mut rep = 0;
    c.bench_function(
        "replicate_pulsar_poisson_sizes_simulate_reml_satterthwaite",
        |b| {
            b.iter(|| {
                rep += 1;
                black_box(study.replicate(2014, rep, 0, &mut buf)[0].p)
            })
        },
    );
}

criterion_group!(benches, bench, bench_sw, bench_sw_variable);
criterion_main!(benches);
