//! Inference for fixed effects: Satterthwaite (as lmerTest), Kenward–Roger
//! (as pbkrtest), between-within (containment) and residual degrees of
//! freedom; likelihood-ratio tests.
//!
//! ## Derivatives without n×n matrices
//!
//! With V = Σ_k γ_k G_k + σ² I, G_k = Z E_k Z' (γ: variances and covariances
//! of each term, lme4/pbkrtest order), every quantity Satterthwaite and KR
//! need — traces like tr(P G_k P G_l), quadratic forms y'P G_k P G_l P y,
//! X'V⁻¹G_kV⁻¹X — lies in the span of B = [Z X y]. V⁻¹ maps span(B) into
//! itself: V⁻¹B = B·A_w with A_w = σ⁻²(I − J S J'K), K = B'B (from the PLS
//! cross-products), S = Λ(Λ'Z'ZΛ + I)⁻¹Λ'. So B'V⁻ʲB = K A_wʲ and
//! B'PʲB = K A_pʲ with A_p = A_w − A_w[:,X] Φ (K A_w)[X,:], all
//! (q+p+1)-square algebra; traces of V⁻¹ and P follow from
//! tr(V⁻¹) = σ⁻²(n − tr(S Z'Z)) and the like. The gradient and Hessian of
//! the REML (or profiled ML) deviance in γ are then exact (analytic).
//!
//! lmerTest differentiates in φ = (θ, σ) instead; the chain rule
//! H_φ = J'H_γJ + Σ_k (∂dev/∂γ_k) ∇²γ_k maps the γ-derivatives to its
//! parameterisation, which matters on the boundary: with θ = 0 the Jacobian
//! of vcov(β̂) in θ vanishes, and lmerTest's Satterthwaite df become the
//! residual df (n − p), while pbkrtest (in γ) does not.

use super::{Fit, Model};
use nalgebra::{DMatrix, DVector};
use statrs::distribution::{ChiSquared, ContinuousCDF, StudentsT};

/// Degrees-of-freedom method for fixed-effect tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfMethod {
    Satterthwaite,
    KenwardRoger,
    BetweenWithin,
    Residual,
}

impl std::str::FromStr for DfMethod {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "satterthwaite" => Ok(DfMethod::Satterthwaite),
            "kenward-roger" | "kr" => Ok(DfMethod::KenwardRoger),
            "between-within" | "bw" => Ok(DfMethod::BetweenWithin),
            "residual" => Ok(DfMethod::Residual),
            other => Err(format!(
                "unknown df method `{other}`: use satterthwaite, kenward-roger, between-within or residual"
            )),
        }
    }
}

/// Per-coefficient test results.
#[derive(Debug, Clone, Default)]
pub struct CoefTests {
    pub df_satterthwaite: Vec<f64>,
    pub p_satterthwaite: Vec<f64>,
    pub df_kenward_roger: Vec<f64>,
    pub se_kenward_roger: Vec<f64>,
    pub p_kenward_roger: Vec<f64>,
    pub df_between_within: Vec<f64>,
    pub p_between_within: Vec<f64>,
    pub df_residual: f64,
    pub p_z: Vec<f64>,
    /// Notes about the computation (e.g. a zero-eigenvalue Hessian).
    pub notes: Vec<String>,
}

/// Two-sided p-value of t with `df` degrees of freedom (df = ∞ gives z).
pub fn p_t(t: f64, df: f64) -> f64 {
    if !t.is_finite() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if df.is_infinite() {
        // 2Φ(−|t|); Φ's erfc approximation has relative error < 1.2e-7.
        return 2.0 * crate::measure::norm_cdf(-t.abs());
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(d) => 2.0 * d.sf(t.abs()),
        Err(_) => f64::NAN,
    }
}

/// χ² upper-tail probability.
pub fn p_chisq(x: f64, df: f64) -> f64 {
    match ChiSquared::new(df) {
        Ok(d) => d.sf(x.max(0.0)),
        Err(_) => f64::NAN,
    }
}

/// One variance parameter's G_k = Z E_k Z' as the index pairs of E_k
/// (symmetric pairs expanded), or the residual (G = I).
enum GTerm {
    Re(Vec<(usize, usize)>),
    Residual,
}

