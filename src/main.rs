//! The `crtsim` command line: parse arguments, call the library, print.

use clap::{Parser, Subcommand};

// A model is built per power replicate; mimalloc makes those small
// allocations ~10% cheaper than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crtsim::analysis::Analysis;
use crtsim::config::Config;
use crtsim::design::Design;
use crtsim::lmm::data::DataFrame;
use crtsim::lmm::formula::Contrasts;
use crtsim::lmm::inference::{DfMethod, DfRequest};
use crtsim::plot::PlotKind;
use crtsim::simulate::Simulator;
use crtsim::{lmm, output, plot, power, report, sweep, Error};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `--family` of `crtsim fit`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FamilyArg {
    Binomial,
    Poisson,
}

impl FamilyArg {
    fn family(self) -> crtsim::glmm::Family {
        match self {
            FamilyArg::Binomial => crtsim::glmm::Family::Binomial,
            FamilyArg::Poisson => crtsim::glmm::Family::Poisson,
        }
    }
}

/// `--gee` of `crtsim fit --family`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum GeeArg {
    Robust,
    Md,
    Kc,
}

impl GeeArg {
    fn variance(self) -> crtsim::glmm::gee::GeeVariance {
        use crtsim::glmm::gee::GeeVariance;
        match self {
            GeeArg::Robust => GeeVariance::Robust,
            GeeArg::Md => GeeVariance::ManclDeRouen,
            GeeArg::Kc => GeeVariance::KauermannCarroll,
        }
    }
}

/// `--link` of `crtsim fit --family`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LinkArg {
    Logit,
    Probit,
    Log,
}

