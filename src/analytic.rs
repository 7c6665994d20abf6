//! Closed-form design quantities for a parallel cluster trial: expected sample
//! sizes, design effects and the standard error of the baseline-adjusted
//! (ANCOVA) treatment effect.
//!
//! * Design effect with variable team sizes (Eldridge, Ashby & Kerry 2006):
//!   DE = 1 + ((1 + CV²)·m − 1)·ρ_team, plus a staff term (m/S − 1)·ρ_staff
//!   for m users spread evenly over S staff.
//! * Correlation of a team's baseline and follow-up means in a closed cohort
//!   (Teerenstra et al. 2012; Hooper et al. 2016), extended with the staff level:
//!   r = (m·ρ_t·cac + (m/S)·ρ_s·cac + (1 − ρ_t − ρ_s)·iac) / (1 + (m − 1)ρ_t + (m/S − 1)ρ_s).
//! * Var(δ̂) = σ²·DE·(1 − r²)/m · (1/k₁ + 1/k₀), with m the mean number of
//!   users analysed per team (after attrition) and k₁, k₀ the teams per arm.

use crate::config::{Config, StaffSpec};
use crate::design::{Design, SteppedWedgeDesign};

/// Analytic summary of a parallel design.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelSummary {
    /// Expected service users recruited (at baseline).
    pub n_baseline: f64,
    /// Expected service users with a follow-up score.
    pub n_followup: f64,
    /// Mean recruited team size (after truncation at `min`).
    pub mean_size: f64,
    /// CV of the number analysed per team (recruitment variation plus binomial attrition).
    pub cv_followup: f64,
    /// Mean number analysed per team.
    pub m_followup: f64,
    /// Treated and control teams.
    pub k_treated: f64,
    pub k_control: f64,
    /// Design effect for the follow-up analysis (Eldridge, with staff level).
    pub design_effect: f64,
    /// Correlation of baseline and follow-up team means (0 without baseline).
    pub r_cluster: f64,
    /// SE of the unadjusted difference in means.
    pub se_unadjusted: f64,
    /// SE of the baseline-adjusted (ANCOVA) difference.
    pub se_ancova: f64,
}

/// Compute the analytic summary of a config's parallel design.
pub fn parallel_summary(cfg: &Config, design: &Design) -> ParallelSummary {
    let c = &cfg.clusters;
    let o = &cfg.outcome;
    let (m, v) = crate::design::size_moments(&c.size);
    let teams = design.teams() as f64;
    let q = 1.0 - cfg.attrition.rate;
    let mf = q * m;
    let var_f = q * q * v + q * (1.0 - q) * m;
    let cv2 = var_f / (mf * mf);
    let staff = match c.staff_per_team {
        StaffSpec::Fixed(n) => n as f64,
        StaffSpec::Range { min, max } => 0.5 * (min + max) as f64,
    };
    let s_eff = staff.min(mf).max(1.0);
    let (rt, rs) = (o.icc, o.icc_staff);
    let de = 1.0 + ((1.0 + cv2) * mf - 1.0) * rt + (mf / s_eff - 1.0) * rs;
    let de_fixed = 1.0 + (mf - 1.0) * rt + (mf / s_eff - 1.0) * rs;
    let r = if o.baseline {
        let cac = o.cac.unwrap_or(0.0);
        let iac = o.iac.unwrap_or(0.0);
        (mf * rt * cac + mf / s_eff * rs * cac + (1.0 - rt - rs) * iac) / de_fixed
    } else {
        0.0
    };
    let (k1, k0) = expected_arms(cfg, design);
    let var_unadj = o.sd * o.sd * de / mf * (1.0 / k1 + 1.0 / k0);
    ParallelSummary {
        n_baseline: m * teams,
        n_followup: mf * teams,
        mean_size: m,
        cv_followup: cv2.sqrt(),
        m_followup: mf,
        k_treated: k1,
        k_control: k0,
        design_effect: de,
        r_cluster: r,
        se_unadjusted: var_unadj.sqrt(),
        se_ancova: (var_unadj * (1.0 - r * r)).sqrt(),
    }
}

