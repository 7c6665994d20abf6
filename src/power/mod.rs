//! Monte Carlo power, bias, coverage and type-I error (ADEMP: Morris, White &
//! Crowther 2019).
//!
//! * **Aims**: how often each analysis detects the configured effect (power),
//!   and how often it rejects when there is none (type-I error).
//! * **Data-generating mechanism**: the config's trial (see [`crate::simulate`]);
//!   replicate r uses the random stream (seed, r). The null scenario uses the
//!   same stream with δ = 0 (common random numbers).
//! * **Estimand**: the ITT difference in follow-up QPR, δ·E[g(a)] (= δ while
//!   adherence is not modelled).
//! * **Methods**: the LMM in `[analysis] formula` with Wald z, Satterthwaite,
//!   Kenward–Roger and between-within df, and a two-stage cluster-level t-test.
//! * **Performance measures**: power / type-I error, mean estimate and bias,
//!   empirical and mean model SE, CI coverage, with Monte Carlo SEs; counts of
//!   singular, non-converged and failed fits.
//!
//! Replicates run in batches of [`BATCH`] in parallel (rayon); each batch's
//! records are appended to `replicates.csv` in replicate order, so the file
//! and every summary are byte-identical whatever the thread count, and an
//! interrupted run keeps every finished batch.

mod report;
mod run;
pub mod store;
mod study;
mod summary;
mod tally;

pub use crate::analysis::adherence::{adherence_table, AdherenceAnalyses};
pub use crate::analysis::Outcome;
pub use report::{
    analytic_gap_reason, store_summary, summary_json, summary_table, summary_table_for,
};
pub use run::{execute, merge, worker_threads, Merged, RunOptions, MAX_REPS};
pub use store::{read_manifest, Manifest};
pub use study::{make_outcome, PowerStudy, Workspace};
pub use summary::{summarise, summary_from_tally, AnalysisSummary, Summary};
pub use tally::{performance, Performance, Tally};

use crate::analysis::Analysis;
use crate::config::Config;
use crate::error::{Error, Result};

/// Replicates per batch (the unit of streaming and of resumption).
pub const BATCH: u64 = 256;

/// A replicate's outcome for one scenario and analysis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    pub rep: u64,
    /// 0 = the configured effect, 1 = the null (δ = 0).
    pub scenario: u8,
    pub analysis: Analysis,
    pub outcome: Outcome,
}

/// The run identity of a resolved config: FNV-1a of its canonical JSON
/// (every key, sorted; numbers in shortest round-trip form). Unlike the TOML
/// text it does not depend on a serialiser's layout, so it survives
/// dependency upgrades.
pub fn config_hash(cfg: &Config) -> Result<String> {
    // Where the assumptions come from does not change the run.
    let unsourced;
    let cfg = if cfg.sources.is_empty() {
        cfg
    } else {
        unsourced = Config {
            sources: Default::default(),
            ..cfg.clone()
        };
        &unsourced
    };
    let v = serde_json::to_value(cfg)
        .map_err(|e| Error::Usage(format!("cannot write the config canonically: {e}")))?;
    Ok(store::hash_text(&v.to_string()))
}

/// The identity crtsim 0.1 manifests recorded: FNV-1a of the TOML text
/// (accepted when resuming or merging their runs).
pub fn legacy_config_hash(config_toml: &str) -> String {
    store::hash_text(config_toml)
}

/// Parse `--shard i/n` for the command line (the message of [`parse_shard`]).
pub fn shard_arg(s: &str) -> std::result::Result<(u64, u64), String> {
    parse_shard(s).map_err(|e| e.to_string())
}

/// Parse `i/n` (1 ≤ i ≤ n).
pub fn parse_shard(s: &str) -> Result<(u64, u64)> {
    let err = || {
        Error::Usage(format!(
            "--shard {s}: expected i/n with 1 <= i <= n, e.g. 2/8"
        ))
    };
    let (a, b) = s.split_once('/').ok_or_else(err)?;
    let (i, n): (u64, u64) = (
        a.trim().parse().map_err(|_| err())?,
        b.trim().parse().map_err(|_| err())?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(err());
    }
    Ok((i, n))
}

/// The resolved config as TOML text (recorded with every output).
pub fn config_toml(cfg: &Config) -> Result<String> {
    toml::to_string(cfg).map_err(|e| Error::Usage(format!("cannot write the config as TOML: {e}")))
}