impl LinkArg {
    fn link(self) -> crtsim::glmm::Link {
        match self {
            LinkArg::Logit => crtsim::glmm::Link::Logit,
            LinkArg::Probit => crtsim::glmm::Link::Probit,
            LinkArg::Log => crtsim::glmm::Link::Log,
        }
    }
}

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
    Power(PowerArgs),
    /// Draw a plot as SVG and PNG: power, adherence, adherence-power or design.
    ///
    /// `power`: power curves from a sweep's tidy CSV; `adherence`: team
    /// means by participation from a trial CSV; `adherence-power`: bias and
    /// power of the adherence analyses from a sweep's tidy CSV; `design`:
    /// the stepped-wedge sequence-by-period grid from a config.
    Plot {
        /// What to plot.
        what: PlotKind,
        /// The sweep CSV (power, adherence-power), the trial CSV
        /// (adherence) or the stepped-wedge config (design).
        #[arg(value_name = "CSV_OR_CONFIG")]
        input: PathBuf,
        /// Title (default: from the plot kind and the swept key).
        #[arg(long)]
        title: Option<String>,
        /// x-axis label (default: the swept key in words).
        #[arg(long)]
        xlabel: Option<String>,
        /// y-axis label.
        #[arg(long)]
        ylabel: Option<String>,
        /// power: target-power lines, comma-separated (default 0.8,0.9; `none` for none).
        #[arg(long, value_delimiter = ',', value_name = "P")]
        target: Vec<String>,
        /// power: only these analyses, comma-separated (default: all, with
        /// analyses whose curves agree within Monte Carlo error as one line).
        #[arg(long, value_delimiter = ',', value_name = "ANALYSIS")]
        methods: Vec<Analysis>,
        /// adherence: team means of follow-up scores adjusted for baseline.
        #[arg(long)]
        baseline_adjusted: bool,
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
        /// Degrees of freedom for the t tests and Wald intervals:
        /// satterthwaite (the default), kenward-roger, between-within,
        /// residual or z; only that method is computed. `all` computes
        /// every one (all appear in --json; the summary shows
        /// Satterthwaite's). (With --family: between-within adds t tests on
        /// those df to the GLMM's Wald z, as Li & Redden 2015 recommend
        /// with few clusters.)
        #[arg(long)]
        df: Option<DfRequest>,
        /// Confidence level of the fixed effects' Wald intervals (0.95 unless
        /// given; linear mixed models).
        #[arg(long)]
        level: Option<f64>,
        /// Likelihood-ratio test (ML) against this nested null formula.
        #[arg(long, value_name = "NULL_FORMULA")]
        lrt: Option<String>,
        /// Print JSON (the schema of the lme4 reference fits) instead of a summary.
        #[arg(long)]
        json: bool,
        /// F tests of the fixed-effect terms (lmerTest's Type III table with
        /// Satterthwaite's df); linear mixed models.
        #[arg(long)]
        anova: bool,
        /// Profile-likelihood intervals (at --level) for every parameter:
        /// the random effects' SDs and correlations, sigma and the fixed
        /// effects, as lme4's confint(method = "profile"); linear mixed
        /// models.
        #[arg(long)]
        profile: bool,
        /// Coding of categorical predictors: treatment (R's default; the
        /// first level is the reference) or sum (sum-to-zero, R's
        /// contr.sum); linear mixed models.
        #[arg(long)]
        contrasts: Option<Contrasts>,
        /// A generalised linear mixed model (as lme4's glmer) for a binary
        /// (0/1) or count response: binomial or poisson.
        #[arg(long, value_enum)]
        family: Option<FamilyArg>,
        /// Link: logit or probit (binomial), log (poisson); default the
        /// family's canonical link.
        #[arg(long, value_enum)]
        link: Option<LinkArg>,
        /// Quadrature points for --family: 1 = Laplace; more needs a single
        /// scalar random effect, as in lme4.
        #[arg(long, default_value_t = 1)]
        nagq: usize,
        /// With --family: a GEE (exchangeable working correlation, clusters
        /// from the formula's (1|cluster)) instead of the GLMM, tested with
        /// this SE on clusters - p df: robust, md (Mancl-DeRouen) or kc
        /// (Kauermann-Carroll).
        #[arg(long, value_enum)]
        gee: Option<GeeArg>,
    },
    /// Write one self-contained HTML report (design, assumptions, results
    /// with Monte Carlo SEs, power curves or sample size, a protocol
    /// paragraph): from a config (runs the study), or from a run or sweep
    /// directory written by `power --out` (reruns nothing).
    Report(ReportArgs),
    /// Check a config and print the resolved design.
    Validate {
        /// The trial config (TOML).
        config: PathBuf,
        /// Override a config key (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

/// What to run: replicates, seed, threads, overrides, a sweep or a
/// sample-size search (shared by `power` and `report`).
#[derive(clap::Args)]
struct RunArgs {
    /// Replicates (default 1000).
    #[arg(long, default_value_t = 1000)]
    reps: u64,
    /// Random seed (default: trial.seed in the config, else 1).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Override a config key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Vary a config key over values, e.g. clusters.teams=20,30,40
    /// (repeatable; the grid is every combination).
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
    #[arg(long, default_value = "4:400", value_parser = sweep::parse_solve_range)]
    solve_range: (i64, i64),
}

/// `crtsim power`'s options (one run, a sweep, or a sample-size search).
#[derive(clap::Args)]
struct PowerArgs {
    /// The trial config (TOML).
    config: PathBuf,
    #[command(flatten)]
    run: RunArgs,
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
    #[arg(long, value_name = "I/N", value_parser = power::shard_arg)]
    shard: Option<(u64, u64)>,
    /// Print JSON instead of the table (a sweep prints a tidy CSV otherwise).
    #[arg(long)]
    json: bool,
}

/// `crtsim report`'s options.
#[derive(clap::Args)]
struct ReportArgs {
    /// A trial config (TOML), or a run or sweep directory from `power --out`.
    input: PathBuf,
    /// The HTML file to write (default: the input's name with `_report.html`,
    /// or `report.html` inside a run directory).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
    /// Do not run the null scenario (no type-I error).
    #[arg(long)]
    no_null: bool,
    /// Target-power lines on the figures (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.8,0.9",
        value_name = "P"
    )]
    target: Vec<f64>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A value our own parser refused: its one line (clap's first), not
        // clap's usage hint after it.
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("error: invalid value");
            // The parser's words, in a user's.
            let line = line
                .replace("invalid digit found in string", "expected a whole number")
                .replace("invalid float literal", "expected a number")
                .replace(
                    "number too large to fit in target type",
                    "the number is too large",
                )
                .replace(
                    "cannot parse integer from empty string",
                    "expected a whole number",
                );
            eprintln!("{line}");
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
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
        } => simulate(&config, seed, replicate, out.as_deref(), &set),
        Command::Power(p) => match (p.run.solve.clone(), p.run.target_power) {
            (Some(key), Some(target)) => {
                let (analysis, range) = (p.run.solve_analysis, p.run.solve_range);
                power_solve(p, &key, target, analysis, range)
            }
            _ => power(p),
        },
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
            emit(&if json {
                pretty(&crtsim::analysis::adherence::results_json(&res))
            } else {
                power::adherence_table(&crtsim::analysis::adherence::TABLE_NAMES, &res, alpha)
            })
        }
        Command::Plot {
            what,
            input,
            out,
            title,
            xlabel,
            ylabel,
            target,
            methods,
            baseline_adjusted,
        } => {
            let targets = plot::parse_targets(&target)?;
            let opts = plot::PlotOptions {
                title,
                xlabel,
                ylabel,
                targets,
                methods: (!methods.is_empty()).then_some(methods),
                baseline_adjusted,
            };
            for w in plot::draw_kind_with(what, &input, out.as_deref(), &opts)? {
                eprintln!("wrote {}", w.display());
            }
            Ok(())
        }
        Command::Merge { dirs, out, json } => {
            if !dirs[0].join("run.json").exists() {
                // A sharded sweep: merge every grid point, print the tidy CSV.
                let results = sweep::merge_sweep(&dirs, out.as_deref())?;
                return emit(&if json {
                    sweep::sweep_json(&results)
                } else {
                    sweep::tidy_csv(&results)
                });
            }
            let merged = power::merge(&dirs, out.as_deref())?;
            print_summary(&merged.study, &merged.summary, json)
        }
        Command::Fit {
            data,
            formula,
            family: Some(family),
            link,
            nagq,
            gee,
            json,
            ml,
            lrt,
            df,
            level,
            anova,
            profile,
            contrasts,
            ..
        } => {
            if profile {
                return Err(Error::Usage(
                    "--profile is for linear mixed models so far; a GLMM (--family) reports Wald z tests: drop --profile".into(),
                ));
            }
            if contrasts.is_some() {
                return Err(Error::Usage(
                    "--contrasts is for linear mixed models so far; a GLMM (--family) uses treatment contrasts: drop --contrasts".into(),
                ));
            }
            if anova {
                return Err(Error::Usage(
                    "--anova is for linear mixed models; a GLMM (--family) reports Wald z tests of each coefficient".into(),
                ));
            }
            if ml || lrt.is_some() {
                return Err(Error::Usage(
                    "--family fits by maximum likelihood (Laplace or quadrature): drop --ml and --lrt".into(),
                ));
            }
            if level.is_some() {
                return Err(Error::Usage(
                    "--level sets the Wald intervals of a linear mixed model's summary; a GLMM (--family) reports Wald z tests without intervals: drop --level".into(),
                ));
            }
            let between_within = match df {
                None => false,
                Some(DfRequest::One(DfMethod::BetweenWithin)) => true,
                Some(d) => {
                    let name = match d {
                        DfRequest::One(m) => m.name(),
                        DfRequest::All => "all",
                    };
                    return Err(Error::Usage(format!(
                        "--df {name} is for linear mixed models; a GLMM reports Wald z, and --df between-within adds t tests on between-within df",
                    )));
                }
            };
            let frame = DataFrame::read_csv(&data)?;
            let opts = crtsim::glmm::GlmmOptions {
                family: family.family(),
                link: link.map(LinkArg::link),
                nagq,
                between_within,
                gee: gee.map(GeeArg::variance),
                json,
            };
            emit(&crtsim::glmm::analyse(&frame, &formula, &opts)?)
        }
        Command::Fit {
            data,
            formula,
            ml,
            df,
            lrt,
            json,
            level,
            anova,
            profile,
            contrasts,
            ..
        } => {
            let df = df.unwrap_or(DfRequest::One(DfMethod::Satterthwaite));
            if anova && df.shown() != DfMethod::Satterthwaite {
                return Err(Error::Usage(
                    "--anova uses Satterthwaite's denominator df (Kenward-Roger's F is not implemented yet): drop --df or use --df satterthwaite".into(),
                ));
            }
            if df == DfRequest::One(DfMethod::KenwardRoger) && ml {
                return Err(Error::Usage(
                    "--df kenward-roger needs a REML fit: drop --ml".into(),
                ));
            }
            let level = level.unwrap_or(0.95);
            if !(level > 0.0 && level < 1.0) {
                return Err(Error::Usage(format!(
                    "--level {level}: the confidence level must be between 0 and 1 (exclusive), e.g. 0.95"
                )));
            }
            let frame = DataFrame::read_csv(&data)?;
            let a = lmm::analyse(
                &frame,
                &formula,
                ml,
                lrt.as_deref(),
                df.tests(),
                contrasts.unwrap_or_default(),
            )?;
            let lrt_ref = a.lrt.as_ref().map(|(f, l)| (f.as_str(), l));
            let ci = lmm::report::Intervals {
                method: df.shown(),
                level,
            };
            let table = anova.then(|| lmm::anova::type3(&a.model, &a.fit));
            let profiled = if profile {
                Some(lmm::profile::intervals(&a.model, &a.fit, level)?)
            } else {
                None
            };
            emit(&if json {
                let mut v = lmm::report::to_json(&a.model, &a.fit, &a.tests, lrt_ref, ci);
                if let Some(t) = &table {
                    v["anova"] = lmm::report::anova_json(t);
                }
                if let Some(p) = &profiled {
                    v["profile"] = lmm::report::profile_json(p, level);
                }
                serde_json::to_string_pretty(&v).map_err(|e| Error::Usage(e.to_string()))? + "\n"
            } else {
                let mut s = lmm::report::summary(&a.model, &a.fit, &a.tests, ci, lrt_ref);
                if let Some(t) = &table {
                    s.push_str(&lmm::report::anova_table(t));
                }
                if let Some(p) = &profiled {
                    s.push_str(&lmm::report::profile_table(p, level));
                }
                s
            })
        }
        Command::Report(r) => report_cmd(r),
        Command::Validate { config, set } => {
            let sim = Simulator::new(Config::load(&config, &set)?)?;
            emit(&report::design_report(sim.config(), sim.design()))
        }
    }
}

