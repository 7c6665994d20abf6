//! Sweeps over config keys (power curves) and sample-size search.
//!
//! A grid is the Cartesian product of the swept keys' values; each grid point
//! is the base config with `key=value` overrides, run as its own power study
//! with the same seed (common random numbers across points make curves
//! smooth). When a point changes `clusters.teams` without also setting
//! `clusters.treated` / `clusters.site_teams`, those scale with it: treated
//! keeps its share of teams (rounded, at least one per arm) and the teams are
//! spread over sites in the base proportions (largest remainder).

use crate::analysis::{Analysis, Reference};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::power::{self, PowerStudy, RunOptions, Summary};
use std::fmt::Write as _;

/// One swept key and its values (as TOML literals).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// Parse `--sweep key=v1,v2,...` (commas inside [ ] or { } do not split).
pub fn parse_axis(spec: &str) -> Result<Axis> {
    let (key, vals) = spec.split_once('=').ok_or_else(|| {
        Error::Usage(format!(
            "--sweep {spec}: expected key=v1,v2,..., e.g. clusters.teams=20,30,40"
        ))
    })?;
    let mut values = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for ch in vals.chars() {
        match ch {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            values.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(ch);
        }
    }
    if !cur.trim().is_empty() {
        values.push(cur.trim().to_string());
    }
    values.retain(|v| !v.is_empty());
    if values.is_empty() {
        return Err(Error::Usage(format!(
            "--sweep {spec}: no values to sweep over"
        )));
    }
    check_distinct(&format!("--sweep {}", key.trim()), &values)?;
    Ok(Axis {
        key: key.trim().to_string(),
        values,
    })
}

/// The widest `--solve-range` (the analytic bracket scans it value by value).
pub const MAX_SOLVE_RANGE: i64 = 10_000;

/// The most grid points one sweep may have.
pub const MAX_POINTS: usize = 10_000;

/// A swept key's values must differ (a repeated value would run twice and
/// print two rows for one point).
fn check_distinct(what: &str, values: &[String]) -> Result<()> {
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(Error::Usage(format!(
                "{what}: the value {} is given twice; list each value once",
                crate::error::short_value(v)
            )));
        }
    }
    Ok(())
}

/// Axes from a config's `[sweep]` section.
pub fn axes_from_config(cfg: &Config) -> Result<Vec<Axis>> {
    cfg.sweep
        .iter()
        .map(|(k, vs)| {
            if vs.is_empty() {
                return Err(Error::invalid(
                    &format!("sweep.\"{k}\""),
                    "[]",
                    "needs at least one value",
                ));
            }
            let values: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
            check_distinct(&format!("sweep.\"{k}\""), &values)?;
            Ok(Axis {
                key: k.clone(),
                values,
            })
        })
        .collect()
}

/// Check the grid's size before it is built.
pub fn check_grid(axes: &[Axis]) -> Result<()> {
    let mut n: usize = 1;
    for a in axes {
        n = n.saturating_mul(a.values.len());
    }
    if n > MAX_POINTS {
        return Err(Error::Usage(format!(
            "the sweep has {n} grid points; at most {MAX_POINTS}: sweep fewer values or keys"
        )));
    }
    Ok(())
}

/// The grid: every combination, first axis varying slowest.
pub fn grid(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for a in axes {
        let mut next = Vec::new();
        for p in &out {
            for v in &a.values {
                let mut q = p.clone();
                q.push((a.key.clone(), v.clone()));
                next.push(q);
            }
        }
        out = next;
    }
    out
}