/// The span algebra and the derivatives of the deviance in γ.
struct Span {
    q: usize,
    p: usize,
    /// K A_w^j, j = 1..3 (m × m).
    g1: DMatrix<f64>,
    g2: DMatrix<f64>,
    g3: DMatrix<f64>,
    /// K A_p^j, j = 1..3.
    p1: DMatrix<f64>,
    p2: DMatrix<f64>,
    p3: DMatrix<f64>,
    phi: DMatrix<f64>,
    tr_w: f64,
    tr_ww: f64,
    tr_p: f64,
    tr_pp: f64,
}

fn span(model: &Model, fit: &Fit) -> Span {
    let pls = &model.pls;
    let (q, p) = (pls.q, pls.p);
    let m = q + p + 1;
    let mut k = DMatrix::<f64>::zeros(m, m);
    let ztz = pls.ztz_dense();
    for r in 0..q {
        for c in 0..q {
            k[(r, c)] = ztz[r * q + c];
        }
        for c in 0..=p {
            k[(r, q + c)] = pls.ztxy[r * (p + 1) + c];
            k[(q + c, r)] = pls.ztxy[r * (p + 1) + c];
        }
    }
    for a in 0..=p {
        for b in 0..=p {
            k[(q + a, q + b)] = pls.xyxy[a * (p + 1) + b];
        }
    }
    let lam = DMatrix::from_row_slice(q, q, &pls.lambda_dense(&fit.theta));
    let kzz = k.view((0, 0), (q, q)).into_owned();
    let c = lam.transpose() * &kzz * &lam + DMatrix::identity(q, q);
    let cinv = c
        .cholesky()
        .map(|ch| ch.inverse())
        .unwrap_or_else(|| DMatrix::identity(q, q));
    let s = &lam * cinv * lam.transpose();
    let sigma2 = fit.sigma * fit.sigma;
    let kz_rows = k.view((0, 0), (q, m)).into_owned();
    let mut aw = DMatrix::<f64>::identity(m, m);
    let e = &s * &kz_rows;
    for r in 0..q {
        for c in 0..m {
            aw[(r, c)] -= e[(r, c)];
        }
    }
    aw /= sigma2;
    let g1 = &k * &aw;
    let g2 = &g1 * &aw;
    let g3 = &g2 * &aw;
    let xs = q..q + p;
    let g1xx = g1.view((q, q), (p, p)).into_owned();
    let phi = g1xx
        .clone()
        .cholesky()
        .map(|ch| ch.inverse())
        .unwrap_or_else(|| DMatrix::from_element(p, p, f64::NAN));
    let aw_x = aw.columns(xs.start, p).into_owned();
    let g1_xrows = g1.rows(xs.start, p).into_owned();
    let ap = &aw - aw_x * &phi * g1_xrows;
    let p1 = &k * &ap;
    let p2 = &p1 * &ap;
    let p3 = &p2 * &ap;
    let skzz = &s * &kzz;
    let tr_sk = skzz.trace();
    let tr_sksk = (&skzz * &skzz).trace();
    let n = model.frame.n as f64;
    let tr_w = (n - tr_sk) / sigma2;
    let tr_ww = (n - 2.0 * tr_sk + tr_sksk) / (sigma2 * sigma2);
    let g2xx = g2.view((q, q), (p, p)).into_owned();
    let g3xx = g3.view((q, q), (p, p)).into_owned();
    let pg2 = &phi * &g2xx;
    let tr_p = tr_w - pg2.trace();
    let tr_pp = tr_ww - 2.0 * (&phi * &g3xx).trace() + (&pg2 * &pg2).trace();
    Span {
        q,
        p,
        g1,
        g2,
        g3,
        p1,
        p2,
        p3,
        phi,
        tr_w,
        tr_ww,
        tr_p,
        tr_pp,
    }
}

fn gterms(model: &Model) -> Vec<GTerm> {
    let mut out = Vec::new();
    for &(qo, _, k, nl) in &model.pls.term_layout {
        for a in 0..k {
            for c in a..k {
                let mut pairs = Vec::with_capacity(2 * nl);
                for g in 0..nl {
                    let r = qo + g * k + c;
                    let s = qo + g * k + a;
                    pairs.push((r, s));
                    if r != s {
                        pairs.push((s, r));
                    }
                }
                out.push(GTerm::Re(pairs));
            }
        }
    }
    out.push(GTerm::Residual);
    out
}

