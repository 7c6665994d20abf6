//! Power curves from a sweep's tidy CSV, drawn with plotters as SVG and PNG.
//!
//! The x axis is the first swept key; each analysis (and each combination of
//! any further swept keys) is one series: Monte Carlo power with ±1.96 MC SE
//! error bars, and the analytic power as a thin line of the same colour. Text
//! uses the bundled DejaVu Sans (no system fonts needed).

use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Draw one figure as `PREFIX.svg` and `PREFIX.png` (the drawing call is
/// expanded once per backend) and return the two paths.
macro_rules! render_both {
    ($prefix:expr, $size:expr, |$root:ident| $draw:expr) => {{
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
        let svg = $prefix.with_extension("svg");
        let png = $prefix.with_extension("png");
        let err = |p: &Path, e: String| Error::Usage(format!("{}: cannot draw: {e}", p.display()));
        {
            let $root = SVGBackend::new(&svg, $size).into_drawing_area();
            $draw.map_err(|e| err(&svg, e))?;
            $root.present().map_err(|e| err(&svg, e.to_string()))?;
        }
        {
            let $root = BitMapBackend::new(&png, $size).into_drawing_area();
            $draw.map_err(|e| err(&png, e))?;
            $root.present().map_err(|e| err(&png, e.to_string()))?;
        }
        Ok(vec![svg, png])
    }};
}

/// One curve: label and points (x, power, MC SE, analytic power).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// Read the power curves from a tidy sweep CSV: (power, MC SE, analytic power).
pub fn read_curves(path: &Path) -> Result<(String, Vec<Series>)> {
    read_series(path, "power", "power_mc_se", Some("analytic_power"))
}

/// Read one measure of a tidy sweep CSV as curves over the first swept key:
/// points are (x, `value`, `se`, `extra` or NaN), one series per analysis
/// and combination of further swept keys.
pub fn read_series(
    path: &Path,
    value: &str,
    se: &str,
    extra: Option<&str>,
) -> Result<(String, Vec<Series>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?
        .iter()
        .map(str::to_string)
        .collect();
    let col = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            Error::Usage(format!(
                "{}: no `{name}` column; is this the tidy CSV of `crtsim power --sweep`?",
                path.display()
            ))
        })
    };
    let (i_an, i_pow, i_se) = (col("analysis")?, col(value)?, col(se)?);
    let i_ana = extra.map(col).transpose()?;
    if i_an < 2 {
        return Err(Error::Usage(format!(
            "{}: no swept key before `analysis`",
            path.display()
        )));
    }
    let xkey = header[1].clone();
    let others: Vec<usize> = (2..i_an).collect();
    let mut curves: BTreeMap<String, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
    for (row, rec) in rdr.records().enumerate() {
        let rec =
            rec.map_err(|e| Error::Usage(format!("{}: row {}: {e}", path.display(), row + 2)))?;
        let num = |i: usize| -> Result<f64> {
            let v = rec.get(i).unwrap_or("");
            if v == "NA" {
                return Ok(f64::NAN);
            }
            v.parse().map_err(|_| {
                Error::Usage(format!(
                    "{}: row {}, column `{}`: `{v}` is not a number",
                    path.display(),
                    row + 2,
                    header[i]
                ))
            })
        };
        let mut label = rec.get(i_an).unwrap_or("").to_string();
        for &o in &others {
            label.push_str(&format!(", {}={}", header[o], rec.get(o).unwrap_or("")));
        }
        curves.entry(label).or_default().push((
            num(1)?,
            num(i_pow)?,
            num(i_se)?,
            i_ana.map(num).transpose()?.unwrap_or(f64::NAN),
        ));
    }
    let series = curves
        .into_iter()
        .map(|(label, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { label, points }
        })
        .collect();
    Ok((xkey, series))
}

/// What `crtsim plot` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotKind {
    /// Power curves from a sweep's tidy CSV.
    Power,
    /// Team QPR by participation, from a trial CSV.
    Adherence,
    /// Bias and power of the adherence analyses, from a sweep's tidy CSV.
    AdherencePower,
    /// A stepped-wedge design's cluster × period grid, from its config.
    Design,
}

impl PlotKind {
    pub const ALL: [PlotKind; 4] = [
        PlotKind::Power,
        PlotKind::Adherence,
        PlotKind::AdherencePower,
        PlotKind::Design,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PlotKind::Power => "power",
            PlotKind::Adherence => "adherence",
            PlotKind::AdherencePower => "adherence-power",
            PlotKind::Design => "design",
        }
    }

    /// The default output prefix: the input's path without its extension,
    /// plus `_` and the kind (sweep.csv → sweep_power), so one plot never
    /// overwrites another.
    pub fn default_prefix(self, input: &Path) -> PathBuf {
        let stem = input.with_extension("");
        let name = stem
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        stem.with_file_name(format!("{name}_{}", self.name().replace('-', "_")))
    }
}

impl std::str::FromStr for PlotKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<PlotKind, String> {
        PlotKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = PlotKind::ALL.iter().map(|k| k.name()).collect();
                format!("`{s}`: choose one of {}", names.join(", "))
            })
    }
}

