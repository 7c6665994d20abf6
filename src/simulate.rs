//! The data-generating process of a parallel cluster trial (see the README for
//! the equations). A [`Simulator`] is built once per config; each call to
//! [`Simulator::simulate_into`] draws one trial into a reusable [`Dataset`].
//!
//! Draw order within a replicate (fixed, so a seed always gives the same trial):
//! allocation; then team by team: size, staff count, team effects (u^B, u^Y),
//! staff effects (w^B, w^Y) for each staff member, then each service user's
//! residuals (e^B, e^Y), measurement of B and Y, and attrition.

use crate::config::{Config, Measure, Mechanism};
use crate::design::{Design, SteppedWedgeDesign};
use crate::error::Result;
use crate::measure::{self, expit, observe};
use crate::rng::{replicate_rng, TrialRng};
use crate::variance::{Latent, Level, VarianceComponents};
use rand::Rng;
use rand_distr::StandardNormal;

/// Column names of a simulated parallel trial (its CSV and data frame), in order.
pub const COLUMNS: [&str; 9] = [
    "site",
    "team",
    "staff",
    "user",
    "arm",
    "adherence",
    "baseline",
    "qpr",
    "team_adherence",
];

/// One simulated trial, one entry per service user (struct of arrays).
/// Missing values are `NaN`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// Scratch for the randomisation and the simulation (not data).
    scratch_idx: Vec<usize>,
    scratch_f: Vec<f64>,
    /// Site index (into [`Design::site_names`]).
    pub site: Vec<u16>,
    /// Team index, 0-based, numbered site by site.
    pub team: Vec<u32>,
    /// Staff index, 0-based and unique across teams.
    pub staff: Vec<u32>,
    /// Randomised arm A_j (1 = intervention).
    pub arm: Vec<u8>,
    /// Adherence a_jk of the user's staff member (for now 1 if treated, 0 if not).
    pub adherence: Vec<f64>,
    /// Baseline score B (NaN when the design has no baseline).
    pub baseline: Vec<f64>,
    /// Follow-up score Y (NaN when lost to follow-up).
    pub qpr: Vec<f64>,
    /// Arm of each team.
    pub team_arm: Vec<u8>,
    /// Number of service users recruited in each team.
    pub team_size: Vec<u32>,
    /// Number of staff in each team.
    pub team_staff: Vec<u32>,
    /// Participation a_j of each team (0 for control teams).
    pub team_participation: Vec<f64>,
    /// Follow-up team effect u_j^Y of each team (latent points; diagnostics).
    pub team_effect: Vec<f64>,
    /// Participation of each user's team (per user).
    pub team_adherence: Vec<f64>,
    /// Stepped-wedge only (empty otherwise): period of each row (0-based),
    /// exposure (1, 0.5 in a half transition period, 0), periods since
    /// crossover (−1 before it), and each cluster's sequence (0-based).
    pub period: Vec<u16>,
    pub exposure: Vec<f64>,
    pub time_since: Vec<i32>,
    pub team_sequence: Vec<u16>,
    staff_b: Vec<f64>,
    staff_y: Vec<f64>,
    staff_adh: Vec<f64>,
}

impl Dataset {
    /// Number of service users (rows).
    pub fn len(&self) -> usize {
        self.qpr.len()
    }

    /// True when no service users were simulated.
    pub fn is_empty(&self) -> bool {
        self.qpr.is_empty()
    }

    /// Number of users with an observed follow-up score.
    pub fn n_followup(&self) -> usize {
        self.qpr.iter().filter(|y| !y.is_nan()).count()
    }

    fn clear(&mut self) {
        self.site.clear();
        self.team.clear();
        self.staff.clear();
        self.arm.clear();
        self.adherence.clear();
        self.baseline.clear();
        self.qpr.clear();
        self.team_size.clear();
        self.team_staff.clear();
        self.team_participation.clear();
        self.team_effect.clear();
        self.team_adherence.clear();
        self.period.clear();
        self.exposure.clear();
        self.time_since.clear();
        self.team_sequence.clear();
    }
}

/// Attrition model: P(Y missing) = expit(α + β·z), z the standardised latent
/// baseline (β = 0 for MCAR, giving expit(α) = p).
#[derive(Debug, Clone, Copy)]
struct AttritionModel {
    rate: f64,
    alpha: f64,
    beta: f64,
}