/// tr(E_k A) for pairs of E_k.
fn tr_e(pairs: &[(usize, usize)], a: &DMatrix<f64>) -> f64 {
    pairs.iter().map(|&(r, s)| a[(s, r)]).sum()
}

/// v' E_k w.
fn quad_e(pairs: &[(usize, usize)], v: &[f64], w: &[f64]) -> f64 {
    pairs.iter().map(|&(r, s)| v[r] * w[s]).sum()
}

/// tr(E_k A E_l B).
fn tr_eaeb(
    pk: &[(usize, usize)],
    a: &DMatrix<f64>,
    pl: &[(usize, usize)],
    b: &DMatrix<f64>,
) -> f64 {
    let mut s = 0.0;
    for &(r, ss) in pk {
        for &(u, v) in pl {
            s += a[(ss, u)] * b[(v, r)];
        }
    }
    s
}

/// E_k M for a q × c matrix M.
fn e_times(pairs: &[(usize, usize)], m: &DMatrix<f64>) -> DMatrix<f64> {
    let mut out = DMatrix::zeros(m.nrows(), m.ncols());
    for &(r, s) in pairs {
        for c in 0..m.ncols() {
            out[(r, c)] += m[(s, c)];
        }
    }
    out
}

/// Gradient and Hessian of the deviance (−2 log L_R, or −2 log L profiled
/// over β for ML) in γ; and ∂Φ/∂γ_k.
struct GammaDerivs {
    grad: DVector<f64>,
    hess: DMatrix<f64>,
    dphi: Vec<DMatrix<f64>>,
}

fn gamma_derivs(sp: &Span, gt: &[GTerm], reml: bool) -> GammaDerivs {
    let (q, p) = (sp.q, sp.p);
    let y = q + p;
    let zpy: Vec<f64> = (0..q).map(|r| sp.p1[(r, y)]).collect();
    let zppy: Vec<f64> = (0..q).map(|r| sp.p2[(r, y)]).collect();
    let zpz = sp.p1.view((0, 0), (q, q)).into_owned();
    let t1 = if reml {
        zpz.clone()
    } else {
        sp.g1.view((0, 0), (q, q)).into_owned()
    };
    let t2 = if reml {
        sp.p2.view((0, 0), (q, q)).into_owned()
    } else {
        sp.g2.view((0, 0), (q, q)).into_owned()
    };
    let (tr1, tr2) = if reml {
        (sp.tr_p, sp.tr_pp)
    } else {
        (sp.tr_w, sp.tr_ww)
    };
    let ng = gt.len();
    let mut grad = DVector::zeros(ng);
    let mut hess = DMatrix::zeros(ng, ng);
    // E_k (Z'Py) as dense vectors.
    let ev: Vec<Vec<f64>> = gt
        .iter()
        .map(|g| match g {
            GTerm::Re(pairs) => {
                let mut v = vec![0.0; q];
                for &(r, s) in pairs {
                    v[r] += zpy[s];
                }
                v
            }
            GTerm::Residual => Vec::new(),
        })
        .collect();
    let zpz_ev: Vec<Vec<f64>> = ev
        .iter()
        .map(|v| {
            if v.is_empty() {
                Vec::new()
            } else {
                (0..q)
                    .map(|r| (0..q).map(|c| zpz[(r, c)] * v[c]).sum())
                    .collect()
            }
        })
        .collect();
    for (i, gi) in gt.iter().enumerate() {
        grad[i] = match gi {
            GTerm::Re(pairs) => tr_e(pairs, &t1) - quad_e(pairs, &zpy, &zpy),
            GTerm::Residual => tr1 - sp.p2[(y, y)],
        };
        for (j, gj) in gt.iter().enumerate().take(i + 1) {
            let h = match (gi, gj) {
                (GTerm::Re(pi), GTerm::Re(pj)) => {
                    let quad: f64 = ev[i].iter().zip(&zpz_ev[j]).map(|(a, b)| a * b).sum();
                    -tr_eaeb(pi, &t1, pj, &t1) + 2.0 * quad
                }
                (GTerm::Re(pi), GTerm::Residual) | (GTerm::Residual, GTerm::Re(pi)) => {
                    let k = if matches!(gi, GTerm::Re(_)) { i } else { j };
                    let quad: f64 = ev[k].iter().zip(&zppy).map(|(a, b)| a * b).sum();
                    -tr_e(pi, &t2) + 2.0 * quad
                }
                (GTerm::Residual, GTerm::Residual) => -tr2 + 2.0 * sp.p3[(y, y)],
            };
            hess[(i, j)] = h;
            hess[(j, i)] = h;
        }
    }
    // ∂Φ/∂γ_k = Φ X'V⁻¹G_kV⁻¹X Φ.
    let zwx = sp.g1.view((0, q), (q, p)).into_owned();
    let g2xx = sp.g2.view((q, q), (p, p)).into_owned();
    let dphi = gt
        .iter()
        .map(|g| {
            let mid = match g {
                GTerm::Re(pairs) => zwx.transpose() * e_times(pairs, &zwx),
                GTerm::Residual => g2xx.clone(),
            };
            &sp.phi * mid * &sp.phi
        })
        .collect();
    GammaDerivs { grad, hess, dphi }
}

