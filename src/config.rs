//! The trial configuration: a TOML file, optionally amended by `--set key=value`
//! overrides, deserialised into typed sections and validated.
//!
//! Unknown keys are errors (every section is `deny_unknown_fields`), and every
//! value that parses but is out of range gets an error naming the key, e.g.
//! `outcome.icc = 1.2: must be in [0, 1)`.

use crate::analysis::{Analysis, LmmDf};
use crate::error::{Error, Result};
pub use crate::measure::Measure;
use serde::{Deserialize, Serialize};
use std::path::Path;

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
}

/// `[sweep]` as dotted keys, whether written quoted or as nested tables.
fn flat_sweep<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<std::collections::BTreeMap<String, Vec<toml::Value>>, D::Error> {
    use serde::de::Error as _;
    fn walk(
        prefix: &str,
        t: toml::Table,
        out: &mut std::collections::BTreeMap<String, Vec<toml::Value>>,
    ) -> std::result::Result<(), String> {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(sub) => walk(&key, sub, out)?,
                toml::Value::Array(vals) => {
                    if out.insert(key.clone(), vals).is_some() {
                        return Err(format!("sweep key {key} is given twice"));
                    }
                }
                other => {
                    return Err(format!(
                        "sweep.\"{key}\" = {other}: expected a list of values, e.g. [20, 30, 40]"
                    ))
                }
            }
        }
        Ok(())
    }
    let t = toml::Table::deserialize(d)?;
    let mut out = std::collections::BTreeMap::new();
    walk("", t, &mut out).map_err(D::Error::custom)?;
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

/// Team-size distribution `{ dist, mean, cv, min }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SizeDist {
    pub dist: SizeKind,
    /// Mean number of service users per team (before truncation at `min`).
    pub mean: f64,
    /// Coefficient of variation (SD / mean); `negbin` only.
    #[serde(default)]
    pub cv: Option<f64>,
    /// Smallest team size; smaller draws are redrawn (a truncated distribution).
    #[serde(default = "one")]
    pub min: u32,
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
    /// `qpr15`, `qpr15_items` or `continuous`.
    #[serde(default)]
    pub measure: Measure,
    /// μ, the outcome mean in points.
    pub mean: f64,
    /// σ, the total outcome SD in points.
    pub sd: f64,
    /// ρ_team, the team-level ICC.
    pub icc: f64,
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

fn default_item_noise() -> f64 {
    0.6
}

/// `[effect]`: the intervention effect.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Effect {
    /// δ, the effect in points at full adherence.
    #[serde(default)]
    pub difference: f64,
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
                Analysis::all()
                    .filter(|a| a.in_default_set())
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

    fn validate(&self, cfg: &Config) -> Result<()> {
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
        Ok(cfg)
    }

    /// Check every value range; the first violation is returned. Cheap
    /// bounds on every number come first ([`Config::check_bounds`]), so no
    /// later check costs time or memory in proportion to a value.
    pub fn validate(&self) -> Result<()> {
        self.check_bounds()?;
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

        let o = &self.outcome;
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
        if let Some(g) = &o.site_effects {
            if g.len() != c.sites.len() {
                return Err(Error::invalid(
                    "outcome.site_effects",
                    format!("{g:?}"),
                    &format!("must have one entry per site ({} sites)", c.sites.len()),
                ));
            }
        }
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
        let a = &self.attrition;
        if !(0.0..1.0).contains(&a.rate) {
            return Err(Error::invalid(
                "attrition.rate",
                a.rate,
                "must be in [0, 1)",
            ));
        }
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
fn in_range(key: &str, x: f64, lo: f64, hi: f64) -> Result<()> {
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
fn bound(x: f64) -> String {
    if x != 0.0 && !(1e-3..1e6).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{}", (x * 1e6).round() / 1e6)
    }
}

fn text_len(key: &str, s: &str) -> Result<()> {
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
        if continuous {
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
        let shift = SHIFT_SDS * o.sd;
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

impl AdherenceConfig {
    fn validate(&self, teams: u32) -> Result<()> {
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

/// Apply one `section.key=value` override to a parsed TOML table. The value is
/// read as a TOML value (`40`, `0.1`, `true`, `["A","B"]`, `{ dist = "fixed", mean = 10 }`);
/// anything that does not parse as one is taken as a string.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    let (key, raw) = spec.split_once('=').ok_or_else(|| {
        Error::Usage(format!(
            "--set {spec}: expected key=value, e.g. outcome.icc=0.1"
        ))
    })?;
    let key = key.trim();
    let raw = raw.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Usage(format!(
            "--set {spec}: key `{key}` must be dotted names, e.g. clusters.teams"
        )));
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let mut cur = table;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur.insert((*p).to_string(), value);
            return Ok(());
        }
        let entry = cur
            .entry((*p).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(Error::Usage(format!(
                    "--set {spec}: `{}` is a value, not a section",
                    parts[..=i].join(".")
                )))
            }
        };
    }
    Ok(())
}

/// One line for a TOML parse or schema error: the dotted key it concerns
/// (found from the error's span), the message, and the line when it helps.
fn describe_toml_error(text: &str, e: &toml::de::Error, with_line: bool) -> String {
    let msg = e.message().trim().to_string();
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