/// Titles, target lines and the analyses a power plot shows.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// Overrides the title, the x-axis and the y-axis label.
    pub title: Option<String>,
    pub xlabel: Option<String>,
    pub ylabel: Option<String>,
    /// Horizontal target-power lines (default 0.8 and 0.9).
    pub targets: Vec<f64>,
    /// Only these analyses (default: all, with analyses whose curves agree
    /// within Monte Carlo error drawn as one labelled line).
    pub methods: Option<Vec<crate::analysis::Analysis>>,
    /// Adherence scatter: team means of baseline-adjusted follow-up scores.
    pub baseline_adjusted: bool,
}

impl Default for PlotOptions {
    fn default() -> PlotOptions {
        PlotOptions {
            title: None,
            xlabel: None,
            ylabel: None,
            targets: vec![0.8, 0.9],
            methods: None,
            baseline_adjusted: false,
        }
    }
}

/// `--target` of `crtsim plot`: power values in (0, 1), comma-separated
/// (none given: 0.8 and 0.9; `none`: no lines).
pub fn parse_targets(given: &[String]) -> Result<Vec<f64>> {
    if given.is_empty() {
        return Ok(PlotOptions::default().targets);
    }
    if given.len() == 1 && given[0].trim() == "none" {
        return Ok(Vec::new());
    }
    if given.len() > 5 {
        return Err(Error::Usage(format!(
            "--target: {} lines; give at most 5, e.g. 0.8,0.9",
            given.len()
        )));
    }
    given
        .iter()
        .map(|t| {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0 && *v < 1.0)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--target {t}: a target power must be a number in (0, 1), e.g. 0.8"
                    ))
                })
        })
        .collect()
}

/// Draw `kind` from `input` (a CSV, or for [`PlotKind::Design`] a config)
/// as `PREFIX.svg` and `PREFIX.png` (default prefix:
/// [`PlotKind::default_prefix`]); returns the files written.
pub fn draw_kind(kind: PlotKind, input: &Path, prefix: Option<&Path>) -> Result<Vec<PathBuf>> {
    draw_kind_with(kind, input, prefix, &PlotOptions::default())
}

/// [`draw_kind`] with titles, target lines and a choice of analyses.
pub fn draw_kind_with(
    kind: PlotKind,
    input: &Path,
    prefix: Option<&Path>,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    let prefix = prefix
        .map(Path::to_path_buf)
        .unwrap_or_else(|| kind.default_prefix(input));
    match kind {
        PlotKind::Power => power_curves_with(input, &prefix, opts),
        PlotKind::Adherence => adherence_scatter_with(input, &prefix, opts),
        PlotKind::AdherencePower => adherence_power(input, &prefix),
        PlotKind::Design => design_diagram_with(
            &crate::config::Config::load(input, &[])?,
            &prefix,
            opts.title.as_deref(),
        ),
    }
}

/// Draw `PREFIX.svg` and `PREFIX.png` from a tidy sweep CSV.
pub fn power_curves(csv_path: &Path, prefix: &Path) -> Result<Vec<PathBuf>> {
    power_curves_with(csv_path, prefix, &PlotOptions::default())
}

/// [`power_curves`] with titles, target lines and a choice of analyses.
pub fn power_curves_with(
    csv_path: &Path,
    prefix: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    let (xkey, series) = read_curves(csv_path)?;
    let series = select_and_merge(series, opts.methods.as_deref());
    if series.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no rows to plot{}",
            csv_path.display(),
            if opts.methods.is_some() {
                " for the --methods given"
            } else {
                ""
            }
        )));
    }
    for &t in &opts.targets {
        if !(t > 0.0 && t < 1.0) {
            return Err(Error::Usage(format!(
                "--target {t}: a target power must be a number in (0, 1), e.g. 0.8"
            )));
        }
    }
    render_both!(prefix, (1040, 620), |root| draw(
        &root, &xkey, &series, opts
    ))
}

/// The analysis a series is of (its label's first part).
fn series_analysis(s: &Series) -> Option<crate::analysis::Analysis> {
    crate::analysis::Analysis::from_name(s.label.split(',').next().unwrap_or(""))
}

/// Keep the analyses asked for; without a choice, draw analyses whose
/// curves agree within one Monte Carlo SE at every point (they are
/// simulated on the same trials) as one line labelled with all their
/// names. Labels become human ("LMM, Satterthwaite df").
fn select_and_merge(
    series: Vec<Series>,
    methods: Option<&[crate::analysis::Analysis]>,
) -> Vec<Series> {
    let human = |s: &Series| -> String {
        let mut parts = s.label.splitn(2, ", ");
        let name = parts.next().unwrap_or("");
        let label = crate::analysis::Analysis::from_name(name).map_or(name, |a| a.label());
        match parts.next() {
            Some(rest) => format!("{label} ({rest})"),
            None => label.to_string(),
        }
    };
    let group = |s: &Series| s.label.split_once(", ").map(|x| x.1.to_string());
    // In the order runs list the analyses, not alphabetical.
    let order = |s: &Series| {
        series_analysis(s)
            .and_then(|a| crate::analysis::Analysis::all().position(|b| b == a))
            .unwrap_or(usize::MAX)
    };
    let mut series = series;
    series.sort_by_key(|s| (group(s), order(s)));
    let mut out: Vec<(Series, Option<String>)> = Vec::new();
    for s in series {
        if let Some(m) = methods {
            if !series_analysis(&s).is_some_and(|a| m.contains(&a)) {
                continue;
            }
            let label = human(&s);
            out.push((Series { label, ..s }, None));
            continue;
        }
        let g = group(&s);
        let same = out.iter_mut().find(|(o, og)| {
            *og == g
                && crate::html::figures::curves_coincide(
                    o.points.iter().map(|p| (p.0, p.1, p.2)),
                    s.points.iter().map(|p| (p.0, p.1, p.2)),
                )
        });
        match same {
            Some((o, _)) => {
                let name = series_analysis(&s).map_or(s.label.clone(), |a| a.label().to_string());
                o.label = match o.label.rsplit_once(" (") {
                    Some((head, tail)) if g.is_some() => format!("{head} / {name} ({tail}"),
                    _ => format!("{} / {name}", o.label),
                };
            }
            None => {
                let label = human(&s);
                out.push((Series { label, ..s }, g));
            }
        }
    }
    out.into_iter().map(|(s, _)| s).collect()
}

