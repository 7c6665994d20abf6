//! `crtsim report`: one self-contained HTML page a trial team can share.
//!
//! Inline CSS and inline SVG figures, no script, no external reference,
//! system fonts; prints on A4 with a page break before each section. The
//! sections, in order: a summary box (design, answer, recommended
//! analysis), the design, the assumptions (each parameter with its source
//! or "assumption"), the results (ADEMP and the per-analysis table with MC
//! SEs), power curves or the sample-size search, adherence (when
//! modelled), a protocol paragraph and reproducibility.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the page and its sections |
//! | `build.rs` | making a report: from a config (run, sweep, search) or a stored directory |
//! | `figures.rs` | the SVG figures |
//! | `words.rs` | the sentences: recommendation, flags, protocol paragraph |

pub mod build;
pub mod figures;
mod words;

use crate::analysis::Analysis;
use crate::config::{Config, DesignKind};
use crate::labels::key_label;
use crate::power::{PowerStudy, Summary};
use crate::sweep::{PointResult, Solution};
use figures::{Axes, Curve};
use std::fmt::Write;

pub use words::{protocol_paragraph, recommend};

/// What a report shows.
pub enum Results {
    /// One power run.
    Run { study: PowerStudy, summary: Summary },
    /// A sweep over a grid of config values.
    Sweep { points: Vec<PointResult> },
    /// A sample-size search and the full run at its answer.
    Solve {
        solution: Solution,
        study: PowerStudy,
        summary: Summary,
    },
}

/// Everything a report needs besides the results.
pub struct Report {
    pub results: Results,
    /// The config file's own text (its comments give the sources of the
    /// assumptions); None when built from stored results.
    pub source_text: Option<String>,
    /// The command line that made the results.
    pub command: String,
    /// Target power lines on the figures.
    pub targets: Vec<f64>,
}

