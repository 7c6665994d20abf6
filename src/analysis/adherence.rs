//! The adherence analyses: what team participation can tell about the
//! effect. `adh_high_low` (as REFOCUS did: treated teams split at the
//! median participation), `adh_dose_response` (the outcome slope per unit
//! participation) and `adh_cace_iv` (the effect at full participation by
//! instrumental variables, robust to confounding of participation with the
//! team's outcome). Used per replicate by a power run and on real data by
//! `crtsim adherence`.

use super::{Estimand, Outcome};
use crate::error::{Error, Result};
use crate::lmm::inference::{coef_tests_with, TestOptions};
use crate::lmm::Model;

/// One adherence analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AdherenceAnalysis {
    HighLow,
    DoseResponse,
    CaceIv,
}

impl AdherenceAnalysis {
    pub const ALL: [AdherenceAnalysis; 3] = [
        AdherenceAnalysis::HighLow,
        AdherenceAnalysis::DoseResponse,
        AdherenceAnalysis::CaceIv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AdherenceAnalysis::HighLow => "adh_high_low",
            AdherenceAnalysis::DoseResponse => "adh_dose_response",
            AdherenceAnalysis::CaceIv => "adh_cace_iv",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AdherenceAnalysis::HighLow => "High vs low participation (treated teams)",
            AdherenceAnalysis::DoseResponse => "Dose-response on participation",
            AdherenceAnalysis::CaceIv => "CACE by instrumental variables",
        }
    }

    pub fn estimand(self) -> Estimand {
        match self {
            AdherenceAnalysis::HighLow => Estimand::HighLowContrast,
            AdherenceAnalysis::DoseResponse | AdherenceAnalysis::CaceIv => {
                Estimand::FullParticipation
            }
        }
    }

    /// Its position in [`AdherenceAnalyses::run`]'s result.
    fn slot(self) -> usize {
        match self {
            AdherenceAnalysis::HighLow => 1,
            AdherenceAnalysis::DoseResponse => 2,
            AdherenceAnalysis::CaceIv => 3,
        }
    }

    /// This analysis' outcome among [`AdherenceAnalyses::run`]'s.
    pub fn pick(self, results: &[Outcome; 4]) -> Outcome {
        results[self.slot()]
    }
}

/// The ITT and adherence analyses of one dataset, for any data frame with the
/// formula's columns plus `team` and `team_adherence` (the team's
/// participation; 0 in control teams): ITT (LMM, Satterthwaite), high vs low
/// participation, dose–response LMM and CACE/IV. Used per replicate by
/// `power` and on real data by `crtsim adherence`.
#[derive(Debug, Clone)]
pub struct AdherenceAnalyses {
    parsed: crate::lmm::formula::Formula,
    term: String,
    /// The cluster column (whose participation is `team_adherence`).
    cluster: String,
    hl_formula: crate::lmm::formula::Formula,
    dr_formula: crate::lmm::formula::Formula,
    cut: Option<f64>,
    alpha: f64,
}

/// Row names of the table [`AdherenceAnalyses::run`] returns, in order
/// (the ITT row first, then [`AdherenceAnalysis::ALL`]).
pub const TABLE_NAMES: [&str; 4] = [
    "itt_satterthwaite",
    "adh_high_low",
    "adh_dose_response",
    "adh_cace_iv",
];