/// A ready-to-run data-generating process.
#[derive(Debug, Clone)]
pub struct Simulator {
    config: Config,
    design: Design,
    mu: f64,
    sd_team: f64,
    sd_staff: f64,
    sd_e: f64,
    cac: f64,
    cac_c: f64,
    iac: f64,
    iac_c: f64,
    /// SD of the latent score, used to standardise the baseline for MAR attrition.
    sd_latent: f64,
    baseline: bool,
    delta: f64,
    site_effects: Vec<f64>,
    measure: Measure,
    item_noise: f64,
    attrition: AttritionModel,
    /// Level names for data frames: sites, teams (T1..), staff (S1..).
    levels: [std::sync::Arc<Vec<String>>; 3],
    adherence: crate::adherence::AdherenceModel,
    /// Stepped-wedge parameters (None for a parallel design).
    sw: Option<SwParams>,
    vc: VarianceComponents,
    /// A binary or count outcome's parameters on the link scale.
    link: Option<crate::discrete::LinkScale>,
    /// A dichotomised score: the latent cut c (y = 1 when the latent score
    /// is at least c, i.e. the reported score is at least the threshold).
    cut: Option<f64>,
    /// The reported-score threshold itself.
    threshold: Option<f64>,
    /// A count's overdispersion effect on the log scale (None: Poisson).
    overdispersion: Option<OverdispersionDraw>,
}

/// The log of a mean-one overdispersion multiplier with variance φ.
#[derive(Debug, Clone)]
enum OverdispersionDraw {
    Gamma(rand_distr::Gamma<f64>),
    /// exp(N(−s²/2, s²)): the SD s.
    Lognormal(f64),
}

impl OverdispersionDraw {
    fn new(phi: f64, dist: crate::config::Overdispersion) -> Option<OverdispersionDraw> {
        if !(phi > 0.0) {
            return None;
        }
        match dist {
            crate::config::Overdispersion::Gamma => rand_distr::Gamma::new(1.0 / phi, phi)
                .ok()
                .map(OverdispersionDraw::Gamma),
            crate::config::Overdispersion::Lognormal => {
                Some(OverdispersionDraw::Lognormal(phi.ln_1p().sqrt()))
            }
        }
    }

    #[inline]
    fn draw(&self, rng: &mut TrialRng) -> f64 {
        match self {
            OverdispersionDraw::Gamma(g) => rng.sample(g).max(f64::MIN_POSITIVE).ln(),
            OverdispersionDraw::Lognormal(s) => {
                let z: f64 = rng.sample(StandardNormal);
                s * z - 0.5 * s * s
            }
        }
    }
}

/// Resolved stepped-wedge parameters (latent scale).
#[derive(Debug, Clone)]
struct SwParams {
    design: SteppedWedgeDesign,
    periods: usize,
    /// Period effects on the latent scale.
    trend: Vec<f64>,
    cohort: bool,
    sd_cluster: f64,
    sd_cp: f64,
    /// Cohort: weights of the person-level and person-period parts of e.
    iac_a: f64,
    iac_b: f64,
    /// Level names: clusters (C1..), periods (t1..), sequences (1..).
    levels: [std::sync::Arc<Vec<String>>; 3],
}

impl SwParams {
    fn new(sw: &SteppedWedgeDesign, latent: &Latent, b: f64, clusters: usize) -> SwParams {
        let iac = latent.iac.clamp(0.0, 1.0);
        SwParams {
            periods: sw.periods,
            trend: sw.trend.iter().map(|v| v / b).collect(),
            cohort: sw.is_cohort(),
            sd_cluster: latent.sd_cluster,
            sd_cp: latent.sd_cluster_period,
            iac_a: iac.sqrt(),
            iac_b: (1.0 - iac).sqrt(),
            levels: [
                std::sync::Arc::new((1..=clusters).map(|j| format!("C{j}")).collect()),
                std::sync::Arc::new((1..=sw.periods).map(|t| format!("t{t}")).collect()),
                std::sync::Arc::new((1..=sw.matrix.len()).map(|q| q.to_string()).collect()),
            ],
            design: sw.clone(),
        }
    }
}