/// Escape text for HTML (and SVG) content and attributes.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const CSS: &str = r#"
:root{--fg:#1a1a1a;--muted:#555;--accent:#0072B2;--line:#d9d9d9;--warn:#b34700}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;color:var(--fg);background:#fff;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;line-height:1.5}
main{max-width:58rem;margin:0 auto;padding:1.5rem 1.25rem 3rem}
header p{margin:.2rem 0;color:var(--muted)}
h1{font-size:1.7rem;line-height:1.25;margin:0 0 .3rem}
h2{font-size:1.3rem;margin:2.2rem 0 .8rem;padding-bottom:.25rem;border-bottom:2px solid var(--accent)}
h3{font-size:1.05rem;margin:1.4rem 0 .5rem}
p,li{max-width:48rem}
table{border-collapse:collapse;width:100%;font-size:.88rem;margin:.5rem 0 1rem}
caption{text-align:left;font-size:.85rem;color:var(--muted);caption-side:bottom;padding-top:.3rem}
th,td{padding:.35rem .45rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{font-weight:600;background:#f4f6f8;overflow-wrap:normal;hyphens:auto}
table.wide{font-size:.8rem}
th.sub{text-align:center;border-bottom:1px solid var(--line)}
table.wide td.n small{display:block}
tbody th{min-width:8.5rem;width:11rem}
.params td:first-child{width:14rem}
.params td:nth-child(2){width:9rem}
code.key{font-size:.75rem;color:var(--muted)}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.n small{color:var(--muted);white-space:nowrap}
.box{border:2px solid var(--accent);border-radius:.5rem;padding:1rem 1.25rem;background:#f2f7fb;margin:1rem 0}
.box dl{display:grid;grid-template-columns:minmax(8rem,12rem) 1fr;gap:.35rem 1rem;margin:0}
.box dt{font-weight:600}
.box dd{margin:0}
.answer{font-size:1.15rem;font-weight:600}
.flag{color:var(--warn);font-weight:600}
.ok{color:#006b4f}
figure{margin:1rem 0 1.5rem}
@media (max-width:40rem){main{padding:1rem .6rem}table{font-size:.75rem}th,td{padding:.25rem .3rem}.box dl{grid-template-columns:1fr}}
figure svg{width:100%;height:auto;display:block;max-width:100%}
figcaption{font-size:.85rem;color:var(--muted);margin-top:.3rem}
.protocol{border-left:4px solid var(--accent);padding:.5rem 1rem;background:#fafafa}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;border:1px solid var(--line);padding:.75rem;font-size:.8rem;line-height:1.35}
code{font-size:.9em;overflow-wrap:anywhere}
details{margin:.5rem 0}
summary{cursor:pointer;font-weight:600}
.muted{color:var(--muted)}
@page{size:A4;margin:14mm 13mm}
@media print{
  main{max-width:none;padding:0}
  section{break-before:page}
  section.first,section.first+section{break-before:auto}
  .box,figure,tr{break-inside:avoid}
  h2,h3{break-after:avoid}
  details::details-content{content-visibility:visible;display:block;height:auto}
  a{color:inherit;text-decoration:none}
}
"#;

impl Report {
    /// The study whose design the report describes (for a sweep, its first
    /// grid point's).
    fn study(&self) -> &PowerStudy {
        match &self.results {
            Results::Run { study, .. } | Results::Solve { study, .. } => study,
            Results::Sweep { points } => &points[0].study,
        }
    }

    fn config(&self) -> &Config {
        &self.study().config
    }

    /// The page.
    pub fn render(&self) -> String {
        let cfg = self.config();
        let mut h = String::new();
        let title = format!("{}: power and sample size", cfg.trial.name);
        let _ = writeln!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"crtsim {}\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>",
            env!("CARGO_PKG_VERSION"),
            escape(&title)
        );
        let _ = writeln!(
            h,
            "<header><h1>{}</h1><p>A {} simulated with crtsim {}: Monte Carlo power with its Monte Carlo standard error, analytic power alongside.</p></header>",
            escape(&title),
            crate::labels::design_label(cfg),
            env!("CARGO_PKG_VERSION")
        );
        self.summary_box(&mut h);
        self.design_section(&mut h);
        self.assumptions_section(&mut h);
        self.results_section(&mut h);
        self.curves_section(&mut h);
        self.adherence_section(&mut h);
        self.protocol_section(&mut h);
        self.reproducibility_section(&mut h);
        h.push_str("</main>\n</body>\n</html>\n");
        h
    }

    /// The summary the headline is stated for (a sweep's last point).
    fn headline(&self) -> &Summary {
        match &self.results {
            Results::Run { summary, .. } | Results::Solve { summary, .. } => summary,
            Results::Sweep { points } => &points[points.len() - 1].summary,
        }
    }

    /// The analysis the report recommends, and why: a sample-size search's
    /// own analysis, else [`recommend`]'s choice.
    fn recommended(&self) -> (Analysis, String) {
        match &self.results {
            Results::Solve { solution, .. } => (
                solution.analysis,
                "the analysis whose power the sample-size search used (--solve-analysis)".into(),
            ),
            _ => recommend(self.headline()),
        }
    }

    fn summary_box(&self, h: &mut String) {
        let cfg = self.config();
        let s = self.headline();
        let (rec, why) = self.recommended();
        let answer = match &self.results {
            Results::Run { .. } => {
                let row = s.get(rec);
                row.map(|r| {
                    format!(
                        "Power {} ({}) to detect {} with {}.",
                        pct(r.effect.reject),
                        words::mc_se_words(r.effect.reject, r.effect.reject_mc_se, s.reps),
                        words::effect_words(cfg, s),
                        words::size_words(cfg)
                    )
                })
                .unwrap_or_default()
            }
            Results::Sweep { points } => words::sweep_answer(points, rec, &self.targets),
            Results::Solve { solution, .. } => {
                let reached = solution
                    .evaluated
                    .iter()
                    .find(|e| e.0 == solution.value)
                    .map(|e| format!(" ({} power, Monte Carlo SE {})", pct(e.1), pct(e.2)))
                    .unwrap_or_default();
                format!(
                    "{}: the smallest value at which {} reaches the {} target{reached}; the analytic formula says {}.",
                    words::value_words(&solution.key, solution.value),
                    rec.label(),
                    pct(solution.target),
                    solution.analytic_value
                )
            }
        };
        let _ = writeln!(
            h,
            "<section class=\"first\" aria-label=\"Summary\"><div class=\"box\"><dl><dt>Design</dt><dd>{}</dd><dt>Answer</dt><dd class=\"answer\">{}</dd><dt>Recommended analysis</dt><dd>{}: {}</dd></dl></div></section>",
            escape(&words::design_sentence(cfg, self.study())),
            escape(&answer),
            escape(rec.label()),
            escape(&why)
        );
    }

    fn design_section(&self, h: &mut String) {
        let study = self.study();
        let cfg = &study.config;
        h.push_str("<section><h2>Design</h2>\n");
        let _ = writeln!(h, "<p>{}</p>", escape(&words::design_sentence(cfg, study)));
        if let Results::Sweep { points } = &self.results {
            let keys: Vec<String> = points[0]
                .point
                .iter()
                .map(|(k, v)| format!("{} = {v}", key_label(k)))
                .collect();
            let _ = writeln!(
                h,
                "<p class=\"muted\">Shown for the first point of the sweep ({}); the sweep varies {}.</p>",
                escape(&keys.join(", ")),
                escape(
                    &points[0]
                        .point
                        .iter()
                        .map(|(k, _)| key_label(k).to_lowercase())
                        .collect::<Vec<_>>()
                        .join(" and ")
                )
            );
        }
        let fig = words::design_figure(study);
        let _ = writeln!(
            h,
            "<figure>{}<figcaption>{}</figcaption></figure>",
            fig.0,
            escape(&fig.1)
        );
        h.push_str(&words::stages_table(study));
        h.push_str("</section>\n");
    }

    fn assumptions_section(&self, h: &mut String) {
        let cfg = self.config();
        let sources = words::sources(self.source_text.as_deref(), cfg);
        h.push_str("<section><h2>Assumptions</h2>\n<p>Every parameter of the data-generating model, with its value and where it comes from. A source is taken from the comment above the key in the config file, or from its <code>[sources]</code> table; anything without one is an assumption.</p>\n<table class=\"params\"><thead><tr><th>Parameter</th><th class=\"n\">Value</th><th>Source</th></tr></thead><tbody>\n");
        let swept: Vec<(String, Vec<String>)> = match &self.results {
            Results::Sweep { points } => points[0]
                .point
                .iter()
                .enumerate()
                .map(|(i, (k, _))| {
                    let mut vals: Vec<String> =
                        points.iter().map(|p| p.point[i].1.clone()).collect();
                    vals.dedup();
                    (k.clone(), vals)
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut rows = words::parameters(cfg);
        for (k, vals) in &swept {
            let v = format!("varied: {}", vals.join(", "));
            match rows.iter_mut().find(|r| &r.0 == k) {
                Some(r) => r.1 = v,
                None => rows.push((k.clone(), v)),
            }
        }
        for (key, value) in rows {
            let chosen = key.starts_with("trial.")
                || key.starts_with("analysis.")
                || matches!(
                    key.as_str(),
                    "clusters.teams"
                        | "clusters.treated"
                        | "clusters.allocation"
                        | "stepped_wedge.sequences"
                        | "stepped_wedge.sampling"
                        | "stepped_wedge.transition"
                        | "effect.difference"
                );
            let src = sources.get(&key).cloned().unwrap_or_else(|| {
                if chosen {
                    "design choice".to_string()
                } else {
                    "assumption (no source given)".to_string()
                }
            });
            let _ = writeln!(
                h,
                "<tr><td>{}<br><code class=\"key\">{}</code></td><td class=\"n\">{}</td><td>{}</td></tr>",
                escape(&key_label(&key)),
                escape(&key),
                escape(&value),
                escape(&src)
            );
        }
        h.push_str("</tbody></table>\n</section>\n");
    }

    fn results_section(&self, h: &mut String) {
        h.push_str("<section><h2>Results</h2>\n");
        match &self.results {
            Results::Run { study, summary } | Results::Solve { study, summary, .. } => {
                if let Results::Solve { solution, .. } = &self.results {
                    let _ = writeln!(
                        h,
                        "<p>At the answer of the sample-size search, {} = {}:</p>",
                        escape(&solution.key),
                        solution.value
                    );
                }
                h.push_str(&words::ademp(study, summary));
                h.push_str(&words::performance_table(study, summary));
            }
            Results::Sweep { points } => {
                h.push_str(&words::ademp(&points[0].study, &points[0].summary));
                h.push_str(&words::sweep_table(points));
                for p in points {
                    let at: Vec<String> =
                        p.point.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    let _ = writeln!(
                        h,
                        "<details><summary>Every measure at {}</summary>{}</details>",
                        escape(&at.join(", ")),
                        words::performance_table(&p.study, &p.summary)
                    );
                }
            }
        }
        h.push_str("</section>\n");
    }

    fn curves_section(&self, h: &mut String) {
        match &self.results {
            Results::Sweep { points } => {
                let (key, curves) = words::power_curves(points);
                let integer = crate::labels::key_is_integer(&key);
                let label = key_label(&key);
                let svg = figures::line_chart(
                    &curves,
                    &Axes {
                        title: &format!("Power by {}", label.to_lowercase()),
                        x: &label,
                        y: "Power",
                        integer_x: integer,
                        targets: &self.targets,
                        y_range: None,
                        percent: true,
                    },
                );
                let _ = writeln!(
                    h,
                    "<section><h2>Power curves</h2>\n<figure>{svg}<figcaption>Monte Carlo power of each analysis with 95% Monte Carlo error bars; dashed: analytic power of the recommended analysis; horizontal lines: target power. Analyses whose curves agree within Monte Carlo error at every point are drawn as one line.</figcaption></figure>\n</section>"
                );
            }
            Results::Solve { solution, .. } => {
                let pts: Vec<(f64, f64, f64)> = solution
                    .evaluated
                    .iter()
                    .map(|&(v, p, se)| (v as f64, p, se))
                    .collect();
                let label = key_label(&solution.key);
                let svg = figures::line_chart(
                    &[Curve {
                        label: solution.analysis.label().to_string(),
                        points: pts,
                        dashed: false,
                    }],
                    &Axes {
                        title: &format!("Sample-size search: power by {}", label.to_lowercase()),
                        x: &label,
                        y: "Power",
                        integer_x: true,
                        targets: &[solution.target],
                        y_range: None,
                        percent: true,
                    },
                );
                let _ = writeln!(
                    h,
                    "<section><h2>Sample size</h2>\n<p>The smallest {} whose Monte Carlo power reaches {} is <strong>{}</strong> (analytic: {}). Every value simulated around the answer:</p>\n{}<figure>{svg}<figcaption>Monte Carlo power at each value simulated, with 95% Monte Carlo error bars; the line is the target.</figcaption></figure>\n</section>",
                    escape(&label.to_lowercase()),
                    pct(solution.target),
                    solution.value,
                    solution.analytic_value,
                    words::solve_table(solution)
                );
            }
            Results::Run { .. } => {}
        }
    }

    fn adherence_section(&self, h: &mut String) {
        let study = self.study();
        if study.config.adherence.is_none() {
            return;
        }
        let s = self.headline();
        let sweep_note = match &self.results {
            Results::Sweep { points } => {
                let at: Vec<String> = points[points.len() - 1]
                    .point
                    .iter()
                    .map(|(k, v)| format!("{} = {v}", key_label(k).to_lowercase()))
                    .collect();
                format!(
                    " The table is for the last point of the sweep ({}).",
                    at.join(", ")
                )
            }
            _ => String::new(),
        };
        h.push_str("<section><h2>Adherence</h2>\n<p>Teams in the intervention arm take part to different degrees. The analyses below use participation; each is judged against its own estimand (the effect among high- versus low-participating teams, or the effect of full participation), not against the intention-to-treat effect.");
        h.push_str(&escape(&sweep_note));
        h.push_str("</p>\n");
        h.push_str(&words::adherence_table(s));
        if let Results::Sweep { points } = &self.results {
            h.push_str(&words::adherence_sweep_figures(points));
        }
        let pts = words::example_team_means(study);
        if !pts.is_empty() {
            let (title, y, what) = if is_sw(&study.config) {
                (
                    "One simulated trial: each cluster's change after crossover",
                    "Change after crossover (points, period-adjusted)",
                    "Each point is a cluster: its period-adjusted mean outcome in exposed periods minus that in unexposed periods. Each cluster is its own control, so stable differences between clusters do not bias the slope; with confounding that changes at crossover they still would.",
                )
            } else {
                (
                    "One simulated trial: team means by participation",
                    "Team mean outcome at follow-up",
                    "Each point is a team's mean outcome at follow-up. The line is fitted among intervention teams only; control teams sit at participation 0 and are shown, not fitted. With confounding, teams that take part more fully may differ to begin with, so the slope is not the effect of participation.",
                )
            };
            let _ = writeln!(
                h,
                "<figure>{}<figcaption>One simulated trial (seed {}, replicate 0). {what}</figcaption></figure>",
                figures::adherence_scatter(&pts, title, y),
                study.config.trial.seed.unwrap_or(1)
            );
        }
        h.push_str("</section>\n");
    }

    fn protocol_section(&self, h: &mut String) {
        let (s, (rec, _)) = (self.headline(), self.recommended());
        let text = match &self.results {
            Results::Solve {
                solution, study, ..
            } => words::solve_paragraph(study, s, solution),
            Results::Sweep { points } => words::sweep_paragraph(points, rec, &self.targets),
            Results::Run { study, .. } => protocol_paragraph(study, s, rec),
        };
        let _ = writeln!(
            h,
            "<section><h2>Protocol paragraph</h2>\n<p class=\"muted\">Ready to paste into a protocol or grant; every number comes from this run.</p>\n<p class=\"protocol\">{}</p>\n</section>",
            escape(&text)
        );
    }

    fn reproducibility_section(&self, h: &mut String) {
        let s = self.headline();
        let study = self.study();
        let _ = writeln!(
            h,
            "<section><h2>Reproducibility</h2>\n<table><tbody><tr><th>crtsim version</th><td>{}</td></tr><tr><th>Seed</th><td>{}</td></tr><tr><th>Simulated trials</th><td>{} per scenario{}</td></tr><tr><th>Config hash</th><td><code>{}</code></td></tr><tr><th>Command</th><td><code>{}</code></td></tr></tbody></table>\n<p>The same config, seed and number of trials give identical results whatever the number of threads or shards. The resolved config:</p>\n<pre>{}</pre>\n</section>",
            env!("CARGO_PKG_VERSION"),
            s.seed,
            s.reps,
            if study.scenarios() == 2 {
                " (the effect and the null)"
            } else {
                ""
            },
            escape(&s.config_id),
            escape(&self.command),
            escape(&study.config_text)
        );
    }
}

/// A proportion as a percentage with one decimal.
pub fn pct(p: f64) -> String {
    if p.is_finite() {
        format!("{:.1}%", 100.0 * p)
    } else {
        "-".into()
    }
}

/// Whether the design is a stepped wedge.
fn is_sw(cfg: &Config) -> bool {
    cfg.trial.design == DesignKind::SteppedWedge
}
