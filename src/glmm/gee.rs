//! Generalised estimating equations with an exchangeable working
//! correlation (Liang & Zeger 1986), for binary and count outcomes in
//! cluster trials: the population-averaged (marginal) effect, with the
//! sandwich covariance and its two small-sample corrections.
//!
//! * Estimation as geepack's `geeglm` (from the GLM fit, Fisher scoring on
//!   β; moment estimates φ = Σe²/N and α = Σ_i Σ_{j<k} e_ij e_ik /
//!   (φ · Σ_i n_i(n_i − 1)/2) from Pearson residuals e), the scoring steps
//!   extrapolated by Anderson acceleration (see [`fit_by_from`]), on the
//!   rows grouped into patterns ([`super::patterns`]).
//! * Covariance B·M·B with B = (Σ D_i'V_i⁻¹D_i)⁻¹ and
//!   M = Σ D_i'V_i⁻¹ c_i c_i' V_i⁻¹D_i, where c_i is the residual y_i − μ_i
//!   (robust, "sandwich"), (I − H_ii)⁻¹ times it (Mancl & DeRouen 2001), or
//!   (I − H_ii)^(−1/2) times it (Kauermann & Carroll 2001), with the
//!   cluster leverage H_ii = D_i B D_i' V_i⁻¹. Its inverse square root is the
//!   principal one: V^{1/2}(I − S)^{−1/2}V^{−1/2} with the symmetric
//!   S = V^{−1/2} D B D' V^{−1/2}.
//! * Tests use t on (clusters − p) df, the small-sample reference these
//!   corrections are paired with in cluster trials (Li & Redden 2015).

use super::patterns::Patterns;
use super::{glm_irls, Family, Link};
use crate::error::{Error, Result};
use crate::lmm::dense::{self, Mat};
use crate::lmm::frame::ModelFrame;

/// Which covariance of β̂ a test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeeVariance {
    /// The uncorrected sandwich.
    Robust,
    /// Mancl–DeRouen bias-corrected sandwich.
    ManclDeRouen,
    /// Kauermann–Carroll bias-corrected sandwich.
    KauermannCarroll,
}

/// The bias-corrected covariances a fit computes, besides the model-based
/// and robust ones (Kauermann–Carroll's needs an eigendecomposition per
/// cluster, Mancl–DeRouen's a p × p solve).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrections {
    pub mancl_derouen: bool,
    pub kauermann_carroll: bool,
}

impl Corrections {
    /// Both.
    pub const ALL: Corrections = Corrections {
        mancl_derouen: true,
        kauermann_carroll: true,
    };
}

/// A GEE fit.
#[derive(Debug, Clone)]
pub struct GeeFit {
    pub beta: Vec<f64>,
    pub names: Vec<String>,
    /// Working correlation and scale.
    pub alpha: f64,
    pub phi: f64,
    /// p × p covariances, row-major: model-based, robust, and the MD and
    /// KC ones when the fit was asked for them ([`Corrections`]).
    pub vcov_model: Vec<f64>,
    pub vcov_robust: Vec<f64>,
    pub vcov_md: Option<Vec<f64>>,
    pub vcov_kc: Option<Vec<f64>>,
    pub n: usize,
    pub clusters: usize,
    pub iterations: usize,
    pub converged: bool,
}

impl GeeFit {
    /// The covariance a test uses; None when the fit did not compute it.
    pub fn vcov(&self, v: GeeVariance) -> Option<&[f64]> {
        match v {
            GeeVariance::Robust => Some(&self.vcov_robust),
            GeeVariance::ManclDeRouen => self.vcov_md.as_deref(),
            GeeVariance::KauermannCarroll => self.vcov_kc.as_deref(),
        }
    }

    /// SE of coefficient j under `v` (NaN when the fit did not compute
    /// that covariance: [`fit`] computes all of them).
    pub fn se(&self, j: usize, v: GeeVariance) -> f64 {
        let p = self.beta.len();
        self.vcov(v).map_or(f64::NAN, |m| m[j * p + j].sqrt())
    }

