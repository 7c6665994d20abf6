//! A seeded fuzz harness over the binary, as a hostile user would drive it:
//! random configs built from the config reference (every key, with values
//! of every type: valid, boundary, NaN, inf, huge, negative, empty, wrong
//! type), random command-line options, and random CSVs and formulas for
//! `fit` and `adherence`.
//!
//! Every case must exit 0 or 2 (never 101, a signal or a timeout of 10 s),
//! print no NaN or inf in a successful output, and stay under 1 GB of
//! resident memory. CI runs 2,000 cases; any size runs by hand:
//!
//! ```text
//! CRTSIM_FUZZ_CASES=20000 CRTSIM_FUZZ_SEED=7 cargo test --release --test fuzz -- --nocapture
//! ```
//!
//! A failure prints the command and keeps the cases' files, so it can be
//! replayed exactly; `CRTSIM_FUZZ_CASE=k` (with the same seed and number of
//! cases) runs case k alone.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_crtsim");
const CONFIGS: [&str; 5] = [
    "refocus.toml",
    "pulsar.toml",
    "refocus_adherence.toml",
    "example_stepped_wedge.toml",
    "example_parallel.toml",
];
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RSS_KB: u64 = 1024 * 1024;

/// SplitMix64: a small, well-mixed deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Values no key should accept silently, of every TOML type.
const HOSTILE: [&str; 30] = [
    "nan",
    "inf",
    "-inf",
    "1e300",
    "-1e300",
    "1e-300",
    "0",
    "-1",
    "-0.0",
    "1e9",
    "4294967295",
    "18446744073709551615",
    "99999999999999999999",
    "\"\"",
    "\"abc\"",
    "[]",
    "[1, 2, nan]",
    "[[0, 1], [1]]",
    "[[]]",
    "true",
    "{}",
    "{ dist = \"negbin\", mean = 15, cv = 1e5 }",
    "{ dist = \"poisson\", mean = 1e9 }",
    "{ min = 1, max = 4294967295 }",
    "2.5",
    "0.999999",
    "1",
    "-0.5",
    "\"qpr ~ arm + (1|team\"",
    "[\"lmm_z\", \"lmm_z\"]",
];

