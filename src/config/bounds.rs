//! Bounds on every number and list of a config (documented in the README's
//! config reference), checked before anything costs time or memory.

use super::*;

/// Largest values the config accepts (documented in the README's config
/// reference). They sit far beyond any real trial and keep memory and time
/// bounded whatever a typo asks for.
pub mod limits {
    /// `clusters.teams`.
    pub const TEAMS: u32 = 100_000;
    /// `clusters.size.mean` and `clusters.size.min`.
    pub const TEAM_SIZE: f64 = 100_000.0;
    /// `clusters.size.mean`: at least (a Poisson or negative-binomial mean
    /// below it leaves almost no probability at or above `size.min`).
    pub const SIZE_MEAN_MIN: f64 = 0.1;
    /// Expected participants in one trial (teams × mean size × periods).
    pub const PARTICIPANTS: f64 = 10_000_000.0;
    /// `clusters.size.cv`.
    pub const SIZE_CV: f64 = 10.0;
    /// `clusters.staff_per_team` (fixed, or the range's max).
    pub const STAFF: u32 = 1_000;
    /// `clusters.sites` (names).
    pub const SITES: usize = 1_000;
    /// |`outcome.mean`| for a continuous outcome.
    pub const MEAN: f64 = 1e6;
    /// `outcome.sd` for a continuous outcome: [SD_MIN, SD_MAX].
    pub const SD_MIN: f64 = 1e-6;
    pub const SD_MAX: f64 = 1e6;
    /// `outcome.sd` for the QPR-15 measures (a 0–60 total).
    pub const QPR_SD_MAX: f64 = 30.0;
    /// `outcome.item_noise` (0–4 item scale).
    pub const ITEM_NOISE: f64 = 10.0;
    /// |`effect.difference`|, |`outcome.site_effects`|, |`stepped_wedge.time_trend`|
    /// and the total linear trend, in multiples of `outcome.sd`.
    pub const SHIFT_SDS: f64 = 100.0;
    /// `stepped_wedge.sequences`, and a matrix's rows and columns (the exact
    /// GLS power costs about clusters × periods³ per evaluation).
    pub const SW_DIM: usize = 100;
    /// `adherence.team.concentration`, `adherence.staff_concentration`.
    pub const CONCENTRATION: f64 = 1e4;
    /// `adherence.team.concentration`, `adherence.staff_concentration`: above.
    pub const CONCENTRATION_MIN: f64 = 0.01;
    /// The smaller Beta shape of team participation, min(mean, 1 − mean)·concentration.
    pub const BETA_SHAPE_MIN: f64 = 1e-3;
    /// `adherence.ec50`.
    pub const EC50: f64 = 100.0;
    /// Characters in `trial.name`, `analysis.formula`, `analysis.term` and a site name.
    pub const TEXT: usize = 10_000;
}

/// `x` must be finite and in [lo, hi].
pub(super) fn in_range(key: &str, x: f64, lo: f64, hi: f64) -> Result<()> {
    if x.is_finite() && (lo..=hi).contains(&x) {
        Ok(())
    } else {
        Err(Error::invalid(
            key,
            x,
            &format!("must be a finite number in [{}, {}]", bound(lo), bound(hi)),
        ))
    }
}

/// A range limit as a person writes it (1e-6, 635, 1e6).
pub(super) fn bound(x: f64) -> String {
    if x != 0.0 && !(1e-3..1e6).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{}", (x * 1e6).round() / 1e6)
    }
}

pub(super) fn text_len(key: &str, s: &str) -> Result<()> {
    if s.len() > limits::TEXT {
        return Err(Error::invalid(
            key,
            format!("({} characters)", s.len()),
            &format!("must be at most {} characters", limits::TEXT),
        ));
    }
    Ok(())
}

