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

use super::dense::{self, Mat};
use super::{Fit, Model};
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Degrees-of-freedom method for fixed-effect tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfMethod {
    Satterthwaite,
    KenwardRoger,
    BetweenWithin,
    Residual,
    /// Wald z (infinite df).
    Z,
}

impl DfMethod {
    /// The name `--df` takes.
    pub fn name(self) -> &'static str {
        match self {
            DfMethod::Satterthwaite => "satterthwaite",
            DfMethod::KenwardRoger => "kenward-roger",
            DfMethod::BetweenWithin => "between-within",
            DfMethod::Residual => "residual",
            DfMethod::Z => "z",
        }
    }

    /// The tests this method needs computed (Kenward–Roger only for REML).
    pub fn tests(self) -> TestOptions {
        TestOptions {
            satterthwaite: self == DfMethod::Satterthwaite,
            kenward_roger: self == DfMethod::KenwardRoger,
            between_within: self == DfMethod::BetweenWithin,
        }
    }
}

/// What `crtsim fit --df` asks for: one df method, or every one (`all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfRequest {
    One(DfMethod),
    All,
}

impl DfRequest {
    /// The tests to compute: only the method asked for, or all.
    pub fn tests(self) -> TestOptions {
        match self {
            DfRequest::One(m) => m.tests(),
            DfRequest::All => TestOptions::ALL,
        }
    }

    /// The method of the summary's table and of the Wald intervals: the
    /// one asked for, or Satterthwaite's when all are.
    pub fn shown(self) -> DfMethod {
        match self {
            DfRequest::One(m) => m,
            DfRequest::All => DfMethod::Satterthwaite,
        }
    }
}

impl std::str::FromStr for DfRequest {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "all" => Ok(DfRequest::All),
            other => other.parse::<DfMethod>().map(DfRequest::One).map_err(|_| {
                format!(
                    "unknown df method `{other}`: use satterthwaite, kenward-roger, between-within, residual, z or all"
                )
            }),
        }
    }
}

