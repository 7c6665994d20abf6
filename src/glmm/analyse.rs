//! `crtsim fit --family`: one call from a data frame and options to the
//! fitted GLMM or GEE, rendered as a glmer-style summary or JSON (the
//! command line only parses arguments and prints).

use super::gee::{self, GeeVariance};
use super::{report, Family, Glmm, Link};
use crate::error::{Error, Result};
use crate::lmm::data::DataFrame;

/// How to fit and test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlmmOptions {
    pub family: Family,
    /// None: the family's canonical link.
    pub link: Option<Link>,
    /// Quadrature points (1 = Laplace).
    pub nagq: usize,
    /// Add t tests on between-within df to the GLMM's Wald z tests.
    pub between_within: bool,
    /// Fit a GEE with this SE instead of the GLMM.
    pub gee: Option<GeeVariance>,
    /// JSON instead of the summary.
    pub json: bool,
}

/// Fit `formula` to `data` as `opts` asks and render the result.
pub fn analyse(data: &DataFrame, formula: &str, opts: &GlmmOptions) -> Result<String> {
    let family = opts.family;
    let link = opts.link.unwrap_or(family.canonical());
    link.check_family(family)?;
    if opts.gee.is_some() && opts.between_within {
        return Err(Error::Usage(
            "--gee tests on clusters - p df; drop --df".into(),
        ));
    }
    let mut g = Glmm::new(formula, data, family, link, opts.nagq)?;
    let json = |v: &serde_json::Value| -> Result<String> {
        Ok(serde_json::to_string_pretty(v).map_err(|e| Error::Usage(e.to_string()))? + "\n")
    };
    if let Some(v) = opts.gee {
        let fit = gee::fit(&g.model.frame, family, link, &g.weights)?;
        return if opts.json {
            json(&gee::to_json(&fit, v, formula, family, link))
        } else {
            Ok(gee::summary(&fit, v, formula, family, link))
        };
    }
    let fit = g.fit()?;
    let bw_df = if opts.between_within {
        Some(crate::lmm::inference::between_within(&g.model).map_err(Error::Usage)?)
    } else {
        None
    };
    if opts.json {
        let mut v = report::to_json(&g, &fit);
        report::add_between_within(&mut v, &fit, bw_df.as_deref());
        json(&v)
    } else {
        Ok(report::summary(&g, &fit, bw_df.as_deref()))
    }
}
