//! The `crtsim` command line: parse arguments, call the library, print.

use clap::{Parser, Subcommand};
use crtsim::config::Config;
use crtsim::lmm::data::DataFrame;
use crtsim::lmm::inference::DfMethod;
use crtsim::simulate::Simulator;
use crtsim::{lmm, output, report, Error};
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
            let seed = seed.or(cfg.trial.seed).unwrap_or(1);
            let sim = Simulator::new(cfg)?;
            let data = sim.simulate(seed, replicate);
            match out {
                Some(path) => {
                    let f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
                    output::write_csv(&data, sim.design(), BufWriter::new(f))
                        .map_err(|e| Error::io(&path, e))?;
                    eprintln!(
                        "wrote {} service users ({} with follow-up) to {}",
                        data.len(),
                        data.n_followup(),
                        path.display()
                    );
                }
                None => {
                    let stdout = std::io::stdout();
                    output::write_csv(&data, sim.design(), BufWriter::new(stdout.lock()))
                        .map_err(|e| Error::io("<stdout>", e))?;
                }
            }
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