/// Treated and control teams (expected counts when the allocation is random).
pub fn expected_arms(cfg: &Config, design: &Design) -> (f64, f64) {
    let n = design.teams() as f64;
    let t = match (&design.treated_per_site, cfg.clusters.treated) {
        (Some(v), _) => v.iter().sum::<u32>() as f64,
        (None, Some(t)) => t as f64,
        (None, None) => n / 2.0,
    };
    (t, n - t)
}

/// Analytic power of the two-sided test of the treatment effect at `alpha`,
/// for the latent ITT effect δ·E[g(a)] (see [`power_for`]).
pub fn power(cfg: &Config, design: &Design, alpha: f64, normal: bool, formula: &str) -> f64 {
    // A binary or count outcome (or a dichotomised score): the formulas
    // on its linearised config, at its ITT difference in means.
    if cfg.outcome.measure.is_discrete() || cfg.outcome.threshold.is_some() {
        let Ok(sim) = crate::simulate::Simulator::new(cfg.clone()) else {
            return f64::NAN;
        };
        let Some(lin) = sim.linearised_config() else {
            return f64::NAN;
        };
        return power_for(
            &lin,
            design,
            alpha,
            normal,
            &lin.analysis_formula(),
            sim.itt_effect(),
        );
    }
    let eg = crate::adherence::AdherenceModel::new(cfg.adherence.as_ref()).mean_g(design.teams());
    power_for(
        cfg,
        design,
        alpha,
        normal,
        formula,
        cfg.effect.difference * eg,
    )
}

/// Analytic power of the two-sided test of an ITT effect of `effect` points
/// (a power study passes its estimand, on the reported scale, so that the
/// analytic column refers to the same estimand as bias and coverage). The
/// SE is the baseline-adjusted one when the formula adjusts for `baseline`,
/// else the unadjusted one. `normal` uses the Wald z; otherwise a t with
/// (clusters − 2) df (the small-sample version), via the shifted central t:
/// P(|T + λ| > t_crit), λ = effect/SE. Stepped wedges: [`sw_power`].
/// Whether the analysis `formula` adjusts for the baseline score: when
/// `baseline` is itself a fixed-effect term (not a random slope, an
/// interaction alone, or another column whose name contains it).
pub fn adjusts_for_baseline(cfg: &Config, formula: &str) -> bool {
    cfg.outcome.baseline
        && crate::lmm::formula::Formula::parse(formula)
            .is_ok_and(|f| f.fixed.iter().any(|t| t.len() == 1 && t[0] == "baseline"))
}

pub fn power_for(
    cfg: &Config,
    design: &Design,
    alpha: f64,
    normal: bool,
    formula: &str,
    effect: f64,
) -> f64 {
    let reference = if normal { Ref::Normal } else { Ref::DesignT };
    power_ref(cfg, design, alpha, reference, formula, effect)
}

/// The reference distribution of an analytic power figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ref {
    /// The Wald z.
    Normal,
    /// t on the design's between-cluster df (parallel: clusters − 2;
    /// stepped wedge: the treatment's between-within df).
    DesignT,
    /// t on these df (e.g. a GEE's clusters − p).
    T(f64),
}

/// [`power_for`] with any [`Ref`].
pub fn power_ref(
    cfg: &Config,
    design: &Design,
    alpha: f64,
    reference: Ref,
    formula: &str,
    effect: f64,
) -> f64 {
    if let Some(sw) = design.stepped_wedge() {
        return sw_power(cfg, design, sw, alpha, reference, effect);
    }
    let s = parallel_summary(cfg, design);
    let se = if adjusts_for_baseline(cfg, formula) {
        s.se_ancova
    } else {
        s.se_unadjusted
    };
    let lambda = effect.abs() / se;
    match reference {
        Ref::Normal => {
            let z = crate::stats::normal_quantile(1.0 - alpha / 2.0);
            crate::stats::normal_power(lambda, z)
        }
        Ref::DesignT => t_power(lambda, s.k_treated + s.k_control - 2.0, alpha),
        Ref::T(df) => t_power(lambda, df, alpha),
    }
}

