//! Adherence: the participation distribution and copula, and which analyses
//! survive confounding (Monte Carlo tolerances, Z = 4 unless stated).

mod common;
use crtsim::power::{self, PowerStudy};
use crtsim::simulate::Simulator;

const BASE: &str = r#"
[trial]
name = "adherence"
[clusters]
teams = 100
treated = 50
allocation = "simple"
size = { dist = "fixed", mean = 12 }
staff_per_team = 3
[outcome]
measure = "continuous"
mean = 40.0
sd = 10.0
icc = 0.1
cac = 0.8
iac = 0.4
[effect]
difference = 4.0
[adherence]
team = { dist = "beta", mean = 0.6, concentration = 4.0 }
staff_concentration = 20.0
confounding = 0.0
[analysis]
methods = ["lmm_satterthwaite", "adh_high_low", "adh_dose_response", "adh_cace_iv"]
"#;

fn run(sets: &[&str], reps: u64) -> (PowerStudy, power::Summary) {
    let study = PowerStudy::new(common::cfg(BASE, sets), false).unwrap();
    let s = common::run_study(&study, reps, 31);
    (study, s)
}

fn bias(s: &power::Summary, m: &str) -> (f64, f64) {
    let e = &s.by_name(m).unwrap().effect;
    (e.bias, e.bias_mc_se)
}

#[test]
fn iv_is_unbiased_without_confounding() {
    let (study, s) = run(&[], 300);
    assert!(
        (study.truths[0] - 2.4).abs() < 1e-9,
        "ITT = delta * mean participation"
    );
    for m in [
        "adh_cace_iv",
        "adh_dose_response",
        "adh_high_low",
        "lmm_satterthwaite",
    ] {
        let (b, se) = bias(&s, m);
        eprintln!("confounding 0: {m}: bias {b:+.3} (MC SE {se:.3})");
        assert!(b.abs() < 4.0 * se, "{m}: bias {b} (MC SE {se})");
    }
}

#[test]
fn confounding_biases_participation_analyses_but_not_iv() {
    let (_, s) = run(&["adherence.confounding=0.5"], 300);
    for m in ["adh_high_low", "adh_dose_response"] {
        let (b, se) = bias(&s, m);
        eprintln!("confounding 0.5: {m}: bias {b:+.3} (MC SE {se:.3})");
        // Better teams participate more: both comparisons credit the
        // intervention with the teams' own advantage (positive bias).
        assert!(
            b > 6.0 * se,
            "{m}: bias {b} (MC SE {se}) should be clearly positive"
        );
    }
    let (b, se) = bias(&s, "adh_cace_iv");
    eprintln!("confounding 0.5: adh_cace_iv: bias {b:+.3} (MC SE {se:.3})");
    assert!(b.abs() < 4.0 * se, "IV bias {b} (MC SE {se})");
    // And the ITT analysis stays unbiased for delta * E[a].
    let (b, se) = bias(&s, "lmm_satterthwaite");
    assert!(b.abs() < 4.0 * se, "ITT bias {b} (MC SE {se})");
}

#[test]
fn participation_follows_the_configured_beta_and_copula() {
    let sim = Simulator::new(common::cfg(BASE, &["adherence.confounding=0.6"])).unwrap();
    let (m, v) = (0.6, 0.6 * 0.4 / 5.0); // Beta(2.4, 1.6): mean 0.6, var m(1-m)/(c+1)
    let (mut means, mut vars, mut rho_s) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..400 {
        let d = sim.simulate(9, r);
        let treated: Vec<usize> = (0..100).filter(|&j| d.team_arm[j] == 1).collect();
        let a: Vec<f64> = treated.iter().map(|&j| d.team_participation[j]).collect();
        let u: Vec<f64> = treated.iter().map(|&j| d.team_effect[j]).collect();
        let k = a.len() as f64;
        means.push(a.iter().sum::<f64>() / k);
        vars.push(a.iter().map(|x| (x - m).powi(2)).sum::<f64>() / k);
        rho_s.push(spearman(&a, &u));
        assert!(d
            .team_participation
            .iter()
            .all(|&x| (0.0..=1.0).contains(&x)));
        for j in 0..100 {
            if d.team_arm[j] == 0 {
                assert_eq!(d.team_participation[j], 0.0);
            }
        }
    }
    common::assert_mc("team participation mean", &means, m, 4.0);
    common::assert_mc("team participation variance", &vars, v, 4.0);
    // Gaussian copula: Spearman's rho = (6/pi) asin(rho/2). Sample Spearman
    // with ~50 teams has a small bias (O(1/n)); allow it on top of MC error.
    let target = 6.0 / std::f64::consts::PI * (0.6f64 / 2.0).asin();
    let (mean_rho, se) = common::mean_mcse(&rho_s);
    eprintln!("copula: Spearman {mean_rho:.4} (MC SE {se:.4}) vs {target:.4}");
    assert!(
        (mean_rho - target).abs() < 4.0 * se + 0.02,
        "{mean_rho} vs {target}"
    );
}

fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    for (k, &i) in idx.iter().enumerate() {
        r[i] = k as f64;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let m = (n - 1.0) / 2.0;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..a.len() {
        sab += (ra[i] - m) * (rb[i] - m);
        saa += (ra[i] - m).powi(2);
        sbb += (rb[i] - m).powi(2);
    }
    sab / (saa * sbb).sqrt()
}

#[test]
fn bad_adherence_input_names_the_key() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["adherence.team.mean=1.2"],
            "adherence.team.mean = 1.2: must be in (0, 1)",
        ),
        (&["adherence.team.mean=0"], "adherence.team.mean = 0"),
        (
            &["adherence.team.concentration=0"],
            "adherence.team.concentration = 0: must be > 0.01",
        ),
        (
            &["adherence.confounding=1"],
            "adherence.confounding = 1: must be in (-1, 1)",
        ),
        (
            &["adherence.confounding=-1.5"],
            "adherence.confounding = -1.5",
        ),
        (
            &["adherence.dose=threshold", "adherence.threshold=1.5"],
            "adherence.threshold = 1.5: must be in [0, 1]",
        ),
        (&["adherence.dose=threshold"], "adherence.threshold"),
        (
            &["adherence.team={ dist = \"fixed\", values = [0.5, 0.6] }"],
            "one participation per team (100 teams)",
        ),
        (
            &["adherence.dose=emax", "adherence.ec50=0"],
            "adherence.ec50 = 0",
        ),
    ];
    for (sets, needle) in cases {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let e = crtsim::config::Config::from_toml_str(BASE, &sets)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{sets:?}: `{e}` lacks `{needle}`");
    }
}