/// `crtsim simulate`.
fn simulate(
    config: &Path,
    seed: Option<u64>,
    replicate: u64,
    out: Option<&Path>,
    set: &[String],
) -> Result<(), Error> {
    let cfg = Config::load(config, set)?;
    print_warnings(&cfg)?;
    let seed = seed.or(cfg.trial.seed).unwrap_or(1);
    let sim = Simulator::new(cfg)?;
    let data = sim.simulate(seed, replicate);
    match out {
        Some(path) => {
            power::store::atomic_write_with(path, |w| output::write_trial(&sim, &data, w))?;
            eprintln!(
                "wrote {} service users ({} with follow-up) to {}",
                data.len(),
                data.n_followup(),
                path.display()
            );
            Ok(())
        }
        None => output::write_trial(&sim, &data, BufWriter::new(std::io::stdout().lock()))
            .map_err(|e| Error::io("<stdout>", e)),
    }
}

impl PowerArgs {
    /// The config (with the null's override when `--null`), its text, and
    /// the run options.
    fn load(&mut self) -> Result<(Config, String, power::RunOptions), Error> {
        if self.null {
            // Every effect key at its null (difference 0, no odds or rate ratio).
            self.run.set.push("effect={}".into());
        }
        let cfg = Config::load(&self.config, &self.run.set)?;
        print_warnings(&cfg)?;
        let text = std::fs::read_to_string(&self.config).map_err(|e| Error::io(&self.config, e))?;
        let (threads, note) = power::worker_threads(self.run.threads)?;
        if let Some(n) = note {
            eprintln!("note: {n}");
        }
        let opts = power::RunOptions {
            reps: self.run.reps,
            seed: self.run.seed.or(cfg.trial.seed).unwrap_or(1),
            threads,
            shard: self.shard.unwrap_or((1, 1)),
            out: self.out.clone(),
            resume: self.resume,
        };
        opts.validate()?;
        Ok((cfg, text, opts))
    }

