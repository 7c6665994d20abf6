//! # crtsim
//!
//! Simulate cluster-randomised trials and (in later modules) fit the
//! multilevel models used to analyse them.
//!
//! The pipeline, one module per stage:
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | the TOML trial configuration, `--set` overrides, validation |
//! | [`design`] | sites, teams, randomisation, team sizes and staff |
//! | [`simulate`] | the data-generating process; one trial per call |
//! | [`measure`] | how latent scores become reported QPR scores |
//! | [`rng`] | per-replicate random streams derived from (seed, replicate) |
//! | [`output`] | CSV writer for simulated trials |
//! | [`adherence`] | team participation, staff adherence, dose–response and their estimands |
//! | [`analysis`] | the analyses as types: LMM df rules, cluster-level t, adherence analyses |
//! | [`analytic`] | closed-form design effects, standard errors and power |
//! | [`study`] | the library entry point: `Study::new(config)?.run(&options)?.summary()` |
//! | [`power`] | Monte Carlo power studies: run, stream, resume, shard, merge |
//! | [`stats`] | normal and t quantiles and tails (guarded), power helpers |
//! | [`variance`] | variance components: reported scale → latent scale → a model's true θ |
//! | [`sweep`] | grids over config keys, tidy CSV, sample-size search |
//! | [`plot`] | power curves (SVG, PNG) |
//! | [`lmm`] | linear mixed models: formula, frame, PLS, optimiser, inference |
//! | [`report`] | `crtsim validate`'s design report |
//! | [`html`] | `crtsim report`: one self-contained HTML page (inline CSS and SVG) |
//! | [`labels`] | human words for config keys, designs and measures (one map for plots, report, tables) |
//!
//! ```
//! use crtsim::{config::Config, simulate::Simulator};
//! let cfg = Config::from_toml_str(r#"
//!     [trial]
//!     name = "demo"
//!     [clusters]
//!     teams = 10
//!     treated = 5
//!     size = { dist = "fixed", mean = 8 }
//!     [outcome]
//!     mean = 40.0
//!     sd = 10.0
//!     icc = 0.05
//!     cac = 0.8
//!     iac = 0.5
//! "#, &[]).unwrap();
//! let sim = Simulator::new(cfg).unwrap();
//! let trial = sim.simulate(42, 0);
//! assert_eq!(trial.len(), 80);
//! ```

// Numeric kernels index several arrays in step, and `!(x > 0.0)` is used on
// purpose so that NaN fails a positivity check.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

pub mod adherence;
pub mod analysis;
pub mod analytic;
pub mod config;
pub mod design;
pub mod discrete;
pub mod error;
pub mod glmm;
pub mod html;
pub mod labels;
pub mod lmm;
pub mod measure;
pub mod output;
pub mod plot;
pub mod power;
pub mod report;
pub mod rng;
pub mod simulate;
pub mod stats;
pub mod study;
pub mod sweep;
pub mod variance;

pub use analysis::Analysis;
pub use config::Config;
pub use error::{Error, Result};
pub use power::{RunOptions, Summary};
pub use study::{Study, StudyRun};
