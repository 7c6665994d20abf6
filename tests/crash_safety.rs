//! Finished replicates are never lost: resuming and merging are crash-safe,
//! run directories are locked, and damaged files are repaired in replicate
//! order (issue 10, items 1–5 and 13). Through the binary.
//!
//! `CRTSIM_KILLS=20 cargo test --release --test crash_safety` runs the
//! kill -9 check with 20 kills (CI runs 6).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

fn ok(args: &[&str]) -> String {
    let (c, o, e) = run(args);
    assert_eq!(c, 0, "crtsim {}: {e}", args.join(" "));
    o
}

fn fail(args: &[&str]) -> String {
    let (c, _, e) = run(args);
    assert_eq!(
        c,
        2,
        "crtsim {} should fail with exit 2: {e}",
        args.join(" ")
    );
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crtsim-crash-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn power(out: &Path, reps: u64, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "power",
        REFOCUS,
        "--reps",
        &reps.to_string(),
        "--out",
        s(out),
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn csv(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("replicates.csv")).unwrap()
}

/// A small deterministic generator for the kill moments.
fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

#[test]
fn kill_9_during_a_resume_that_extends_a_finished_run() {
    let kills: usize = std::env::var("CRTSIM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let (small, big) = (4000u64, 12000u64);
    let reference = tmp("kill-ref");
    ok(&refs(&power(&reference, big, &["--threads", "2"])));
    let want = csv(&reference);
    let dir = tmp("kill-run");
    ok(&refs(&power(&dir, small, &["--threads", "2"])));
    let finished = csv(&dir);
    assert!(want.starts_with(&finished));
    // How long an uninterrupted extension takes, to spread the kills over it.
    let probe = tmp("kill-probe");
    ok(&refs(&power(&probe, small, &["--threads", "2"])));
    let t0 = Instant::now();
    ok(&refs(&power(&probe, big, &["--threads", "2", "--resume"])));
    let span = t0.elapsed().as_secs_f64() * 1.2;
    let mut state = 2026u64;
    let mut intact_after_kill = 0;
    for k in 0..kills {
        let at = Duration::from_secs_f64(span * lcg(&mut state));
        let mut child = Command::new(BIN)
            .args(refs(&power(&dir, big, &["--threads", "2", "--resume"])))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let now = csv(&dir);
        assert!(
            now.starts_with(&finished),
            "kill {k} at {at:?}: the finished replicates were damaged ({} bytes, {} before)",
            now.len(),
            finished.len()
        );
        // Whatever was written beyond them is the uninterrupted run's bytes
        // (possibly a torn last batch).
        let common = now.iter().zip(&want).take_while(|(a, b)| a == b).count();
        assert!(
            common == now.len() || now.len() - common < 64 * 1024,
            "kill {k}: the file departs from the uninterrupted run at byte {common} of {}",
            now.len()
        );
        intact_after_kill += 1;
    }
    ok(&refs(&power(&dir, big, &["--threads", "1", "--resume"])));
    assert_eq!(
        csv(&dir),
        want,
        "resumed run differs from the uninterrupted one"
    );
    assert_eq!(intact_after_kill, kills);
    eprintln!("{kills} kills over {span:.2} s: finished replicates intact every time; resumed run byte-identical");
}

#[test]
fn damaged_lines_are_repaired_in_replicate_order() {
    let reference = tmp("rep-ref");
    ok(&refs(&power(&reference, 600, &[])));
    let want = csv(&reference);
    let text = String::from_utf8(want.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage line in the middle", {
            let mut v = lines.clone();
            v[1234] = "this is not a record";
            (v.join("\n") + "\n").into_bytes()
        }),
        ("duplicated line", {
            let mut v = lines.clone();
            v.insert(2000, lines[1999]);
            (v.join("\n") + "\n").into_bytes()
        }),
        ("line deleted", {
            let mut v = lines.clone();
            v.remove(777);
            (v.join("\n") + "\n").into_bytes()
        }),
        ("torn last line", {
            let mut b = want[..want.len() - 17].to_vec();
            b.truncate(b.len());
            b
        }),
        ("invalid UTF-8 at the end", {
            let mut b = want[..want.len() - 30].to_vec();
            b.extend_from_slice(&[0xff, 0xfe, b'\n', 0xc3]);
            b
        }),
    ];
    for (what, bytes) in cases {
        let dir = tmp("rep-case");
        ok(&refs(&power(&dir, 600, &[])));
        std::fs::write(dir.join("replicates.csv"), &bytes).unwrap();
        let out = ok(&refs(&power(&dir, 600, &["--resume", "--json"])));
        assert_eq!(
            csv(&dir),
            want,
            "{what}: not repaired to the uninterrupted file"
        );
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["reps"], 600, "{what}");
        let again = ok(&refs(&power(&reference, 600, &["--resume", "--json"])));
        assert_eq!(out, again, "{what}: summary differs");
    }
    // A file that is not crtsim's says what to do.
    let dir = tmp("rep-foreign");
    ok(&refs(&power(&dir, 20, &[])));
    std::fs::write(dir.join("replicates.csv"), "a,b\n1,2\n").unwrap();
    let e = fail(&refs(&power(&dir, 40, &["--resume"])));
    assert!(
        e.contains("not a crtsim replicates file") && e.contains("move it away"),
        "{e}"
    );
}