    /// Whether the null scenario runs alongside the effect.
    fn with_null(&self) -> bool {
        !(self.no_null || self.null)
    }
}

/// `crtsim power` without --solve: one run, or a sweep over a grid.
fn power(mut p: PowerArgs) -> Result<(), Error> {
    let (cfg, text, opts) = p.load()?;
    let mut axes = sweep::axes_from_config(&cfg)?;
    for a in &p.run.sweep {
        let ax = sweep::parse_axis(a)?;
        axes.retain(|x| x.key != ax.key);
        axes.push(ax);
    }
    if !axes.is_empty() {
        let mut bar = Progress::new("grid points");
        let results = sweep::run_grid(&text, &p.run.set, &axes, p.with_null(), &opts, |k, n| {
            bar.update(k as u64, n as u64)
        })?;
        bar.finish();
        let csv_text = sweep::tidy_csv(&results);
        if let Some(dir) = &p.out {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            power::store::atomic_write(&dir.join("sweep.csv"), csv_text.as_bytes())?;
        }
        return emit(&if p.json {
            sweep::sweep_json(&results)
        } else {
            csv_text
        });
    }
    let study = power::PowerStudy::new(cfg, p.with_null())?;
    let mut bar = Progress::new("replicates").resuming(opts.out.as_deref(), opts.resume);
    let summary = power::execute(&study, &opts, |done, total| bar.update(done, total))?;
    bar.finish();
    if let Some(dir) = &p.out {
        power::store_summary(&study, &summary, dir)?;
    }
    if opts.shard.1 > 1 && !p.json {
        return emit(&power::summary_table_for(&study, &summary, opts.shard));
    }
    print_summary(&study, &summary, p.json)
}