/// One Monte Carlo curve: a line with its legend entry, and ±1.96 MC SE
/// error bars, clipped to `clip` when given (power lies in [0, 1]).
fn draw_mc_curve<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    s: &Series,
    colour: RGBAColor,
    clip: Option<(f64, f64)>,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend,
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    let (lo, hi) = clip.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    chart
        .draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.0, p.1)),
            colour.stroke_width(3),
        ))
        .map_err(|e| e.to_string())?
        .label(s.label.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3)));
    chart
        .draw_series(s.points.iter().map(|p| {
            ErrorBar::new_vertical(
                p.0,
                (p.1 - 1.96 * p.2).max(lo),
                p.1,
                (p.1 + 1.96 * p.2).min(hi),
                colour.stroke_width(2),
                8,
            )
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The Okabe–Ito colour-blind-safe palette (as the report's figures).
fn okabe_ito(k: usize) -> RGBAColor {
    let hex = crate::html::figures::PALETTE[k % crate::html::figures::PALETTE.len()];
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8).to_rgba()
}

/// A light grid without minor lines, and the axis text of a grant figure.
const GRID: RGBColor = RGBColor(225, 225, 225);

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    xkey: &str,
    series: &[Series],
    opts: &PlotOptions,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (w, _) = root.dim_in_pixel();
    let (plot_area, legend_area) = root.split_horizontally(w.saturating_sub(300));
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let (mut lo, mut hi) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    if lo == hi {
        lo -= 1.0;
        hi += 1.0;
    }
    let integer = crate::labels::key_is_integer(xkey) || xs.iter().all(|x| x.fract() == 0.0);
    let mut distinct = xs.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let x_keys = if integer && distinct.len() <= 12 {
        distinct
    } else {
        crate::html::figures::ticks(lo, hi, 6, integer)
    };
    let pad = 0.04 * (hi - lo);
    let label = crate::labels::key_label(xkey);
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| format!("Power by {}", label.to_lowercase()));
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(64)
        .build_cartesian_2d((lo - pad)..(hi + pad), 0.0..1.0)
        .map_err(|e| e.to_string())?;
    // The x ticks are the design's own values (integers for counts), drawn
    // by hand: plotters would choose 12.5 between 10 and 15.
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .x_desc(opts.xlabel.clone().unwrap_or(label))
        .y_desc(opts.ylabel.clone().unwrap_or_else(|| "Power".into()))
        .y_label_formatter(&|y| format!("{:.0}%", 100.0 * y))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(|e| e.to_string())?;
    let tick_font = ("sans-serif", 16)
        .into_text_style(&plot_area)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for &x in &x_keys {
        chart
            .draw_series(LineSeries::new([(x, 0.0), (x, 1.0)], GRID.stroke_width(1)))
            .map_err(|e| e.to_string())?;
        let (px, py) = chart.backend_coord(&(x, 0.0));
        let text = if integer {
            format!("{x:.0}")
        } else {
            crate::labels::round_sig(x)
        };
        plot_area
            .draw(&Text::new(text, (px, py + 8), tick_font.clone()))
            .map_err(|e| e.to_string())?;
    }
    let grey = RGBColor(110, 110, 110);
    for &t in &opts.targets {
        chart
            .draw_series(DashedLineSeries::new(
                [(lo - pad, t), (hi + pad, t)],
                8,
                5,
                grey.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{:.0}% target", 100.0 * t),
                (lo - pad + 0.01 * (hi - lo), t + 0.008),
                ("sans-serif", 15)
                    .into_text_style(&plot_area)
                    .color(&grey)
                    .pos(Pos::new(HPos::Left, VPos::Bottom)),
            )))
            .map_err(|e| e.to_string())?;
    }
    for (k, s) in series.iter().enumerate() {
        let colour = okabe_ito(k);
        draw_mc_curve(&mut chart, s, colour, Some((0.0, 1.0)))?;
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 5, colour.filled())),
            )
            .map_err(|e| e.to_string())?;
        let analytic: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.3.is_finite())
            .map(|p| (p.0, p.3))
            .collect();
        chart
            .draw_series(DashedLineSeries::new(
                analytic,
                4,
                4,
                colour.mix(0.8).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
    }
    // The legend beside the data, never over it.
    let mut y = 70i32;
    let font = ("sans-serif", 16).into_font();
    for (k, s) in series.iter().enumerate() {
        let colour = okabe_ito(k);
        legend_area
            .draw(&PathElement::new(
                vec![(8, y + 8), (36, y + 8)],
                colour.stroke_width(4),
            ))
            .map_err(|e| e.to_string())?;
        for line in crate::labels::wrap_words(&s.label, 28) {
            legend_area
                .draw(&Text::new(line, (44, y), font.clone()))
                .map_err(|e| e.to_string())?;
            y += 20;
        }
        y += 10;
    }
    let note = ("sans-serif", 14).into_font().color(&grey);
    for line in [
        "Points: Monte Carlo power,",
        "bars: 95% Monte Carlo interval;",
        "thin dashed: analytic power.",
    ] {
        legend_area
            .draw(&Text::new(line, (8, y + 6), note.clone()))
            .map_err(|e| e.to_string())?;
        y += 18;
    }
    Ok(())
}

