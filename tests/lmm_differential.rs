//! Randomised differential tests of the LMM engine on hundreds of generated
//! datasets (seeded loops):
//! 1. the blocked PLS objective equals an independent dense n×n evaluation
//!    of the REML / ML criterion, and β̂ equals the dense GLS estimate;
//! 2. no brute-force search (a fine 1-D grid, or a 2-D grid refined by a
//!    compass search) finds a lower objective than our optimiser, and the
//!    fixed effects at both solutions agree.

mod common;
use crtsim::lmm::data::DataFrame;
use crtsim::lmm::Model;
use crtsim::simulate::Simulator;
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Dense −2 log-likelihood (REML or ML) profiled over β and σ at θ, and β̂.
fn dense_objective(model: &Model, theta: &[f64]) -> (f64, Vec<f64>) {
    let fr = &model.frame;
    let (n, p, q) = (fr.n, fr.p, model.pls.q);
    let mut z = DMatrix::<f64>::zeros(n, q);
    for (t, term) in fr.terms.iter().enumerate() {
        let (qo, _, k, _) = model.pls.term_layout[t];
        for i in 0..n {
            for a in 0..k {
                z[(i, qo + term.refs[i] as usize * k + a)] = term.z[i * k + a];
            }
        }
    }
    let lam = DMatrix::from_row_slice(q, q, &model.pls.lambda_dense(theta));
    let zl = &z * lam;
    let v = DMatrix::identity(n, n) + &zl * zl.transpose();
    let chol = v.clone().cholesky().unwrap();
    let logdet_v: f64 = 2.0 * chol.l().diagonal().iter().map(|d| d.ln()).sum::<f64>();
    let x = DMatrix::from_column_slice(n, p, &fr.x);
    let y = DVector::from_column_slice(&fr.y);
    let vix = chol.solve(&x);
    let viy = chol.solve(&y);
    let xvx = x.transpose() * &vix;
    let beta = xvx
        .clone()
        .cholesky()
        .unwrap()
        .solve(&(x.transpose() * &viy));
    let r = &y - &x * &beta;
    let r2 = (r.transpose() * chol.solve(&r))[(0, 0)];
    let two_pi = 2.0 * std::f64::consts::PI;
    let obj = if model.reml {
        let logdet_xvx: f64 = 2.0
            * xvx
                .cholesky()
                .unwrap()
                .l()
                .diagonal()
                .iter()
                .map(|d| d.ln())
                .sum::<f64>();
        let nmp = (n - p) as f64;
        logdet_v + logdet_xvx + nmp * (1.0 + (two_pi * r2 / nmp).ln())
    } else {
        logdet_v + n as f64 * (1.0 + (two_pi * r2 / n as f64).ln())
    };
    (obj, beta.iter().copied().collect())
}

fn refocus_data(seed: u64, icc: f64, icc_staff: f64) -> DataFrame {
    let sim = Simulator::new(common::refocus(&[
        &format!("outcome.icc={icc}"),
        &format!("outcome.icc_staff={icc_staff}"),
    ]))
    .unwrap();
    sim.data_frame(&sim.simulate(seed, 0))
}

/// A cross-sectional stepped-wedge-like dataset: 12 clusters, 5 periods.
fn sw_data(seed: u64) -> DataFrame {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (sc, scp) = (rng.random_range(0.0..2.5f64), rng.random_range(0.0..2.5f64));
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); 4];
    for c in 0..12 {
        let uc: f64 = sc * rng.sample::<f64, _>(StandardNormal);
        let step = c % 4 + 1;
        for t in 0..5 {
            let ucp: f64 = scp * rng.sample::<f64, _>(StandardNormal);
            let treat = usize::from(t >= step);
            for _ in 0..rng.random_range(4..12) {
                let y = 40.0
                    + 0.5 * t as f64
                    + 2.0 * treat as f64
                    + uc
                    + ucp
                    + 10.0 * rng.sample::<f64, _>(StandardNormal);
                cols[0].push(Some(format!("C{c}")));
                cols[1].push(Some(format!("t{}", t + 1)));
                cols[2].push(Some(treat.to_string()));
                cols[3].push(Some(format!("{y:.3}")));
            }
        }
    }
    let names = ["cluster", "period", "treat", "qpr"];
    DataFrame::from_raw(names.iter().map(|s| s.to_string()).zip(cols).collect()).unwrap()
}

#[test]
fn blocked_objective_equals_dense_evaluation() {
    let mut worst: f64 = 0.0;
    for s in 0..20u64 {
        let data = refocus_data(100 + s, 0.05, 0.03);
        for (formula, reml) in [
            ("qpr ~ arm + baseline + site + (1|team)", true),
            ("qpr ~ arm + baseline + (1|team) + (1|staff)", s % 2 == 0),
        ] {
            let mut model = Model::new(formula, &data, reml).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s);
            for _ in 0..3 {
                let theta: Vec<f64> = (0..model.pls.ntheta)
                    .map(|_| rng.random_range(0.0..1.5))
                    .collect();
                let ours = model.pls.objective(&theta, reml);
                let (dense, _) = dense_objective(&model, &theta);
                worst = worst.max((ours - dense).abs() / dense.abs());
                assert!(
                    (ours - dense).abs() < 1e-9 * dense.abs(),
                    "{formula}: {ours} vs dense {dense}"
                );
            }
            let fit = model.fit();
            let (_, beta) = dense_objective(&model, &fit.theta);
            for (a, b) in fit.beta.iter().zip(&beta) {
                assert!(
                    (a - b).abs() < 1e-8 * (1.0 + b.abs()),
                    "{formula}: beta {a} vs dense {b}"
                );
            }
        }
    }
    eprintln!("largest relative difference, blocked vs dense objective: {worst:.2e}");
}

