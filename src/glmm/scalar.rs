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
//! A = Σ a_i and S = Σ a_i y_i ([`super::patterns`]): the deviance differs
//! by a constant (binomial coefficients, log y! terms) that is added back,
//! and every derivative is unchanged. A trial whose covariates are all at
//! the cluster level (arm, site, period) has one pattern per cluster
//! (-period).
//!
//! **Optimisation.** D is even in θ (u → −u), so θ is unconstrained and
//! reported as |θ|. Newton's method on x = (θ, β) from (a moment estimate,
//! the GLM's β), or from (0, the GLM's β) where D curves upward in θ at 0
//! (the singular fit; see `moment_start`), with the exact Hessian of D
//! (second derivatives through the modes, [`Problem::derivs`]) and a
//! backtracking line search; a last step too small to matter is taken
//! without solving the modes at its end (`FINAL_STEP`). At the optimum
//! the same Hessian gives vcov(β̂) = 2·H⁻¹ restricted to β, as glmer's
//! `use.hessian` (which differences the deviance itself).

use super::family::{Family, Link};
use super::patterns::Patterns;
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
    /// Deviance evaluations used (each solves the modes).
    pub evals: usize,
    pub converged: bool,
}

/// Reused buffers of a scalar fit (per power-run worker).
#[derive(Debug, Clone, Default)]
pub struct ScalarWork {
    /// The data as patterns ([`ScalarWork::prepare`]).
    pt: Patterns,
    offset: Vec<f64>,
    /// Each pattern's μ at the modes of the last [`Problem::deviance`].
    mu: Vec<f64>,
    u: Vec<f64>,
    /// The modes at the current x and their derivatives dû/dx (q × d),
    /// from which a trial point's modes start (first-order prediction).
    ux: Vec<f64>,
    du: Vec<f64>,
    grad: Vec<f64>,
    xp: Vec<f64>,
    x: Vec<f64>,
    step: Vec<f64>,
    /// One pattern's η derivatives, and one cluster's first to fourth
    /// derivatives of g (see [`Problem::derivs`]).
    e: Vec<f64>,
    g1: Vec<f64>,
    g234: Vec<f64>,
    hess: Mat,
    sys: Mat,
    chol: Mat,
    vals: Vec<f64>,
    vecs: Mat,
    inv: Mat,
}

impl ScalarWork {
    /// The patterns [`ScalarWork::prepare`] grouped the rows into (by
    /// cluster, then by row of X and z).
    pub fn patterns(&self) -> &Patterns {
        &self.pt
    }

