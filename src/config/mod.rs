//! The trial configuration: a TOML file, optionally amended by `--set key=value`
//! overrides, deserialised into typed sections and validated.
//!
//! Unknown keys are errors (every section is `deny_unknown_fields`), and every
//! value that parses but is out of range gets an error naming the key, e.g.
//! `outcome.icc = 1.2: must be in [0, 1)`.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the schema (one struct per section), loading, the default formula, term and methods |
//! | `bounds.rs` | bounds on every number ([`limits`]) |
//! | `validate.rs` | one validator per section |
//! | `overrides.rs` | `--set key=value` |

use crate::analysis::{Analysis, LmmDf};
use crate::error::{Error, Result};
pub use crate::measure::Measure;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use bounds::limits;
pub use overrides::apply_override;

mod bounds;
mod overrides;
mod validate;

/// A whole trial configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub trial: TrialSection,
    pub clusters: Clusters,
    pub outcome: Outcome,
    #[serde(default)]
    pub effect: Effect,
    #[serde(default)]
    pub attrition: Attrition,
    #[serde(default)]
    pub analysis: AnalysisSection,
    /// `[adherence]`: team participation and dose–response (absent: every
    /// treated team and staff member adheres fully).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adherence: Option<AdherenceConfig>,
    /// `[stepped_wedge]`: sequences, periods, sampling, trend and lag
    /// (required when `trial.design = "stepped_wedge"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stepped_wedge: Option<SteppedWedge>,
    /// `[sweep]`: config keys to vary over a grid, e.g.
    /// `"clusters.teams" = [20, 30, 40]` (quoted dotted keys).
    /// Keys may also be written unquoted (`clusters.teams = [...]`), which
    /// TOML reads as nested tables; both spellings mean the same key.
    #[serde(
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty",
        deserialize_with = "flat_sweep"
    )]
    pub sweep: std::collections::BTreeMap<String, Vec<toml::Value>>,
    /// `[sources]`: where each assumption comes from, by config key, e.g.
    /// `"outcome.icc" = "Campbell et al. 2005, table 2"` (shown by
    /// `crtsim report`; not part of the run identity).
    #[serde(
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty",
        deserialize_with = "flat_sources"
    )]
    pub sources: std::collections::BTreeMap<String, String>,
}

/// `[sources]` as dotted keys, whether written quoted or as nested tables.
fn flat_sources<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<std::collections::BTreeMap<String, String>, D::Error> {
    use serde::de::Error as _;
    let t = toml::Table::deserialize(d)?;
    let mut out = std::collections::BTreeMap::new();
    let leaf = |key: &str, v: toml::Value| match v {
        toml::Value::String(s) => Ok(s),
        other => Err(format!(
            "sources.\"{key}\" = {other}: expected text, e.g. \"Campbell et al. 2005\""
        )),
    };
    flatten_table("", t, &mut out, &leaf, "sources").map_err(D::Error::custom)?;
    Ok(out)
}

/// A table's leaves as dotted keys (`a.b = 1` and `"a.b" = 1` alike), in
/// order; `leaf` turns each value into the entry or says why it cannot.
fn flatten_table<T>(
    prefix: &str,
    t: toml::Table,
    out: &mut std::collections::BTreeMap<String, T>,
    leaf: &dyn Fn(&str, toml::Value) -> std::result::Result<T, String>,
    what: &str,
) -> std::result::Result<(), String> {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        if let toml::Value::Table(sub) = v {
            flatten_table(&key, sub, out, leaf, what)?;
        } else if out.insert(key.clone(), leaf(&key, v)?).is_some() {
            return Err(format!("{what} key {key} is given twice"));
        }
    }
    Ok(())
}

/// `[sweep]` as dotted keys, whether written quoted or as nested tables.
fn flat_sweep<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<std::collections::BTreeMap<String, Vec<toml::Value>>, D::Error> {
    use serde::de::Error as _;
    let t = toml::Table::deserialize(d)?;
    let mut out = std::collections::BTreeMap::new();
    let leaf = |key: &str, v: toml::Value| match v {
        toml::Value::Array(vals) => Ok(vals),
        other => Err(format!(
            "sweep.\"{key}\" = {other}: expected a list of values, e.g. [20, 30, 40]"
        )),
    };
    flatten_table("", t, &mut out, &leaf, "sweep").map_err(D::Error::custom)?;
    Ok(out)
}

