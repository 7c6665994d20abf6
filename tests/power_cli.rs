//! `crtsim power` and `crtsim merge` through the binary.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_crtsim");
const REFOCUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("crtsim-pcli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.to_string_lossy().into_owned()
}

#[test]
fn json_schema_and_thread_independence() {
    let (c1, j1, e1) = run(&[
        "power",
        REFOCUS,
        "--reps",
        "300",
        "--threads",
        "1",
        "--json",
    ]);
    let (c2, j2, e2) = run(&[
        "power",
        REFOCUS,
        "--reps",
        "300",
        "--threads",
        "2",
        "--json",
    ]);
    assert_eq!((c1, c2), (0, 0), "{e1}{e2}");
    assert_eq!(j1, j2, "stdout differs between 1 and 2 threads");
    let v: serde_json::Value = serde_json::from_str(&j1).unwrap();
    for k in ["reps", "seed", "analyses", "config", "crtsim_version"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["reps"], 300);
    assert_eq!(v["seed"], 2011);
    let a = v["analyses"].as_array().unwrap();
    assert_eq!(a.len(), 5);
    for x in a {
        for k in [
            "name",
            "power",
            "power_mc_se",
            "type1",
            "type1_mc_se",
            "mean_estimate",
            "bias",
            "empirical_se",
            "mean_model_se",
            "coverage",
            "n_singular",
            "n_failed",
            "analytic_power",
        ] {
            assert!(x.get(k).is_some(), "analysis lacks {k}");
        }
    }
    // The readable table records version, seed and the ADEMP elements.
    let (c, t, _) = run(&["power", REFOCUS, "--reps", "50"]);
    assert_eq!(c, 0);
    for needle in [
        "crtsim",
        "seed 2011",
        "Aims",
        "Data-generating mechanism",
        "Estimand",
        "Methods",
        "Performance",
    ] {
        assert!(t.contains(needle), "table lacks {needle}:\n{t}");
    }
}

#[test]
fn shards_merge_to_the_single_run() {
    let single = tmp("single");
    let (c, js, e) = run(&[
        "power", REFOCUS, "--reps", "300", "--out", &single, "--json",
    ]);
    assert_eq!(c, 0, "{e}");
    let dirs: Vec<String> = (1..=3).map(|i| tmp(&format!("shard{i}"))).collect();
    for (i, d) in dirs.iter().enumerate() {
        let shard = format!("{}/3", i + 1);
        let (c, _, e) = run(&[
            "power", REFOCUS, "--reps", "300", "--shard", &shard, "--out", d,
        ]);
        assert_eq!(c, 0, "{e}");
    }
    let merged = tmp("merged");
    let mut args = vec!["merge"];
    args.extend(dirs.iter().map(String::as_str));
    args.extend(["--out", &merged, "--json"]);
    let (c, jm, e) = run(&args);
    assert_eq!(c, 0, "{e}");
    assert_eq!(js, jm, "merged summary differs from the single run");
    let a = std::fs::read(format!("{single}/replicates.csv")).unwrap();
    let b = std::fs::read(format!("{merged}/replicates.csv")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bad_input_exits_2() {
    let d = tmp("bad");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["power", REFOCUS, "--set", "analysis.methods=[\"magic\"]"],
            "analysis.methods",
        ),
        (vec!["power", REFOCUS, "--shard", "4/3"], "1 <= i <= n"),
        (
            vec![
                "power",
                REFOCUS,
                "--set",
                "analysis.formula=qpr ~ arm + (1|tem)",
            ],
            "analysis.formula",
        ),
        (vec!["merge", "/no/such/run"], "/no/such/run"),
    ];
    for (args, needle) in cases {
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: `{err}` lacks `{needle}`");
        assert!(!err.contains("panicked"));
    }
    // Existing results are never overwritten without --resume.
    let (c, _, _) = run(&["power", REFOCUS, "--reps", "20", "--out", &d]);
    assert_eq!(c, 0);
    let before = std::fs::read(format!("{d}/replicates.csv")).unwrap();
    let (c, _, err) = run(&["power", REFOCUS, "--reps", "40", "--out", &d]);
    assert_eq!(c, 2);
    assert!(err.contains("--resume"), "{err}");
    assert_eq!(
        before,
        std::fs::read(format!("{d}/replicates.csv")).unwrap()
    );
    let (c, _, err) = run(&["power", REFOCUS, "--reps", "40", "--out", &d, "--resume"]);
    assert_eq!(c, 0, "{err}");
}