/// γ(φ) Jacobian and second derivatives for φ = (θ, σ).
fn phi_transform(model: &Model, fit: &Fit) -> (DMatrix<f64>, Vec<DMatrix<f64>>) {
    let nth = fit.theta.len();
    let nphi = nth + 1;
    let ng = nth + 1;
    let sigma = fit.sigma;
    let s2 = sigma * sigma;
    let mut jac = DMatrix::zeros(ng, nphi);
    let mut hessians = vec![DMatrix::zeros(nphi, nphi); ng];
    for &(_, to, k, _) in &model.pls.term_layout {
        let tri = |c: usize, a: usize| super::pls::tri(k, c, a);
        let tval = |c: usize, a: usize| -> f64 {
            if c >= a {
                fit.theta[to + tri(c, a)]
            } else {
                0.0
            }
        };
        for a in 0..k {
            for c in a..k {
                let gi = to + tri(c, a);
                let ttc: f64 = (0..=a).map(|m| tval(c, m) * tval(a, m)).sum();
                jac[(gi, nth)] = 2.0 * sigma * ttc;
                hessians[gi][(nth, nth)] = 2.0 * ttc;
                for f in 0..k {
                    for e in f..k {
                        let pe = to + tri(e, f);
                        let mut d = 0.0;
                        if c == e {
                            d += tval(a, f);
                        }
                        if a == e {
                            d += tval(c, f);
                        }
                        jac[(gi, pe)] = s2 * d;
                        hessians[gi][(pe, nth)] = 2.0 * sigma * d;
                        hessians[gi][(nth, pe)] = 2.0 * sigma * d;
                        for f2 in 0..k {
                            for e2 in f2..k {
                                if f2 != f {
                                    continue;
                                }
                                let pe2 = to + tri(e2, f2);
                                let mut d2 = 0.0;
                                if c == e && a == e2 {
                                    d2 += 1.0;
                                }
                                if a == e && c == e2 {
                                    d2 += 1.0;
                                }
                                hessians[gi][(pe, pe2)] = s2 * d2;
                            }
                        }
                    }
                }
            }
        }
    }
    jac[(nth, nth)] = 2.0 * sigma;
    hessians[nth][(nth, nth)] = 2.0;
    (jac, hessians)
}

/// Satterthwaite df for each coefficient (lmerTest's method, analytic derivatives).
fn satterthwaite(
    model: &Model,
    fit: &Fit,
    sp: &Span,
    gd: &GammaDerivs,
    notes: &mut Vec<String>,
) -> Vec<f64> {
    let (jac, hess2) = phi_transform(model, fit);
    let nphi = jac.ncols();
    let mut h = jac.transpose() * &gd.hess * &jac;
    for (k, h2) in hess2.iter().enumerate() {
        h += h2 * gd.grad[k];
    }
    let h = (&h + h.transpose()) * 0.5;
    let eig = h.clone().symmetric_eigen();
    let tol = 1e-8;
    let mut hinv = DMatrix::zeros(nphi, nphi);
    let mut dropped = 0;
    for (i, &ev) in eig.eigenvalues.iter().enumerate() {
        if ev > tol {
            let v = eig.eigenvectors.column(i);
            hinv += (v * v.transpose()) / ev;
        } else {
            dropped += 1;
        }
    }
    if dropped > 0 {
        notes.push(format!(
            "Satterthwaite: the Hessian of the deviance in (theta, sigma) has {dropped} eigenvalue(s) <= 1e-8 (a variance on the boundary); as lmerTest, its generalised inverse is used"
        ));
    }
    let a = hinv * 2.0;
    // ∂Φ/∂φ_a = Σ_k ∂Φ/∂γ_k J[k, a].
    let p = sp.p;
    (0..p)
        .map(|j| {
            let v = sp.phi[(j, j)];
            let g: DVector<f64> = DVector::from_iterator(
                nphi,
                (0..nphi).map(|col| {
                    (0..gd.dphi.len())
                        .map(|k| gd.dphi[k][(j, j)] * jac[(k, col)])
                        .sum::<f64>()
                }),
            );
            let denom = (g.transpose() * &a * &g)[(0, 0)];
            2.0 * v * v / denom
        })
        .collect()
}