impl Simulator {
    /// Build the simulator from a validated config.
    pub fn new(config: Config) -> Result<Simulator> {
        config.validate()?;
        let design = Design::from_config(&config)?;
        let o = &config.outcome;
        let vc = VarianceComponents::new(&config, &design);
        // Binary and count outcomes are drawn on the link scale (see
        // crate::discrete); scores on the calibrated latent scale, where
        // reported-scale components divided by b² give latent components.
        let link = if o.measure.is_discrete() {
            Some(crate::discrete::LinkScale::from_config(&config)?)
        } else {
            None
        };
        let (cal, latent) = match &link {
            Some(ls) => {
                let (u, w) = (ls.sd_cluster, ls.sd_staff);
                let cac = vc.cac.clamp(0.0, 1.0);
                let cal = measure::Calibration {
                    mean: ls.intercept,
                    sd: u.hypot(w),
                    slope: 1.0,
                    noise_var: 0.0,
                };
                let latent = Latent {
                    sd_team: u,
                    sd_staff: w,
                    sd_e: 0.0,
                    iac: 0.0,
                    sd_cluster: u * cac.sqrt(),
                    sd_cluster_period: u * (1.0 - cac).sqrt(),
                };
                (cal, latent)
            }
            None => {
                let cal = measure::calibrate(o.measure, o.mean, o.sd, o.item_noise)
                    .map_err(|m| crate::Error::invalid("outcome.sd", o.sd, &m))?;
                (cal, vc.latent(&cal))
            }
        };
        let b = cal.slope;
        // A dichotomised score: reported ≥ t exactly when the latent score
        // is at least ceil(t) − ½ (QPR-15 totals are whole numbers), or t.
        let cut = o.threshold.map(|t| match o.measure {
            Measure::Qpr15 => t.ceil() - 0.5,
            _ => t,
        });
        let a = &config.attrition;
        let beta = match a.mechanism {
            Mechanism::Mcar => 0.0,
            Mechanism::Mar => a.slope,
        };
        let alpha = if a.rate > 0.0 {
            calibrate_intercept(a.rate, beta)
        } else {
            f64::NEG_INFINITY
        };
        let sw = design
            .stepped_wedge()
            .map(|sw| SwParams::new(sw, &latent, b, design.teams()));
        let (cac, iac) = (vc.cac, latent.iac);
        Ok(Simulator {
            mu: cal.mean,
            sd_team: latent.sd_team,
            sd_staff: latent.sd_staff,
            sd_e: latent.sd_e,
            cac,
            cac_c: (1.0 - cac * cac).max(0.0).sqrt(),
            iac,
            iac_c: (1.0 - iac * iac).max(0.0).sqrt(),
            sd_latent: cal.sd,
            baseline: o.baseline,
            delta: match &link {
                Some(ls) => ls.effect,
                None => config.effect.difference / b,
            },
            site_effects: o
                .site_effects
                .as_ref()
                .map(|g| g.iter().map(|x| x / b).collect())
                .unwrap_or_else(|| vec![0.0; config.clusters.sites.len()]),
            measure: o.measure,
            item_noise: if o.measure == Measure::Count {
                o.overdispersion
            } else {
                o.item_noise
            },
            overdispersion: OverdispersionDraw::new(o.overdispersion, o.overdispersion_dist)
                .filter(|_| o.measure == Measure::Count),
            link,
            cut,
            threshold: o.threshold,
            attrition: AttritionModel {
                rate: a.rate,
                alpha,
                beta,
            },
            adherence: crate::adherence::AdherenceModel::new(config.adherence.as_ref()),
            sw,
            levels: {
                let teams = design.teams();
                let max_staff = match design.staff {
                    crate::config::StaffSpec::Fixed(n) => n,
                    crate::config::StaffSpec::Range { max, .. } => max,
                } as usize;
                [
                    std::sync::Arc::new(design.site_names.clone()),
                    std::sync::Arc::new((1..=teams).map(|j| format!("T{j}")).collect()),
                    std::sync::Arc::new((1..=teams * max_staff).map(|k| format!("S{k}")).collect()),
                ]
            },
            vc,
            design,
            config,
        })
    }

    /// The outcome's variance components (reported scale).
    pub fn variance(&self) -> &VarianceComponents {
        &self.vc
    }

    /// The level of the data-generating process a grouping factor made of
    /// these data-frame columns identifies (in any order), if any: this
    /// simulator's own column schema, so `(1|period:cluster)` is the
    /// cluster-period as `(1|cluster:period)` is.
    pub fn level_of(&self, group: &[String]) -> Option<Level> {
        let mut cols: Vec<&str> = group.iter().map(String::as_str).collect();
        cols.sort_unstable();
        cols.dedup();
        match (&self.sw, cols.as_slice()) {
            (Some(_), ["cluster"]) => Some(Level::Cluster),
            (Some(_), ["cluster", "period"]) => Some(Level::ClusterPeriod),
            (Some(sw), ["cluster", "individual"]) if sw.cohort => Some(Level::Person),
            (None, ["team"]) => Some(Level::Cluster),
            (None, ["staff"] | ["staff", "team"]) => Some(Level::Staff),
            _ => None,
        }
    }

    /// The config this simulator was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The resolved design.
    pub fn design(&self) -> &Design {
        &self.design
    }

