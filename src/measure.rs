//! Measurement models: how a latent QPR score (in points) becomes the score a
//! service user reports.
//!
//! * `continuous`: the latent score itself.
//! * `qpr15`: the latent total rounded to an integer and clipped to 0–60.
//! * `qpr15_items`: an ordinal (thresholded probit) item model. The latent total
//!   T gives a person location θ = T / 15 on the 0–4 item scale; item j is
//!   `x_j = clamp(round(θ + ε_j), 0, 4)` with ε_j ~ N(0, τ²) independent, i.e.
//!   P(x_j ≥ k) = Φ((θ − (k − ½)) / τ) for k = 1..4 (thresholds at ½, 1½, 2½, 3½).
//!   The reported total is Σ_j x_j.
//!
//! Rounding, item noise and clipping at the ends of the scale make the reported
//! score a noisy, slightly compressed function of the latent score. The latent
//! scale is therefore calibrated ([`calibrate`]) so that `outcome.mean` and
//! `outcome.sd` are the mean and SD of the *reported* score.

use crate::stats::norm_cdf;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// Measurement model of the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Latent total rounded to an integer and clipped to 0–60.
    #[default]
    Qpr15,
    /// 15 ordinal items (0–4) generated from the latent score, summed.
    Qpr15Items,
    /// The latent score itself (no rounding or clipping).
    Continuous,
    /// A binary outcome: the latent value is the linear predictor η on the
    /// logit scale and the reported value is 1 with probability expit(η).
    Binary,
    /// A count: the latent value is η on the log scale and the reported
    /// value is Poisson with mean exp(η) (overdispersion, when configured,
    /// is an observation-level effect added to η by the simulator).
    Count,
}

impl Measure {
    /// Whether this is a binary or count outcome (a GLMM family), whose
    /// latent value is the linear predictor rather than a score in points.
    pub fn is_discrete(self) -> bool {
        matches!(self, Measure::Binary | Measure::Count)
    }
}

/// Number of QPR-15 items.
pub const ITEMS: usize = 15;
/// Highest item score.
pub const ITEM_MAX: f64 = 4.0;
/// Highest total score.
pub const TOTAL_MAX: f64 = ITEMS as f64 * ITEM_MAX;

/// How the latent scale is set so that the *reported* score has the configured
/// mean and SD.
///
/// With the latent total T ~ N(μ_L, σ_L²), the reported score X has
/// E[X] = μ and Var[X] = σ² exactly (computed by quadrature from the
/// conditional moments of X given T). Linearising X = c + b·T + ν (b the
/// regression slope of X on T, ν the measurement noise left over, variance
/// `noise_var`), one latent point moves the reported score by b points on
/// average; the simulator divides latent effects by b and sets the latent
/// variance components so that ρ_team σ², ρ_staff σ² and the residual are the
/// components of the reported score (exact for `continuous`, and to first
/// order where clipping bites).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Latent mean μ_L.
    pub mean: f64,
    /// Latent SD σ_L.
    pub sd: f64,
    /// b = Cov(X, T) / Var(T).
    pub slope: f64,
    /// ν = Var(X) − b² Var(T).
    pub noise_var: f64,
}

/// Conditional mean and variance of the reported score given latent total `t`.
pub fn conditional_moments(measure: Measure, t: f64, item_noise: f64) -> (f64, f64) {
    match measure {
        Measure::Continuous => (t, 0.0),
        Measure::Binary => {
            let p = expit(t);
            (p, p * (1.0 - p))
        }
        // `item_noise` carries the count's overdispersion φ (Var = μ + φμ²).
        Measure::Count => {
            let m = t.exp();
            (m, m + item_noise * m * m)
        }
        Measure::Qpr15 => (t.round().clamp(0.0, TOTAL_MAX), 0.0),
        Measure::Qpr15Items => {
            let theta = t / ITEMS as f64;
            if item_noise == 0.0 {
                return (ITEMS as f64 * theta.round().clamp(0.0, ITEM_MAX), 0.0);
            }
            let (mut m, mut m2) = (0.0, 0.0);
            let mut below = 0.0;
            for k in 0..=4 {
                let kf = k as f64;
                let upto = if k == 4 {
                    1.0
                } else {
                    norm_cdf((kf + 0.5 - theta) / item_noise)
                };
                let p = upto - below;
                below = upto;
                m += p * kf;
                m2 += p * kf * kf;
            }
            let n = ITEMS as f64;
            (n * m, n * (m2 - m * m))
        }
    }
}

