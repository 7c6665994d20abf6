//! Helpers shared by the integration tests: Monte Carlo summaries and
//! tolerance checks derived from the Monte Carlo standard error.
#![allow(dead_code)]

use crtsim::config::Config;

/// Mean and Monte Carlo standard error (SD / sqrt(R)) of replicate estimates.
pub fn mean_mcse(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (v / n).sqrt())
}

/// Assert that the mean of `xs` is within `z` Monte Carlo SEs of `target`.
/// Returns (mean, mcse) for reporting.
pub fn assert_mc(name: &str, xs: &[f64], target: f64, z: f64) -> (f64, f64) {
    let (m, se) = mean_mcse(xs);
    assert!(
        (m - target).abs() <= z * se,
        "{name}: Monte Carlo mean {m:.5} (MCSE {se:.5}, R = {}) is {:.1} MCSE from the target {target:.5}",
        xs.len(),
        (m - target).abs() / se
    );
    eprintln!("{name}: {m:.5} (MCSE {se:.5}) vs target {target:.5}");
    (m, se)
}

/// Parse a config from TOML text plus overrides, panicking with the error.
pub fn cfg(text: &str, sets: &[&str]) -> Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::from_toml_str(text, &sets).unwrap_or_else(|e| panic!("config: {e}"))
}

/// The REFOCUS preset shipped in configs/.
pub fn refocus(sets: &[&str]) -> Config {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load(path, &sets).unwrap_or_else(|e| panic!("config: {e}"))
}

/// A balanced single-site design for variance-component checks:
/// 40 teams x 3 staff x 4 users, no attrition, no effect.
pub const BALANCED: &str = r#"
[trial]
name = "balanced"
[clusters]
teams = 40
treated = 20
allocation = "simple"
size = { dist = "fixed", mean = 12 }
staff_per_team = 3
[outcome]
measure = "continuous"
mean = 30.0
sd = 5.0
icc = 0.10
icc_staff = 0.05
cac = 0.7
iac = 0.4
[effect]
difference = 0.0
"#;

/// Unbiased nested-ANOVA (co)variance components of (x, y) for a balanced
/// team / staff / user layout: returns (team, staff, residual) components of
/// Cov(x, y) (variances when x = y). Rows must be ordered team by team,
/// staff k = i mod S within a team.
pub fn nested_anova_cov(
    x: &[f64],
    y: &[f64],
    team: &[u32],
    staff: &[u32],
    teams: usize,
    staff_per_team: usize,
) -> (f64, f64, f64) {
    let nstaff = teams * staff_per_team;
    let n = x.len();
    let per_staff = n / nstaff;
    let per_team = n / teams;
    let (mut tx, mut ty) = (vec![0.0; teams], vec![0.0; teams]);
    let (mut sx, mut sy) = (vec![0.0; nstaff], vec![0.0; nstaff]);
    for i in 0..n {
        tx[team[i] as usize] += x[i];
        ty[team[i] as usize] += y[i];
        sx[staff[i] as usize] += x[i];
        sy[staff[i] as usize] += y[i];
    }
    tx.iter_mut().for_each(|v| *v /= per_team as f64);
    ty.iter_mut().for_each(|v| *v /= per_team as f64);
    sx.iter_mut().for_each(|v| *v /= per_staff as f64);
    sy.iter_mut().for_each(|v| *v /= per_staff as f64);
    let gx = x.iter().sum::<f64>() / n as f64;
    let gy = y.iter().sum::<f64>() / n as f64;
    let mut sp_t = 0.0;
    for j in 0..teams {
        sp_t += per_team as f64 * (tx[j] - gx) * (ty[j] - gy);
    }
    let mut sp_s = 0.0;
    for k in 0..nstaff {
        let j = k / staff_per_team;
        sp_s += per_staff as f64 * (sx[k] - tx[j]) * (sy[k] - ty[j]);
    }
    let mut sp_e = 0.0;
    for i in 0..n {
        let k = staff[i] as usize;
        sp_e += (x[i] - sx[k]) * (y[i] - sy[k]);
    }
    let mp_t = sp_t / (teams - 1) as f64;
    let mp_s = sp_s / (teams * (staff_per_team - 1)) as f64;
    let mp_e = sp_e / (n - nstaff) as f64;
    let c_e = mp_e;
    let c_s = (mp_s - mp_e) / per_staff as f64;
    let c_t = (mp_t - mp_s) / per_team as f64;
    (c_t, c_s, c_e)
}

/// Run a power study in memory (2 threads, one shard) and summarise it.
pub fn run_study(
    study: &crtsim::power::PowerStudy,
    reps: u64,
    seed: u64,
) -> crtsim::power::Summary {
    let o = crtsim::power::RunOptions {
        reps,
        seed,
        threads: 2,
        shard: (1, 1),
        out: None,
        resume: false,
    };
    crtsim::power::execute(study, &o, |_, _| {}).unwrap()
}

/// Run the crtsim binary: (exit code, stdout, stderr).
pub fn run_crtsim(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtsim"))
        .args(args)
        .output()
        .expect("the crtsim binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The vendored lme4 reference data and fits (a missing fixture fails).
pub fn lme4_dir() -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/lme4");
    assert!(d.join("fits").is_dir(), "{} is missing", d.display());
    d
}

/// A small deterministic stream of uniforms on [0, 1) (a 64-bit LCG's top
/// 53 bits), for tests that generate their own data.
pub fn uniforms(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}