/// One team's point in the adherence plot.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamPoint {
    pub participation: f64,
    pub mean_qpr: f64,
    pub n: usize,
    pub treated: bool,
}

/// Team means of follow-up QPR against team participation, from a trial CSV
/// (`crtsim simulate` output or real data with `team`, `arm`, `qpr` and
/// `team_adherence` columns). A stepped-wedge CSV (`cluster`, `period`,
/// `treat`, `qpr`, `team_adherence`, no `team`) gives one point per cluster
/// instead: see [`sw_adherence_points`].
pub fn adherence_points(csv_path: &Path) -> Result<Vec<TeamPoint>> {
    adherence_points_with(csv_path, false)
}

/// [`adherence_points`], optionally with each follow-up score adjusted for
/// its baseline score (y − b·(baseline − mean baseline), b the pooled
/// least-squares slope of follow-up on baseline within arms), so team means
/// are compared net of where teams started.
pub fn adherence_points_with(csv_path: &Path, baseline_adjusted: bool) -> Result<Vec<TeamPoint>> {
    use crate::lmm::data::DataFrame;
    let df = DataFrame::read_csv(csv_path)?;
    if df.column("team").is_err() && df.column("cluster").is_ok() {
        if baseline_adjusted {
            return Err(Error::Usage(
                "--baseline-adjusted: a stepped-wedge CSV has no baseline column; its points are already changes after crossover".into(),
            ));
        }
        return sw_adherence_points(csv_path, &df);
    }
    let num = |name: &str| numeric_column(&df, name, csv_path);
    let (arm, part) = (num("arm")?, num("team_adherence")?);
    let mut qpr = num("qpr")?;
    if baseline_adjusted {
        let base = num("baseline").map_err(|_| {
            Error::Usage(format!(
                "{}: --baseline-adjusted needs a numeric `baseline` column",
                csv_path.display()
            ))
        })?;
        adjust_for_baseline(&mut qpr, &base, &arm);
    }
    let team = df.column("team")?;
    let mut by: BTreeMap<String, (f64, usize, f64, bool)> = BTreeMap::new();
    for i in 0..df.nrows() {
        if qpr[i].is_nan() || part[i].is_nan() || team.is_missing(i) {
            continue;
        }
        let e = by
            .entry(team.text(i))
            .or_insert((0.0, 0, part[i], arm[i] == 1.0));
        e.0 += qpr[i];
        e.1 += 1;
    }
    if by.len() < 3 {
        return Err(Error::Usage(format!(
            "{}: fewer than 3 teams with a follow-up score and participation",
            csv_path.display()
        )));
    }
    Ok(by
        .into_values()
        .map(|(s, n, p, t)| TeamPoint {
            participation: p,
            mean_qpr: s / n as f64,
            n,
            treated: t,
        })
        .collect())
}

/// y − b·(x − mean x) with b the pooled within-arm least-squares slope of
/// y on x (rows missing either are left as they are: NaN y stays NaN).
fn adjust_for_baseline(y: &mut [f64], x: &[f64], arm: &[f64]) {
    let ok = |i: usize| y[i].is_finite() && x[i].is_finite();
    let mut sums = [[0.0f64; 3]; 2]; // per arm: n, Σx, Σy
    for i in (0..y.len()).filter(|&i| ok(i)) {
        let a = usize::from(arm[i] == 1.0);
        sums[a][0] += 1.0;
        sums[a][1] += x[i];
        sums[a][2] += y[i];
    }
    let mean = |a: usize, k: usize| sums[a][k] / sums[a][0].max(1.0);
    let (mut sxx, mut sxy, mut sx, mut n) = (0.0, 0.0, 0.0, 0.0);
    for i in (0..y.len()).filter(|&i| ok(i)) {
        let a = usize::from(arm[i] == 1.0);
        let dx = x[i] - mean(a, 1);
        sxx += dx * dx;
        sxy += dx * (y[i] - mean(a, 2));
        sx += x[i];
        n += 1.0;
    }
    if sxx <= 0.0 || n == 0.0 {
        return;
    }
    let (b, xbar) = (sxy / sxx, sx / n);
    for (yi, &xi) in y.iter_mut().zip(x) {
        if yi.is_finite() && xi.is_finite() {
            *yi -= b * (xi - xbar);
        }
    }
}

/// A numeric column of a CSV's data frame (error naming file and column).
fn numeric_column(
    df: &crate::lmm::data::DataFrame,
    name: &str,
    csv_path: &Path,
) -> Result<Vec<f64>> {
    match &df.column(name)?.data {
        crate::lmm::data::ColumnData::Numeric(v) => Ok(v.clone()),
        crate::lmm::data::ColumnData::Categorical { .. } => Err(Error::Usage(format!(
            "{}: column `{name}` must be numeric",
            csv_path.display()
        ))),
    }
}

