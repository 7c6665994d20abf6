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

/// One curve: label and points (x, power, MC SE, analytic power).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// Read the curves from a tidy sweep CSV.
pub fn read_curves(path: &Path) -> Result<(String, Vec<Series>)> {
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
    let (i_an, i_pow, i_se, i_ana) = (
        col("analysis")?,
        col("power")?,
        col("power_mc_se")?,
        col("analytic_power")?,
    );
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
        curves
            .entry(label)
            .or_default()
            .push((num(1)?, num(i_pow)?, num(i_se)?, num(i_ana)?));
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

/// Draw `PREFIX.svg` and `PREFIX.png` from a tidy sweep CSV.
pub fn power_curves(csv_path: &Path, prefix: &Path) -> Result<Vec<PathBuf>> {
    let (xkey, series) = read_curves(csv_path)?;
    if series.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no rows to plot",
            csv_path.display()
        )));
    }
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let svg = prefix.with_extension("svg");
    let png = prefix.with_extension("png");
    let draw_err = |p: &Path, e: String| Error::Usage(format!("{}: cannot draw: {e}", p.display()));
    {
        let root = SVGBackend::new(&svg, (960, 640)).into_drawing_area();
        draw(&root, &xkey, &series).map_err(|e| draw_err(&svg, e))?;
        root.present().map_err(|e| draw_err(&svg, e.to_string()))?;
    }
    {
        let root = BitMapBackend::new(&png, (960, 640)).into_drawing_area();
        draw(&root, &xkey, &series).map_err(|e| draw_err(&png, e))?;
        root.present().map_err(|e| draw_err(&png, e.to_string()))?;
    }
    Ok(vec![svg, png])
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
        let mc: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
        chart
            .draw_series(LineSeries::new(mc.clone(), colour.stroke_width(3)))
            .map_err(|e| e.to_string())?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
        chart
            .draw_series(
                mc.iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, colour.filled())),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(s.points.iter().map(|p| {
                ErrorBar::new_vertical(
                    p.0,
                    (p.1 - 1.96 * p.2).max(0.0),
                    p.1,
                    (p.1 + 1.96 * p.2).min(1.0),
                    colour.stroke_width(2),
                    8,
                )
            }))
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
