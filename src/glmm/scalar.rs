//! The Laplace fit of a GLMM with one scalar random effect (`(1|g)`, or
//! `(0 + x|g)`) and a canonical link (binomial–logit, Poisson–log): the
//! model of nearly every parallel cluster trial, solved cluster by cluster
//! with an analytic gradient instead of the general sparse PIRLS and a
//! derivative-free optimiser.
//!
//! For cluster j with rows i, prior weights a_i, offset o_i = x_i'β and
//! η_i = o_i + θ z_i u, the penalised deviance is
//!
//!   g_j(u) = Σ_i −2 log p(y_i | η_i) + u²,
//!
//! with g_u = −2θ Σ a_i r_i z_i + 2u (r = y − μ) and g_uu = 2H,
//! H = 1 + θ² Σ a_i V_i z_i² (V = b''(η) for a canonical link). The Laplace
//! deviance is D = Σ_j g_j(û_j) + log H_j, exactly lme4's (L_θ is diagonal,
//! L_jj² = H_j). Each û_j is a safeguarded one-dimensional Newton solve.
//!
//! **Gradient.** For φ ∈ {θ, β_k}, by the envelope theorem
//!
//!   dD/dφ = ∂g/∂φ + (∂H/∂φ + ∂H/∂u · dû/dφ)/H,  dû/dφ = −g_uφ/(2H),
//!
//! with ∂g/∂β_k = Σ −2a r x_k, ∂g/∂θ = Σ −2a r z û, g_uβ_k = 2θ Σ a V z x_k,
//! g_uθ = Σ −2a r z + 2θû Σ a V z², ∂H/∂β_k = θ² Σ a V' z² x_k,
//! ∂H/∂θ = 2θ Σ a V z² + θ² û Σ a V' z³, ∂H/∂u = θ³ Σ a V' z³ (V' = b''').
//!
//! **Patterns.** Rows of a cluster with the same fixed-effect row x_i and
//! z_i have the same η, so they are merged into one pattern carrying
//! A = Σ a_i and S = Σ a_i y_i: the deviance differs by a constant
//! (binomial coefficients, log y! terms) that is added back, and every
//! derivative is unchanged. A trial whose covariates are all at the cluster
//! level (arm, site, period) has one pattern per cluster (-period).
//!
//! **Optimisation.** D is even in θ (u → −u), so θ is unconstrained and
//! reported as |θ|. Damped Newton on x = (θ, β) from (1, the GLM's β), the
//! Hessian by central differences of the analytic gradient; at the optimum
//! the same Hessian gives vcov(β̂) = 2·H⁻¹ restricted to β, as glmer's
//! `use.hessian` (which differences the deviance itself).

use super::family::{Family, Link};
use crate::lmm::dense::{self, Mat};
use crate::lmm::frame::ModelFrame;

/// Whether a frame and family can take this path.
pub fn applies(fr: &ModelFrame, family: Family, link: Link) -> bool {
    fr.terms.len() == 1 && fr.terms[0].k == 1 && link == family.canonical()
}

/// The solution of [`fit`].
#[derive(Debug, Clone)]
pub struct ScalarFit {
    pub theta: f64,
    pub beta: Vec<f64>,
    /// The Laplace deviance at the optimum.
    pub deviance: f64,
    /// Covariance of β̂ (p × p, row-major).
    pub vcov: Vec<f64>,
    /// Conditional modes b = θû per level.
    pub b: Vec<f64>,
    /// Gradient evaluations used.
    pub evals: usize,
    pub converged: bool,
}

/// Reused buffers of a scalar fit (per power-run worker).
#[derive(Debug, Clone, Default)]
pub struct ScalarWork {
    /// Patterns of each level (`ptr` delimits them): x (p per pattern),
    /// z, A = Σ a, S = Σ a y.
    ptr: Vec<usize>,
    px: Vec<f64>,
    pz: Vec<f64>,
    pa: Vec<f64>,
    ps: Vec<f64>,
    /// The deviance's constant: what the rows add to the patterns'.
    constant: f64,
    order: Vec<usize>,
    offset: Vec<f64>,
    u: Vec<f64>,
    /// The modes a Hessian's differences restart from.
    u0: Vec<f64>,
    grad: Vec<f64>,
    gp: Vec<f64>,
    gm: Vec<f64>,
    xp: Vec<f64>,
    x: Vec<f64>,
    step: Vec<f64>,
    ak: Vec<f64>,
    bk: Vec<f64>,
    hess: Mat,
    sys: Mat,
    chol: Mat,
    vals: Vec<f64>,
    vecs: Mat,
    inv: Mat,
}

