//! A power study from Rust in a few lines: a config in, a self-contained
//! [`Summary`] out (each analysis with its true value, Monte Carlo
//! performance and MC SEs, type-I error and analytic power).
//!
//! ```
//! use crtsim::{Config, Study};
//! let cfg = Config::load(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml"), &[])?;
//! let study = Study::new(cfg)?;
//! let run = study.run(&study.options().reps(100).threads(1))?;
//! let s = run.summary();
//! let sat = s.by_name("lmm_satterthwaite").unwrap();
//! assert!(sat.effect.reject > 0.3 && sat.effect.reject < 0.95);
//! assert!(sat.null.as_ref().unwrap().reject < 0.2);
//! println!("{}", run.table());
//! # Ok::<(), crtsim::Error>(())
//! ```

use crate::config::Config;
use crate::error::Result;
use crate::power::{self, PowerStudy, RunOptions, Summary};

/// A configured power study (the configured effect and, unless built with
/// [`Study::effect_only`], the null alongside on common random numbers).
pub struct Study {
    inner: PowerStudy,
}

impl Study {
    /// The study of a validated config, with the null scenario.
    pub fn new(config: Config) -> Result<Study> {
        Ok(Study {
            inner: PowerStudy::new(config, true)?,
        })
    }

    /// The study without the null scenario (power only, half the work).
    pub fn effect_only(config: Config) -> Result<Study> {
        Ok(Study {
            inner: PowerStudy::new(config, false)?,
        })
    }

    /// The default options for this study: 1000 replicates, the config's
    /// `trial.seed` (else 1), every core.
    pub fn options(&self) -> RunOptions {
        RunOptions::default().seed(self.inner.config.trial.seed.unwrap_or(1))
    }

    /// Run it (or resume it, with [`RunOptions::out`]).
    pub fn run(&self, options: &RunOptions) -> Result<StudyRun<'_>> {
        let summary = power::execute(&self.inner, options, |_, _| {})?;
        Ok(StudyRun {
            study: self,
            summary,
        })
    }

    /// The engine underneath (replicates, analyses, expected powers).
    pub fn power_study(&self) -> &PowerStudy {
        &self.inner
    }
}

/// A finished run of a [`Study`].
pub struct StudyRun<'a> {
    study: &'a Study,
    summary: Summary,
}

impl StudyRun<'_> {
    /// The summary: one row per analysis.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The readable ADEMP table `crtsim power` prints.
    pub fn table(&self) -> String {
        power::summary_table(&self.study.inner, &self.summary)
    }

    /// The JSON `crtsim power --json` prints.
    pub fn json(&self) -> serde_json::Value {
        power::summary_json(&self.study.inner, &self.summary)
    }

    /// The summary, owned.
    pub fn into_summary(self) -> Summary {
        self.summary
    }
}
