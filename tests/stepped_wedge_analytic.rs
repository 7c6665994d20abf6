//! Stepped-wedge GLS variance: equals the Hussey & Hughes closed form for
//! exchangeable correlation, and an independent individual-level GLS for
//! nested-exchangeable and decay correlation.

use crtsim::analytic::{
    hussey_hughes_variance, standard_stepped_wedge, sw_gls_variance, PeriodCorrelation,
};
use nalgebra::DMatrix;

fn opt(x: &[Vec<f64>]) -> Vec<Vec<Option<f64>>> {
    x.iter()
        .map(|r| r.iter().map(|&v| Some(v)).collect())
        .collect()
}

#[test]
fn gls_reproduces_hussey_hughes() {
    let designs = vec![
        standard_stepped_wedge(2, 7), // PULSAR: 14 clusters, 2 steps, 3 periods
        standard_stepped_wedge(4, 3),
        standard_stepped_wedge(6, 1),
        // A non-standard design: unequal crossover counts.
        vec![
            vec![0.0, 1.0, 1.0, 1.0],
            vec![0.0, 0.0, 1.0, 1.0],
            vec![0.0, 0.0, 1.0, 1.0],
            vec![0.0, 0.0, 0.0, 1.0],
            vec![0.0, 0.0, 0.0, 0.0],
        ],
    ];
    for x in &designs {
        for &(m, icc) in &[(18.0, 0.05), (5.0, 0.2), (50.0, 0.01)] {
            let sizes: Vec<Vec<f64>> = x.iter().map(|r| vec![m; r.len()]).collect();
            let gls = sw_gls_variance(&opt(x), &sizes, icc, 10.0, PeriodCorrelation::Exchangeable);
            let hh = hussey_hughes_variance(x, m, icc, 10.0);
            assert!(
                ((gls - hh) / hh).abs() < 1e-10,
                "GLS {gls} vs HH {hh} (m {m}, icc {icc})"
            );
        }
    }
}

/// Individual-level GLS with the full n × n covariance: an independent
/// computation of Var(θ̂) (period effects + treatment as fixed effects).
/// Individual-level n×n GLS; `iac` > 0 makes it a closed cohort (individual
/// i of a cluster is the same person in every period).
fn individual_gls(
    x: &[Vec<f64>],
    m: usize,
    icc: f64,
    sd: f64,
    corr: PeriodCorrelation,
    iac: f64,
) -> f64 {
    let (nc, nt) = (x.len(), x[0].len());
    let n = nc * nt * m;
    let (s2cp, s2e) = (icc * sd * sd, (1.0 - icc) * sd * sd);
    let idx = |c: usize, t: usize, i: usize| (c * nt + t) * m + i;
    let mut v = DMatrix::<f64>::zeros(n, n);
    let mut d = DMatrix::<f64>::zeros(n, nt + 1);
    for c in 0..nc {
        for t in 0..nt {
            for i in 0..m {
                let r = idx(c, t, i);
                d[(r, t)] = 1.0;
                d[(r, nt)] = x[c][t];
                for t2 in 0..nt {
                    let cval = match corr {
                        PeriodCorrelation::Exchangeable => 1.0,
                        PeriodCorrelation::NestedExchangeable { cac } => {
                            if t == t2 {
                                1.0
                            } else {
                                cac
                            }
                        }
                        PeriodCorrelation::Decay { r: rr } => rr.powi((t as i32 - t2 as i32).abs()),
                    };
                    for i2 in 0..m {
                        v[(r, idx(c, t2, i2))] = s2cp * cval;
                    }
                    if t2 != t {
                        v[(r, idx(c, t2, i))] += s2e * iac;
                    }
                }
                v[(r, r)] += s2e;
            }
        }
    }
    let vinv = v.cholesky().unwrap().inverse();
    let info = d.transpose() * vinv * &d;
    info.try_inverse().unwrap()[(nt, nt)]
}

#[test]
fn gls_matches_individual_level_computation() {
    let x = standard_stepped_wedge(3, 1); // 3 clusters, 4 periods
    let m = 4;
    for corr in [
        PeriodCorrelation::Exchangeable,
        PeriodCorrelation::NestedExchangeable { cac: 0.7 },
        PeriodCorrelation::Decay { r: 0.6 },
    ] {
        let sizes: Vec<Vec<f64>> = x.iter().map(|r| vec![m as f64; r.len()]).collect();
        let ours = sw_gls_variance(&opt(&x), &sizes, 0.08, 10.0, corr);
        let full = individual_gls(&x, m, 0.08, 10.0, corr, 0.0);
        assert!(
            ((ours - full) / full).abs() < 1e-10,
            "{corr:?}: {ours} vs {full}"
        );
    }
}

#[test]
fn incomplete_designs_and_unequal_sizes() {
    // Empty cells lose information: the variance grows.
    let x = standard_stepped_wedge(2, 7);
    let sizes: Vec<Vec<f64>> = x.iter().map(|r| vec![18.0; r.len()]).collect();
    let full = sw_gls_variance(
        &opt(&x),
        &sizes,
        0.05,
        10.0,
        PeriodCorrelation::NestedExchangeable { cac: 0.8 },
    );
    let mut inc = opt(&x);
    for row in inc.iter_mut().take(7) {
        row[2] = None; // first sequence not measured in the last period
    }
    let less = sw_gls_variance(
        &inc,
        &sizes,
        0.05,
        10.0,
        PeriodCorrelation::NestedExchangeable { cac: 0.8 },
    );
    assert!(less > full, "{less} <= {full}");
    // CAC = 1 is the exchangeable (Hussey–Hughes) model.
    let one = sw_gls_variance(
        &opt(&x),
        &sizes,
        0.05,
        10.0,
        PeriodCorrelation::NestedExchangeable { cac: 1.0 },
    );
    let hh = sw_gls_variance(
        &opt(&x),
        &sizes,
        0.05,
        10.0,
        PeriodCorrelation::Exchangeable,
    );
    assert!(((one - hh) / hh).abs() < 1e-12);
}

#[test]
fn cohort_gls_matches_individual_level_computation() {
    use crtsim::analytic::sw_gls_variance_cohort;
    let x = standard_stepped_wedge(3, 1);
    let m = 4;
    let sizes: Vec<Vec<f64>> = x.iter().map(|r| vec![m as f64; r.len()]).collect();
    for corr in [
        PeriodCorrelation::Exchangeable,
        PeriodCorrelation::NestedExchangeable { cac: 0.7 },
        PeriodCorrelation::Decay { r: 0.6 },
    ] {
        for iac in [0.3, 0.8] {
            let ours = sw_gls_variance_cohort(&opt(&x), &sizes, 0.08, 10.0, corr, iac);
            let full = individual_gls(&x, m, 0.08, 10.0, corr, iac);
            assert!(
                ((ours - full) / full).abs() < 1e-10,
                "{corr:?}, iac {iac}: {ours} vs {full}"
            );
        }
    }
    // Following the same people makes within-cluster comparisons more precise.
    let cs = sw_gls_variance(
        &opt(&x),
        &sizes,
        0.08,
        10.0,
        PeriodCorrelation::NestedExchangeable { cac: 0.7 },
    );
    let co = sw_gls_variance_cohort(
        &opt(&x),
        &sizes,
        0.08,
        10.0,
        PeriodCorrelation::NestedExchangeable { cac: 0.7 },
        0.5,
    );
    assert!(co < cs);
}