impl ScalarWork {
    /// Group the frame's rows into patterns (see the module notes).
    fn patterns(&mut self, fr: &ModelFrame, family: Family, weights: &[f64]) {
        let (n, p) = (fr.n, fr.p);
        let term = &fr.terms[0];
        let q = term.nlevels();
        let xrow = |i: usize, j: usize| fr.x[j * n + i];
        let mut order = std::mem::take(&mut self.order);
        super::pattern_order(fr, &term.refs, Some(&term.z), &mut order);
        self.ptr.clear();
        self.ptr.resize(q + 1, 0);
        self.px.clear();
        self.pz.clear();
        self.pa.clear();
        self.ps.clear();
        self.constant = 0.0;
        let mut last: Option<usize> = None;
        for &i in &order {
            let same =
                last.is_some_and(|l| super::same_pattern(fr, &term.refs, Some(&term.z), l, i));
            let a = weights[i];
            let (s, c) = match family {
                Family::Binomial => {
                    let s = (a * fr.y[i]).round();
                    (s, -2.0 * super::family::ln_choose(a, s))
                }
                Family::Poisson => (fr.y[i], 2.0 * super::family::ln_gamma(fr.y[i] + 1.0)),
            };
            self.constant += c;
            if same {
                *self.pa.last_mut().expect("a pattern") += a;
                *self.ps.last_mut().expect("a pattern") += s;
            } else {
                self.ptr[term.refs[i] as usize + 1] += 1;
                self.px.extend((0..p).map(|j| xrow(i, j)));
                self.pz.push(term.z[i]);
                self.pa.push(a);
                self.ps.push(s);
            }
            last = Some(i);
        }
        self.order = order;
        for c in 0..q {
            self.ptr[c + 1] += self.ptr[c];
        }
    }
}

/// The model a fit works on: family, link and the number of coefficients
/// (the data are in the work's patterns).
struct Problem {
    family: Family,
    link: Link,
    p: usize,
}

impl Problem {
    /// μ (clamped as glmer's), V and V' = dV/dη at η.
    #[inline]
    fn at(&self, eta: f64) -> (f64, f64, f64) {
        let mu = self.link.inverse(eta);
        match self.family {
            Family::Binomial => {
                let v = mu * (1.0 - mu);
                (mu, v, v * (1.0 - 2.0 * mu))
            }
            Family::Poisson => (mu, mu, mu),
        }
    }

    /// A pattern's −2 log-likelihood, less the constant.
    #[inline]
    fn pattern_dev(&self, a: f64, s: f64, mu: f64) -> f64 {
        match self.family {
            Family::Binomial => {
                let mut ll = 0.0;
                if s > 0.0 {
                    ll += s * mu.ln();
                }
                if a - s > 0.0 {
                    ll += (a - s) * (1.0 - mu).ln();
                }
                -2.0 * ll
            }
            Family::Poisson => {
                let mut ll = -a * mu;
                if s > 0.0 {
                    ll += s * mu.ln();
                }
                -2.0 * ll
            }
        }
    }

    /// Sets the offset x'β of every pattern.
    fn set_offset(&self, beta: &[f64], w: &mut ScalarWork) {
        let p = self.p;
        let np = w.pa.len();
        w.offset.clear();
        w.offset
            .extend((0..np).map(|k| (0..p).map(|j| w.px[k * p + j] * beta[j]).sum::<f64>()));
    }

    /// g_j(u) for cluster `c` (its −2 log-likelihood plus u², less the
    /// constant).
    fn cluster_g(&self, w: &ScalarWork, c: usize, theta: f64, u: f64) -> f64 {
        let mut g = u * u;
        for k in w.ptr[c]..w.ptr[c + 1] {
            let mu = self.link.inverse(w.offset[k] + theta * w.pz[k] * u);
            g += self.pattern_dev(w.pa[k], w.ps[k], mu);
        }
        g
    }

    /// g_u/2 and g_uu/2 = H of cluster `c` at u (one pass over its patterns).
    #[inline]
    fn cluster_gu(&self, w: &ScalarWork, c: usize, theta: f64, u: f64) -> (f64, f64) {
        let (mut r, mut s) = (0.0, 0.0);
        for k in w.ptr[c]..w.ptr[c + 1] {
            let z = w.pz[k];
            let (mu, v, _) = self.at(w.offset[k] + theta * z * u);
            r += (w.ps[k] - w.pa[k] * mu) * z;
            s += w.pa[k] * v * z * z;
        }
        (u - theta * r, 1.0 + theta * theta * s)
    }

