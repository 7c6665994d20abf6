//! `crtsim report`: one self-contained HTML file per report, checked by
//! parsing (no external reference, the sections in order, numbers that
//! match the run) and in a real browser (headless Chromium: no console
//! error, no element wider than the page at desktop, A4 and phone widths).
//!
//! Chromium is required, never skipped: `.ci/run` installs it
//! (`apt-get install -y chromium`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn crtsim(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_crtsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run crtsim");
    assert!(
        out.status.success(),
        "crtsim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crtsim_report_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every way a page could reach outside itself.
fn external_references(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    for needle in [
        "<script",
        "<link",
        "<img",
        "<iframe",
        "<object",
        "<embed",
        "<audio",
        "<video",
        "<source",
        "src=",
        "href=",
        "url(",
        "@import",
        "http://",
        "https://",
        "//cdn",
        "<base",
        "<meta http-equiv",
    ] {
        if let Some(i) = lower.find(needle) {
            found.push(format!(
                "{needle} at byte {i}: {}",
                &html[i..(i + 60).min(html.len())]
            ));
        }
    }
    found
}

fn sections(html: &str) -> Vec<String> {
    html.split("<h2>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap_or("").to_string())
        .collect()
}

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!("the browser check needs Chromium: apt-get install -y chromium (CI installs it)");
}

/// Render `page` at `width` px in headless Chromium with a probe script
/// (added to a copy, never to the report): the page's width, its scroll
/// width, every element reaching past the page's edges, and every error
/// event; plus the console lines Chromium logged.
fn render(page: &Path, width: u32, dir: &Path) -> (serde_json::Value, Vec<String>) {
    let html = std::fs::read_to_string(page).unwrap();
    let probe = r#"<script>
window.__errs=[];
window.addEventListener('error',function(e){window.__errs.push(String(e.message||(e.target&&e.target.outerHTML)))},true);
window.addEventListener('load',function(){
 var w=document.documentElement.clientWidth,bad=[];
 document.querySelectorAll('body *').forEach(function(el){var r=el.getBoundingClientRect();
  if(r.width>0&&(r.right>w+0.5||r.left<-0.5))bad.push(el.tagName+'.'+el.className+' '+Math.round(r.left)+'..'+Math.round(r.right))});
 document.title='PROBE'+JSON.stringify({width:w,scroll:document.documentElement.scrollWidth,overflow:bad.slice(0,20),errors:window.__errs});
});
</script>"#;
    let probed = dir.join(format!("probe_{width}.html"));
    std::fs::write(&probed, html.replace("</body>", &format!("{probe}</body>"))).unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={}", dir.join("chromium-profile").display()),
            &format!("--window-size={width},2000"),
            "--dump-dom",
            &format!("file://{}", probed.display()),
        ])
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let json = dom
        .split("PROBE")
        .nth(1)
        .and_then(|s| s.split("</title>").next())
        .unwrap_or_else(|| {
            panic!(
                "the probe did not run; chromium said: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let json = json
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    (v, console)
}

fn check_page(page: &Path, dir: &Path, want_sections: &[&str]) -> String {
    let html = std::fs::read_to_string(page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", page.display());
    let ext = external_references(&html);
    assert!(
        ext.is_empty(),
        "{}: external references {ext:?}",
        page.display()
    );
    assert!(
        !html.contains("NaN") && !html.contains("inf%"),
        "{}",
        page.display()
    );
    assert_eq!(sections(&html), want_sections, "{}", page.display());
    for width in [1280, 794, 480] {
        let (v, console) = render(page, width, dir);
        assert!(
            console.is_empty(),
            "{} at {width}px: console {console:?}",
            page.display()
        );
        assert_eq!(
            v["errors"],
            serde_json::json!([]),
            "{} at {width}px",
            page.display()
        );
        assert_eq!(
            v["overflow"],
            serde_json::json!([]),
            "{} at {width}px: elements wider than the page",
            page.display()
        );
        assert_eq!(v["scroll"], v["width"], "{} at {width}px", page.display());
    }
    html
}

const RUN: [&str; 5] = [
    "Design",
    "Assumptions",
    "Results",
    "Protocol paragraph",
    "Reproducibility",
];

fn expect(list: &[&str]) -> Vec<&'static str> {
    let all = [
        "Design",
        "Assumptions",
        "Results",
        "Power curves",
        "Sample size",
        "Adherence",
        "Protocol paragraph",
        "Reproducibility",
    ];
    all.into_iter().filter(|s| list.contains(s)).collect()
}

#[test]
fn one_run_report() {
    let dir = tmp("run");
    let page = dir.join("refocus.html");
    let p = page.to_str().unwrap();
    crtsim(&[
        "report",
        "configs/refocus.toml",
        "--reps",
        "300",
        "--out",
        p,
    ]);
    let html = check_page(&page, &dir, &expect(&RUN));
    // Every number in the paragraph comes from the run: the same run's
    // JSON summary gives the recommended analysis' power.
    let json: serde_json::Value = serde_json::from_str(&crtsim(&[
        "power",
        "configs/refocus.toml",
        "--reps",
        "300",
        "--json",
    ]))
    .unwrap();
    let sat = json["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "lmm_satterthwaite")
        .unwrap();
    let power = sat["power"].as_f64().unwrap();
    let para = html.split("class=\"protocol\">").nth(1).unwrap();
    let para = para.split("</p>").next().unwrap();
    assert!(
        para.contains(&format!("has {:.1}% power", 100.0 * power)),
        "{para} vs {power}"
    );
    assert!(para.contains("With 27 teams (14 intervention, 13 control) in 2 sites"));
    assert!(para.contains("300 simulated trials"));
    assert!(html.contains("Recommended analysis</dt><dd>LMM, Satterthwaite df"));
    // Sources from the config's comments.
    assert!(html.contains("SOURCED: 297 of 403 followed up"));
}

#[test]
fn sweep_and_stored_reports() {
    let dir = tmp("sweep");
    let page = dir.join("pulsar.html");
    let runs = dir.join("runs");
    crtsim(&[
        "power",
        "configs/pulsar.toml",
        "--sweep",
        "clusters.teams=10,14,20,28",
        "--reps",
        "150",
        "--out",
        runs.to_str().unwrap(),
    ]);
    crtsim(&[
        "report",
        "configs/pulsar.toml",
        "--sweep",
        "clusters.teams=10,14,20,28",
        "--reps",
        "150",
        "--out",
        page.to_str().unwrap(),
    ]);
    let want = expect(&[
        "Design",
        "Assumptions",
        "Results",
        "Power curves",
        "Protocol paragraph",
        "Reproducibility",
    ]);
    let fresh = check_page(&page, &dir, &want);
    assert!(fresh.contains("<svg"), "the power curve is inline SVG");
    assert!(fresh.contains("90% target") && fresh.contains("80% target"));
    // From the stored sweep: nothing rerun, same results table.
    let stored = dir.join("stored.html");
    crtsim(&[
        "report",
        runs.to_str().unwrap(),
        "--out",
        stored.to_str().unwrap(),
    ]);
    let from_dir = check_page(&stored, &dir, &want);
    let table = |h: &str| {
        h.split("<h2>Results</h2>")
            .nth(1)
            .unwrap()
            .split("</section>")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(table(&fresh), table(&from_dir));
    // A single stored run.
    let one = dir.join("one");
    crtsim(&[
        "power",
        "configs/pulsar.toml",
        "--reps",
        "100",
        "--out",
        one.to_str().unwrap(),
    ]);
    crtsim(&["report", one.to_str().unwrap()]);
    check_page(&one.join("report.html"), &dir, &expect(&RUN));
}

#[test]
fn sample_size_report() {
    let dir = tmp("solve");
    let page = dir.join("solve.html");
    crtsim(&[
        "report",
        "configs/refocus.toml",
        "--target-power",
        "0.8",
        "--solve",
        "clusters.teams",
        "--reps",
        "200",
        "--out",
        page.to_str().unwrap(),
    ]);
    let html = check_page(
        &page,
        &dir,
        &expect(&[
            "Design",
            "Assumptions",
            "Results",
            "Sample size",
            "Protocol paragraph",
            "Reproducibility",
        ]),
    );
    assert!(html.contains("80% target"));
    assert!(html.contains("smallest value at which LMM, Satterthwaite df reaches the 80.0% target"));
}

#[test]
fn adherence_report() {
    let dir = tmp("adherence");
    let page = dir.join("adh.html");
    crtsim(&[
        "report",
        "configs/refocus_adherence.toml",
        "--reps",
        "100",
        "--out",
        page.to_str().unwrap(),
    ]);
    let html = check_page(
        &page,
        &dir,
        &expect(&[
            "Design",
            "Assumptions",
            "Results",
            "Power curves",
            "Adherence",
            "Protocol paragraph",
            "Reproducibility",
        ]),
    );
    assert!(html.contains("line is fitted among intervention teams only"));
    assert!(html.contains("Bias by confounding"));
    // A stepped wedge with participation: each cluster is its own control.
    let sw = dir.join("sw.html");
    crtsim(&[
        "report",
        "tests/data/sw_adherence.toml",
        "--reps",
        "60",
        "--out",
        sw.to_str().unwrap(),
    ]);
    let html = check_page(
        &sw,
        &dir,
        &expect(&[
            "Design",
            "Assumptions",
            "Results",
            "Adherence",
            "Protocol paragraph",
            "Reproducibility",
        ]),
    );
    assert!(
        html.contains("each cluster&#39;s change after crossover"),
        "SW scatter"
    );
    assert!(
        !html.contains("control team"),
        "no control-team legend in a stepped wedge"
    );
}

#[test]
fn bad_report_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_crtsim"))
        .args(["report", "configs/refocus.toml", "--target", "1.5"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--target 1.5: a target power must be a number in (0, 1)"),
        "{err}"
    );
    for (args, want) in [
        (
            vec![
                "report",
                "configs/refocus.toml",
                "--target",
                "0.1,0.2,0.3,0.4,0.5,0.6",
            ],
            "--target: 6 lines; give at most 5",
        ),
        (
            vec!["report", "configs/refocus.toml", "--out", "/"],
            "is a directory; give the HTML file to write",
        ),
        (
            vec![
                "report",
                "configs/refocus.toml",
                "--out",
                "/nonexistent-dir/x.html",
            ],
            "the directory /nonexistent-dir does not exist",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_crtsim"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    let dir = tmp("bad");
    let out = Command::new(env!("CARGO_BIN_EXE_crtsim"))
        .args(["report", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a run nor a sweep directory"));
}

/// `[sources]` fills the assumptions table and is not part of the run's
/// identity (the same config hash with or without it).
#[test]
fn sources_table() {
    let dir = tmp("sources");
    let page = dir.join("s.html");
    let src = "sources={\"outcome.icc\"=\"Campbell et al. 2005, table 2\"}";
    crtsim(&[
        "report",
        "configs/refocus.toml",
        "--reps",
        "20",
        "--set",
        src,
        "--out",
        page.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Campbell et al. 2005, table 2"));
    let hash = |extra: &[&str]| {
        let mut a = vec!["power", "configs/refocus.toml", "--reps", "5"];
        a.extend_from_slice(extra);
        let table = crtsim(&a);
        let h = table.split("config hash ").nth(1).unwrap();
        h.split_whitespace().next().unwrap().to_string()
    };
    assert_eq!(hash(&[]), hash(&["--set", src]));
}
