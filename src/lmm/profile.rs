//! Profile-likelihood confidence intervals, as lme4's
//! `confint(fit, method = "profile")`: for each parameter v (the random
//! effects' standard deviations and correlations, σ, and each fixed
//! effect), the signed root ζ(v) = sign(v − v̂)·√(D(v) − D̂) of the ML
//! deviance D(v) minimised over all the other parameters (lme4 profiles
//! the ML deviance for REML fits too), and the interval where
//! |ζ| ≤ z_{(1+level)/2}. lme4 tabulates ζ on a grid and inverts an
//! interpolating spline; here each end is a root of ζ(v) ∓ z found by
//! bracketing and bisection to 1e-8 of the parameter's scale.
//!
//! * **Variance parameters** in lme4's "sdcor" scale: per term, the lower
//!   triangle of its covariance column by column, standard deviations on
//!   the diagonal and correlations below, then σ. With Σ_t = σ² T_t T_t',
//!   the relative factor T_t is the Cholesky factor of Σ_t/σ², so the
//!   deviance D(θ, σ) = log|L_θ|² + n log(2πσ²) + r²_θ/σ² (β profiled out)
//!   is minimised over the free parameters (standard deviations ≥ 0,
//!   correlations as tanh of a free value, log σ).
//! * **Fixed effect j** fixed at b: the model without column j and with
//!   response y − b x_j, its ML deviance minimised over θ (σ and the
//!   other β profiled out).
//!
//! An end beyond a bound (a standard deviation's 0, a correlation's ±1)
//! where |ζ| stays below z is that bound.

use super::optim;
use super::pls::{tri, Pls};
use super::{Fit, Model};
use crate::error::{Error, Result};

/// One profile interval.
#[derive(Debug, Clone)]
pub struct ProfileInterval {
    /// lme4's `oldNames = FALSE` name: `sd_(Intercept)|Subject`,
    /// `cor_Days.(Intercept)|Subject`, `sigma`, or the coefficient's.
    pub name: String,
    /// The ML estimate the profile is centred on.
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

/// What a variance parameter is, for its bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Sd,
    Cor,
    Sigma,
}

/// The deviance in the sdcor parameters of a model.
struct VarProfile {
    pls: Pls,
    /// (θ offset, k) per term.
    terms: Vec<(usize, usize)>,
    kinds: Vec<Kind>,
}

impl VarProfile {
    /// θ from the sdcor vector φ (σ last); None when a term's correlation
    /// matrix is not positive semi-definite.
    fn theta(&self, phi: &[f64]) -> Option<Vec<f64>> {
        let sigma = *phi.last()?;
        let mut theta = vec![0.0; phi.len() - 1];
        for &(off, k) in &self.terms {
            // Σ/σ² (k × k), then its Cholesky factor, column by column.
            let sd = |a: usize| phi[off + tri(k, a, a)] / sigma;
            let mut s = vec![0.0; k * k];
            for a in 0..k {
                for c in a..k {
                    let r = if a == c { 1.0 } else { phi[off + tri(k, c, a)] };
                    s[c * k + a] = r * sd(a) * sd(c);
                }
            }
            for a in 0..k {
                let mut d = s[a * k + a];
                for b in 0..a {
                    d -= s[a * k + b] * s[a * k + b];
                }
                if d < -1e-12 * s[a * k + a].max(1e-300) {
                    return None;
                }
                let l = d.max(0.0).sqrt();
                s[a * k + a] = l;
                for c in a + 1..k {
                    let mut v = s[c * k + a];
                    for b in 0..a {
                        v -= s[c * k + b] * s[a * k + b];
                    }
                    s[c * k + a] = if l > 0.0 { v / l } else { 0.0 };
                }
                for c in a..k {
                    theta[off + tri(k, c, a)] = s[c * k + a];
                }
            }
        }
        Some(theta)
    }

    /// The ML deviance at φ.
    fn deviance(&mut self, phi: &[f64]) -> f64 {
        let sigma = phi[phi.len() - 1];
        let Some(theta) = self.theta(phi) else {
            return f64::INFINITY;
        };
        if !(sigma > 0.0) || !self.pls.factor(&theta) {
            return f64::INFINITY;
        }
        self.pls.deviance_at_sigma(false, sigma)
    }

