//! Stepped-wedge designs: structure, transitions, lag, cohort sampling,
//! Monte Carlo against exact GLS power, and bad input.

mod common;
use crtsim::power::{self, PowerStudy, RunOptions};
use crtsim::simulate::Simulator;

fn pulsar(sets: &[&str]) -> crtsim::config::Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    crtsim::config::Config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml"),
        &sets,
    )
    .unwrap()
}

#[test]
fn pulsar_structure_and_csv() {
    let sim = Simulator::new(pulsar(&[])).unwrap();
    for r in 0..20 {
        let d = sim.simulate(1, r);
        assert_eq!(d.len(), 14 * 3 * 18);
        let seq1 = d.team_sequence.iter().filter(|&&q| q == 0).count();
        assert_eq!(seq1, 7, "7 + 7 clusters per sequence");
        for i in 0..d.len() {
            let q = d.team_sequence[d.team[i] as usize] as usize;
            let want = [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]][q][d.period[i] as usize];
            assert_eq!(d.exposure[i], want);
            assert_eq!(d.arm[i] as f64, want);
            let since = if want == 1.0 {
                d.period[i] as i32 - (q as i32 + 1)
            } else {
                -1
            };
            assert_eq!(d.time_since[i], since);
        }
    }
    let mut buf = Vec::new();
    crtsim::output::write_sw_csv(&sim.simulate(1, 0), &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with(
        "cluster,period,sequence,exposure,time_since_crossover,individual,treat,qpr\n"
    ));
    assert!(text.lines().nth(1).unwrap().contains(",t1,") && text.contains(",NA,"));
}

#[test]
fn transitions_lag_and_cohorts() {
    let ex = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/example_stepped_wedge.toml"
    );
    let cfg = crtsim::config::Config::load(ex, &[]).unwrap();
    let sim = Simulator::new(cfg).unwrap();
    let d = sim.simulate(2, 0);
    for i in 0..d.len() {
        match d.time_since[i] {
            0 => assert_eq!(d.exposure[i], 0.5, "half-exposed transition period"),
            e if e > 0 => assert_eq!(d.exposure[i], 1.0),
            _ => assert_eq!(d.exposure[i], 0.0),
        }
    }
    let cfg = crtsim::config::Config::load(ex, &["stepped_wedge.transition=exclude".to_string()])
        .unwrap();
    let d = Simulator::new(cfg).unwrap().simulate(2, 0);
    assert!(
        d.time_since.iter().all(|&e| e != 0),
        "first exposed period excluded"
    );
    // Lag: with δ = 4 and lag [0.5], the first exposed period's mean effect is 2.
    let cfg = pulsar(&[
        "outcome.measure=continuous",
        "outcome.icc=0.0",
        "stepped_wedge.lag=[0.5]",
        "effect.difference=4.0",
    ]);
    let sim = Simulator::new(cfg).unwrap();
    let (mut first, mut later) = (Vec::new(), Vec::new());
    for r in 0..300 {
        let d = sim.simulate(3, r);
        let mean = |f: &dyn Fn(usize) -> bool| {
            let v: Vec<f64> = (0..d.len()).filter(|&i| f(i)).map(|i| d.qpr[i]).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let ctrl = mean(&|i| d.exposure[i] == 0.0);
        first.push(mean(&|i| d.time_since[i] == 0) - ctrl);
        later.push(mean(&|i| d.time_since[i] == 1) - ctrl);
    }
    common::assert_mc(
        "effect in the first exposed period (lag 0.5)",
        &first,
        2.0,
        4.0,
    );
    common::assert_mc("effect one period later (full)", &later, 4.0, 4.0);
    // Cohort: the same individuals in every period of a cluster.
    let cfg = pulsar(&[
        "stepped_wedge.sampling=cohort",
        "outcome.iac=0.5",
        "clusters.size={ dist = \"poisson\", mean = 10 }",
    ]);
    let d = Simulator::new(cfg).unwrap().simulate(4, 0);
    for c in 0..14u32 {
        let per: Vec<usize> = (0..3u16)
            .map(|t| {
                (0..d.len())
                    .filter(|&i| d.team[i] == c && d.period[i] == t)
                    .count()
            })
            .collect();
        assert!(per[0] == per[1] && per[1] == per[2], "cluster {c}: {per:?}");
    }
}

#[test]
fn monte_carlo_power_matches_gls_power() {
    let study = PowerStudy::new(pulsar(&["outcome.measure=continuous"]), true).unwrap();
    let o = RunOptions {
        reps: 1000,
        seed: 99,
        threads: 2,
        shard: (1, 1),
        out: None,
        resume: false,
    };
    let recs = power::execute(&study, &o, |_, _| {}).unwrap();
    let s = power::summarise(&study, 99, &recs);
    eprint!("{}", power::summary_table(&study, &s));
    let z = s.methods.iter().position(|m| m == "lmm_z").unwrap();
    let (e, _) = &s.perf[z];
    assert!(
        (e.reject - s.analytic[z]).abs() < 2.5 * e.reject_mc_se,
        "MC {} vs GLS {}",
        e.reject,
        s.analytic[z]
    );
    for m in ["lmm_satterthwaite", "lmm_kenward_roger"] {
        let a = s.methods.iter().position(|x| x == m).unwrap();
        let t1 = s.perf[a].1.as_ref().unwrap();
        assert!(
            (t1.reject - 0.05).abs() <= 2.0 * t1.reject_mc_se,
            "{m}: type-I {} (MC SE {})",
            t1.reject,
            t1.reject_mc_se
        );
    }
}

#[test]
fn bad_stepped_wedge_input() {
    let err = |sets: &[&str]| -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        crtsim::config::Config::load(
            concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml"),
            &sets,
        )
        .unwrap_err()
        .to_string()
    };
    assert!(err(&["stepped_wedge.matrix=[[0,1,1],[0,1]]"]).contains("ragged"));
    assert!(err(&["stepped_wedge.sequences=0"]).contains("zero periods"));
    assert!(err(&["outcome.cac=1.2"]).contains("outcome.cac = 1.2: must be in [0, 1]"));
    assert!(err(&["stepped_wedge.lag=[0.5, 0.7, 0.9, 1.0]"])
        .contains("longer than the number of periods (3)"));
    assert!(err(&["outcome.baseline=true"]).contains("outcome.baseline"));
    assert!(err(&["stepped_wedge.sampling=cohort"]).contains("outcome.iac"));
    // A sequence never or always treated is allowed, with a warning.
    let c = pulsar(&["stepped_wedge.matrix=[[0,1,1],[0,0,0],[1,1,1]]"]);
    let w = c.stepped_wedge.as_ref().unwrap().warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("never") && w[1].contains("every period"));
    assert_eq!(c.warnings(), w);
    // The commands that run the design say so too (stderr), and still run.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtsim"))
        .args([
            "simulate",
            concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml"),
            "--set",
            "stepped_wedge.matrix=[[0,1,1],[0,0,0]]",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: sequence 2 never receives the intervention"),
        "{stderr}"
    );
}

#[test]
fn design_diagram_is_drawn() {
    let dir = std::env::temp_dir().join(format!("crtsim-swplot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for w in crtsim::plot::design_diagram(&pulsar(&[]), &dir.join("design")).unwrap() {
        assert!(
            std::fs::metadata(&w).unwrap().len() > 3000,
            "{}",
            w.display()
        );
    }
    let parallel = common::refocus(&[]);
    let e = crtsim::plot::design_diagram(&parallel, &dir.join("x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("stepped-wedge"), "{e}");
}
