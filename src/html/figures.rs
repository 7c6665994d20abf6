//! Inline SVG figures for the HTML report: power curves with target lines
//! and Monte Carlo error bars, the design diagrams and the adherence
//! scatter. Plain SVG text (no script, no external font or image), sized by
//! its viewBox so it scales with the page and prints sharp.

use super::escape;
use std::fmt::Write;

/// The Okabe–Ito colour-blind-safe palette (without yellow, which is
/// unreadable on white), in the order series take them.
pub const PALETTE: [&str; 7] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
];

/// Points of a curve: (x, estimate, Monte Carlo SE).
pub type Points = Vec<(f64, f64, f64)>;

/// Whether two Monte Carlo curves agree within one MC SE at every point
/// (analyses simulated on the same trials, so their difference is far more
/// precise than either): they can be drawn as one labelled line. Points
/// are (x, estimate, MC SE, ...).
pub fn curves_coincide<'a>(
    a: impl ExactSizeIterator<Item = (f64, f64, f64)> + 'a,
    b: impl ExactSizeIterator<Item = (f64, f64, f64)> + 'a,
) -> bool {
    a.len() == b.len()
        && a.zip(b)
            .all(|(p, q)| p.0 == q.0 && (p.1 - q.1).abs() <= p.2.max(q.2))
}

/// One curve: a label and its points (x, estimate, Monte Carlo SE).
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub points: Points,
    /// Drawn dashed (an analytic reference rather than a simulation).
    pub dashed: bool,
}

/// Axis titles and horizontal reference lines of a chart.
pub struct Axes<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
    /// Whole-number x values: ticks at integers only.
    pub integer_x: bool,
    /// Horizontal lines (e.g. target power 0.8 and 0.9), labelled.
    pub targets: &'a [f64],
    /// y range; None: 0 to 1 (power).
    pub y_range: Option<(f64, f64)>,
    /// y values printed as percentages.
    pub percent: bool,
}

const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 56.0;

/// Round tick positions covering [lo, hi] (about `n` of them).
pub fn ticks(lo: f64, hi: f64, n: usize, integer: bool) -> Vec<f64> {
    if !(hi > lo) {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let step = if integer { step.max(1.0).round() } else { step };
    let first = (lo / step).ceil() * step;
    let mut t = Vec::new();
    let mut k = 0.0;
    while first + k * step <= hi + 1e-9 * step {
        let v = first + k * step;
        t.push(if v.abs() < 1e-12 * step { 0.0 } else { v });
        k += 1.0;
    }
    t
}

fn fmt_tick(v: f64, percent: bool) -> String {
    if percent {
        format!("{}%", crate::labels::round_sig(v * 100.0))
    } else {
        crate::labels::round_sig(v)
    }
}

/// A line chart of curves with 95% Monte Carlo error bars, target lines and
/// a legend to the right of the plotting area.
pub fn line_chart(curves: &[Curve], axes: &Axes) -> String {
    let xs: Vec<f64> = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .collect();
    let (mut x0, mut x1) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    if !(x1 > x0) {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let pad = (x1 - x0) * 0.04;
    let (x0, x1) = (x0 - pad, x1 + pad);
    let (y0, y1) = axes.y_range.unwrap_or((0.0, 1.0));
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| TOP + (1.0 - (y.clamp(y0, y1) - y0) / (y1 - y0)) * ph;
    let mut s = svg_open(W, H, axes.title);
    let _ = write!(
        s,
        r##"<text x="{LEFT}" y="22" class="t">{}</text>"##,
        escape(axes.title)
    );
    // Light grid and ticks.
    let mut distinct: Vec<f64> = xs.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let xt = if axes.integer_x && distinct.len() <= 12 {
        distinct
    } else {
        ticks(x0 + pad, x1 - pad, 6, axes.integer_x)
    };
    for &v in &xt {
        let x = sx(v);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" class="g"/><text x="{x:.1}" y="{:.1}" class="k" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            fmt_tick(v, false)
        );
    }
    for v in ticks(y0, y1, 5, false) {
        let y = sy(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" class="g"/><text x="{:.1}" y="{:.1}" class="k" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(v, axes.percent)
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw:.1}" height="{ph:.1}" class="f"/>"##
    );
    for &t in axes.targets {
        let y = sy(t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" class="tg"/><text x="{:.1}" y="{:.1}" class="k tl" text-anchor="end">{}{}</text>"##,
            LEFT + pw,
            LEFT + pw - 4.0,
            y - 4.0,
            fmt_tick(t, axes.percent),
            if axes.percent { " target" } else { "" }
        );
    }
    let mut legend_y = TOP + 10.0;
    for (i, c) in curves.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        let mut pts: Vec<(f64, f64, f64)> = c.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
            .collect();
        let dash = if c.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{col}" stroke-width="2.2"{dash}/>"##,
            path.join(" ")
        );
        for p in &pts {
            let (x, y) = (sx(p.0), sy(p.1));
            if p.2 > 0.0 {
                let (ya, yb) = (sy(p.1 - 1.96 * p.2), sy(p.1 + 1.96 * p.2));
                let _ = write!(
                    s,
                    r##"<line x1="{x:.1}" y1="{ya:.1}" x2="{x:.1}" y2="{yb:.1}" stroke="{col}" stroke-width="1.4"/>"##
                );
            }
            if !c.dashed {
                let _ = write!(
                    s,
                    r##"<circle cx="{x:.1}" cy="{y:.1}" r="3.6" fill="{col}"/>"##
                );
            }
        }
        // Legend, outside the data.
        let ly = legend_y;
        let lx = LEFT + pw + 16.0;
        let _ = write!(
            s,
            r##"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{col}" stroke-width="2.6"{dash}/>"##,
            lx + 22.0
        );
        legend_y += legend_text(&mut s, lx + 28.0, ly, &c.label) + 10.0;
    }
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" class="a" text-anchor="middle">{}</text>"##,
        LEFT + pw / 2.0,
        H - 12.0,
        escape(axes.x)
    );
    let _ = write!(
        s,
        r##"<text x="16" y="{:.1}" class="a" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"##,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(axes.y)
    );
    s.push_str("</svg>");
    s
}

