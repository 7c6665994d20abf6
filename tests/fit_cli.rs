//! `crtsim fit`: summaries and JSON for every reference CSV, and clear errors.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_crtsim");

/// The vendored lme4 reference fits and data (a missing fixture fails).
fn reference() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/lme4");
    assert!(d.join("fits").is_dir(), "{} is missing", d.display());
    d
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_reference_case_gives_summary_and_json() {
    let dir = reference();
    for entry in std::fs::read_dir(dir.join("fits")).unwrap() {
        let path = entry.unwrap().path();
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let data = dir.join(r["data"].as_str().unwrap());
        let formula = r["formula"].as_str().unwrap();
        let mut args = vec!["fit", data.to_str().unwrap(), "--formula", formula];
        if !r["reml"].as_bool().unwrap() {
            args.push("--ml");
        }
        let null;
        if let Some(l) = r.get("lrt") {
            null = l["null_formula"].as_str().unwrap().to_string();
            args.push("--lrt");
            args.push(&null);
        }
        let (code, text, err) = run(&args);
        assert_eq!(code, 0, "{}: {err}", path.display());
        assert!(
            text.contains("Random effects:") && text.contains("Fixed effects"),
            "{text}"
        );
        if r["singular"].as_bool().unwrap() {
            assert!(text.contains("singular"), "{text}");
        }
        args.push("--json");
        let (code, json, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        let ours: Value = serde_json::from_str(&json).unwrap();
        let obj = (ours["objective"].as_f64().unwrap() - r["objective"].as_f64().unwrap()).abs();
        assert!(obj < 1e-5, "{}: objective differs by {obj}", path.display());
        assert_eq!(ours["n_obs"], r["n_obs"]);
        assert_eq!(ours["n_groups"], r["n_groups"]);
        assert_eq!(ours["singular"], r["singular"]);
        assert_eq!(
            ours["fixed"].as_array().unwrap().len(),
            r["fixed"].as_array().unwrap().len()
        );
        for (a, b) in ours["fixed"]
            .as_array()
            .unwrap()
            .iter()
            .zip(r["fixed"].as_array().unwrap())
        {
            assert_eq!(a["term"], b["term"]);
            let rel = |k: &str| (a[k].as_f64().unwrap() / b[k].as_f64().unwrap() - 1.0).abs();
            assert!(
                rel("estimate") < 1e-4 && rel("df_satterthwaite") < 1e-3,
                "{a} vs {b}"
            );
            if b.get("df_kenward_roger").is_some() {
                assert!(
                    rel("df_kenward_roger") < 1e-3 && rel("se_kenward_roger") < 1e-4,
                    "{a} vs {b}"
                );
            }
        }
        if let Some(l) = r.get("lrt") {
            let c = ours["lrt"]["chisq"].as_f64().unwrap();
            assert!((c / l["chisq"].as_f64().unwrap() - 1.0).abs() < 1e-4);
        }
    }
}

#[test]
fn df_methods_in_the_summary() {
    let dir = reference();
    let data = dir.join("data/crt_parallel.csv");
    let f = "qpr ~ arm + baseline + site + (1|team)";
    for (m, needle) in [
        ("satterthwaite", "21.69"),
        ("kenward-roger", "22.70"),
        ("between-within", "24.00"),
        ("residual", "285.00"),
    ] {
        let (code, out, err) = run(&["fit", data.to_str().unwrap(), "--formula", f, "--df", m]);
        assert_eq!(code, 0, "{err}");
        let arm = out
            .lines()
            .find(|l| l.trim_start().starts_with("arm"))
            .unwrap();
        assert!(arm.contains(needle), "{m}: {arm}");
    }
}

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crtsim-fit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = reference();
    let crt = dir.join("data/crt_parallel.csv");
    let crt = crt.to_str().unwrap();
    let one = write("one.csv", "y,g,x\n1,a,1\n2,a,2\n3,a,4\n");
    let many = write("many.csv", "y,g,x\n1,a,1\n2,b,2\n3,c,3\n4,d,5\n");
    let none = write("none.csv", "y,g,x\nNA,a,1\nNA,b,2\n");
    let constant = write("const.csv", "y,g,x\n5,a,1\n5,a,2\n5,b,3\n5,b,4\n");
    let typo = write(
        "typo.csv",
        &format!(
            "y,g,x\n{}",
            (0..30)
                .map(|i| format!(
                    "{},g{},{}\n",
                    i % 7,
                    i % 3,
                    if i == 17 {
                        "3,1".replace(',', ".") + "x"
                    } else {
                        i.to_string()
                    }
                ))
                .collect::<String>()
        ),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["fit", crt, "--formula", "qpr ~ arm + (1|team"],
            "position 20",
        ),
        (
            vec!["fit", crt, "--formula", "qpr ~ arm + basline + (1|team)"],
            "available columns: team, site, staff, arm, baseline, qpr",
        ),
        (
            vec!["fit", one.to_str().unwrap(), "--formula", "y ~ x + (1|g)"],
            "only one level",
        ),
        (
            vec!["fit", many.to_str().unwrap(), "--formula", "y ~ x + (1|g)"],
            "4 levels for 4 rows",
        ),
        (
            vec!["fit", none.to_str().unwrap(), "--formula", "y ~ x + (1|g)"],
            "no rows left",
        ),
        (
            vec![
                "fit",
                constant.to_str().unwrap(),
                "--formula",
                "y ~ x + (1|g)",
            ],
            "constant",
        ),
        (
            vec!["fit", typo.to_str().unwrap(), "--formula", "y ~ x + (1|g)"],
            "data row 18 (CSV line 19)",
        ),
        (
            vec![
                "fit",
                crt,
                "--formula",
                "qpr ~ arm + (1|team)",
                "--lrt",
                "qpr ~ baseline + (1|team)",
            ],
            "not nested",
        ),
        (
            vec![
                "fit",
                crt,
                "--formula",
                "qpr ~ arm + (1|team)",
                "--lrt",
                "qpr ~ arm + (1|team)",
            ],
            "not fewer",
        ),
        (
            vec![
                "fit",
                crt,
                "--formula",
                "qpr ~ arm + (1|team)",
                "--df",
                "bogus",
            ],
            "unknown df method",
        ),
        (
            vec![
                "fit",
                crt,
                "--formula",
                "qpr ~ arm + (1|team)",
                "--df",
                "kenward-roger",
                "--ml",
            ],
            "REML",
        ),
        (
            vec!["fit", "/no/such.csv", "--formula", "y ~ (1|g)"],
            "/no/such.csv",
        ),
        (
            vec!["fit", crt, "--formula", "site ~ arm + (1|team)"],
            "must be numeric",
        ),
    ];
    for (args, needle) in cases {
        let (code, out, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}{out}");
        assert!(err.contains(needle), "{args:?}: `{err}` lacks `{needle}`");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"));
    }
}