    /// This simulator's trial `d` as a data frame for model fitting, with the
    /// columns of the CSV writer: `site`, `team` (T1..), `staff` (S1..) as
    /// categorical; `user`, `arm`, `adherence`, `baseline`, `qpr` numeric
    /// (`NaN` missing). No text is formatted or parsed per row or replicate.
    pub fn data_frame(&self, d: &Dataset) -> crate::lmm::data::DataFrame {
        self.data_frame_with(d, None)
    }

    /// As [`Simulator::data_frame`], keeping only the named columns (a power
    /// loop builds just what its formula uses).
    pub fn data_frame_with(
        &self,
        d: &Dataset,
        keep: Option<&[String]>,
    ) -> crate::lmm::data::DataFrame {
        let mut df = crate::lmm::data::DataFrame::default();
        self.data_frame_into(d, keep, &mut df);
        df
    }

    /// [`Simulator::data_frame_with`] into a reused data frame: the columns'
    /// storage is refilled in place (nothing is allocated once it has held
    /// a trial this large).
    pub fn data_frame_into(
        &self,
        d: &Dataset,
        keep: Option<&[String]>,
        out: &mut crate::lmm::data::DataFrame,
    ) {
        // A stepped wedge has clusters, periods and individuals; the parallel
        // design's site, team, staff, arm and baseline columns do not exist
        // there (a formula naming them gets the list of columns that do).
        let sw_design = self.sw.is_some();
        // Every CSV column but the last two (qpr, team_adherence), which a
        // stepped wedge has too.
        let parallel_only = &COLUMNS[..COLUMNS.len() - 2];
        let want = |name: &str| {
            keep.is_none_or(|k| k.iter().any(|s| s == name))
                && !(sw_design && parallel_only.contains(&name))
        };
        use crate::lmm::data::DataFrame;
        fn cat(
            out: &mut DataFrame,
            k: &mut usize,
            name: &str,
            levels: &std::sync::Arc<Vec<String>>,
            it: impl Iterator<Item = u32>,
        ) {
            out.slot_categorical(*k, name, levels).extend(it);
            *k += 1;
        }
        fn num(out: &mut DataFrame, k: &mut usize, name: &str, it: impl Iterator<Item = f64>) {
            out.slot_numeric(*k, name).extend(it);
            *k += 1;
        }
        let k = &mut 0;
        if want("site") {
            cat(
                out,
                k,
                "site",
                &self.levels[0],
                d.site.iter().map(|&s| s as u32),
            );
        }
        if want("team") {
            cat(out, k, "team", &self.levels[1], d.team.iter().copied());
        }
        if want("staff") {
            cat(out, k, "staff", &self.levels[2], d.staff.iter().copied());
        }
        if want("user") {
            num(out, k, "user", (1..=d.len()).map(|i| i as f64));
        }
        if want("arm") {
            num(out, k, "arm", d.arm.iter().map(|&a| a as f64));
        }
        if want("adherence") {
            num(out, k, "adherence", d.adherence.iter().copied());
        }
        if want("team_adherence") {
            num(out, k, "team_adherence", d.team_adherence.iter().copied());
        }
        if want("baseline") {
            num(out, k, "baseline", d.baseline.iter().copied());
        }
        if want("qpr") {
            num(out, k, "qpr", d.qpr.iter().copied());
        }
        if let Some(sw) = &self.sw {
            if want("cluster") {
                cat(out, k, "cluster", &sw.levels[0], d.team.iter().copied());
            }
            if want("period") {
                cat(
                    out,
                    k,
                    "period",
                    &sw.levels[1],
                    d.period.iter().map(|&t| t as u32),
                );
            }
            if want("treat") {
                num(out, k, "treat", d.exposure.iter().copied());
            }
            if want("individual") {
                // Numbered within the cluster, as in the CSV: one person
                // across periods in a cohort, fresh each period otherwise.
                num(
                    out,
                    k,
                    "individual",
                    d.staff.iter().map(|&i| f64::from(i + 1)),
                );
            }
            if want("time_since_crossover") {
                let tsc = d.time_since.iter();
                num(
                    out,
                    k,
                    "time_since_crossover",
                    tsc.map(|&e| if e < 0 { f64::NAN } else { e as f64 }),
                );
            }
        }
        let k = *k;
        out.finish_slots(k);
    }

    /// The adherence model.
    pub fn adherence(&self) -> &crate::adherence::AdherenceModel {
        &self.adherence
    }