/// A legend entry's text at (x, y), wrapped; returns the height it took.
fn legend_text(s: &mut String, x: f64, y: f64, text: &str) -> f64 {
    let lines = crate::labels::wrap_words(text, 26);
    for (k, part) in lines.iter().enumerate() {
        let _ = write!(
            s,
            r##"<text x="{x:.1}" y="{:.1}" class="k">{}</text>"##,
            y + 4.0 + 14.0 * k as f64,
            escape(part)
        );
    }
    14.0 * lines.len() as f64
}

fn svg_open(w: f64, h: f64, title: &str) -> String {
    format!(
        r##"<svg viewBox="0 0 {w} {h}" style="max-width:{:.0}px" role="img" aria-label="{}"><style>.t{{font:600 15px system-ui,sans-serif;fill:#1a1a1a}}.a{{font:13px system-ui,sans-serif;fill:#1a1a1a}}.k{{font:12px system-ui,sans-serif;fill:#333}}.tl{{fill:#555}}.g{{stroke:#e6e6e6;stroke-width:1}}.f{{fill:none;stroke:#999;stroke-width:1}}.tg{{stroke:#777;stroke-width:1.2;stroke-dasharray:4 3}}.c{{font:600 12px system-ui,sans-serif;fill:#1a1a1a}}</style>"##,
        w * 1.25,
        escape(title)
    )
}

/// One cell of a stepped-wedge grid: exposure (None: excluded transition)
/// and the expected participants.
pub struct GridCell {
    pub exposure: Option<f64>,
    pub n: f64,
}

