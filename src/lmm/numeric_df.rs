//! Satterthwaite's df from numerical derivatives of the sparse factor, for
//! models whose random effects form one large connected block (crossed
//! factors with many levels, e.g. InstEval's 2,972 students × 1,128
//! lecturers), where the analytic route of [`super::inference`] would work
//! on a dense matrix over all those levels (cost growing with their cube).
//!
//! As lmerTest (which differentiates numerically too), with the variance
//! parameters φ = (θ, σ):
//!
//! * the deviance D(θ, σ) = log|L_θ|² [+ log|R_X|² for REML]
//!   + ν log(2πσ²) + r²_θ/σ², ν = n − p (REML) or n (ML);
//! * Var(β̂)(θ, σ) = σ² (R_X'R_X)⁻¹;
//! * for a contrast l'β̂ with v = l'Var l and its gradient g in φ,
//!   df = 2 v² / (g' A g) with A = 2 H⁻¹, H the Hessian of D at φ̂ (a
//!   generalised inverse when a variance is on the boundary).
//!
//! Derivatives in σ are analytic; those in θ are central differences at
//! steps h and h/2 combined by Richardson extrapolation (error O(h⁴)), each
//! point one sparse factorisation: 4k + 8·k(k−1)/2 of them for k = |θ|.

use super::dense::{self, Mat};
use super::pls::Pls;
use super::{Fit, Model};

/// A connected block of random-effect columns larger than this takes the
/// numerical route (the analytic one is cubic in the block's size).
pub const LARGE_BLOCK: usize = 400;

/// Whether `model`'s Satterthwaite df take the numerical route: its
/// largest connected block of random-effect columns has more than
/// [`LARGE_BLOCK`] columns.
pub fn applies(model: &Model) -> bool {
    super::largest_block(&model.pls) > LARGE_BLOCK
}

/// What one factorisation at θ gives: the deviance at σ̂, r²_θ, and
/// (R_X'R_X)⁻¹ (p × p, row-major). None when θ is not valid.
struct Point {
    f: f64,
    pwrss: f64,
    rxinv: Vec<f64>,
}

fn at(pls: &mut Pls, theta: &[f64], reml: bool, sigma: f64) -> Option<Point> {
    if !pls.factor(theta) {
        return None;
    }
    let mut linv = Vec::new();
    pls.lx_inverse_into(&mut linv);
    Some(Point {
        f: pls.deviance_at_sigma(reml, sigma),
        pwrss: pls.pwrss,
        rxinv: super::scaled_crossprod(&linv, pls.p, 1.0),
    })
}