/// Stepped-wedge clusters: each cluster's change after crossover, the mean
/// of its period-adjusted scores (each score minus its period's mean over
/// all clusters) in exposed periods minus that in unexposed periods,
/// against its participation. Clusters observed only exposed or only
/// unexposed are left out. `source` names the data in errors.
pub fn sw_adherence_points(
    csv_path: &Path,
    df: &crate::lmm::data::DataFrame,
) -> Result<Vec<TeamPoint>> {
    let num = |name: &str| numeric_column(df, name, csv_path);
    let (treat, qpr, part) = (num("treat")?, num("qpr")?, num("team_adherence")?);
    let (cluster, period) = (df.column("cluster")?, df.column("period")?);
    let ok = |i: usize| {
        !qpr[i].is_nan() && !treat[i].is_nan() && !cluster.is_missing(i) && !period.is_missing(i)
    };
    let mut pmean: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for i in (0..df.nrows()).filter(|&i| ok(i)) {
        let e = pmean.entry(period.text(i)).or_insert((0.0, 0.0));
        e.0 += qpr[i];
        e.1 += 1.0;
    }
    // Per cluster: (sum, n) exposed, (sum, n) unexposed, participation.
    type Acc = ((f64, usize), (f64, usize), f64);
    let mut by: BTreeMap<String, Acc> = BTreeMap::new();
    for i in (0..df.nrows()).filter(|&i| ok(i)) {
        let (s, n) = pmean[&period.text(i)];
        let r = qpr[i] - s / n;
        let e = by
            .entry(cluster.text(i))
            .or_insert(((0.0, 0), (0.0, 0), 0.0));
        if treat[i] > 0.0 {
            e.0 .0 += r;
            e.0 .1 += 1;
            if !part[i].is_nan() {
                e.2 = part[i];
            }
        } else {
            e.1 .0 += r;
            e.1 .1 += 1;
        }
    }
    let pts: Vec<TeamPoint> = by
        .into_values()
        .filter(|((_, ne), (_, nu), _)| *ne > 0 && *nu > 0)
        .map(|((se, ne), (su, nu), p)| TeamPoint {
            participation: p,
            mean_qpr: se / ne as f64 - su / nu as f64,
            n: ne + nu,
            treated: true,
        })
        .collect();
    if pts.len() < 3 {
        return Err(Error::Usage(format!(
            "{}: fewer than 3 clusters observed both before and after crossing over",
            csv_path.display()
        )));
    }
    Ok(pts)
}

/// Draw `PREFIX.svg` and `PREFIX.png`: team-mean follow-up QPR against team
/// participation, coloured by arm, sized by team n, with a least-squares line
/// and its 95% confidence band, and the high/low cut (median participation
/// of treated teams) marked. For a stepped-wedge CSV, each cluster's
/// period-adjusted change after crossover against its participation.
pub fn adherence_scatter(csv_path: &Path, prefix: &Path) -> Result<Vec<PathBuf>> {
    adherence_scatter_with(csv_path, prefix, &PlotOptions::default())
}

/// [`adherence_scatter`] with titles and, optionally, baseline-adjusted
/// team means.
pub fn adherence_scatter_with(
    csv_path: &Path,
    prefix: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>> {
    let pts = adherence_points_with(csv_path, opts.baseline_adjusted)?;
    let sw = {
        let df = crate::lmm::data::DataFrame::read_csv(csv_path)?;
        df.column("team").is_err() && df.column("cluster").is_ok()
    };
    let labels = if sw {
        AdherenceLabels {
            title: "Cluster change after crossover by participation",
            x: "cluster participation (proportion of the programme delivered, 0-1)",
            y: "exposed minus unexposed periods, period-adjusted QPR (points)",
            treated: "clusters",
            control: "",
        }
    } else {
        AdherenceLabels {
            title: if opts.baseline_adjusted {
                "Team follow-up QPR by team participation, baseline-adjusted"
            } else {
                "Team follow-up QPR by team participation"
            },
            x: "Team participation (proportion of the programme delivered)",
            y: if opts.baseline_adjusted {
                "Team mean follow-up QPR, adjusted for baseline (points)"
            } else {
                "Team mean follow-up QPR total (points, 0-60)"
            },
            treated: "intervention teams",
            control: "control teams (participation 0; shown, not fitted)",
        }
    };
    let labels = AdherenceLabels {
        title: opts.title.as_deref().unwrap_or(labels.title),
        x: opts.xlabel.as_deref().unwrap_or(labels.x),
        y: opts.ylabel.as_deref().unwrap_or(labels.y),
        ..labels
    };
    render_both!(prefix, (1100, 680), |root| draw_adherence(
        &root, &pts, &labels
    ))
}

/// Text of the adherence scatter (parallel or stepped-wedge).
struct AdherenceLabels<'a> {
    title: &'a str,
    x: &'a str,
    y: &'a str,
    treated: &'a str,
    control: &'a str,
}

