//! The adherence analyses: what team participation can tell about the
//! effect. `adh_high_low` (as REFOCUS did: treated teams split at the
//! median participation), `adh_dose_response` (the outcome slope per unit
//! participation) and `adh_cace_iv` (the effect at full participation by
//! instrumental variables, robust to confounding of participation with the
//! team's outcome). Used per replicate by a power run and on real data by
//! `crtsim adherence`.

use super::{Estimand, Outcome};
use crate::error::{Error, Result};
use crate::lmm::inference::{coef_tests_into, CoefTests, Coefs, TestOptions, TestWork};
use crate::lmm::{Fit, Model};

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
        self.run_with(data, &mut AdherenceWork::default())
    }

    /// [`AdherenceAnalyses::run`] with reused models and storage (a power
    /// worker keeps one `work`): allocates nothing in steady state.
    pub fn run_with(
        &self,
        data: &crate::lmm::data::DataFrame,
        w: &mut AdherenceWork,
    ) -> [Outcome; 4] {
        use crate::lmm::data::ColumnData;
        let failed = [Outcome::failed(); 4];
        let num = |name: &str| match data.column(name).map(|c| &c.data) {
            Ok(ColumnData::Numeric(v)) => Some(v.as_slice()),
            _ => None,
        };
        let (Some(arm), Some(part)) = (num(&self.term), num("team_adherence")) else {
            return failed;
        };
        let Ok(team) = data.column(&self.cluster) else {
            return failed;
        };
        // Participation of each treated team (first row of the team), in
        // the order of the teams' names.
        w.tp.clear();
        let treated = |i: usize| arm[i] == 1.0 && !part[i].is_nan() && !team.is_missing(i);
        match &team.data {
            ColumnData::Categorical { codes, levels } => {
                w.first.clear();
                w.first.resize(levels.len(), f64::NAN);
                for i in (0..data.nrows()).filter(|&i| treated(i)) {
                    let c = codes[i] as usize;
                    if w.first[c].is_nan() {
                        w.first[c] = part[i];
                    }
                }
                w.order.clear();
                w.order
                    .extend((0..levels.len() as u32).filter(|&c| !w.first[c as usize].is_nan()));
                w.order
                    .sort_unstable_by(|&a, &b| levels[a as usize].cmp(&levels[b as usize]));
                w.tp.extend(w.order.iter().map(|&c| w.first[c as usize]));
            }
            ColumnData::Numeric(_) => {
                let mut seen = std::collections::BTreeMap::new();
                for i in (0..data.nrows()).filter(|&i| treated(i)) {
                    seen.entry(team.text(i)).or_insert(part[i]);
                }
                w.tp.extend(seen.into_values());
            }
        }
        let itt = w.lmm(0, &self.parsed, data, &self.term, self.alpha);
        let dose = w.lmm(1, &self.dr_formula, data, "team_adherence", self.alpha);
        let cut = self.cut.unwrap_or_else(|| {
            w.sorted.clone_from(&w.tp);
            crate::stats::median_in_place(&mut w.sorted)
        });
        let mut hl_df = std::mem::take(&mut w.hl_df);
        let k = hl_df.copy_slots_from(data);
        let high = hl_df.slot_numeric(k, "high_participation");
        high.extend(arm.iter().zip(part).map(|(&a, &p)| {
            if a == 1.0 {
                f64::from(u8::from(p > cut))
            } else {
                f64::NAN
            }
        }));
        hl_df.finish_slots(k + 1);
        let hl = if data.columns.iter().any(|c| c.name == "high_participation") {
            Outcome::failed() // a clash with the data's own column
        } else {
            w.lmm(
                2,
                &self.hl_formula,
                &hl_df,
                "high_participation",
                self.alpha,
            )
        };
        w.hl_df = hl_df;
        // Wald / IV: ITT over the treated teams' mean participation (control
        // participation is 0 by design); delta-method SE.
        let tp = &w.tp;
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

/// Reused models and storage for [`AdherenceAnalyses::run_with`].
#[derive(Default)]
pub struct AdherenceWork {
    /// The ITT, dose-response and high/low models.
    models: [Option<Model>; 3],
    fit: Fit,
    tests: CoefTests,
    test_work: TestWork,
    first: Vec<f64>,
    order: Vec<u32>,
    tp: Vec<f64>,
    sorted: Vec<f64>,
    hl_df: crate::lmm::data::DataFrame,
}

impl AdherenceWork {
    /// The LMM of `formula` on `df` (model slot `slot`), coefficient `name`
    /// tested with Satterthwaite df.
    fn lmm(
        &mut self,
        slot: usize,
        formula: &crate::lmm::formula::Formula,
        df: &crate::lmm::data::DataFrame,
        name: &str,
        alpha: f64,
    ) -> Outcome {
        let Some(m) = Model::update_or_build(&mut self.models[slot], formula, df) else {
            return Outcome::failed();
        };
        let Some(j) = m.frame.x_names.iter().position(|n| n == name) else {
            return Outcome::failed();
        };
        m.fit_into(&mut self.fit);
        let sat = TestOptions {
            satterthwaite: true,
            kenward_roger: false,
            between_within: false,
        };
        coef_tests_into(
            m,
            &self.fit,
            sat,
            Coefs::One(j),
            &mut self.test_work,
            &mut self.tests,
        );
        let fit = &self.fit;
        Outcome::new(
            fit.beta[j],
            fit.se(j),
            self.tests.df_satterthwaite[j],
            fit.singular,
            fit.optimizer.converged,
            alpha,
        )
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