/// The stepped-wedge design: one row per sequence (with its number of
/// clusters), one column per period, each cell coloured by exposure and
/// labelled with its expected participants per cluster-period.
pub fn sw_grid(rows: &[(usize, Vec<GridCell>)]) -> String {
    let periods = rows.first().map_or(0, |r| r.1.len());
    let cw = (520.0 / periods.max(1) as f64).clamp(40.0, 110.0);
    let ch = 34.0;
    let left = 150.0;
    let top = 40.0;
    let w = left + cw * periods as f64 + 20.0;
    let legend_y = top + ch * rows.len() as f64 + 30.0;
    let h = legend_y + 24.0;
    let mut s = svg_open(w, h, "Stepped-wedge design");
    for t in 0..periods {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" class="k" text-anchor="middle">period {}</text>"##,
            left + cw * (t as f64 + 0.5),
            top - 10.0,
            t + 1
        );
    }
    let mut used = [false; 3];
    for (q, (k, cells)) in rows.iter().enumerate() {
        let y = top + ch * q as f64;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" class="k" text-anchor="end">sequence {} ({} cluster{})</text>"##,
            left - 8.0,
            y + ch / 2.0 + 4.0,
            q + 1,
            k,
            if *k == 1 { "" } else { "s" }
        );
        for (t, c) in cells.iter().enumerate() {
            let (fill, kind) = match c.exposure {
                None => ("#ffffff", 2),
                Some(e) if e >= 1.0 => ("#0072B2", 1),
                Some(e) if e > 0.0 => ("#7fb8d8", 1),
                Some(_) => ("#eeeeee", 0),
            };
            used[kind] = true;
            let x = left + cw * t as f64;
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}" stroke="#ffffff" stroke-width="2"/>"##,
                cw, ch
            );
            let label = if c.exposure.is_none() {
                "excluded".to_string()
            } else {
                crate::labels::round_sig((c.n * 10.0).round() / 10.0)
            };
            let fg = if kind == 1 && c.exposure.unwrap_or(0.0) >= 1.0 {
                "#ffffff"
            } else {
                "#1a1a1a"
            };
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" class="c" text-anchor="middle" style="fill:{fg}">{label}</text>"##,
                x + cw / 2.0,
                y + ch / 2.0 + 4.0
            );
        }
    }
    let mut lx = left;
    for (k, (fill, name)) in [
        ("#eeeeee", "control"),
        ("#0072B2", "intervention"),
        ("#ffffff", "excluded (transition)"),
    ]
    .iter()
    .enumerate()
    {
        if !used[k] {
            continue;
        }
        let _ = write!(
            s,
            r##"<rect x="{lx:.1}" y="{:.1}" width="14" height="14" fill="{fill}" stroke="#999"/><text x="{:.1}" y="{legend_y:.1}" class="k">{name}</text>"##,
            legend_y - 11.0,
            lx + 20.0
        );
        lx += 40.0 + 7.0 * name.len() as f64;
    }
    s.push_str("</svg>");
    s
}

/// A parallel design: per site, the intervention and control clusters as
/// squares.
pub fn parallel_design(sites: &[(String, u32, u32)]) -> String {
    let unit = 16.0;
    let gap = 4.0;
    let left = 130.0;
    let most = sites.iter().map(|s| s.1.max(s.2)).max().unwrap_or(1).max(1) as f64;
    let per_row = most.min(20.0);
    let block = per_row * (unit + gap);
    let rows_of = |n: u32| ((n as f64) / per_row).ceil().max(1.0);
    let mut y = 46.0;
    let w = left + 2.0 * block + 60.0;
    let mut body = String::new();
    for (name, t, c) in sites {
        let lines = rows_of(*t).max(rows_of(*c));
        let _ = write!(
            body,
            r##"<text x="{:.1}" y="{:.1}" class="a" text-anchor="end">{}</text>"##,
            left - 10.0,
            y + unit - 3.0,
            escape(name)
        );
        for (arm, n, col) in [(0, *t, "#0072B2"), (1, *c, "#bbbbbb")] {
            let x0 = left + arm as f64 * (block + 40.0);
            for i in 0..n {
                let (r, k) = ((i as f64 / per_row).floor(), (i as f64) % per_row);
                let _ = write!(
                    body,
                    r##"<rect x="{:.1}" y="{:.1}" width="{unit}" height="{unit}" rx="3" fill="{col}"/>"##,
                    x0 + k * (unit + gap),
                    y + r * (unit + gap)
                );
            }
        }
        y += lines * (unit + gap) + 14.0;
    }
    let h = y + 4.0;
    let mut s = svg_open(w, h, "Parallel design");
    for (arm, name) in [(0.0, "intervention"), (1.0, "control")] {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="26" class="a">{name}</text>"##,
            left + arm * (block + 40.0)
        );
    }
    s.push_str(&body);
    s.push_str("</svg>");
    s
}