/// `[trial]`: name and design family.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrialSection {
    /// A label carried into outputs.
    #[serde(default = "default_name")]
    pub name: String,
    /// The design family. Only `parallel` for now; stepped-wedge comes later.
    #[serde(default)]
    pub design: DesignKind,
    /// Default seed when the command line gives none.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_name() -> String {
    "trial".to_string()
}

/// Design family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DesignKind {
    /// Parallel cluster-randomised trial with baseline and follow-up.
    #[default]
    Parallel,
    /// Stepped-wedge trial (see `[stepped_wedge]`).
    SteppedWedge,
}

/// `[clusters]`: sites, teams, allocation, team sizes, staff.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Clusters {
    /// Site (stratum) names. Default: one site called `site1`.
    #[serde(default = "default_sites")]
    pub sites: Vec<String>,
    /// Teams in each site, in the order of `sites`. Default: `teams` split as
    /// evenly as possible, earlier sites taking the remainder.
    #[serde(default)]
    pub site_teams: Option<Vec<u32>>,
    /// Total number of teams (clusters).
    pub teams: u32,
    /// Exact number of treated teams. Default: none (see `allocation`).
    #[serde(default)]
    pub treated: Option<u32>,
    /// `simple` or `stratified` (by site).
    #[serde(default)]
    pub allocation: Allocation,
    /// Distribution of the number of service users per team.
    pub size: SizeDist,
    /// Staff per team: an integer, or `{ min = a, max = b }` (uniform).
    #[serde(default = "default_staff")]
    pub staff_per_team: StaffSpec,
}

fn default_sites() -> Vec<String> {
    vec!["site1".to_string()]
}

fn default_staff() -> StaffSpec {
    StaffSpec::Fixed(1)
}

/// Allocation scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    /// Ignore sites: exactly `treated` teams drawn at random from all teams,
    /// or (without `treated`) a fair coin per team, redrawn if an arm is empty.
    Simple,
    /// Randomise within each site: the treated count is split across sites in
    /// proportion to their size (largest remainder), or (without `treated`)
    /// half of each site, a coin deciding an odd team.
    #[default]
    Stratified,
}

/// Team-size distribution `{ dist, mean, cv, min }`, or sizes given per
/// cluster (`{ dist = "given", per_cluster = [...] }`) or, in a
/// cross-sectional stepped wedge, per cluster and period
/// (`{ dist = "given", per_cluster_period = [[...], ...] }`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SizeDist {
    pub dist: SizeKind,
    /// Mean number of service users per team (before truncation at `min`).
    /// With `dist = "given"` it is left out and filled in with the given
    /// sizes' mean when the config is read.
    #[serde(default = "missing_number")]
    pub mean: f64,
    /// Coefficient of variation (SD / mean); `negbin` only.
    #[serde(default)]
    pub cv: Option<f64>,
    /// Smallest team size; smaller draws are redrawn (a truncated distribution).
    #[serde(default = "one")]
    pub min: u32,
    /// `dist = "given"`: each cluster's size, in cluster order (sites in
    /// the order of `sites`; in a stepped wedge, per period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_cluster: Option<Vec<u32>>,
    /// `dist = "given"`, cross-sectional stepped wedge: one row per cluster,
    /// one size per period (0 leaves that cluster-period unobserved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_cluster_period: Option<Vec<Vec<u32>>>,
}

/// Marks a number the file left out (a key required only in some cases).
fn missing_number() -> f64 {
    f64::NAN
}

impl SizeDist {
    /// Every given size (each cluster's, or each cluster-period's).
    fn given_values(&self) -> Vec<f64> {
        match (&self.per_cluster_period, &self.per_cluster) {
            (Some(m), _) => m.iter().flatten().map(|&n| f64::from(n)).collect(),
            (None, Some(v)) => v.iter().map(|&n| f64::from(n)).collect(),
            (None, None) => Vec::new(),
        }
    }

    /// Mean and population variance of the given sizes (each cluster's, or
    /// each cluster-period's); `None` without given sizes.
    pub fn given_moments(&self) -> Option<(f64, f64)> {
        let v = self.given_values();
        if v.is_empty() {
            return None;
        }
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        Some((m, v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n))
    }

