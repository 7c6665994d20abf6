//! Statistical checks of the data-generating process over many simulated
//! trials. Every tolerance is a multiple (Z = 4) of the Monte Carlo standard
//! error of the quantity checked, so a correct simulator fails a given check
//! with probability about 6e-5; the seeds are fixed, so results are stable.

mod common;
use common::*;
use crtsim::design::truncated_size_moments;
use crtsim::rng::replicate_rng;
use crtsim::simulate::{Dataset, Simulator};

const Z: f64 = 4.0;
const SEED: u64 = 20_151_001;

/// Variance and covariance components by nested ANOVA for a measure, against
/// the configured ρ_team σ², ρ_staff σ², (1 − ρ_t − ρ_s) σ² and cac/iac.
fn check_components(measure: &str, reps: u64) {
    let c = cfg(BALANCED, &[&format!("outcome.measure={measure}")]);
    let sim = Simulator::new(c).unwrap();
    let (sd, rt, rs, cac, iac) = (5.0f64, 0.10, 0.05, 0.7, 0.4);
    let var = sd * sd;
    let mut comps: Vec<[f64; 9]> = Vec::new();
    let mut means = (Vec::new(), Vec::new());
    let mut d = Dataset::default();
    for r in 0..reps {
        let mut rng = replicate_rng(SEED, r);
        sim.simulate_into(&mut rng, &mut d);
        let (yt, ys, ye) = nested_anova_cov(&d.qpr, &d.qpr, &d.team, &d.staff, 40, 3);
        let (bt, bs, be) = nested_anova_cov(&d.baseline, &d.baseline, &d.team, &d.staff, 40, 3);
        let (ct, cs, ce) = nested_anova_cov(&d.baseline, &d.qpr, &d.team, &d.staff, 40, 3);
        comps.push([yt, ys, ye, bt, bs, be, ct, cs, ce]);
        means.0.push(d.qpr.iter().sum::<f64>() / d.len() as f64);
        means
            .1
            .push(d.baseline.iter().sum::<f64>() / d.len() as f64);
    }
    let col = |i: usize| comps.iter().map(|c| c[i]).collect::<Vec<f64>>();
    let targets = [
        ("team variance of Y", rt * var),
        ("staff variance of Y", rs * var),
        ("residual variance of Y", (1.0 - rt - rs) * var),
        ("team variance of B", rt * var),
        ("staff variance of B", rs * var),
        ("residual variance of B", (1.0 - rt - rs) * var),
        ("team covariance B,Y (cac)", cac * rt * var),
        ("staff covariance B,Y (cac)", cac * rs * var),
        ("residual covariance B,Y (iac)", iac * (1.0 - rt - rs) * var),
    ];
    for (i, (name, t)) in targets.iter().enumerate() {
        assert_mc(&format!("{measure}: {name}"), &col(i), *t, Z);
    }
    assert_mc(&format!("{measure}: mean of Y"), &means.0, 30.0, Z);
    assert_mc(&format!("{measure}: mean of B"), &means.1, 30.0, Z);
    // ICC estimates (ratio of averaged unbiased components) for the record.
    let avg = |i: usize| mean_mcse(&col(i)).0;
    let total = avg(0) + avg(1) + avg(2);
    eprintln!(
        "{measure}: ICC team {:.4} (target {rt}), ICC staff {:.4} (target {rs}), total SD {:.4} (target {sd})",
        avg(0) / total,
        avg(1) / total,
        total.sqrt()
    );
}

#[test]
fn variance_components_continuous() {
    check_components("continuous", 1500);
}

#[test]
fn variance_components_qpr15_rounded() {
    // Rounding noise (variance 1/12) is carved out of the residual, so the
    // reported integer scores carry the configured components.
    check_components("qpr15", 1500);
}

