//! Human words for config keys, designs and measures: the one label map
//! that plots, the HTML report and tables share.

use crate::config::{Config, DesignKind, Measure, Sampling, SizeKind, Transition};

/// A config key as a reader would name it (axis titles, table rows);
/// keys without an entry are shown as they are.
pub fn key_label(key: &str) -> String {
    let known = match key {
        "clusters.teams" => "Number of teams (clusters)",
        "clusters.treated" => "Intervention teams",
        "clusters.site_teams" => "Teams per site",
        "clusters.sites" => "Sites (strata)",
        "clusters.allocation" => "Allocation",
        "clusters.size" => "Cluster size distribution",
        "clusters.size.mean" => "Mean cluster size (participants per cluster)",
        "clusters.size.cv" => "Coefficient of variation of cluster size",
        "clusters.size.min" => "Smallest cluster size",
        "clusters.staff_per_team" => "Staff per team",
        "outcome.measure" => "Outcome measure",
        "outcome.mean" => "Control-arm mean",
        "outcome.sd" => "Outcome standard deviation",
        "outcome.icc" => "Intracluster correlation (ICC)",
        "outcome.icc_staff" => "ICC of staff within teams",
        "outcome.cac" => "Cluster autocorrelation (CAC)",
        "outcome.iac" => "Individual autocorrelation (IAC)",
        "outcome.baseline" => "Baseline measured",
        "outcome.item_noise" => "Item-level noise (QPR items)",
        "effect.difference" => "Effect: difference in means at full adherence",
        "attrition.rate" => "Attrition (proportion lost to follow-up)",
        "attrition.mechanism" => "Attrition mechanism",
        "stepped_wedge.sequences" => "Number of sequences",
        "stepped_wedge.sampling" => "Sampling",
        "stepped_wedge.transition" => "Transition periods",
        "stepped_wedge.lag" => "Implementation lag",
        "stepped_wedge.trend_slope" => "Secular trend per period",
        "adherence.confounding" => "Confounding of participation (copula correlation)",
        "adherence.team.mean" => "Mean team participation",
        "adherence.team.concentration" => "Concentration of team participation",
        "adherence.dose" => "Dose-response shape",
        "adherence.cut" => "High/low participation cut",
        "trial.seed" => "Random seed",
        "trial.design" => "Design",
        "attrition.slope" => "Attrition: change in log-odds of loss per SD of baseline",
        "outcome.site_effects" => "Site effects (points)",
        "stepped_wedge.matrix" => "Sequence-by-period design matrix",
        "stepped_wedge.time_trend" => "Period effects (points)",
        "adherence.team" => "Team participation distribution",
        "adherence.staff_concentration" => "Concentration of staff adherence within teams",
        "adherence.threshold" => "Dose-response threshold",
        "adherence.ec50" => "Dose-response EC50",
        "analysis.term" => "Coefficient tested",
        "analysis.methods" => "Analyses",
        "analysis.alpha" => "Significance level (two-sided)",
        "analysis.formula" => "Analysis model",
        _ => return key.to_string(),
    };
    known.to_string()
}

/// Whether a key's values are whole numbers (integer axis ticks).
pub fn key_is_integer(key: &str) -> bool {
    matches!(
        key,
        "clusters.teams"
            | "clusters.treated"
            | "clusters.size.min"
            | "clusters.staff_per_team"
            | "stepped_wedge.sequences"
            | "trial.seed"
    )
}

/// The outcome measure in words.
pub fn measure_label(m: Measure) -> &'static str {
    match m {
        Measure::Qpr15 => "the QPR-15 total (scored 0-60)",
        Measure::Qpr15Items => "the QPR-15 total (15 items, scored 0-60)",
        Measure::Continuous => "a continuous outcome",
        Measure::Binary => "a binary outcome",
        Measure::Count => "a count outcome",
    }
}

/// Stepped-wedge sampling in words.
pub fn sampling_label(s: Sampling) -> &'static str {
    match s {
        Sampling::CrossSectional => "cross-sectional (different people each period)",
        Sampling::Cohort => "closed cohort (the same people each period)",
    }
}

/// Stepped-wedge transition periods in words.
pub fn transition_label(t: Transition) -> &'static str {
    match t {
        Transition::None => "none",
        Transition::Exclude => "excluded from the analysis",
        Transition::Half => "half exposed",
    }
}

/// The cluster-size distribution in words.
pub fn size_label(cfg: &Config) -> String {
    let s = &cfg.clusters.size;
    match s.dist {
        SizeKind::Fixed => format!("{} per cluster", s.mean),
        SizeKind::Poisson => format!("Poisson, mean {}{}", s.mean, min_text(s.min)),
        SizeKind::Negbin => format!(
            "negative binomial, mean {}, CV {}{}",
            s.mean,
            s.cv.unwrap_or(0.0),
            min_text(s.min)
        ),
        SizeKind::Given => format!(
            "given per cluster{} (mean {:.1})",
            if s.per_cluster_period.is_some() {
                " and period"
            } else {
                ""
            },
            s.mean
        ),
    }
}

fn min_text(min: u32) -> String {
    if min > 1 {
        format!(", at least {min}")
    } else {
        String::new()
    }
}

/// The design family in words.
pub fn design_label(cfg: &Config) -> &'static str {
    match cfg.trial.design {
        DesignKind::Parallel => "parallel cluster-randomised trial",
        DesignKind::SteppedWedge => "stepped-wedge cluster-randomised trial",
    }
}

/// Split a label into lines of at most about `width` characters (legends).
pub fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for w in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.len() + 1 + w.len() > width {
            lines.push(w.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(w);
        }
    }
    lines
}

/// A number printed to a sensible precision: 4 significant digits, no
/// trailing zeros (2.9651333336753822 → 2.965).
pub fn round_sig(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let digits = (4 - 1 - x.abs().log10().floor() as i32).clamp(0, 10) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(round_sig(2.9651333336753822), "2.965");
        assert_eq!(round_sig(6.0351), "6.035");
        assert_eq!(round_sig(3.0), "3");
        assert_eq!(round_sig(0.012345), "0.01235");
        assert_eq!(round_sig(1234.6), "1235");
        assert_eq!(round_sig(-0.5), "-0.5");
    }
}