    /// Whether every cluster (and period) has the same, known size.
    pub fn is_constant(&self) -> bool {
        match self.dist {
            SizeKind::Fixed => true,
            SizeKind::Poisson | SizeKind::Negbin => false,
            SizeKind::Given => {
                let v = self.given_values();
                v.iter().all(|&x| x == v[0])
            }
        }
    }

    /// With `dist = "given"` and no mean in the file: the given sizes' mean
    /// (what the size bounds, reports and analytic formulas read).
    fn fill_given_mean(&mut self) {
        if self.dist == SizeKind::Given && self.mean.is_nan() {
            if let Some((m, _)) = self.given_moments() {
                self.mean = m;
            }
        }
    }
}

fn one() -> u32 {
    1
}

/// Team-size distribution family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeKind {
    Fixed,
    Poisson,
    Negbin,
    /// Sizes given per cluster or per cluster-period (`per_cluster`,
    /// `per_cluster_period`).
    Given,
}

/// Staff per team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum StaffSpec {
    Fixed(u32),
    Range { min: u32, max: u32 },
}

impl<'de> Deserialize<'de> for StaffSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Fixed(u32),
            Range { min: u32, max: u32 },
        }
        match Raw::deserialize(d) {
            Ok(Raw::Fixed(n)) => Ok(StaffSpec::Fixed(n)),
            Ok(Raw::Range { min, max }) => Ok(StaffSpec::Range { min, max }),
            Err(_) => Err(serde::de::Error::custom(
                "expected a whole number of staff (e.g. 5) or a range { min = 3, max = 7 }",
            )),
        }
    }
}

/// `[outcome]`: QPR measurement and variance structure.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// `qpr15`, `qpr15_items`, `continuous`, `binary` or `count`.
    #[serde(default)]
    pub measure: Measure,
    /// μ, the outcome mean in points (scores only; NaN when left out).
    #[serde(default = "missing_number", skip_serializing_if = "is_nan")]
    pub mean: f64,
    /// σ, the total outcome SD in points (scores only).
    #[serde(default = "missing_number", skip_serializing_if = "is_nan")]
    pub sd: f64,
    /// ρ_team, the team-level ICC (binary: on the latent logit scale, with
    /// residual variance π²/3). A binary outcome may give `k` instead; a
    /// count gives `k`.
    #[serde(default = "missing_number", skip_serializing_if = "is_nan")]
    pub icc: f64,
    /// Binary: the control arm's prevalence (marginal, over clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prevalence: Option<f64>,
    /// Count: the control arm's mean count per person (marginal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Binary or count: Hayes & Bennett's between-cluster coefficient of
    /// variation k of the true cluster proportions or rates (control arm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<f64>,
    /// Count: overdispersion φ, the variance of a mean-one multiplicative
    /// effect per observation (Var(y | cluster) = μ + φμ²); 0 is Poisson.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overdispersion: f64,
    /// Count: the distribution of that effect, `gamma` (negative binomial)
    /// or `lognormal` (an observation-level normal effect on the log scale).
    #[serde(default, skip_serializing_if = "Overdispersion::is_gamma")]
    pub overdispersion_dist: Overdispersion,
    /// Scores (`qpr15`, `continuous`): analyse the binary outcome
    /// score ≥ threshold instead of the score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// ρ_staff, the staff-level ICC.
    #[serde(default)]
    pub icc_staff: f64,
    /// Whether a baseline B is measured.
    #[serde(default = "yes")]
    pub baseline: bool,
    /// Cluster autocorrelation corr(u^B, u^Y) (also used for staff effects).
    #[serde(default)]
    pub cac: Option<f64>,
    /// Individual autocorrelation corr(e^B, e^Y).
    #[serde(default)]
    pub iac: Option<f64>,
    /// γ_s, a follow-up shift per site in points (same order as `clusters.sites`).
    #[serde(default)]
    pub site_effects: Option<Vec<f64>>,
    /// τ, the SD of item-level noise on the 0–4 item scale (`qpr15_items`).
    #[serde(default = "default_item_noise")]
    pub item_noise: f64,
}

fn yes() -> bool {
    true
}

fn is_nan(x: &f64) -> bool {
    x.is_nan()
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The distribution of a count's observation-level overdispersion effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overdispersion {
    /// A gamma multiplier with mean 1 and variance φ (negative binomial).
    #[default]
    Gamma,
    /// exp(N(−s²/2, s²)) with s² = ln(1 + φ): mean 1, variance φ.
    Lognormal,
}