#[test]
fn adherence_plots_are_written() {
    let dir = std::env::temp_dir().join(format!("crtsim-adh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let preset = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/refocus_adherence.toml"
    );
    let sim = Simulator::new(crtsim::config::Config::load(preset, &[]).unwrap()).unwrap();
    let csv = dir.join("trial.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    crtsim::output::write_csv(&sim.simulate(3, 0), sim.design(), &mut f).unwrap();
    let pts = crtsim::plot::adherence_points(&csv).unwrap();
    assert_eq!(pts.len(), 27);
    assert!(pts
        .iter()
        .filter(|p| !p.treated)
        .all(|p| p.participation == 0.0));
    assert!(pts
        .iter()
        .filter(|p| p.treated)
        .all(|p| p.participation > 0.0 && p.participation <= 1.0));
    for w in crtsim::plot::adherence_scatter(&csv, &dir.join("adherence")).unwrap() {
        assert!(
            std::fs::metadata(&w).unwrap().len() > 5000,
            "{}",
            w.display()
        );
    }
    // A CSV without the participation column: the error names it.
    let bare = dir.join("bare.csv");
    std::fs::write(&bare, "team,arm,qpr\nT1,1,40\nT2,0,41\nT3,1,39\n").unwrap();
    let e = crtsim::plot::adherence_scatter(&bare, &dir.join("x"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("team_adherence") && e.contains("available columns"),
        "{e}"
    );
}

#[test]
fn adherence_command_on_a_trial_csv() {
    let bin = env!("CARGO_BIN_EXE_crtsim");
    let dir = std::env::temp_dir().join(format!("crtsim-adhcli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("t.csv");
    let preset = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/refocus_adherence.toml"
    );
    let st = std::process::Command::new(bin)
        .args([
            "simulate",
            preset,
            "--seed",
            "3",
            "--out",
            csv.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let out = std::process::Command::new(bin)
        .args([
            "adherence",
            csv.to_str().unwrap(),
            "--formula",
            "qpr ~ arm + baseline + site + (1|team)",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 4);
    assert_eq!(a[3]["analysis"], "adh_cace_iv");
    for x in a {
        assert_eq!(x["failed"], false, "{x}");
    }
    // IV = ITT / mean treated participation.
    let (itt, iv) = (
        a[0]["estimate"].as_f64().unwrap(),
        a[3]["estimate"].as_f64().unwrap(),
    );
    assert!(iv.abs() > itt.abs() && (iv / itt) > 1.0);
    let bad = std::process::Command::new(bin)
        .args([
            "adherence",
            csv.to_str().unwrap(),
            "--formula",
            "qpr ~ baseline + (1|team)",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no `arm` term"));
}

#[test]
fn mixture_fixed_and_nonlinear_doses() {
    // Mixture: participation is `high` with probability p_high, else `low`.
    let sim = Simulator::new(common::cfg(
        BASE,
        &["adherence.team={ dist = \"mixture\", high = 0.9, low = 0.2, p_high = 0.3 }"],
    ))
    .unwrap();
    let mut share = Vec::new();
    for r in 0..300 {
        let d = sim.simulate(4, r);
        let t: Vec<f64> = (0..100)
            .filter(|&j| d.team_arm[j] == 1)
            .map(|j| d.team_participation[j])
            .collect();
        assert!(t.iter().all(|&a| a == 0.9 || a == 0.2));
        share.push(t.iter().filter(|&&a| a == 0.9).count() as f64 / t.len() as f64);
    }
    common::assert_mc("mixture share high", &share, 0.3, 4.0);
    // Fixed: each treated team gets its own listed value.
    let values: Vec<String> = (0..100)
        .map(|j| format!("{}", (j % 10) as f64 / 10.0))
        .collect();
    let set = format!(
        "adherence.team={{ dist = \"fixed\", values = [{}] }}",
        values.join(", ")
    );
    let sim = Simulator::new(common::cfg(BASE, &[&set])).unwrap();
    let d = sim.simulate(4, 0);
    for j in 0..100 {
        let want = if d.team_arm[j] == 1 {
            (j % 10) as f64 / 10.0
        } else {
            0.0
        };
        assert_eq!(d.team_participation[j], want);
    }
    // Threshold and Emax: the simulated mean of g over treated users matches
    // the E[g] behind the ITT estimand.
    for sets in [
        vec!["adherence.dose=threshold", "adherence.threshold=0.5"],
        vec!["adherence.dose=emax", "adherence.ec50=0.3"],
    ] {
        let sim = Simulator::new(common::cfg(BASE, &sets)).unwrap();
        let dose = sim.adherence().dose();
        let eg = sim.itt_effect() / 4.0;
        let mut m = Vec::new();
        for r in 0..300 {
            let d = sim.simulate(6, r);
            let g: Vec<f64> = (0..d.len())
                .filter(|&i| d.arm[i] == 1)
                .map(|i| dose.g(d.adherence[i]))
                .collect();
            m.push(g.iter().sum::<f64>() / g.len() as f64);
        }
        common::assert_mc(&format!("E[g] {sets:?}"), &m, eg, 4.0);
    }
}

/// On the bounded QPR-15 scale the ITT estimand is the difference in mean
/// reported scores. With a large effect near the ceiling and strong
/// confounding (better teams, nearer the ceiling, take part more) it is
/// smaller than under independence; simulation agrees with the joint
/// (team effect × participation) integral, not the independent one.
#[test]
fn reported_scale_itt_under_confounding() {
    let sets = [
        "outcome.measure=\"qpr15\"",
        "outcome.icc=0.2",
        "effect.difference=14.0",
        "adherence.confounding=0.9",
        "clusters.teams=400",
        "clusters.treated=200",
    ];
    let sim = Simulator::new(common::cfg(BASE, &sets)).unwrap();
    let exact = sim.itt_effect();
    let indep = Simulator::new(common::cfg(
        BASE,
        &[&sets[..3], &["adherence.confounding=0.0"], &sets[4..]].concat(),
    ))
    .unwrap()
    .itt_effect();
    let diffs: Vec<f64> = (0..400)
        .map(|r| {
            let d = sim.simulate(21, r);
            let (mut s1, mut n1, mut s0, mut n0) = (0.0, 0.0, 0.0, 0.0);
            for i in 0..d.len() {
                if d.arm[i] == 1 {
                    s1 += d.qpr[i];
                    n1 += 1.0;
                } else {
                    s0 += d.qpr[i];
                    n0 += 1.0;
                }
            }
            s1 / n1 - s0 / n0
        })
        .collect();
    let (m, se) = common::assert_mc("reported-scale ITT", &diffs, exact, 4.0);
    eprintln!("independent-participation value {indep:.4}");
    assert!(
        (m - indep).abs() > 4.0 * se && indep - exact > 0.05,
        "simulation {m} should tell {exact} from {indep}"
    );
}