/// Each key of the config reference with values a user might plausibly give.
fn key_values() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("trial.name", vec!["\"x\"", "\"\""]),
        ("trial.design", vec!["\"parallel\"", "\"stepped_wedge\""]),
        ("trial.seed", vec!["1", "12345"]),
        ("clusters.teams", vec!["2", "3", "4", "6", "14", "27", "40"]),
        ("clusters.treated", vec!["1", "2", "7", "14"]),
        (
            "clusters.sites",
            vec!["[\"a\"]", "[\"a\", \"b\"]", "[\"a\", \"b\", \"c\"]"],
        ),
        (
            "clusters.site_teams",
            vec!["[14, 13]", "[2, 2]", "[1, 1]", "[10]"],
        ),
        ("clusters.allocation", vec!["\"simple\"", "\"stratified\""]),
        (
            "clusters.size",
            vec![
                "{ dist = \"fixed\", mean = 10 }",
                "{ dist = \"poisson\", mean = 8, min = 2 }",
                "{ dist = \"negbin\", mean = 12, cv = 0.6 }",
                "{ dist = \"fixed\", mean = 1 }",
                "{ dist = \"given\", per_cluster = [5, 10, 15, 20] }",
                "{ dist = \"given\", per_cluster = [4, 9, 12, 6, 3, 20, 8, 11, 15, 2, 7, 5, 9, 10] }",
                "{ dist = \"given\", per_cluster_period = [[3, 0, 9], [0, 0, 0], [1e9]] }",
                "{ dist = \"given\", per_cluster_period = [[3, 4, 9], [1, 2, 3], [5, 5, 5], [2, 0, 2], [6, 6, 6], [1, 1, 1], [9, 9, 9], [3, 3, 3], [2, 2, 2], [4, 4, 4], [7, 7, 7], [8, 8, 8], [1, 2, 1], [5, 0, 5]] }",
                "{ dist = \"given\" }",
                "{ dist = \"poisson\" }",
            ],
        ),
        ("clusters.size.mean", vec!["3", "15", "40"]),
        ("clusters.size.cv", vec!["0.5", "0.9", "3"]),
        ("clusters.size.min", vec!["1", "3", "10"]),
        (
            "clusters.staff_per_team",
            vec!["1", "3", "{ min = 2, max = 5 }"],
        ),
        (
            "outcome.measure",
            vec!["\"qpr15\"", "\"qpr15_items\"", "\"continuous\""],
        ),
        ("outcome.mean", vec!["38", "5", "58", "1e5"]),
        ("outcome.sd", vec!["10", "1e-3", "25", "1e4"]),
        ("outcome.icc", vec!["0", "0.05", "0.3", "0.9"]),
        ("outcome.icc_staff", vec!["0", "0.02", "0.5"]),
        ("outcome.baseline", vec!["true", "false"]),
        ("outcome.cac", vec!["0", "0.8", "1", "-1"]),
        ("outcome.iac", vec!["0", "0.43", "1"]),
        ("outcome.site_effects", vec!["[0, 1]", "[2]", "[0, 0, 0]"]),
        ("outcome.item_noise", vec!["0", "0.6", "3"]),
        ("effect.difference", vec!["0", "3", "-5", "50"]),
        ("attrition.rate", vec!["0", "0.26", "0.9", "0.97", "0.999"]),
        ("attrition.mechanism", vec!["\"mcar\"", "\"mar\""]),
        ("attrition.slope", vec!["0", "1", "20"]),
        (
            "analysis.formula",
            vec![
                "\"qpr ~ arm + (1|team)\"",
                "\"qpr ~ arm + baseline + site + (1|team)\"",
                "\"qpr ~ treat + period + (1|cluster)\"",
                "\"qpr ~ arm + (1|team) + (1|team:staff)\"",
                "\"qpr ~ qpr + (1|team)\"",
                "\"qpr ~ arm + (1|team) + (1|team)\"",
                "\"qpr ~ arm + (baseline|team)\"",
            ],
        ),
        (
            "analysis.term",
            vec!["\"arm\"", "\"treat\"", "\"baseline\""],
        ),
        (
            "analysis.methods",
            vec![
                "[\"lmm_z\"]",
                "[\"lmm_satterthwaite\", \"lmm_kenward_roger\"]",
                "[\"cluster_t\"]",
                "[\"lmm_between_within\"]",
                "[\"adh_high_low\", \"adh_dose_response\", \"adh_cace_iv\"]",
            ],
        ),
        ("analysis.alpha", vec!["0.05", "0.01", "0.4999"]),
        (
            "adherence.team",
            vec![
                "{ dist = \"beta\", mean = 0.6, concentration = 4 }",
                "{ dist = \"mixture\", high = 0.9, low = 0.2, p_high = 0.5 }",
                "{ dist = \"fixed\", values = [0.5, 0.6] }",
            ],
        ),
        ("adherence.team.mean", vec!["0.01", "0.6", "0.99"]),
        ("adherence.team.concentration", vec!["0.01", "4", "1e4"]),
        ("adherence.staff_concentration", vec!["0.5", "10"]),
        ("adherence.confounding", vec!["0", "0.5", "-0.99"]),
        (
            "adherence.dose",
            vec!["\"linear\"", "\"threshold\"", "\"emax\""],
        ),
        ("adherence.threshold", vec!["0", "0.5", "1"]),
        ("adherence.ec50", vec!["0.01", "0.3", "100"]),
        ("adherence.cut", vec!["0", "0.5", "1"]),
        ("stepped_wedge.sequences", vec!["1", "2", "3", "7"]),
        (
            "stepped_wedge.matrix",
            vec![
                "[[0, 1], [0, 0]]",
                "[[0, 1, 1], [0, 0, 1]]",
                "[[0, 1]]",
                "[[1, 1], [1, 1]]",
                "[[0, 0], [0, 0]]",
            ],
        ),
        (
            "stepped_wedge.sampling",
            vec!["\"cross_sectional\"", "\"cohort\""],
        ),
        (
            "stepped_wedge.transition",
            vec!["\"none\"", "\"exclude\"", "\"half\""],
        ),
        (
            "stepped_wedge.time_trend",
            vec!["[0, 1, 2]", "[0, 0]", "[0, 1, 2, 3]"],
        ),
        ("stepped_wedge.trend_slope", vec!["0", "0.5", "-2"]),
        ("stepped_wedge.lag", vec!["[]", "[0.5]", "[0, 0]"]),
        (
            "\"sweep\".\"clusters.teams\"",
            vec!["[10, 20]", "[2, 3]", "[20, 20]"],
        ),
        ("sweep.outcome.icc", vec!["[0.01, 0.1]"]),
    ]
}

struct Case {
    args: Vec<String>,
    /// Labels the user's data put in the output (a level named `inf` is
    /// a name, not a number).
    labels: Vec<String>,
}