impl Overdispersion {
    fn is_gamma(&self) -> bool {
        *self == Overdispersion::Gamma
    }
}

fn default_item_noise() -> f64 {
    0.6
}

/// `[effect]`: the intervention effect.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Effect {
    /// δ, the effect in points at full adherence (scores).
    #[serde(default)]
    pub difference: f64,
    /// Binary: the odds ratio at full adherence, cluster-specific
    /// (conditional on the cluster effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odds_ratio: Option<f64>,
    /// Binary: the risk difference in marginal prevalence at full
    /// adherence (the conditional odds ratio is solved from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_difference: Option<f64>,
    /// Binary: the treated arm's marginal prevalence at full adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treated_prevalence: Option<f64>,
    /// Count: the rate ratio at full adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_ratio: Option<f64>,
}

impl Effect {
    /// No effect (the null scenario of a power run).
    pub fn null() -> Effect {
        Effect::default()
    }
}

/// `[attrition]`: loss of the follow-up outcome.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Attrition {
    /// Expected proportion p of service users without a follow-up score.
    #[serde(default)]
    pub rate: f64,
    /// `mcar` or `mar`.
    #[serde(default)]
    pub mechanism: Mechanism,
    /// `mar` only: log-odds of dropping out per SD of baseline.
    #[serde(default)]
    pub slope: f64,
}

/// `[analysis]`: how each simulated trial is analysed in a power run.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSection {
    /// LMM formula (lme4 syntax). Default: `qpr ~ arm + baseline + site +
    /// (1|team)`, leaving out `baseline` without one and `site` with one site.
    #[serde(default)]
    pub formula: Option<String>,
    /// The coefficient tested (the treatment). Default `arm`.
    #[serde(default)]
    pub term: Option<String>,
    /// Analyses run on every dataset (names of [`Analysis`]); default: see
    /// [`Config::analysis_methods`].
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Significance level. Default 0.05.
    #[serde(default)]
    pub alpha: Option<f64>,
}

impl Config {
    /// The analysis formula (configured or the design's default).
    pub fn analysis_formula(&self) -> String {
        if let Some(f) = &self.analysis.formula {
            return f.clone();
        }
        if self.trial.design == DesignKind::SteppedWedge {
            let cohort = self
                .stepped_wedge
                .as_ref()
                .is_some_and(|sw| sw.sampling == Sampling::Cohort);
            return if cohort {
                // The same people in every period: their own random intercept.
                "qpr ~ treat + period + (1|cluster) + (1|cluster:period) + (1|cluster:individual)"
                    .into()
            } else {
                "qpr ~ treat + period + (1|cluster) + (1|cluster:period)".into()
            };
        }
        let mut f = "qpr ~ arm".to_string();
        if self.outcome.baseline {
            f.push_str(" + baseline");
        }
        if self.clusters.sites.len() > 1 {
            f.push_str(" + site");
        }
        f.push_str(" + (1|team)");
        f
    }

    /// The tested coefficient's name.
    pub fn analysis_term(&self) -> String {
        let default = if self.trial.design == DesignKind::SteppedWedge {
            "treat"
        } else {
            "arm"
        };
        self.analysis.term.clone().unwrap_or_else(|| default.into())
    }

    /// The analyses to run: as configured, else the five ITT analyses, plus
    /// the three adherence analyses when `[adherence]` is present. (A
    /// validated config names only analyses; any other name is skipped.)
    pub fn analysis_methods(&self) -> Vec<Analysis> {
        match &self.analysis.methods {
            Some(m) => m.iter().filter_map(|n| Analysis::from_name(n)).collect(),
            None => {
                let sw = self.trial.design == DesignKind::SteppedWedge;
                // A cohort's people and periods are crossed within clusters:
                // between-within df need nested factors.
                let cohort = sw
                    && self
                        .stepped_wedge
                        .as_ref()
                        .is_some_and(|s| s.sampling == Sampling::Cohort);
                // A binary or count outcome is analysed by GLMM and GEE
                // (and cluster_t); a score by LMMs.
                let glm = self.outcome.measure.is_discrete() || self.outcome.threshold.is_some();
                Analysis::all()
                    .filter(|a| a.in_default_set())
                    .filter(|a| {
                        if glm {
                            !a.needs_lmm() && !a.is_adherence()
                        } else {
                            !a.is_glmm()
                        }
                    })
                    .filter(|a| self.adherence.is_some() || !a.is_adherence())
                    // The two-stage cluster-level test needs a treatment
                    // constant within clusters.
                    .filter(|a| !(sw && *a == Analysis::ClusterT))
                    .filter(|a| !(cohort && *a == Analysis::Lmm(LmmDf::BetweenWithin)))
                    .collect()
            }
        }
    }