/// Satterthwaite's df of each contrast in `ls` (each of length p), and the
/// number of eigenvalues cut from the Hessian (a variance on the boundary).
/// NaN df when a perturbed θ cannot be factored.
pub fn contrast_df(model: &Model, fit: &Fit, ls: &[Vec<f64>]) -> (Vec<f64>, usize) {
    let nan = || (vec![f64::NAN; ls.len()], 0);
    let mut pls = model.pls.clone();
    let (k, p) = (fit.theta.len(), pls.p);
    let (sigma, reml) = (fit.sigma, fit.reml);
    let s2 = sigma * sigma;
    let nu = if reml { pls.n - p } else { pls.n } as f64;
    let th = &fit.theta;
    // Steps of 2% of θ (at least 0.001): the deviance's rounding (about
    // 1e-12 relative, from r² = y'y − …) swamps smaller ones, and the
    // extrapolation's O(h⁴) error is ~1e-6 of the df there.
    let step = |i: usize| 2e-2 * th[i].abs().max(0.05);
    let Some(centre) = at(&mut pls, th, reml, sigma) else {
        return nan();
    };
    let mut eval = |d: &[(usize, f64)]| {
        let mut t = th.clone();
        for &(i, s) in d {
            t[i] += s;
        }
        at(&mut pls, &t, reml, sigma)
    };
    // H in φ = (θ, σ); the gradients of r² and of (R_X'R_X)⁻¹ in θ.
    let nphi = k + 1;
    let mut h = Mat::zeros(nphi, nphi);
    let mut d_pwrss = vec![0.0; k];
    let mut d_rxinv = vec![vec![0.0; p * p]; k];
    let richardson = |a: f64, b: f64| (4.0 * b - a) / 3.0;
    for i in 0..k {
        let mut second = [0.0; 2];
        let mut first_r = [0.0; 2];
        let mut first_v = [vec![0.0; p * p], vec![0.0; p * p]];
        for (s, scale) in [1.0, 0.5].into_iter().enumerate() {
            let hi = step(i) * scale;
            let (Some(plus), Some(minus)) = (eval(&[(i, hi)]), eval(&[(i, -hi)])) else {
                return nan();
            };
            second[s] = (plus.f - 2.0 * centre.f + minus.f) / (hi * hi);
            first_r[s] = (plus.pwrss - minus.pwrss) / (2.0 * hi);
            for (o, (a, b)) in first_v[s]
                .iter_mut()
                .zip(plus.rxinv.iter().zip(&minus.rxinv))
            {
                *o = (a - b) / (2.0 * hi);
            }
        }
        h[(i, i)] = richardson(second[0], second[1]);
        d_pwrss[i] = richardson(first_r[0], first_r[1]);
        for (o, (a, b)) in d_rxinv[i]
            .iter_mut()
            .zip(first_v[0].iter().zip(&first_v[1]))
        {
            *o = richardson(*a, *b);
        }
        for j in 0..i {
            let mut mixed = [0.0; 2];
            for (s, scale) in [1.0, 0.5].into_iter().enumerate() {
                let (hi, hj) = (step(i) * scale, step(j) * scale);
                let mut sum = 0.0;
                for (si, sj, sign) in [
                    (1.0, 1.0, 1.0),
                    (1.0, -1.0, -1.0),
                    (-1.0, 1.0, -1.0),
                    (-1.0, -1.0, 1.0),
                ] {
                    let Some(pt) = eval(&[(i, si * hi), (j, sj * hj)]) else {
                        return nan();
                    };
                    sum += sign * pt.f;
                }
                mixed[s] = sum / (4.0 * hi * hj);
            }
            let v = richardson(mixed[0], mixed[1]);
            h[(i, j)] = v;
            h[(j, i)] = v;
        }
        // ∂²D/∂θ_i∂σ = −2 (∂r²/∂θ_i)/σ³.
        let v = -2.0 * d_pwrss[i] / (s2 * sigma);
        h[(i, k)] = v;
        h[(k, i)] = v;
    }
    // ∂²D/∂σ² = −2ν/σ² + 6 r²/σ⁴.
    h[(k, k)] = -2.0 * nu / s2 + 6.0 * centre.pwrss / (s2 * s2);
    // A generalised inverse as the analytic route's: the cut is made on the
    // Hessian in (θ, σ/σ̂).
    for i in 0..nphi {
        h[(i, k)] *= sigma;
        h[(k, i)] *= sigma;
    }
    let (mut vals, mut vecs, mut inv) = (Vec::new(), Mat::default(), Mat::default());
    dense::sym_eigen(&mut h, &mut vals, &mut vecs);
    let kept = dense::spectral_sum(&vals, &vecs, &mut inv, |ev| ev > 1e-8, |ev| 1.0 / ev);
    for i in 0..nphi {
        inv[(i, k)] *= sigma;
        inv[(k, i)] *= sigma;
    }
    let quad = |a: &[f64], l: &[f64]| -> f64 {
        (0..p)
            .map(|r| l[r] * (0..p).map(|c| a[r * p + c] * l[c]).sum::<f64>())
            .sum()
    };
    let dfs = ls
        .iter()
        .map(|l| {
            let v = s2 * quad(&centre.rxinv, l);
            // ∂v/∂θ_i = σ² l'∂(R_X'R_X)⁻¹/∂θ_i l, ∂v/∂σ = 2σ l'(R_X'R_X)⁻¹ l.
            let mut g: Vec<f64> = d_rxinv.iter().map(|d| s2 * quad(d, l)).collect();
            g.push(2.0 * sigma * quad(&centre.rxinv, l));
            let mut denom = 0.0;
            for a in 0..nphi {
                for b in 0..nphi {
                    denom += g[a] * 2.0 * inv[(a, b)] * g[b];
                }
            }
            2.0 * v * v / denom
        })
        .collect();
    (dfs, nphi - kept)
}