    /// The ITT effect on the reported scale: the difference in mean QPR
    /// between treated and control service users. For a continuous outcome
    /// this is δ·E[g(a)] exactly (δ while adherence is not modelled). On the
    /// bounded QPR-15 scale the latent shift δ/b is mapped through the
    /// scale (see [`crate::measure::mean_shift`]), team by team over the
    /// participation distribution: a large effect near the ceiling shows
    /// up smaller than δ. Under confounding (participation correlated with
    /// the team or cluster effect) the expectation is taken jointly over
    /// both. (Marginal over the control population; period trends and
    /// baseline adjustment are not part of the mapping.)
    pub fn itt_effect(&self) -> f64 {
        let teams = self.design.teams();
        if self.measure == Measure::Continuous && self.cut.is_none() {
            return self.config.effect.difference * self.adherence.mean_g(teams);
        }
        // Under confounding, participation goes with the team effect u, and
        // teams nearer the ceiling take part more: integrate over (u, the
        // copula's own noise) on a grid.
        let sd_u = match &self.sw {
            Some(sw) => sw.sd_cluster,
            None => self.sd_team,
        };
        let r = self.adherence.confounding;
        if r != 0.0 && sd_u > 0.0 && self.adherence.team_at(0.5).is_some() {
            let rest = (self.sd_latent * self.sd_latent - sd_u * sd_u)
                .max(0.0)
                .sqrt();
            let h = 0.25;
            let zs: Vec<(f64, f64)> = (-24..=24)
                .map(|i| {
                    let z = i as f64 * h;
                    (z, (-0.5 * z * z).exp())
                })
                .collect();
            let wsum: f64 = zs.iter().map(|z| z.1).sum();
            let rc = (1.0 - r * r).sqrt();
            let mut treated = 0.0;
            for &(zu, wu) in &zs {
                for &(e, we) in &zs {
                    let p = crate::stats::norm_cdf(r * zu + rc * e);
                    let a = self.adherence.team_at(p).unwrap_or(1.0);
                    let shift = self.delta * self.adherence.staff_mean_g(a);
                    treated += wu * we * self.mean_at(self.mu + sd_u * zu + shift, rest);
                }
            }
            let control = self.mean_at(self.mu, self.sd_latent);
            return treated / (wsum * wsum) - control;
        }
        self.adherence
            .team_support(teams)
            .iter()
            .map(|&(a, w)| {
                let shift = self.delta * self.adherence.staff_mean_g(a);
                if shift == 0.0 {
                    return 0.0;
                }
                w * (self.mean_at(self.mu + shift, self.sd_latent) - self.control_mean())
            })
            .sum()
    }

    /// Intercept α of the attrition model (calibrated so E[P(missing)] = rate).
    pub fn attrition_intercept(&self) -> f64 {
        self.attrition.alpha
    }

    /// The true values of a binary or count outcome's effect at the
    /// configured adherence: the conditional (cluster-specific) log odds or
    /// rate ratio δ·E[g(a)], and the marginal (population-averaged) one,
    /// link(p₀ + ITT) − link(p₀) with p₀ the control arm's marginal mean
    /// (numerical integration over the cluster and staff effects). None for
    /// scores; the conditional is NaN for a dichotomised score, which has
    /// no cluster-specific odds ratio of its own.
    pub fn log_ratios(&self) -> Option<(f64, f64)> {
        let family = self.family()?;
        let p0 = self.control_mean();
        let marginal = crate::discrete::link(family, p0 + self.itt_effect())
            - crate::discrete::link(family, p0);
        let conditional = match self.link {
            Some(_) => self.delta * self.adherence.mean_g(self.design.teams()),
            None => f64::NAN,
        };
        Some((conditional, marginal))
    }

    /// Simulate replicate `rep` of a run seeded with `seed`.
    pub fn simulate(&self, seed: u64, rep: u64) -> Dataset {
        let mut d = Dataset::default();
        let mut rng = replicate_rng(seed, rep);
        self.simulate_into(&mut rng, &mut d);
        d
    }