    /// The significance level.
    pub fn alpha(&self) -> f64 {
        self.analysis.alpha.unwrap_or(0.05)
    }
}

/// `[stepped_wedge]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SteppedWedge {
    /// Number of sequences (standard design: sequences + 1 periods, sequence
    /// s crossing over after period s). Ignored when `matrix` is given.
    #[serde(default)]
    pub sequences: Option<u32>,
    /// Explicit design: one 0/1 row per sequence, one column per period.
    #[serde(default)]
    pub matrix: Option<Vec<Vec<u8>>>,
    /// `cross_sectional` (fresh individuals each period) or `cohort`.
    #[serde(default)]
    pub sampling: Sampling,
    /// The first exposed period: `none` (fully exposed), `exclude` (no
    /// observations), or `half` (half the effect).
    #[serde(default)]
    pub transition: Transition,
    /// Period effects β_t in points, one per period (default 0).
    #[serde(default)]
    pub time_trend: Option<Vec<f64>>,
    /// Linear time trend in points per period (added to `time_trend`).
    #[serde(default)]
    pub trend_slope: f64,
    /// Implementation lag: fraction of the effect in the 1st, 2nd, ...
    /// exposed period (then 1), e.g. [0.5].
    #[serde(default)]
    pub lag: Vec<f64>,
}

/// Sampling in a stepped-wedge trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    #[default]
    CrossSectional,
    Cohort,
}

/// Treatment of the first exposed period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    #[default]
    None,
    Exclude,
    Half,
}

/// One cluster-period of a stepped-wedge sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwCell {
    /// The treatment column the analysis sees: 0/1, 0.5 in a half-exposed
    /// transition period, None when the transition period is excluded.
    pub exposure: Option<f64>,
    /// Periods since crossover (0 in the first exposed period; −1 before).
    pub since: i32,
    /// Share of the effect reached (the implementation lag; 1 without one).
    pub lag: f64,
}

/// Period `t` of a sequence's 0/1 `row`: the one rule the simulator and the
/// GLS power both use for transitions and implementation lag.
pub fn sw_cell(row: &[u8], t: usize, transition: Transition, lag: &[f64]) -> SwCell {
    let first = row.iter().position(|&x| x == 1);
    let since = match first {
        Some(f) if row[t] == 1 => t as i32 - f as i32,
        _ => -1,
    };
    let exposure = match (since, transition) {
        (0, Transition::Exclude) => None,
        (0, Transition::Half) => Some(0.5),
        _ => Some(f64::from(row[t])),
    };
    let lag = if since >= 0 {
        lag.get(since as usize).copied().unwrap_or(1.0)
    } else {
        1.0
    };
    SwCell {
        exposure,
        since,
        lag,
    }
}

impl SteppedWedge {
    /// The design matrix (sequences × periods).
    pub fn matrix(&self) -> Vec<Vec<u8>> {
        match &self.matrix {
            Some(m) => m.clone(),
            None => {
                let s = self.sequences.unwrap_or(0) as usize;
                (0..s)
                    .map(|k| (0..=s).map(|t| u8::from(t > k)).collect())
                    .collect()
            }
        }
    }
}

/// `[adherence]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdherenceConfig {
    /// Team participation of treated teams.
    pub team: TeamAdherence,
    /// Spread of staff adherence around the team's: Beta(a·s, (1 − a)·s).
    #[serde(default)]
    pub staff_concentration: Option<f64>,
    /// Gaussian-copula correlation between participation and the team effect.
    #[serde(default)]
    pub confounding: f64,
    /// Dose–response g: `linear`, `threshold` or `emax`.
    #[serde(default)]
    pub dose: DoseKind,
    /// `threshold`: τ in [0, 1].
    #[serde(default)]
    pub threshold: Option<f64>,
    /// `emax`: EC50 > 0.
    #[serde(default)]
    pub ec50: Option<f64>,
    /// High/low participation cut (default: median of the treated teams).
    #[serde(default)]
    pub cut: Option<f64>,
}