/// Moments of X when T ~ N(mu, sd²): (E X, Var X, Cov(X, T)).
fn marginal_moments(measure: Measure, mu: f64, sd: f64, item_noise: f64) -> (f64, f64, f64) {
    match measure {
        Measure::Continuous => return (mu, sd * sd, sd * sd),
        Measure::Qpr15 => return step_moments(1.0, TOTAL_MAX as usize, mu, sd),
        Measure::Qpr15Items if item_noise == 0.0 => {
            return step_moments(ITEMS as f64, ITEM_MAX as usize, mu, sd)
        }
        Measure::Qpr15Items | Measure::Binary | Measure::Count => {}
    }
    let n = 8000;
    let h = 16.0 / n as f64;
    let (mut w0, mut ex, mut ex2, mut ext, mut ev) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..=n {
        let z = -8.0 + i as f64 * h;
        let w = (-0.5 * z * z).exp() * if i == 0 || i == n { 0.5 } else { 1.0 };
        let (m, v) = conditional_moments(measure, mu + sd * z, item_noise);
        w0 += w;
        ex += w * m;
        ex2 += w * m * m;
        ext += w * m * z;
        ev += w * v;
    }
    let ex = ex / w0;
    let var = ev / w0 + ex2 / w0 - ex * ex;
    (ex, var, sd * ext / w0)
}

/// Mean reported score when the latent total T ~ N(mu, sd²).
pub fn marginal_mean(measure: Measure, mu: f64, sd: f64, item_noise: f64) -> f64 {
    marginal_moments(measure, mu, sd, item_noise).0
}

/// The change in the mean reported score when the latent total T ~ N(mu,
/// sd²) shifts by `shift`: E[X(T + shift)] − E[X(T)]. Equals `shift` for a
/// continuous outcome; smaller near the QPR-15 floor or ceiling.
pub fn mean_shift(measure: Measure, mu: f64, sd: f64, item_noise: f64, shift: f64) -> f64 {
    if measure == Measure::Continuous || shift == 0.0 {
        return shift;
    }
    marginal_moments(measure, mu + shift, sd, item_noise).0
        - marginal_moments(measure, mu, sd, item_noise).0
}