    /// The df of its t tests: clusters − p.
    pub fn df(&self) -> f64 {
        self.clusters as f64 - self.beta.len() as f64
    }
}

/// Fit a GEE to the frame's X and y, clustered by the grouping factor of
/// its only random-effects term (`(1|team)` names the clusters), with prior
/// weights `weights` (binomial trials).
pub fn fit(fr: &ModelFrame, family: Family, link: Link, weights: &[f64]) -> Result<GeeFit> {
    if fr.terms.len() != 1 {
        return Err(Error::Usage(format!(
            "--gee needs exactly one term (1|cluster) in the formula to name the clusters; it has {}",
            fr.terms.len()
        )));
    }
    fit_by(fr, 0, family, link, weights)
}

/// [`fit`] clustered by the grouping factor of random-effects term
/// `cluster` of the frame (the frame's other terms are ignored: a power
/// run's model may also have, say, cluster-period effects, which the
/// exchangeable working correlation within clusters leaves to the sandwich).
pub fn fit_by(
    fr: &ModelFrame,
    cluster: usize,
    family: Family,
    link: Link,
    weights: &[f64],
) -> Result<GeeFit> {
    let beta0 = glm_irls(fr, family, link, weights)?;
    fit_by_from(
        fr,
        cluster,
        family,
        link,
        weights,
        beta0,
        None,
        Corrections::ALL,
    )
}

