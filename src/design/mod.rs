//! The resolved trial design, produced once from a validated config: its
//! family ([`DesignSpec`]: parallel or stepped wedge), which teams sit in
//! which site, how teams are randomised, and how sizes and staff numbers
//! are drawn. Every consumer (simulator, analytic formulas, reports)
//! matches on [`Design::spec`]; none re-reads the config's design flags.
//!
//! | file | what |
//! |---|---|
//! | [`parallel`] | allocation to arms, strata, staff, splitting rules |
//! | [`stepped_wedge`] | the matrix, cluster-period cells, randomisation to sequences, warnings |
//! | [`sizes`] | size samplers, pmf and truncated moments |

pub mod parallel;
pub mod sizes;
pub mod stepped_wedge;

pub use parallel::{even_split, largest_remainder, proportional_split};
pub use sizes::{negbin_gamma, size_moments, size_pmf, truncated_size_moments, SizeSampler};
pub use stepped_wedge::{sw_cell, SteppedWedgeDesign, SwCell};

use crate::config::{Allocation, Config, StaffSpec};
use crate::error::Result;

/// The design family, resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum DesignSpec {
    /// A parallel cluster trial: teams randomised to arms (by site).
    Parallel,
    /// A stepped wedge: clusters randomised to sequences.
    SteppedWedge(SteppedWedgeDesign),
}

/// The resolved design.
#[derive(Debug, Clone)]
pub struct Design {
    /// The design family and its own parameters.
    pub spec: DesignSpec,
    /// Site names, in config order.
    pub site_names: Vec<String>,
    /// Number of teams in each site.
    pub site_teams: Vec<u32>,
    /// Site index of each team; teams are numbered site by site.
    pub team_site: Vec<u16>,
    /// Allocation scheme.
    pub allocation: Allocation,
    /// Exact treated count overall, if configured.
    pub treated: Option<u32>,
    /// Exact treated count per site (stratified allocation with `treated`).
    pub treated_per_site: Option<Vec<u32>>,
    /// Team-size sampler.
    pub size: SizeSampler,
    /// Staff per team.
    pub staff: StaffSpec,
}

impl Design {
    /// Resolve a validated config into a design.
    pub fn from_config(cfg: &Config) -> Result<Design> {
        let c = &cfg.clusters;
        let nsites = c.sites.len();
        let site_teams = match &c.site_teams {
            Some(v) => v.clone(),
            None => even_split(c.teams, nsites),
        };
        let mut team_site = Vec::with_capacity(c.teams as usize);
        for (s, &n) in site_teams.iter().enumerate() {
            team_site.extend(std::iter::repeat_n(s as u16, n as usize));
        }
        let treated_per_site = match (c.allocation, c.treated) {
            (Allocation::Stratified, Some(t)) => Some(largest_remainder(t, &site_teams)),
            _ => None,
        };
        let spec = match stepped_wedge::section(cfg) {
            Some(sw) => DesignSpec::SteppedWedge(SteppedWedgeDesign::from_config(sw)?),
            None => DesignSpec::Parallel,
        };
        Ok(Design {
            spec,
            site_names: c.sites.clone(),
            site_teams,
            team_site,
            allocation: c.allocation,
            treated: c.treated,
            treated_per_site,
            size: SizeSampler::from_config(cfg)?,
            staff: c.staff_per_team,
        })
    }

    /// Number of teams (clusters).
    pub fn teams(&self) -> usize {
        self.team_site.len()
    }

    /// The stepped-wedge design, if this is one.
    pub fn stepped_wedge(&self) -> Option<&SteppedWedgeDesign> {
        match &self.spec {
            DesignSpec::SteppedWedge(sw) => Some(sw),
            DesignSpec::Parallel => None,
        }
    }

    /// Allowed design choices worth a warning (a stepped-wedge sequence
    /// that is never or always treated).
    pub fn warnings(&self) -> Vec<String> {
        match &self.spec {
            DesignSpec::SteppedWedge(sw) => sw.warnings(),
            DesignSpec::Parallel => Vec::new(),
        }
    }
}