fn draw_adherence<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    pts: &[TeamPoint],
    labels: &AdherenceLabels,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (w, _) = root.dim_in_pixel();
    let (root, legend_area) = root.split_horizontally(w.saturating_sub(320));
    let root = &root;
    let ys: Vec<f64> = pts.iter().map(|p| p.mean_qpr).collect();
    let (ylo, yhi) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    let pad = 0.1 * (yhi - ylo).max(1.0);
    let mut chart = ChartBuilder::on(root)
        .caption(labels.title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.03..1.03, (ylo - pad)..(yhi + pad))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_desc(labels.x)
        .y_desc(labels.y)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()
        .map_err(|e| e.to_string())?;
    // Least-squares line among the intervention teams only (control teams
    // all sit at participation 0: fitting them too would make the line an
    // arm contrast), with a 95% band for the mean.
    let fit: Vec<&TeamPoint> = pts.iter().filter(|p| p.treated).collect();
    let k = fit.len().max(1) as f64;
    let xbar = fit.iter().map(|p| p.participation).sum::<f64>() / k;
    let ybar = fit.iter().map(|p| p.mean_qpr).sum::<f64>() / k;
    let sxx: f64 = fit.iter().map(|p| (p.participation - xbar).powi(2)).sum();
    let sxy: f64 = fit
        .iter()
        .map(|p| (p.participation - xbar) * (p.mean_qpr - ybar))
        .sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let icpt = ybar - slope * xbar;
    let rss: f64 = fit
        .iter()
        .map(|p| (p.mean_qpr - icpt - slope * p.participation).powi(2))
        .sum();
    let (fx0, fx1) = fit
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.participation), b.max(p.participation))
        });
    let (fx0, fx1) = if fx0 <= fx1 { (fx0, fx1) } else { (0.0, 1.0) };
    let s = (rss / (k - 2.0).max(1.0)).sqrt();
    let tcrit = crate::stats::t_quantile(0.975, (k - 2.0).max(1.0));
    let grid: Vec<f64> = (0..=100)
        .map(|i| fx0 + (fx1 - fx0) * i as f64 / 100.0)
        .collect();
    let half = |x: f64| {
        tcrit
            * s
            * (1.0 / k
                + if sxx > 0.0 {
                    (x - xbar).powi(2) / sxx
                } else {
                    0.0
                })
            .sqrt()
    };
    let band: Vec<(f64, f64)> = grid
        .iter()
        .map(|&x| (x, icpt + slope * x + half(x)))
        .chain(grid.iter().rev().map(|&x| (x, icpt + slope * x - half(x))))
        .collect();
    let line_colour = RGBColor(60, 60, 60);
    chart
        .draw_series(std::iter::once(Polygon::new(
            band,
            line_colour.mix(0.15).filled(),
        )))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            grid.iter().map(|&x| (x, icpt + slope * x)),
            line_colour.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label(format!(
            "least-squares line, slope {slope:+.2} points per unit (95% band)"
        ))
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], line_colour.stroke_width(2))
        });
    // Points: colour by arm, area by team size.
    let nmax = pts.iter().map(|p| p.n).max().unwrap_or(1) as f64;
    for (treated, colour, label) in [
        (false, RGBColor(0, 114, 178), labels.control),
        (true, RGBColor(213, 94, 0), labels.treated),
    ] {
        let sel: Vec<&TeamPoint> = pts.iter().filter(|p| p.treated == treated).collect();
        if sel.is_empty() {
            continue;
        }
        chart
            .draw_series(sel.iter().map(|p| {
                let r = (4.0 + 8.0 * (p.n as f64 / nmax).sqrt()) as i32;
                Circle::new((p.participation, p.mean_qpr), r, colour.mix(0.75).filled())
            }))
            .map_err(|e| e.to_string())?
            .label(format!("{label}; area ~ n"))
            .legend(move |(x, y)| Circle::new((x + 10, y), 6, colour.filled()));
    }
    // The high/low cut: median participation of the treated teams.
    let mut tp: Vec<f64> = pts
        .iter()
        .filter(|p| p.treated)
        .map(|p| p.participation)
        .collect();
    let mut cut_value = None;
    if !tp.is_empty() {
        tp.sort_by(|a, b| a.total_cmp(b));
        let n = tp.len();
        let cut = if n % 2 == 1 {
            tp[n / 2]
        } else {
            0.5 * (tp[n / 2 - 1] + tp[n / 2])
        };
        cut_value = Some(cut);
        let cut_colour = RGBColor(120, 0, 120);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(cut, ylo - pad), (cut, yhi + pad)],
                8,
                6,
                cut_colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(format!(
                "high/low cut: median treated participation {cut:.2}"
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], cut_colour.stroke_width(2))
            });
    }
    // The legend beside the data, never over it.
    let mut entries: Vec<(RGBColor, bool, String)> = Vec::new();
    for (treated, colour, label) in [
        (true, RGBColor(213, 94, 0), labels.treated),
        (false, RGBColor(0, 114, 178), labels.control),
    ] {
        if pts.iter().any(|p| p.treated == treated) && !label.is_empty() {
            entries.push((colour, true, format!("{label}; area ~ n")));
        }
    }
    entries.push((
        line_colour,
        false,
        format!(
            "least-squares line among {}, slope {slope:+.2} points per unit (95% band)",
            if labels.control.is_empty() {
                "these clusters"
            } else {
                "intervention teams only"
            }
        ),
    ));
    if let Some(cut) = cut_value {
        entries.push((
            RGBColor(120, 0, 120),
            false,
            format!("high/low cut: median participation of intervention teams, {cut:.2}"),
        ));
    }
    let font = ("sans-serif", 15).into_font();
    let mut y = 70i32;
    for (colour, dot, text) in entries {
        if dot {
            legend_area
                .draw(&Circle::new((18, y + 8), 7, colour.mix(0.75).filled()))
                .map_err(|e| e.to_string())?;
        } else {
            legend_area
                .draw(&PathElement::new(
                    vec![(6, y + 8), (32, y + 8)],
                    colour.stroke_width(3),
                ))
                .map_err(|e| e.to_string())?;
        }
        for line in crate::labels::wrap_words(&text, 30) {
            legend_area
                .draw(&Text::new(line, (40, y), font.clone()))
                .map_err(|e| e.to_string())?;
            y += 19;
        }
        y += 12;
    }
    Ok(())
}