    /// Group the frame's rows into patterns (see the module notes), for
    /// [`glm`] and [`fit`].
    pub fn prepare(&mut self, fr: &ModelFrame, family: Family, weights: &[f64]) {
        self.pt.group(fr, 0, family, weights);
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
    /// μ (clamped as glmer's), V, V' = dV/dη and V'' at η.
    #[inline]
    fn at(&self, eta: f64) -> (f64, f64, f64, f64) {
        self.at_mu(self.link.inverse(eta))
    }

    /// [`Problem::at`] given μ.
    #[inline]
    fn at_mu(&self, mu: f64) -> (f64, f64, f64, f64) {
        match self.family {
            Family::Binomial => {
                let v = mu * (1.0 - mu);
                (mu, v, v * (1.0 - 2.0 * mu), v - 6.0 * v * v)
            }
            Family::Poisson => (mu, mu, mu, mu),
        }
    }

    /// A pattern's −2 log-likelihood at η (μ its mean), less the
    /// constant. Where μ is not clamped, with one logarithm (binomial:
    /// log(1 − μ) = log μ − η) or none (Poisson: log μ = η).
    #[inline]
    fn pattern_dev(&self, a: f64, s: f64, eta: f64, mu: f64) -> f64 {
        match self.family {
            Family::Binomial if eta.abs() < 30.0 => -2.0 * (a * mu.ln() - (a - s) * eta),
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
            Family::Poisson if eta.abs() < 30.0 => -2.0 * (s * eta - a * mu),
            Family::Poisson => {
                let mut ll = -a * mu;
                if s > 0.0 {
                    ll += s * mu.ln();
                }
                -2.0 * ll
            }
        }
    }

    /// The IRLS sums of [`glm`] at the work's offset: the lower triangle
    /// of Σ A V x x' into `sys` and Σ A V x z into `step`, with p = P
    /// (P = 0: the problem's p).
    #[inline(always)]
    fn irls_products<const P: usize>(&self, w: &mut ScalarWork) {
        let p = if P > 0 { P } else { self.p };
        let sys = &mut w.sys.as_mut_slice()[..p * p];
        let rhs = &mut w.step[..p];
        let pt = &w.pt;
        for (k, &eta) in w.offset.iter().enumerate() {
            let a = pt.a[k];
            if a <= 0.0 {
                continue;
            }
            let (mu, v, ..) = self.at(eta);
            let wt = a * v;
            let z = eta + (pt.s[k] / a - mu) / v;
            let x = &pt.x[k * p..(k + 1) * p];
            for i in 0..p {
                let wx = wt * x[i];
                rhs[i] += wx * z;
                for (e, &xj) in sys[i * p..i * p + i + 1].iter_mut().zip(x) {
                    *e += wx * xj;
                }
            }
        }
    }

    /// Sets the offset x'β of every pattern.
    fn set_offset(&self, beta: &[f64], w: &mut ScalarWork) {
        let p = self.p;
        let np = w.pt.a.len();
        w.offset.clear();
        w.offset
            .extend((0..np).map(|k| (0..p).map(|j| w.pt.x[k * p + j] * beta[j]).sum::<f64>()));
    }

    /// g_j(u) for cluster `c` (its −2 log-likelihood plus u², less the
    /// constant) and g_uu/2 = H, in one pass over its patterns, keeping
    /// each pattern's μ (for [`Problem::derivs`] at these modes).
    fn cluster_g_h(&self, w: &mut ScalarWork, c: usize, theta: f64, u: f64) -> (f64, f64) {
        let (mut g, mut s) = (u * u, 0.0);
        for k in w.pt.ptr[c]..w.pt.ptr[c + 1] {
            let z = w.pt.z[k];
            let eta = w.offset[k] + theta * z * u;
            let (mu, v, ..) = self.at(eta);
            w.mu[k] = mu;
            g += self.pattern_dev(w.pt.a[k], w.pt.s[k], eta, mu);
            s += w.pt.a[k] * v * z * z;
        }
        (g, 1.0 + theta * theta * s)
    }

    /// g_u/2 and g_uu/2 = H of cluster `c` at u (one pass over its patterns).
    #[inline]
    fn cluster_gu(&self, w: &ScalarWork, c: usize, theta: f64, u: f64) -> (f64, f64) {
        let (mut r, mut s) = (0.0, 0.0);
        for k in w.pt.ptr[c]..w.pt.ptr[c + 1] {
            let z = w.pt.z[k];
            let (mu, v, ..) = self.at(w.offset[k] + theta * z * u);
            r += (w.pt.s[k] - w.pt.a[k] * mu) * z;
            s += w.pt.a[k] * v * z * z;
        }
        (u - theta * r, 1.0 + theta * theta * s)
    }

    /// The modes û (from the current ones) and the Laplace deviance at
    /// (θ, β); the offset must be set. Each mode solves g_u = 0 by Newton
    /// inside a bracket that shrinks on every step (g is convex in u for a
    /// canonical link, so g_u is increasing): a step that leaves the
    /// bracket bisects it instead. Newton converges quadratically, with
    /// error after a step of about C·step², C = |g_uuu/(2g_uu)| ≤ |θ| for
    /// these families, so a Newton step under 1e-7 (relative) leaves û
    /// within about |θ|·1e-14 and ends the solve: the deviance, stationary
    /// in û, is then exact to rounding, and its gradient (by the envelope
    /// theorem) off by about 1e-13. Infinite when a mode diverges.
    fn modes(&self, w: &mut ScalarWork, theta: f64) -> f64 {
        w.mu.resize(w.pt.len(), 0.0);
        let mut dev = 0.0;
        let mut log_h = LogProduct::default();
        for c in 0..w.pt.ptr.len() - 1 {
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
                let newton = next > lo && next < hi;
                if !newton {
                    next = match (lo.is_finite(), hi.is_finite()) {
                        (true, true) => 0.5 * (lo + hi),
                        (true, false) => lo + (1.0 + lo.abs()),
                        (false, true) => hi - (1.0 + hi.abs()),
                        (false, false) => next,
                    };
                }
                let step = (next - u).abs();
                u = next;
                if !u.is_finite() || step <= 1e-13 * (1.0 + u.abs()) {
                    break;
                }
                if newton && step <= 1e-7 * (1.0 + u.abs()) {
                    break;
                }
                (gu, h) = self.cluster_gu(w, c, theta, u);
            }
            let (g, h) = self.cluster_g_h(w, c, theta, u);
            if !(g.is_finite() && u.is_finite()) {
                return f64::INFINITY;
            }
            w.u[c] = u;
            dev += g;
            log_h.add(h);
        }
        dev + log_h.value()
    }

