//! `crtsim fit`: summaries and JSON for every reference CSV, and clear errors.

mod common;

use common::{lme4_dir as reference, run_crtsim as run};
use serde_json::Value;
use std::path::PathBuf;

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
        args.extend(["--json", "--df", "all"]);
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

/// `--df` computes only the method asked for (the JSON leaves the others
/// out), `--df all` every one.
#[test]
fn only_the_df_method_asked_for_is_computed() {
    let data = reference().join("data/crt_parallel.csv");
    let f = "qpr ~ arm + baseline + site + (1|team)";
    let fields = ["df_satterthwaite", "df_kenward_roger", "df_between_within"];
    for (df, want) in [
        ("residual", [false, false, false]),
        ("z", [false, false, false]),
        ("satterthwaite", [true, false, false]),
        ("kenward-roger", [false, true, false]),
        ("between-within", [false, false, true]),
        ("all", [true, true, true]),
    ] {
        let (code, json, err) = run(&[
            "fit",
            data.to_str().unwrap(),
            "--formula",
            f,
            "--df",
            df,
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&json).unwrap();
        for row in v["fixed"].as_array().unwrap() {
            for (k, w) in fields.iter().zip(want) {
                assert_eq!(row.get(*k).is_some(), w, "--df {df}: {k} in {row}");
            }
            assert!(row["df_residual"].is_number() && row["p_z"].is_number());
        }
    }
}

/// The Wald intervals are β̂ ± t_{(1+level)/2, df}·SE with each method's SE
/// and df (Kenward–Roger's adjusted SE; the normal quantile for z).
#[test]
fn wald_intervals_follow_the_se_and_df() {
    use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
    let data = reference().join("data/crt_parallel.csv");
    let f = "qpr ~ arm + baseline + site + (1|team)";
    for (df, level) in [
        ("satterthwaite", 0.95),
        ("kenward-roger", 0.9),
        ("between-within", 0.99),
        ("residual", 0.8),
        ("z", 0.95),
    ] {
        let lv = level.to_string();
        let summary_args = [
            "fit",
            data.to_str().unwrap(),
            "--formula",
            f,
            "--df",
            df,
            "--level",
            &lv,
        ];
        let mut json_args = summary_args.to_vec();
        json_args.push("--json");
        let (code, json, err) = run(&json_args);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&json).unwrap();
        for row in v["fixed"].as_array().unwrap() {
            let g = |k: &str| row[k].as_f64().unwrap_or_else(|| panic!("{k} in {row}"));
            let (se, d) = match df {
                "satterthwaite" => (g("se"), g("df_satterthwaite")),
                "kenward-roger" => (g("se_kenward_roger"), g("df_kenward_roger")),
                "between-within" => (g("se"), g("df_between_within")),
                "residual" => (g("se"), g("df_residual")),
                _ => (g("se"), f64::INFINITY),
            };
            let q = 0.5 + 0.5 * level;
            let crit = if d.is_finite() {
                StudentsT::new(0.0, 1.0, d).unwrap().inverse_cdf(q)
            } else {
                Normal::new(0.0, 1.0).unwrap().inverse_cdf(q)
            };
            let est = g("estimate");
            for (k, want) in [("ci_lower", est - crit * se), ("ci_upper", est + crit * se)] {
                assert!(
                    (g(k) - want).abs() <= 1e-7 * (1.0 + want.abs()),
                    "--df {df}: {k} {} against {want}",
                    g(k)
                );
            }
            assert_eq!(row["ci_level"].as_f64(), Some(level));
            assert_eq!(row["ci_df"].as_str(), Some(df));
        }
        // The summary shows the same interval for `arm`.
        let (_, text, _) = run(&summary_args);
        let arm = &v["fixed"][1];
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("arm"))
            .unwrap();
        let lo = format!("{:.5}", arm["ci_lower"].as_f64().unwrap());
        assert!(line.contains(&lo), "--df {df}: {line} lacks {lo}");
    }
}

/// A level outside (0, 1), an unknown df method, and --level with a GLMM
/// are refused with one line and exit code 2.
#[test]
fn bad_level_and_df_are_refused() {
    let data = reference().join("data/crt_parallel.csv");
    let d = data.to_str().unwrap();
    let f = "qpr ~ arm + (1|team)";
    for (args, needle) in [
        (vec!["--level", "1.5"], "--level 1.5"),
        (vec!["--level", "0"], "--level 0"),
        (vec!["--level", "NaN"], "--level NaN"),
        (
            vec!["--df", "fancy"],
            "satterthwaite, kenward-roger, between-within, residual, z or all",
        ),
    ] {
        let mut a = vec!["fit", d, "--formula", f];
        a.extend(args);
        let (code, _, err) = run(&a);
        assert_eq!(code, 2, "{a:?}: {err}");
        assert!(err.contains(needle), "{a:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// A categorical predictor with one level in the rows used (`site` in a
/// one-site trial) is dropped with a note in the summary and the JSON,
/// never silently.
#[test]
fn a_one_level_predictor_is_dropped_with_a_note() {
    let src = std::fs::read_to_string(reference().join("data/crt_parallel.csv")).unwrap();
    let mut lines = src.lines();
    let header = lines.next().unwrap();
    let site = header
        .split(',')
        .position(|h| h.trim_matches('"') == "site")
        .unwrap();
    let mut out = vec![header.to_string()];
    out.extend(
        lines
            .filter(|l| l.split(',').nth(site).map(|s| s.trim_matches('"')) == Some("S1"))
            .map(str::to_string),
    );
    let path = std::env::temp_dir().join(format!("crtsim_one_site_{}.csv", std::process::id()));
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    let p = path.to_str().unwrap();
    let f = "qpr ~ arm + site + (1|team)";
    let (code, text, err) = run(&["fit", p, "--formula", f]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("note: `site` has one level (`S1`)") && !text.contains("siteS"),
        "{text}"
    );
    let (code, json, err) = run(&["fit", p, "--formula", f, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&json).unwrap();
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("`site` has one level")),
        "{json}"
    );
    std::fs::remove_file(&path).ok();
}

/// Kenward–Roger's df on one block of thousands of crossed levels (dense
/// matrices over the block) are refused in one line with exit 2 before the
/// fit, naming the block's size and the alternative; Satterthwaite's df on
/// the same data are given.
#[test]
fn kenward_roger_on_a_huge_crossed_block_is_refused() {
    let dir = std::env::temp_dir().join(format!("crtsim_kr_block_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("crossed.csv");
    let mut text = String::from("a,b,y\n");
    let mut uniform = common::uniforms(7);
    let mut next = move |k: u64| (uniform() * k as f64) as u64;
    for i in 0..8000 {
        let (a, b) = (next(1000), next(1000));
        text.push_str(&format!(
            "a{a},b{b},{}\n",
            (i % 17) as f64 * 0.3 + (a % 7) as f64
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let path = csv.to_str().unwrap();
    let f = "y ~ 1 + (1|a) + (1|b)";
    for df in ["kenward-roger", "all"] {
        let (code, out, err) = run(&["fit", path, "--formula", f, "--df", df]);
        assert_eq!(code, 2, "--df {df}: {out}{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("--df kenward-roger")
                && err.contains("crossed levels")
                && err.contains("--df satterthwaite"),
            "{err}"
        );
    }
    let (code, out, err) = run(&["fit", path, "--formula", f]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("df: Satterthwaite"), "{out}");
    std::fs::remove_dir_all(&dir).ok();
}