fn config_case(rng: &mut Rng, dir: &Path) -> Case {
    let base = rng.pick(&CONFIGS);
    let cfg = format!("{}/configs/{base}", env!("CARGO_MANIFEST_DIR"));
    let keys = key_values();
    let mut sets = Vec::new();
    let n_sets = rng.below(3);
    for _ in 0..n_sets {
        let (k, vals) = &keys[rng.below(keys.len())];
        let v = if rng.chance(0.2) {
            rng.pick(&HOSTILE).to_string()
        } else {
            rng.pick(vals).to_string()
        };
        sets.push(format!("{k}={v}"));
    }
    let cmd = rng.pick(&[
        "validate",
        "simulate",
        "power",
        "power",
        "power",
        "power-sweep",
        "report",
    ]);
    let mut args: Vec<String> = Vec::new();
    match cmd {
        "validate" => args.extend(["validate".into(), cfg]),
        "report" => {
            let reps = rng.pick(&["1", "5", "20", "0"]);
            let out = dir.join(format!("report{}.html", rng.below(3)));
            args.extend([
                "report".into(),
                cfg,
                "--reps".into(),
                reps.into(),
                "--out".into(),
                out.to_string_lossy().into_owned(),
            ]);
            if rng.chance(0.3) {
                // Two values: a report runs every point, and some configs
                // (QPR items under confounding) cost about a second a point.
                let (k, vals) = &keys[rng.below(keys.len())];
                let two: Vec<&str> = vals.iter().take(2).copied().collect();
                args.extend(["--sweep".into(), format!("{k}={}", two.join(","))]);
            }
            if rng.chance(0.2) {
                args.extend([
                    "--target".into(),
                    rng.pick(&["0.8", "1.5", "0.5,0.95", "x"]).into(),
                ]);
            }
        }
        "simulate" => {
            args.extend(["simulate".into(), cfg]);
            if rng.chance(0.5) {
                args.extend(["--replicate".into(), rng.below(1000).to_string()]);
            }
        }
        _ => {
            args.extend(["power".into(), cfg]);
            let reps = rng.pick(&["1", "2", "5", "20", "40", "0", "1000000000000", "-3"]);
            args.extend(["--reps".into(), reps.into()]);
            if rng.chance(0.3) {
                args.push("--json".into());
            }
            if rng.chance(0.2) {
                args.push(rng.pick(&["--null", "--no-null"]).into());
            }
            if rng.chance(0.2) {
                let t = rng.pick(&["1", "2", "0", "5000"]);
                args.extend(["--threads".into(), t.into()]);
            }
            if rng.chance(0.2) {
                let sh = rng.pick(&["1/2", "2/2", "3/2", "0/1", "1/1"]);
                args.extend(["--shard".into(), sh.into()]);
            }
            if rng.chance(0.3) {
                let out = dir.join(format!("run{}", rng.below(4)));
                args.extend(["--out".into(), out.to_string_lossy().into_owned()]);
                if rng.chance(0.5) {
                    args.push("--resume".into());
                }
            }
            if cmd == "power-sweep" {
                let (k, vals) = &keys[rng.below(keys.len())];
                let k = k
                    .trim_start_matches("\"sweep\".")
                    .trim_start_matches("sweep.");
                let vs: Vec<&str> = (0..1 + rng.below(3))
                    .map(|_| {
                        if rng.chance(0.3) {
                            rng.pick(&HOSTILE)
                        } else {
                            vals[rng.below(vals.len())]
                        }
                    })
                    .collect();
                args.extend(["--sweep".into(), format!("{k}={}", vs.join(","))]);
            } else if rng.chance(0.1) {
                let tp = rng.pick(&["0.8", "0.99", "1.5", "nan"]);
                let range = rng.pick(&["4:30", "1:3", "30:4", "2:1000000"]);
                args.extend([
                    "--target-power".into(),
                    tp.into(),
                    "--solve".into(),
                    rng.pick(&["clusters.teams", "clusters.size.mean", "outcome.icc"])
                        .into(),
                    "--solve-range".into(),
                    range.into(),
                ]);
            }
        }
    }
    for s in sets {
        args.extend(["--set".into(), s]);
    }
    Case {
        args,
        labels: Vec::new(),
    }
}