/// [`fit_by`] from a given start `beta0` (the GLM's, e.g. shared with a
/// GLMM fit of the same data), computing the corrected covariances
/// `corrections` asks for. `patterns`, when given, are the frame's rows
/// grouped by the same clustering (a GLMM's, [`super::Glmm::patterns`]);
/// None groups them here.
#[allow(clippy::too_many_arguments)]
pub fn fit_by_from(
    fr: &ModelFrame,
    cluster: usize,
    family: Family,
    link: Link,
    weights: &[f64],
    beta0: Vec<f64>,
    patterns: Option<&Patterns>,
    corrections: Corrections,
) -> Result<GeeFit> {
    let Some(term) = fr.terms.get(cluster) else {
        return Err(Error::Usage(
            "the GEE needs a random-effects term (1|cluster) to name the clusters".into(),
        ));
    };
    if term.k != 1 {
        return Err(Error::Usage(
            "--gee: name the clusters with (1|cluster); random slopes have no meaning in a GEE"
                .into(),
        ));
    }
    let (n, p) = (fr.n, fr.p);
    let g = term.nlevels();
    if g <= p {
        return Err(Error::Usage(format!(
            "--gee: {g} clusters for {p} fixed-effect coefficients; the small-sample t test needs more clusters than coefficients"
        )));
    }
    let mut own = Patterns::default();
    let pt = match patterns {
        Some(pt) if pt.clusters() == g && pt.order().len() == n => pt,
        _ => {
            own.group(fr, cluster, family, weights);
            &own
        }
    };
    let mut beta = beta0;
    if beta.len() != p {
        return Err(Error::Usage(format!(
            "the GEE start has {} coefficients for {p} columns",
            beta.len()
        )));
    }
    let mut st = State::new(pt.len(), p);
    let mut converged = false;
    let mut iterations = 0;
    let (mut h, mut hinv, mut scratch) = (Mat::default(), Mat::default(), Mat::default());
    let mut u = vec![0.0; p];
    // φ, α, B = (Σ D'V⁻¹D)⁻¹ (in hinv) and the score Σ D'V⁻¹(y − μ) at β.
    let mut information = |st: &mut State, beta: &[f64], hinv: &mut Mat, u: &mut [f64]| {
        let (phi, alpha) = st.information(pt, family, link, beta, &mut h, u);
        check_alpha(alpha, &pt.rows)?;
        if !h.inverse_spd_into(hinv, &mut scratch) {
            return Err(Error::Usage(
                "--gee: the estimating equations are singular (a predictor constant within the data, or separation)".into(),
            ));
        }
        Ok((phi, alpha))
    };
    let mut moments = (f64::NAN, f64::NAN);
    // Scoring converges linearly (α and φ follow β), at a rate of about
    // 0.05 here, so its steps are extrapolated by Anderson acceleration
    // with one step of memory (a secant on the map β → β + step): the
    // next β is G(β_k) − γ (G(β_k) − G(β_{k−1})), γ fitting the change in
    // the step by least squares. A step larger than the last one, or a γ
    // beyond ±1, gives a plain scoring step instead. Convergence is judged
    // on the plain step, as without acceleration.
    let (mut step_v, mut prev_beta, mut prev_step) = (vec![0.0; p], vec![0.0; p], vec![0.0; p]);
    let mut have_prev = false;
    let mut last_size = f64::INFINITY;
    for it in 0..100 {
        iterations = it + 1;
        moments = information(&mut st, &beta, &mut hinv, &mut u)?;
        // Fisher scoring: step = (Σ D'V⁻¹D)⁻¹ Σ D'V⁻¹(y − μ).
        let mut size = 0.0f64;
        for a in 0..p {
            step_v[a] = (0..p).map(|b| hinv[(a, b)] * u[b]).sum();
            size = size.max(step_v[a].abs() / (1.0 + (beta[a] + step_v[a]).abs()));
        }
        // 1e-8 of each coefficient (geepack stops at 1e-4).
        if size < 1e-8 {
            for (b, d) in beta.iter_mut().zip(&step_v) {
                *b += d;
            }
            converged = beta.iter().all(|b| b.is_finite());
            break;
        }
        // γ = (Δf · f)/(Δf · Δf), Δf the change in the step.
        let gamma = if have_prev && size <= last_size {
            let (mut num, mut den) = (0.0, 0.0);
            for a in 0..p {
                let df = step_v[a] - prev_step[a];
                num += df * step_v[a];
                den += df * df;
            }
            // |γ| ≤ 1: steps shrinking by a factor r with γ = r/(r − 1),
            // r ≤ ½. Steps that barely shrink (β drifting off under
            // separation) are not extrapolated: they stay plain, and
            // scoring stops unconverged as without acceleration.
            let g = num / den;
            if g.is_finite() && g.abs() <= 1.0 {
                g
            } else {
                0.0
            }
        } else {
            0.0
        };
        for a in 0..p {
            let next =
                beta[a] + step_v[a] - gamma * (beta[a] - prev_beta[a] + step_v[a] - prev_step[a]);
            prev_beta[a] = beta[a];
            prev_step[a] = step_v[a];
            beta[a] = next;
        }
        have_prev = true;
        last_size = size;
        if !beta.iter().all(|b| b.is_finite()) {
            return Err(Error::Usage(
                "--gee: the estimating equations diverged (check for separation)".into(),
            ));
        }
    }
    // Covariances at the solution: at the last iterate when scoring
    // converged (its step moved β by under 1e-8 of itself; the SEs differ
    // from those recomputed after it by under 1e-6 relative over 3,000
    // REFOCUS-binary trials), else recomputed.
    let (phi, alpha) = if converged {
        moments
    } else {
        information(&mut st, &beta, &mut hinv, &mut u)?
    };
    let mut meat = [Mat::zeros(p, p), Mat::zeros(p, p), Mat::zeros(p, p)];
    let mut mw = MeatWork {
        s: vec![0.0; p],
        ..MeatWork::default()
    };
    // B^{1/2}, the symmetric root of B = (Σ D'V⁻¹D)⁻¹, for the corrections
    // by eigendecomposition.
    let mut bh = Mat::default();
    let root = |bh: &mut Mat| {
        let (mut vals, mut vecs, mut tmp) = (Vec::new(), Mat::default(), hinv.clone());
        dense::sym_eigen(&mut tmp, &mut vals, &mut vecs);
        dense::spectral_sum(&vals, &vecs, bh, |_| true, |l| l.max(0.0).sqrt());
    };
    if corrections.kauermann_carroll {
        root(&mut bh);
    }
    for c in 0..g {
        st.cluster_qs(pt, c, alpha, phi, &mut mw.q, &mut mw.s);
        add_outer(&mut meat[0], &mw.s);
        if corrections.mancl_derouen && !mancl_derouen(&h, &mut mw, &mut meat[1]) {
            // A leverage of 1 or more: the directions without an inverse
            // are dropped, by the eigendecomposition.
            if bh.nrows() == 0 {
                root(&mut bh);
            }
            st.meat(&bh, 1.0, &mut mw, &mut meat[1]);
        }
        if corrections.kauermann_carroll {
            st.meat(&bh, 0.5, &mut mw, &mut meat[2]);
        }
    }
    let sandwich = |m: &Mat| -> Vec<f64> {
        let mut t = Mat::default();
        let mut out = Mat::default();
        out.set_mul3(&hinv, m, &hinv, &mut t);
        out.symmetrise();
        out.as_slice().to_vec()
    };
    Ok(GeeFit {
        beta,
        names: fr.x_names.clone(),
        alpha,
        phi,
        vcov_model: hinv.as_slice().to_vec(),
        vcov_robust: sandwich(&meat[0]),
        vcov_md: corrections.mancl_derouen.then(|| sandwich(&meat[1])),
        vcov_kc: corrections.kauermann_carroll.then(|| sandwich(&meat[2])),
        n,
        clusters: g,
        iterations,
        converged,
    })
}

