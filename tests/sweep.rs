//! Sweeps, tidy CSV, power curves and sample-size search.

use crtsim::analysis::Analysis;
use crtsim::power::RunOptions;
use crtsim::sweep;
use std::path::PathBuf;

const REFOCUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml");

fn text() -> String {
    std::fs::read_to_string(REFOCUS).unwrap()
}

fn opts(reps: u64) -> RunOptions {
    RunOptions {
        reps,
        seed: 11,
        threads: 2,
        shard: (1, 1),
        out: None,
        resume: false,
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crtsim-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sat() -> Analysis {
    "lmm_satterthwaite".parse().unwrap()
}

#[test]
fn grid_and_point_configs() {
    let a = sweep::parse_axis("clusters.teams=20,40").unwrap();
    let b = sweep::parse_axis("outcome.icc=0.02, 0.1").unwrap();
    let g = sweep::grid(&[a, b]);
    assert_eq!(g.len(), 4);
    assert_eq!(
        g[1],
        vec![
            ("clusters.teams".into(), "20".into()),
            ("outcome.icc".into(), "0.1".into())
        ]
    );
    // Team counts scale the preset's treated share and site split.
    let c = sweep::point_config(&text(), &[], &[("clusters.teams".into(), "40".into())]).unwrap();
    assert_eq!(c.clusters.treated, Some(21));
    assert_eq!(c.clusters.site_teams, Some(vec![21, 19]));
    let c = sweep::point_config(&text(), &[], &[("clusters.teams".into(), "100".into())]).unwrap();
    assert_eq!(c.clusters.site_teams.unwrap().iter().sum::<u32>(), 100);
    assert!(sweep::parse_axis("clusters.teams=").is_err());
    assert!(sweep::parse_axis("nonsense").is_err());
}

#[test]
fn power_rises_with_teams_and_the_curve_is_drawn() {
    let axes = vec![sweep::parse_axis("clusters.teams=14,27,54").unwrap()];
    let res = sweep::run_grid(&text(), &[], &axes, false, &opts(300), |_, _| {}).unwrap();
    assert_eq!(res.len(), 3);
    let sat = |k: usize| {
        res[k]
            .summary
            .by_name("lmm_satterthwaite")
            .unwrap()
            .effect
            .reject
    };
    assert!(
        sat(0) < sat(1) && sat(1) < sat(2),
        "{} {} {}",
        sat(0),
        sat(1),
        sat(2)
    );
    let csv = sweep::tidy_csv(&res);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 3 * 5, "one row per point × analysis");
    assert!(lines[0].starts_with("point,clusters.teams,analysis,reps,seed,power,power_mc_se,type1"));
    let dir = tmp("plot");
    let path = dir.join("sweep.csv");
    std::fs::write(&path, &csv).unwrap();
    let written = crtsim::plot::power_curves(&path, &dir.join("power")).unwrap();
    for w in written {
        let bytes = std::fs::read(&w).unwrap();
        assert!(bytes.len() > 5000, "{} is too small", w.display());
    }
    let (key, series) = crtsim::plot::read_curves(&path).unwrap();
    assert_eq!(key, "clusters.teams");
    assert_eq!(series.len(), 5);
    assert_eq!(series[0].points.len(), 3);
    // Grant-ready text: words for the key and the analyses, integer ticks,
    // target lines, a chosen subset.
    use crtsim::plot::{parse_targets, power_curves_with, PlotOptions};
    let opts = PlotOptions {
        methods: Some(vec![
            crtsim::Analysis::from_name("lmm_satterthwaite").unwrap()
        ]),
        ..PlotOptions::default()
    };
    let svg = power_curves_with(&path, &dir.join("subset"), &opts).unwrap();
    let text = std::fs::read_to_string(&svg[0]).unwrap();
    assert!(text.contains("Number of teams (clusters)"), "axis in words");
    assert!(text.contains("LMM, Satterthwaite df"), "analysis in words");
    assert!(
        !text.contains("Cluster-level t-test"),
        "only the chosen analysis"
    );
    assert!(text.contains("80% target") && text.contains("90% target"));
    assert!(
        !text.contains(">12.5<") && !text.contains(">25.0<"),
        "integer ticks"
    );
    assert_eq!(parse_targets(&[]).unwrap(), vec![0.8, 0.9]);
    assert_eq!(parse_targets(&["none".into()]).unwrap(), Vec::<f64>::new());
    assert!(parse_targets(&["1.5".into()]).is_err());
}

#[test]
fn solve_finds_the_smallest_number_of_teams() {
    let sol = sweep::solve(
        &text(),
        &[],
        "clusters.teams",
        0.8,
        sat(),
        (4, 200),
        &opts(300),
        |_, _| {},
    )
    .unwrap();
    // Analytic power at the preset's ICC puts the answer near 38 teams; the
    // Monte Carlo answer must pass the target and the value below must not.
    assert!((30..=48).contains(&sol.value), "answer {}", sol.value);
    assert!(
        (30..=48).contains(&sol.analytic_value),
        "analytic {}",
        sol.analytic_value
    );
    let at = sol.evaluated.iter().find(|e| e.0 == sol.value).unwrap();
    assert!(at.1 >= 0.8);
    if let Some(below) = sol.evaluated.iter().find(|e| e.0 == sol.value - 1) {
        assert!(below.1 < 0.8);
    }
    let txt = sweep::solution_text(&sol, 300);
    assert!(txt.contains("MC SE"), "{txt}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let e = sweep::run_grid(&text(), &[], &[], false, &opts(10), |_, _| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("sweep is empty"), "{e}");
    let e = sweep::solve(
        &text(),
        &[],
        "clusters.teams",
        0.999,
        sat(),
        (4, 12),
        &opts(100),
        |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("cannot be reached") && e.contains("best found"),
        "{e}"
    );
    let e = "lmm_magic".parse::<Analysis>().unwrap_err();
    assert!(
        e.contains("lmm_magic") && e.contains("lmm_satterthwaite"),
        "{e}"
    );
    let e = sweep::solve(
        &text(),
        &[],
        "clusters.teams",
        0.8,
        "adh_cace_iv".parse().unwrap(),
        (4, 50),
        &opts(10),
        |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("adh_cace_iv") && e.contains("not among the configured analyses"),
        "{e}"
    );
    let axes = vec![sweep::parse_axis("outcome.icc=0.05,1.5").unwrap()];
    let e = sweep::run_grid(&text(), &[], &axes, false, &opts(10), |_, _| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("sweep point 2") && e.contains("outcome.icc"),
        "{e}"
    );
}