/// A random CSV (with hostile cells) and a random formula for `fit`.
fn fit_case(rng: &mut Rng, dir: &Path, k: usize) -> Case {
    let n = rng.pick(&[0usize, 1, 3, 9, 40, 120]);
    let groups = 1 + rng.below(12);
    let mut text = String::from("g,h,arm,x,c,y\n");
    if rng.chance(0.05) {
        text = String::from("g,h,arm,x,c,y,y\n");
    }
    let mut labels = Vec::new();
    let scale = rng.pick(&[1.0, 1.0, 1.0, 1e6, 1e100, 1e160, 1e-200, -1.0]);
    // A GLMM (`--family`) on a 0/1 or count response, sometimes not one.
    let family = if rng.chance(0.3) {
        Some(rng.pick(&["binomial", "binomial", "poisson"]))
    } else {
        None
    };
    for i in 0..n {
        let g = i % groups;
        let arm = g % 2;
        let x = rng.unit() * 10.0;
        let mut y =
            (5.0 + arm as f64 + 0.3 * x + (g as f64 * 0.7).sin() * 2.0 + rng.unit() - 0.5) * scale;
        match family {
            Some("binomial") if !rng.chance(0.02) => {
                y = f64::from(u8::from(rng.unit() < 0.2 + 0.1 * arm as f64 + 0.03 * x));
            }
            Some("poisson") if !rng.chance(0.02) => {
                y = (rng.unit() * (1.0 + x)).floor() * if rng.chance(0.01) { 1e17 } else { 1.0 };
            }
            _ => {}
        }
        let mut cells = vec![
            format!("g{g}"),
            format!("h{}", i % 3),
            arm.to_string(),
            format!("{x}"),
            "2".to_string(),
            format!("{y:e}"),
        ];
        if rng.chance(0.05) {
            let c = rng.below(cells.len());
            cells[c] = rng
                .pick(&[
                    "NA",
                    "",
                    "inf",
                    "nan",
                    "-inf",
                    "1e308",
                    "abc",
                    "\"q,uoted\"",
                    "1,2",
                ])
                .to_string();
            // Any column can turn categorical, and its levels are printed.
            labels.push(cells[c].trim_start_matches('-').to_string());
        }
        if rng.chance(0.01) {
            cells.pop();
        }
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    let path = dir.join(format!("fit{k}.csv"));
    std::fs::write(&path, text).unwrap();
    let fixed = [
        "arm", "x", "c", "arm*x", "arm:x", "h", "y", "0", "1", "x + x", "g",
    ];
    let random = [
        "(1|g)",
        "(x|g)",
        "(c|g)",
        "(1|g/h)",
        "(1|g:h)",
        "(x||g)",
        "(1|g) + (1|g)",
        "(0 + x|g)",
        "(1|h)",
        "(1|nope)",
    ];
    let mut f = String::from("y ~ ");
    let nf = rng.below(3);
    let terms: Vec<&str> = (0..nf).map(|_| fixed[rng.below(fixed.len())]).collect();
    f.push_str(if terms.is_empty() { "1" } else { "" });
    f.push_str(&terms.join(" + "));
    let nr = rng.below(3);
    for _ in 0..nr {
        f.push_str(" + ");
        f.push_str(random[rng.below(random.len())]);
    }
    if rng.chance(0.05) {
        f = rng
            .pick(&[
                "",
                "~",
                "y ~ (",
                "y ~ x + (1|)",
                "y ~ x | g",
                ")(",
                "y ~ x + (1|g) +",
            ])
            .to_string();
    }
    let mut args = vec![
        "fit".to_string(),
        path.to_string_lossy().into_owned(),
        "--formula".into(),
        f,
    ];
    match rng.below(6) {
        0 => args.extend(["--df".into(), "kenward-roger".into()]),
        1 => args.push("--ml".into()),
        2 => args.push("--json".into()),
        3 => args.extend(["--lrt".into(), "y ~ 1 + (1|g)".into(), "--ml".into()]),
        4 => args.extend([
            "--df".into(),
            rng.pick(&["between-within", "residual", "bogus"]).into(),
        ]),
        _ => {}
    }
    if let Some(fam) = family {
        args.retain(|a| a != "--ml");
        args.extend(["--family".into(), fam.into()]);
        if rng.chance(0.4) {
            args.extend([
                "--nagq".into(),
                rng.pick(&["1", "3", "25", "0", "101"]).into(),
            ]);
        }
        if rng.chance(0.2) {
            args.extend([
                "--link".into(),
                rng.pick(&["logit", "probit", "log"]).into(),
            ]);
        }
        if rng.chance(0.2) {
            args.extend([
                "--gee".into(),
                rng.pick(&["robust", "md", "kc", "bogus"]).into(),
            ]);
        }
        if rng.chance(0.1) {
            let cb = "cbind(c, c) ~ arm + (1|g)".to_string();
            if let Some(k) = args.iter().position(|a| a == "--formula") {
                args[k + 1] = cb;
            }
        }
    }
    if rng.chance(0.15) {
        // The adherence command on the same kind of data.
        args = vec![
            "adherence".into(),
            path.to_string_lossy().into_owned(),
            "--formula".into(),
            "y ~ arm + (1|g)".into(),
            "--alpha".into(),
            rng.pick(&["0.05", "0", "0.7", "nan"]).into(),
        ];
    }
    Case { args, labels }
}

/// Peak resident memory (kB) of a running process, from /proc.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
    peak_kb: u64,
}