    /// The Laplace deviance at x = (θ, β), solving the modes (from the
    /// current ones) and setting the offset.
    fn deviance(&self, w: &mut ScalarWork, x: &[f64]) -> f64 {
        self.set_offset(&x[1..], w);
        self.modes(w, x[0]) + w.pt.constant
    }

    /// The gradient and Hessian of the Laplace deviance at x into `grad`
    /// and `hess` (see the module notes); the modes must be solved at x
    /// ([`Problem::deviance`]), which leaves each pattern's μ there.
    ///
    /// Per cluster, with the augmented vector (u, θ, β) indexed 0, 1, 2..,
    /// one pass over its patterns sums the second derivatives g_ab, and the
    /// third and fourth with one and two u's, g_uab and g_uuab (η is
    /// bilinear: its only second derivative is η_uθ = z). Then with
    /// û_a = −g_ua/g_uu, L = log g_uu (log H up to a constant), and
    /// û_ab = −(g_uab + g_uua û_b + g_uub û_a + g_uuu û_a û_b)/g_uu,
    ///
    ///   D_a  = g_a + L_a + L_u û_a,
    ///   D_ab = g_ab − g_au g_ub/g_uu + L_ab + L_au û_b + L_bu û_a
    ///          + L_uu û_a û_b + L_u û_ab.
    fn derivs(&self, w: &mut ScalarWork, x: &[f64], grad: &mut Vec<f64>, hess: &mut Mat) {
        // Small p as constants, so that the loops below unroll.
        match self.p {
            1 => self.derivs_p::<1>(w, x, grad, hess),
            2 => self.derivs_p::<2>(w, x, grad, hess),
            3 => self.derivs_p::<3>(w, x, grad, hess),
            4 => self.derivs_p::<4>(w, x, grad, hess),
            _ => self.derivs_p::<0>(w, x, grad, hess),
        }
    }