/// `adherence.team = { dist = ..., ... }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TeamAdherence {
    pub dist: TeamAdherenceKind,
    #[serde(default)]
    pub mean: Option<f64>,
    #[serde(default)]
    pub concentration: Option<f64>,
    #[serde(default)]
    pub values: Option<Vec<f64>>,
    #[serde(default)]
    pub high: Option<f64>,
    #[serde(default)]
    pub low: Option<f64>,
    #[serde(default)]
    pub p_high: Option<f64>,
}

/// Team participation distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamAdherenceKind {
    Beta,
    Fixed,
    Mixture,
}

/// Dose–response shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseKind {
    #[default]
    Linear,
    Threshold,
    Emax,
}

/// Missingness mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    #[default]
    Mcar,
    Mar,
}

impl Config {
    /// Read a TOML file, apply `key=value` overrides, parse and validate.
    pub fn load(path: impl AsRef<Path>, overrides: &[String]) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text, overrides).map_err(|e| prefix(e, &path.display().to_string()))
    }

    /// Parse TOML text, apply overrides, and validate.
    pub fn from_toml_str(text: &str, overrides: &[String]) -> Result<Config> {
        let cfg = Self::parse_unvalidated(text, overrides)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse TOML text and apply overrides, without range checks (a sweep
    /// adjusts dependent keys before validating).
    pub fn parse_unvalidated(text: &str, overrides: &[String]) -> Result<Config> {
        let cfg: Config = if overrides.is_empty() {
            toml::from_str(text).map_err(|e| Error::Parse(describe_toml_error(text, &e, true)))?
        } else {
            let mut table: toml::Table = toml::from_str(text)
                .map_err(|e| Error::Parse(describe_toml_error(text, &e, true)))?;
            for o in overrides {
                apply_override(&mut table, o)?;
            }
            let amended =
                toml::to_string(&table).map_err(|e| Error::Parse(format!("after --set: {e}")))?;
            // Line numbers of the amended text mean nothing to the user: report the key.
            toml::from_str(&amended)
                .map_err(|e| Error::Parse(describe_toml_error(&amended, &e, false)))?
        };
        let mut cfg = cfg;
        cfg.clusters.size.fill_given_mean();
        Ok(cfg)
    }
}

/// One line for a TOML parse or schema error: the dotted key it concerns
/// (found from the error's span), the message, and the line when it helps.
fn describe_toml_error(text: &str, e: &toml::de::Error, with_line: bool) -> String {
    let msg = plain_types(e.message().trim());
    let Some(span) = e.span() else {
        return msg;
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let mut section = String::new();
    for l in text.lines().take(line_no) {
        let l = l.trim();
        if l.starts_with('[') && !l.starts_with("[[") {
            section = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    let key = if !line.starts_with('[') {
        line.split('=').next().map(str::trim).unwrap_or("")
    } else {
        ""
    };
    let path = match (section.is_empty(), key.is_empty()) {
        (false, false) => format!("{section}.{key}"),
        (false, true) => format!("[{section}]"),
        (true, false) => key.to_string(),
        (true, true) => String::new(),
    };
    let loc = if with_line {
        format!(" (line {line_no})")
    } else {
        String::new()
    };
    if path.is_empty() {
        format!("{msg}{loc}")
    } else {
        format!("{path}: {msg}{loc}")
    }
}

/// Serde's type names in words a config's author uses: "expected f64"
/// becomes "expected a number", "expected u32" "expected a whole number
/// (0 or more)".
pub fn plain_types(msg: &str) -> String {
    let mut m = msg.to_string();
    for (rust, words) in [
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected u8", "expected a whole number (0 or more)"),
        ("expected u16", "expected a whole number (0 or more)"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected a sequence", "expected a list, e.g. [1, 2]"),
        ("floating point `", "the number `"),
        ("invalid value: integer `", "invalid value: `"),
        (
            "invalid type: integer `",
            "invalid type: the whole number `",
        ),
    ] {
        m = m.replace(rust, words);
    }
    m
}

fn prefix(e: Error, file: &str) -> Error {
    match e {
        Error::Parse(m) => Error::Parse(format!("{file}: {m}")),
        Error::Invalid {
            key,
            value,
            expected,
        } => Error::Invalid {
            key: format!("{file}: {key}"),
            value,
            expected,
        },
        other => other,
    }
}