#[test]
fn a_second_run_on_a_locked_directory_is_refused_naming_the_holder() {
    let dir = tmp("lock");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = crtsim::power::store::DirLock::acquire(&dir).unwrap();
    let e = fail(&refs(&power(&dir, 20, &[])));
    assert!(
        e.contains("in use by crtsim process") && e.contains(&std::process::id().to_string()),
        "{e}"
    );
    drop(lock);
    ok(&refs(&power(&dir, 20, &[])));
    // Two processes started together on one empty directory: one proceeds.
    let dir = tmp("lock-race");
    let spawn = || {
        Command::new(BIN)
            .args(refs(&power(&dir, 3000, &["--threads", "1"])))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(2)),
        "{codes:?}"
    );
    let loser = if a.status.code() == Some(2) { a } else { b };
    let e = String::from_utf8_lossy(&loser.stderr);
    assert!(
        e.contains("in use by") || e.contains("already holds"),
        "{e}"
    );
}

#[test]
fn merge_refuses_to_overwrite_and_checks_reps() {
    let shards: Vec<PathBuf> = (1..=3).map(|i| tmp(&format!("m{i}"))).collect();
    for (i, d) in shards.iter().enumerate() {
        let sh = format!("{}/3", i + 1);
        ok(&refs(&power(d, 600, &["--shard", &sh])));
    }
    let single = tmp("m-single");
    ok(&refs(&power(&single, 600, &[])));
    let merged = tmp("m-out");
    let mut args = vec!["merge".to_string()];
    args.extend(shards.iter().map(|d| s(d).to_string()));
    let with_out = |o: &Path| {
        let mut a = args.clone();
        a.extend(["--out".to_string(), s(o).to_string()]);
        a
    };
    let table = ok(&refs(&with_out(&merged)));
    assert_eq!(csv(&merged), csv(&single));
    // Merging again into the same (identical) directory is a no-op.
    assert_eq!(ok(&refs(&with_out(&merged))), table);
    // A merge killed after its manifest but before its replicates landed
    // (leaving a temporary file) is completed by the next merge.
    std::fs::remove_file(merged.join("replicates.csv")).unwrap();
    std::fs::write(merged.join(".replicates.csv.tmp-99999"), "rep,scen").unwrap();
    assert_eq!(ok(&refs(&with_out(&merged))), table);
    assert_eq!(csv(&merged), csv(&single));
    assert!(!merged.join(".replicates.csv.tmp-99999").exists());
    // So is the single run it reproduces.
    assert_eq!(ok(&refs(&with_out(&single))), table);
    // A directory holding another finished run is refused, untouched.
    let other = tmp("m-other");
    ok(&refs(&power(&other, 600, &["--seed", "5"])));
    let before = csv(&other);
    let e = fail(&refs(&with_out(&other)));
    assert!(
        e.contains("not empty") && e.contains("another --out"),
        "{e}"
    );
    assert_eq!(csv(&other), before);
    // An input shard as --out is refused, untouched.
    let before = csv(&shards[1]);
    let e = fail(&refs(&with_out(&shards[1])));
    assert!(e.contains("not empty"), "{e}");
    assert_eq!(csv(&shards[1]), before);
    // Any other non-empty directory too.
    let junk = tmp("m-junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("notes.txt"), "mine").unwrap();
    fail(&refs(&with_out(&junk)));
    assert_eq!(
        std::fs::read_to_string(junk.join("notes.txt")).unwrap(),
        "mine"
    );
    // Shards run with different --reps.
    let odd = tmp("m-odd3");
    ok(&refs(&power(&odd, 700, &["--shard", "3/3"])));
    let e = fail(&["merge", s(&shards[0]), s(&shards[1]), s(&odd)]);
    assert!(e.contains("--reps 700") && e.contains("--reps 600"), "{e}");
    // A shard that stopped early (its manifest asks for more than it holds).
    let short = tmp("m-short3");
    ok(&refs(&power(&short, 600, &["--shard", "3/3"])));
    let text = std::fs::read_to_string(short.join("replicates.csv")).unwrap();
    let keep: Vec<&str> = text.lines().take(1 + 10 * 50).collect();
    std::fs::write(short.join("replicates.csv"), keep.join("\n") + "\n").unwrap();
    let e = fail(&["merge", s(&shards[0]), s(&shards[1]), s(&short)]);
    assert!(
        e.contains("stops before replicate") && e.contains("--resume"),
        "{e}"
    );
}

#[test]
fn replicate_counts_are_bounded_and_runs_stream() {
    for bad in ["0", "1000000000000"] {
        let e = fail(&["power", REFOCUS, "--reps", bad]);
        assert!(e.contains("--reps") && e.contains("between 1 and"), "{e}");
    }
    // --out in a directory that holds something else.
    let d = tmp("foreign-dir");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("thesis.tex"), "x").unwrap();
    let e = fail(&refs(&power(&d, 10, &[])));
    assert!(e.contains("not empty") && e.contains("no run.json"), "{e}");
}
