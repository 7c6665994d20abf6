//! Making a report: by running a config (one run, a sweep or a sample-size
//! search), or from a run or sweep directory already on disk (nothing is
//! rerun).

use super::{Report, Results};
use crate::analysis::Analysis;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::power::{self, PowerStudy, RunOptions};
use crate::sweep;
use std::path::Path;

/// A sample-size search: the key, the target power, the analysis whose
/// power counts and the search range.
#[derive(Debug, Clone)]
pub struct SolveRequest {
    pub key: String,
    pub target: f64,
    pub analysis: Analysis,
    pub range: (i64, i64),
}

/// What to run for a report from a config.
#[derive(Debug, Clone)]
pub struct Request {
    /// `--set key=value` overrides.
    pub sets: Vec<String>,
    /// `--sweep key=v1,v2` axes (added to the config's `[sweep]`).
    pub sweep: Vec<String>,
    pub solve: Option<SolveRequest>,
    /// Replicates, seed and threads (results are not stored: `out` is ignored).
    pub options: RunOptions,
    /// Run the null alongside (type-I error).
    pub with_null: bool,
    /// Target power lines.
    pub targets: Vec<f64>,
    /// The command line, for the reproducibility section.
    pub command: String,
}

/// Run the config at `path` as `req` asks and build its report.
/// `progress(done, total)` is called as the work goes (grid points or
/// replicates).
pub fn from_config(
    path: &Path,
    req: &Request,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let cfg = Config::load(path, &req.sets)?;
    let opts = RunOptions {
        out: None,
        resume: false,
        ..req.options.clone()
    };
    opts.validate()?;
    let results = if let Some(s) = &req.solve {
        let solution = sweep::solve(
            &text,
            &req.sets,
            &s.key,
            s.target,
            s.analysis,
            s.range,
            &opts,
            |_, _| {},
        )?;
        let at = [(s.key.clone(), solution.value.to_string())];
        let cfg = sweep::point_config(&text, &req.sets, &at)?;
        let study = PowerStudy::new(cfg, req.with_null)?;
        let summary = power::execute(&study, &opts, &mut progress)?;
        Results::Solve {
            solution,
            study,
            summary,
        }
    } else {
        let mut axes = sweep::axes_from_config(&cfg)?;
        for a in &req.sweep {
            let ax = sweep::parse_axis(a)?;
            axes.retain(|x| x.key != ax.key);
            axes.push(ax);
        }
        if axes.is_empty() {
            let study = PowerStudy::new(cfg, req.with_null)?;
            let summary = power::execute(&study, &opts, &mut progress)?;
            Results::Run { study, summary }
        } else {
            let points = sweep::run_grid(&text, &req.sets, &axes, req.with_null, &opts, |k, n| {
                progress(k as u64, n as u64)
            })?;
            Results::Sweep { points }
        }
    };
    Ok(Report {
        results,
        source_text: Some(text),
        command: req.command.clone(),
        targets: req.targets.clone(),
    })
}

/// The report of a run directory (`power --out DIR`) or a sweep directory
/// (`power --sweep ... --out DIR`), from its stored replicates.
pub fn from_dir(dir: &Path, command: &str, targets: &[f64]) -> Result<Report> {
    let results = if dir.join("run.json").exists() {
        let merged = power::merge(&[dir.to_path_buf()], None)?;
        Results::Run {
            study: merged.study,
            summary: merged.summary,
        }
    } else {
        let points = sweep::merge_sweep(&[dir.to_path_buf()], None)?;
        if points.is_empty() {
            return Err(Error::Usage(format!(
                "{}: neither a run nor a sweep directory",
                dir.display()
            )));
        }
        Results::Sweep { points }
    };
    Ok(Report {
        results,
        source_text: None,
        command: command.to_string(),
        targets: targets.to_vec(),
    })
}

/// Check target-power lines: at most 5, each in (0, 1).
pub fn check_targets(targets: &[f64]) -> Result<()> {
    if targets.len() > 5 {
        return Err(Error::Usage(format!(
            "--target: {} lines; give at most 5, e.g. 0.8,0.9",
            targets.len()
        )));
    }
    match targets.iter().find(|t| !(**t > 0.0 && **t < 1.0)) {
        Some(t) => Err(Error::Usage(format!(
            "--target {t}: a target power must be a number in (0, 1), e.g. 0.8"
        ))),
        None => Ok(()),
    }
}
