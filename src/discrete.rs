//! Binary and count outcomes: the config's prevalence or rate, ICC or k,
//! and effect (odds ratio, risk difference, treated prevalence, rate ratio)
//! resolved onto the linear-predictor scale the simulator draws on, and the
//! moments an analytic power formula needs.
//!
//! Binary (logit link), count (log link), for service user i of staff
//! member k in team j (a stepped wedge: cluster j in period t):
//!
//!   η_ijk = α + γ_site + δ·A_j·g(a_jk) + u_j + w_jk,
//!   y ~ Bernoulli(expit(η))  or  y ~ Poisson(exp(η)·G_i),
//!
//! with u_j ~ N(0, σ_u²), w_jk ~ N(0, σ_w²) and G_i a mean-one
//! overdispersion multiplier (variance φ; gamma or lognormal).
//!
//! * **Intercept.** α is set so that the control arm's *marginal*
//!   prevalence E[expit(α + u + w)] is `outcome.prevalence` (the rate
//!   E[exp(α + u + w)] is `outcome.rate`).
//! * **Between-cluster variation.** Binary: the latent ICC ρ (Eldridge et
//!   al. 2009) gives σ_u² = ρ·(π²/3)/(1 − ρ − ρ_s) and σ_w² likewise from
//!   ρ_s; or Hayes & Bennett's k, the coefficient of variation of the true
//!   cluster proportions E[y | u_j] in the control arm, from which σ_u is
//!   solved. Count: k, with σ_u² = ln(1 + k²) exactly.
//! * **Effect.** δ = ln OR (cluster-specific, conditional on u and w), or
//!   solved from a risk difference or treated-arm marginal prevalence;
//!   δ = ln RR for counts (conditional and marginal alike under a log link).

use crate::config::Config;
use crate::error::{Error, Result};
use crate::glmm::Family;
use crate::measure::{expit, Measure};

/// π²/3, the variance of the standard logistic distribution.
pub const LOGISTIC_VAR: f64 = std::f64::consts::PI * std::f64::consts::PI / 3.0;

/// A binary or count outcome's parameters on the linear-predictor scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkScale {
    pub family: Family,
    /// α, the control arm's intercept at u = w = 0.
    pub intercept: f64,
    /// σ_u: the SD of the cluster effect (a stepped wedge's cluster plus
    /// cluster-period effect together).
    pub sd_cluster: f64,
    /// σ_w: the SD of the staff effect (parallel binary designs).
    pub sd_staff: f64,
    /// δ, the effect on the link scale at full adherence.
    pub effect: f64,
    /// φ, the count's overdispersion (0 for binary).
    pub overdispersion: f64,
}

impl LinkScale {
    /// Resolve a binary or count config (validated: the keys it needs are
    /// present and in range).
    pub fn from_config(cfg: &Config) -> Result<LinkScale> {
        let o = &cfg.outcome;
        let e = &cfg.effect;
        match o.measure {
            Measure::Binary => {
                let p0 = o.prevalence.unwrap_or(f64::NAN);
                let (sd_u, sd_w) = match o.k {
                    Some(k) => {
                        let sd_u = binary_sd_from_k(p0, k, o.icc_staff).ok_or_else(|| {
                            Error::invalid(
                                "outcome.k",
                                k,
                                &format!(
                                    "is too large for prevalence {p0}: the cluster proportions cannot vary that much (at most {:.3})",
                                    binary_k_max(p0)
                                ),
                            )
                        })?;
                        (sd_u, staff_sd(sd_u, o.icc_staff))
                    }
                    None => {
                        let rest = 1.0 - o.icc - o.icc_staff;
                        (
                            (o.icc * LOGISTIC_VAR / rest).sqrt(),
                            (o.icc_staff * LOGISTIC_VAR / rest).sqrt(),
                        )
                    }
                };
                let total = sd_u.hypot(sd_w);
                let alpha = crate::simulate::calibrate_intercept(p0, total);
                let effect = match (e.odds_ratio, e.risk_difference, e.treated_prevalence) {
                    (Some(or), _, _) => or.ln(),
                    (None, Some(rd), _) => {
                        crate::simulate::calibrate_intercept(p0 + rd, total) - alpha
                    }
                    (None, None, Some(p1)) => {
                        crate::simulate::calibrate_intercept(p1, total) - alpha
                    }
                    (None, None, None) => 0.0,
                };
                Ok(LinkScale {
                    family: Family::Binomial,
                    intercept: alpha,
                    sd_cluster: sd_u,
                    sd_staff: sd_w,
                    effect,
                    overdispersion: 0.0,
                })
            }
            Measure::Count => {
                let rate = o.rate.unwrap_or(f64::NAN);
                let k = o.k.unwrap_or(0.0);
                let var_u = (k * k).ln_1p();
                Ok(LinkScale {
                    family: Family::Poisson,
                    intercept: rate.ln() - 0.5 * var_u,
                    sd_cluster: var_u.sqrt(),
                    sd_staff: 0.0,
                    effect: e.rate_ratio.map_or(0.0, f64::ln),
                    overdispersion: o.overdispersion,
                })
            }
            m => Err(Error::invalid(
                "outcome.measure",
                format!("{m:?}"),
                "is not a binary or count outcome",
            )),
        }
    }