    /// [`Problem::derivs`] with p = P (P = 0: the problem's p).
    #[inline(always)]
    fn derivs_p<const P: usize>(
        &self,
        w: &mut ScalarWork,
        x: &[f64],
        grad: &mut Vec<f64>,
        hess: &mut Mat,
    ) {
        let p = if P > 0 { P } else { self.p };
        let d = p + 1;
        let m = p + 2;
        let theta = x[0];
        grad.clear();
        grad.resize(d, 0.0);
        hess.reset(d, d);
        let ScalarWork {
            pt:
                Patterns {
                    ptr,
                    x: px,
                    z: pz,
                    a: pa,
                    s: ps,
                    ..
                },
            mu: mus,
            u: modes,
            du,
            e,
            g1,
            g234,
            ..
        } = w;
        du.clear();
        du.resize(modes.len() * d, 0.0);
        e.resize(m, 0.0);
        g1.resize(m, 0.0);
        g234.resize(3 * m * m, 0.0);
        let (e, g1, gt) = (&mut e[..m], &mut g1[..m], &mut g234[..3 * m * m]);
        let hs = &mut hess.as_mut_slice()[..d * d];
        let grad = &mut grad[..d];
        // gt holds (g_ab, g_uab, g_uuab) at 3(a m + b), upper triangle.
        let at = |a: usize, b: usize| 3 * (a * m + b);
        for c in 0..ptr.len() - 1 {
            let u = modes[c];
            g1.fill(0.0);
            gt.fill(0.0);
            for k in ptr[c]..ptr[c + 1] {
                let z = pz[k];
                let (mu, v, v1, v2) = self.at_mu(mus[k]);
                let a = pa[k];
                let l1 = -2.0 * (ps[k] - a * mu);
                e[0] = theta * z;
                e[1] = z * u;
                e[2..].copy_from_slice(&px[k * p..(k + 1) * p]);
                let eu = e[0];
                let (l2, l3, l4) = (2.0 * a * v, 2.0 * a * v1 * eu, 2.0 * a * v2 * eu * eu);
                for i in 0..m {
                    g1[i] += l1 * e[i];
                    let (c2, c3, c4) = (l2 * e[i], l3 * e[i], l4 * e[i]);
                    let row = &mut gt[at(i, i)..at(i, m)];
                    for (t, &ej) in row.chunks_exact_mut(3).zip(&e[i..]) {
                        t[0] += c2 * ej;
                        t[1] += c3 * ej;
                        t[2] += c4 * ej;
                    }
                }
                // The terms of η_uθ = z (upper triangle: row u or θ);
                // l3 and l4 above carry eu and eu².
                let (l2, l3) = (2.0 * a * v, 2.0 * a * v1);
                gt[at(0, 1)] += l1 * z;
                for b in 1..m {
                    let twice = if b == 1 { 2.0 } else { 1.0 };
                    gt[at(1, b) + 1] += twice * l2 * z * e[b];
                    gt[at(1, b) + 2] += twice * 2.0 * l3 * z * eu * e[b];
                }
                gt[at(0, 1) + 1] += 2.0 * l2 * z * eu;
                gt[at(0, 1) + 2] += 3.0 * l3 * z * eu * eu;
                gt[at(1, 1) + 2] += 2.0 * l2 * z * z;
            }
            gt[0] += 2.0;
            // Divisions hoisted: one per cluster, then products only. û_a
            // goes in e[a], L_au in g1[0]'s stead (see below).
            let ig = 1.0 / gt[0];
            let (guuu, guuuu) = (gt[1], gt[2]);
            let lu = guuu * ig;
            let luu = guuuu * ig - lu * lu;
            for a in 1..m {
                let ua = -gt[at(0, a)] * ig;
                e[a] = ua;
                du[c * d + a - 1] = ua;
                grad[a - 1] += g1[a] + (gt[at(0, a) + 1] + guuu * ua) * ig;
                // L_au, kept in the unused lower entry (a, u).
                gt[at(a, 0)] = (gt[at(0, a) + 2] - lu * gt[at(0, a) + 1]) * ig;
            }
            for a in 1..m {
                let (ua, lau) = (e[a], gt[at(a, 0)]);
                let (g2ua, g3ua) = (gt[at(0, a)], gt[at(0, a) + 1]);
                for b in a..m {
                    let (ub, lbu) = (e[b], gt[at(b, 0)]);
                    let (g2ub, g3ub) = (gt[at(0, b)], gt[at(0, b) + 1]);
                    let t = &gt[at(a, b)..at(a, b) + 3];
                    let lab = (t[2] - g3ua * g3ub * ig) * ig;
                    let uab = -(t[1] + g3ua * ub + g3ub * ua + guuu * ua * ub) * ig;
                    let dab = t[0] - g2ua * g2ub * ig
                        + lab
                        + lau * ub
                        + lbu * ua
                        + luu * ua * ub
                        + lu * uab;
                    hs[(a - 1) * d + b - 1] += dab;
                    if b != a {
                        hs[(b - 1) * d + a - 1] += dab;
                    }
                }
            }
        }
    }
}

/// Σ log h_k as the log of running products (one logarithm per hundred
/// or so factors, not one each), taken before a product leaves
/// [1e-150, 1e150].
struct LogProduct {
    sum: f64,
    prod: f64,
}

impl Default for LogProduct {
    fn default() -> Self {
        LogProduct {
            sum: 0.0,
            prod: 1.0,
        }
    }
}

impl LogProduct {
    #[inline]
    fn add(&mut self, h: f64) {
        let p = self.prod * h;
        if (1e-150..1e150).contains(&p) {
            self.prod = p;
        } else {
            self.sum += self.prod.ln() + h.ln();
            self.prod = 1.0;
        }
    }

    fn value(&self) -> f64 {
        self.sum + self.prod.ln()
    }
}