    /// The modes û (from the current ones) and the Laplace deviance at
    /// (θ, β); the offset must be set. Each mode solves g_u = 0 by Newton
    /// inside a bracket that shrinks on every step (g is convex in u for a
    /// canonical link, so g_u is increasing): a step that leaves the
    /// bracket bisects it instead. Infinite when a mode diverges.
    fn modes(&self, w: &mut ScalarWork, theta: f64) -> f64 {
        let mut dev = 0.0;
        for c in 0..w.ptr.len() - 1 {
            let mut u = w.u[c];
            let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
            let (mut gu, mut h) = self.cluster_gu(w, c, theta, u);
            for _ in 0..200 {
                if gu == 0.0 {
                    break;
                }
                if gu < 0.0 {
                    lo = u;
                } else {
                    hi = u;
                }
                let mut next = u - gu / h;
                if !(next > lo && next < hi) {
                    next = match (lo.is_finite(), hi.is_finite()) {
                        (true, true) => 0.5 * (lo + hi),
                        (true, false) => lo + (1.0 + lo.abs()),
                        (false, true) => hi - (1.0 + hi.abs()),
                        (false, false) => next,
                    };
                }
                let done = (next - u).abs() <= 1e-13 * (1.0 + u.abs());
                u = next;
                (gu, h) = self.cluster_gu(w, c, theta, u);
                if done || !u.is_finite() {
                    break;
                }
            }
            let g = self.cluster_g(w, c, theta, u);
            if !(g.is_finite() && u.is_finite()) {
                return f64::INFINITY;
            }
            w.u[c] = u;
            dev += g + h.ln();
        }
        dev
    }

    /// The deviance at x = (θ, β) and its gradient into `grad`.
    fn gradient(&self, w: &mut ScalarWork, x: &[f64], grad: &mut Vec<f64>) -> f64 {
        let p = self.p;
        let theta = x[0];
        self.set_offset(&x[1..], w);
        let dev = self.modes(w, theta);
        grad.clear();
        grad.resize(p + 1, 0.0);
        if !dev.is_finite() {
            return dev;
        }
        let t2 = theta * theta;
        for c in 0..w.ptr.len() - 1 {
            let u = w.u[c];
            let (mut s, mut t3, mut e, mut g1, mut cth) = (0.0, 0.0, 0.0, 0.0, 0.0);
            w.ak.clear();
            w.ak.resize(p, 0.0);
            w.bk.clear();
            w.bk.resize(p, 0.0);
            for k in w.ptr[c]..w.ptr[c + 1] {
                let zi = w.pz[k];
                let (mu, v, v1) = self.at(w.offset[k] + theta * zi * u);
                let a = w.pa[k];
                let r = -2.0 * (w.ps[k] - a * mu);
                s += a * v * zi * zi;
                t3 += a * v1 * zi * zi * zi;
                e += a * v1 * zi * zi * zi * u;
                g1 += r * zi;
                cth += r * zi * u;
                for j in 0..p {
                    let xk = w.px[k * p + j];
                    grad[1 + j] += r * xk;
                    w.ak[j] += a * v * zi * xk;
                    w.bk[j] += a * v1 * zi * zi * xk;
                }
            }
            let h = 1.0 + t2 * s;
            let hu = t2 * theta * t3;
            for j in 0..p {
                let du = -(2.0 * theta * w.ak[j]) / (2.0 * h);
                grad[1 + j] += (t2 * w.bk[j] + hu * du) / h;
            }
            let du = -(g1 + 2.0 * theta * u * s) / (2.0 * h);
            let dh = 2.0 * theta * s + t2 * e + hu * du;
            grad[0] += cth + dh / h;
        }
        dev + w.constant
    }
}