/// Copy a square matrix's lower triangle to its upper.
fn fill_upper(h: &mut Mat) {
    let p = h.nrows();
    for a in 0..p {
        for b in 0..a {
            h[(b, a)] = h[(a, b)];
        }
    }
}

/// m += s s'.
fn add_outer(m: &mut Mat, s: &[f64]) {
    for a in 0..s.len() {
        for b in 0..s.len() {
            m[(a, b)] += s[a] * s[b];
        }
    }
}

/// Add a cluster's Mancl–DeRouen meat term to `meat`, with Q and s of the
/// cluster in `w` and the information `h` = B⁻¹ = Σ Q: by Woodbury,
/// (I − D B D'V⁻¹)⁻¹ = I + D (B⁻¹ − Q)⁻¹ D'V⁻¹, so D'V⁻¹c = s + Q y with
/// (B⁻¹ − Q) y = s, a p × p solve. False (nothing added) when B⁻¹ − Q is
/// not positive definite, i.e. a leverage of 1 or more.
fn mancl_derouen(h: &Mat, w: &mut MeatWork, meat: &mut Mat) -> bool {
    let p = w.s.len();
    w.m.assign(h);
    for a in 0..p {
        for b in 0..p {
            w.m[(a, b)] -= w.q[(a, b)];
        }
    }
    if !crate::lmm::pls::dense_cholesky_lower(w.m.as_mut_slice(), p) {
        return false;
    }
    w.z.clone_from(&w.s);
    crate::lmm::pls::cholesky_solve(w.m.as_slice(), p, &mut w.z);
    w.c.clear();
    w.c.extend((0..p).map(|a| w.s[a] + (0..p).map(|b| w.q[(a, b)] * w.z[b]).sum::<f64>()));
    add_outer(meat, &w.c);
    true
}

/// The exchangeable working correlation is a correlation matrix only for
/// −1/(m − 1) < α < 1 with m the largest cluster.
fn check_alpha(alpha: f64, rows: &[usize]) -> Result<()> {
    let m = rows.iter().copied().max().unwrap_or(1) as f64;
    let lo = if m > 1.0 {
        -1.0 / (m - 1.0)
    } else {
        f64::NEG_INFINITY
    };
    if !(alpha > lo && alpha < 1.0) {
        return Err(Error::Usage(format!(
            "--gee: the estimated exchangeable correlation alpha = {alpha:.4} is outside ({lo:.4}, 1), where a working correlation for clusters of up to {m} rows must lie (strongly alternating responses within clusters); use the GLMM (drop --gee)"
        )));
    }
    Ok(())
}

/// μ, μ'(η) and V(μ) of each pattern at β.
struct State {
    mu: Vec<f64>,
    deriv: Vec<f64>,
    var: Vec<f64>,
    /// Per cluster, for [`State::information`]: t = Σ d_i/√v_i (p) and
    /// t_e = Σ e_i/√v_i.
    cluster_t: Vec<f64>,
    cluster_te: Vec<f64>,
    p: usize,
}

