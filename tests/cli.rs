//! The command line: the README's main command, exit codes and messages.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_crtsim");
const REFOCUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/example_parallel.toml");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("crtsim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn simulate_writes_identical_files_for_a_seed() {
    let (a, b, c) = (tmp("a.csv"), tmp("b.csv"), tmp("c.csv"));
    for (p, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        let (code, _, err) = run(&[
            "simulate",
            REFOCUS,
            "--seed",
            seed,
            "--out",
            p.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("service users"), "{err}");
    }
    let (fa, fb, fc) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert_eq!(fa, fb);
    assert_ne!(fa, fc);
    // Without --out the CSV goes to standard output, identically.
    let (code, out, _) = run(&["simulate", REFOCUS, "--seed", "7"]);
    assert_eq!(code, 0);
    assert_eq!(out.as_bytes(), &fa[..]);
}

#[test]
fn set_overrides_apply() {
    let (code, out, err) = run(&[
        "simulate",
        REFOCUS,
        "--set",
        "clusters.teams=40",
        "--set",
        "clusters.site_teams=[20,20]",
        "--set",
        "clusters.size={dist=\"fixed\",mean=10}",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 401);
}

#[test]
fn validate_prints_the_resolved_design() {
    let (code, out, err) = run(&["validate", REFOCUS]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "REFOCUS",
        "SLaM",
        "2gether",
        "expected n: 403",
        "at follow-up",
        "baseline-adjusted",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }
    let (code, out, _) = run(&["validate", EXAMPLE]);
    assert_eq!(code, 0);
    assert!(out.contains("North"));
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["validate", REFOCUS, "--set", "outcome.icc=1.2"],
            "outcome.icc = 1.2: must be in [0, 1)",
        ),
        (
            &["validate", REFOCUS, "--set", "outcome.colour=1"],
            "unknown field `colour`",
        ),
        (
            &["validate", REFOCUS, "--set", "clusters.teams=x"],
            "clusters.teams",
        ),
        (
            &["validate", "/no/such/config.toml"],
            "/no/such/config.toml",
        ),
        (
            &["simulate", REFOCUS, "--set", "attrition.rate=1.5"],
            "attrition.rate = 1.5",
        ),
        (
            &["simulate", REFOCUS, "--out", "/no/such/dir/x.csv"],
            "/no/such/dir/x.csv",
        ),
    ];
    for (args, needle) in cases {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(err.contains(needle), "{args:?}: `{err}` lacks `{needle}`");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