/// Correlation of a cluster's period effects, for stepped-wedge GLS power.
/// With total cluster-level variance σ²_CP = ρσ² (ρ the ICC) and
/// individual variance σ²_e = (1 − ρ)σ², a cluster's period-mean vector has
/// covariance σ²_CP·C + diag(σ²_e / m_t):
/// * `Exchangeable`: C = J, all ones (Hussey & Hughes 2007);
/// * `NestedExchangeable { cac }`: C = cac·J + (1 − cac)·I (Hooper et al.
///   2016; Girling & Hemming 2016): a cluster effect plus a cluster-period effect;
/// * `Decay { r }`: C_ts = r^|t−s| (Kasza et al. 2019).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PeriodCorrelation {
    Exchangeable,
    NestedExchangeable { cac: f64 },
    Decay { r: f64 },
}

/// GLS variance of the treatment effect in a cross-sectional stepped-wedge
/// (or any cluster × period) design with categorical period effects.
/// `exposure[c][t]` is the treatment fraction of cluster c in period t
/// (0/1, or e.g. 0.5 for a half-exposed transition period) or `None` for an
/// empty cell (incomplete designs); `m[c][t]` the number of individuals.
/// Var(θ̂) = [(Σ_c D_c' V_c⁻¹ D_c)⁻¹]_θθ with D_c = [period dummies | exposure]
/// over the cluster's observed periods (Kasza et al. 2019's general form).
pub fn sw_gls_variance(
    exposure: &[Vec<Option<f64>>],
    m: &[Vec<f64>],
    icc: f64,
    sd: f64,
    corr: PeriodCorrelation,
) -> f64 {
    sw_gls_variance_cohort(exposure, m, icc, sd, corr, 0.0)
}

/// [`sw_gls_variance`] for a closed cohort: the same individuals in every
/// period of a cluster, with individual autocorrelation `iac` (the share of
/// the individual variance that persists between periods; Hooper et al.
/// 2016). Two period means of a cluster then also share s²_e·iac·n_ts /
/// (m_t·m_s), n_ts = min(m_t, m_s) individuals observed in both. With
/// complete follow-up the cluster-period means are sufficient and this is
/// the exact GLS variance; `iac = 0` is the cross-sectional design.
pub fn sw_gls_variance_cohort(
    exposure: &[Vec<Option<f64>>],
    m: &[Vec<f64>],
    icc: f64,
    sd: f64,
    corr: PeriodCorrelation,
    iac: f64,
) -> f64 {
    sw_gls(exposure, None, m, icc, sd, corr, iac).0
}

/// GLS of a stepped-wedge analysis whose treatment column is `exposure`
/// when the true effect follows `truth` (e.g. the exposure times an
/// implementation lag): returns (Var(θ̂), κ) with E[θ̂] = κ·δ for a true
/// effect δ·truth_ct (period effects absorbed). κ = 1 when `truth` is
/// `None` (the analysis knows the effect's shape).
pub fn sw_gls(
    exposure: &[Vec<Option<f64>>],
    truth: Option<&[Vec<f64>]>,
    m: &[Vec<f64>],
    icc: f64,
    sd: f64,
    corr: PeriodCorrelation,
    iac: f64,
) -> (f64, f64) {
    use nalgebra::{DMatrix, DVector};
    let t_all = exposure.iter().map(|r| r.len()).max().unwrap_or(0);
    let p = t_all + 1; // one mean per period + treatment
    let s2cp = icc * sd * sd;
    let s2e = (1.0 - icc) * sd * sd;
    let mut info = DMatrix::<f64>::zeros(p, p);
    let mut cross = DVector::<f64>::zeros(p);
    for (c, row) in exposure.iter().enumerate() {
        let obs: Vec<usize> = (0..row.len())
            .filter(|&t| row[t].is_some() && m[c][t] > 0.0)
            .collect();
        let k = obs.len();
        if k == 0 {
            continue;
        }
        let mut v = DMatrix::<f64>::zeros(k, k);
        for (a, &ta) in obs.iter().enumerate() {
            for (b, &tb) in obs.iter().enumerate() {
                let cval = match corr {
                    PeriodCorrelation::Exchangeable => 1.0,
                    PeriodCorrelation::NestedExchangeable { cac } => {
                        if ta == tb {
                            1.0
                        } else {
                            cac
                        }
                    }
                    PeriodCorrelation::Decay { r } => r.powi((ta as i32 - tb as i32).abs()),
                };
                v[(a, b)] = s2cp * cval;
                if ta != tb && iac != 0.0 {
                    let overlap = m[c][ta].min(m[c][tb]);
                    v[(a, b)] += s2e * iac * overlap / (m[c][ta] * m[c][tb]);
                }
            }
            v[(a, a)] += s2e / m[c][ta];
        }
        let Some(vinv) = v.cholesky().map(|ch| ch.inverse()) else {
            return (f64::NAN, f64::NAN);
        };
        let mut d = DMatrix::<f64>::zeros(k, p);
        for (a, &t) in obs.iter().enumerate() {
            d[(a, t)] = 1.0;
            d[(a, t_all)] = row[t].unwrap_or(0.0);
        }
        let dv = d.transpose() * vinv;
        info += &dv * &d;
        if let Some(tr) = truth {
            let x = DVector::from_iterator(k, obs.iter().map(|&t| tr[c][t]));
            cross += &dv * x;
        }
    }
    match info.try_inverse() {
        Some(inv) => {
            let kappa = if truth.is_some() {
                (&inv * &cross)[t_all]
            } else {
                1.0
            };
            (inv[(t_all, t_all)], kappa)
        }
        None => (f64::NAN, f64::NAN),
    }
}