impl State {
    fn new(np: usize, p: usize) -> State {
        State {
            mu: vec![0.0; np],
            deriv: vec![0.0; np],
            var: vec![0.0; np],
            cluster_t: Vec::new(),
            cluster_te: Vec::new(),
            p,
        }
    }

    fn at(&mut self, pt: &Patterns, family: Family, link: Link, beta: &[f64]) {
        let p = self.p;
        // For a canonical link dμ/dη = V(μ).
        let canonical = link == family.canonical();
        for k in 0..pt.len() {
            let eta: f64 = (0..p).map(|j| pt.x[k * p + j] * beta[j]).sum();
            let mu = link.inverse(eta);
            let var = family.variance(mu);
            self.mu[k] = mu;
            self.deriv[k] = if canonical { var } else { link.mu_eta(eta) };
            self.var[k] = var;
        }
    }

    /// μ, μ' and V at β ([`State::at`]), the moment estimates φ = Σe²/N
    /// and α = Σ pairs e e / (φ · pairs) as geepack's (e the Pearson
    /// residuals √a (y − μ)/√V, summed over a pattern's rows from its
    /// totals), and into `h` and `u` the information
    /// Σ D'V⁻¹D (whole) and the score Σ D'V⁻¹(y − μ), in one pass over the
    /// patterns. With the exchangeable V⁻¹ of [`State::cluster_products`],
    /// h = k[Σ_i d_i d_i'/v_i − Σ_c c_c t_c t_c'] and u = k[Σ_i d_i r_i/v_i
    /// − Σ_c c_c t_c t_e,c]: the sums over patterns do not involve α or φ,
    /// so they are taken before the moments are known, and only the
    /// clusters' t and t_e are kept for the second, cluster-level, sum.
    fn information(
        &mut self,
        pt: &Patterns,
        family: Family,
        link: Link,
        beta: &[f64],
        h: &mut Mat,
        u: &mut [f64],
    ) -> (f64, f64) {
        self.at(pt, family, link, beta);
        // Small p as constants, so that the loops below unroll.
        match self.p {
            1 => self.information_p::<1>(pt, h, u),
            2 => self.information_p::<2>(pt, h, u),
            3 => self.information_p::<3>(pt, h, u),
            4 => self.information_p::<4>(pt, h, u),
            _ => self.information_p::<0>(pt, h, u),
        }
    }

    /// [`State::information`] after [`State::at`], with p = P (P = 0: p
    /// of the state).
    #[inline(always)]
    fn information_p<const P: usize>(
        &mut self,
        pt: &Patterns,
        h: &mut Mat,
        u: &mut [f64],
    ) -> (f64, f64) {
        let p = if P > 0 { P } else { self.p };
        let g = pt.clusters();
        h.reset(p, p);
        u.iter_mut().for_each(|v| *v = 0.0);
        self.cluster_t.clear();
        self.cluster_t.resize(g * p, 0.0);
        self.cluster_te.clear();
        let (mut sum_e2, mut num, mut pairs) = (0.0, 0.0, 0.0);
        let hs = &mut h.as_mut_slice()[..p * p];
        let u = &mut u[..p];
        for c in 0..g {
            let t = &mut self.cluster_t[c * p..(c + 1) * p];
            let (mut te, mut s2) = (0.0, 0.0);
            for q in pt.ptr[c]..pt.ptr[c + 1] {
                let (mu, v, di) = (self.mu[q], self.var[q], self.deriv[q]);
                let (iv, isv) = (1.0 / v, 1.0 / v.sqrt());
                let e = (pt.t[q] - mu * pt.r[q]) * isv;
                te += e;
                s2 += (pt.s2[q] - 2.0 * mu * pt.s[q] + mu * mu * pt.a[q]) * iv;
                let rv = pt.r[q] * isv;
                let res = pt.s[q] - mu * pt.a[q];
                let x = &pt.x[q * p..(q + 1) * p];
                let (ku, kh) = (res * iv * di, di * di * pt.a[q] * iv);
                for a in 0..p {
                    t[a] += di * x[a] * rv;
                    u[a] += ku * x[a];
                    let row = &mut hs[a * p..a * p + a + 1];
                    for (hb, &xb) in row.iter_mut().zip(x) {
                        *hb += kh * x[a] * xb;
                    }
                }
            }
            self.cluster_te.push(te);
            sum_e2 += s2;
            num += 0.5 * (te * te - s2);
            let m = pt.rows[c] as f64;
            pairs += 0.5 * m * (m - 1.0);
        }
        let n: usize = pt.rows.iter().sum();
        let phi = sum_e2 / n as f64;
        let alpha = if pairs > 0.0 {
            num / (pairs * phi)
        } else {
            0.0
        };
        let k = 1.0 / ((1.0 - alpha) * phi);
        for c in 0..g {
            let m = pt.rows[c] as f64;
            let cc = alpha / (1.0 + (m - 1.0) * alpha);
            let (t, te) = (&self.cluster_t[c * p..(c + 1) * p], self.cluster_te[c]);
            for a in 0..p {
                u[a] -= cc * t[a] * te;
                let row = &mut hs[a * p..a * p + a + 1];
                for (hb, &tb) in row.iter_mut().zip(t) {
                    *hb -= cc * t[a] * tb;
                }
            }
        }
        for v in hs.iter_mut() {
            *v *= k;
        }
        for v in u.iter_mut() {
            *v *= k;
        }
        fill_upper(h);
        (phi, alpha)
    }