/// Fit by Laplace. `beta0` is the start for β (the GLM's). None when the
/// deviance or the Newton iteration fails.
pub fn fit(
    fr: &ModelFrame,
    family: Family,
    link: Link,
    weights: &[f64],
    beta0: &[f64],
    w: &mut ScalarWork,
) -> Option<ScalarFit> {
    let prob = Problem {
        family,
        link,
        p: fr.p,
    };
    let p = fr.p;
    let d = p + 1;
    w.patterns(fr, family, weights);
    let q = w.ptr.len() - 1;
    w.u.clear();
    w.u.resize(q, 0.0);
    let mut x = std::mem::take(&mut w.x);
    x.clear();
    x.push(moment_start(&prob, w, beta0));
    x.extend_from_slice(beta0);
    let mut grad = std::mem::take(&mut w.grad);
    let mut evals = 0usize;
    let mut f = prob.gradient(w, &x, &mut grad);
    evals += 1;
    let mut converged = false;
    // Quasi-Newton with line search: B starts as the exact Hessian made
    // positive definite (its eigenvalues floored at their absolute value,
    // at least 1e-8 of the largest), is updated by BFGS after each step,
    // and is rebuilt from the exact Hessian when a step fails. `exact`
    // says B is the (modified) exact Hessian at x.
    let mut have_b = false;
    let mut exact = false;
    let gmax = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for _ in 0..300 {
        if !f.is_finite() {
            break;
        }
        if gmax(&grad) < 1e-6 {
            converged = true;
            break;
        }
        if !have_b {
            hessian(&prob, w, &x, &mut evals);
            positive_definite(&w.hess, &mut w.sys, &mut w.vals, &mut w.vecs, &mut w.chol);
            have_b = true;
            exact = true;
        }
        // s = −B⁻¹g.
        if !w.sys.inverse_spd_into(&mut w.inv, &mut w.chol) {
            if exact {
                break;
            }
            have_b = false;
            continue;
        }
        w.step.clear();
        w.step
            .extend((0..d).map(|a| -(0..d).map(|b| w.inv[(a, b)] * grad[b]).sum::<f64>()));
        let slope: f64 = (0..d).map(|a| w.step[a] * grad[a]).sum();
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            w.xp.clear();
            w.xp.extend(x.iter().zip(&w.step).map(|(a, s)| a + t * s));
            let xp = std::mem::take(&mut w.xp);
            let mut gp = std::mem::take(&mut w.gp);
            // Modes restart from the current ones (kept by `gradient`).
            let fp = prob.gradient(w, &xp, &mut gp);
            evals += 1;
            if fp.is_finite() && fp <= f + 1e-4 * t * slope.min(0.0) + 1e-11 * (1.0 + f.abs()) {
                for s in w.step.iter_mut() {
                    *s *= t;
                }
                let small = w
                    .step
                    .iter()
                    .zip(&x)
                    .all(|(s, v)| s.abs() <= 1e-10 * (1.0 + v.abs()));
                bfgs_update(&mut w.sys, &w.step, &gp, &grad, &mut w.ak);
                let df = f - fp;
                x.clone_from(&xp);
                grad.clone_from(&gp);
                f = fp;
                w.xp = xp;
                w.gp = gp;
                accepted = true;
                exact = false;
                if (small || df.abs() <= 1e-14 * (1.0 + f.abs())) && gmax(&grad) < 1e-4 {
                    converged = true;
                }
                break;
            }
            w.xp = xp;
            w.gp = gp;
            if !exact {
                break; // rebuild B from the exact Hessian first
            }
            t *= 0.5;
        }
        if converged {
            break;
        }
        if !accepted {
            if exact {
                // No descent from the exact Hessian at x: the optimum to
                // rounding, or stuck.
                converged = gmax(&grad) < 1e-4;
                break;
            }
            have_b = false;
        }
    }
    if !f.is_finite() {
        w.x = x;
        w.grad = grad;
        return None;
    }
    // The exact Hessian at the optimum, for vcov.
    hessian(&prob, w, &x, &mut evals);
    finish(&prob, w, x, grad, f, evals, converged)
}

/// A start for θ from the GLM fit: the between-cluster variance of the
/// clusters' mean residuals beyond their sampling variance, τ² =
/// mean_j(r̄_j² − Σ_j AV/M_j²), on the link scale (divided by the mean
/// dμ/dη = V), clamped to [0.1, 3].
fn moment_start(prob: &Problem, w: &mut ScalarWork, beta0: &[f64]) -> f64 {
    prob.set_offset(beta0, w);
    let q = w.ptr.len() - 1;
    let (mut tau2, mut wsum, mut msum) = (0.0, 0.0, 0.0);
    for c in 0..q {
        let (mut r, mut v, mut m) = (0.0, 0.0, 0.0);
        for k in w.ptr[c]..w.ptr[c + 1] {
            let (mu, var, _) = prob.at(w.offset[k]);
            r += w.ps[k] - w.pa[k] * mu;
            v += w.pa[k] * var;
            m += w.pa[k];
        }
        if m > 0.0 {
            tau2 += (r / m).powi(2) - v / (m * m);
        }
        wsum += v;
        msum += m;
    }
    let vbar = wsum / msum.max(1e-300);
    let theta = (tau2 / q.max(1) as f64).max(0.0).sqrt() / vbar.max(1e-300);
    if theta.is_finite() {
        theta.clamp(0.1, 3.0)
    } else {
        1.0
    }
}