/// The GLM without the random effect (β alone, the start of [`fit`] and of
/// a GEE), by IRLS on the patterns [`ScalarWork::prepare`] made: for a
/// canonical link this is Newton's method on Σ x (S − Aμ), from η = the
/// link of the mean response. None when it does not give finite
/// coefficients (separation, or a design that is not of full rank).
pub fn glm(w: &mut ScalarWork, family: Family, link: Link, p: usize) -> Option<Vec<f64>> {
    let np = w.pt.a.len();
    let (sa, ss) = (w.pt.a.iter().sum::<f64>(), w.pt.s.iter().sum::<f64>());
    let eta0 = super::link_of(link, family, ss / sa.max(1e-300));
    let mut beta = vec![0.0; p];
    w.offset.clear();
    w.offset.resize(np, eta0);
    let prob = Problem { family, link, p };
    for _ in 0..25 {
        // Σ A V x x' and Σ A V x z, z = η + (S/A − μ)/V; β solves
        // (Σ A V x x') β = Σ A V x z.
        w.sys.reset(p, p);
        w.step.clear();
        w.step.resize(p, 0.0);
        match p {
            1 => prob.irls_products::<1>(w),
            2 => prob.irls_products::<2>(w),
            3 => prob.irls_products::<3>(w),
            4 => prob.irls_products::<4>(w),
            _ => prob.irls_products::<0>(w),
        }
        if !crate::lmm::pls::dense_cholesky_lower(w.sys.as_mut_slice(), p) {
            return None;
        }
        crate::lmm::pls::cholesky_solve(w.sys.as_slice(), p, &mut w.step);
        let mut change = 0.0f64;
        for (b, &new) in beta.iter_mut().zip(&w.step) {
            change = change.max((new - *b).abs());
            *b = new;
        }
        prob.set_offset(&beta, w);
        if !beta.iter().all(|b| b.is_finite()) {
            return None;
        }
        if change < 1e-10 {
            break;
        }
    }
    Some(beta)
}

/// The largest Newton step (relative to 1 + |x|, every coordinate) taken
/// as the last without solving the modes at its end: see [`fit`].
const FINAL_STEP: f64 = 1e-7;