    /// Add D'V⁻¹D into h and D'V⁻¹(y − μ) into u for cluster `c`. With the
    /// exchangeable V⁻¹ = k·A^{−1/2}(I − c11')A^{−1/2}, k = 1/((1 − α)φ),
    /// c = α/(1 + (m − 1)α), these are k[Σ d_i d_i'/v_i − c t t'] and
    /// k[Σ d_i e_i/v_i − c t t_e] with d_i = μ'(η_i) x_i, v_i = V/a_i,
    /// t = Σ d_i/√v_i and t_e = Σ e_i/√v_i: O(patterns · p²), no m × m work.
    /// Only h's lower triangle is added to: see [`fill_upper`].
    fn cluster_products(
        &self,
        pt: &Patterns,
        cl: usize,
        alpha: f64,
        phi: f64,
        h: &mut Mat,
        u: &mut [f64],
    ) {
        // Small p as constants, so that the loops below unroll.
        match self.p {
            1 => self.products::<1>(pt, cl, alpha, phi, h, u),
            2 => self.products::<2>(pt, cl, alpha, phi, h, u),
            3 => self.products::<3>(pt, cl, alpha, phi, h, u),
            4 => self.products::<4>(pt, cl, alpha, phi, h, u),
            _ => self.products::<0>(pt, cl, alpha, phi, h, u),
        }
    }

    /// [`State::cluster_products`] with p = P (P = 0: p of the state).
    #[inline(always)]
    fn products<const P: usize>(
        &self,
        pt: &Patterns,
        cl: usize,
        alpha: f64,
        phi: f64,
        h: &mut Mat,
        u: &mut [f64],
    ) {
        let p = if P > 0 { P } else { self.p };
        let m = pt.rows[cl] as f64;
        let c = alpha / (1.0 + (m - 1.0) * alpha);
        let k = 1.0 / ((1.0 - alpha) * phi);
        let mut t = [0.0f64; 16];
        let mut t_heap = Vec::new();
        let t: &mut [f64] = if p <= t.len() {
            &mut t[..p]
        } else {
            t_heap.resize(p, 0.0);
            &mut t_heap
        };
        let hs = &mut h.as_mut_slice()[..p * p];
        let u = &mut u[..p];
        let mut te = 0.0;
        for q in pt.ptr[cl]..pt.ptr[cl + 1] {
            let (mu, v, di) = (self.mu[q], self.var[q], self.deriv[q]);
            let (iv, isv) = (1.0 / v, 1.0 / v.sqrt());
            let rv = pt.r[q] * isv;
            let res = pt.s[q] - mu * pt.a[q];
            te += (pt.t[q] - mu * pt.r[q]) * isv;
            let x = &pt.x[q * p..(q + 1) * p];
            let (ku, kh) = (k * res * iv, k * di * pt.a[q] * iv);
            for a in 0..p {
                let da = di * x[a];
                t[a] += da * rv;
                u[a] += ku * da;
                let row = &mut hs[a * p..a * p + a + 1];
                for (hb, &xb) in row.iter_mut().zip(x) {
                    *hb += kh * da * xb;
                }
            }
        }
        let kc = k * c;
        for a in 0..p {
            u[a] -= kc * t[a] * te;
            let row = &mut hs[a * p..a * p + a + 1];
            for (hb, &tb) in row.iter_mut().zip(t.iter()) {
                *hb -= kc * t[a] * tb;
            }
        }
    }

