//! LMM engine timings (criterion):
//! * refit of `qpr ~ arm + baseline + site + (1|team)` on the 289-row REFOCUS-
//!   shaped reference with a new response, REML + Satterthwaite, and + KR;
//! * a 9,000-row nested `(1|team) + (1|staff)` fit (300 teams, 2,400 staff)
//!   with Satterthwaite, and the same design at 100,000 rows;
//! * lme4's InstEval model `y ~ 1 + (1|s) + (1|d)` on the ratings of its
//!   first 500 students (13,049 rows, 500 × 1,080 crossed levels; vendored
//!   in tests/data/lme4/insteval), REML only and with Satterthwaite.

// Same allocator as the crtsim binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use crtsim::lmm::data::DataFrame;
use crtsim::lmm::inference::{coef_tests_with, TestOptions};
use crtsim::lmm::Model;
use crtsim::simulate::Simulator;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::hint::black_box;

const SAT: TestOptions = TestOptions {
    satterthwaite: true,
    kenward_roger: false,
    between_within: false,
};
const KR: TestOptions = TestOptions {
    satterthwaite: false,
    kenward_roger: true,
    between_within: false,
};

fn refocus_reference() -> DataFrame {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/lme4/data/crt_parallel.csv"
    );
    DataFrame::read_csv(p).expect("tests/data/lme4/data/crt_parallel.csv")
}

fn new_responses(model: &Model, k: usize) -> Vec<Vec<f64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    (0..k)
        .map(|_| {
            model
                .frame
                .y
                .iter()
                .map(|y| {
                    y + 3.0
                        * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
                })
                .collect()
        })
        .collect()
}

fn nested(teams: u32) -> DataFrame {
    let cfg = crtsim::config::Config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml"),
        &[
            format!("clusters.teams={teams}"),
            format!("clusters.site_teams=[{}, {}]", teams - teams / 2, teams / 2),
            format!("clusters.treated={}", teams / 2),
            "clusters.size={ dist = \"fixed\", mean = 30 }".to_string(),
            "clusters.staff_per_team=8".to_string(),
            "attrition.rate=0.0".to_string(),
            "outcome.icc_staff=0.03".to_string(),
        ],
    )
    .unwrap();
    let sim = Simulator::new(cfg).unwrap();
    sim.data_frame(&sim.simulate(3, 0))
}

fn bench(c: &mut Criterion) {
    let data = refocus_reference();
    let mut model = Model::new("qpr ~ arm + baseline + site + (1|team)", &data, true).unwrap();
    let ys = new_responses(&model, 64);
    let mut k = 0;
    c.bench_function("refit_289_reml_satterthwaite", |b| {
        b.iter(|| {
            model.set_response(&ys[k % ys.len()]).unwrap();
            k += 1;
            let fit = model.fit();
            black_box(coef_tests_with(&model, &fit, SAT).df_satterthwaite[1])
        })
    });
    c.bench_function("refit_289_reml_kenward_roger", |b| {
        b.iter(|| {
            model.set_response(&ys[k % ys.len()]).unwrap();
            k += 1;
            let fit = model.fit();
            black_box(coef_tests_with(&model, &fit, KR).df_kenward_roger[1])
        })
    });
    c.bench_function("refit_289_reml_only", |b| {
        b.iter(|| {
            model.set_response(&ys[k % ys.len()]).unwrap();
            k += 1;
            black_box(model.fit().beta[1])
        })
    });
    let mut g = c.benchmark_group("nested");
    g.sample_size(10);
    for teams in [300u32, 3334] {
        let d = nested(teams);
        g.bench_function(format!("fit_nested_{}_rows_reml_only", d.nrows()), |b| {
            b.iter(|| {
                let mut m =
                    Model::new("qpr ~ arm + baseline + (1|team) + (1|staff)", &d, true).unwrap();
                black_box(m.fit().beta[1])
            })
        });
        g.bench_function(
            format!("fit_nested_{}_rows_satterthwaite", d.nrows()),
            |b| {
                b.iter(|| {
                    let mut m = Model::new("qpr ~ arm + baseline + (1|team) + (1|staff)", &d, true)
                        .unwrap();
                    let fit = m.fit();
                    black_box(coef_tests_with(&m, &fit, SAT).df_satterthwaite[1])
                })
            },
        );
    }
    g.finish();
    let mut g = c.benchmark_group("crossed");
    g.sample_size(10);
    let d = DataFrame::read_csv(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/lme4/insteval/insteval_500.csv"
    ))
    .expect("tests/data/lme4/insteval/insteval_500.csv");
    let f = "y ~ 1 + (1|s) + (1|d)";
    g.bench_function("fit_insteval_500_students_reml_only", |b| {
        b.iter(|| black_box(Model::new(f, &d, true).unwrap().fit().objective))
    });
    g.bench_function("fit_insteval_500_students_satterthwaite", |b| {
        b.iter(|| {
            let mut m = Model::new(f, &d, true).unwrap();
            let fit = m.fit();
            black_box(coef_tests_with(&m, &fit, SAT).df_satterthwaite[0])
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