    /// Simulate one trial into `d`, reusing its allocations.
    pub fn simulate_into(&self, rng: &mut TrialRng, d: &mut Dataset) {
        d.clear();
        if let Some(sw) = &self.sw {
            self.simulate_sw(sw, rng, d);
            return;
        }
        self.design
            .allocate(rng, &mut d.team_arm, &mut d.scratch_idx);
        let mut staff_base = 0u32;
        for j in 0..self.design.teams() {
            let site = self.design.team_site[j];
            let arm = d.team_arm[j];
            let n = self.design.size.cluster(j, rng);
            let s = self.design.draw_staff(rng);
            d.team_size.push(n);
            d.team_staff.push(s);
            let (ub, uy) = self.pair(rng, self.sd_team, self.cac, self.cac_c);
            d.staff_b.clear();
            d.staff_y.clear();
            for _ in 0..s {
                let (wb, wy) = self.pair(rng, self.sd_staff, self.cac, self.cac_c);
                d.staff_b.push(wb);
                d.staff_y.push(wy);
            }
            // Adherence: participation of a treated team (copula with its
            // follow-up effect), then each staff member's around it.
            let team_adh = if arm == 0 {
                0.0
            } else if self.adherence.is_active() {
                let z_u = (self.sd_team > 0.0).then(|| uy / self.sd_team);
                self.adherence.team(j, z_u, rng)
            } else {
                1.0
            };
            d.staff_adh.clear();
            for _ in 0..s {
                let a = if arm == 0 {
                    0.0
                } else {
                    self.adherence.staff(team_adh, rng)
                };
                d.staff_adh.push(a);
            }
            d.team_participation.push(team_adh);
            d.team_effect.push(uy);
            let dose = self.adherence.dose();
            let shift_y = self.mu + self.site_effects[site as usize] + uy;
            let shift_b = self.mu + ub;
            // Person i sees staff member i mod s (a counter, not a
            // division per person).
            let mut k = usize::MAX;
            for _ in 0..n {
                k = if k + 1 >= s as usize { 0 } else { k + 1 };
                // No individual-level latent error for a binary or count
                // outcome (sd 0: its own distribution is that level), and
                // no random number spent on one.
                let (eb, ey) = if self.sd_e > 0.0 {
                    self.pair(rng, self.sd_e, self.iac, self.iac_c)
                } else {
                    (0.0, 0.0)
                };
                let effect = self.delta * arm as f64 * dose.g(d.staff_adh[k]);
                let y = self.observe_y(shift_y + effect + d.staff_y[k] + ey, rng);
                // Baseline (if measured), then attrition, which may depend on
                // the standardised latent baseline.
                let (b, z) = if self.baseline {
                    let b_latent = shift_b + d.staff_b[k] + eb;
                    let b = self.observe_b(b_latent, rng);
                    let z = if self.sd_latent > 0.0 {
                        (b_latent - self.mu) / self.sd_latent
                    } else {
                        0.0
                    };
                    (b, z)
                } else {
                    (f64::NAN, 0.0)
                };
                d.qpr.push(if self.lost(rng, z) { f64::NAN } else { y });
                d.baseline.push(b);
                d.site.push(site);
                d.team.push(j as u32);
                d.staff.push(staff_base + k as u32);
                d.arm.push(arm);
                d.adherence.push(d.staff_adh[k]);
                d.team_adherence.push(team_adh);
            }
            staff_base += s;
        }
    }

    /// One stepped-wedge trial: clusters randomised to sequences, a cluster
    /// effect u_c, cluster-period effects v_ct, period effects β_t, and the
    /// effect δ·X_ct·lag(e_ct) (e = periods since crossover); fresh
    /// individuals each period (cross-sectional) or one cohort per cluster
    /// with individual autocorrelation.
    fn simulate_sw(&self, sw: &SwParams, rng: &mut TrialRng, d: &mut Dataset) {
        let nclus = self.design.teams();
        let mut seq_of = std::mem::take(&mut d.team_sequence);
        sw.design
            .randomise(rng, nclus, &mut seq_of, &mut d.scratch_idx);
        let mut person_a = std::mem::take(&mut d.scratch_f);
        for c in 0..nclus {
            let q = seq_of[c] as usize;
            let first = sw.design.matrix[q].iter().position(|&x| x == 1);
            let u = sw.sd_cluster * rng.sample::<f64, _>(StandardNormal);
            // Participation of a cluster that crosses over (copula with its
            // cluster effect u_c, as a parallel team's with u_j); 1 without
            // an adherence model (no random numbers drawn then).
            let part = match first {
                None => 0.0,
                Some(_) if self.adherence.is_active() => {
                    let z_u = (sw.sd_cluster > 0.0).then(|| u / sw.sd_cluster);
                    self.adherence.team(c, z_u, rng)
                }
                Some(_) => 1.0,
            };
            let g = self.adherence.dose().g(part);
            d.team_arm.push(u8::from(first.is_some()));
            d.team_staff.push(1);
            d.team_participation.push(part);
            d.team_effect.push(u);
            let cohort_n = if sw.cohort {
                self.design.size.cluster(c, rng)
            } else {
                0
            };
            person_a.clear();
            for _ in 0..cohort_n {
                person_a.push(rng.sample::<f64, _>(StandardNormal));
            }
            let mut rows = 0u32;
            for t in 0..sw.periods {
                let v = sw.sd_cp * rng.sample::<f64, _>(StandardNormal);
                let cell = sw.design.cell(q, t);
                let Some(exposure) = cell.exposure else {
                    continue; // an excluded transition period
                };
                let (since, lagf) = (cell.since, cell.lag);
                let mean = self.mu + sw.trend[t] + self.delta * exposure * lagf * g + u + v;
                let n = if sw.cohort {
                    cohort_n
                } else {
                    self.design.size.cell(c, t, rng)
                };
                for i in 0..n {
                    let e = if self.sd_e == 0.0 {
                        0.0 // a binary or count outcome (see simulate_into)
                    } else if sw.cohort {
                        let z: f64 = rng.sample(StandardNormal);
                        self.sd_e * (sw.iac_a * person_a[i as usize] + sw.iac_b * z)
                    } else {
                        self.sd_e * rng.sample::<f64, _>(StandardNormal)
                    };
                    let y = self.observe_y(mean + e, rng);
                    let lost = self.lost(rng, 0.0);
                    d.qpr.push(if lost { f64::NAN } else { y });
                    d.baseline.push(f64::NAN);
                    d.site.push(0);
                    d.team.push(c as u32);
                    d.staff.push(if sw.cohort { i } else { rows + i });
                    d.arm.push(u8::from(exposure > 0.0));
                    // The dose received: the cluster's participation once
                    // it has crossed over (the exposure itself without an
                    // adherence model).
                    let received = if self.adherence.is_active() {
                        if exposure > 0.0 {
                            part
                        } else {
                            0.0
                        }
                    } else {
                        exposure
                    };
                    d.adherence.push(received);
                    d.team_adherence.push(received);
                    d.period.push(t as u16);
                    d.exposure.push(exposure);
                    d.time_since.push(since);
                }
                rows += n;
            }
            d.team_size.push(rows);
        }
        d.team_sequence = seq_of;
        d.scratch_f = person_a;
    }

