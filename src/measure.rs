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
//! Rounding and item noise add measurement error to the latent score. Its
//! variance, [`measurement_variance`], is taken out of the individual-level
//! variance when simulating, so `outcome.sd` and the ICCs describe the
//! *reported* score (up to clipping at 0 and 60).

use crate::config::Measure;
use rand::Rng;
use rand_distr::StandardNormal;

/// Number of QPR-15 items.
pub const ITEMS: usize = 15;
/// Highest item score.
pub const ITEM_MAX: f64 = 4.0;
/// Highest total score.
pub const TOTAL_MAX: f64 = ITEMS as f64 * ITEM_MAX;

/// Variance (points²) that the measurement model adds to the latent total,
/// ignoring clipping at the ends of the scale.
///
/// For `qpr15_items` this is exact for a latent score spread over many item
/// units: averaging over the fractional part f of θ, the error of the total is
/// `15·Var(round(f+ε)) + (15·(E[round(f+ε)] − f))²`, integrated numerically.
pub fn measurement_variance(measure: Measure, item_noise: f64) -> f64 {
    match measure {
        Measure::Continuous => 0.0,
        Measure::Qpr15 => 1.0 / 12.0,
        Measure::Qpr15Items => item_error_variance(item_noise),
    }
}

fn item_error_variance(tau: f64) -> f64 {
    let n = ITEMS as f64;
    let grid = 400;
    let mut acc = 0.0;
    for g in 0..grid {
        let f = (g as f64 + 0.5) / grid as f64;
        let (m, v) = rounded_moments(f, tau);
        acc += n * v + (n * (m - f)).powi(2);
    }
    acc / grid as f64
}

/// Mean and variance of round(f + ε), ε ~ N(0, τ²), without clipping.
fn rounded_moments(f: f64, tau: f64) -> (f64, f64) {
    if tau == 0.0 {
        let r = f.round();
        return (r, 0.0);
    }
    let span = (8.0 * tau).ceil() as i64 + 2;
    let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for k in -span..=span + 1 {
        let kf = k as f64;
        let p = norm_cdf((kf + 0.5 - f) / tau) - norm_cdf((kf - 0.5 - f) / tau);
        s0 += p;
        s1 += p * kf;
        s2 += p * kf * kf;
    }
    let m = s1 / s0;
    (m, s2 / s0 - m * m)
}

/// Standard normal CDF (Φ) via the complementary error function.
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Complementary error function, |relative error| < 1.2e-7 (Numerical Recipes'
/// Chebyshev fit); ample for calibration integrals.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
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
        Measure::Qpr15 => latent.round().clamp(0.0, TOTAL_MAX),
        Measure::Qpr15Items => {
            let theta = latent / ITEMS as f64;
            let mut total = 0.0;
            for _ in 0..ITEMS {
                let e: f64 = rng.sample(StandardNormal);
                total += (theta + item_noise * e).round().clamp(0.0, ITEM_MAX);
            }
            total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_error_variance_limits() {
        // τ = 0: all items equal round(θ), total error 15·(round(f) − f): var 225/12.
        assert!((item_error_variance(0.0) - 225.0 / 12.0).abs() < 1e-3);
        // Large τ: independent item errors, each τ² + 1/12.
        let tau: f64 = 2.0;
        let v = item_error_variance(tau);
        assert!((v - 15.0 * (tau * tau + 1.0 / 12.0)).abs() < 1e-6 * v);
    }

    #[test]
    fn norm_cdf_values() {
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((norm_cdf(1.959_963_985) - 0.975).abs() < 1e-7);
        assert!((norm_cdf(-3.0) - 0.001_349_898).abs() < 1e-7);
    }
}