impl Config {
    /// Bounds on every number and list, checked before anything that costs
    /// time or memory in proportion to a value.
    pub fn check_bounds(&self) -> Result<()> {
        use limits::*;
        let c = &self.clusters;
        text_len("trial.name", &self.trial.name)?;
        if self.sources.len() > SITES {
            return Err(Error::invalid(
                "sources",
                format!("{} entries", self.sources.len()),
                &format!("at most {SITES} sources"),
            ));
        }
        for (k, v) in &self.sources {
            text_len("sources", k)?;
            text_len(&format!("sources.\"{}\"", k), v)?;
        }
        if c.teams > TEAMS {
            return Err(Error::invalid(
                "clusters.teams",
                c.teams,
                &format!("must be at most {TEAMS}"),
            ));
        }
        if c.sites.len() > SITES {
            return Err(Error::invalid(
                "clusters.sites",
                format!("{} names", c.sites.len()),
                &format!("at most {SITES} sites"),
            ));
        }
        for s in &c.sites {
            text_len("clusters.sites", s)?;
        }
        let size = &c.size;
        size.check_given(c.teams)?;
        if !(size.mean.is_finite() && size.mean >= SIZE_MEAN_MIN && size.mean <= TEAM_SIZE) {
            return Err(Error::invalid(
                "clusters.size.mean",
                size.mean,
                &format!("must be a number in [{SIZE_MEAN_MIN}, {TEAM_SIZE}]"),
            ));
        }
        if f64::from(size.min) > TEAM_SIZE {
            return Err(Error::invalid(
                "clusters.size.min",
                size.min,
                &format!("must be at most {TEAM_SIZE}"),
            ));
        }
        if let Some(cv) = size.cv {
            in_range("clusters.size.cv", cv, 0.0, SIZE_CV)?;
        }
        let staff_max = match c.staff_per_team {
            StaffSpec::Fixed(n) => n,
            StaffSpec::Range { max, .. } => max,
        };
        if staff_max > STAFF {
            return Err(Error::invalid(
                "clusters.staff_per_team",
                staff_max,
                &format!("at most {STAFF} staff per team"),
            ));
        }
        let o = &self.outcome;
        let continuous = o.measure == Measure::Continuous;
        // A missing mean or SD (NaN) is reported by the outcome validator,
        // which knows whether this measure needs it.
        if o.measure.is_discrete() || o.mean.is_nan() || o.sd.is_nan() {
        } else if continuous {
            in_range("outcome.mean", o.mean, -MEAN, MEAN)?;
            in_range("outcome.sd", o.sd, SD_MIN, SD_MAX)?;
        } else {
            in_range("outcome.mean", o.mean, 0.0, 60.0)?;
            in_range("outcome.sd", o.sd, SD_MIN, QPR_SD_MAX)?;
            in_range("outcome.item_noise", o.item_noise, 0.0, ITEM_NOISE)?;
        }
        for (key, v) in [("outcome.cac", o.cac), ("outcome.iac", o.iac)] {
            // Ranges are checked where the key is used; a value that is not
            // a number is refused even where it is not.
            if let Some(x) = v.filter(|x| !x.is_finite()) {
                return Err(Error::invalid(key, x, "must be a finite number in [-1, 1]"));
            }
        }
        // Shifts are in points for scores, on the link scale otherwise.
        let shift = SHIFT_SDS
            * if o.measure.is_discrete() || o.sd.is_nan() {
                1.0
            } else {
                o.sd
            };
        in_range("effect.difference", self.effect.difference, -shift, shift)?;
        for &g in o.site_effects.iter().flatten() {
            in_range("outcome.site_effects", g, -shift, shift)?;
        }
        in_range("attrition.rate", self.attrition.rate, 0.0, 1.0)?;
        in_range("attrition.slope", self.attrition.slope, -20.0, 20.0)?;
        if let Some(a) = self.analysis.alpha {
            in_range("analysis.alpha", a, 0.0, 0.5)?;
        }
        for (key, t) in [
            ("analysis.formula", &self.analysis.formula),
            ("analysis.term", &self.analysis.term),
        ] {
            if let Some(t) = t {
                text_len(key, t)?;
            }
        }
        let mut periods = 1usize;
        if let Some(sw) = &self.stepped_wedge {
            if let Some(s) = sw.sequences {
                if s as usize > SW_DIM {
                    return Err(Error::invalid(
                        "stepped_wedge.sequences",
                        s,
                        &format!("must be at most {SW_DIM}"),
                    ));
                }
            }
            if let Some(m) = &sw.matrix {
                if m.len() > SW_DIM || m.iter().any(|r| r.len() > SW_DIM) {
                    return Err(Error::invalid(
                        "stepped_wedge.matrix",
                        format!("{} rows", m.len()),
                        &format!("at most {SW_DIM} sequences and {SW_DIM} periods"),
                    ));
                }
            }
            periods = match (&sw.matrix, sw.sequences) {
                (Some(m), _) => m.first().map_or(0, Vec::len),
                (None, Some(s)) => s as usize + 1,
                (None, None) => 0,
            };
            for &b in sw.time_trend.iter().flatten() {
                in_range("stepped_wedge.time_trend", b, -shift, shift)?;
            }
            let span = (periods.max(2) - 1) as f64;
            in_range(
                "stepped_wedge.trend_slope",
                sw.trend_slope,
                -shift / span,
                shift / span,
            )?;
            for &l in &sw.lag {
                in_range("stepped_wedge.lag", l, 0.0, 1.0)?;
            }
        }
        let participants = f64::from(c.teams) * size.mean * periods as f64;
        if participants > PARTICIPANTS {
            return Err(Error::invalid(
                "clusters.size.mean",
                size.mean,
                &format!(
                    "with {} teams{} that is {participants:e} expected participants per trial; at most {PARTICIPANTS:e}",
                    c.teams,
                    if periods > 1 { format!(" and {periods} periods") } else { String::new() }
                ),
            ));
        }
        if let Some(ad) = &self.adherence {
            // Ranges within [0, 1] are checked (with their own messages) by
            // the section's validator; here only the unbounded magnitudes.
            for (key, v, lo, hi) in [
                (
                    "adherence.team.concentration",
                    ad.team.concentration,
                    CONCENTRATION_MIN,
                    CONCENTRATION,
                ),
                (
                    "adherence.staff_concentration",
                    ad.staff_concentration,
                    CONCENTRATION_MIN,
                    CONCENTRATION,
                ),
                ("adherence.ec50", ad.ec50, 0.0, EC50),
            ] {
                if let Some(x) = v.filter(|x| !(*x > lo && *x <= hi)) {
                    return Err(Error::invalid(
                        key,
                        x,
                        &format!("must be > {} and at most {}", bound(lo), bound(hi)),
                    ));
                }
            }
            // Beta shapes mean·c and (1 − mean)·c: far below 10⁻³ statrs'
            // Beta quantile (used by the copula) does not return.
            if let (Some(m), Some(c)) = (ad.team.mean, ad.team.concentration) {
                let shape = m.min(1.0 - m) * c;
                if m > 0.0 && m < 1.0 && !(shape >= BETA_SHAPE_MIN) {
                    return Err(Error::invalid(
                        "adherence.team.concentration",
                        c,
                        &format!(
                            "with mean {m} gives a Beta shape of {} (min(mean, 1 - mean) x concentration); it must be at least {BETA_SHAPE_MIN}",
                            crate::error::short_value(&shape.to_string())
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl SizeDist {
    /// `dist = "given"`: one size per cluster (or a row of sizes per
    /// cluster), each within the size bound; otherwise no given sizes and a
    /// mean. Lengths are compared before any element is read.
    fn check_given(&self, teams: u32) -> Result<()> {
        let teams = teams as usize;
        if self.dist != SizeKind::Given {
            for (key, given) in [
                ("clusters.size.per_cluster", self.per_cluster.is_some()),
                (
                    "clusters.size.per_cluster_period",
                    self.per_cluster_period.is_some(),
                ),
            ] {
                if given {
                    return Err(Error::invalid(
                        key,
                        "(given)",
                        "is only read with dist = \"given\"; set clusters.size.dist = \"given\" or remove it",
                    ));
                }
            }
            if self.mean.is_nan() {
                return Err(Error::invalid(
                    "clusters.size.mean",
                    "(missing)",
                    "is required for dist = \"fixed\", \"poisson\" and \"negbin\"",
                ));
            }
            return Ok(());
        }
        match (&self.per_cluster, &self.per_cluster_period) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "clusters.size.per_cluster_period",
                    "(given)",
                    "cannot be given with clusters.size.per_cluster: give one of them",
                ))
            }
            (None, None) => {
                return Err(Error::invalid(
                    "clusters.size.dist",
                    "\"given\"",
                    "needs clusters.size.per_cluster = [...] (one size per cluster) or, in a cross-sectional stepped wedge, per_cluster_period = [[...], ...] (one row per cluster)",
                ))
            }
            (Some(v), None) => check_per_cluster(v, teams)?,
            (None, Some(m)) => check_per_cluster_period(m, teams)?,
        }
        if self.cv.is_some() || self.min != 1 {
            return Err(Error::invalid(
                if self.cv.is_some() {
                    "clusters.size.cv"
                } else {
                    "clusters.size.min"
                },
                "(given)",
                "is not used with dist = \"given\" (the sizes are given); remove it",
            ));
        }
        let (m, _) = self.given_moments().unwrap_or((f64::NAN, 0.0));
        if !(self.mean.is_finite() && (self.mean - m).abs() <= 1e-9 * m.max(1.0)) {
            return Err(Error::invalid(
                "clusters.size.mean",
                self.mean,
                &format!(
                    "is not used with dist = \"given\" (the given sizes' mean is {m}); remove it"
                ),
            ));
        }
        Ok(())
    }
}

/// `clusters.size.per_cluster`: one size in [1, TEAM_SIZE] per cluster.
fn check_per_cluster(v: &[u32], teams: usize) -> Result<()> {
    use limits::TEAM_SIZE;
    if v.len() != teams {
        return Err(Error::invalid(
            "clusters.size.per_cluster",
            format!("{} sizes", v.len()),
            &format!("must give one size per cluster (clusters.teams = {teams})"),
        ));
    }
    if let Some(i) = v.iter().position(|&n| n == 0 || f64::from(n) > TEAM_SIZE) {
        return Err(Error::invalid(
            "clusters.size.per_cluster",
            v[i],
            &format!("(cluster {}) must be in [1, {TEAM_SIZE}]", i + 1),
        ));
    }
    Ok(())
}

/// `clusters.size.per_cluster_period`: one row per cluster, each of at most
/// SW_DIM sizes in [0, TEAM_SIZE] with at least one participant (the row
/// lengths are compared with the periods by the stepped-wedge validator).
fn check_per_cluster_period(m: &[Vec<u32>], teams: usize) -> Result<()> {
    use limits::{SW_DIM, TEAM_SIZE};
    if m.len() != teams {
        return Err(Error::invalid(
            "clusters.size.per_cluster_period",
            format!("{} rows", m.len()),
            &format!("must give one row per cluster (clusters.teams = {teams})"),
        ));
    }
    for (i, r) in m.iter().enumerate() {
        let bad = if r.len() > SW_DIM {
            Some(format!("at most {SW_DIM} periods"))
        } else if let Some(&n) = r.iter().find(|&&n| f64::from(n) > TEAM_SIZE) {
            Some(format!("a size of {n}: each must be at most {TEAM_SIZE}"))
        } else if r.iter().all(|&n| n == 0) {
            Some("no participant in any period: every cluster needs one".into())
        } else {
            None
        };
        if let Some(why) = bad {
            return Err(Error::invalid(
                "clusters.size.per_cluster_period",
                format!("row {}", i + 1),
                &why,
            ));
        }
    }
    Ok(())
}
