//! Plain-language terminal output, through the binary: no Rust debug text,
//! sensible rounding, the numbers `validate` owes a planner, honest shard
//! and resume messages, progress off a terminal, and help and errors in a
//! user's words.

use std::process::{Command, Output};

fn crtsim_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crtsim"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run crtsim")
}

fn ok(args: &[&str]) -> (String, String) {
    let o = crtsim_env(args, &[]);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn fails(args: &[&str]) -> String {
    let o = crtsim_env(args, &[]);
    assert_eq!(o.status.code(), Some(2), "{args:?}");
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

fn no_debug_text(text: &str) {
    for bad in [
        "Some(",
        "None",
        "CrossSectional",
        "Cohort,",
        "Half",
        "Linear",
        "Threshold(",
        "Emax(",
    ] {
        assert!(!text.contains(bad), "Rust debug text `{bad}` in:\n{text}");
    }
}

/// Item 1: No Rust debug text; the stepped-wedge header speaks of clusters.
#[test]
fn design_words_not_debug_text() {
    let (v, _) = ok(&["validate", "configs/pulsar.toml"]);
    no_debug_text(&v);
    assert!(
        v.contains(
            "cross-sectional (different people each period) sampling; transition periods: none"
        ),
        "{v}"
    );
    assert!(v.contains("cac 0.8 ("), "{v}");
    let (v, _) = ok(&["validate", "configs/example_stepped_wedge.toml"]);
    no_debug_text(&v);
    assert!(v.contains("transition periods: half exposed"), "{v}");
    let (v, _) = ok(&["validate", "configs/refocus_adherence.toml"]);
    no_debug_text(&v);
    assert!(v.contains("dose-response linear"), "{v}");
    let (p, _) = ok(&["power", "configs/pulsar.toml", "--reps", "20"]);
    no_debug_text(&p);
    assert!(
        p.contains("stepped wedge, 14 clusters in 2 sequences over 3 periods"),
        "{p}"
    );
    assert!(!p.contains("teams") && !p.contains("random treated"), "{p}");
}

/// Item 2: The estimand to a sensible precision.
#[test]
fn estimand_rounded() {
    let (p, _) = ok(&["power", "configs/refocus.toml", "--reps", "20"]);
    assert!(p.contains("true value 2.965 (0 under the null)"), "{p}");
    assert!(!p.contains("2.96513"), "{p}");
}

/// Item 3: `validate` gives the analytic power of a parallel design and the
/// total n of a stepped wedge.
#[test]
fn validate_gives_power_and_n() {
    let (v, _) = ok(&["validate", "configs/refocus.toml"]);
    assert!(
        v.contains("analytic power at alpha 0.05 to detect the ITT effect 2.965 (baseline-adjusted analysis): 0.679 with a z test, 0.641 with a t test"),
        "{v}"
    );
    let (v, _) = ok(&["validate", "configs/pulsar.toml"]);
    assert!(
        v.contains("expected n: 756 participants in total (18 per cluster-period"),
        "{v}"
    );
    assert!(
        v.contains("analytic GLS power at alpha 0.05 to detect the ITT effect 6.035"),
        "{v}"
    );
    let (v, _) = ok(&["validate", "configs/example_stepped_wedge.toml"]);
    assert!(v.contains("analysed after 10% attrition"), "{v}");
}

/// Item 4: A shard says it is partial and raises no type-I alarm; --resume
/// says what it found and what it adds; off a terminal a long run prints
/// progress lines.
#[test]
fn shards_resume_and_progress() {
    let dir = std::env::temp_dir().join(format!("crtsim_plain_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    // A small run whose type-I error is noisy enough to trip the alarm on
    // the whole run but must not on a shard.
    let (full, _) = ok(&[
        "power",
        "configs/pulsar.toml",
        "--reps",
        "60",
        "--set",
        "outcome.measure=\"continuous\"",
    ]);
    let (shard, _) = ok(&[
        "power",
        "configs/pulsar.toml",
        "--reps",
        "60",
        "--set",
        "outcome.measure=\"continuous\"",
        "--shard",
        "1/3",
        "--out",
        d,
    ]);
    assert!(shard.starts_with("PARTIAL: shard 1/3 only"), "{shard}");
    assert!(
        !shard.contains("note:"),
        "a shard leaves judging to the merged run: {shard}"
    );
    assert!(!full.contains("PARTIAL"), "{full}");
    let o = crtsim_env(
        &[
            "power",
            "configs/pulsar.toml",
            "--reps",
            "120",
            "--set",
            "outcome.measure=\"continuous\"",
            "--shard",
            "1/3",
            "--out",
            d,
            "--resume",
        ],
        &[("CRTSIM_PROGRESS_SECS", "0")],
    );
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "resume: {d} holds 20 finished replicates of 40; running the remaining 20"
        )),
        "{err}"
    );
    assert!(
        err.contains("progress: ") && err.contains(" of 40 replicates ("),
        "{err}"
    );
    let o = crtsim_env(
        &[
            "power",
            "configs/pulsar.toml",
            "--reps",
            "120",
            "--set",
            "outcome.measure=\"continuous\"",
            "--shard",
            "1/3",
            "--out",
            d,
            "--resume",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already holds all 40 replicates; nothing to add"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 5: Help lists every plot kind and names plot's input; number errors
/// say "a number", never a Rust type.
#[test]
fn help_and_number_errors() {
    let (h, _) = ok(&["--help"]);
    assert!(
        h.contains("power, adherence, adherence-power or design"),
        "{h}"
    );
    let (h, _) = ok(&["plot", "--help"]);
    assert!(
        h.contains("<CSV_OR_CONFIG>") && h.contains("power, adherence, adherence-power or design"),
        "{h}"
    );
    let e = fails(&[
        "validate",
        "configs/refocus.toml",
        "--set",
        "outcome.icc=\"high\"",
    ]);
    assert!(e.contains("expected a number") && !e.contains("f64"), "{e}");
    let e = fails(&[
        "validate",
        "configs/refocus.toml",
        "--set",
        "clusters.teams=2.5",
    ]);
    assert!(
        e.contains("expected a whole number") && !e.contains("u32"),
        "{e}"
    );
    let e = fails(&["power", "configs/refocus.toml", "--reps", "many"]);
    assert!(e.contains("expected a whole number"), "{e}");
    let e = fails(&[
        "adherence",
        "x.csv",
        "--formula",
        "y ~ arm + (1|team)",
        "--alpha",
        "x",
    ]);
    assert!(e.contains("expected a number"), "{e}");
}