/// Hussey & Hughes (2007) closed form for a complete cross-sectional design
/// with exchangeable correlation, equal cluster-period size m:
/// Var(θ̂) = I σ² (σ² + T τ²) / [(I U − W) σ² + (U² + I T U − T W − I V) τ²],
/// σ² = σ²_e/m the variance of a cluster-period mean, τ² the cluster
/// variance, U = Σ X, W = Σ_t (Σ_c X_ct)², V = Σ_c (Σ_t X_ct)².
pub fn hussey_hughes_variance(x: &[Vec<f64>], m: f64, icc: f64, sd: f64) -> f64 {
    let i = x.len() as f64;
    let t_n = x.first().map(|r| r.len()).unwrap_or(0);
    let t = t_n as f64;
    let s2 = (1.0 - icc) * sd * sd / m;
    let tau2 = icc * sd * sd;
    let u: f64 = x.iter().flatten().sum();
    let w: f64 = (0..t_n)
        .map(|k| x.iter().map(|r| r[k]).sum::<f64>().powi(2))
        .sum();
    let v: f64 = x.iter().map(|r| r.iter().sum::<f64>().powi(2)).sum();
    i * s2 * (s2 + t * tau2) / ((i * u - w) * s2 + (u * u + i * t * u - t * w - i * v) * tau2)
}

/// Normal-approximation power of a two-sided test at `alpha` given Var(θ̂).
pub fn power_from_variance(effect: f64, var: f64, alpha: f64) -> f64 {
    let z = crate::stats::normal_quantile(1.0 - alpha / 2.0);
    crate::stats::normal_power(effect.abs() / var.sqrt(), z)
}

/// The standard stepped-wedge design: `sequences` groups of
/// `per_sequence` clusters, `sequences + 1` periods, sequence s (0-based)
/// crossing over after period s.
pub fn standard_stepped_wedge(sequences: usize, per_sequence: usize) -> Vec<Vec<f64>> {
    let periods = sequences + 1;
    (0..sequences)
        .flat_map(|s| {
            std::iter::repeat_n(
                (0..periods)
                    .map(move |t| f64::from(u8::from(t > s)))
                    .collect::<Vec<f64>>(),
                per_sequence,
            )
        })
        .collect()
}

/// The most size matrices over which stepped-wedge power is averaged when
/// cluster-period sizes vary (as swCRTdesign's `swPwr` is averaged over
/// drawn size matrices); fewer once the average's Monte Carlo SE is below
/// 0.0005.
pub const SW_SIZE_DRAWS: u64 = 4000;

/// Whether a stepped-wedge config's observed cluster-period sizes vary
/// (a random size distribution, given sizes that differ, or attrition).
pub fn sw_sizes_vary(cfg: &Config) -> bool {
    !cfg.clusters.size.is_constant() || cfg.attrition.rate > 0.0
}