    /// The latent (logit-scale) ICC of a binary outcome,
    /// σ_u² / (σ_u² + σ_w² + π²/3); NaN for counts.
    pub fn latent_icc(&self) -> f64 {
        if self.family != Family::Binomial {
            return f64::NAN;
        }
        let (u, w) = (self.sd_cluster.powi(2), self.sd_staff.powi(2));
        u / (u + w + LOGISTIC_VAR)
    }

    /// The control arm's moments (mean, and the variance components on the
    /// outcome's own scale), by quadrature over u and w.
    pub fn control_moments(&self) -> Moments {
        let fam = self.family;
        let phi = self.overdispersion;
        Moments::integrate(
            |eta| conditional(fam, phi, eta),
            self.intercept,
            self.sd_cluster,
            self.sd_staff,
        )
    }

    /// Hayes & Bennett's k of the control arm: SD / mean of the true
    /// cluster proportions or rates.
    pub fn k(&self) -> f64 {
        let m = self.control_moments();
        m.cluster.sqrt() / m.mean
    }
}

/// An observation's conditional mean and variance given its linear
/// predictor (before any overdispersion, which enters the variance).
pub fn conditional(family: Family, phi: f64, eta: f64) -> (f64, f64) {
    match family {
        Family::Binomial => {
            let p = expit(eta);
            (p, p * (1.0 - p))
        }
        Family::Poisson => {
            let m = eta.exp();
            (m, m + phi * m * m)
        }
    }
}

/// The moments of one observation in one arm, on the outcome's own scale
/// (proportion, count or score): its mean, and its total variance split
/// into the cluster, staff and individual levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub mean: f64,
    /// Var_u(E[y | u]): the variance of the true cluster means.
    pub cluster: f64,
    /// E_u Var_w(E[y | u, w]): the staff level.
    pub staff: f64,
    /// The total variance of y.
    pub total: f64,
}

/// Gauss–Hermite points for [`Moments::integrate`].
const GH_POINTS: usize = 48;

impl Moments {
    /// The moments of y when E[y | η] and Var[y | η] are `cond(η)` and
    /// η = centre + u + w, u ~ N(0, sd_u²), w ~ N(0, sd_w²).
    pub fn integrate(
        cond: impl Fn(f64) -> (f64, f64),
        centre: f64,
        sd_u: f64,
        sd_w: f64,
    ) -> Moments {
        // The rule is computed once per process (an eigendecomposition).
        static RULE: std::sync::OnceLock<(Vec<f64>, Vec<f64>)> = std::sync::OnceLock::new();
        let (z, wt) = RULE.get_or_init(|| crate::glmm::gauss_hermite(GH_POINTS));
        let nodes = |sd: f64| -> Vec<(f64, f64)> {
            if sd > 0.0 {
                z.iter().zip(wt).map(|(&z, &w)| (sd * z, w)).collect()
            } else {
                vec![(0.0, 1.0)]
            }
        };
        let (nu, nw) = (nodes(sd_u), nodes(sd_w));
        let (mut mean, mut m2_cluster, mut m2_staff, mut within) = (0.0, 0.0, 0.0, 0.0);
        for &(u, pu) in &nu {
            // Given u: the mean over staff, and the second moment of the
            // staff means.
            let (mut mu_u, mut m2_u) = (0.0, 0.0);
            for &(w, pw) in &nw {
                let (m, v) = cond(centre + u + w);
                mu_u += pw * m;
                m2_u += pw * m * m;
                within += pu * pw * v;
            }
            mean += pu * mu_u;
            m2_cluster += pu * mu_u * mu_u;
            m2_staff += pu * (m2_u - mu_u * mu_u);
        }
        let cluster = (m2_cluster - mean * mean).max(0.0);
        let staff = m2_staff.max(0.0);
        Moments {
            mean,
            cluster,
            staff,
            total: within + cluster + staff,
        }
    }