    /// The reported follow-up outcome for a latent value (the linear
    /// predictor of a binary or count outcome): overdispersion, the
    /// measurement model, then any dichotomisation.
    #[inline]
    fn observe_y(&self, latent: f64, rng: &mut TrialRng) -> f64 {
        let y = self.observe_b(latent, rng);
        match self.threshold {
            Some(t) => f64::from(u8::from(y >= t)),
            None => y,
        }
    }

    /// The reported baseline for a latent value (a dichotomised score's
    /// baseline stays a score, a covariate).
    #[inline]
    fn observe_b(&self, latent: f64, rng: &mut TrialRng) -> f64 {
        let eta = match &self.overdispersion {
            Some(od) => latent + od.draw(rng),
            None => latent,
        };
        observe(self.measure, eta, self.item_noise, rng)
    }

    /// The outcome's family when it is binary (including a dichotomised
    /// score) or a count; None for scores.
    pub fn family(&self) -> Option<crate::glmm::Family> {
        if self.threshold.is_some() {
            return Some(crate::glmm::Family::Binomial);
        }
        self.link.map(|l| l.family)
    }

    /// The link-scale parameters of a binary or count outcome.
    pub fn link_scale(&self) -> Option<&crate::discrete::LinkScale> {
        self.link.as_ref()
    }

    /// The mean outcome when the latent value (before the individual level
    /// of a binary or count outcome) is N(centre, sd²).
    fn mean_at(&self, centre: f64, sd: f64) -> f64 {
        match self.cut {
            Some(c) if sd > 0.0 => crate::stats::norm_cdf((centre - c) / sd),
            Some(c) => f64::from(u8::from(centre >= c)),
            None => measure::marginal_mean(self.measure, centre, sd, self.item_noise),
        }
    }

    /// The control arm's mean outcome (prevalence, rate or score; marginal
    /// over clusters, without site effects or period trends).
    pub fn control_mean(&self) -> f64 {
        self.mean_at(self.mu, self.sd_latent)
    }

    /// An observation's conditional mean and variance given the latent
    /// cluster-level value η (cluster plus staff effects); None for scores.
    fn conditional(&self, eta: f64) -> Option<(f64, f64)> {
        if let Some(c) = self.cut {
            let p = crate::stats::norm_cdf((eta - c) / self.sd_e);
            return Some((p, p * (1.0 - p)));
        }
        let ls = self.link?;
        Some(crate::discrete::conditional(
            ls.family,
            ls.overdispersion,
            eta,
        ))
    }