/// Analytic power of a stepped-wedge config: the exact GLS variance under
/// nested-exchangeable correlation (ICC, CAC; and the individual
/// autocorrelation `iac` for a closed cohort), clusters split evenly over
/// sequences. With fixed sizes and no attrition, at those sizes; when sizes
/// vary, the power averaged over [`SW_SIZE_DRAWS`] cluster × period size
/// matrices drawn from the configured distribution and attrition (a fixed
/// stream, so the figure is reproducible), because power at the mean size
/// is optimistic. `normal`: z reference; otherwise t on the between-within
/// df of the treatment.
pub fn sw_power(
    cfg: &Config,
    design: &Design,
    sw: &SteppedWedgeDesign,
    alpha: f64,
    reference: Ref,
    itt: f64,
) -> f64 {
    let nclus = design.teams();
    // Small-sample tests: a t reference on the between-within df of the
    // treatment (a cluster-period-level coefficient): observed
    // cluster-periods − clusters − periods.
    let cells = sw_cells(design, sw);
    let periods = cells.0.first().map_or(0, Vec::len);
    let observed = cells.0.iter().flatten().filter(|e| e.is_some()).count();
    let df = match reference {
        Ref::T(df) => df,
        _ => observed as f64 - nclus as f64 - periods as f64,
    };
    // Under an implementation lag the analysis estimates κ·δ (κ < 1).
    let at = |(var, kappa): (f64, f64)| {
        let effect = itt * kappa;
        if reference == Ref::Normal {
            power_from_variance(effect, var, alpha)
        } else {
            t_power(effect / var.sqrt(), df, alpha)
        }
    };
    if !sw_sizes_vary(cfg) {
        return at(sw_config_gls(cfg, design, sw));
    }
    // Draw until the average is known to ±0.0005 (its Monte Carlo SE), at
    // least 50 and at most SW_SIZE_DRAWS matrices: many clusters make the
    // power of one matrix nearly constant, so large designs stop early.
    // A work budget (about a second) bounds the draws for very large
    // designs: one draw costs about clusters × periods³ operations.
    let cost = nclus as f64 * (periods.max(1) as f64).powi(3);
    let max_draws = ((1.5e9 / cost) as u64).clamp(10, SW_SIZE_DRAWS);
    let min_draws = max_draws.min(50);
    let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
    for r in 0..max_draws {
        let mut rng = crate::rng::replicate_rng(SW_SIZE_SEED, r);
        let sizes = draw_sw_sizes(cfg, design, sw, &cells.0, &mut rng);
        // A drawn trial whose cells leave the effect inestimable (e.g. heavy
        // attrition empties them) cannot reject: power 0 for that draw.
        let p = at(sw_gls_cells(cfg, sw, &cells, &sizes));
        let p = if p.is_finite() { p } else { 0.0 };
        n += 1;
        let d = p - mean;
        mean += d / n as f64;
        m2 += d * (p - mean);
        if n >= min_draws && (m2 / (n - 1) as f64 / n as f64).sqrt() < 5e-4 {
            break;
        }
    }
    mean
}

/// The stream the size matrices of [`sw_power`] are drawn from.
const SW_SIZE_SEED: u64 = 0x5357_5349_5a45; // "SWSIZE"

/// One drawn matrix of observed cluster-period sizes: cross-sectional, a
/// fresh size per cell; cohort, one size per cluster; then each person
/// observed with probability 1 − attrition (cross-sectional, exactly
/// binomial; cohort, its expectation, as [`sw_config_gls`] treats the
/// cohort's overlap). A cell left empty is unobserved. Given sizes travel
/// with their cluster, so the clusters are first randomised to the
/// sequences (rows in sequence order, as in `sw_cells`).
fn draw_sw_sizes<R: rand::Rng + ?Sized>(
    cfg: &Config,
    design: &Design,
    sw: &SteppedWedgeDesign,
    exposure: &[Vec<Option<f64>>],
    rng: &mut R,
) -> Vec<Vec<f64>> {
    use rand_distr::Distribution;
    let keep = 1.0 - cfg.attrition.rate;
    let cohort = sw.sampling == crate::config::Sampling::Cohort;
    let clusters: Vec<usize> = if matches!(design.size, crate::design::SizeSampler::Given(_)) {
        let mut seq_of = Vec::new();
        sw.randomise(rng, exposure.len(), &mut seq_of, &mut Vec::new());
        let mut order: Vec<usize> = (0..exposure.len()).collect();
        order.sort_by_key(|&c| seq_of[c]);
        order
    } else {
        (0..exposure.len()).collect()
    };
    exposure
        .iter()
        .zip(clusters)
        .map(|(row, c)| {
            let n_c = design.size.cluster(c, rng);
            row.iter()
                .enumerate()
                .map(|(t, _)| {
                    if cohort {
                        f64::from(n_c) * keep
                    } else {
                        let n = design.size.cell(c, t, rng);
                        rand_distr::Binomial::new(u64::from(n), keep)
                            .map(|b| b.sample(rng) as f64)
                            .unwrap_or(f64::from(n) * keep)
                    }
                })
                .collect()
        })
        .collect()
}