impl std::str::FromStr for DfMethod {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "satterthwaite" => Ok(DfMethod::Satterthwaite),
            "kenward-roger" | "kr" => Ok(DfMethod::KenwardRoger),
            "between-within" | "bw" => Ok(DfMethod::BetweenWithin),
            "residual" => Ok(DfMethod::Residual),
            "z" => Ok(DfMethod::Z),
            other => Err(format!(
                "unknown df method `{other}`: use satterthwaite, kenward-roger, between-within, residual or z"
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
    /// Notes about the computation (e.g. a zero-eigenvalue Hessian), in
    /// words ([`coef_tests_with`] only).
    pub notes: Vec<String>,
    /// Eigenvalues cut from the Satterthwaite Hessian (a variance on the boundary).
    pub sat_cut: usize,
    /// Terms (inner, outer) that stopped the between-within df: not nested.
    pub bw_unnested: Option<(usize, usize)>,
}

impl CoefTests {
    /// Coefficient j's SE, df and two-sided p under `method` (NaN where the
    /// method was not computed: see [`TestOptions`]).
    pub fn test(&self, fit: &Fit, method: DfMethod, j: usize) -> (f64, f64, f64) {
        let at = |v: &[f64]| v.get(j).copied().unwrap_or(f64::NAN);
        let t = fit.beta[j] / fit.se(j);
        match method {
            DfMethod::Satterthwaite => (
                fit.se(j),
                at(&self.df_satterthwaite),
                at(&self.p_satterthwaite),
            ),
            DfMethod::KenwardRoger => (
                at(&self.se_kenward_roger),
                at(&self.df_kenward_roger),
                at(&self.p_kenward_roger),
            ),
            DfMethod::BetweenWithin => (
                fit.se(j),
                at(&self.df_between_within),
                at(&self.p_between_within),
            ),
            DfMethod::Residual => (fit.se(j), self.df_residual, p_t(t, self.df_residual)),
            DfMethod::Z => (fit.se(j), f64::INFINITY, p_t(t, f64::INFINITY)),
        }
    }

    /// The Wald interval β̂_j ± t_{1−(1−level)/2, df}·SE under `method`,
    /// with the method's SE and df (Kenward–Roger's adjusted SE; z for
    /// [`DfMethod::Z`]).
    pub fn wald_interval(&self, fit: &Fit, method: DfMethod, j: usize, level: f64) -> (f64, f64) {
        let (se, df, _) = self.test(fit, method, j);
        let crit = crate::stats::t_quantile(0.5 + 0.5 * level, df);
        (fit.beta[j] - crit * se, fit.beta[j] + crit * se)
    }
}

/// Two-sided p-value of t with `df` degrees of freedom (df = ∞ gives z).
pub fn p_t(t: f64, df: f64) -> f64 {
    if !t.is_finite() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if df.is_infinite() {
        // 2Φ(−|t|); Φ's erfc approximation has relative error < 1.2e-7.
        return 2.0 * crate::stats::norm_cdf(-t.abs());
    }
    2.0 * crate::stats::t_sf(t.abs(), df)
}

/// χ² upper-tail probability.
pub fn p_chisq(x: f64, df: f64) -> f64 {
    match ChiSquared::new(df) {
        Ok(d) => d.sf(x.max(0.0)),
        Err(_) => f64::NAN,
    }
}

/// One variance parameter's G_k = Z E_k Z' as the index pairs of E_k
/// (symmetric pairs expanded); the residual (G = I) has no pairs.
#[derive(Default)]
struct GTerm {
    pairs: Vec<(usize, usize)>,
    residual: bool,
}

/// The structured algebra at the optimum. With S = Λ(Λ'Z'ZΛ + I)⁻¹Λ' block
/// diagonal over the components of the random-effect columns,
/// V⁻¹ = σ⁻²(I − Z S Z') and, per component c with M_c = I − K_c S_c:
/// Z'V⁻¹Z = σ⁻² M_c K_c, Z'V⁻²Z = σ⁻⁴ M_c² K_c, Z'V⁻¹[X y] = σ⁻² M_c R_c,
/// Z'V⁻²[X y] = σ⁻⁴ M_c² R_c; the [X y] cross-products are sums over
/// components. P = V⁻¹ − V⁻¹XΦX'V⁻¹ adds a global rank-p term that is
/// never formed. Every buffer is kept between models (see [`TestWork`]).
#[derive(Default)]
struct Blocks {
    q: usize,
    p: usize,
    /// Component and local index of each random-effect column.
    comp_of: Vec<(usize, usize)>,
    /// Z'Z and Λ per component.
    kc: BlockDiag,
    lc: BlockDiag,
    /// Z'V⁻¹Z and Z'V⁻²Z, block diagonal over components.
    d1: BlockDiag,
    d2: BlockDiag,
    /// Z'V⁻¹[X y] and Z'V⁻²[X y] (q × (p+1)).
    u_w: Mat,
    u_ww: Mat,
    /// U1 = Z'V⁻¹X, U2 = Z'V⁻²X (q × p).
    u1: Mat,
    u2: Mat,
    /// [X y]'S[X y], [X y]'SKS[X y], [X y]'SKSKS[X y] summed over components.
    rsr: Mat,
    rsksr: Mat,
    rsksksr: Mat,
    /// [X y]'V⁻ʲ[X y] for j = 1, 2, 3.
    rwr: Mat,
    rwwr: Mat,
    rwwwr: Mat,
    /// Φ = (X'V⁻¹X)⁻¹, G1 = X'V⁻¹X, G2 = X'V⁻²X, G3 = X'V⁻³X.
    phi: Mat,
    g1: Mat,
    g2: Mat,
    g3: Mat,
    /// Scratch.
    t1: Mat,
    t2: Mat,
    rho: Vec<f64>,
    wwr: Vec<f64>,
    phiw: Vec<f64>,
    /// Z'Py and Z'PPy.
    zpy: Vec<f64>,
    zppy: Vec<f64>,
    /// y'PPy and y'PPPy.
    y_pp_y: f64,
    y_p3_y: f64,
    tr_w: f64,
    tr_ww: f64,
    tr_p: f64,
    tr_pp: f64,
    /// Scratch for [`Blocks::tr_ede`].
    start: Vec<usize>,
    fill: Vec<usize>,
    by: Vec<(usize, usize)>,
    small: small::Work,
}

/// Square blocks, one per component, stored row-major in one vector.
#[derive(Default)]
struct BlockDiag {
    off: Vec<usize>,
    size: Vec<usize>,
    data: Vec<f64>,
}

impl BlockDiag {
    fn reset(&mut self, ptr: &[usize]) {
        self.size.clear();
        self.size.extend(ptr.windows(2).map(|w| w[1] - w[0]));
        self.off.clear();
        let mut t = 0;
        for &n in &self.size {
            self.off.push(t);
            t += n * n;
        }
        self.data.clear();
        self.data.resize(t, 0.0);
    }
    #[inline]
    fn get(&self, c: usize, i: usize, j: usize) -> f64 {
        self.data[self.off[c] + i * self.size[c] + j]
    }
    #[inline]
    fn set(&mut self, c: usize, i: usize, j: usize, v: f64) {
        let n = self.size[c];
        self.data[self.off[c] + i * n + j] = v;
    }
    fn block(&self, c: usize) -> &[f64] {
        let n = self.size[c];
        &self.data[self.off[c]..self.off[c] + n * n]
    }
}

impl Blocks {
    /// The algebra of `model` at `fit`.
    fn fill(&mut self, model: &Model, fit: &Fit) {
        let pls = &model.pls;
        let (q, p) = (pls.q, pls.p);
        let m = p + 1;
        self.q = q;
        self.p = p;
        let (ptr, cols) = pls.components();
        let ncomp = ptr.len() - 1;
        self.comp_of.clear();
        self.comp_of.resize(q, (0, 0));
        for c in 0..ncomp {
            for (l, &r) in cols[ptr[c]..ptr[c + 1]].iter().enumerate() {
                self.comp_of[r] = (c, l);
            }
        }
        self.kc.reset(ptr);
        for (r, s, v) in pls.ztz_entries() {
            let (c, lr) = self.comp_of[r];
            let ls = self.comp_of[s].1;
            self.kc.set(c, lr, ls, v);
            self.kc.set(c, ls, lr, v);
        }
        self.lc.reset(ptr);
        for (r, col, ti) in pls.lambda_entries() {
            let (c, lr) = self.comp_of[r];
            let lcol = self.comp_of[col].1;
            let v = self.lc.get(c, lr, lcol) + fit.theta[ti];
            self.lc.set(c, lr, lcol, v);
        }
        let s2 = fit.sigma * fit.sigma;
        self.u_w.reset(q, m);
        self.u_ww.reset(q, m);
        self.rsr.reset(m, m);
        self.rsksr.reset(m, m);
        self.rsksksr.reset(m, m);
        let (mut tr_sk, mut tr_sksk) = (0.0, 0.0);
        self.d1.reset(ptr);
        self.d2.reset(ptr);
        for c in 0..ncomp {
            let cc = &cols[ptr[c]..ptr[c + 1]];
            if cc.len() == 1 {
                // Scalar component (e.g. one level of a random intercept): all
                // the block algebra is arithmetic on numbers.
                let r = cc[0];
                let (k, l) = (self.kc.get(c, 0, 0), self.lc.get(c, 0, 0));
                let sc = l * l / (l * l * k + 1.0);
                let mc = 1.0 - k * sc;
                let row = &pls.ztxy[r * m..(r + 1) * m];
                for j in 0..m {
                    self.u_w[(r, j)] = mc * row[j] / s2;
                    self.u_ww[(r, j)] = mc * mc * row[j] / (s2 * s2);
                }
                let (a1, a2, a3) = (sc, sc * sc * k, sc * sc * sc * k * k);
                for a in 0..m {
                    for b in 0..m {
                        let rr = row[a] * row[b];
                        self.rsr[(a, b)] += a1 * rr;
                        self.rsksr[(a, b)] += a2 * rr;
                        self.rsksksr[(a, b)] += a3 * rr;
                    }
                }
                tr_sk += sc * k;
                tr_sksk += (sc * k) * (sc * k);
                self.d1.set(c, 0, 0, mc * k / s2);
                self.d2.set(c, 0, 0, mc * mc * k / (s2 * s2));
                continue;
            }
            let (a, b) = self.component(pls, c, cc, s2);
            tr_sk += a;
            tr_sksk += b;
        }
        self.finish_span(model, tr_sk, tr_sksk, s2);
    }

    /// A component of several columns (e.g. a cluster and its
    /// cluster-periods): small dense row-major algebra in reused buffers.
    /// Returns its contributions to tr(SK) and tr(SKSK).
    fn component(&mut self, pls: &super::pls::Pls, c: usize, cc: &[usize], s2: f64) -> (f64, f64) {
        let m = pls.p + 1;
        let nc = cc.len();
        let k = self.kc.block(c);
        let l = self.lc.block(c);
        let w = &mut self.small;
        w.resize(nc, m);
        // R_c: the component's rows of Z'[X y].
        for (i, &r) in cc.iter().enumerate() {
            w.r[i * m..(i + 1) * m].copy_from_slice(&pls.ztxy[r * m..(r + 1) * m]);
        }
        // C = L'KL + I, then S = L C⁻¹ L'.
        small::mul(k, l, &mut w.t1, nc, nc, nc); // KL
        small::mul_tn(l, &w.t1, &mut w.t2, nc, nc, nc); // L'KL
        for i in 0..nc {
            w.t2[i * nc + i] += 1.0;
        }
        if !small::inverse_spd(&mut w.t2, &mut w.t3, &mut w.x, nc) {
            w.t2.iter_mut().for_each(|v| *v = 0.0);
            for i in 0..nc {
                w.t2[i * nc + i] = 1.0;
            }
        }
        small::mul(l, &w.t2, &mut w.t1, nc, nc, nc); // L C⁻¹
        small::mul_nt(&w.t1, l, &mut w.sc, nc, nc, nc); // S
        small::mul(k, &w.sc, &mut w.ks, nc, nc, nc); // KS
                                                     // M = I − KS; MK; MMK.
        for i in 0..nc {
            for j in 0..nc {
                w.mc[i * nc + j] = f64::from(u8::from(i == j)) - w.ks[i * nc + j];
            }
        }
        small::mul(&w.mc, k, &mut w.mk, nc, nc, nc);
        small::mul(&w.mc, &w.mk, &mut w.mmk, nc, nc, nc);
        small::mul(&w.mc, &w.r, &mut w.mr, nc, nc, m);
        small::mul(&w.mc, &w.mr, &mut w.mmr, nc, nc, m);
        for (i, &r) in cc.iter().enumerate() {
            for j in 0..m {
                self.u_w[(r, j)] = w.mr[i * m + j] / s2;
                self.u_ww[(r, j)] = w.mmr[i * m + j] / (s2 * s2);
            }
        }
        small::mul(&w.sc, &w.r, &mut w.sr, nc, nc, m); // SR
        small::mul(k, &w.sr, &mut w.ksr, nc, nc, m); // KSR
        small::mul(&w.sc, &w.ksr, &mut w.sksr, nc, nc, m); // S·KSR
        for a in 0..m {
            for b in 0..m {
                let (mut x1, mut x2, mut x3) = (0.0, 0.0, 0.0);
                for i in 0..nc {
                    x1 += w.r[i * m + a] * w.sr[i * m + b];
                    x2 += w.sr[i * m + a] * w.ksr[i * m + b];
                    x3 += w.ksr[i * m + a] * w.sksr[i * m + b];
                }
                self.rsr[(a, b)] += x1;
                self.rsksr[(a, b)] += x2;
                self.rsksksr[(a, b)] += x3;
            }
        }
        // tr(SK) and tr(SKSK).
        small::mul(&w.sc, k, &mut w.t1, nc, nc, nc);
        let (mut tr_sk, mut tr_sksk) = (0.0, 0.0);
        for i in 0..nc {
            tr_sk += w.t1[i * nc + i];
            for j in 0..nc {
                tr_sksk += w.t1[i * nc + j] * w.t1[j * nc + i];
            }
        }
        for i in 0..nc {
            for j in 0..nc {
                self.d1.set(c, i, j, w.mk[i * nc + j] / s2);
                self.d2.set(c, i, j, w.mmk[i * nc + j] / (s2 * s2));
            }
        }
        (tr_sk, tr_sksk)
    }

    /// The [X y] cross-products through V⁻¹, Φ, and the traces and
    /// quadratic forms of P, from the per-component sums.
    fn finish_span(&mut self, model: &Model, tr_sk: f64, tr_sksk: f64, s2: f64) {
        let (q, p) = (self.q, self.p);
        let m = p + 1;
        let xyxy = &model.pls.xyxy;
        self.rwr.reset(m, m);
        self.rwwr.reset(m, m);
        self.rwwwr.reset(m, m);
        for a in 0..m {
            for b in 0..m {
                let (k, r1, r2, r3) = (
                    xyxy[a * m + b],
                    self.rsr[(a, b)],
                    self.rsksr[(a, b)],
                    self.rsksksr[(a, b)],
                );
                self.rwr[(a, b)] = (k - r1) / s2;
                self.rwwr[(a, b)] = (k - r1 * 2.0 + r2) / (s2 * s2);
                self.rwwwr[(a, b)] = (k - r1 * 3.0 + r2 * 3.0 - r3) / (s2 * s2 * s2);
            }
        }
        self.g1.assign_block(&self.rwr, p, p);
        if !self.g1.inverse_spd_into(&mut self.phi, &mut self.t1) {
            self.phi.reset(p, p);
            self.phi.scale(f64::NAN);
        }
        self.rho.clear();
        for j in 0..p {
            let beta: f64 = (0..p).map(|k| self.phi[(j, k)] * self.rwr[(k, p)]).sum();
            self.rho.push(-beta);
        }
        self.rho.push(1.0);
        self.g2.assign_block(&self.rwwr, p, p);
        self.g3.assign_block(&self.rwwwr, p, p);
        let n = model.frame.n as f64;
        self.tr_w = (n - tr_sk) / s2;
        self.tr_ww = (n - 2.0 * tr_sk + tr_sksk) / (s2 * s2);
        self.t1.set_mul(&self.phi, &self.g2); // ΦG2
        self.tr_p = self.tr_w - self.t1.trace();
        self.t2.set_mul(&self.phi, &self.g3);
        self.tr_pp = self.tr_ww - 2.0 * self.t2.trace() + Mat::dot_t(&self.t1, &self.t1);
        self.u1.reset(q, p);
        self.u2.reset(q, p);
        for r in 0..q {
            for j in 0..p {
                self.u1[(r, j)] = self.u_w[(r, j)];
                self.u2[(r, j)] = self.u_ww[(r, j)];
            }
        }
        let quad = |a: &Mat, v: &[f64]| -> f64 {
            (0..v.len())
                .map(|i| v[i] * (0..v.len()).map(|j| a[(i, j)] * v[j]).sum::<f64>())
                .sum()
        };
        self.zpy.clear();
        self.zpy
            .extend((0..q).map(|r| (0..m).map(|j| self.u_w[(r, j)] * self.rho[j]).sum::<f64>()));
        self.wwr.clear();
        for a in 0..m {
            let v = (0..m).map(|b| self.rwwr[(a, b)] * self.rho[b]).sum::<f64>();
            self.wwr.push(v);
        }
        // Φ·(V⁻²-weighted X'Py), then Z'PPy = U_ww ρ − U1 Φ wwr_X.
        self.phiw.clear();
        for j in 0..p {
            let v = (0..p).map(|k| self.phi[(j, k)] * self.wwr[k]).sum::<f64>();
            self.phiw.push(v);
        }
        self.zppy.clear();
        for r in 0..q {
            let a: f64 = (0..m).map(|j| self.u_ww[(r, j)] * self.rho[j]).sum();
            let b: f64 = (0..p).map(|j| self.u1[(r, j)] * self.phiw[j]).sum();
            self.zppy.push(a - b);
        }
        let wx_phi_wx: f64 = (0..p).map(|j| self.wwr[j] * self.phiw[j]).sum();
        self.y_p3_y = quad(&self.rwwwr, &self.rho) - wx_phi_wx;
        self.y_pp_y = quad(&self.rwwr, &self.rho);
    }

    /// Entry (s, r) of a block-diagonal matrix.
    #[inline]
    fn d(&self, d: &BlockDiag, s: usize, r: usize) -> f64 {
        let (c, ls) = self.comp_of[s];
        let (c2, lr) = self.comp_of[r];
        if c == c2 {
            d.get(c, ls, lr)
        } else {
            0.0
        }
    }

    /// out = D·F for a block-diagonal D and a q × k matrix F.
    fn d_times(&self, d: &BlockDiag, f: &Mat, out: &mut Mat, model: &Model) {
        out.reset(self.q, f.ncols());
        let (ptr, cols) = model.pls.components();
        for c in 0..ptr.len() - 1 {
            let cc = &cols[ptr[c]..ptr[c + 1]];
            for (i, &r) in cc.iter().enumerate() {
                for (j, &s) in cc.iter().enumerate() {
                    let v = d.get(c, i, j);
                    if v != 0.0 {
                        for k in 0..f.ncols() {
                            out[(r, k)] += v * f[(s, k)];
                        }
                    }
                }
            }
        }
    }

    /// tr(E_k D1 E_l D1).
    fn tr_ede(&mut self, pk: &[(usize, usize)], pl: &[(usize, usize)]) -> f64 {
        // Counting-sort E_l's pairs by the component of their first index.
        let ncomp = self.d1.size.len();
        self.start.clear();
        self.start.resize(ncomp + 1, 0);
        for &(u, _) in pl {
            self.start[self.comp_of[u].0 + 1] += 1;
        }
        for c in 0..ncomp {
            self.start[c + 1] += self.start[c];
        }
        self.fill.clone_from(&self.start);
        self.by.clear();
        self.by.resize(pl.len(), (0, 0));
        for &(u, v) in pl {
            let c = self.comp_of[u].0;
            self.by[self.fill[c]] = (u, v);
            self.fill[c] += 1;
        }
        let d = &self.d1;
        let mut s = 0.0;
        for &(r, ss) in pk {
            let c = self.comp_of[r].0;
            for &(u, v) in &self.by[self.start[c]..self.start[c + 1]] {
                s += self.d(d, ss, u) * self.d(d, v, r);
            }
        }
        s
    }
}

/// Reusable buffers for [`coef_tests_into`]: a power loop keeps one per
/// thread, so testing a replicate's fit allocates nothing once the shapes
/// have been seen.
#[derive(Default)]
pub struct TestWork {
    gt: Vec<GTerm>,
    b: Blocks,
    /// Per variance parameter k: F_k = E_k U1 (q × p; empty for the
    /// residual), M_k = U1'E_kU1 (G2 for the residual), ΦM_k, D1F_k.
    f: Vec<Mat>,
    mk: Vec<Mat>,
    phim: Vec<Mat>,
    d1f: Vec<Mat>,
    /// Q_kl = X'V⁻¹G_kV⁻¹G_lV⁻¹X for k ≤ l, at k·ng + l.
    qq: Vec<Mat>,
    /// a_k = E_k Z'Py (q × 1), D1 a_k, U1'a_k.
    a: Vec<Mat>,
    d1a: Vec<Mat>,
    ua: Vec<Mat>,
    /// U1Φ, U2Φ, U1ΦG2Φ.
    v1: Mat,
    v2: Mat,
    v1g: Mat,
    /// Gradient and Hessian of the deviance in γ.
    grad: Vec<f64>,
    hess: Mat,
    /// γ(φ) Jacobian and per-γ Hessians in φ = (θ, σ).
    jac: Mat,
    hess2: Vec<Mat>,
    /// Scratch.
    h: Mat,
    t1: Mat,
    t2: Mat,
    vals: Vec<f64>,
    vecs: Mat,
    inv: Mat,
    dd: Vec<f64>,
    g: Vec<f64>,
    y: Vec<f64>,
    ww: Mat,
    bw: BwWork,
}

impl TestWork {
    /// The variance parameters of `model` (γ order: each term's lower
    /// triangle, then the residual).
    fn gterms(&mut self, model: &Model) {
        let mut n = 0;
        for &(qo, _, k, nl) in &model.pls.term_layout {
            for a in 0..k {
                for c in a..k {
                    if self.gt.len() == n {
                        self.gt.push(GTerm::default());
                    }
                    let g = &mut self.gt[n];
                    g.residual = false;
                    g.pairs.clear();
                    for lev in 0..nl {
                        let r = qo + lev * k + c;
                        let s = qo + lev * k + a;
                        g.pairs.push((r, s));
                        if r != s {
                            g.pairs.push((s, r));
                        }
                    }
                    n += 1;
                }
            }
        }
        if self.gt.len() == n {
            self.gt.push(GTerm::default());
        }
        self.gt[n].residual = true;
        self.gt[n].pairs.clear();
        self.gt.truncate(n + 1);
    }

    fn ng(&self) -> usize {
        self.gt.len()
    }

    /// F_k, M_k, ΦM_k and D1F_k for every variance parameter, and the
    /// Q_kl (k ≤ l).
    fn term_pieces(&mut self, model: &Model) {
        let ng = self.ng();
        let b = &self.b;
        for v in [&mut self.f, &mut self.mk, &mut self.phim, &mut self.d1f] {
            v.resize_with(ng, Mat::default);
        }
        for k in 0..ng {
            let g = &self.gt[k];
            if g.residual {
                self.mk[k].assign(&b.g2);
            } else {
                let f = &mut self.f[k];
                f.reset(b.u1.nrows(), b.u1.ncols());
                for &(r, s) in &g.pairs {
                    for c in 0..b.u1.ncols() {
                        f[(r, c)] += b.u1[(s, c)];
                    }
                }
                self.mk[k].set_tmul(&b.u1, f);
                b.d_times(&b.d1, f, &mut self.d1f[k], model);
            }
            self.phim[k].set_mul(&b.phi, &self.mk[k]);
        }
        self.qq.resize_with(ng * ng, Mat::default);
        for i in 0..ng {
            for j in i..ng {
                let out = &mut self.qq[i * ng + j];
                match (self.gt[i].residual, self.gt[j].residual) {
                    (false, false) => out.set_tmul(&self.f[i], &self.d1f[j]),
                    (false, true) => out.set_tmul(&self.f[i], &b.u2),
                    (true, false) => out.set_tmul(&b.u2, &self.f[j]),
                    (true, true) => out.assign(&b.g3),
                }
            }
        }
    }

    /// Gradient and Hessian of the deviance (−2 log L_R, or −2 log L
    /// profiled over β for ML) in γ.
    fn gamma_derivs(&mut self, model: &Model, reml: bool) {
        let ng = self.ng();
        let b = &self.b;
        self.v1.set_mul(&b.u1, &b.phi);
        self.v2.set_mul(&b.u2, &b.phi);
        self.t1.set_mul3(&b.phi, &b.g2, &b.phi, &mut self.t2);
        self.v1g.set_mul(&b.u1, &self.t1);
        for v in [&mut self.a, &mut self.d1a, &mut self.ua] {
            v.resize_with(ng, Mat::default);
        }
        for k in 0..ng {
            if self.gt[k].residual {
                continue;
            }
            let a = &mut self.a[k];
            a.reset(b.q, 1);
            for &(r, s) in &self.gt[k].pairs {
                a[(r, 0)] += b.zpy[s];
            }
            b.d_times(&b.d1, a, &mut self.d1a[k], model);
            self.ua[k].set_tmul(&b.u1, a);
        }
        self.grad.clear();
        for i in 0..ng {
            let gi = &self.gt[i];
            let g = if gi.residual {
                (if reml { b.tr_p } else { b.tr_w }) - b.y_pp_y
            } else {
                let mut tr = 0.0;
                let mut quad = 0.0;
                for &(r, s) in &gi.pairs {
                    tr += b.d(&b.d1, s, r);
                    if reml {
                        tr -= row_dot(&self.v1, s, &b.u1, r);
                    }
                    quad += b.zpy[r] * b.zpy[s];
                }
                tr - quad
            };
            self.grad.push(g);
        }
        self.hess.reset(ng, ng);
        for i in 0..ng {
            for j in 0..=i {
                let h = self.hess_entry(i, j, reml);
                self.hess[(i, j)] = h;
                self.hess[(j, i)] = h;
            }
        }
    }

    /// Entry (i, j), j ≤ i, of the deviance's Hessian in γ.
    fn hess_entry(&mut self, i: usize, j: usize, reml: bool) -> f64 {
        let ng = self.ng();
        let (ri, rj) = (self.gt[i].residual, self.gt[j].residual);
        match (ri, rj) {
            (false, false) => {
                let mut tr = self.b.tr_ede(&self.gt[i].pairs, &self.gt[j].pairs);
                let b = &self.b;
                if reml {
                    // Q_ji = Q_ij' and tr(Q'Φ) = tr(QΦ) for symmetric Φ.
                    let qij = &self.qq[j * ng + i];
                    tr += -2.0 * Mat::dot(qij, &b.phi) + Mat::dot_t(&self.phim[i], &self.phim[j]);
                }
                let quad = Mat::dot(&self.a[i], &self.d1a[j])
                    - quad_form2(&self.ua[i], &b.phi, &self.ua[j]);
                -tr + 2.0 * quad
            }
            (true, false) | (false, true) => {
                let k = if ri { j } else { i };
                let b = &self.b;
                let mut tr = 0.0;
                for &(r, s) in &self.gt[k].pairs {
                    tr += b.d(&b.d2, s, r);
                    if reml {
                        tr += -row_dot(&self.v2, s, &b.u1, r) - row_dot(&self.v1, s, &b.u2, r)
                            + row_dot(&self.v1g, s, &b.u1, r);
                    }
                }
                let ak = &self.a[k];
                let quad: f64 = (0..b.q).map(|r| ak[(r, 0)] * b.zppy[r]).sum();
                -tr + 2.0 * quad
            }
            (true, true) => {
                let b = &self.b;
                -(if reml { b.tr_pp } else { b.tr_ww }) + 2.0 * b.y_p3_y
            }
        }
    }

    /// dd[k] = (∂Φ/∂γ_k)_jj = (Φ M_k Φ)_jj for coefficient j (M_k is G2
    /// for the residual).
    fn dphi_jj(&mut self, j: usize) {
        let p = self.b.p;
        self.dd.clear();
        for k in 0..self.gt.len() {
            let pm = &self.phim[k];
            let v: f64 = (0..p).map(|a| pm[(j, a)] * self.b.phi[(a, j)]).sum();
            self.dd.push(v);
        }
    }
}

fn row_dot(a: &Mat, i: usize, b: &Mat, j: usize) -> f64 {
    a.row(i).iter().zip(b.row(j)).map(|(x, y)| x * y).sum()
}

/// u' A v for column vectors (n × 1 matrices) u, v.
fn quad_form2(u: &Mat, a: &Mat, v: &Mat) -> f64 {
    let n = u.nrows();
    (0..n)
        .map(|i| u[(i, 0)] * (0..n).map(|k| a[(i, k)] * v[(k, 0)]).sum::<f64>())
        .sum()
}

/// γ(φ) Jacobian and second derivatives for φ = (θ, σ).
fn phi_transform(model: &Model, fit: &Fit, jac: &mut Mat, hessians: &mut Vec<Mat>) {
    let nth = fit.theta.len();
    let nphi = nth + 1;
    let ng = nth + 1;
    let sigma = fit.sigma;
    let s2 = sigma * sigma;
    jac.reset(ng, nphi);
    hessians.resize_with(ng, Mat::default);
    for h in hessians.iter_mut() {
        h.reset(nphi, nphi);
    }
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
                        for e2 in f..k {
                            let pe2 = to + tri(e2, f);
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
    jac[(nth, nth)] = 2.0 * sigma;
    hessians[nth][(nth, nth)] = 2.0;
}

/// Satterthwaite df for the coefficients `coefs` (lmerTest's method,
/// analytic derivatives) into `df` (NaN for the others); returns the number
/// of eigenvalues cut from the Hessian (a variance on the boundary).
fn satterthwaite(
    model: &Model,
    fit: &Fit,
    w: &mut TestWork,
    coefs: Coefs,
    df: &mut [f64],
) -> usize {
    phi_transform(model, fit, &mut w.jac, &mut w.hess2);
    let nphi = w.jac.ncols();
    // H = J' H_γ J + Σ_k (∂dev/∂γ_k) ∇²γ_k, symmetrised.
    w.t1.set_tmul(&w.jac, &w.hess);
    w.h.set_mul(&w.t1, &w.jac);
    for (k, h2) in w.hess2.iter().enumerate() {
        w.h.add_scaled(h2, w.grad[k]);
    }
    w.h.symmetrise();
    // The cut for a zero eigenvalue is made on the Hessian in (θ, σ/σ̂),
    // which does not change with the response's units: lmerTest cuts in
    // (θ, σ), where the σ entry scales as 1/σ², so rescaling y by 10⁶ turns a
    // well-determined σ into a false "boundary" there (df 191,345 instead
    // of 69.9). On data in ordinary units (σ of order 1–100) both cuts
    // agree, and crtsim matches lmerTest on every reference case.
    let last = nphi - 1;
    let sd = fit.sigma;
    for i in 0..nphi {
        w.h[(i, last)] *= sd;
        w.h[(last, i)] *= sd;
    }
    let tol = 1e-8;
    dense::sym_eigen(&mut w.h, &mut w.vals, &mut w.vecs);
    let kept = dense::spectral_sum(&w.vals, &w.vecs, &mut w.inv, |ev| ev > tol, |ev| 1.0 / ev);
    for i in 0..nphi {
        w.inv[(i, last)] *= sd;
        w.inv[(last, i)] *= sd;
    }
    for j in coefs.iter(w.b.p) {
        w.dphi_jj(j);
        df[j] = df_from_dd(w, w.b.phi[(j, j)]);
    }
    nphi - kept
}

/// Satterthwaite's df from dd[k] = ∂Var/∂γ_k of an estimate with variance
/// `v`: A = 2 H⁻ (in `w.inv`), ∂Var/∂φ_a = Σ_k dd[k] J[k, a], df =
/// 2 v² / (∇' A ∇).
fn df_from_dd(w: &mut TestWork, v: f64) -> f64 {
    let nphi = w.jac.ncols();
    w.g.clear();
    for col in 0..nphi {
        let g: f64 = (0..w.dd.len()).map(|k| w.dd[k] * w.jac[(k, col)]).sum();
        w.g.push(g);
    }
    let mut denom = 0.0;
    for a in 0..nphi {
        for c in 0..nphi {
            denom += w.g[a] * 2.0 * w.inv[(a, c)] * w.g[c];
        }
    }
    2.0 * v * v / denom
}

/// Satterthwaite's df of each contrast l'β̂ in `ls` (each of length p), as
/// lmerTest's `contest1D`, and the number of eigenvalues cut from the
/// Hessian (a variance on the boundary).
pub fn contrast_df(model: &Model, fit: &Fit, ls: &[Vec<f64>]) -> (Vec<f64>, usize) {
    if super::numeric_df::applies(model) {
        return super::numeric_df::contrast_df(model, fit, ls);
    }
    let mut w = TestWork::default();
    w.b.fill(model, fit);
    w.gterms(model);
    w.term_pieces(model);
    w.gamma_derivs(model, fit.reml);
    let p = w.b.p;
    let mut scratch = vec![f64::NAN; p];
    let cut = satterthwaite(model, fit, &mut w, Coefs::One(p), &mut scratch);
    let dfs = ls
        .iter()
        .map(|l| {
            let phil: Vec<f64> = (0..p)
                .map(|a| (0..p).map(|b| w.b.phi[(a, b)] * l[b]).sum())
                .collect();
            let v: f64 = (0..p).map(|a| l[a] * phil[a]).sum();
            w.dd.clear();
            for k in 0..w.gt.len() {
                let pm = &w.phim[k];
                let d: f64 = (0..p)
                    .map(|i| l[i] * (0..p).map(|a| pm[(i, a)] * phil[a]).sum::<f64>())
                    .sum();
                w.dd.push(d);
            }
            df_from_dd(&mut w, v)
        })
        .collect();
    (dfs, cut)
}

/// Kenward–Roger (pbkrtest's method): adjusted SE and df of the
/// coefficients `coefs` into `se` and `df`.
fn kenward_roger(w: &mut TestWork, coefs: Coefs, se: &mut [f64], df: &mut [f64]) {
    let ng = w.ng();
    let p = w.b.p;
    // E[2nd derivative]: ie2_ij = tr(V⁻¹G_iV⁻¹G_j) − 2 tr(ΦQ_ij) + tr(ΦP_iΦP_j),
    // with P_i = −X'V⁻¹G_iV⁻¹X = −M_i.
    w.h.reset(ng, ng);
    for i in 0..ng {
        for j in i..ng {
            let (gi, gj) = (&w.gt[i], &w.gt[j]);
            let ktr = match (gi.residual, gj.residual) {
                (false, false) => w.b.tr_ede(&gi.pairs, &gj.pairs),
                (false, true) => tr_d2(&w.b, &gi.pairs),
                (true, false) => tr_d2(&w.b, &gj.pairs),
                (true, true) => w.b.tr_ww,
            };
            let v = ktr - 2.0 * Mat::dot(&w.b.phi, &w.qq[i * ng + j])
                + Mat::dot_t(&w.phim[i], &w.phim[j]);
            w.h[(i, j)] = v;
            w.h[(j, i)] = v;
        }
    }
    // W = 2·ie2⁻¹ (a generalised inverse when ie2 is near singular).
    w.t1.assign(&w.h);
    dense::sym_eigen(&mut w.t1, &mut w.vals, &mut w.vecs);
    let condi = w.vals.iter().map(|v| v.abs()).fold(f64::INFINITY, f64::min);
    let maxev = w.vals.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let cut = if condi > 1e-10 {
        0.0
    } else {
        1e-12 * maxev.max(1e-300)
    };
    dense::spectral_sum(
        &w.vals,
        &w.vecs,
        &mut w.ww,
        |ev| ev.abs() > cut,
        |ev| 2.0 / ev,
    );
    for j in coefs.iter(p) {
        let phij = w.b.phi[(j, j)];
        // s_i = (Φ P_i Φ)_jj / Φ_jj, and y_i = M_i φ_j (φ_j: column j of Φ).
        w.dphi_jj(j);
        w.y.clear();
        for i in 0..ng {
            for a in 0..p {
                let v: f64 = (0..p).map(|c| w.mk[i][(a, c)] * w.b.phi[(c, j)]).sum();
                w.y.push(v);
            }
        }
        // φ_j'Uφ_j with U = Σ_ik W_ik (Q_ik − P_iΦP_k).
        let mut u = 0.0;
        for i in 0..ng {
            for k in i..ng {
                let qf = col_quad(&w.qq[i * ng + k], &w.b.phi, j);
                let yi = &w.y[i * p..(i + 1) * p];
                let yk = &w.y[k * p..(k + 1) * p];
                let mut pp = 0.0;
                for a in 0..p {
                    for c in 0..p {
                        pp += yi[a] * w.b.phi[(a, c)] * yk[c];
                    }
                }
                let e = if i == k { 1.0 } else { 2.0 };
                u += e * w.ww[(i, k)] * (qf - pp);
            }
        }
        se[j] = (phij + 2.0 * u).sqrt();
        // pbkrtest's Lb_ddf for L = e_j (q = 1): A1 = A2 = Σ_ik W_ik s_i s_k.
        let mut a1 = 0.0;
        for i in 0..ng {
            for k in i..ng {
                let e = if i == k { 1.0 } else { 2.0 };
                let (si, sk) = if phij != 0.0 {
                    (-w.dd[i] / phij, -w.dd[k] / phij)
                } else {
                    (0.0, 0.0)
                };
                a1 += e * w.ww[(i, k)] * si * sk;
            }
        }
        df[j] = kr_ddf(a1, a1);
    }
}

/// φ_j' Q φ_j for column j of Φ.
fn col_quad(q: &Mat, phi: &Mat, j: usize) -> f64 {
    let p = phi.nrows();
    let mut s = 0.0;
    for a in 0..p {
        let mut r = 0.0;
        for c in 0..p {
            r += q[(a, c)] * phi[(c, j)];
        }
        s += phi[(a, j)] * r;
    }
    s
}

/// tr(V⁻¹G_iV⁻¹V⁻¹) for a random-effect parameter.
fn tr_d2(b: &Blocks, pairs: &[(usize, usize)]) -> f64 {
    pairs.iter().map(|&(r, s)| b.d(&b.d2, s, r)).sum()
}

/// pbkrtest's denominator df for a single contrast from A1 and A2.
fn kr_ddf(a1: f64, a2: f64) -> f64 {
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

/// Buffers for [`between_within_into`].
#[derive(Default)]
struct BwWork {
    facs: Vec<usize>,
    map: Vec<u32>,
    first: Vec<f64>,
    level: Vec<usize>,
    ngroups: Vec<usize>,
}

/// Between-within (containment) df, as nlme / SAS DDFM=BW: the grouping
/// factors are ranked from outer (fewest levels) to inner; a coefficient
/// constant within the groups of the outermost level at which it is
/// constant gets that level's df, df_i = N_i − N_{i−1} − (coefficients at
/// level i); others (and the intercept) get the observation level's df.
/// Needs nested grouping factors.
pub fn between_within(model: &Model) -> std::result::Result<Vec<f64>, String> {
    let mut df = Vec::new();
    match between_within_into(model, &mut BwWork::default(), &mut df) {
        None => Ok(df),
        Some((inner, outer)) => Err(unnested_note(model, inner, outer)),
    }
}

fn unnested_note(model: &Model, inner: usize, outer: usize) -> String {
    let t = &model.frame.terms;
    format!(
        "between-within df need nested grouping factors; `{}` is not nested in `{}`",
        t[inner].group, t[outer].group
    )
}

/// [`between_within`] into `df`; on failure, the (inner, outer) terms that
/// are not nested.
fn between_within_into(model: &Model, w: &mut BwWork, df: &mut Vec<f64>) -> Option<(usize, usize)> {
    let fr = &model.frame;
    let n = fr.n;
    // Distinct grouping factors (term indices), outer (fewer levels) first.
    w.facs.clear();
    for (i, t) in fr.terms.iter().enumerate() {
        if !w.facs.iter().any(|&f| fr.terms[f].group == t.group) {
            w.facs.push(i);
        }
    }
    w.facs.sort_by_key(|&t| fr.terms[t].nlevels());
    for k in 1..w.facs.len() {
        // Inner must be nested in outer: each inner level maps to one outer level.
        let (outer, inner) = (&fr.terms[w.facs[k - 1]], &fr.terms[w.facs[k]]);
        w.map.clear();
        w.map.resize(inner.nlevels(), u32::MAX);
        for i in 0..n {
            let il = inner.refs[i] as usize;
            if w.map[il] == u32::MAX {
                w.map[il] = outer.refs[i];
            } else if w.map[il] != outer.refs[i] {
                return Some((w.facs[k], w.facs[k - 1]));
            }
        }
    }
    let p = fr.p;
    let nl = w.facs.len();
    // Level of each coefficient: 1..=nl for grouping levels, nl+1 = observations.
    w.level.clear();
    w.level.resize(p, nl + 1);
    for j in 0..p {
        if fr.x_names[j] == "(Intercept)" {
            continue;
        }
        let col = &fr.x[j * n..(j + 1) * n];
        for (li, &fi) in w.facs.iter().enumerate() {
            let f = &fr.terms[fi];
            w.first.clear();
            w.first.resize(f.nlevels(), f64::NAN);
            let mut constant = true;
            for i in 0..n {
                let g = f.refs[i] as usize;
                if w.first[g].is_nan() {
                    w.first[g] = col[i];
                } else if (w.first[g] - col[i]).abs() > 1e-12 * (1.0 + col[i].abs()) {
                    constant = false;
                    break;
                }
            }
            if constant {
                w.level[j] = li + 1;
                break;
            }
        }
    }
    w.ngroups.clear();
    w.ngroups.push(1);
    w.ngroups
        .extend(w.facs.iter().map(|&f| fr.terms[f].nlevels()));
    w.ngroups.push(n);
    df.clear();
    for j in 0..p {
        let li = w.level[j];
        let count = (0..p)
            .filter(|&t| w.level[t] == li && fr.x_names[t] != "(Intercept)")
            .count();
        df.push(w.ngroups[li] as f64 - w.ngroups[li - 1] as f64 - count as f64);
    }
    None
}

/// Which degrees of freedom to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestOptions {
    pub satterthwaite: bool,
    pub kenward_roger: bool,
    pub between_within: bool,
}

impl TestOptions {
    /// Everything (Kenward–Roger only for REML fits).
    pub const ALL: TestOptions = TestOptions {
        satterthwaite: true,
        kenward_roger: true,
        between_within: true,
    };
}

/// The coefficients whose Satterthwaite and Kenward–Roger df are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coefs {
    All,
    /// One coefficient (a power loop tests only the treatment's).
    One(usize),
}

impl Coefs {
    fn iter(self, p: usize) -> std::ops::Range<usize> {
        match self {
            Coefs::All => 0..p,
            Coefs::One(j) => j.min(p)..(j + 1).min(p),
        }
    }
}

/// All tests for the fitted model.
pub fn coef_tests(model: &Model, fit: &Fit) -> CoefTests {
    coef_tests_with(model, fit, TestOptions::ALL)
}

/// The selected tests for the fitted model, for every coefficient; the
/// others are left empty.
pub fn coef_tests_with(model: &Model, fit: &Fit, opts: TestOptions) -> CoefTests {
    let mut out = CoefTests::default();
    coef_tests_into(
        model,
        fit,
        opts,
        Coefs::All,
        &mut TestWork::default(),
        &mut out,
    );
    if out.sat_cut > 0 {
        out.notes.push(format!(
            "Satterthwaite: the Hessian of the deviance in (theta, sigma/sigma_hat) has {} eigenvalue(s) <= 1e-8 (a variance on the boundary); as lmerTest, its generalised inverse is used",
            out.sat_cut
        ));
    }
    if let Some((inner, outer)) = out.bw_unnested {
        out.notes.push(unnested_note(model, inner, outer));
    }
    out
}

/// [`coef_tests_with`] into reused storage: the Satterthwaite and
/// Kenward–Roger df (and KR SE) are computed for `coefs` only (NaN for the
/// others); notes are recorded as counts and indices (`sat_cut`,
/// `bw_unnested`), not text. Allocates nothing once `work` and `out` have
/// seen a model of this shape.
pub fn coef_tests_into(
    model: &Model,
    fit: &Fit,
    opts: TestOptions,
    coefs: Coefs,
    work: &mut TestWork,
    out: &mut CoefTests,
) {
    let p = fit.beta.len();
    let t = |j: usize| fit.beta[j] / fit.se(j);
    out.notes.clear();
    out.sat_cut = 0;
    out.bw_unnested = None;
    for v in [
        &mut out.df_satterthwaite,
        &mut out.p_satterthwaite,
        &mut out.df_kenward_roger,
        &mut out.se_kenward_roger,
        &mut out.p_kenward_roger,
        &mut out.df_between_within,
        &mut out.p_between_within,
        &mut out.p_z,
    ] {
        v.clear();
    }
    let kr = opts.kenward_roger && fit.reml;
    // One large block of crossed levels: Satterthwaite by numerical
    // derivatives of the sparse factor (super::numeric_df).
    let numeric = opts.satterthwaite && super::numeric_df::applies(model);
    if (opts.satterthwaite && !numeric) || kr {
        work.b.fill(model, fit);
        work.gterms(model);
        work.term_pieces(model);
    }
    if numeric {
        let ls: Vec<Vec<f64>> = coefs
            .iter(p)
            .map(|j| (0..p).map(|c| f64::from(u8::from(c == j))).collect())
            .collect();
        let (dfs, cut) = super::numeric_df::contrast_df(model, fit, &ls);
        out.df_satterthwaite.resize(p, f64::NAN);
        for (j, df) in coefs.iter(p).zip(dfs) {
            out.df_satterthwaite[j] = df;
        }
        out.sat_cut = cut;
        out.p_satterthwaite
            .extend((0..p).map(|j| p_t(t(j), out.df_satterthwaite[j])));
    } else if opts.satterthwaite {
        work.gamma_derivs(model, fit.reml);
        out.df_satterthwaite.resize(p, f64::NAN);
        out.sat_cut = satterthwaite(model, fit, work, coefs, &mut out.df_satterthwaite);
        out.p_satterthwaite
            .extend((0..p).map(|j| p_t(t(j), out.df_satterthwaite[j])));
    }
    if kr {
        out.df_kenward_roger.resize(p, f64::NAN);
        out.se_kenward_roger.resize(p, f64::NAN);
        kenward_roger(
            work,
            coefs,
            &mut out.se_kenward_roger,
            &mut out.df_kenward_roger,
        );
        for j in 0..p {
            let pv = p_t(
                fit.beta[j] / out.se_kenward_roger[j],
                out.df_kenward_roger[j],
            );
            out.p_kenward_roger.push(pv);
        }
    }
    if opts.between_within {
        match between_within_into(model, &mut work.bw, &mut out.df_between_within) {
            None => {
                for j in 0..p {
                    let pv = p_t(t(j), out.df_between_within[j]);
                    out.p_between_within.push(pv);
                }
            }
            Some(pair) => {
                out.bw_unnested = Some(pair);
                out.df_between_within.clear();
                out.df_between_within.resize(p, f64::NAN);
                out.p_between_within.resize(p, f64::NAN);
            }
        }
    }
    out.df_residual = (fit.n - p) as f64;
    out.p_z.extend((0..p).map(|j| p_t(t(j), f64::INFINITY)));
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

/// Small dense row-major matrix helpers for per-component algebra (a
/// component is a handful of columns: nalgebra's general routines cost more
/// in setup than in arithmetic at that size).
mod small {
    /// Scratch buffers for one component, grown as needed.
    #[derive(Default)]
    pub struct Work {
        pub r: Vec<f64>,
        pub t1: Vec<f64>,
        pub t2: Vec<f64>,
        pub t3: Vec<f64>,
        pub sc: Vec<f64>,
        pub ks: Vec<f64>,
        pub mc: Vec<f64>,
        pub mk: Vec<f64>,
        pub mmk: Vec<f64>,
        pub mr: Vec<f64>,
        pub mmr: Vec<f64>,
        pub sr: Vec<f64>,
        pub ksr: Vec<f64>,
        pub sksr: Vec<f64>,
        pub x: Vec<f64>,
    }

    impl Work {
        /// Size the buffers for an n × n component and m columns of [X y].
        pub fn resize(&mut self, n: usize, m: usize) {
            for v in [
                &mut self.t1,
                &mut self.t2,
                &mut self.t3,
                &mut self.sc,
                &mut self.ks,
                &mut self.mc,
                &mut self.mk,
                &mut self.mmk,
            ] {
                v.resize(n * n, 0.0);
            }
            for v in [
                &mut self.r,
                &mut self.mr,
                &mut self.mmr,
                &mut self.sr,
                &mut self.ksr,
                &mut self.sksr,
            ] {
                v.resize(n * m, 0.0);
            }
            self.x.resize(n, 0.0);
        }
    }

    /// out (n × m) = a (n × k) · b (k × m).
    pub fn mul(a: &[f64], b: &[f64], out: &mut [f64], n: usize, k: usize, m: usize) {
        for i in 0..n {
            let row = &mut out[i * m..(i + 1) * m];
            row.iter_mut().for_each(|v| *v = 0.0);
            for t in 0..k {
                let x = a[i * k + t];
                if x != 0.0 {
                    for (o, &y) in row.iter_mut().zip(&b[t * m..(t + 1) * m]) {
                        *o += x * y;
                    }
                }
            }
        }
    }

    /// out (n × m) = a' · b with a (k × n), b (k × m).
    pub fn mul_tn(a: &[f64], b: &[f64], out: &mut [f64], n: usize, k: usize, m: usize) {
        out[..n * m].iter_mut().for_each(|v| *v = 0.0);
        for t in 0..k {
            for i in 0..n {
                let x = a[t * n + i];
                if x != 0.0 {
                    for j in 0..m {
                        out[i * m + j] += x * b[t * m + j];
                    }
                }
            }
        }
    }

    /// out (n × m) = a · b' with a (n × k), b (m × k).
    pub fn mul_nt(a: &[f64], b: &[f64], out: &mut [f64], n: usize, k: usize, m: usize) {
        for i in 0..n {
            for j in 0..m {
                out[i * m + j] = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
            }
        }
    }

    /// Invert a symmetric positive-definite n × n matrix in place (`scratch`
    /// n × n); false if it is not positive definite.
    pub fn inverse_spd(a: &mut [f64], scratch: &mut [f64], x: &mut [f64], n: usize) -> bool {
        scratch[..n * n].copy_from_slice(&a[..n * n]);
        if !crate::lmm::pls::dense_cholesky_lower(scratch, n) {
            return false;
        }
        // Solve L L' X = I column by column.
        for col in 0..n {
            x[..n].iter_mut().for_each(|v| *v = 0.0);
            x[col] = 1.0;
            for i in 0..n {
                let mut v = x[i];
                for t in 0..i {
                    v -= scratch[i * n + t] * x[t];
                }
                x[i] = v / scratch[i * n + i];
            }
            for i in (0..n).rev() {
                let mut v = x[i];
                for t in i + 1..n {
                    v -= scratch[t * n + i] * x[t];
                }
                x[i] = v / scratch[i * n + i];
            }
            for i in 0..n {
                a[i * n + col] = x[i];
            }
        }
        true
    }
}