    /// Q = D'V⁻¹D (p × p) and s = D'V⁻¹(y − μ) (p) of cluster `c`.
    fn cluster_qs(
        &self,
        pt: &Patterns,
        cl: usize,
        alpha: f64,
        phi: f64,
        q: &mut Mat,
        s: &mut [f64],
    ) {
        q.reset(self.p, self.p);
        s.iter_mut().for_each(|v| *v = 0.0);
        self.cluster_products(pt, cl, alpha, phi, q, s);
        fill_upper(q);
    }

    /// Add a cluster's corrected meat term D'V⁻¹ c c' V⁻¹D to `meat`,
    /// c = (I − H)^{−k} e with H = D B D'V⁻¹ the cluster's leverage, k = 1
    /// (Mancl–DeRouen) or ½ (Kauermann–Carroll, principal root), with Q and
    /// s of the cluster in `w` ([`State::cluster_qs`]). H has rank ≤ p, so
    /// everything is p-dimensional: with Q = D'V⁻¹D, the symmetric B^{1/2}
    /// (`bh`) and M = B^{1/2} Q B^{1/2} = W Λ W',
    /// (I − H)^{−k} = I + D B^{1/2} W g(Λ) W' B^{1/2} D'V⁻¹ with
    /// g(λ) = ((1 − λ)^{−k} − 1)/λ, so D'V⁻¹c = s + Q B^{1/2} W g(Λ) W'
    /// B^{1/2} s with s = D'V⁻¹e. (A direction with λ ≥ 1 has no inverse;
    /// it is dropped, g = −1/λ.) Cost O(p³) per cluster, not O(m³).
    fn meat(&self, bh: &Mat, k: f64, w: &mut MeatWork, meat: &mut Mat) {
        let p = self.p;
        w.m.set_mul3(bh, &w.q, bh, &mut w.t);
        w.m.symmetrise();
        dense::sym_eigen(&mut w.m, &mut w.vals, &mut w.vecs);
        // t = W' B^{1/2} s.
        w.bs.clear();
        w.bs.extend((0..p).map(|a| (0..p).map(|b| bh[(a, b)] * w.s[b]).sum::<f64>()));
        w.ws.clear();
        w.ws.extend((0..p).map(|k| (0..p).map(|a| w.vecs[(a, k)] * w.bs[a]).sum::<f64>()));
        // B^{1/2} W g W' B^{1/2} s, then Q times it.
        w.z.clear();
        w.z.extend((0..p).map(|a| {
            (0..p)
                .map(|j| {
                    let l = w.vals[j];
                    let g = if l < 1e-12 {
                        k // the limit of g as λ → 0
                    } else if l < 1.0 {
                        ((1.0 - l).powf(-k) - 1.0) / l
                    } else {
                        -1.0 / l
                    };
                    w.vecs[(a, j)] * g * w.ws[j]
                })
                .sum::<f64>()
        }));
        w.bs2.clear();
        w.bs2
            .extend((0..p).map(|a| (0..p).map(|b| bh[(a, b)] * w.z[b]).sum::<f64>()));
        w.c.clear();
        w.c.extend((0..p).map(|a| w.s[a] + (0..p).map(|b| w.q[(a, b)] * w.bs2[b]).sum::<f64>()));
        add_outer(meat, &w.c);
    }
}