/// Kenward–Roger: adjusted vcov and df for each coefficient (pbkrtest's method).
fn kenward_roger(sp: &Span, gt: &[GTerm]) -> (DMatrix<f64>, Vec<f64>) {
    let (q, p) = (sp.q, sp.p);
    let ng = gt.len();
    let phi = &sp.phi;
    let zwx = sp.g1.view((0, q), (q, p)).into_owned();
    let zwwx = sp.g2.view((0, q), (q, p)).into_owned();
    let zwz = sp.g1.view((0, 0), (q, q)).into_owned();
    let zwwz = sp.g2.view((0, 0), (q, q)).into_owned();
    let g2xx = sp.g2.view((q, q), (p, p)).into_owned();
    let g3xx = sp.g3.view((q, q), (p, p)).into_owned();
    let ezwx: Vec<Option<DMatrix<f64>>> = gt
        .iter()
        .map(|g| match g {
            GTerm::Re(pairs) => Some(e_times(pairs, &zwx)),
            GTerm::Residual => None,
        })
        .collect();
    // P_i = −X'V⁻¹G_iV⁻¹X.
    let pm: Vec<DMatrix<f64>> = (0..ng)
        .map(|i| match &ezwx[i] {
            Some(e) => -(zwx.transpose() * e),
            None => -g2xx.clone(),
        })
        .collect();
    // Q_ij = X'V⁻¹G_iV⁻¹G_jV⁻¹X.
    let qm = |i: usize, j: usize| -> DMatrix<f64> {
        match (&ezwx[i], &ezwx[j]) {
            (Some(ei), Some(ej)) => ei.transpose() * &zwz * ej,
            (Some(ei), None) => ei.transpose() * &zwwx,
            (None, Some(ej)) => zwwx.transpose() * ej,
            (None, None) => g3xx.clone(),
        }
    };
    let mut qq = vec![vec![DMatrix::zeros(p, p); ng]; ng];
    for (i, row) in qq.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate().skip(i) {
            *cell = qm(i, j);
        }
    }
    // tr(V⁻¹G_iV⁻¹G_j).
    let mut ktr = DMatrix::zeros(ng, ng);
    for i in 0..ng {
        for j in i..ng {
            let v = match (&gt[i], &gt[j]) {
                (GTerm::Re(pi), GTerm::Re(pj)) => tr_eaeb(pi, &zwz, pj, &zwz),
                (GTerm::Re(pi), GTerm::Residual) => tr_e(pi, &zwwz),
                (GTerm::Residual, GTerm::Re(pj)) => tr_e(pj, &zwwz),
                (GTerm::Residual, GTerm::Residual) => sp.tr_ww,
            };
            ktr[(i, j)] = v;
            ktr[(j, i)] = v;
        }
    }
    let mut ie2 = DMatrix::zeros(ng, ng);
    for i in 0..ng {
        let phi_pi = phi * &pm[i];
        for j in i..ng {
            let v = ktr[(i, j)] - 2.0 * phi.component_mul(&qq[i][j]).sum()
                + phi_pi.component_mul(&(&pm[j] * phi)).sum();
            ie2[(i, j)] = v;
            ie2[(j, i)] = v;
        }
    }
    let eig = ie2.clone().symmetric_eigen();
    let condi = eig
        .eigenvalues
        .iter()
        .map(|v| v.abs())
        .fold(f64::INFINITY, f64::min);
    let ww = if condi > 1e-10 {
        ie2.clone().try_inverse().unwrap_or_else(|| pinv(&ie2)) * 2.0
    } else {
        pinv(&ie2) * 2.0
    };
    let mut uu = DMatrix::zeros(p, p);
    for i in 0..ng.saturating_sub(1) {
        for j in i + 1..ng {
            uu += (&qq[i][j] - &pm[i] * phi * &pm[j]) * ww[(i, j)];
        }
    }
    uu = &uu + uu.transpose();
    for i in 0..ng {
        uu += (&qq[i][i] - &pm[i] * phi * &pm[i]) * ww[(i, i)];
    }
    let ggamma = phi * uu * phi;
    let phia = phi + ggamma * 2.0;
    // df for each unit contrast (pbkrtest's Lb_ddf with q = 1).
    let dfs = (0..p)
        .map(|j| {
            let mut l = DMatrix::zeros(1, p);
            l[(0, j)] = 1.0;
            lb_ddf(&l, phi, &pm, &ww)
        })
        .collect();
    (phia, dfs)
}