/// Draw bias (left) and power (right) of the adherence analyses against the
/// first swept key (e.g. `adherence.confounding`) from a sweep's tidy CSV.
pub fn adherence_power(csv_path: &Path, prefix: &Path) -> Result<Vec<PathBuf>> {
    let (xkey, series) = read_curves(csv_path)?;
    let (_, bias) = read_series(csv_path, "bias", "bias_mc_se", None)?;
    let series: Vec<Series> = series
        .into_iter()
        .filter(|s| s.label.starts_with("adh_") || s.label.starts_with("lmm_satterthwaite"))
        .collect();
    let bias: Vec<Series> = bias
        .into_iter()
        .filter(|s| s.label.starts_with("adh_") || s.label.starts_with("lmm_satterthwaite"))
        .collect();
    if series.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no adherence analyses (adh_*) in this sweep",
            csv_path.display()
        )));
    }
    // Human labels (one label map) for the analyses and the swept key.
    let human = |v: Vec<Series>| -> Vec<Series> {
        v.into_iter()
            .map(|s| {
                let (name, rest) = s.label.split_once(", ").unwrap_or((&s.label, ""));
                let label = crate::analysis::Analysis::from_name(name).map_or(name, |a| a.label());
                let label = if rest.is_empty() {
                    label.to_string()
                } else {
                    format!("{label} ({rest})")
                };
                Series { label, ..s }
            })
            .collect()
    };
    let (series, bias) = (human(series), human(bias));
    let xkey = crate::labels::key_label(&xkey);
    render_both!(prefix, (1440, 560), |root| draw_two(
        &root, &xkey, &bias, &series
    ))
}

fn draw_two<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    xkey: &str,
    bias: &[Series],
    power: &[Series],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (w, _) = root.dim_in_pixel();
    let (panels, legend_area) = root.split_horizontally(w.saturating_sub(260));
    let (pw, _) = panels.dim_in_pixel();
    let (left, right) = panels.split_horizontally(pw / 2);
    // One legend for both panels, beside them.
    let font = ("sans-serif", 15).into_font();
    let mut y = 60i32;
    for (k, s) in power.iter().enumerate() {
        legend_area
            .draw(&PathElement::new(
                vec![(8, y + 8), (34, y + 8)],
                okabe_ito(k).stroke_width(4),
            ))
            .map_err(|e| e.to_string())?;
        for line in crate::labels::wrap_words(&s.label, 26) {
            legend_area
                .draw(&Text::new(line, (42, y), font.clone()))
                .map_err(|e| e.to_string())?;
            y += 19;
        }
        y += 10;
    }
    for (area, data, title, ydesc, yr) in [
        (
            &left,
            bias,
            "Bias",
            "Bias against each analysis' own estimand (points; ± 1.96 MC SE)",
            None,
        ),
        (
            &right,
            power,
            "Power",
            "Power (± 1.96 MC SE)",
            Some((0.0, 1.0)),
        ),
    ] {
        let xs = data.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        let (lo, hi) = if lo == hi {
            (lo - 1.0, hi + 1.0)
        } else {
            (lo, hi)
        };
        let (ylo, yhi) = yr.unwrap_or_else(|| {
            let ys = data.iter().flat_map(|s| {
                s.points
                    .iter()
                    .flat_map(|p| [p.1 - 2.0 * p.2, p.1 + 2.0 * p.2])
            });
            let (a, b) = ys.fold((0.0f64, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
            (a - 0.1 * (b - a).max(0.1), b + 0.1 * (b - a).max(0.1))
        });
        let pad = 0.03 * (hi - lo);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{title} by {}", xkey.to_lowercase()),
                ("sans-serif", 20),
            )
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(60)
            .build_cartesian_2d((lo - pad)..(hi + pad), ylo..yhi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .x_desc(xkey)
            .y_desc(ydesc)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, s) in data.iter().enumerate() {
            draw_mc_curve(&mut chart, s, okabe_ito(k), None)?;
        }
    }
    Ok(())
}

/// Draw a stepped-wedge design as the standard diagram: one row per cluster
/// (grouped by sequence), one column per period, cells shaded by exposure
/// (control, transition/partial, intervention).
pub fn design_diagram(cfg: &crate::config::Config, prefix: &Path) -> Result<Vec<PathBuf>> {
    design_diagram_with(cfg, prefix, None)
}

