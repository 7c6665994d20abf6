//! Bad input to `crtsim fit --family` gets one `error:` line and exit 2.

use std::process::Command;

fn run(csv: &str, args: &[&str]) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("crtsim_glmm_err_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("d{k}.csv"));
    std::fs::write(&path, csv).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crtsim"))
        .arg("fit")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.code().unwrap_or(-1), err)
}

/// 8 teams × 6 rows; y from `f(team, row)`, arm = team % 2, x = row % 3.
fn data(f: impl Fn(usize, usize) -> String) -> String {
    let mut s = String::from("team,arm,x,z,y\n");
    for t in 0..8 {
        for r in 0..6 {
            s += &format!("T{t},{},{},{},{}\n", t % 2, r % 3, (t + r) % 2, f(t, r));
        }
    }
    s
}

/// `crtsim fit` with `--formula formula --family family` and `extra`.
fn fit(csv: &str, formula: &str, family: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["--formula", formula, "--family", family];
    args.extend_from_slice(extra);
    run(csv, &args)
}

fn one_error(code: i32, err: &str, want: &str) {
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(err.contains(want), "expected `{want}` in: {err}");
}

#[test]
fn binomial_response_must_be_zero_or_one() {
    let csv = data(|t, r| {
        if t == 3 && r == 2 {
            "2".into()
        } else {
            ((t + r) % 2).to_string()
        }
    });
    let (c, e) = fit(&csv, "y ~ arm + (1|team)", "binomial", &[]);
    one_error(c, &e, "must be 0 or 1");
    assert!(e.contains("data row 21"), "{e}");
}

#[test]
fn poisson_response_must_be_a_count() {
    for bad in ["-1", "1.5"] {
        let csv = data(|t, r| {
            if t == 5 && r == 0 {
                bad.into()
            } else {
                ((t * r) % 4).to_string()
            }
        });
        let (c, e) = fit(&csv, "y ~ arm + (1|team)", "poisson", &[]);
        one_error(c, &e, "non-negative whole number");
    }
}

#[test]
fn complete_separation_names_the_term() {
    // Every treated row has y = 1.
    let csv = data(|t, r| {
        if t % 2 == 1 {
            "1".into()
        } else {
            (r % 2).to_string()
        }
    });
    let (c, e) = fit(&csv, "y ~ arm + (1|team)", "binomial", &[]);
    one_error(c, &e, "complete separation");
    assert!(e.contains("`arm`"), "{e}");
}

#[test]
fn quadrature_needs_one_scalar_random_effect() {
    let csv = data(|t, r| ((t + r) % 2).to_string());
    let (c, e) = fit(
        &csv,
        "y ~ arm + (1|team) + (1|x)",
        "binomial",
        &["--nagq", "5"],
    );
    one_error(c, &e, "single scalar random effect");
    let (c, e) = fit(&csv, "y ~ arm + (1|team)", "binomial", &["--nagq", "0"]);
    one_error(c, &e, "--nagq 0");
}

#[test]
fn link_must_suit_the_family() {
    let csv = data(|t, r| ((t + r) % 2).to_string());
    let (c, e) = fit(&csv, "y ~ arm + (1|team)", "poisson", &["--link", "logit"]);
    one_error(c, &e, "does not go with");
}

#[test]
fn gee_needs_one_cluster_term_and_enough_clusters() {
    let csv = data(|t, r| u8::from((t * 7 + r * 3) % 5 < 2).to_string());
    let (c, e) = fit(
        &csv,
        "y ~ arm + (1|team) + (1|x)",
        "binomial",
        &["--gee", "md"],
    );
    one_error(c, &e, "exactly one term (1|cluster)");
    let (c, e) = fit(&csv, "y ~ arm + x + (1|team)", "binomial", &["--gee", "kc"]);
    // 8 clusters, 3 coefficients: allowed; 8 clusters and 8+ coefficients are not.
    assert_eq!(c, 0, "{e}");
    let (c, e) = fit(&csv, "y ~ arm + (z|team)", "binomial", &["--gee", "robust"]);
    one_error(c, &e, "random slopes have no meaning");
}

#[test]
fn gee_rejects_an_invalid_working_correlation() {
    // Responses alternating within every cluster: alpha near -1/(m - 1).
    let csv = data(|t, r| ((t + r) % 2).to_string());
    let (c, e) = fit(&csv, "y ~ arm + x + (1|team)", "binomial", &["--gee", "md"]);
    one_error(c, &e, "outside");
}

#[test]
fn glmm_df_is_between_within_or_none() {
    let csv = data(|t, r| u8::from((t * 7 + r * 3) % 5 < 2).to_string());
    let (c, e) = fit(
        &csv,
        "y ~ arm + (1|team)",
        "binomial",
        &["--df", "kenward-roger"],
    );
    one_error(c, &e, "--df kenward-roger is for linear mixed models");
    let (c, e) = fit(
        &csv,
        "y ~ arm + (1|team)",
        "binomial",
        &["--df", "between-within", "--gee", "md"],
    );
    one_error(c, &e, "drop --df");
}