/// Fit by Laplace, on the patterns [`ScalarWork::prepare`] made. `beta0` is
/// the start for β (the GLM's). None when the deviance or the Newton
/// iteration fails.
pub fn fit(
    fr: &ModelFrame,
    family: Family,
    link: Link,
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
    let q = w.pt.ptr.len() - 1;
    w.u.clear();
    w.u.resize(q, 0.0);
    let mut x = std::mem::take(&mut w.x);
    x.clear();
    let (theta0, singular) = moment_start(&prob, w, beta0);
    // Where the deviance curves upward in θ at 0, start there: (0, β_GLM)
    // is then the optimum (the gradient is 0 and the Hessian positive
    // definite), which the loop below confirms at once instead of walking
    // θ down to 0 from θ0. Otherwise from θ0.
    x.push(if singular { 0.0 } else { theta0 });
    x.extend_from_slice(beta0);
    let mut grad = std::mem::take(&mut w.grad);
    let mut hess = std::mem::take(&mut w.hess);
    let mut f = prob.deviance(w, &x);
    let mut evals = 1usize;
    let mut converged = false;
    // Newton with a backtracking line search on the exact Hessian, made
    // positive definite (eigenvalues floored at their absolute value, at
    // least 1e-8 of the largest) where it is not.
    let gmax = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if f.is_finite() {
        prob.derivs(w, &x, &mut grad, &mut hess);
        // θ = 0 is a stationary point in θ whatever its curvature: it is
        // kept only as a minimum.
        if singular && !(hess[(0, 0)] > 0.0) {
            x[0] = theta0;
            w.u.iter_mut().for_each(|u| *u = 0.0);
            f = prob.deviance(w, &x);
            evals += 1;
            if f.is_finite() {
                prob.derivs(w, &x, &mut grad, &mut hess);
            }
        }
    }
    for _ in 0..200 {
        if !f.is_finite() {
            break;
        }
        if gmax(&grad) < 1e-9 {
            converged = true;
            break;
        }
        let exact = hess.inverse_spd_into(&mut w.inv, &mut w.chol);
        if !exact {
            positive_definite(&hess, &mut w.sys, &mut w.vals, &mut w.vecs, &mut w.chol);
            if !w.sys.inverse_spd_into(&mut w.inv, &mut w.chol) {
                break;
            }
        }
        w.step.clear();
        w.step
            .extend((0..d).map(|a| -(0..d).map(|b| w.inv[(a, b)] * grad[b]).sum::<f64>()));
        let slope: f64 = (0..d).map(|a| w.step[a] * grad[a]).sum();
        // The last step. Newton's method converges quadratically: with the
        // exact Hessian positive definite, x + step is the optimum to
        // within about K·|step|², K the Hessian's relative change per unit
        // of x. A step under FINAL_STEP of every coordinate therefore
        // lands far closer than the gradient test above asks (about 1e-11
        // here), and is taken without solving the modes there: the
        // deviance is the quadratic model's, f + slope/2, the modes their
        // first-order prediction û + (dû/dx)·step (both off by O(|step|²)
        // and O(|step|³)), and the Hessian behind vcov(β̂) this one, which
        // differs from the optimum's by O(|step|) relative.
        let last = exact
            && w.step
                .iter()
                .zip(&x)
                .all(|(s, v)| s.abs() <= FINAL_STEP * (1.0 + v.abs()));
        if last {
            for c in 0..q {
                let du = &w.du[c * d..(c + 1) * d];
                w.u[c] += du.iter().zip(&w.step).map(|(a, b)| a * b).sum::<f64>();
            }
            for (v, s) in x.iter_mut().zip(&w.step) {
                *v += s;
            }
            f += 0.5 * slope;
            converged = true;
            break;
        }
        let mut t = 1.0;
        let mut accepted = false;
        w.ux.clone_from(&w.u);
        for _ in 0..40 {
            w.xp.clear();
            w.xp.extend(x.iter().zip(&w.step).map(|(a, s)| a + t * s));
            let xp = std::mem::take(&mut w.xp);
            // Modes start from their first-order prediction at xp.
            for c in 0..q {
                let du = &w.du[c * d..(c + 1) * d];
                w.u[c] = w.ux[c] + t * du.iter().zip(&w.step).map(|(a, b)| a * b).sum::<f64>();
            }
            let fp = prob.deviance(w, &xp);
            evals += 1;
            let ok =
                fp.is_finite() && fp <= f + 1e-4 * t * slope.min(0.0) + 1e-11 * (1.0 + f.abs());
            if ok {
                let small = w
                    .step
                    .iter()
                    .zip(&x)
                    .all(|(s, v)| (t * s).abs() <= 1e-10 * (1.0 + v.abs()));
                let df = f - fp;
                x.clone_from(&xp);
                f = fp;
                prob.derivs(w, &x, &mut grad, &mut hess);
                accepted = true;
                if (small || df.abs() <= 1e-14 * (1.0 + f.abs())) && gmax(&grad) < 1e-4 {
                    converged = true;
                }
            }
            w.xp = xp;
            if accepted {
                break;
            }
            t *= 0.5;
        }
        if converged {
            break;
        }
        if !accepted {
            // No descent along the Newton direction: the optimum to
            // rounding, or stuck.
            converged = gmax(&grad) < 1e-4;
            // The modes and derivatives at x.
            w.u.clone_from(&w.ux);
            f = prob.deviance(w, &x);
            if f.is_finite() {
                prob.derivs(w, &x, &mut grad, &mut hess);
            }
            break;
        }
    }
    w.hess = hess;
    if !f.is_finite() {
        w.x = x;
        w.grad = grad;
        return None;
    }
    finish(&prob, w, x, grad, f, evals, converged)
}