    /// The share of the total variance at the cluster level (the ICC on
    /// the outcome's own scale, e.g. on the proportion scale).
    pub fn icc(&self) -> f64 {
        self.cluster / self.total
    }
}

/// σ_w given σ_u and the staff ICC ρ_s on the latent logit scale.
fn staff_sd(sd_u: f64, icc_staff: f64) -> f64 {
    (icc_staff * (sd_u * sd_u + LOGISTIC_VAR) / (1.0 - icc_staff)).sqrt()
}

/// The k of a binary outcome whose cluster effect has SD `sd_u` (staff ICC
/// `icc_staff`) and marginal prevalence `p0`.
fn binary_k(p0: f64, sd_u: f64, icc_staff: f64) -> f64 {
    let sd_w = staff_sd(sd_u, icc_staff);
    let alpha = crate::simulate::calibrate_intercept(p0, sd_u.hypot(sd_w));
    let m = Moments::integrate(
        |eta| conditional(Family::Binomial, 0.0, eta),
        alpha,
        sd_u,
        sd_w,
    );
    m.cluster.sqrt() / m.mean
}

/// The largest k a prevalence allows: every cluster at 0 or 1.
pub fn binary_k_max(p0: f64) -> f64 {
    ((1.0 - p0) / p0).sqrt()
}

/// The largest σ_u tried when solving for k (a latent ICC of 0.998).
const SD_U_MAX: f64 = 40.0;

/// σ_u such that the binary k is `k` (bisection; k grows with σ_u). None
/// when even σ_u = [`SD_U_MAX`] gives less.
fn binary_sd_from_k(p0: f64, k: f64, icc_staff: f64) -> Option<f64> {
    if k <= 0.0 {
        return Some(0.0);
    }
    if binary_k(p0, SD_U_MAX, icc_staff) < k {
        return None;
    }
    let (mut lo, mut hi) = (0.0, SD_U_MAX);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if binary_k(p0, mid, icc_staff) < k {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-10 {
            break;
        }
    }
    Some(0.5 * (lo + hi))
}

/// The link function of a family (logit or log).
pub fn link(family: Family, mean: f64) -> f64 {
    match family {
        Family::Binomial => (mean / (1.0 - mean)).ln(),
        Family::Poisson => mean.ln(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_moments_are_closed_form() {
        // E e^{α+u} = e^{α+σ²/2}; Var of cluster means m²(e^{σ²} − 1);
        // within: m + φ m² e^{σ²}.
        let (alpha, s, phi) = (0.3f64, 0.5f64, 0.4);
        let m = Moments::integrate(|e| conditional(Family::Poisson, phi, e), alpha, s, 0.0);
        let mean = (alpha + 0.5 * s * s).exp();
        assert!((m.mean - mean).abs() < 1e-10 * mean);
        let cl = mean * mean * ((s * s).exp() - 1.0);
        assert!((m.cluster - cl).abs() < 1e-9 * cl);
        let within = mean + phi * mean * mean * (s * s).exp();
        assert!((m.total - cl - within).abs() < 1e-9 * m.total);
    }

    #[test]
    fn binary_k_round_trips() {
        for &(p, k, rs) in &[(0.35, 0.25, 0.0), (0.1, 0.6, 0.0), (0.5, 0.3, 0.02)] {
            let sd = binary_sd_from_k(p, k, rs).unwrap();
            assert!((binary_k(p, sd, rs) - k).abs() < 1e-8, "{p} {k}");
        }
        assert!(binary_sd_from_k(0.5, 1.01, 0.0).is_none());
        // Binary moments: total variance p(1 − p).
        let m = Moments::integrate(|e| conditional(Family::Binomial, 0.0, e), -0.5, 0.8, 0.3);
        assert!((m.total - m.mean * (1.0 - m.mean)).abs() < 1e-12);
    }
}