#[test]
fn baseline_followup_correlation() {
    // Individual-level corr(B, Y) = cac (ρ_t + ρ_s) + iac (1 − ρ_t − ρ_s).
    let sim = Simulator::new(cfg(BALANCED, &[])).unwrap();
    let target = 0.7 * 0.15 + 0.4 * 0.85;
    let mut rs = Vec::new();
    for r in 0..1000 {
        let d = sim.simulate(SEED + 1, r);
        rs.push(pearson(&d.baseline, &d.qpr));
    }
    // Pearson's r in clustered data has a small-sample bias of order 1/n_eff;
    // with 480 users per trial and DE ~ 2.4, it is under 0.3 MCSE here.
    assert_mc("corr(B, Y)", &rs, target, Z);
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..x.len() {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx).powi(2);
        syy += (y[i] - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

#[test]
fn refocus_treated_count_per_site_is_exact() {
    let sim = Simulator::new(refocus(&[])).unwrap();
    for r in 0..500 {
        let d = sim.simulate(SEED, r);
        let treated_in = |site: u16| {
            (0..27)
                .filter(|&j| sim.design().team_site[j] == site && d.team_arm[j] == 1)
                .count()
        };
        assert_eq!(treated_in(0), 7, "SLaM treated teams in replicate {r}");
        assert_eq!(treated_in(1), 7, "2gether treated teams in replicate {r}");
        assert_eq!(d.team_arm.iter().filter(|&&a| a == 1).count(), 14);
    }
}

#[test]
fn simple_allocation_randomises_across_sites() {
    let sim = Simulator::new(refocus(&["clusters.allocation=simple"])).unwrap();
    let mut slam = Vec::new();
    for r in 0..2000 {
        let d = sim.simulate(SEED, r);
        assert_eq!(d.team_arm.iter().filter(|&&a| a == 1).count(), 14);
        slam.push((0..14).filter(|&j| d.team_arm[j] == 1).count() as f64);
    }
    // Hypergeometric: 14 of 27 drawn, 14 SLaM teams: mean 14·14/27.
    assert_mc("treated SLaM teams (simple)", &slam, 14.0 * 14.0 / 27.0, Z);
    // Coin-flip allocation without an exact count keeps both arms non-empty.
    let c = cfg(
        BALANCED,
        &[
            "clusters.teams=2",
            "clusters.treated=1",
            "clusters.size.mean=3",
        ],
    );
    let mut c2 = c.clone();
    c2.clusters.treated = None;
    let sim = Simulator::new(c2).unwrap();
    let mut treated = Vec::new();
    for r in 0..2000 {
        let d = sim.simulate(SEED, r);
        let k = d.team_arm.iter().filter(|&&a| a == 1).count();
        assert_eq!(k, 1, "both arms non-empty");
        treated.push(d.team_arm[0] as f64);
    }
    assert_mc("P(team 1 treated), 2-team coin flip", &treated, 0.5, Z);
}

#[test]
fn team_sizes_follow_the_configured_distribution() {
    for (sets, kind) in [
        (
            vec!["clusters.size.min=3"],
            crtsim::config::SizeKind::Negbin,
        ),
        (
            vec!["clusters.size.min=12", "clusters.size.cv=0.6"],
            crtsim::config::SizeKind::Negbin,
        ),
    ] {
        let c = refocus(&sets);
        let s = c.clusters.size.clone();
        let (m, v) = truncated_size_moments(kind, s.mean, s.cv.unwrap(), s.min);
        let sim = Simulator::new(c).unwrap();
        let mut means = Vec::new();
        let mut vars = Vec::new();
        for r in 0..2000 {
            let d = sim.simulate(SEED, r);
            assert!(d.team_size.iter().all(|&k| k >= s.min));
            let x: Vec<f64> = d.team_size.iter().map(|&k| k as f64).collect();
            let mean = x.iter().sum::<f64>() / x.len() as f64;
            means.push(mean);
            vars.push(x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64);
        }
        assert_mc(&format!("team size mean {sets:?}"), &means, m, Z);
        assert_mc(&format!("team size variance {sets:?}"), &vars, v, Z);
    }
    let c = refocus(&["clusters.size={ dist = \"poisson\", mean = 9.0, min = 1 }"]);
    let (m, v) = truncated_size_moments(crtsim::config::SizeKind::Poisson, 9.0, 0.0, 1);
    let sim = Simulator::new(c).unwrap();
    let (mut means, mut vars) = (Vec::new(), Vec::new());
    for r in 0..2000 {
        let d = sim.simulate(SEED, r);
        let x: Vec<f64> = d.team_size.iter().map(|&k| k as f64).collect();
        means.push(x.iter().sum::<f64>() / 27.0);
        vars.push(x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 27.0);
    }
    assert_mc("poisson team size mean", &means, m, Z);
    assert_mc("poisson team size variance", &vars, v, Z);
}

#[test]
fn staff_ranges_and_assignment() {
    let sim = Simulator::new(refocus(&["clusters.staff_per_team={ min = 2, max = 6 }"])).unwrap();
    let mut counts = Vec::new();
    for r in 0..500 {
        let d = sim.simulate(SEED, r);
        for &s in &d.team_staff {
            assert!((2..=6).contains(&s));
            counts.push(s as f64);
        }
        // Staff ids are unique across teams and each user's staff belongs to its team.
        let mut first = 0u32;
        for j in 0..27 {
            let rows: Vec<usize> = (0..d.len()).filter(|&i| d.team[i] == j as u32).collect();
            for &i in &rows {
                assert!(d.staff[i] >= first && d.staff[i] < first + d.team_staff[j]);
            }
            first += d.team_staff[j];
        }
    }
    assert_mc("staff per team, uniform 2..=6", &counts, 4.0, Z);
}

#[test]
fn attrition_rates_mcar_and_mar() {
    for (mech, slope) in [("mcar", 0.0f64), ("mar", -1.0), ("mar", 1.5)] {
        let sim = Simulator::new(refocus(&[
            &format!("attrition.mechanism={mech}"),
            &format!("attrition.slope={slope}"),
        ]))
        .unwrap();
        let mut rate = Vec::new();
        let mut gap = Vec::new();
        for r in 0..1500 {
            let d = sim.simulate(SEED + 7, r);
            let lost = d.qpr.iter().filter(|y| y.is_nan()).count();
            rate.push(lost as f64 / d.len() as f64);
            // Mean baseline of dropouts minus completers.
            let (mut sl, mut nl, mut sc, mut nc) = (0.0, 0.0, 0.0, 0.0);
            for i in 0..d.len() {
                if d.qpr[i].is_nan() {
                    sl += d.baseline[i];
                    nl += 1.0;
                } else {
                    sc += d.baseline[i];
                    nc += 1.0;
                }
            }
            gap.push(sl / nl - sc / nc);
        }
        assert_mc(
            &format!("attrition rate ({mech}, slope {slope})"),
            &rate,
            0.263,
            Z,
        );
        let (g, se) = mean_mcse(&gap);
        if slope == 0.0 {
            assert!(
                g.abs() < Z * se,
                "MCAR: dropouts' baseline differs by {g} (MCSE {se})"
            );
        } else {
            assert!(
                g.signum() == slope.signum() && g.abs() > 10.0 * se,
                "MAR slope {slope}: dropouts' baseline gap {g} (MCSE {se})"
            );
        }
    }
}

#[test]
fn arm_and_site_means() {
    // Follow-up mean = μ + γ_s + δ A; continuous measure, no clipping.
    let sim = Simulator::new(refocus(&[
        "outcome.measure=continuous",
        "outcome.site_effects=[0.0, -2.0]",
        "effect.difference=3.0",
        "attrition.rate=0.0",
    ]))
    .unwrap();
    let mut cells: [Vec<f64>; 4] = Default::default();
    for r in 0..1500 {
        let d = sim.simulate(SEED + 3, r);
        let mut s = [0.0; 4];
        let mut n = [0.0; 4];
        for i in 0..d.len() {
            let c = 2 * d.site[i] as usize + d.arm[i] as usize;
            s[c] += d.qpr[i];
            n[c] += 1.0;
        }
        for c in 0..4 {
            cells[c].push(s[c] / n[c]);
        }
    }
    assert_mc("SLaM control mean", &cells[0], 40.0, Z);
    assert_mc("SLaM treated mean", &cells[1], 43.0, Z);
    assert_mc("2gether control mean", &cells[2], 38.0, Z);
    assert_mc("2gether treated mean", &cells[3], 41.0, Z);
}

#[test]
fn reported_scores_keep_configured_mean_and_sd() {
    // At REFOCUS values (mean 40, SD 10.1) the item model clips ~17% of item
    // responses at 4 and qpr15 clips ~2% of totals at 60; the latent scale is
    // calibrated so the *reported* mean and SD are still the configured ones.
    for measure in ["qpr15_items", "qpr15"] {
        let sim = Simulator::new(refocus(&[
            &format!("outcome.measure={measure}"),
            "attrition.rate=0.0",
            "effect.difference=0.0",
            "clusters.teams=200",
            "clusters.site_teams=[100, 100]",
            "clusters.treated=100",
        ]))
        .unwrap();
        let (mut means, mut vars) = (Vec::new(), Vec::new());
        for r in 0..400 {
            let d = sim.simulate(SEED, r);
            for &y in d.qpr.iter().chain(&d.baseline) {
                assert!(y.fract() == 0.0 && (0.0..=60.0).contains(&y), "{y}");
            }
            let n = d.len() as f64;
            means.push(d.qpr.iter().sum::<f64>() / n);
            vars.push(d.qpr.iter().map(|y| (y - 40.0).powi(2)).sum::<f64>() / n);
        }
        assert_mc(&format!("{measure}: reported mean"), &means, 40.0, Z);
        assert_mc(
            &format!("{measure}: reported variance"),
            &vars,
            10.1 * 10.1,
            Z,
        );
    }
}