/// Compass (pattern) search from a start, with bounds θ ≥ 0.
fn compass(model: &mut Model, start: Vec<f64>, reml: bool) -> (Vec<f64>, f64) {
    let mut x = start;
    let mut fx = model.pls.objective(&x, reml);
    let mut step = 0.05;
    while step > 1e-9 {
        let mut moved = false;
        for i in 0..x.len() {
            for dir in [1.0, -1.0] {
                let mut y = x.clone();
                y[i] = (y[i] + dir * step).max(0.0);
                let fy = model.pls.objective(&y, reml);
                if fy < fx {
                    x = y;
                    fx = fy;
                    moved = true;
                }
            }
        }
        if !moved {
            step *= 0.5;
        }
    }
    (x, fx)
}

fn check_against_search(model: &mut Model, label: &str, stats: &mut (usize, usize, f64, f64)) {
    let reml = model.reml;
    let fit = model.fit();
    let d = model.pls.ntheta;
    // Brute-force grid.
    let grid: Vec<f64> = std::iter::once(0.0)
        .chain((0..60).map(|i| 10f64.powf(-3.0 + 3.5 * i as f64 / 59.0)))
        .collect();
    let mut best = (vec![0.0; d], f64::INFINITY);
    if d == 1 {
        for &g in &grid {
            let f = model.pls.objective(&[g], reml);
            if f < best.1 {
                best = (vec![g], f);
            }
        }
    } else {
        for &g in grid.iter().step_by(2) {
            for &h in grid.iter().step_by(2) {
                let f = model.pls.objective(&[g, h], reml);
                if f < best.1 {
                    best = (vec![g, h], f);
                }
            }
        }
    }
    let (xs, fs) = compass(model, best.0, reml);
    let gap = fit.objective - fs;
    assert!(
        gap <= 1e-7 * (1.0 + fs.abs()),
        "{label}: our objective {} (theta {:?}) is above the search's {fs} (theta {xs:?})",
        fit.objective,
        fit.theta
    );
    stats.0 += 1;
    if fit.singular {
        stats.1 += 1;
    }
    stats.2 = stats.2.max(gap);
    // Fixed effects at the search's solution agree with ours.
    model.pls.objective(&xs, reml);
    let other = model.fit_at(crtsim::lmm::optim::OptResult::given(&xs, "given"));
    for j in 0..fit.beta.len() {
        let diff = (fit.beta[j] - other.beta[j]).abs() / fit.se(j);
        stats.3 = stats.3.max(diff);
        assert!(
            diff < 1e-3,
            "{label}: coefficient {j}: {} vs {} ({diff:.1e} SE)",
            fit.beta[j],
            other.beta[j]
        );
    }
}

#[test]
fn optimiser_is_never_beaten_by_brute_force() {
    let mut stats = (0usize, 0usize, f64::NEG_INFINITY, 0.0f64);
    // 150 REFOCUS-like trials, single team factor; ICC from 0 (often singular) to 0.2.
    for s in 0..150u64 {
        let icc = [0.0, 0.01, 0.05, 0.2][s as usize % 4];
        let data = refocus_data(1000 + s, icc, 0.0);
        let mut m =
            Model::new("qpr ~ arm + baseline + site + (1|team)", &data, s % 3 != 0).unwrap();
        check_against_search(&mut m, &format!("parallel {s} icc {icc}"), &mut stats);
    }
    // 100 nested team/staff fits.
    for s in 0..100u64 {
        let icc = [0.0, 0.02, 0.08][s as usize % 3];
        let icc_staff = [0.0, 0.03, 0.1, 0.01][s as usize % 4];
        let data = refocus_data(5000 + s, icc, icc_staff);
        let mut m = Model::new("qpr ~ arm + baseline + (1|team) + (1|staff)", &data, true).unwrap();
        check_against_search(&mut m, &format!("nested {s}"), &mut stats);
    }
    // 50 stepped-wedge fits with cluster and cluster-period effects.
    for s in 0..50u64 {
        let data = sw_data(9000 + s);
        let mut m = Model::new(
            "qpr ~ treat + period + (1|cluster) + (1|cluster:period)",
            &data,
            true,
        )
        .unwrap();
        check_against_search(&mut m, &format!("stepped-wedge {s}"), &mut stats);
    }
    eprintln!(
        "{} fits ({} singular): largest (ours − search) objective {:.2e}; largest fixed-effect difference {:.2e} SE",
        stats.0, stats.1, stats.2, stats.3
    );
}
