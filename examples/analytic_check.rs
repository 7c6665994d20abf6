//! Issue 4's full analytic check: a parallel trial with 100 teams of 20,
//! icc 0.05, effect 2.5; Monte Carlo power from 4000 replicates against the
//! closed form. `cargo run --release --example analytic_check`
use crtsim::config::Config;
use crtsim::power::{self, PowerStudy, RunOptions};

fn main() {
    let cfg = Config::from_toml_str(
        r#"
[trial]
name = "100 teams of 20"
[clusters]
teams = 100
treated = 50
size = { dist = "fixed", mean = 20 }
[outcome]
measure = "continuous"
mean = 40.0
sd = 10.0
icc = 0.05
baseline = false
[effect]
difference = 2.5
[analysis]
methods = ["lmm_z", "lmm_satterthwaite", "lmm_kenward_roger", "cluster_t"]
"#,
        &[],
    )
    .expect("config");
    let study = PowerStudy::new(cfg, true).expect("study");
    let t = std::time::Instant::now();
    let opts = RunOptions {
        reps: 4000,
        seed: 2025,
        threads: 2,
        shard: (1, 1),
        out: None,
        resume: false,
    };
    let s = power::execute(&study, &opts, |_, _| {}).expect("run");
    print!("{}", power::summary_table(&study, &s));
    for r in &s.rows {
        let e = &r.effect;
        println!(
            "{}: MC power {:.4} (MC SE {:.4}) vs analytic {:.4}: {:.2} MC SE apart",
            r.analysis,
            e.reject,
            e.reject_mc_se,
            r.analytic,
            (e.reject - r.analytic).abs() / e.reject_mc_se
        );
    }
    println!("wall time {:?}", t.elapsed());
}