/// The config at one grid point: base text + base overrides + the point's
/// values, with dependent team keys adjusted, then validated.
pub fn point_config(text: &str, sets: &[String], point: &[(String, String)]) -> Result<Config> {
    let base = Config::parse_unvalidated(text, sets)?;
    let mut all: Vec<String> = sets.to_vec();
    all.extend(point.iter().map(|(k, v)| format!("{k}={v}")));
    let mut cfg = Config::parse_unvalidated(text, &all)?;
    cfg.sweep.clear();
    let sets_key = |k: &str| point.iter().any(|(pk, _)| pk == k);
    if cfg.clusters.teams != base.clusters.teams {
        let n = cfg.clusters.teams;
        if !sets_key("clusters.treated") {
            if let Some(t0) = base.clusters.treated {
                let t = (n as f64 * t0 as f64 / base.clusters.teams as f64).round() as u32;
                cfg.clusters.treated = Some(t.clamp(1, n.saturating_sub(1).max(1)));
            }
        }
        if !sets_key("clusters.site_teams") {
            if let Some(st) = &base.clusters.site_teams {
                cfg.clusters.site_teams = Some(crate::design::proportional_split(n, st));
            }
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

/// One grid point's result.
pub struct PointResult {
    pub point: Vec<(String, String)>,
    pub study: PowerStudy,
    pub summary: Summary,
}

/// Run every grid point. `out`: a directory per point under it.
pub fn run_grid(
    text: &str,
    sets: &[String],
    axes: &[Axis],
    with_null: bool,
    opts: &RunOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<PointResult>> {
    if axes.is_empty() {
        return Err(Error::Usage(
            "the sweep is empty: give [sweep] keys or --sweep key=v1,v2".into(),
        ));
    }
    check_grid(axes)?;
    let pts = grid(axes);
    let mut results = Vec::with_capacity(pts.len());
    for (k, point) in pts.iter().enumerate() {
        progress(k, pts.len());
        let cfg = point_config(text, sets, point).map_err(|e| {
            let at: Vec<String> = point.iter().map(|(a, b)| format!("{a}={b}")).collect();
            Error::Usage(format!("sweep point {} ({}): {e}", k + 1, at.join(", ")))
        })?;
        let study = PowerStudy::new(cfg, with_null)?;
        let mut o = opts.clone();
        o.out = opts
            .out
            .as_ref()
            .map(|d| d.join(format!("point{:03}", k + 1)));
        let summary = power::execute(&study, &o, |_, _| {})?;
        if let Some(dir) = &o.out {
            let path = dir.join("point.json");
            let kv: Vec<serde_json::Value> = point
                .iter()
                .map(|(k, v)| serde_json::json!([k, v]))
                .collect();
            power::store::atomic_write(
                &path,
                (serde_json::to_string(&kv).unwrap_or_default() + "\n").as_bytes(),
            )?;
        }
        results.push(PointResult {
            point: point.clone(),
            study,
            summary,
        });
    }
    progress(pts.len(), pts.len());
    Ok(results)
}

/// The tidy CSV: one row per grid point × analysis.
pub fn tidy_csv(results: &[PointResult]) -> String {
    let mut s = String::new();
    let keys: Vec<String> = results
        .first()
        .map(|r| r.point.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "point,{}analysis,reps,seed,power,power_mc_se,type1,type1_mc_se,analytic_power,mean_estimate,bias,bias_mc_se,empirical_se,empirical_se_mc_se,mean_model_se,mean_model_se_mc_se,coverage,coverage_mc_se,n_singular,n_nonconverged,n_failed,crtsim_version,config_hash",
        keys.iter().map(|k| format!("{k},")).collect::<String>()
    );
    let f = |x: f64| {
        if x.is_finite() {
            format!("{x}")
        } else {
            "NA".into()
        }
    };
    for (k, r) in results.iter().enumerate() {
        let vals: String = r
            .point
            .iter()
            .map(|(_, v)| format!("{},", csv_field(v)))
            .collect();
        for row in &r.summary.rows {
            let (name, e, nl) = (row.analysis.name(), &row.effect, &row.null);
            let (t1, t1se) = nl
                .as_ref()
                .map(|p| (p.reject, p.reject_mc_se))
                .unwrap_or((f64::NAN, f64::NAN));
            let _ = writeln!(
                s,
                "{},{vals}{name},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                k + 1,
                r.summary.reps,
                r.summary.seed,
                f(e.reject),
                f(e.reject_mc_se),
                f(t1),
                f(t1se),
                f(row.analytic),
                f(e.mean_estimate),
                f(e.bias),
                f(e.bias_mc_se),
                f(e.empirical_se),
                f(e.empirical_se_mc_se),
                f(e.mean_model_se),
                f(e.mean_model_se_mc_se),
                f(e.coverage),
                f(e.coverage_mc_se),
                e.n_singular,
                e.n_nonconverged,
                e.n_failed,
                env!("CARGO_PKG_VERSION"),
                r.study.config_id
            );
        }
    }
    s
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// Outcome of a sample-size search.
#[derive(Debug, Clone)]
pub struct Solution {
    pub key: String,
    pub analysis: Analysis,
    pub target: f64,
    /// Smallest value whose analytic power reaches the target.
    pub analytic_value: i64,
    /// Smallest value whose Monte Carlo power reached the target.
    pub value: i64,
    /// (value, MC power, MC SE) for every value simulated, ascending.
    pub evaluated: Vec<(i64, f64, f64)>,
}

impl Solution {
    /// The solution as JSON: the key, analysis, target, the analytic and
    /// Monte Carlo answers, and every value simulated with its MC power and
    /// MC SE.
    pub fn to_json(&self, reps: u64) -> serde_json::Value {
        serde_json::json!({
            "key": self.key,
            "analysis": self.analysis,
            "target_power": self.target,
            "reps": reps,
            "analytic_value": self.analytic_value,
            "value": self.value,
            "evaluated": self.evaluated.iter().map(|(v, p, se)| serde_json::json!({
                "value": v, "power": p, "power_mc_se": se
            })).collect::<Vec<_>>(),
        })
    }
}

/// Parse `--solve-range LO:HI` (LO ≤ HI).
pub fn parse_solve_range(s: &str) -> std::result::Result<(i64, i64), String> {
    s.split_once(':')
        .and_then(|(a, b)| Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?)))
        .filter(|(a, b)| a <= b)
        .ok_or_else(|| format!("--solve-range {s}: expected LO:HI, e.g. 4:400"))
}

/// A sweep's summaries as a JSON array, each with its grid point.
pub fn sweep_json(results: &[PointResult]) -> String {
    let arr: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let mut v = power::summary_json(&r.study, &r.summary);
            let point: std::collections::BTreeMap<String, String> =
                r.point.iter().cloned().collect();
            v["point"] = serde_json::json!(point);
            v
        })
        .collect();
    serde_json::to_string_pretty(&arr).unwrap_or_default() + "\n"
}

/// Smallest integer value of `key` in [lo, hi] reaching `target` power for
/// `analysis`: analytic power brackets it, Monte Carlo confirms it (integer
/// bisection on MC power).
#[allow(clippy::too_many_arguments)]
pub fn solve(
    text: &str,
    sets: &[String],
    key: &str,
    target: f64,
    analysis: Analysis,
    (lo, hi): (i64, i64),
    opts: &RunOptions,
    mut progress: impl FnMut(i64, f64),
) -> Result<Solution> {
    if !(0.0 < target && target < 1.0) {
        return Err(Error::Usage(format!(
            "--target-power {target}: must be in (0, 1)"
        )));
    }
    opts.validate()?;
    if hi - lo > MAX_SOLVE_RANGE || lo < 0 {
        return Err(Error::Usage(format!(
            "--solve-range {lo}:{hi}: must be non-negative and span at most {MAX_SOLVE_RANGE} values"
        )));
    }
    let cfg_at = |v: i64| point_config(text, sets, &[(key.to_string(), v.to_string())]);
    let base = cfg_at(lo.max(1))
        .or_else(|_| cfg_at(hi))
        .map_err(|e| Error::Usage(format!("--solve {key}: {e}")))?;
    let methods = base.analysis_methods();
    if !methods.contains(&analysis) {
        return Err(Error::Usage(format!(
            "--solve-analysis {analysis}: not among the configured analyses ({})",
            methods
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let analytic = |v: i64| -> Option<f64> {
        let c = cfg_at(v).ok()?;
        let d = crate::design::Design::from_config(&c).ok()?;
        Some(crate::analytic::power(
            &c,
            &d,
            c.alpha(),
            analysis.reference() == Some(Reference::Normal),
            &c.analysis_formula(),
        ))
    };
    // Analytic bracket: smallest valid value with analytic power ≥ target.
    let mut analytic_value = None;
    for v in lo..=hi {
        if let Some(p) = analytic(v) {
            if p >= target {
                analytic_value = Some(v);
                break;
            }
        }
    }
    let mut evaluated: Vec<(i64, f64, f64)> = Vec::new();
    let mut mc = |v: i64| -> Result<(f64, f64)> {
        if let Some(e) = evaluated.iter().find(|e| e.0 == v) {
            return Ok((e.1, e.2));
        }
        let c = cfg_at(v)?;
        let study = PowerStudy::new(c, false)?;
        let mut o = opts.clone();
        o.out = opts
            .out
            .as_ref()
            .map(|d| d.join(format!("{}={v}", key.replace('/', "_"))));
        let s = power::execute(&study, &o, |_, _| {})?;
        let row = s.get(analysis).expect("the study runs the solved analysis");
        let (p, se) = (row.effect.reject, row.effect.reject_mc_se);
        evaluated.push((v, p, se));
        progress(v, p);
        Ok((p, se))
    };
    let start = analytic_value.unwrap_or(hi);
    // Bracket with Monte Carlo: a failing value below and a passing one above.
    let (mut fail, mut pass): (Option<i64>, Option<i64>) = (None, None);
    let (p0, _) = mc(start)?;
    if p0 >= target {
        pass = Some(start);
        let mut v = start;
        while v > lo {
            let step = ((v - lo) as f64 * 0.2).ceil().max(1.0) as i64;
            v = (v - step).max(lo);
            if cfg_at(v).is_err() {
                break;
            }
            if mc(v)?.0 >= target {
                pass = Some(v);
            } else {
                fail = Some(v);
                break;
            }
        }
    } else {
        fail = Some(start);
        let mut v = start;
        while v < hi {
            let step = ((v as f64) * 0.25).ceil().max(1.0) as i64;
            v = (v + step).min(hi);
            if mc(v)?.0 >= target {
                pass = Some(v);
                break;
            }
            fail = Some(v);
        }
    }
    let Some(mut pass_v) = pass else {
        let best = evaluated
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|e| {
                format!(
                    "best found: power {:.3} (MC SE {:.3}) at {key} = {}",
                    e.1, e.2, e.0
                )
            })
            .unwrap_or_default();
        return Err(Error::Usage(format!(
            "target power {target} cannot be reached with {key} in [{lo}, {hi}] for {analysis}; {best}"
        )));
    };
    if let Some(mut fail_v) = fail {
        while pass_v - fail_v > 1 {
            let mid = fail_v + (pass_v - fail_v) / 2;
            if cfg_at(mid).is_err() {
                break;
            }
            if mc(mid)?.0 >= target {
                pass_v = mid;
            } else {
                fail_v = mid;
            }
        }
    }
    evaluated.sort_by_key(|e| e.0);
    Ok(Solution {
        key: key.to_string(),
        analysis,
        target,
        analytic_value: analytic_value.unwrap_or(-1),
        value: pass_v,
        evaluated,
    })
}

/// A readable account of a solution, with its Monte Carlo uncertainty.
pub fn solution_text(s: &Solution, reps: u64) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Smallest {} reaching power {} for {} ({} replicates per value):",
        s.key, s.target, s.analysis, reps
    );
    if s.analytic_value >= 0 {
        let _ = writeln!(t, "  analytic answer: {} = {}", s.key, s.analytic_value);
    } else {
        let _ = writeln!(
            t,
            "  analytic power does not reach the target in the search range"
        );
    }
    for &(v, p, se) in &s.evaluated {
        let mark = if v == s.value { "  <- answer" } else { "" };
        let _ = writeln!(
            t,
            "  {} = {v}: Monte Carlo power {p:.3} (MC SE {se:.3}){mark}",
            s.key
        );
    }
    let at = s.evaluated.iter().find(|e| e.0 == s.value);
    let below = s
        .evaluated
        .iter()
        .filter(|e| e.0 < s.value)
        .max_by_key(|e| e.0);
    if let Some(&(_, p, se)) = at {
        // With every (or no) replicate rejecting, the MC SE is 0 and a
        // distance in MC SEs means nothing: say so instead.
        let by = |d: f64, se: f64| {
            if se > 0.0 {
                format!("{:.1} MC SE", d / se)
            } else {
                format!("{d:.3} (MC SE 0: every replicate gave the same decision)")
            }
        };
        let z = if se > 0.0 {
            (p - s.target) / se
        } else {
            f64::INFINITY
        };
        let _ = write!(
            t,
            "  Monte Carlo answer: {} = {} (power {p:.3} exceeds the target by {}",
            s.key,
            s.value,
            by(p - s.target, se)
        );
        if let Some(&(vb, pb, seb)) = below {
            let zb = if seb > 0.0 {
                (s.target - pb) / seb
            } else {
                f64::INFINITY
            };
            let _ = write!(t, "; at {vb} it falls short by {}", by(s.target - pb, seb));
            if z < 2.0 || zb < 2.0 {
                let _ = write!(
                    t,
                    "; within 2 MC SE of the target, so raise --reps for a sharper answer"
                );
            }
        }
        let _ = writeln!(t, ")");
    }
    t
}

/// A merged sweep goes to a new or empty directory, or to one holding only
/// this sweep's points (each then checked to be the same merged run).
fn check_sweep_out(out: &std::path::Path, points: &[String]) -> Result<()> {
    let entries = match std::fs::read_dir(out) {
        Ok(it) => it,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(out, e)),
    };
    for e in entries {
        let e = e.map_err(|e| Error::io(out, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name == ".lock" || name == "sweep.csv" || points.contains(&name)) {
            return Err(Error::Usage(format!(
                "{} is not empty (it holds {name}); merge writes only to a new or empty directory: choose another --out",
                out.display()
            )));
        }
    }
    Ok(())
}

/// Merge the shard directories of a sweep (each holding `pointNNN/`
/// subdirectories written by `power --sweep ... --shard i/n --out DIR`):
/// every point is merged across shards, then summarised. Optionally writes
/// the merged sweep (as a single run would) under `out`.
pub fn merge_sweep(
    dirs: &[std::path::PathBuf],
    out: Option<&std::path::Path>,
) -> Result<Vec<PointResult>> {
    let first = dirs
        .first()
        .ok_or_else(|| Error::Usage("merge needs at least one directory".into()))?;
    let mut points: Vec<String> = std::fs::read_dir(first)
        .map_err(|e| Error::io(first, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("point"))
        .collect();
    points.sort();
    if points.is_empty() {
        return Err(Error::Usage(format!(
            "{}: neither a run nor a sweep directory",
            first.display()
        )));
    }
    if let Some(o) = out {
        check_sweep_out(o, &points)?;
    }
    let mut results = Vec::new();
    for name in &points {
        let shard_dirs: Vec<std::path::PathBuf> = dirs.iter().map(|d| d.join(name)).collect();
        for d in &shard_dirs {
            if !d.is_dir() {
                return Err(Error::Usage(format!(
                    "{} is missing: the shards hold different sweeps",
                    d.display()
                )));
            }
        }
        let pj = shard_dirs[0].join("point.json");
        let text = std::fs::read_to_string(&pj).map_err(|e| Error::io(&pj, e))?;
        let kv: Vec<(String, String)> = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{}: {e}", pj.display())))?;
        let dir = out.map(|o| o.join(name));
        let merged = power::merge(&shard_dirs, dir.as_deref())?;
        if let Some(dir) = &dir {
            power::store::atomic_write(&dir.join("point.json"), text.as_bytes())?;
        }
        let (study, summary) = (merged.study, merged.summary);
        results.push(PointResult {
            point: kv,
            study,
            summary,
        });
    }
    if let Some(o) = out {
        power::store::atomic_write(&o.join("sweep.csv"), tidy_csv(&results).as_bytes())?;
    }
    Ok(results)
}