/// Team means against participation: control teams (at 0) shown, the line
/// fitted among intervention teams only.
pub fn adherence_scatter(points: &[(f64, f64, bool)], title: &str, y_label: &str) -> String {
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let (lo, hi) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    let span = (hi - lo).max(1.0);
    let (y0, y1) = (lo - 0.08 * span, hi + 0.08 * span);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x + 0.05) / 1.1 * pw;
    let sy = |y: f64| TOP + (1.0 - (y - y0) / (y1 - y0)) * ph;
    let mut s = svg_open(W, H, title);
    let _ = write!(
        s,
        r##"<text x="{LEFT}" y="22" class="t">{}</text>"##,
        escape(title)
    );
    for v in ticks(0.0, 1.0, 5, false) {
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" class="g"/><text x="{x:.1}" y="{:.1}" class="k" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            fmt_tick(v, false),
            x = sx(v)
        );
    }
    for v in ticks(y0, y1, 5, false) {
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" class="g"/><text x="{:.1}" y="{:.1}" class="k" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            sy(v) + 4.0,
            fmt_tick(v, false),
            y = sy(v)
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw:.1}" height="{ph:.1}" class="f"/>"##
    );
    for &(x, y, treated) in points {
        let (fill, stroke) = if treated {
            (PALETTE[0], PALETTE[0])
        } else {
            ("#ffffff", "#666666")
        };
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4.5" fill="{fill}" stroke="{stroke}" stroke-width="1.4"/>"##,
            sx(x),
            sy(y)
        );
    }
    let treated: Vec<(f64, f64)> = points.iter().filter(|p| p.2).map(|p| (p.0, p.1)).collect();
    if let Some((a, b)) = least_squares(&treated) {
        let (xa, xb) = treated
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
                (l.min(p.0), h.max(p.0))
            });
        let _ = write!(
            s,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2.2"/>"##,
            sx(xa),
            sy(a + b * xa),
            sx(xb),
            sy(a + b * xb),
            PALETTE[1]
        );
    }
    let lx = LEFT + pw + 16.0;
    let entries = [
        (
            format!(
                r##"<circle cx="{:.1}" cy="{{y}}" r="4.5" fill="{}"/>"##,
                lx + 8.0,
                PALETTE[0]
            ),
            if points.iter().any(|p| !p.2) {
                "intervention team"
            } else {
                "cluster"
            },
        ),
        (
            format!(
                r##"<circle cx="{:.1}" cy="{{y}}" r="4.5" fill="#fff" stroke="#666" stroke-width="1.4"/>"##,
                lx + 8.0
            ),
            "control team (participation 0, not fitted)",
        ),
        (
            format!(
                r##"<line x1="{lx:.1}" y1="{{y}}" x2="{:.1}" y2="{{y}}" stroke="{}" stroke-width="2.6"/>"##,
                lx + 18.0,
                PALETTE[1]
            ),
            if points.iter().any(|p| !p.2) {
                "least-squares line, intervention teams only"
            } else {
                "least-squares line"
            },
        ),
    ];
    let any_control = points.iter().any(|p| !p.2);
    let mut ly = TOP + 10.0;
    for (k, (mark, text)) in entries.into_iter().enumerate() {
        if k == 1 && !any_control {
            continue; // only the entries this figure uses
        }
        s.push_str(&mark.replace("{y}", &format!("{ly:.1}")));
        ly += legend_text(&mut s, lx + 26.0, ly, text) + 14.0;
    }
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" class="a" text-anchor="middle">Participation (share of the intervention delivered)</text><text x="16" y="{:.1}" class="a" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text></svg>"##,
        LEFT + pw / 2.0,
        H - 12.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(y_label)
    );
    s
}

/// Intercept and slope of y on x (None with fewer than two distinct x).
fn least_squares(pts: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return None;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 1e-12).then(|| (my - sxy / sxx * mx, sxy / sxx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ticks() {
        assert_eq!(ticks(10.0, 28.0, 6, true), vec![10.0, 15.0, 20.0, 25.0]);
        let t = ticks(0.0, 1.0, 5, false);
        assert_eq!(t.len(), 6);
        assert!(t
            .iter()
            .zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
            .all(|(a, b)| (a - b).abs() < 1e-12));
        assert_eq!(fmt_tick(t[3], true), "60%");
        assert!(ticks(2.0, 5.0, 8, true).iter().all(|v| v.fract() == 0.0));
    }
}