/// A start for θ from the GLM fit: the between-cluster variance of the
/// clusters' mean residuals beyond their sampling variance, τ² =
/// mean_j(r̄_j² − Σ_j AV/M_j²), on the link scale (divided by the mean
/// dμ/dη = V), clamped to [0.1, 3]; and whether the deviance curves upward
/// in θ at θ = 0 from the GLM's β, where D''(0) = 2 Σ_j (V_j − S_j²) with
/// S_j = Σ r z and V_j = Σ A V z² (the second derivative of
/// Σ_j [g_j(û_j) + log H_j] with û_j ≈ θS_j and H_j ≈ 1 + θ²V_j): there
/// (θ, β) = (0, β_GLM) is a stationary point and a minimum, the singular
/// fit.
fn moment_start(prob: &Problem, w: &mut ScalarWork, beta0: &[f64]) -> (f64, bool) {
    prob.set_offset(beta0, w);
    let q = w.pt.ptr.len() - 1;
    let (mut tau2, mut wsum, mut msum) = (0.0, 0.0, 0.0);
    let (mut s2, mut v2) = (0.0, 0.0);
    for c in 0..q {
        let (mut r, mut v, mut m) = (0.0, 0.0, 0.0);
        let (mut rz, mut vz) = (0.0, 0.0);
        for k in w.pt.ptr[c]..w.pt.ptr[c + 1] {
            let (mu, var, ..) = prob.at(w.offset[k]);
            let z = w.pt.z[k];
            r += w.pt.s[k] - w.pt.a[k] * mu;
            v += w.pt.a[k] * var;
            m += w.pt.a[k];
            rz += (w.pt.s[k] - w.pt.a[k] * mu) * z;
            vz += w.pt.a[k] * var * z * z;
        }
        if m > 0.0 {
            tau2 += (r / m).powi(2) - v / (m * m);
        }
        wsum += v;
        msum += m;
        s2 += rz * rz;
        v2 += vz;
    }
    let vbar = wsum / msum.max(1e-300);
    let theta = (tau2 / q.max(1) as f64).max(0.0).sqrt() / vbar.max(1e-300);
    let theta = if theta.is_finite() {
        theta.clamp(0.1, 3.0)
    } else {
        1.0
    };
    (theta, s2 < v2)
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
    // The modes are at x, and the Hessian is x's: vcov = 2·H⁻¹ (a
    // pseudo-inverse when H is not positive definite), symmetrised.
    if !w.hess.inverse_spd_into(&mut w.inv, &mut w.chol) {
        w.sys.assign(&w.hess);
        dense::sym_eigen(&mut w.sys, &mut w.vals, &mut w.vecs);
        dense::spectral_sum(&w.vals, &w.vecs, &mut w.inv, |ev| ev != 0.0, |ev| 1.0 / ev);
    }
    let mut vcov = vec![0.0; p * p];
    for a in 0..p {
        for b in 0..p {
            vcov[a * p + b] = w.inv[(1 + a, 1 + b)] + w.inv[(1 + b, 1 + a)];
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
        deviance: f,
        vcov,
        b,
        evals,
        converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lmm::data::DataFrame;
    use crate::lmm::formula::Formula;

    /// The analytic gradient and Hessian of [`Problem::derivs`] equal
    /// central differences of the deviance and of the gradient, away from
    /// the optimum, for a
    /// binary and a count outcome with a within-cluster covariate (several
    /// patterns per cluster).
    #[test]
    fn analytic_hessian_matches_differences_of_the_gradient() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/glmm/data/crt_binary_parallel.csv"
        );
        let data = DataFrame::read_csv(path).expect("vendored fixture");
        for (formula, family) in [
            (
                "recovered ~ arm + baseline_high + (1|team)",
                Family::Binomial,
            ),
            ("contacts ~ arm + baseline_high + (1|team)", Family::Poisson),
        ] {
            let fr = ModelFrame::new(&Formula::parse(formula).unwrap(), &data).unwrap();
            let prob = Problem {
                family,
                link: family.canonical(),
                p: fr.p,
            };
            let mut w = ScalarWork::default();
            w.prepare(&fr, family, &vec![1.0; fr.n]);
            w.u = vec![0.0; w.pt.ptr.len() - 1];
            let x = [0.7, -0.4, 0.3, 0.2];
            let (mut g, mut h) = (Vec::new(), Mat::default());
            assert!(prob.deviance(&mut w, &x).is_finite());
            prob.derivs(&mut w, &x, &mut g, &mut h);
            for a in 0..x.len() {
                let step = 1e-5;
                let mut xp = x;
                xp[a] += step;
                let (mut gp, mut gm, mut scratch) = (Vec::new(), Vec::new(), Mat::default());
                let dp = prob.deviance(&mut w, &xp);
                prob.derivs(&mut w, &xp, &mut gp, &mut scratch);
                xp[a] -= 2.0 * step;
                let dm = prob.deviance(&mut w, &xp);
                prob.derivs(&mut w, &xp, &mut gm, &mut scratch);
                let fd = (dp - dm) / (2.0 * step);
                assert!(
                    (fd - g[a]).abs() <= 1e-5 * (1.0 + fd.abs()),
                    "{formula}: gradient[{a}] = {} against differences {fd}",
                    g[a]
                );
                for b in 0..x.len() {
                    let fd = (gp[b] - gm[b]) / (2.0 * step);
                    assert!(
                        (fd - h[(a, b)]).abs() <= 1e-6 * (1.0 + fd.abs()),
                        "{formula}: H[{a}][{b}] = {} against differences {fd}",
                        h[(a, b)]
                    );
                }
            }
        }
    }
}
