//! Power curves from a sweep's tidy CSV, drawn with plotters as SVG and PNG.
//!
//! The x axis is the first swept key; each analysis (and each combination of
//! any further swept keys) is one series: Monte Carlo power with ±1.96 MC SE
//! error bars, and the analytic power as a thin line of the same colour. Text
//! uses the bundled DejaVu Sans (no system fonts needed).

use crate::error::{Error, Result};
use plotters::prelude::*;
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

/// Draw `kind` from `input` (a CSV, or for [`PlotKind::Design`] a config)
/// as `PREFIX.svg` and `PREFIX.png` (default prefix:
/// [`PlotKind::default_prefix`]); returns the files written.
pub fn draw_kind(kind: PlotKind, input: &Path, prefix: Option<&Path>) -> Result<Vec<PathBuf>> {
    let prefix = prefix
        .map(Path::to_path_buf)
        .unwrap_or_else(|| kind.default_prefix(input));
    match kind {
        PlotKind::Power => power_curves(input, &prefix),
        PlotKind::Adherence => adherence_scatter(input, &prefix),
        PlotKind::AdherencePower => adherence_power(input, &prefix),
        PlotKind::Design => design_diagram(&crate::config::Config::load(input, &[])?, &prefix),
    }
}

/// Draw `PREFIX.svg` and `PREFIX.png` from a tidy sweep CSV.
pub fn power_curves(csv_path: &Path, prefix: &Path) -> Result<Vec<PathBuf>> {
    let (xkey, series) = read_curves(csv_path)?;
    if series.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no rows to plot",
            csv_path.display()
        )));
    }
    render_both!(prefix, (960, 640), |root| draw(&root, &xkey, &series))
}

/// One Monte Carlo curve: a line with its legend entry, and ±1.96 MC SE
/// error bars, clipped to `clip` when given (power lies in [0, 1]).
fn draw_mc_curve<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    s: &Series,
    colour: RGBAColor,
    clip: Option<(f64, f64)>,
) -> std::result::Result<(), String> {
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

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    xkey: &str,
    series: &[Series],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (mut lo, mut hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if lo == hi {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = 0.03 * (hi - lo);
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Power by {xkey}"), ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(60)
        .build_cartesian_2d((lo - pad)..(hi + pad), 0.0..1.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(xkey)
        .y_desc("power (Monte Carlo ± 1.96 MC SE; thin line: analytic)")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()
        .map_err(|e| e.to_string())?;
    for (k, s) in series.iter().enumerate() {
        let colour = Palette99::pick(k).to_rgba();
        draw_mc_curve(&mut chart, s, colour, Some((0.0, 1.0)))?;
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 4, colour.filled())),
            )
            .map_err(|e| e.to_string())?;
        let analytic: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.3.is_finite())
            .map(|p| (p.0, p.3))
            .collect();
        chart
            .draw_series(LineSeries::new(analytic, colour.mix(0.6).stroke_width(1)))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(|e| e.to_string())?;
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
    use crate::lmm::data::DataFrame;
    let df = DataFrame::read_csv(csv_path)?;
    if df.column("team").is_err() && df.column("cluster").is_ok() {
        return sw_adherence_points(csv_path, &df);
    }
    let num = |name: &str| numeric_column(&df, name, csv_path);
    let (arm, qpr, part) = (num("arm")?, num("qpr")?, num("team_adherence")?);
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
/// unexposed are left out.
fn sw_adherence_points(
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
    let pts = adherence_points(csv_path)?;
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
            title: "Team follow-up QPR by team participation",
            x: "team participation (proportion of the programme delivered, 0-1)",
            y: "team mean follow-up QPR total (points, 0-60)",
            treated: "treated teams",
            control: "control teams (participation 0)",
        }
    };
    render_both!(prefix, (960, 680), |root| draw_adherence(
        &root, &pts, &labels
    ))
}

/// Text of the adherence scatter (parallel or stepped-wedge).
struct AdherenceLabels {
    title: &'static str,
    x: &'static str,
    y: &'static str,
    treated: &'static str,
    control: &'static str,
}

fn draw_adherence<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    pts: &[TeamPoint],
    labels: &AdherenceLabels,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
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
        .x_desc(labels.x)
        .y_desc(labels.y)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()
        .map_err(|e| e.to_string())?;
    // Least-squares line over all teams, with a 95% band for the mean.
    let k = pts.len() as f64;
    let xbar = pts.iter().map(|p| p.participation).sum::<f64>() / k;
    let ybar = ys.iter().sum::<f64>() / k;
    let sxx: f64 = pts.iter().map(|p| (p.participation - xbar).powi(2)).sum();
    let sxy: f64 = pts
        .iter()
        .map(|p| (p.participation - xbar) * (p.mean_qpr - ybar))
        .sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let icpt = ybar - slope * xbar;
    let rss: f64 = pts
        .iter()
        .map(|p| (p.mean_qpr - icpt - slope * p.participation).powi(2))
        .sum();
    let s = (rss / (k - 2.0).max(1.0)).sqrt();
    let tcrit = crate::stats::t_quantile(0.975, (k - 2.0).max(1.0));
    let grid: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
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
    if !tp.is_empty() {
        tp.sort_by(|a, b| a.total_cmp(b));
        let n = tp.len();
        let cut = if n % 2 == 1 {
            tp[n / 2]
        } else {
            0.5 * (tp[n / 2 - 1] + tp[n / 2])
        };
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
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
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
    render_both!(prefix, (1280, 560), |root| draw_two(
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
    let (left, right) = root.split_horizontally(640);
    for (area, data, title, ydesc, yr) in [
        (&left, bias, "Bias", "bias (points; ± 1.96 MC SE)", None),
        (
            &right,
            power,
            "Power",
            "power (± 1.96 MC SE)",
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
            .caption(format!("{title} by {xkey}"), ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(60)
            .build_cartesian_2d((lo - pad)..(hi + pad), ylo..yhi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(xkey)
            .y_desc(ydesc)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, s) in data.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            draw_mc_curve(&mut chart, s, colour, None)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Draw a stepped-wedge design as the standard diagram: one row per cluster
/// (grouped by sequence), one column per period, cells shaded by exposure
/// (control, transition/partial, intervention).
pub fn design_diagram(cfg: &crate::config::Config, prefix: &Path) -> Result<Vec<PathBuf>> {
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
    let title = format!("{}: stepped-wedge design", cfg.trial.name);
    let h = (120 + 26 * rows.len()).max(320) as u32;
    render_both!(prefix, (900, h), |root| draw_design(&root, &title, &rows))
}

fn draw_design<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    rows: &[(usize, Vec<f64>)],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let periods = rows.first().map(|r| r.1.len()).unwrap_or(1);
    let n = rows.len();
    // Cells are centred on integer coordinates; the right margin holds the legend.
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(150)
        .build_cartesian_2d(-0.5..(periods as f64 + 1.9), -0.5..(n as f64 - 0.5))
        .map_err(|e| e.to_string())?;
    let is_int = |v: f64| (v - v.round()).abs() < 1e-6;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(4 * (periods + 3))
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
        }
    }
    for (label, colour) in [
        ("control", ctrl),
        ("intervention", int),
        ("transition (half exposed)", part),
        ("transition (excluded)", excl),
    ] {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(-10.0, -10.0), (-9.0, -9.0)],
                colour.filled(),
            )))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}