#[test]
fn sweep_plot_and_solve_from_the_command_line() {
    let d = tmp("sweepcli");
    let (c, out, e) = run(&[
        "power",
        REFOCUS,
        "--reps",
        "100",
        "--no-null",
        "--sweep",
        "clusters.teams=20,30",
        "--out",
        &d,
    ]);
    assert_eq!(c, 0, "{e}");
    assert_eq!(out.lines().count(), 1 + 2 * 5);
    assert!(out.starts_with("point,clusters.teams,analysis"));
    assert!(std::path::Path::new(&format!("{d}/sweep.csv")).exists());
    assert!(std::path::Path::new(&format!("{d}/point002/replicates.csv")).exists());
    let (c, _, e) = run(&[
        "plot",
        "power",
        &format!("{d}/sweep.csv"),
        "--out",
        &format!("{d}/curve"),
    ]);
    assert_eq!(c, 0, "{e}");
    assert!(e.contains("curve.svg") && e.contains("curve.png"), "{e}");
    // Without --out: the input's stem plus the plot kind, beside the input
    // (it used to be ./power.svg for every plot, each overwriting the last).
    let (c, _, e) = run(&["plot", "power", &format!("{d}/sweep.csv")]);
    assert_eq!(c, 0, "{e}");
    assert!(
        std::path::Path::new(&format!("{d}/sweep_power.svg")).exists(),
        "{e}"
    );
    assert!(
        std::path::Path::new(&format!("{d}/sweep_power.png")).exists(),
        "{e}"
    );
    // A [sweep] section in the config.
    let cfg = format!("{d}/swept.toml");
    let mut text = std::fs::read_to_string(REFOCUS).unwrap();
    text.push_str("\n[sweep]\n\"outcome.icc\" = [0.01, 0.1]\n");
    std::fs::write(&cfg, text).unwrap();
    let (c, out, e) = run(&["power", &cfg, "--reps", "50", "--no-null"]);
    assert_eq!(c, 0, "{e}");
    assert!(out.starts_with("point,outcome.icc,analysis"), "{out}");
    let (c, out, e) = run(&[
        "power",
        REFOCUS,
        "--reps",
        "200",
        "--no-null",
        "--target-power",
        "0.7",
        "--solve",
        "clusters.teams",
    ]);
    assert_eq!(c, 0, "{e}");
    assert!(
        out.contains("<- answer") && out.contains("analytic answer"),
        "{out}"
    );
    let (c, _, e) = run(&["power", REFOCUS, "--sweep", "clusters.teams="]);
    assert_eq!(c, 2);
    assert!(e.contains("no values"), "{e}");
    let (c, _, e) = run(&[
        "power",
        REFOCUS,
        "--reps",
        "50",
        "--target-power",
        "0.99",
        "--solve",
        "clusters.teams",
        "--solve-range",
        "4:10",
    ]);
    assert_eq!(c, 2);
    assert!(
        e.contains("cannot be reached") && e.contains("best found"),
        "{e}"
    );
}

#[test]
fn sharded_sweep_merges_to_the_single_sweep() {
    let single = tmp("sw-single");
    let (c, s_out, e) = run(&[
        "power",
        REFOCUS,
        "--reps",
        "120",
        "--sweep",
        "clusters.teams=20,40",
        "--out",
        &single,
    ]);
    assert_eq!(c, 0, "{e}");
    let shards: Vec<String> = (1..=2).map(|i| tmp(&format!("sw-shard{i}"))).collect();
    for (i, d) in shards.iter().enumerate() {
        let sh = format!("{}/2", i + 1);
        let (c, _, e) = run(&[
            "power",
            REFOCUS,
            "--reps",
            "120",
            "--sweep",
            "clusters.teams=20,40",
            "--shard",
            &sh,
            "--out",
            d,
        ]);
        assert_eq!(c, 0, "{e}");
    }
    let merged = tmp("sw-merged");
    let (c, m_out, e) = run(&["merge", &shards[0], &shards[1], "--out", &merged]);
    assert_eq!(c, 0, "{e}");
    assert_eq!(s_out, m_out);
    assert_eq!(
        std::fs::read(format!("{single}/point002/replicates.csv")).unwrap(),
        std::fs::read(format!("{merged}/point002/replicates.csv")).unwrap()
    );
    let (c, _, e) = run(&["merge", &shards[0]]);
    assert_eq!(c, 2, "a missing shard is refused");
    assert!(e.contains("shards missing"), "{e}");
}

#[test]
fn json_is_printed_on_every_path_that_takes_it() {
    // --solve used to print its text report whatever --json said.
    let (c, out, e) = run(&[
        "power",
        REFOCUS,
        "--reps",
        "40",
        "--target-power",
        "0.8",
        "--solve",
        "clusters.teams",
        "--solve-range",
        "10:60",
        "--json",
    ]);
    assert_eq!(c, 0, "{e}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("solve --json is JSON");
    assert_eq!(v["key"], "clusters.teams");
    assert!(
        v["value"].as_i64().is_some() && v["evaluated"].as_array().is_some_and(|a| !a.is_empty())
    );
    // merge of a sharded sweep used to ignore --json.
    let d = tmp("json-sweep");
    for i in 1..=2 {
        let (c, _, e) = run(&[
            "power",
            REFOCUS,
            "--reps",
            "20",
            "--no-null",
            "--sweep",
            "clusters.teams=20,30",
            "--shard",
            &format!("{i}/2"),
            "--out",
            &format!("{d}/s{i}"),
        ]);
        assert_eq!(c, 0, "{e}");
    }
    let (c, out, e) = run(&["merge", &format!("{d}/s1"), &format!("{d}/s2"), "--json"]);
    assert_eq!(c, 0, "{e}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("merge --json of a sweep is JSON");
    assert_eq!(v.as_array().map(|a| a.len()), Some(2));
}
