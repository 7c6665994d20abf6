//! Validation, one validator per section, run in a fixed order so the
//! first violation is always the same one; every message names the key and
//! what is allowed. Cheap bounds on every number come first
//! ([`Config::check_bounds`], in `bounds.rs`), so no check here costs time
//! or memory in proportion to a value.

use super::*;
use crate::analysis::Analysis;

impl Config {
    /// Check every value range; the first violation is returned.
    pub fn validate(&self) -> Result<()> {
        self.check_bounds()?;
        self.validate_clusters()?;
        self.validate_outcome()?;
        self.validate_attrition()?;
        self.validate_design()?;
        self.validate_analysis()?;
        self.validate_attrition_mechanism()
    }

    /// `[clusters]`: sites, teams, treated, sizes, staff.
    fn validate_clusters(&self) -> Result<()> {
        let c = &self.clusters;
        if c.sites.is_empty() {
            return Err(Error::invalid(
                "clusters.sites",
                "[]",
                "must name at least one site",
            ));
        }
        if c.teams < 2 {
            return Err(Error::invalid(
                "clusters.teams",
                c.teams,
                "must be at least 2 (one team per arm)",
            ));
        }
        if let Some(st) = &c.site_teams {
            if st.len() != c.sites.len() {
                return Err(Error::invalid(
                    "clusters.site_teams",
                    format!("{st:?}"),
                    &format!("must have one entry per site ({} sites)", c.sites.len()),
                ));
            }
            let sum: u64 = st.iter().map(|&x| u64::from(x)).sum();
            if sum != u64::from(c.teams) {
                return Err(Error::invalid(
                    "clusters.site_teams",
                    format!("{st:?}"),
                    &format!("must add up to clusters.teams = {}", c.teams),
                ));
            }
        } else if (c.teams as usize) < c.sites.len() {
            return Err(Error::invalid(
                "clusters.teams",
                c.teams,
                &format!("must be at least the number of sites ({})", c.sites.len()),
            ));
        }
        if let Some(t) = c.treated {
            if t < 1 {
                return Err(Error::invalid(
                    "clusters.treated",
                    t,
                    "must be at least 1 (one team per arm)",
                ));
            }
            if t >= c.teams {
                return Err(Error::invalid(
                    "clusters.treated",
                    t,
                    &format!(
                        "must be less than clusters.teams = {} (at least one control team)",
                        c.teams
                    ),
                ));
            }
        }
        let s = &c.size;
        if s.min < 1 {
            return Err(Error::invalid(
                "clusters.size.min",
                s.min,
                "must be at least 1",
            ));
        }
        match s.dist {
            SizeKind::Fixed => {
                if s.mean.fract() != 0.0 {
                    return Err(Error::invalid(
                        "clusters.size.mean",
                        s.mean,
                        "must be a whole number for dist = \"fixed\"",
                    ));
                }
                if s.cv.is_some_and(|cv| cv != 0.0) {
                    return Err(Error::invalid(
                        "clusters.size.cv",
                        s.cv.unwrap_or(0.0),
                        "must be absent or 0 for dist = \"fixed\"",
                    ));
                }
            }
            SizeKind::Given => {
                if s.per_cluster_period.is_some() && self.trial.design == DesignKind::Parallel {
                    return Err(Error::invalid(
                        "clusters.size.per_cluster_period",
                        "(given)",
                        "is for cross-sectional stepped-wedge designs (sizes by cluster and period); a parallel trial takes clusters.size.per_cluster",
                    ));
                }
            }
            SizeKind::Poisson => {
                if s.cv.is_some() {
                    return Err(Error::invalid(
                        "clusters.size.cv",
                        s.cv.unwrap_or(0.0),
                        "is not used by dist = \"poisson\" (its cv is 1/sqrt(mean)); use \"negbin\"",
                    ));
                }
            }
            SizeKind::Negbin => {
                let cv = s.cv.ok_or_else(|| {
                    Error::invalid(
                        "clusters.size.cv",
                        "(missing)",
                        "is required for dist = \"negbin\"",
                    )
                })?;
                let pois = 1.0 / s.mean.sqrt();
                if !(cv.is_finite() && cv > pois) {
                    return Err(Error::invalid(
                        "clusters.size.cv",
                        cv,
                        &format!(
                            "must exceed 1/sqrt(mean) = {pois:.3} for dist = \"negbin\" (a Poisson already has that cv; use dist = \"poisson\")"
                        ),
                    ));
                }
            }
        }
        if (s.min as f64) > 10.0 * s.mean.max(1.0) {
            return Err(Error::invalid(
                "clusters.size.min",
                s.min,
                "is far above clusters.size.mean; almost every draw would be rejected",
            ));
        }
        match c.staff_per_team {
            StaffSpec::Fixed(n) if n < 1 => {
                return Err(Error::invalid(
                    "clusters.staff_per_team",
                    n,
                    "must be at least 1",
                ));
            }
            StaffSpec::Range { min, max } if min < 1 || max < min => {
                return Err(Error::invalid(
                    "clusters.staff_per_team",
                    format!("{{ min = {min}, max = {max} }}"),
                    "needs 1 <= min <= max",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// `[outcome]`: ICCs, autocorrelations, site effects, measurement noise.
    fn validate_outcome(&self) -> Result<()> {
        let o = &self.outcome;
        self.validate_outcome_family()?;
        if o.measure.is_discrete() {
            return self.validate_discrete();
        }
        if !(0.0..1.0).contains(&o.icc) {
            return Err(Error::invalid("outcome.icc", o.icc, "must be in [0, 1)"));
        }
        if !(0.0..1.0).contains(&o.icc_staff) {
            return Err(Error::invalid(
                "outcome.icc_staff",
                o.icc_staff,
                "must be in [0, 1)",
            ));
        }
        if o.icc + o.icc_staff >= 1.0 {
            return Err(Error::invalid(
                "outcome.icc_staff",
                o.icc_staff,
                &format!("icc + icc_staff must be < 1 (icc = {})", o.icc),
            ));
        }
        if o.baseline {
            for (key, v) in [("outcome.cac", o.cac), ("outcome.iac", o.iac)] {
                match v {
                    None => {
                        return Err(Error::invalid(
                            key,
                            "(missing)",
                            "is required when outcome.baseline = true",
                        ))
                    }
                    Some(r) if !(-1.0..=1.0).contains(&r) => {
                        return Err(Error::invalid(key, r, "must be in [-1, 1]"))
                    }
                    _ => {}
                }
            }
        }
        self.validate_site_effects()?;
        if !(o.item_noise.is_finite() && o.item_noise >= 0.0) {
            return Err(Error::invalid(
                "outcome.item_noise",
                o.item_noise,
                "must be >= 0",
            ));
        }
        // The latent scale is calibrated to the reported mean and SD; the
        // measurement noise is carved out of the individual variance and must fit.
        let cal = crate::measure::calibrate(o.measure, o.mean, o.sd, o.item_noise)
            .map_err(|m| Error::invalid("outcome.sd", o.sd, &m))?;
        let resid = (1.0 - o.icc - o.icc_staff) * o.sd * o.sd;
        let mv = cal.noise_var;
        if mv >= resid {
            return Err(Error::invalid(
                "outcome.item_noise",
                o.item_noise,
                &format!(
                    "measurement noise variance {mv:.2} must be below the individual variance (1 - icc - icc_staff) * sd^2 = {resid:.2}"
                ),
            ));
        }
        if o.baseline {
            let iac = o.iac.unwrap_or(0.0);
            if (iac * resid / (resid - mv)).abs() > 1.0 {
                return Err(Error::invalid(
                    "outcome.iac",
                    iac,
                    "is too large for the measurement noise: the latent individual correlation would exceed 1; lower outcome.item_noise or outcome.iac",
                ));
            }
        }
        Ok(())
    }

    /// The keys of one outcome family: a score takes mean, sd and icc; a
    /// binary outcome prevalence and icc or k; a count rate and k. Keys of
    /// another family are refused, naming what this one takes.
    fn validate_outcome_family(&self) -> Result<()> {
        let o = &self.outcome;
        let e = &self.effect;
        let m = o.measure;
        let name = serde_json::to_string(&m).unwrap_or_default();
        let takes = match m {
            Measure::Binary => "outcome.prevalence, and outcome.icc (latent logit scale) or outcome.k; the effect as effect.odds_ratio, effect.risk_difference or effect.treated_prevalence",
            Measure::Count => "outcome.rate and outcome.k; the effect as effect.rate_ratio",
            _ => "outcome.mean, outcome.sd and outcome.icc; the effect as effect.difference (points)",
        };
        let refuse = |key: &str, v: String| -> Result<()> {
            Err(Error::invalid(
                key,
                v,
                &format!("does not apply to outcome.measure = {name}, which takes {takes}"),
            ))
        };
        let scores = !m.is_discrete();
        let present = |v: f64| !v.is_nan();
        let checks: [(&str, bool, String); 12] = [
            (
                "outcome.mean",
                !scores && present(o.mean),
                o.mean.to_string(),
            ),
            ("outcome.sd", !scores && present(o.sd), o.sd.to_string()),
            (
                "outcome.icc",
                m == Measure::Count && present(o.icc),
                o.icc.to_string(),
            ),
            (
                "outcome.prevalence",
                m != Measure::Binary && o.prevalence.is_some(),
                format!("{:?}", o.prevalence.unwrap_or(0.0)),
            ),
            (
                "outcome.rate",
                m != Measure::Count && o.rate.is_some(),
                format!("{:?}", o.rate.unwrap_or(0.0)),
            ),
            (
                "outcome.k",
                scores && o.k.is_some(),
                format!("{:?}", o.k.unwrap_or(0.0)),
            ),
            (
                "outcome.overdispersion",
                m != Measure::Count && o.overdispersion != 0.0,
                o.overdispersion.to_string(),
            ),
            (
                "outcome.threshold",
                !scores && o.threshold.is_some(),
                format!("{:?}", o.threshold.unwrap_or(0.0)),
            ),
            (
                "effect.difference",
                !scores && e.difference != 0.0,
                e.difference.to_string(),
            ),
            (
                "effect.odds_ratio",
                m != Measure::Binary && e.odds_ratio.is_some(),
                format!("{:?}", e.odds_ratio.unwrap_or(0.0)),
            ),
            (
                "effect.risk_difference",
                m != Measure::Binary && e.risk_difference.is_some(),
                format!("{:?}", e.risk_difference.unwrap_or(0.0)),
            ),
            (
                "effect.rate_ratio",
                m != Measure::Count && e.rate_ratio.is_some(),
                format!("{:?}", e.rate_ratio.unwrap_or(0.0)),
            ),
        ];
        for (key, bad, v) in checks {
            if bad {
                return refuse(key, v);
            }
        }
        if m != Measure::Binary && e.treated_prevalence.is_some() {
            return refuse(
                "effect.treated_prevalence",
                format!("{:?}", e.treated_prevalence.unwrap_or(0.0)),
            );
        }
        if scores {
            for (key, v) in [
                ("outcome.mean", o.mean),
                ("outcome.sd", o.sd),
                ("outcome.icc", o.icc),
            ] {
                if v.is_nan() {
                    return Err(Error::invalid(
                        key,
                        "(missing)",
                        &format!("is required when outcome.measure = {name}"),
                    ));
                }
            }
        }
        if let Some(t) = o.threshold {
            match m {
                Measure::Qpr15 if !(t > 0.0 && t <= crate::measure::TOTAL_MAX) => {
                    return Err(Error::invalid(
                        "outcome.threshold",
                        t,
                        "must be in (0, 60]: the binary outcome is a QPR-15 total at or above it",
                    ));
                }
                Measure::Qpr15Items => {
                    return Err(Error::invalid(
                        "outcome.threshold",
                        t,
                        "applies to outcome.measure = \"qpr15\" or \"continuous\" (the item model has no closed-form cut)",
                    ));
                }
                _ if !t.is_finite() => {
                    return Err(Error::invalid(
                        "outcome.threshold",
                        t,
                        "must be a finite number",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `outcome.site_effects`: one per site (scores and binary/count alike).
    fn validate_site_effects(&self) -> Result<()> {
        let n = self.clusters.sites.len();
        match &self.outcome.site_effects {
            Some(g) if g.len() != n => Err(Error::invalid(
                "outcome.site_effects",
                format!("{g:?}"),
                &format!("must have one entry per site ({n} sites)"),
            )),
            _ => Ok(()),
        }
    }

    /// A binary or count outcome's own keys (the family's keys are checked
    /// by [`Config::validate_outcome_family`]).
    fn validate_discrete(&self) -> Result<()> {
        let o = &self.outcome;
        let e = &self.effect;
        let binary = o.measure == Measure::Binary;
        let unit_open = |key: &str, v: f64, what: &str| -> Result<()> {
            if v > 0.0 && v < 1.0 {
                Ok(())
            } else {
                Err(Error::invalid(
                    key,
                    v,
                    &format!("must be in (0, 1): {what}"),
                ))
            }
        };
        if binary {
            let Some(p0) = o.prevalence else {
                return Err(Error::invalid(
                    "outcome.prevalence",
                    "(missing)",
                    "is required when outcome.measure = \"binary\": the control arm's prevalence, e.g. 0.35",
                ));
            };
            unit_open("outcome.prevalence", p0, "the control arm's prevalence")?;
            match (o.icc.is_nan(), o.k) {
                (true, None) => {
                    return Err(Error::invalid(
                        "outcome.icc",
                        "(missing)",
                        "a binary outcome needs outcome.icc (on the latent logit scale) or outcome.k (Hayes & Bennett's between-cluster coefficient of variation)",
                    ))
                }
                (false, Some(k)) => {
                    return Err(Error::invalid(
                        "outcome.k",
                        k,
                        "give either outcome.icc or outcome.k, not both",
                    ))
                }
                (false, None) if !(0.0..1.0).contains(&o.icc) => {
                    return Err(Error::invalid("outcome.icc", o.icc, "must be in [0, 1)"))
                }
                _ => {}
            }
            if let Some(k) = o.k {
                let kmax = crate::discrete::binary_k_max(p0);
                if !(k >= 0.0 && k < kmax) {
                    return Err(Error::invalid(
                        "outcome.k",
                        k,
                        &format!("must be in [0, {kmax:.3}) at prevalence {p0} (k = sqrt((1 - p)/p) would put every cluster at 0 or 1)"),
                    ));
                }
            }
            if !(0.0..1.0).contains(&o.icc_staff) {
                return Err(Error::invalid(
                    "outcome.icc_staff",
                    o.icc_staff,
                    "must be in [0, 1)",
                ));
            }
            let icc = if o.icc.is_nan() { 0.0 } else { o.icc };
            if icc + o.icc_staff >= 1.0 {
                return Err(Error::invalid(
                    "outcome.icc_staff",
                    o.icc_staff,
                    &format!("icc + icc_staff must be < 1 (icc = {icc})"),
                ));
            }
            let given = [e.odds_ratio, e.risk_difference, e.treated_prevalence];
            if given.iter().filter(|v| v.is_some()).count() > 1 {
                return Err(Error::invalid(
                    "effect",
                    "(several)",
                    "give one of effect.odds_ratio, effect.risk_difference and effect.treated_prevalence",
                ));
            }
            if let Some(or) = e.odds_ratio {
                if !(1e-3..=1e3).contains(&or) {
                    return Err(Error::invalid(
                        "effect.odds_ratio",
                        or,
                        "must be in [0.001, 1000]",
                    ));
                }
            }
            if let Some(rd) = e.risk_difference {
                if !(rd.is_finite() && p0 + rd > 0.0 && p0 + rd < 1.0) {
                    return Err(Error::invalid(
                        "effect.risk_difference",
                        rd,
                        &format!(
                            "must keep the treated prevalence {p0} + difference inside (0, 1)"
                        ),
                    ));
                }
            }
            if let Some(p1) = e.treated_prevalence {
                unit_open(
                    "effect.treated_prevalence",
                    p1,
                    "the treated arm's marginal prevalence",
                )?;
            }
        } else {
            let Some(rate) = o.rate else {
                return Err(Error::invalid(
                    "outcome.rate",
                    "(missing)",
                    "is required when outcome.measure = \"count\": the control arm's mean count per person, e.g. 2.5",
                ));
            };
            if !(rate > 0.0 && rate <= 1e6) {
                return Err(Error::invalid("outcome.rate", rate, "must be in (0, 1e6]"));
            }
            let Some(k) = o.k else {
                return Err(Error::invalid(
                    "outcome.k",
                    "(missing)",
                    "is required when outcome.measure = \"count\": the between-cluster coefficient of variation of the true rates (Hayes & Bennett), e.g. 0.25; 0 for none",
                ));
            };
            if !(0.0..=10.0).contains(&k) {
                return Err(Error::invalid("outcome.k", k, "must be in [0, 10]"));
            }
            if o.icc_staff != 0.0 {
                return Err(Error::invalid(
                    "outcome.icc_staff",
                    o.icc_staff,
                    "is not modelled for counts (leave it out)",
                ));
            }
            if !(0.0..=100.0).contains(&o.overdispersion) {
                return Err(Error::invalid(
                    "outcome.overdispersion",
                    o.overdispersion,
                    "must be in [0, 100] (the variance of a mean-one multiplier per observation)",
                ));
            }
            if let Some(rr) = e.rate_ratio {
                if !(1e-3..=1e3).contains(&rr) {
                    return Err(Error::invalid(
                        "effect.rate_ratio",
                        rr,
                        "must be in [0.001, 1000]",
                    ));
                }
            }
        }
        if let Some(iac) = o.iac {
            return Err(Error::invalid(
                "outcome.iac",
                iac,
                "does not apply to a binary or count outcome (there is no latent individual score to correlate); leave it out",
            ));
        }
        if o.baseline {
            match o.cac {
                None if self.trial.design == DesignKind::Parallel => {
                    return Err(Error::invalid(
                        "outcome.cac",
                        "(missing)",
                        "is required when outcome.baseline = true",
                    ))
                }
                Some(r) if !(-1.0..=1.0).contains(&r) => {
                    return Err(Error::invalid("outcome.cac", r, "must be in [-1, 1]"))
                }
                _ => {}
            }
        }
        self.validate_site_effects()?;
        Ok(())
    }

    /// `[attrition]`: the rate.
    fn validate_attrition(&self) -> Result<()> {
        let a = &self.attrition;
        if !(0.0..1.0).contains(&a.rate) {
            return Err(Error::invalid(
                "attrition.rate",
                a.rate,
                "must be in [0, 1)",
            ));
        }
        Ok(())
    }

    /// `[adherence]` and the design family (`[stepped_wedge]`).
    fn validate_design(&self) -> Result<()> {
        if let Some(ad) = &self.adherence {
            ad.validate(self.clusters.teams)?;
        }
        match (self.trial.design, &self.stepped_wedge) {
            (DesignKind::SteppedWedge, Some(sw)) => sw.validate(self)?,
            (DesignKind::SteppedWedge, None) => {
                return Err(Error::invalid(
                    "trial.design",
                    "\"stepped_wedge\"",
                    "needs a [stepped_wedge] section (sequences or matrix)",
                ))
            }
            (DesignKind::Parallel, Some(_)) => {
                return Err(Error::invalid(
                    "stepped_wedge",
                    "(section)",
                    "is only read when trial.design = \"stepped_wedge\"",
                ))
            }
            _ => {}
        }
        Ok(())
    }

    /// `[analysis]`: methods, alpha, formula.
    fn validate_analysis(&self) -> Result<()> {
        if let Some(m) = &self.analysis.methods {
            if m.is_empty() {
                return Err(Error::invalid(
                    "analysis.methods",
                    "[]",
                    "must name at least one analysis",
                ));
            }
            for (i, name) in m.iter().enumerate() {
                let Some(analysis) = Analysis::from_name(name) else {
                    return Err(Error::invalid(
                        "analysis.methods",
                        format!("{name:?}"),
                        &format!("is not an analysis; choose from {}", Analysis::names()),
                    ));
                };
                if m[..i].contains(name) {
                    return Err(Error::invalid(
                        "analysis.methods",
                        format!("{name:?}"),
                        "is listed twice; name each analysis once",
                    ));
                }
                let glm = self.outcome.measure.is_discrete() || self.outcome.threshold.is_some();
                if analysis.is_glmm() && !glm {
                    return Err(Error::invalid(
                        "analysis.methods",
                        format!("{name:?}"),
                        "needs a binary or count outcome (outcome.measure = \"binary\" or \"count\", or outcome.threshold)",
                    ));
                }
                if analysis.is_adherence() && glm {
                    return Err(Error::invalid(
                        "analysis.methods",
                        format!("{name:?}"),
                        "the adherence analyses are linear mixed models of scores; they are not available for binary or count outcomes yet",
                    ));
                }
                if analysis.is_adherence() && self.adherence.is_none() {
                    return Err(Error::invalid(
                        "analysis.methods",
                        format!("{name:?}"),
                        "needs an [adherence] section (team participation) to analyse",
                    ));
                }
                if analysis == Analysis::ClusterT && self.trial.design == DesignKind::SteppedWedge {
                    return Err(Error::invalid(
                        "analysis.methods",
                        "\"cluster_t\"",
                        "needs a treatment constant within clusters; it does not apply to a stepped wedge",
                    ));
                }
            }
        }
        if let Some(alpha) = self.analysis.alpha {
            if !(alpha > 0.0 && alpha < 0.5) {
                return Err(Error::invalid(
                    "analysis.alpha",
                    alpha,
                    "must be in (0, 0.5)",
                ));
            }
        }
        if let Some(f) = &self.analysis.formula {
            crate::lmm::formula::Formula::parse(f).map_err(|e| {
                Error::invalid("analysis.formula", format!("{f:?}"), &e.to_string())
            })?;
        }
        Ok(())
    }

    /// `attrition.mechanism = "mar"` needs a baseline.
    fn validate_attrition_mechanism(&self) -> Result<()> {
        let (a, o) = (&self.attrition, &self.outcome);
        if a.mechanism == Mechanism::Mar && !o.baseline && a.rate > 0.0 {
            return Err(Error::invalid(
                "attrition.mechanism",
                "\"mar\"",
                "needs outcome.baseline = true (missingness depends on the baseline)",
            ));
        }
        Ok(())
    }
}

impl SteppedWedge {
    /// `[stepped_wedge]` against the rest of the config.
    pub(super) fn validate(&self, cfg: &Config) -> Result<()> {
        if self.matrix.is_none() && self.sequences.is_none() {
            return Err(Error::invalid(
                "stepped_wedge.sequences",
                "(missing)",
                "give the number of sequences, or an explicit stepped_wedge.matrix",
            ));
        }
        if let Some(s) = self.sequences {
            if s == 0 && self.matrix.is_none() {
                return Err(Error::invalid(
                    "stepped_wedge.sequences",
                    0,
                    "must be at least 1 (zero periods otherwise)",
                ));
            }
        }
        let m = self.matrix();
        let periods = m.first().map(|r| r.len()).unwrap_or(0);
        if m.is_empty() || periods == 0 {
            return Err(Error::invalid(
                "stepped_wedge.matrix",
                "[]",
                "needs at least one sequence and one period",
            ));
        }
        if let Some(r) = m.iter().position(|r| r.len() != periods) {
            return Err(Error::invalid(
                "stepped_wedge.matrix",
                format!("row {} has {} periods", r + 1, m[r].len()),
                &format!(
                    "every row needs the same number of periods ({periods}); the matrix is ragged"
                ),
            ));
        }
        if m.iter().flatten().any(|&v| v > 1) {
            return Err(Error::invalid(
                "stepped_wedge.matrix",
                "a value > 1",
                "entries must be 0 or 1",
            ));
        }
        // Some period must compare exposed with unexposed clusters, else the
        // effect is confounded with the period effects (a before-after study).
        let contrast = (0..periods).any(|t| {
            let mut seen: Option<f64> = None;
            m.iter().any(
                |row| match sw_cell(row, t, self.transition, &self.lag).exposure {
                    Some(e) => match seen {
                        Some(v) => v != e,
                        None => {
                            seen = Some(e);
                            false
                        }
                    },
                    None => false,
                },
            )
        });
        if !contrast {
            return Err(Error::invalid(
                "stepped_wedge.matrix",
                format!("{m:?}"),
                "in every period all sequences have the same exposure, so the effect is confounded with time; a stepped wedge needs at least two sequences that cross over at different times",
            ));
        }
        if (cfg.clusters.teams as usize) < m.len() {
            return Err(Error::invalid(
                "clusters.teams",
                cfg.clusters.teams,
                &format!("must be at least the number of sequences ({})", m.len()),
            ));
        }
        if let Some(tt) = &self.time_trend {
            if tt.len() != periods {
                return Err(Error::invalid(
                    "stepped_wedge.time_trend",
                    format!("{} values", tt.len()),
                    &format!("must give one value per period ({periods})"),
                ));
            }
        }
        if self.lag.len() > periods {
            return Err(Error::invalid(
                "stepped_wedge.lag",
                format!("{} values", self.lag.len()),
                &format!("is longer than the number of periods ({periods})"),
            ));
        }
        if let Some(x) = self.lag.iter().find(|x| !(0.0..=1.0).contains(*x)) {
            return Err(Error::invalid(
                "stepped_wedge.lag",
                x,
                "each fraction must be in [0, 1]",
            ));
        }
        // Keys of the parallel design that a stepped wedge has no use for:
        // refused by name rather than silently ignored (the simulator has no
        // staff level, one site, and randomises clusters to sequences).
        let c = &cfg.clusters;
        let unused: [(&str, bool, String); 6] = [
            (
                "outcome.icc_staff",
                cfg.outcome.icc_staff != 0.0,
                cfg.outcome.icc_staff.to_string(),
            ),
            (
                "clusters.staff_per_team",
                c.staff_per_team != StaffSpec::Fixed(1),
                match c.staff_per_team {
                    StaffSpec::Fixed(n) => n.to_string(),
                    StaffSpec::Range { min, max } => format!("{{ min = {min}, max = {max} }}"),
                },
            ),
            (
                "clusters.treated",
                c.treated.is_some(),
                format!("{:?}", c.treated.unwrap_or(0)),
            ),
            (
                "clusters.sites",
                c.sites.len() > 1,
                format!("{:?}", c.sites),
            ),
            (
                "clusters.site_teams",
                c.site_teams.is_some(),
                "(given)".into(),
            ),
            (
                "outcome.site_effects",
                cfg.outcome.site_effects.is_some(),
                "(given)".into(),
            ),
        ];
        if let Some((key, _, value)) = unused.into_iter().find(|u| u.1) {
            return Err(Error::invalid(
                key,
                value,
                "is not modelled in a stepped-wedge design (clusters have no staff level and no sites; sequences are randomised over clusters, so none is fixed as treated): remove it",
            ));
        }
        let o = &cfg.outcome;
        required_unit("outcome.cac", o.cac, "a stepped-wedge design")?;
        if let Some(sc) = cfg.adherence.as_ref().and_then(|a| a.staff_concentration) {
            return Err(Error::invalid(
                "adherence.staff_concentration",
                sc,
                "has no meaning in a stepped-wedge design (clusters have no staff level): remove it; participation is the cluster's",
            ));
        }
        if let Some(m) = &cfg.clusters.size.per_cluster_period {
            if self.sampling == Sampling::Cohort {
                return Err(Error::invalid(
                    "clusters.size.per_cluster_period",
                    "(given)",
                    "is for cross-sectional sampling: a closed cohort has one size per cluster (clusters.size.per_cluster); attrition thins it",
                ));
            }
            if let Some(r) = m.iter().position(|r| r.len() != periods) {
                return Err(Error::invalid(
                    "clusters.size.per_cluster_period",
                    format!("row {} has {} sizes", r + 1, m[r].len()),
                    &format!("every row needs one size per period ({periods})"),
                ));
            }
        }
        if self.sampling == Sampling::Cohort && o.measure.is_discrete() {
            return Err(Error::invalid(
                "stepped_wedge.sampling",
                "\"cohort\"",
                "is not modelled yet for binary and count outcomes (a person's repeated outcomes need a person-level effect, which the simulator does not draw for them); use \"cross_sectional\"",
            ));
        }
        if self.sampling == Sampling::Cohort {
            let iac = required_unit("outcome.iac", o.iac, "cohort sampling")?;
            // As for a parallel baseline: the measurement noise is carved out
            // of the individual variance, so the latent individual
            // autocorrelation is iac·resid/(resid − noise) and must stay ≤ 1
            // (the simulator would otherwise clamp it silently).
            if let Ok(cal) = crate::measure::calibrate(o.measure, o.mean, o.sd, o.item_noise) {
                let resid = (1.0 - o.icc - o.icc_staff) * o.sd * o.sd;
                let latent = iac * resid / (resid - cal.noise_var);
                if !(latent.abs() <= 1.0) {
                    return Err(Error::invalid(
                        "outcome.iac",
                        iac,
                        &format!(
                            "is too large for the measurement noise: the latent individual correlation would be {latent:.3} > 1; lower outcome.item_noise or outcome.iac"
                        ),
                    ));
                }
            }
        }
        if o.baseline {
            return Err(Error::invalid(
                "outcome.baseline",
                "true",
                "must be false in a stepped-wedge design: the control periods are the baseline",
            ));
        }
        Ok(())
    }
}

/// `key` must be given (it is required for `what`) and lie in [0, 1].
fn required_unit(key: &str, v: Option<f64>, what: &str) -> Result<f64> {
    match v {
        None => Err(Error::invalid(
            key,
            "(missing)",
            &format!("is required for {what}"),
        )),
        Some(x) if !(0.0..=1.0).contains(&x) => Err(Error::invalid(
            key,
            x,
            &format!("must be in [0, 1] for {what}"),
        )),
        Some(x) => Ok(x),
    }
}

impl AdherenceConfig {
    /// `[adherence]`.
    pub(super) fn validate(&self, teams: u32) -> Result<()> {
        let t = &self.team;
        let unit = |key: &str, v: Option<f64>| -> Result<()> {
            match v {
                Some(x) if !(0.0..=1.0).contains(&x) => {
                    Err(Error::invalid(key, x, "must be in [0, 1]"))
                }
                _ => Ok(()),
            }
        };
        let need = |key: &str, v: Option<f64>| -> Result<f64> {
            v.ok_or_else(|| {
                Error::invalid(key, "(missing)", "is required for this adherence.team.dist")
            })
        };
        match t.dist {
            TeamAdherenceKind::Beta => {
                let m = need("adherence.team.mean", t.mean)?;
                if !(m > 0.0 && m < 1.0) {
                    return Err(Error::invalid(
                        "adherence.team.mean",
                        m,
                        "must be in (0, 1)",
                    ));
                }
                let c = need("adherence.team.concentration", t.concentration)?;
                if !(c > 0.0 && c.is_finite()) {
                    return Err(Error::invalid(
                        "adherence.team.concentration",
                        c,
                        "must be > 0",
                    ));
                }
            }
            TeamAdherenceKind::Fixed => {
                let v = t.values.as_ref().ok_or_else(|| {
                    Error::invalid(
                        "adherence.team.values",
                        "(missing)",
                        "is required for dist = \"fixed\"",
                    )
                })?;
                if v.len() != teams as usize {
                    return Err(Error::invalid(
                        "adherence.team.values",
                        format!("{} values", v.len()),
                        &format!("must give one participation per team ({teams} teams)"),
                    ));
                }
                if let Some(x) = v.iter().find(|x| !(0.0..=1.0).contains(*x)) {
                    return Err(Error::invalid(
                        "adherence.team.values",
                        x,
                        "each must be in [0, 1]",
                    ));
                }
            }
            TeamAdherenceKind::Mixture => {
                unit(
                    "adherence.team.high",
                    Some(need("adherence.team.high", t.high)?),
                )?;
                unit(
                    "adherence.team.low",
                    Some(need("adherence.team.low", t.low)?),
                )?;
                unit(
                    "adherence.team.p_high",
                    Some(need("adherence.team.p_high", t.p_high)?),
                )?;
            }
        }
        if let Some(s) = self.staff_concentration {
            if !(s > 0.0 && s.is_finite()) {
                return Err(Error::invalid(
                    "adherence.staff_concentration",
                    s,
                    "must be > 0",
                ));
            }
        }
        if !(self.confounding > -1.0 && self.confounding < 1.0) {
            return Err(Error::invalid(
                "adherence.confounding",
                self.confounding,
                "must be in (-1, 1)",
            ));
        }
        if self.confounding != 0.0 && t.dist == TeamAdherenceKind::Fixed {
            return Err(Error::invalid(
                "adherence.confounding",
                self.confounding,
                "needs a random participation (dist = \"beta\" or \"mixture\"), not fixed values",
            ));
        }
        match self.dose {
            DoseKind::Threshold => {
                let tau = self.threshold.ok_or_else(|| {
                    Error::invalid(
                        "adherence.threshold",
                        "(missing)",
                        "is required for dose = \"threshold\"",
                    )
                })?;
                unit("adherence.threshold", Some(tau))?;
            }
            DoseKind::Emax => {
                let e = self.ec50.ok_or_else(|| {
                    Error::invalid(
                        "adherence.ec50",
                        "(missing)",
                        "is required for dose = \"emax\"",
                    )
                })?;
                if !(e > 0.0 && e.is_finite()) {
                    return Err(Error::invalid("adherence.ec50", e, "must be > 0"));
                }
            }
            DoseKind::Linear => {}
        }
        unit("adherence.threshold", self.threshold)?;
        unit("adherence.cut", self.cut)?;
        Ok(())
    }
}