fn pinv(a: &DMatrix<f64>) -> DMatrix<f64> {
    let n = a.nrows();
    let eig = a.clone().symmetric_eigen();
    let maxev = eig.eigenvalues.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let mut out = DMatrix::zeros(n, n);
    for (i, &ev) in eig.eigenvalues.iter().enumerate() {
        if ev.abs() > 1e-12 * maxev.max(1e-300) {
            let v = eig.eigenvectors.column(i);
            out += (v * v.transpose()) / ev;
        }
    }
    out
}

fn lb_ddf(l: &DMatrix<f64>, v0: &DMatrix<f64>, pm: &[DMatrix<f64>], w: &DMatrix<f64>) -> f64 {
    let lvl = l * v0 * l.transpose();
    let theta = l.transpose() * lvl.try_inverse().unwrap_or_else(|| DMatrix::zeros(1, 1)) * l;
    let theta_v0 = &theta * v0;
    let ng = pm.len();
    let (mut a1, mut a2) = (0.0, 0.0);
    for i in 0..ng {
        let ui = &theta_v0 * &pm[i] * v0;
        for j in i..ng {
            let e = if i == j { 1.0 } else { 2.0 };
            let uj = &theta_v0 * &pm[j] * v0;
            a1 += e * w[(i, j)] * ui.trace() * uj.trace();
            a2 += e * w[(i, j)] * ui.component_mul(&uj.transpose()).sum();
        }
    }
    let q = 1.0;
    let b = (1.0 / (2.0 * q)) * (a1 + 6.0 * a2);
    let g = ((q + 1.0) * a1 - (q + 4.0) * a2) / ((q + 2.0) * a2);
    let c1 = g / (3.0 * q + 2.0 * (1.0 - g));
    let c2 = (q - g) / (3.0 * q + 2.0 * (1.0 - g));
    let c3 = (q + 2.0 - g) / (3.0 * q + 2.0 * (1.0 - g));
    let mut v0c = 1.0 + c1 * b;
    let v1 = 1.0 - c2 * b;
    let v2 = 1.0 - c3 * b;
    if v0c.abs() < 1e-10 {
        v0c = 0.0;
    }
    let div = |x: f64, y: f64| if y.abs() < 1e-15 { 0.0 } else { x / y };
    let rho = 1.0 / q * div(1.0 - a2 / q, v1).powi(2) * v0c / v2;
    4.0 + (q + 2.0) / (q * rho - 1.0)
}