impl AdherenceAnalyses {
    /// Set up from the ITT formula and its treatment term.
    ///
    /// The cluster whose participation `team_adherence` holds is the
    /// formula's `team` or `cluster` grouping factor.
    pub fn new(
        formula: &str,
        term: &str,
        cut: Option<f64>,
        alpha: f64,
    ) -> Result<AdherenceAnalyses> {
        if !(alpha > 0.0 && alpha < 0.5) {
            return Err(Error::Usage(format!(
                "--alpha {alpha}: must be in (0, 0.5)"
            )));
        }
        if let Some(c) = cut.filter(|c| !(0.0..=1.0).contains(c)) {
            return Err(Error::Usage(format!(
                "--cut {c}: the high/low participation cut must be in [0, 1]"
            )));
        }
        let parsed = crate::lmm::formula::Formula::parse(formula)?;
        if !parsed.fixed.iter().any(|t| t.len() == 1 && t[0] == term) {
            return Err(Error::Usage(format!(
                "the formula `{formula}` has no `{term}` term to replace"
            )));
        }
        let swap = |name: &str| {
            let mut f = parsed.clone();
            for t in f.fixed.iter_mut() {
                for v in t.iter_mut() {
                    if *v == term {
                        *v = name.to_string();
                    }
                }
            }
            f
        };
        // The cluster: `team` (parallel designs) or `cluster` (stepped
        // wedge) when the formula uses it (as a grouping factor or a fixed
        // effect), else its first single-column grouping factor.
        let groups: Vec<&String> = parsed
            .random
            .iter()
            .filter(|r| r.group.len() == 1)
            .map(|r| &r.group[0])
            .collect();
        let vars = parsed.variables();
        let cluster = ["team", "cluster"]
            .iter()
            .find(|c| groups.iter().any(|g| g == *c) || vars.iter().any(|v| v == *c))
            .map(|c| c.to_string())
            .or_else(|| groups.first().map(|g| g.to_string()))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "the formula `{formula}` has no single-column grouping factor to take as the cluster, e.g. (1|team)"
                ))
            })?;
        Ok(AdherenceAnalyses {
            cluster,
            hl_formula: swap("high_participation"),
            dr_formula: swap("team_adherence"),
            parsed,
            term: term.to_string(),
            cut,
            alpha,
        })
    }

    /// The cluster column (the formula's `team` or `cluster` grouping).
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Run the four analyses (in [`TABLE_NAMES`] order).
    pub fn run(&self, data: &crate::lmm::data::DataFrame) -> [Outcome; 4] {
        use crate::lmm::data::{Column, ColumnData, DataFrame};
        let failed = [Outcome::failed(); 4];
        let num = |name: &str| match data.column(name).map(|c| &c.data) {
            Ok(ColumnData::Numeric(v)) => Some(v.clone()),
            _ => None,
        };
        let (Some(arm), Some(part)) = (num(&self.term), num("team_adherence")) else {
            return failed;
        };
        let Ok(team) = data.column(&self.cluster) else {
            return failed;
        };
        // Participation of each treated team (first row of the team).
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..data.nrows() {
            if arm[i] == 1.0 && !part[i].is_nan() && !team.is_missing(i) {
                seen.entry(team.text(i)).or_insert(part[i]);
            }
        }
        let tp: Vec<f64> = seen.into_values().collect();
        let sat = TestOptions {
            satterthwaite: true,
            kenward_roger: false,
            between_within: false,
        };
        let lmm = |f: &crate::lmm::formula::Formula, df: &DataFrame, name: &str| -> Outcome {
            let Ok(mut m) = Model::from_formula(f, df, true) else {
                return Outcome::failed();
            };
            let Some(j) = m.frame.x_names.iter().position(|n| n == name) else {
                return Outcome::failed();
            };
            let fit = m.fit();
            let t = coef_tests_with(&m, &fit, sat);
            Outcome::new(
                fit.beta[j],
                fit.se(j),
                t.df_satterthwaite[j],
                fit.singular,
                fit.optimizer.converged,
                self.alpha,
            )
        };
        let itt = lmm(&self.parsed, data, &self.term);
        let dose = lmm(&self.dr_formula, data, "team_adherence");
        let cut = self.cut.unwrap_or_else(|| crate::stats::median(&tp));
        let high: Vec<f64> = arm
            .iter()
            .zip(&part)
            .map(|(&a, &p)| {
                if a == 1.0 {
                    f64::from(u8::from(p > cut))
                } else {
                    f64::NAN
                }
            })
            .collect();
        let mut cols = data.columns.clone();
        cols.push(Column::numeric("high_participation", high));
        let hl = match DataFrame::from_columns(cols) {
            Ok(df) => lmm(&self.hl_formula, &df, "high_participation"),
            Err(_) => Outcome::failed(),
        };
        // Wald / IV: ITT over the treated teams' mean participation (control
        // participation is 0 by design); delta-method SE.
        let k1 = tp.len() as f64;
        let abar = tp.iter().sum::<f64>() / k1;
        let iv = if itt.failed || !(abar > 0.0) || k1 < 2.0 {
            Outcome::failed()
        } else {
            let var_a = tp.iter().map(|p| (p - abar).powi(2)).sum::<f64>() / (k1 - 1.0) / k1;
            let est = itt.estimate / abar;
            let se = (itt.se.powi(2) / abar.powi(2) + itt.estimate.powi(2) * var_a / abar.powi(4))
                .sqrt();
            Outcome::new(est, se, itt.df, itt.singular, itt.converged, self.alpha)
        };
        [itt, hl, dose, iv]
    }
}

/// The adherence analyses of one data frame as JSON (one object per row of
/// [`TABLE_NAMES`]; non-finite numbers as null).
pub fn results_json(res: &[Outcome]) -> serde_json::Value {
    let f = |x: f64| {
        if x.is_finite() {
            serde_json::json!(x)
        } else {
            serde_json::Value::Null
        }
    };
    let rows: Vec<serde_json::Value> = TABLE_NAMES
        .iter()
        .zip(res)
        .map(|(n, o)| {
            serde_json::json!({"analysis": n, "estimate": f(o.estimate), "se": f(o.se), "df": f(o.df),
                "p": f(o.p), "ci_lo": f(o.lo), "ci_hi": f(o.hi), "failed": o.failed, "singular": o.singular})
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// The adherence analyses of one data frame as a readable table.
pub fn adherence_table(names: &[&str], res: &[Outcome], alpha: f64) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<18} {:>10} {:>9} {:>8} {:>10} {:>22}",
        "analysis",
        "estimate",
        "SE",
        "df",
        "p",
        format!("{:.0}% CI", 100.0 * (1.0 - alpha))
    );
    for (n, o) in names.iter().zip(res) {
        if o.failed {
            let _ = writeln!(t, "{n:<18} {:>10}", "failed");
            continue;
        }
        let _ = writeln!(
            t,
            "{n:<18} {:>10.4} {:>9.4} {:>8.2} {:>10.4} {:>22}",
            o.estimate,
            o.se,
            o.df,
            o.p,
            format!("[{:.3}, {:.3}]", o.lo, o.hi)
        );
    }
    let _ = writeln!(
        t,
        "itt_satterthwaite estimates delta*E[g(a)]; adh_high_low the high-minus-low participation contrast among treated teams (confounded if better teams take part more); adh_dose_response the outcome slope per unit participation (likewise); adh_cace_iv the effect at full participation under a linear dose-response and the exclusion restriction (robust to such confounding)."
    );
    t
}
