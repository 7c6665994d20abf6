//! The `crtsim` command line: parse arguments, call the library, print.

use clap::{Parser, Subcommand};

// A model is built per power replicate; mimalloc makes those small
// allocations ~10% cheaper than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crtsim::analysis::Analysis;
use crtsim::config::Config;
use crtsim::lmm::data::DataFrame;
use crtsim::lmm::inference::DfMethod;
use crtsim::simulate::Simulator;
use crtsim::{lmm, output, plot, power, report, sweep, Error};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "crtsim",
    version,
    about = "Simulate cluster-randomised trials and analyse them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate one trial from a config and write one CSV row per service user.
    Simulate {
        /// The trial config (TOML).
        config: PathBuf,
        /// Random seed (default: trial.seed in the config, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Replicate index within the seed's run (default 0).
        #[arg(long, default_value_t = 0)]
        replicate: u64,
        /// Output CSV (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override a config key, e.g. --set clusters.teams=40 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Monte Carlo power, bias, coverage and type-I error of the configured analyses.
    Power {
        /// The trial config (TOML).
        config: PathBuf,
        /// Replicates (default 1000).
        #[arg(long, default_value_t = 1000)]
        reps: u64,
        /// Random seed (default: trial.seed in the config, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Worker threads (default: all cores). Results do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// Only the null: simulate with effect 0 and report the type-I error.
        #[arg(long, conflicts_with = "no_null")]
        null: bool,
        /// Do not run the null scenario alongside.
        #[arg(long)]
        no_null: bool,
        /// Directory for the streamed per-replicate results (replicates.csv),
        /// the run manifest and the summary.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue (or extend, with a larger --reps) the run in --out.
        #[arg(long, requires = "out")]
        resume: bool,
        /// Run only shard i of n (replicates r with r mod n = i - 1).
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Override a config key (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Vary a config key over values, e.g. clusters.teams=20,30,40
        /// (repeatable; the grid is every combination). Prints a tidy CSV.
        #[arg(long = "sweep", value_name = "KEY=V1,V2,...")]
        sweep: Vec<String>,
        /// With --solve: the power to reach.
        #[arg(long, requires = "solve")]
        target_power: Option<f64>,
        /// Find the smallest integer value of this key (e.g. clusters.teams)
        /// reaching --target-power: analytic bracket, Monte Carlo confirmation.
        #[arg(long, value_name = "KEY", requires = "target_power")]
        solve: Option<String>,
        /// With --solve: the analysis whose power counts.
        #[arg(long, default_value = "lmm_satterthwaite")]
        solve_analysis: Analysis,
        /// With --solve: the search range LO:HI.
        #[arg(long, default_value = "4:400")]
        solve_range: String,
    },
    /// Draw a plot as SVG and PNG: `power` (power curves from a sweep's tidy
    /// CSV), `adherence` (team QPR by participation from a trial CSV), or
    /// `adherence-power` (bias and power of the adherence analyses from a sweep).
    Plot {
        /// What to plot.
        #[arg(value_parser = ["power", "adherence", "adherence-power", "design"])]
        what: String,
        /// The input CSV (for `design`: the stepped-wedge config).
        results: PathBuf,
        /// Output path without extension (writes PREFIX.svg and PREFIX.png).
        /// Default: the input's path without its extension, plus `_` and
        /// the plot kind (sweep.csv → sweep_power.svg, sweep_power.png).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the ITT and adherence analyses (high vs low participation,
    /// dose-response, CACE/IV) on one trial CSV with a `team_adherence` column.
    Adherence {
        /// The data (CSV with a header; needs the cluster column (`team` or `cluster`) and `team_adherence`).
        data: PathBuf,
        /// The ITT model, e.g. "qpr ~ arm + baseline + site + (1|team)".
        #[arg(long)]
        formula: String,
        /// The treatment column in the formula.
        #[arg(long, default_value = "arm")]
        term: String,
        /// High/low participation cut (default: median of treated teams).
        #[arg(long)]
        cut: Option<f64>,
        /// Significance level for the CIs.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Merge the shard directories of one power run and print its summary.
    Merge {
        /// Run directories written by `power --shard i/n --out DIR`.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Write the merged run (as a single run would have) to this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Fit a linear mixed model (lme4 formula syntax) to a CSV file.
    Fit {
        /// The data (CSV with a header row; NA or empty = missing).
        data: PathBuf,
        /// Model formula, e.g. "qpr ~ arm + baseline + site + (1|team)".
        #[arg(long)]
        formula: String,
        /// Fit by maximum likelihood instead of REML.
        #[arg(long)]
        ml: bool,
        /// Degrees of freedom for the t tests in the summary:
        /// satterthwaite, kenward-roger, between-within or residual.
        #[arg(long, default_value = "satterthwaite")]
        df: String,
        /// Likelihood-ratio test (ML) against this nested null formula.
        #[arg(long, value_name = "NULL_FORMULA")]
        lrt: Option<String>,
        /// Print JSON (the schema of the lme4 reference fits) instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Check a config and print the resolved design.
    Validate {
        /// The trial config (TOML).
        config: PathBuf,
        /// Override a config key (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Allowed-but-suspicious design choices, on stderr.
fn print_warnings(cfg: &Config) {
    for w in cfg.warnings() {
        eprintln!("warning: {w}");
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Simulate {
            config,
            seed,
            replicate,
            out,
            set,
        } => {
            let cfg = Config::load(&config, &set)?;
            print_warnings(&cfg);
            let seed = seed.or(cfg.trial.seed).unwrap_or(1);
            let sim = Simulator::new(cfg)?;
            let data = sim.simulate(seed, replicate);
            match out {
                Some(path) => {
                    power::store::atomic_write_with(&path, |w| {
                        output::write_trial(&sim, &data, w)
                    })?;
                    eprintln!(
                        "wrote {} service users ({} with follow-up) to {}",
                        data.len(),
                        data.n_followup(),
                        path.display()
                    );
                }
                None => output::write_trial(&sim, &data, BufWriter::new(std::io::stdout().lock()))
                    .map_err(|e| Error::io("<stdout>", e))?,
            }
        }
        Command::Power {
            config,
            reps,
            seed,
            threads,
            null,
            no_null,
            out,
            resume,
            shard,
            json,
            mut set,
            sweep: sweep_args,
            target_power,
            solve,
            solve_analysis,
            solve_range,
        } => {
            if null {
                set.push("effect.difference=0.0".into());
            }
            let cfg = Config::load(&config, &set)?;
            print_warnings(&cfg);
            let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
            let seed = seed.or(cfg.trial.seed).unwrap_or(1);
            let opts = power::RunOptions {
                reps,
                seed,
                threads: worker_threads(threads)?,
                shard: match &shard {
                    Some(s) => power::parse_shard(s)?,
                    None => (1, 1),
                },
                out: out.clone(),
                resume,
            };
            opts.validate()?;
            if let (Some(key), Some(target)) = (&solve, target_power) {
                let (lo, hi) = solve_range
                    .split_once(':')
                    .and_then(|(a, b)| {
                        Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?))
                    })
                    .filter(|(a, b)| a <= b)
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "--solve-range {solve_range}: expected LO:HI, e.g. 4:400"
                        ))
                    })?;
                let sol = sweep::solve(
                    &text,
                    &set,
                    key,
                    target,
                    solve_analysis,
                    (lo, hi),
                    &opts,
                    |v, p| {
                        eprintln!("  {key} = {v}: Monte Carlo power {p:.3}");
                    },
                )?;
                let txt = if json {
                    serde_json::to_string_pretty(&sol.to_json(reps)).unwrap_or_default() + "\n"
                } else {
                    sweep::solution_text(&sol, reps)
                };
                std::io::stdout()
                    .lock()
                    .write_all(txt.as_bytes())
                    .map_err(|e| Error::io("<stdout>", e))?;
                return Ok(());
            }
            let mut axes = sweep::axes_from_config(&cfg)?;
            for a in &sweep_args {
                let ax = sweep::parse_axis(a)?;
                axes.retain(|x| x.key != ax.key);
                axes.push(ax);
            }
            if !axes.is_empty() {
                let bar = progress_bar();
                let results =
                    sweep::run_grid(&text, &set, &axes, !(no_null || null), &opts, |k, n| {
                        if let Some(b) = &bar {
                            b.set_length(n as u64);
                            b.set_position(k as u64);
                        }
                    })?;
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                let csv_text = sweep::tidy_csv(&results);
                if let Some(dir) = &out {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                    power::store::atomic_write(&dir.join("sweep.csv"), csv_text.as_bytes())?;
                }
                let text_out = if json { sweep_json(&results) } else { csv_text };
                std::io::stdout()
                    .lock()
                    .write_all(text_out.as_bytes())
                    .map_err(|e| Error::io("<stdout>", e))?;
                return Ok(());
            }
            let study = power::PowerStudy::new(cfg, !(no_null || null))?;
            let bar = progress_bar();
            let summary = power::execute(&study, &opts, |done, total| {
                if let Some(b) = &bar {
                    b.set_length(total);
                    b.set_position(done);
                }
            })?;
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            if let Some(dir) = &out {
                power::store_summary(&study, &summary, dir)?;
            }
            print_summary(&study, &summary, json)?;
        }
        Command::Adherence {
            data,
            formula,
            term,
            cut,
            alpha,
            json,
        } => {
            let df = DataFrame::read_csv(&data)?;
            let aa = power::AdherenceAnalyses::new(&formula, &term, cut, alpha)?;
            for col in [aa.cluster(), "team_adherence", term.as_str()] {
                df.column(col)?;
            }
            let res = aa.run(&df);
            let text = if json {
                let v: Vec<serde_json::Value> = crtsim::analysis::adherence::TABLE_NAMES
                    .iter()
                    .zip(&res)
                    .map(|(n, o)| {
                        let f = |x: f64| if x.is_finite() { serde_json::json!(x) } else { serde_json::Value::Null };
                        serde_json::json!({"analysis": n, "estimate": f(o.estimate), "se": f(o.se), "df": f(o.df),
                            "p": f(o.p), "ci_lo": f(o.lo), "ci_hi": f(o.hi), "failed": o.failed, "singular": o.singular})
                    })
                    .collect();
                serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
            } else {
                power::adherence_table(&crtsim::analysis::adherence::TABLE_NAMES, &res, alpha)
            };
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|e| Error::io("<stdout>", e))?;
        }
        Command::Plot { what, results, out } => {
            let out = out.unwrap_or_else(|| {
                let stem = results.with_extension("");
                let name = stem
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                stem.with_file_name(format!("{name}_{}", what.replace('-', "_")))
            });
            let written = match what.as_str() {
                "adherence" => plot::adherence_scatter(&results, &out)?,
                "adherence-power" => plot::adherence_power(&results, &out)?,
                "design" => plot::design_diagram(&Config::load(&results, &[])?, &out)?,
                _ => plot::power_curves(&results, &out)?,
            };
            for w in written {
                eprintln!("wrote {}", w.display());
            }
        }
        Command::Merge { dirs, out, json } => {
            if !dirs[0].join("run.json").exists() {
                // A sharded sweep: merge every grid point, print the tidy CSV.
                let results = sweep::merge_sweep(&dirs, out.as_deref())?;
                let text = if json {
                    sweep_json(&results)
                } else {
                    sweep::tidy_csv(&results)
                };
                std::io::stdout()
                    .lock()
                    .write_all(text.as_bytes())
                    .map_err(|e| Error::io("<stdout>", e))?;
                return Ok(());
            }
            let merged = power::merge(&dirs, out.as_deref())?;
            print_summary(&merged.study, &merged.summary, json)?;
        }
        Command::Fit {
            data,
            formula,
            ml,
            df,
            lrt,
            json,
        } => {
            let method: DfMethod = df.parse().map_err(Error::Usage)?;
            if method == DfMethod::KenwardRoger && ml {
                return Err(Error::Usage(
                    "--df kenward-roger needs a REML fit: drop --ml".into(),
                ));
            }
            let frame = DataFrame::read_csv(&data)?;
            let a = lmm::analyse(&frame, &formula, ml, lrt.as_deref())?;
            let lrt_ref = a.lrt.as_ref().map(|(f, l)| (f.as_str(), l));
            let text = if json {
                let v = lmm::report::to_json(&a.model, &a.fit, &a.tests, lrt_ref);
                serde_json::to_string_pretty(&v).map_err(|e| Error::Usage(e.to_string()))? + "\n"
            } else {
                lmm::report::summary(&a.model, &a.fit, &a.tests, method, lrt_ref)
            };
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|e| Error::io("<stdout>", e))?;
        }
        Command::Validate { config, set } => {
            let cfg = Config::load(&config, &set)?;
            let sim = Simulator::new(cfg)?;
            let text = report::design_report(sim.config(), sim.design());
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .map_err(|e| Error::io("<stdout>", e))?;
        }
    }
    Ok(())
}

/// Worker threads: as asked, but at most the available cores (more would
/// only add overhead; results do not depend on the count).
fn worker_threads(asked: Option<usize>) -> Result<usize, Error> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    match asked {
        None => Ok(cores),
        Some(0) => Err(Error::Usage(
            "--threads 0: must be at least 1 (omit it to use every core)".into(),
        )),
        Some(t) if t > cores => {
            eprintln!("note: --threads {t}: this machine has {cores} cores; using {cores}");
            Ok(cores)
        }
        Some(t) => Ok(t),
    }
}

/// A sweep's summaries as a JSON array, each with its grid point.
fn sweep_json(results: &[sweep::PointResult]) -> String {
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

fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} replicates, ETA {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

fn print_summary(
    study: &power::PowerStudy,
    summary: &power::Summary,
    json: bool,
) -> Result<(), Error> {
    let text = if json {
        serde_json::to_string_pretty(&power::summary_json(study, summary)).unwrap_or_default()
            + "\n"
    } else {
        power::summary_table(study, summary)
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("<stdout>", e))
}