/// Between-within (containment) df, as nlme / SAS DDFM=BW: the grouping
/// factors are ranked from outer (fewest levels) to inner; a coefficient
/// constant within the groups of the outermost level at which it is
/// constant gets that level's df, df_i = N_i − N_{i−1} − (coefficients at
/// level i); others (and the intercept) get the observation level's df.
/// Needs nested grouping factors.
pub fn between_within(model: &Model) -> std::result::Result<Vec<f64>, String> {
    let fr = &model.frame;
    let n = fr.n;
    // Distinct grouping factors, outer (fewer levels) first.
    let mut facs: Vec<&super::frame::ReTerm> = Vec::new();
    for t in &fr.terms {
        if !facs.iter().any(|f| f.group == t.group) {
            facs.push(t);
        }
    }
    facs.sort_by_key(|t| t.nlevels());
    for w in facs.windows(2) {
        // Inner must be nested in outer: each inner level maps to one outer level.
        let (outer, inner) = (w[0], w[1]);
        let mut map = vec![u32::MAX; inner.nlevels()];
        for i in 0..n {
            let il = inner.refs[i] as usize;
            if map[il] == u32::MAX {
                map[il] = outer.refs[i];
            } else if map[il] != outer.refs[i] {
                return Err(format!(
                    "between-within df need nested grouping factors; `{}` is not nested in `{}`",
                    inner.group, outer.group
                ));
            }
        }
    }
    let p = fr.p;
    let nl = facs.len();
    // Level of each coefficient: 1..=nl for grouping levels, nl+1 = observations.
    let mut level = vec![nl + 1; p];
    for (j, lev) in level.iter_mut().enumerate() {
        if fr.x_names[j] == "(Intercept)" {
            continue;
        }
        let col = &fr.x[j * n..(j + 1) * n];
        for (li, f) in facs.iter().enumerate() {
            let mut first = vec![f64::NAN; f.nlevels()];
            let mut constant = true;
            for i in 0..n {
                let g = f.refs[i] as usize;
                if first[g].is_nan() {
                    first[g] = col[i];
                } else if (first[g] - col[i]).abs() > 1e-12 * (1.0 + col[i].abs()) {
                    constant = false;
                    break;
                }
            }
            if constant {
                *lev = li + 1;
                break;
            }
        }
    }
    let mut ngroups = vec![1usize];
    ngroups.extend(facs.iter().map(|f| f.nlevels()));
    ngroups.push(n);
    let df_at = |li: usize| -> f64 {
        let count = (0..p)
            .filter(|&j| level[j] == li && fr.x_names[j] != "(Intercept)")
            .count();
        ngroups[li] as f64 - ngroups[li - 1] as f64 - count as f64
    };
    Ok(level.iter().map(|&l| df_at(l)).collect())
}

/// All tests for the fitted model.
pub fn coef_tests(model: &Model, fit: &Fit) -> CoefTests {
    let p = fit.beta.len();
    let sp = span(model, fit);
    let gt = gterms(model);
    let gd = gamma_derivs(&sp, &gt, fit.reml);
    let mut notes = Vec::new();
    let df_sat = satterthwaite(model, fit, &sp, &gd, &mut notes);
    let t: Vec<f64> = (0..p).map(|j| fit.beta[j] / fit.se(j)).collect();
    let p_sat = (0..p).map(|j| p_t(t[j], df_sat[j])).collect();
    let (mut df_kr, mut se_kr, mut p_kr) = (Vec::new(), Vec::new(), Vec::new());
    if fit.reml {
        let (phia, dfs) = kenward_roger(&sp, &gt);
        for j in 0..p {
            let se = phia[(j, j)].sqrt();
            se_kr.push(se);
            p_kr.push(p_t(fit.beta[j] / se, dfs[j]));
        }
        df_kr = dfs;
    }
    let (df_bw, p_bw) = match between_within(model) {
        Ok(d) => {
            let pv = (0..p).map(|j| p_t(t[j], d[j])).collect();
            (d, pv)
        }
        Err(m) => {
            notes.push(m);
            (vec![f64::NAN; p], vec![f64::NAN; p])
        }
    };
    let df_res = (fit.n - p) as f64;
    let p_z = t.iter().map(|&tv| p_t(tv, f64::INFINITY)).collect();
    CoefTests {
        df_satterthwaite: df_sat,
        p_satterthwaite: p_sat,
        df_kenward_roger: df_kr,
        se_kenward_roger: se_kr,
        p_kenward_roger: p_kr,
        df_between_within: df_bw,
        p_between_within: p_bw,
        df_residual: df_res,
        p_z,
        notes,
    }
}

/// Likelihood-ratio test of nested models fitted by ML.
#[derive(Debug, Clone, PartialEq)]
pub struct Lrt {
    pub chisq: f64,
    pub df: f64,
    pub p: f64,
}

/// LRT from the ML deviances and parameter counts of two nested fits.
pub fn lrt(null: &Fit, alt: &Fit) -> Lrt {
    let chisq = (null.objective - alt.objective).max(0.0);
    let df = alt.df_model as f64 - null.df_model as f64;
    Lrt {
        chisq,
        df,
        p: p_chisq(chisq, df),
    }
}