fn run(args: &[String], cwd: &Path) -> Outcome {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let t0 = Instant::now();
    let mut peak = 0;
    let mut timed_out = false;
    let status = loop {
        if let Some(kb) = peak_rss_kb(child.id()) {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > TIMEOUT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Outcome {
        code: status.code(),
        stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
        timed_out,
        peak_kb: peak,
    }
}

/// A NaN or infinity printed as a number (not one of the data's labels).
fn has_nonfinite(s: &str, labels: &[String]) -> Option<String> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '+' || c == '.'))
        .find(|tok| {
            let t = tok.trim_start_matches(['-', '+']);
            let bad = t.eq_ignore_ascii_case("nan")
                || t.eq_ignore_ascii_case("inf")
                || t.eq_ignore_ascii_case("infinity");
            bad && !labels.iter().any(|l| l.eq_ignore_ascii_case(t))
        })
        .map(str::to_string)
}

fn check(k: usize, case: &Case, o: &Outcome) -> Result<(), String> {
    let cmd = format!("crtsim {}", shell_words(&case.args));
    if o.timed_out {
        return Err(format!("case {k}: timed out after {TIMEOUT:?}: {cmd}"));
    }
    match o.code {
        Some(0) => {
            if let Some(tok) = has_nonfinite(&o.stdout, &case.labels) {
                return Err(format!(
                    "case {k}: exit 0 but the output prints `{tok}`: {cmd}"
                ));
            }
        }
        Some(2) => {
            let lines = o.stderr.lines().filter(|l| l.starts_with("error:")).count();
            if lines != 1 {
                return Err(format!(
                    "case {k}: exit 2 without exactly one `error:` line ({}): {cmd}",
                    o.stderr.trim()
                ));
            }
        }
        other => {
            return Err(format!(
                "case {k}: exit {other:?} (panic or signal): {cmd}\n{}",
                o.stderr.trim()
            ))
        }
    }
    if o.peak_kb > MAX_RSS_KB {
        return Err(format!("case {k}: peak RSS {} MB: {cmd}", o.peak_kb / 1024));
    }
    Ok(())
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_alphanumeric() || "-_./=:".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn hostile_inputs_never_panic_hang_or_print_nan() {
    let cases: usize = std::env::var("CRTSIM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let seed: u64 = std::env::var("CRTSIM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2026);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let root: PathBuf = std::env::temp_dir().join(format!("crtsim-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let t0 = Instant::now();
    let results: Vec<(Vec<String>, [usize; 3])> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let root = root.clone();
                s.spawn(move || {
                    let dir = root.join(format!("w{w}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    let mut failures = Vec::new();
                    let mut tally = [0usize; 3]; // exit 0, exit 2, fit cases
                    let only: Option<usize> = std::env::var("CRTSIM_FUZZ_CASE")
                        .ok()
                        .and_then(|v| v.parse().ok());
                    for k in (w..cases).step_by(workers) {
                        if only.is_some_and(|o| o != k) {
                            continue;
                        }
                        let mut rng = Rng(seed ^ (k as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
                        let case = if rng.chance(0.35) {
                            tally[2] += 1;
                            fit_case(&mut rng, &dir, k)
                        } else {
                            config_case(&mut rng, &dir)
                        };
                        let o = run(&case.args, &dir);
                        match o.code {
                            Some(0) => tally[0] += 1,
                            Some(2) => tally[1] += 1,
                            _ => {}
                        }
                        if let Err(e) = check(k, &case, &o) {
                            failures.push(e);
                        }
                    }
                    (failures, tally)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failures: Vec<String> = results.iter().flat_map(|r| r.0.clone()).collect();
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        eprintln!(
            "the cases' files are kept in {} to replay them",
            root.display()
        );
    }
    failures.sort();
    let sum = |i: usize| results.iter().map(|r| r.1[i]).sum::<usize>();
    eprintln!(
        "fuzz: {cases} cases (seed {seed}, {} fit/adherence) in {:.1} s: {} exit 0, {} exit 2, {} failures",
        sum(2),
        t0.elapsed().as_secs_f64(),
        sum(0),
        sum(1),
        failures.len()
    );
    for f in failures.iter().take(30) {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed",
        failures.len()
    );
}