/// `out` = V max(|Λ|, floor) V' for the eigendecomposition H = V Λ V',
/// floor = 1e-8 of the largest |λ| (a positive-definite stand-in).
fn positive_definite(h: &Mat, out: &mut Mat, vals: &mut Vec<f64>, vecs: &mut Mat, tmp: &mut Mat) {
    tmp.assign(h);
    dense::sym_eigen(tmp, vals, vecs);
    let top = vals.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    let floor = 1e-8 * top;
    dense::spectral_sum(vals, vecs, out, |_| true, |l| l.abs().max(floor));
}

/// H ← H − (Hs)(Hs)'/(s'Hs) + yy'/(y's), y = g_new − g_old (skipped
/// unless y's > 0, which keeps H positive definite).
fn bfgs_update(h: &mut Mat, s: &[f64], g_new: &[f64], g_old: &[f64], hs: &mut Vec<f64>) {
    let d = s.len();
    let ys: f64 = (0..d).map(|a| (g_new[a] - g_old[a]) * s[a]).sum();
    hs.clear();
    hs.extend((0..d).map(|a| (0..d).map(|b| h[(a, b)] * s[b]).sum::<f64>()));
    let shs: f64 = (0..d).map(|a| s[a] * hs[a]).sum();
    if !(ys > 1e-12 * shs.abs().max(1e-300) && shs > 0.0) {
        return;
    }
    for a in 0..d {
        for b in 0..d {
            let ya = g_new[a] - g_old[a];
            let yb = g_new[b] - g_old[b];
            h[(a, b)] += ya * yb / ys - hs[a] * hs[b] / shs;
        }
    }
}

/// The Hessian at x into `w.hess`: central differences of the analytic
/// gradient (step 1e-5 relative), symmetrised. Leaves the modes at x.
fn hessian(prob: &Problem, w: &mut ScalarWork, x: &[f64], evals: &mut usize) {
    let d = x.len();
    w.hess.reset(d, d);
    let mut xp = std::mem::take(&mut w.xp);
    let mut gp = std::mem::take(&mut w.gp);
    let mut gm = std::mem::take(&mut w.gm);
    let mut u0 = std::mem::take(&mut w.u0);
    u0.clone_from(&w.u);
    xp.clear();
    xp.extend_from_slice(x);
    for a in 0..d {
        let h = 1e-5 * (1.0 + x[a].abs());
        xp[a] = x[a] + h;
        w.u.clone_from(&u0);
        prob.gradient(w, &xp, &mut gp);
        xp[a] = x[a] - h;
        w.u.clone_from(&u0);
        prob.gradient(w, &xp, &mut gm);
        xp[a] = x[a];
        *evals += 2;
        for b in 0..d {
            w.hess[(a, b)] = (gp[b] - gm[b]) / (2.0 * h);
        }
    }
    w.hess.symmetrise();
    w.u.clone_from(&u0);
    w.u0 = u0;
    w.xp = xp;
    w.gp = gp;
    w.gm = gm;
}

/// vcov from the Hessian, modes at the optimum, and the result.
fn finish(
    prob: &Problem,
    w: &mut ScalarWork,
    x: Vec<f64>,
    grad: Vec<f64>,
    f: f64,
    evals: usize,
    converged: bool,
) -> Option<ScalarFit> {
    let p = prob.p;
    // Modes and deviance exactly at x.
    let mut g = Vec::new();
    let dev = prob.gradient(w, &x, &mut g);
    let dev = if dev.is_finite() { dev } else { f };
    let mut h = w.hess.clone();
    dense::sym_eigen(&mut h, &mut w.vals, &mut w.vecs);
    dense::spectral_sum(&w.vals, &w.vecs, &mut w.inv, |ev| ev != 0.0, |ev| 2.0 / ev);
    let mut vcov = vec![0.0; p * p];
    for a in 0..p {
        for b in 0..p {
            vcov[a * p + b] = 0.5 * (w.inv[(1 + a, 1 + b)] + w.inv[(1 + b, 1 + a)]);
        }
    }
    let theta = x[0].abs();
    let b = w.u.iter().map(|u| x[0] * u).collect();
    let beta = x[1..].to_vec();
    w.x = x;
    w.grad = grad;
    Some(ScalarFit {
        theta,
        beta,
        deviance: dev,
        vcov,
        b,
        evals,
        converged,
    })
}