/// Scratch for [`State::meat`].
#[derive(Default)]
struct MeatWork {
    q: Mat,
    m: Mat,
    t: Mat,
    vecs: Mat,
    vals: Vec<f64>,
    s: Vec<f64>,
    bs: Vec<f64>,
    ws: Vec<f64>,
    z: Vec<f64>,
    bs2: Vec<f64>,
    c: Vec<f64>,
}

/// A GEE summary: estimates with the model-based, robust, MD and KC SEs,
/// and the test with the chosen one on clusters − p df.
pub fn summary(fit: &GeeFit, v: GeeVariance, formula: &str, family: Family, link: Link) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let name = match v {
        GeeVariance::Robust => "robust (sandwich)",
        GeeVariance::ManclDeRouen => "Mancl-DeRouen",
        GeeVariance::KauermannCarroll => "Kauermann-Carroll",
    };
    let _ = writeln!(
        s,
        "GEE, exchangeable working correlation ({} clusters, {} observations)",
        fit.clusters, fit.n
    );
    let _ = writeln!(s, " Family: {} ( {} )", family.name(), link.name());
    let _ = writeln!(s, "Formula: {formula}");
    let _ = writeln!(
        s,
        "Working correlation alpha = {:.5}, scale phi = {:.5}\n",
        fit.alpha, fit.phi
    );
    let _ = writeln!(
        s,
        "Coefficients (population-averaged; tests with the {name} SE on {} df):",
        fit.df()
    );
    let _ = writeln!(s, "                      Estimate   model SE  robust SE      MD SE      KC SE  t value   Pr(>|t|)");
    for j in 0..fit.beta.len() {
        let se = fit.se(j, v);
        let t = fit.beta[j] / se;
        let _ = writeln!(
            s,
            " {:<20} {:>9.5} {:>10.5} {:>10.5} {:>10.5} {:>10.5} {:>8.3} {:>10}",
            fit.names[j],
            fit.beta[j],
            fit.vcov_model[j * fit.beta.len() + j].sqrt(),
            fit.se(j, GeeVariance::Robust),
            fit.se(j, GeeVariance::ManclDeRouen),
            fit.se(j, GeeVariance::KauermannCarroll),
            t,
            crate::lmm::report::fmt_p(crate::lmm::inference::p_t(t, fit.df()))
        );
    }
    if !fit.converged {
        let _ = writeln!(
            s,
            "warning: the estimating equations did not converge in {} iterations",
            fit.iterations
        );
    }
    s
}

/// The GEE fit as JSON.
pub fn to_json(
    fit: &GeeFit,
    v: GeeVariance,
    formula: &str,
    family: Family,
    link: Link,
) -> serde_json::Value {
    use serde_json::json;
    let num = |x: f64| {
        if x.is_finite() {
            json!(x)
        } else {
            serde_json::Value::Null
        }
    };
    let p = fit.beta.len();
    let fixed: Vec<serde_json::Value> = (0..p)
        .map(|j| {
            let se = fit.se(j, v);
            let t = fit.beta[j] / se;
            json!({"term": fit.names[j], "estimate": num(fit.beta[j]),
                   "se_model": num(fit.vcov_model[j * p + j].sqrt()),
                   "se_robust": num(fit.se(j, GeeVariance::Robust)),
                   "se_md": num(fit.se(j, GeeVariance::ManclDeRouen)),
                   "se_kc": num(fit.se(j, GeeVariance::KauermannCarroll)),
                   "se": num(se), "t": num(t), "df": num(fit.df()),
                   "p": num(crate::lmm::inference::p_t(t, fit.df()))})
        })
        .collect();
    json!({"formula": formula, "family": family.name(), "link": link.name(),
           "correlation": "exchangeable", "alpha": num(fit.alpha), "phi": num(fit.phi),
           "n_obs": fit.n, "n_clusters": fit.clusters, "iterations": fit.iterations,
           "converged": fit.converged, "fixed": fixed})
}
