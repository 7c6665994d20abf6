//! Issue 10's "silently wrong", "panics and hangs", "bounded" and "errors a
//! person can act on" defects, each reproduced through the binary: every one
//! must now exit 2 with one line naming the key (or exit 0 with numbers that
//! mean something), fast.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_crtsim");
const REFOCUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml");
const PULSAR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml");
const ADHERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/configs/refocus_adherence.toml"
);

fn run(args: &[&str]) -> (i32, String, String, Duration) {
    let t0 = Instant::now();
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t0.elapsed(),
    )
}

/// Exit 2, one `error:` line, containing every needle, in well under a second.
fn rejects(args: &[&str], needles: &[&str]) {
    let (code, _, err, took) = run(args);
    assert_eq!(code, 2, "crtsim {}: exit {code}: {err}", args.join(" "));
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    for n in needles {
        assert!(
            err.contains(n),
            "crtsim {}: `{}` lacks `{n}`",
            args.join(" "),
            err.trim()
        );
    }
    assert!(took < Duration::from_secs(2), "{args:?} took {took:?}");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crtsim-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn non_finite_and_absurd_design_values_are_rejected() {
    // Before: all validated, and every period-3 score came out as 0.
    for (set, key) in [
        (
            "stepped_wedge.time_trend=[1, 2, nan]",
            "stepped_wedge.time_trend = NaN",
        ),
        (
            "stepped_wedge.trend_slope=nan",
            "stepped_wedge.trend_slope = NaN",
        ),
        (
            "stepped_wedge.trend_slope=inf",
            "stepped_wedge.trend_slope = inf",
        ),
        (
            "stepped_wedge.time_trend=[0, 0, 1e300]",
            "stepped_wedge.time_trend = 1e300",
        ),
    ] {
        rejects(
            &["power", PULSAR, "--reps", "10", "--set", set],
            &[key, "finite number in"],
        );
        rejects(&["validate", PULSAR, "--set", set], &[key]);
    }
}

/// A small CSV for `fit`.
fn csv(name: &str, rows: &[String]) -> String {
    let p = tmp(name);
    std::fs::write(&p, rows.join("\n") + "\n").unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn unidentifiable_models_are_errors_not_fits() {
    // 9 rows, 3 teams, arm and site constant within teams: lme4 (and crtsim
    // before) reported team variance 9,991,280 and KR df 1.5e11.
    let mut rows = vec!["site,team,arm,baseline,qpr".to_string()];
    for (t, (site, arm)) in [("A", 1), ("A", 0), ("B", 1)].iter().enumerate() {
        for i in 0..3 {
            rows.push(format!(
                "{site},T{t},{arm},{},{}",
                20 + 7 * i + t,
                25 + 5 * i * t + i
            ));
        }
    }
    let nine = csv("nine.csv", &rows);
    rejects(
        &[
            "fit",
            &nine,
            "--formula",
            "qpr ~ arm + baseline + site + (1|team)",
            "--df",
            "kenward-roger",
        ],
        &["`team` is not identifiable", "3 levels"],
    );
    let mut rows = vec!["g,c,x,y".to_string()];
    for g in 0..10 {
        for i in 0..6 {
            rows.push(format!(
                "g{g},2,{},{}",
                (i * 7 + g) % 5,
                (g % 3) as f64 + i as f64 * 0.37
            ));
        }
    }
    let cg = csv("cg.csv", &rows);
    rejects(
        &["fit", &cg, "--formula", "y ~ x + (c|g)"],
        &["column `c`", "not identifiable"],
    );
    rejects(
        &["fit", &cg, "--formula", "y ~ y + (1|g)"],
        &["response `y` also appears"],
    );
    rejects(
        &["fit", &cg, "--formula", "y ~ x + (1|g) + (1|g)"],
        &["given twice"],
    );
    // A 2-team power run: before, mean model SE 3094 with exit 0.
    rejects(
        &[
            "power",
            REFOCUS,
            "--reps",
            "50",
            "--set",
            "clusters.teams=2",
            "--set",
            "clusters.treated=1",
            "--set",
            "clusters.sites=[\"a\"]",
            "--set",
            "clusters.site_teams=[2]",
        ],
        &[
            "analysis.formula",
            "not identifiable",
            "seed 0, replicate 0",
        ],
    );
}

fn fit_table(path: &str) -> (i32, String, String) {
    let (c, o, e, _) = run(&["fit", path, "--formula", "y ~ arm + x + (1|g)"]);
    (c, o, e)
}

#[test]
fn response_scale_does_not_change_tests_or_df() {
    let base: Vec<(String, u32, f64, f64)> = (0..96)
        .map(|i| {
            let g = i % 12;
            let x = ((i * 37) % 17) as f64 / 1.7;
            let u = [
                1.3, -0.4, 2.2, -1.8, 0.5, 0.0, -2.5, 1.1, 0.9, -0.7, 1.6, -1.2,
            ][g as usize];
            let e = (((i * 7919) % 101) as f64 / 101.0 - 0.5) * 2.0;
            (format!("g{g}"), g % 2, x, 10.0 + u + 0.3 * x + e)
        })
        .collect();
    let write = |name: &str, scale: f64, outlier: bool| {
        let mut rows = vec!["g,arm,x,y".to_string()];
        for (k, (g, a, x, y)) in base.iter().enumerate() {
            let y = if outlier && k == 5 { 1e308 } else { y * scale };
            rows.push(format!("{g},{a},{x},{y:e}"));
        }
        csv(name, &rows)
    };
    let cols = |out: &str| -> Vec<String> {
        // df, t value and p of each coefficient (the interval is in units).
        out.lines()
            .filter(|l| l.starts_with(" arm") || l.starts_with(" x "))
            .map(|l| {
                l.split_whitespace()
                    .skip(3)
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let (c1, o1, e1) = fit_table(&write("y1.csv", 1.0, false));
    assert_eq!(c1, 0, "{e1}");
    // Before: df 191,345 at 1e6 (a false boundary in the Hessian's cut).
    for (name, scale) in [
        ("y1e6.csv", 1e6),
        ("y1e100.csv", 1e100),
        ("y1em100.csv", 1e-100),
    ] {
        let (c, o, e) = fit_table(&write(name, scale, false));
        assert_eq!(c, 0, "{name}: {e}");
        assert_eq!(
            cols(&o),
            cols(&o1),
            "{name}: t, df or p changed with the units"
        );
        assert!(!o.contains("NaN") && !o.contains("inf"), "{o}");
    }
    // Before: REML = inf, sigma = 0, SE = 0, exit 0.
    for (name, scale, outlier) in [
        ("y1e160.csv", 1e160, false),
        ("y1em200.csv", 1e-200, false),
        ("y308.csv", 1.0, true),
    ] {
        let (c, _, e) = fit_table(&write(name, scale, outlier));
        assert_eq!(c, 2, "{name}");
        assert!(e.contains("rescale it"), "{name}: {e}");
    }
}

#[test]
fn nonsense_tables_are_refused_up_front() {
    // Before: NaN tables with exit 0.
    rejects(
        &["power", REFOCUS, "--reps", "0"],
        &["--reps 0", "between 1 and"],
    );
    rejects(
        &[
            "power",
            REFOCUS,
            "--reps",
            "10",
            "--set",
            "effect.difference=1e300",
        ],
        &["effect.difference = 1e300", "[-1010, 1010]"],
    );
    rejects(
        &[
            "power",
            REFOCUS,
            "--reps",
            "10",
            "--set",
            "analysis.methods=[\"adh_cace_iv\"]",
        ],
        &["adh_cace_iv", "[adherence]"],
    );
}

#[test]
fn designs_that_used_to_panic_or_hang_now_end() {
    // Before: exit 101 in statrs' beta function.
    rejects(
        &[
            "power",
            PULSAR,
            "--reps",
            "20",
            "--set",
            "stepped_wedge.sequences=1",
        ],
        &["confounded with time"],
    );
    rejects(
        &[
            "power",
            PULSAR,
            "--reps",
            "20",
            "--set",
            "stepped_wedge.matrix=[[0, 1]]",
        ],
        &["stepped_wedge.matrix"],
    );
    // Before: hung in StudentsT::inverse_cdf (huge df).
    let two = [
        "--set",
        "clusters.teams=2",
        "--set",
        "clusters.treated=1",
        "--set",
        "clusters.sites=[\"a\"]",
        "--set",
        "clusters.site_teams=[2]",
    ];
    let mut a = vec!["power", REFOCUS, "--reps", "50"];
    a.extend(two);
    rejects(&a, &["not identifiable"]);
    rejects(
        &[
            "power",
            REFOCUS,
            "--reps",
            "50",
            "--sweep",
            "clusters.teams=2",
        ],
        &["not identifiable"],
    );
    rejects(
        &[
            "power",
            REFOCUS,
            "--reps",
            "50",
            "--set",
            "outcome.measure=\"continuous\"",
            "--set",
            "outcome.mean=1e9",
        ],
        &["outcome.mean = 1000000000"],
    );
    // Four teams with 90% attrition: runs, counts its failed fits, no NaN.
    let (code, out, err, took) = run(&[
        "power",
        REFOCUS,
        "--reps",
        "100",
        "--set",
        "clusters.teams=4",
        "--set",
        "clusters.site_teams=[2, 2]",
        "--set",
        "clusters.treated=2",
        "--set",
        "attrition.rate=0.9",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("NaN"), "{out}");
    assert!(out.contains("replicates failed"), "{out}");
    assert!(took < Duration::from_secs(5));
    // A continuous outcome with a large mean fits like a small one.
    let (code, out, err, _) = run(&[
        "power",
        REFOCUS,
        "--reps",
        "100",
        "--set",
        "outcome.measure=\"continuous\"",
        "--set",
        "outcome.mean=1e5",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("NaN"));
}

#[test]
fn validation_cost_does_not_grow_with_values() {
    // Before: each took memory or time in proportion to the value.
    let cases: [(&str, &str, &str); 5] = [
        (
            REFOCUS,
            "clusters.size={ dist = \"poisson\", mean = 1e9 }",
            "clusters.size.mean = 1000000000",
        ),
        (
            REFOCUS,
            "clusters.size={ dist = \"negbin\", mean = 15, cv = 1e5 }",
            "clusters.size.cv = 100000",
        ),
        (
            REFOCUS,
            "clusters.staff_per_team={ min = 1, max = 4294967295 }",
            "clusters.staff_per_team = 4294967295",
        ),
        (
            PULSAR,
            "stepped_wedge.sequences=100000",
            "stepped_wedge.sequences = 100000",
        ),
        (
            ADHERENCE,
            "adherence.team.concentration=1e300",
            "adherence.team.concentration = 1e300",
        ),
    ];
    for (cfg, set, needle) in cases {
        rejects(&["validate", cfg, "--set", set], &[needle]);
    }
    let (code, _, err, _) = run(&["power", REFOCUS, "--reps", "20", "--threads", "5000"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("--threads 5000") && err.contains("cores; using"),
        "{err}"
    );
}

#[test]
fn errors_say_what_to_do() {
    rejects(
        &["validate", REFOCUS, "--set", "outcome.sd=1e-300"],
        &["outcome.sd = 1e-300", "[1e-6, 30]"],
    );
    rejects(
        &[
            "validate",
            REFOCUS,
            "--set",
            "outcome.measure=\"continuous\"",
            "--set",
            "outcome.sd=1e-9",
        ],
        &["outcome.sd = 0.000000001", "[1e-6, 1e6]"],
    );
    rejects(
        &["validate", REFOCUS, "--set", "outcome.sd=1e300"],
        &["outcome.sd = 1e300"],
    );
    rejects(
        &[
            "validate",
            "configs/../configs/refocus_adherence.toml",
            "--set",
            "outcome.item_noise=1e300",
        ],
        &["outcome.item_noise = 1e300"],
    );
    rejects(
        &[
            "power",
            REFOCUS,
            "--reps",
            "20",
            "--set",
            "attrition.rate=0.97",
        ],
        &["seed 0, replicate 0", "with a follow-up"],
    );
    rejects(
        &[
            "validate",
            REFOCUS,
            "--set",
            "clusters.size={ dist = \"negbin\", mean = 15, cv = 1e300 }",
        ],
        &["refocus.toml: clusters.size.cv = 1e300"],
    );
    rejects(
        &[
            "validate",
            PULSAR,
            "--set",
            "stepped_wedge.matrix=[[0, 0], [0, 0]]",
        ],
        &["stepped_wedge.matrix", "confounded with time"],
    );
    rejects(
        &[
            "power",
            REFOCUS,
            "--reps",
            "5",
            "--set",
            "analysis.methods=[\"lmm_z\", \"lmm_z\"]",
        ],
        &["listed twice"],
    );
    rejects(
        &[
            "power",
            REFOCUS,
            "--reps",
            "5",
            "--sweep",
            "clusters.teams=20,20",
        ],
        &["given twice"],
    );
    // A dotted [sweep] key without quotes is the same key.
    let cfg = tmp("dotted.toml");
    let text = std::fs::read_to_string(REFOCUS).unwrap() + "\n[sweep]\noutcome.icc = [0.02, 0.1]\n";
    std::fs::write(&cfg, text).unwrap();
    let (code, out, err, _) = run(&["power", cfg.to_str().unwrap(), "--reps", "20"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("outcome.icc"), "{out}");
    // The adherence command's own options.
    let data = csv(
        "adh.csv",
        &["team,arm,team_adherence,qpr".into(), "1,1,0.5,30".into()],
    );
    rejects(
        &[
            "adherence",
            &data,
            "--formula",
            "qpr ~ arm + (1|team)",
            "--alpha",
            "0",
        ],
        &["--alpha 0"],
    );
    rejects(
        &[
            "adherence",
            &data,
            "--formula",
            "qpr ~ arm + (1|team)",
            "--cut",
            "2",
        ],
        &["--cut 2"],
    );
    let header = csv("header.csv", &["y,g".into()]);
    rejects(
        &["fit", &header, "--formula", "y ~ 1 + (1|g)"],
        &["header but no data rows"],
    );
}