    /// The deviance minimised over every φ but φ_i = v, from `start`
    /// (updated to the minimiser).
    fn profiled(&mut self, i: usize, v: f64, start: &mut [f64]) -> f64 {
        let free: Vec<usize> = (0..start.len()).filter(|&j| j != i).collect();
        // Free coordinates: sd as is (≥ 0), cor = tanh(x), σ = exp(x).
        let to_free = |j: usize, p: f64| match self.kinds[j] {
            Kind::Sd => p,
            Kind::Cor => p.clamp(-0.999_999, 0.999_999).atanh(),
            Kind::Sigma => p.ln(),
        };
        let x0: Vec<f64> = free.iter().map(|&j| to_free(j, start[j])).collect();
        let lower: Vec<f64> = free
            .iter()
            .map(|&j| {
                if self.kinds[j] == Kind::Sd {
                    0.0
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let kinds = self.kinds.clone();
        let build = |x: &[f64]| -> Vec<f64> {
            let mut phi = vec![0.0; kinds.len()];
            phi[i] = v;
            for (&j, &xj) in free.iter().zip(x) {
                phi[j] = match kinds[j] {
                    Kind::Sd => xj,
                    Kind::Cor => xj.tanh(),
                    Kind::Sigma => xj.exp(),
                };
            }
            phi
        };
        if free.is_empty() {
            return self.deviance(&build(&[]));
        }
        let opt = optim::minimize(|x: &[f64]| self.deviance(&build(x)), &x0, &lower);
        start.copy_from_slice(&build(&opt.x));
        opt.f
    }
}

/// Profile intervals at `level` for every parameter of a fitted model.
pub fn intervals(model: &Model, fit: &Fit, level: f64) -> Result<Vec<ProfileInterval>> {
    let z = crate::stats::normal_quantile(0.5 + 0.5 * level);
    // The ML fit the profiles are centred on.
    let mut ml = model.clone();
    ml.reml = false;
    let mlfit = if fit.reml { ml.fit() } else { fit.clone() };
    let dmin = mlfit.objective;
    if !dmin.is_finite() {
        return Err(Error::Usage("--profile: the ML fit failed".into()));
    }
    let fr = &model.frame;
    let mut out = Vec::new();
    // Variance parameters.
    let mut vp = VarProfile {
        pls: model.pls.clone(),
        terms: Vec::new(),
        kinds: Vec::new(),
    };
    let mut names = Vec::new();
    let mut phi_hat = Vec::new();
    let mut off = 0;
    for t in &fr.terms {
        let k = t.k;
        vp.terms.push((off, k));
        let sigma2 = mlfit.sigma * mlfit.sigma;
        let cov = super::term_cov(&mlfit.theta[off..off + k * (k + 1) / 2], k, sigma2);
        for a in 0..k {
            for c in a..k {
                if a == c {
                    vp.kinds.push(Kind::Sd);
                    phi_hat.push(cov[a * k + a].sqrt());
                    names.push(format!("sd_{}|{}", t.col_names[a], t.group));
                } else {
                    vp.kinds.push(Kind::Cor);
                    let den = (cov[a * k + a] * cov[c * k + c]).sqrt();
                    phi_hat.push(if den > 0.0 { cov[c * k + a] / den } else { 0.0 });
                    names.push(format!(
                        "cor_{}.{}|{}",
                        t.col_names[c], t.col_names[a], t.group
                    ));
                }
            }
        }
        off += k * (k + 1) / 2;
    }
    vp.kinds.push(Kind::Sigma);
    phi_hat.push(mlfit.sigma);
    names.push("sigma".into());
    for i in 0..phi_hat.len() {
        let v0 = phi_hat[i];
        let (lo_bound, hi_bound) = match vp.kinds[i] {
            Kind::Sd => (0.0, f64::INFINITY),
            Kind::Cor => (-1.0, 1.0),
            Kind::Sigma => (0.0, f64::INFINITY),
        };
        let scale = match vp.kinds[i] {
            Kind::Cor => 0.1,
            _ => 0.1 * v0.abs().max(1e-3 * mlfit.sigma),
        };
        // Each end's search starts from the estimates.
        let [lower, upper] = [(-z, lo_bound), (z, hi_bound)].map(|(target, bound)| {
            let mut start = phi_hat.clone();
            let mut zeta = |v: f64| zeta_of(v, v0, vp.profiled(i, v, &mut start), dmin);
            find_end(&mut zeta, v0, target, scale, bound)
        });
        out.push(ProfileInterval {
            name: names[i].clone(),
            estimate: v0,
            lower,
            upper,
        });
    }
    // Fixed effects.
    let n = fr.n;
    for j in 0..fr.p {
        let reduced = fr.without_column(j);
        let xj = &fr.x[j * n..(j + 1) * n];
        let mut pls = Pls::new(&reduced);
        let lower_theta = pls.lower.clone();
        let b0 = mlfit.beta[j];
        let mut theta = mlfit.theta.to_vec();
        let mut y = vec![0.0; n];
        let mut dev = |b: f64, theta: &mut Vec<f64>| -> f64 {
            for i in 0..n {
                y[i] = fr.y[i] - b * xj[i];
            }
            pls.set_response(&reduced, &y);
            let opt = optim::minimize(|th: &[f64]| pls.objective(th, false), theta, &lower_theta);
            theta.clear();
            theta.extend_from_slice(&opt.x);
            opt.f
        };
        let se = mlfit.se(j);
        let mut zeta = |b: f64| zeta_of(b, b0, dev(b, &mut theta), dmin);
        let lower = find_end(&mut zeta, b0, -z, se, f64::NEG_INFINITY);
        let upper = find_end(&mut zeta, b0, z, se, f64::INFINITY);
        out.push(ProfileInterval {
            name: fr.x_names[j].clone(),
            estimate: b0,
            lower,
            upper,
        });
    }
    Ok(out)
}

/// ζ = sign(v − v̂)·√(D(v) − D̂) (0 when rounding puts D(v) below D̂).
fn zeta_of(v: f64, v_hat: f64, d: f64, d_hat: f64) -> f64 {
    (v - v_hat).signum() * (d - d_hat).max(0.0).sqrt()
}

/// The v on `target`'s side of v0 where ζ(v) = target (ζ(v0) = 0, ζ
/// increasing): steps of `scale` doubling outwards until ζ passes the
/// target or v reaches `bound` (then `bound` when ζ there stays short of
/// the target), then the Illinois variant of regula falsi (ζ is nearly
/// linear, so a few steps), bisecting where ζ is not finite, to 1e-9 of
/// the bracket's scale.
fn find_end(
    zeta: &mut impl FnMut(f64) -> f64,
    v0: f64,
    target: f64,
    scale: f64,
    bound: f64,
) -> f64 {
    let dir = target.signum();
    let (mut a, mut fa) = (v0, -target);
    let mut step = scale.abs().max(1e-12);
    let (mut b, mut fb);
    loop {
        b = v0 + dir * step;
        if (b - bound) * dir >= 0.0 {
            b = bound;
            fb = zeta(bound) - target;
            if !(fb * dir >= 0.0) {
                return bound;
            }
            break;
        }
        fb = zeta(b) - target;
        if fb * dir >= 0.0 {
            break;
        }
        if !fb.is_finite() || step > 1e12 * scale.abs().max(1e-12) {
            return f64::NAN;
        }
        (a, fa) = (b, fb);
        step *= 2.0;
    }
    // fa and fb have opposite signs: a is short of the target, b past it.
    let tol = 1e-9 * (b - v0).abs().max(1e-12);
    let mut side = 0i8;
    for _ in 0..100 {
        let m = if fa.is_finite() && fb.is_finite() && fb != fa {
            b - fb * (b - a) / (fb - fa)
        } else {
            0.5 * (a + b)
        };
        let fm = zeta(m) - target;
        if fm == 0.0 {
            return m;
        }
        if (fm > 0.0) == (fb > 0.0) {
            (b, fb) = (m, fm);
            if side == 1 {
                fa *= 0.5;
            }
            side = 1;
        } else {
            (a, fa) = (m, fm);
            if side == -1 {
                fb *= 0.5;
            }
            side = -1;
        }
        if (b - a).abs() <= tol || fm.abs() < 1e-11 {
            return m;
        }
    }
    0.5 * (a + b)
}