    /// A binary or count outcome (or a dichotomised score) linearised on
    /// its own scale: a continuous-outcome config with the same design
    /// whose SD and ICCs are those of the outcome (proportion, count)
    /// averaged over the arms (weighted by 1/clusters per arm, so the
    /// variance of the difference in arm means is exact to first order),
    /// its effect the ITT difference in means, and no baseline adjustment.
    /// Analytic power formulas written for scores then apply: the design
    /// effect with variable cluster sizes (Eldridge et al. 2006), which for
    /// counts is Hayes & Bennett's k formula, and the stepped wedge's GLS
    /// (as swCRTdesign's `swPwr` for binomial outcomes). None for scores.
    pub fn linearised_config(&self) -> Option<Config> {
        self.conditional(self.mu)?;
        let (sd_u, sd_w) = match &self.sw {
            Some(sw) => (sw.sd_cluster.hypot(sw.sd_cp), 0.0),
            None => (self.sd_team, self.sd_staff),
        };
        let cond = |eta: f64| self.conditional(eta).unwrap_or((f64::NAN, f64::NAN));
        let shift = self.delta * self.adherence.mean_g(self.design.teams());
        let m0 = crate::discrete::Moments::integrate(cond, self.mu, sd_u, sd_w);
        let m1 = crate::discrete::Moments::integrate(cond, self.mu + shift, sd_u, sd_w);
        let (k1, k0) = if self.sw.is_some() {
            (1.0, 1.0)
        } else {
            crate::analytic::expected_arms(&self.config, &self.design)
        };
        let avg = |a: f64, b: f64| (a / k0 + b / k1) / (1.0 / k0 + 1.0 / k1);
        let total = avg(m0.total, m1.total);
        let mut cfg = self.config.clone();
        let o = &mut cfg.outcome;
        o.measure = Measure::Continuous;
        o.mean = avg(m0.mean, m1.mean);
        o.sd = total.sqrt();
        o.icc = avg(m0.cluster, m1.cluster) / total;
        o.icc_staff = avg(m0.staff, m1.staff) / total;
        o.baseline = false;
        o.iac = None;
        o.threshold = None;
        o.prevalence = None;
        o.rate = None;
        o.k = None;
        o.overdispersion = 0.0;
        o.site_effects = None;
        cfg.effect = crate::config::Effect {
            difference: self.itt_effect(),
            ..crate::config::Effect::null()
        };
        cfg.adherence = None;
        cfg.analysis.formula = None;
        Some(cfg)
    }

    /// Whether this simulator runs a stepped-wedge design.
    pub fn is_stepped_wedge(&self) -> bool {
        self.sw.is_some()
    }

    /// A (baseline, follow-up) pair of effects with SD `sd` and correlation `r`
    /// (`rc` = sqrt(1 − r²)). Without a baseline only the follow-up is drawn.
    #[inline]
    fn pair(&self, rng: &mut TrialRng, sd: f64, r: f64, rc: f64) -> (f64, f64) {
        let z1: f64 = rng.sample(StandardNormal);
        if !self.baseline {
            return (0.0, sd * z1);
        }
        let z2: f64 = rng.sample(StandardNormal);
        (sd * z1, sd * (r * z1 + rc * z2))
    }

    #[inline]
    fn lost(&self, rng: &mut TrialRng, z: f64) -> bool {
        let a = &self.attrition;
        if a.rate <= 0.0 {
            return false;
        }
        let p = if a.beta == 0.0 {
            a.rate
        } else {
            expit(a.alpha + a.beta * z)
        };
        rng.random::<f64>() < p
    }
}

/// Expected value of expit(α + βz) over z ~ N(0, 1) (Simpson's rule on ±10).
pub fn mean_expit(alpha: f64, beta: f64) -> f64 {
    let n = 2000;
    let h = 20.0 / n as f64;
    let mut acc = 0.0;
    for i in 0..=n {
        let z = -10.0 + i as f64 * h;
        let w = if i == 0 || i == n {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        acc += w * expit(alpha + beta * z) * (-0.5 * z * z).exp();
    }
    acc * h / 3.0 / (2.0 * std::f64::consts::PI).sqrt()
}

/// α such that E[expit(α + βz)] = p for z ~ N(0, 1) (bisection).
pub fn calibrate_intercept(p: f64, beta: f64) -> f64 {
    let (mut lo, mut hi) = (-60.0, 60.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mean_expit(mid, beta) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-13 {
            break;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_hits_rate() {
        for &(p, b) in &[(0.26, 0.0), (0.26, -1.0), (0.1, 2.0), (0.5, 0.7)] {
            let a = calibrate_intercept(p, b);
            assert!((mean_expit(a, b) - p).abs() < 1e-9);
        }
        // β = 0 is plain logit(p).
        let a = calibrate_intercept(0.26, 0.0);
        assert!((a - (0.26f64 / 0.74).ln()).abs() < 1e-9);
    }
}