/// [`design_diagram`] with an optional title.
pub fn design_diagram_with(
    cfg: &crate::config::Config,
    prefix: &Path,
    title: Option<&str>,
) -> Result<Vec<PathBuf>> {
    use crate::config::Transition;
    let sw = cfg.stepped_wedge.as_ref().ok_or_else(|| {
        Error::Usage(
            "plot design needs a stepped-wedge config (trial.design = \"stepped_wedge\")".into(),
        )
    })?;
    let m = sw.matrix();
    let split = crate::design::even_split(cfg.clusters.teams, m.len());
    let mut rows: Vec<(usize, Vec<f64>)> = Vec::new(); // (sequence, exposure per period; NaN = excluded)
    for (q, row) in m.iter().enumerate() {
        let first = row.iter().position(|&x| x == 1);
        let cells: Vec<f64> = row
            .iter()
            .enumerate()
            .map(|(t, &x)| match (first, sw.transition) {
                (Some(f), Transition::Exclude) if t == f => f64::NAN,
                (Some(f), Transition::Half) if t == f => 0.5,
                _ => f64::from(x),
            })
            .collect();
        for _ in 0..split[q] {
            rows.push((q, cells.clone()));
        }
    }
    let title = title
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}: stepped-wedge design", cfg.trial.name));
    // Expected participants analysed per cluster-period.
    let (mbar, _) = crate::design::size_moments(&cfg.clusters.size);
    let n_cell = mbar * (1.0 - cfg.attrition.rate);
    let periods = rows.first().map_or(1, |r| r.1.len());
    let w = (260 + 90 * periods + 250).clamp(640, 2400) as u32;
    let h = (120 + 26 * rows.len()).max(320) as u32;
    render_both!(prefix, (w, h), |root| draw_design(
        &root, &title, &rows, n_cell
    ))
}

fn draw_design<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    rows: &[(usize, Vec<f64>)],
    n_cell: f64,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let periods = rows.first().map(|r| r.1.len()).unwrap_or(1);
    let n = rows.len();
    let (w, _) = root.dim_in_pixel();
    let (root, legend_area) = root.split_horizontally(w.saturating_sub(240));
    let root = &root;
    // Cells are centred on integer coordinates; the legend sits beside them.
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(150)
        .build_cartesian_2d(-0.5..(periods as f64 - 0.5), -0.5..(n as f64 - 0.5))
        .map_err(|e| e.to_string())?;
    let is_int = |v: f64| (v - v.round()).abs() < 1e-6;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .disable_mesh()
        .x_labels(4 * periods + 4)
        .x_label_formatter(&|x| {
            if is_int(*x) && *x >= 0.0 && (*x as usize) < periods {
                format!("period {}", (*x as usize) + 1)
            } else {
                String::new()
            }
        })
        .y_labels(4 * n + 4)
        .y_label_formatter(&|y| {
            if !is_int(*y) || *y < 0.0 {
                return String::new();
            }
            let r = n.saturating_sub(1 + y.round() as usize);
            rows.get(r)
                .map(|(q, _)| format!("cluster {} (seq {})", r + 1, q + 1))
                .unwrap_or_default()
        })
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(|e| e.to_string())?;
    let ctrl = RGBColor(222, 235, 247);
    let part = RGBColor(158, 202, 225);
    let int = RGBColor(33, 113, 181);
    let excl = RGBColor(200, 200, 200);
    for (r, (_, cells)) in rows.iter().enumerate() {
        let y0 = (n - 1 - r) as f64 - 0.5;
        for (t, &e) in cells.iter().enumerate() {
            let colour = if e.is_nan() {
                excl
            } else if e >= 1.0 {
                int
            } else if e > 0.0 {
                part
            } else {
                ctrl
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(t as f64 - 0.47, y0 + 0.08), (t as f64 + 0.47, y0 + 0.92)],
                    colour.filled(),
                )))
                .map_err(|e| e.to_string())?;
            // The expected participants analysed in the cell.
            let text = if e.is_nan() {
                "excluded".to_string()
            } else {
                crate::labels::round_sig((n_cell * 10.0).round() / 10.0)
            };
            let fg = if e >= 1.0 { WHITE } else { BLACK };
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (t as f64, y0 + 0.5),
                    ("sans-serif", 13)
                        .into_text_style(root)
                        .color(&fg)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )))
                .map_err(|e| e.to_string())?;
        }
    }
    // Only the legend entries this design uses, beside the grid.
    let used = |f: &dyn Fn(f64) -> bool| rows.iter().any(|(_, c)| c.iter().any(|&e| f(e)));
    let mut y = 60i32;
    let font = ("sans-serif", 14).into_font();
    for (label, colour, present) in [
        ("control", ctrl, used(&|e| e == 0.0)),
        ("intervention", int, used(&|e| e >= 1.0)),
        (
            "transition (half exposed)",
            part,
            used(&|e| e > 0.0 && e < 1.0),
        ),
        ("transition (excluded)", excl, used(&|e| e.is_nan())),
    ] {
        if !present {
            continue;
        }
        legend_area
            .draw(&Rectangle::new([(8, y), (24, y + 16)], colour.filled()))
            .map_err(|e| e.to_string())?;
        legend_area
            .draw(&Text::new(label, (32, y + 1), font.clone()))
            .map_err(|e| e.to_string())?;
        y += 26;
    }
    for line in [
        "Numbers: expected participants".to_string(),
        "analysed per cluster-period".to_string(),
    ] {
        legend_area
            .draw(&Text::new(line, (8, y + 8), font.clone()))
            .map_err(|e| e.to_string())?;
        y += 18;
    }
    Ok(())
}