/// Exact moments of X = width·clamp(round(T / width), 0, kmax) for T ~ N(mu, sd²).
fn step_moments(width: f64, kmax: usize, mu: f64, sd: f64) -> (f64, f64, f64) {
    let phi = |z: f64| (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let (mut e, mut e2, mut cov) = (0.0, 0.0, 0.0);
    for k in 0..=kmax {
        let v = width * k as f64;
        let lo = if k == 0 {
            f64::NEG_INFINITY
        } else {
            (v - 0.5 * width - mu) / sd
        };
        let hi = if k == kmax {
            f64::INFINITY
        } else {
            (v + 0.5 * width - mu) / sd
        };
        let p = norm_cdf(hi) - norm_cdf(lo);
        let (plo, phi_hi) = (
            if lo.is_finite() { phi(lo) } else { 0.0 },
            if hi.is_finite() { phi(hi) } else { 0.0 },
        );
        e += v * p;
        e2 += v * v * p;
        cov += v * sd * (plo - phi_hi);
    }
    (e, e2 - e * e, cov)
}

/// Find the latent mean and SD that give the reported score mean `mean` and
/// SD `sd`. Errors (with a reason) when the scale cannot reach that SD at that mean.
pub fn calibrate(
    measure: Measure,
    mean: f64,
    sd: f64,
    item_noise: f64,
) -> std::result::Result<Calibration, String> {
    if measure.is_discrete() {
        return Err(
            "a binary or count outcome has no score scale to calibrate (see crate::discrete)"
                .into(),
        );
    }
    if measure == Measure::Continuous {
        return Ok(Calibration {
            mean,
            sd,
            slope: 1.0,
            noise_var: 0.0,
        });
    }
    if !(0.0 < mean && mean < TOTAL_MAX) {
        return Err(format!(
            "a mean of {mean} is outside the open range (0, {TOTAL_MAX}) of the QPR-15 total"
        ));
    }
    let (mut mu, mut s) = (mean, sd);
    for _ in 0..500 {
        let (m, v, c) = marginal_moments(measure, mu, s, item_noise);
        let b = c / (s * s);
        let (dm, ratio) = (mean - m, sd / v.sqrt());
        if dm.abs() < 1e-9 * sd && (ratio - 1.0).abs() < 1e-10 {
            return Ok(Calibration {
                mean: mu,
                sd: s,
                slope: b,
                noise_var: v - b * b * s * s,
            });
        }
        if b.is_nan() || b <= 1e-3 || !ratio.is_finite() || s > 1e3 * sd {
            break;
        }
        mu += dm / b;
        s *= ratio.clamp(0.5, 2.0);
    }
    Err(format!(
        "the QPR-15 scale (0-{TOTAL_MAX}) cannot produce SD {sd} at mean {mean}: too close to a floor or ceiling"
    ))
}

/// `x.round().clamp(0, hi)` without a libm call: below −½ the result is 0
/// whatever the rounding, and for x ≥ −½, truncating x + ½ rounds half up,
/// as `round` does for non-negative values.
#[inline]
fn round_clamp(x: f64, hi: f64) -> f64 {
    if !(x >= -0.5) {
        return 0.0; // also NaN
    }
    (((x + 0.5) as i64) as f64).min(hi)
}

/// Turn a latent score into a reported score.
#[inline]
pub fn observe<R: Rng + ?Sized>(
    measure: Measure,
    latent: f64,
    item_noise: f64,
    rng: &mut R,
) -> f64 {
    match measure {
        Measure::Continuous => latent,
        Measure::Binary => f64::from(u8::from(rng.random::<f64>() < discrete_mean(false, latent))),
        Measure::Count => poisson(discrete_mean(true, latent), rng),
        Measure::Qpr15 => round_clamp(latent, TOTAL_MAX),
        Measure::Qpr15Items => {
            let theta = latent / ITEMS as f64;
            let mut total = 0.0;
            for _ in 0..ITEMS {
                let e: f64 = rng.sample(StandardNormal);
                total += round_clamp(theta + item_noise * e, ITEM_MAX);
            }
            total
        }
    }
}

/// The mean of a binary (expit) or count (exp) outcome at linear
/// predictor `eta`. The last one is remembered per thread: the people of a
/// cluster (or cluster-period) without individual- or staff-level effects
/// share their linear predictor, so their mean is computed once, not once
/// each (the same value either way).
#[inline]
fn discrete_mean(count: bool, eta: f64) -> f64 {
    thread_local! {
        static LAST: std::cell::Cell<(u64, bool, f64)> =
            const { std::cell::Cell::new((u64::MAX, false, f64::NAN)) };
    }
    LAST.with(|c| {
        let key = (eta.to_bits(), count);
        let (k, kc, v) = c.get();
        if (k, kc) == key {
            return v;
        }
        let v = if count { eta.exp() } else { expit(eta) };
        c.set((key.0, key.1, v));
        v
    })
}

/// The inverse logit, 1 / (1 + e^−x).
#[inline]
pub fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A Poisson draw with mean `mean` (0 for a non-positive or non-finite
/// mean; means beyond 1e12 are capped there).
#[inline]
fn poisson<R: Rng + ?Sized>(mean: f64, rng: &mut R) -> f64 {
    use rand_distr::Distribution;
    if !(mean > 0.0) {
        return 0.0;
    }
    rand_distr::Poisson::new(mean.min(1e12))
        .map(|d| d.sample(rng))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_hits_reported_moments() {
        for (measure, mean, sd) in [
            (Measure::Qpr15, 40.0, 10.1),
            (Measure::Qpr15Items, 40.0, 10.1),
            (Measure::Qpr15Items, 20.0, 6.0),
        ] {
            let c = calibrate(measure, mean, sd, 0.6).unwrap();
            let (m, v, cov) = marginal_moments(measure, c.mean, c.sd, 0.6);
            assert!((m - mean).abs() < 1e-8 && (v.sqrt() - sd).abs() < 1e-8);
            assert!((cov / (c.sd * c.sd) - c.slope).abs() < 1e-12);
        }
        // Far from the ends, rounding adds 1/12 and leaves the slope at 1.
        let c = calibrate(Measure::Qpr15, 30.0, 5.0, 0.0).unwrap();
        assert!((c.slope - 1.0).abs() < 1e-6, "{c:?}");
        assert!((c.noise_var - 1.0 / 12.0).abs() < 1e-3, "{c:?}");
        // Items with large noise: 15 (τ² + 1/12).
        let c = calibrate(Measure::Qpr15Items, 30.0, 12.0, 0.3).unwrap();
        assert!(c.slope > 0.9 && c.noise_var > 0.0);
        assert!(calibrate(Measure::Qpr15, 58.0, 20.0, 0.0).is_err());
    }

    #[test]
    fn mean_shift_matches_simulation() {
        use rand::SeedableRng;
        // PULSAR's scale: reported mean 40, SD 12.7; a 6.34-point latent shift.
        for measure in [Measure::Qpr15, Measure::Qpr15Items] {
            let c = calibrate(measure, 40.0, 12.7, 0.6).unwrap();
            let shift = 6.34 / c.slope;
            let exact = mean_shift(measure, c.mean, c.sd, 0.6, shift);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            let n = 200_000;
            let (mut s, mut s2) = (0.0, 0.0);
            for _ in 0..n {
                let t = c.mean + c.sd * rng.sample::<f64, _>(StandardNormal);
                let d =
                    observe(measure, t + shift, 0.6, &mut rng) - observe(measure, t, 0.6, &mut rng);
                s += d;
                s2 += d * d;
            }
            let m = s / n as f64;
            let se = ((s2 / n as f64 - m * m) / n as f64).sqrt();
            assert!((m - exact).abs() < 4.0 * se, "{measure:?}: {m} vs {exact}");
            // The ceiling takes about 0.3 points off a 6.34-point effect.
            assert!(exact < 6.34 - 0.2 && exact > 5.5, "{exact}");
        }
        assert_eq!(mean_shift(Measure::Continuous, 40.0, 12.7, 0.0, 6.34), 6.34);
    }

    #[test]
    fn round_clamp_matches_round() {
        for k in -2000..8000 {
            let x = k as f64 * 0.0137 - 3.0;
            assert_eq!(round_clamp(x, 60.0), x.round().clamp(0.0, 60.0), "{x}");
            assert_eq!(
                round_clamp(x / 15.0, 4.0),
                (x / 15.0).round().clamp(0.0, 4.0),
                "{x}"
            );
        }
        assert_eq!(round_clamp(2.5, 60.0), 3.0);
        assert_eq!(round_clamp(-0.5, 60.0), 0.0);
        assert_eq!(round_clamp(f64::NAN, 60.0), 0.0);
        assert_eq!(round_clamp(1e300, 60.0), 60.0);
    }
}