/// `crtsim power --target-power P --solve KEY`.
fn power_solve(
    mut p: PowerArgs,
    key: &str,
    target: f64,
    analysis: Analysis,
    range: (i64, i64),
) -> Result<(), Error> {
    let (_, text, opts) = p.load()?;
    let sol = sweep::solve(
        &text,
        &p.run.set,
        key,
        target,
        analysis,
        range,
        &opts,
        |v, pw| {
            eprintln!("  {key} = {v}: Monte Carlo power {pw:.3}");
        },
    )?;
    emit(&if p.json {
        pretty(&sol.to_json(p.run.reps))
    } else {
        sweep::solution_text(&sol, p.run.reps)
    })
}

/// `crtsim report`.
fn report_cmd(r: ReportArgs) -> Result<(), Error> {
    use crtsim::html::build;
    build::check_targets(&r.target)?;
    if let Some(out) = r.out.as_deref().filter(|o| o.is_dir()) {
        return Err(Error::Usage(format!(
            "--out {}: is a directory; give the HTML file to write, e.g. {}",
            out.display(),
            out.join("report.html").display()
        )));
    }
    if let Some(dir) = r.out.as_deref().and_then(Path::parent) {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--out {}: the directory {} does not exist",
                r.out.as_deref().unwrap_or(dir).display(),
                dir.display()
            )));
        }
    }
    let command = std::env::args()
        .map(|a| shell_word(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let (report, out) = if r.input.is_dir() {
        let out = r.out.unwrap_or_else(|| r.input.join("report.html"));
        (build::from_dir(&r.input, &command, &r.target)?, out)
    } else {
        let cfg = Config::load(&r.input, &r.run.set)?;
        print_warnings(&cfg)?;
        let (threads, note) = power::worker_threads(r.run.threads)?;
        if let Some(n) = note {
            eprintln!("note: {n}");
        }
        let req = build::Request {
            sets: r.run.set.clone(),
            sweep: r.run.sweep.clone(),
            solve: r
                .run
                .solve
                .clone()
                .zip(r.run.target_power)
                .map(|(key, target)| build::SolveRequest {
                    key,
                    target,
                    analysis: r.run.solve_analysis,
                    range: r.run.solve_range,
                }),
            options: power::RunOptions {
                reps: r.run.reps,
                seed: r.run.seed.or(cfg.trial.seed).unwrap_or(1),
                threads,
                ..Default::default()
            },
            with_null: !r.no_null,
            targets: r.target.clone(),
            command,
        };
        let mut bar = Progress::new("done");
        let report = build::from_config(&r.input, &req, |done, total| bar.update(done, total))?;
        bar.finish();
        let stem = r
            .input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        let out = r.out.unwrap_or_else(|| {
            PathBuf::from(format!(
                "{}_report.html",
                stem.unwrap_or_else(|| "crtsim".into())
            ))
        });
        (report, out)
    };
    power::store::atomic_write(&out, report.render().as_bytes())?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// An argument as a shell would need it written.
fn shell_word(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// Allowed-but-suspicious design choices, on stderr.
fn print_warnings(cfg: &Config) -> Result<(), Error> {
    for w in Design::from_config(cfg)?.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(())
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// Write `text` to standard output.
fn emit(text: &str) -> Result<(), Error> {
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("<stdout>", e))
}

/// Progress on stderr: a bar on a terminal; off a terminal (a Slurm log,
/// a pipe) one plain line every few seconds (`CRTSIM_PROGRESS_SECS`,
/// default 10), so a long run shows life.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    unit: &'static str,
    every: std::time::Duration,
    start: std::time::Instant,
    last: std::time::Instant,
    /// With --resume: the run directory, told once what was found.
    resume: Option<PathBuf>,
}

impl Progress {
    fn new(unit: &'static str) -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
                "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit}, ETA {{eta}}"
            )) {
                bar.set_style(style);
            }
            bar
        });
        let secs = std::env::var("CRTSIM_PROGRESS_SECS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(10.0);
        let now = std::time::Instant::now();
        Progress {
            bar,
            unit,
            every: std::time::Duration::from_secs_f64(secs.min(1e6)),
            start: now,
            last: now,
            resume: None,
        }
    }

    fn resuming(mut self, dir: Option<&Path>, resume: bool) -> Progress {
        self.resume = dir.filter(|_| resume).map(Path::to_path_buf);
        self
    }

    fn update(&mut self, done: u64, total: u64) {
        if let Some(dir) = self.resume.take() {
            eprintln!(
                "{}",
                if done == 0 {
                    format!(
                        "resume: {} holds no finished replicates yet; running all {total}",
                        dir.display()
                    )
                } else if done >= total {
                    format!(
                        "resume: {} already holds all {total} replicates; nothing to add (raise --reps to extend the run)",
                        dir.display()
                    )
                } else {
                    format!(
                        "resume: {} holds {done} finished replicates of {total}; running the remaining {}",
                        dir.display(),
                        total - done
                    )
                }
            );
        }
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(done);
            return;
        }
        if done >= total || self.last.elapsed() < self.every {
            return;
        }
        self.last = std::time::Instant::now();
        let secs = self.start.elapsed().as_secs_f64();
        let eta = if done > 0 {
            format!(
                ", about {:.0} s to go",
                secs / done as f64 * (total - done) as f64
            )
        } else {
            String::new()
        };
        eprintln!(
            "progress: {done} of {total} {} ({:.1}%), {secs:.0} s elapsed{eta}",
            self.unit,
            100.0 * done as f64 / total.max(1) as f64
        );
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn print_summary(
    study: &power::PowerStudy,
    summary: &power::Summary,
    json: bool,
) -> Result<(), Error> {
    emit(&if json {
        pretty(&power::summary_json(study, summary))
    } else {
        power::summary_table(study, summary)
    })
}
