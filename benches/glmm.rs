//! GLMM timings (criterion): building and fitting the REFOCUS-size binary
//! reference trial (27 teams, 298 rows, `recovered ~ arm + baseline_high +
//! site + (1|team)`) by Laplace, the stepped-wedge binary reference (two
//! random-effect terms), and cbpp by 25-point quadrature. glmer takes
//! 110–141 ms, 361 ms and 236–309 ms for these on the development machine
//! (README, "Binary and count outcomes").
//!
//! `replicate_refocus_binary_glmm_gee` is one whole power-run replicate of
//! `configs/refocus_binary.toml` analysed by `glmm_z` and `gee_md`:
//! simulate (27 teams, ~297 analysed), build the data and model frames,
//! fit the Laplace GLMM and the GEE (issue 13, acceptance 4).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use crtsim::glmm::{Family, Glmm, Link};
use crtsim::lmm::data::DataFrame;
use std::hint::black_box;

fn data(name: &str) -> DataFrame {
    let p = format!(
        "{}/tests/data/glmm/data/{name}.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    DataFrame::read_csv(&p).expect("tests/data/glmm fixture")
}

fn fit(d: &DataFrame, f: &str, nagq: usize) -> f64 {
    let mut g = Glmm::new(f, d, Family::Binomial, Link::Logit, nagq).unwrap();
    g.fit().unwrap().beta[1]
}

fn bench(c: &mut Criterion) {
    let crt = data("crt_binary_parallel");
    c.bench_function("glmm_fit_refocus_size_binary_laplace", |b| {
        b.iter(|| {
            black_box(fit(
                &crt,
                "recovered ~ arm + baseline_high + site + (1|team)",
                1,
            ))
        })
    });
    let sw = data("crt_binary_sw");
    c.bench_function("glmm_fit_stepped_wedge_binary_laplace", |b| {
        b.iter(|| {
            black_box(fit(
                &sw,
                "recovered ~ treat + period + (1|cluster) + (1|cluster:period)",
                1,
            ))
        })
    });
    let cfg = crtsim::config::Config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus_binary.toml"),
        &["analysis.methods=[\"glmm_z\",\"gee_md\"]".to_string()],
    )
    .unwrap();
    let study = crtsim::power::PowerStudy::new(cfg, false).unwrap();
    let mut ws = crtsim::power::Workspace::default();
    let mut rep = 0u64;
    c.bench_function("replicate_refocus_binary_glmm_gee", |b| {
        b.iter(|| {
            rep += 1;
            black_box(study.replicate(2011, rep, 0, &mut ws)[0].estimate)
        })
    });
    let cbpp = data("cbpp_bernoulli");
    c.bench_function("glmm_fit_cbpp_agq25", |b| {
        b.iter(|| black_box(fit(&cbpp, "y ~ period + (1|herd)", 25)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