/// Power of a two-sided t test (see [`crate::stats::t_power`]); df below 1
/// count as 1, as before.
pub(crate) fn t_power(lambda: f64, df: f64, alpha: f64) -> f64 {
    crate::stats::t_power(lambda, df.max(1.0), alpha)
}

/// The GLS variance of a stepped-wedge config's treatment estimate and the
/// factor κ by which an implementation lag dilutes what it estimates
/// (E[θ̂] = κ·δ; 1 without a lag), at the expected cluster-period size
/// (truncated mean, times 1 − attrition). See [`sw_power`].
pub fn sw_config_gls(cfg: &Config, design: &Design, sw: &SteppedWedgeDesign) -> (f64, f64) {
    let (mbar, _) = crate::design::size_moments(&cfg.clusters.size);
    let mbar = mbar * (1.0 - cfg.attrition.rate);
    let cells = sw_cells(design, sw);
    let sizes: Vec<Vec<f64>> = cells.0.iter().map(|r| vec![mbar; r.len()]).collect();
    sw_gls_cells(cfg, sw, &cells, &sizes)
}

/// Per cluster (clusters split evenly over sequences): the analysis's
/// treatment column (1, 0.5 in a half-exposed transition, `None` when
/// excluded) and the true effect's shape (that times the implementation lag).
type SwCells = (Vec<Vec<Option<f64>>>, Vec<Vec<f64>>);

fn sw_cells(design: &Design, sw: &SteppedWedgeDesign) -> SwCells {
    let m = &sw.matrix;
    let split = crate::design::even_split(design.teams() as u32, m.len());
    let mut exposure = Vec::new();
    let mut truth: Vec<Vec<f64>> = Vec::new();
    for (q, row) in m.iter().enumerate() {
        let sw_cells: Vec<crate::design::SwCell> = (0..row.len())
            .map(|t| crate::design::sw_cell(row, t, sw.transition, &sw.lag))
            .collect();
        let cells: Vec<Option<f64>> = sw_cells.iter().map(|c| c.exposure).collect();
        let true_cells: Vec<f64> = sw_cells
            .iter()
            .map(|c| c.exposure.unwrap_or(0.0) * c.lag)
            .collect();
        for _ in 0..split[q] {
            exposure.push(cells.clone());
            truth.push(true_cells.clone());
        }
    }
    (exposure, truth)
}

/// The GLS at given observed cluster-period sizes (an empty cell is
/// unobserved).
fn sw_gls_cells(
    cfg: &Config,
    sw: &SteppedWedgeDesign,
    (exposure, truth): &SwCells,
    sizes: &[Vec<f64>],
) -> (f64, f64) {
    let exposure: Vec<Vec<Option<f64>>> = exposure
        .iter()
        .zip(sizes)
        .map(|(e, m)| {
            e.iter()
                .zip(m)
                .map(|(&x, &n)| if n > 0.0 { x } else { None })
                .collect()
        })
        .collect();
    // A closed cohort shares individuals between periods. With attrition
    // (independent per period) a pair of period means shares on average a
    // fraction (1 − rate) of each cell's individuals: iac·(1 − rate) with
    // the overlap min(m_t, m_s) gives the expected covariance.
    let iac = match sw.sampling {
        crate::config::Sampling::Cohort => {
            cfg.outcome.iac.unwrap_or(0.0) * (1.0 - cfg.attrition.rate)
        }
        crate::config::Sampling::CrossSectional => 0.0,
    };
    sw_gls(
        &exposure,
        (!sw.lag.is_empty()).then_some(truth.as_slice()),
        sizes,
        cfg.outcome.icc,
        cfg.outcome.sd,
        PeriodCorrelation::NestedExchangeable {
            cac: cfg.outcome.cac.unwrap_or(1.0),
        },
        iac,
    )
}
