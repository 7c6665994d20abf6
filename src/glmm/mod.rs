//! Generalised linear mixed models (binary and count outcomes) by the
//! Laplace approximation or adaptive Gauss–Hermite quadrature, as lme4's
//! `glmer` (Bates, Mächler, Bolker & Walker 2015, section 5 of the lme4
//! vignette "Fitting linear mixed models with lme4"; glmer's PIRLS).
//!
//! For fixed (θ, β) penalised iteratively reweighted least squares finds
//! the conditional mode û of the spherical random effects: each step solves
//! the PLS system of the LMM engine ([`crate::lmm::pls`]) with weights
//! W = n μ'(η)²/V(μ) and working response ZΛu + (y − μ)/μ'(η). The Laplace
//! deviance is then
//!
//!   −2 log L(θ, β) ≈ Σ_i −2 log p(y_i | μ_i(û)) + |û|² + log|L_θ|²,
//!
//! with L_θ L_θ' = Λ'Z'WZΛ + I at û. With one scalar random effect and
//! nAGQ > 1 each group's integral is evaluated by adaptive Gauss–Hermite
//! quadrature centred at û_j and scaled by L_jj. As glmer, θ is first
//! optimised alone with β and u found jointly by PIRLS (nAGQ = 0, from the
//! GLM without random effects), then (θ, β) jointly; the covariance of β̂ is 2·H⁻¹ restricted to β, with H
//! the finite-difference Hessian of the deviance in (θ, β) at the optimum
//! (glmer's default, `use.hessian`).

pub mod analyse;
pub mod family;
pub mod gee;
pub mod patterns;
pub mod report;
pub mod scalar;

use crate::error::{Error, Result};
use crate::lmm::data::DataFrame;
use crate::lmm::dense::{self, Mat};
use crate::lmm::formula::Formula;
use crate::lmm::{optim, Model};
pub use analyse::{analyse, GlmmOptions};
pub use family::{Family, Link};

/// A GLMM ready to fit.
#[derive(Debug, Clone)]
pub struct Glmm {
    /// Formula, frame (y: the proportion or count) and PLS structure.
    pub model: Model,
    pub family: Family,
    pub link: Link,
    /// Quadrature points (1 = Laplace).
    pub nagq: usize,
    /// Prior weights (binomial trials per row; 1 otherwise).
    pub weights: Vec<f64>,
    /// Whether the response is `cbind(successes, failures)`.
    aggregated: bool,
    // Workspace.
    u: Vec<f64>,
    b: Vec<f64>,
    offset: Vec<f64>,
    eta: Vec<f64>,
    w: Vec<f64>,
    r: Vec<f64>,
    scratch: Vec<f64>,
    beta_work: Vec<f64>,
    beta_old: Vec<f64>,
    nodes: Vec<f64>,
    node_w: Vec<f64>,
    scalar_work: scalar::ScalarWork,
    /// Whether `scalar_work` holds this data's patterns ([`Glmm::glm_start`]).
    patterns_ready: bool,
}

/// A fitted GLMM.
#[derive(Debug, Clone)]
pub struct GlmmFit {
    /// θ: the random effects' relative covariance factor (SDs for scalar terms).
    pub theta: Vec<f64>,
    pub beta: Vec<f64>,
    pub names: Vec<String>,
    /// Covariance of β̂ (p × p, row-major).
    pub vcov: Vec<f64>,
    /// −2 log-likelihood (Laplace or AGQ).
    pub deviance: f64,
    pub n: usize,
    /// Parameters: p + length(θ).
    pub df_model: usize,
    pub singular: bool,
    pub optimizer: optim::OptResult,
    /// Conditional modes b = Λû in the PLS column order.
    pub b: Vec<f64>,
}

impl GlmmFit {
    pub fn se(&self, j: usize) -> f64 {
        let p = self.beta.len();
        self.vcov[j * p + j].sqrt()
    }
    pub fn aic(&self) -> f64 {
        self.deviance + 2.0 * self.df_model as f64
    }
    pub fn bic(&self) -> f64 {
        self.deviance + (self.n as f64).ln() * self.df_model as f64
    }
}

impl Glmm {
    /// Build a GLMM of `formula` on `data`. The response must be 0/1
    /// (binomial) or a non-negative integer count (Poisson).
    pub fn new(
        formula: &str,
        data: &DataFrame,
        family: Family,
        link: Link,
        nagq: usize,
    ) -> Result<Glmm> {
        // `cbind(successes, failures) ~ ...`: the proportion, weighted by the trials.
        let agg = aggregated(formula, data, family)?;
        let (parsed, data) = match &agg {
            Some((f, d, _)) => (Formula::parse(f)?, d),
            None => (Formula::parse(formula)?, data),
        };
        if parsed.offset.is_some() {
            return Err(Error::Usage(
                "offset() is supported for linear mixed models only so far; for a count's exposure in a GLMM, model the rate without it or use an LMM".into(),
            ));
        }
        let mut model = Model::from_formula(&parsed, data, false)?;
        if agg.is_some() {
            model.formula.text = formula.to_string();
        }
        let fr = &model.frame;
        let weights: Vec<f64> = match &agg {
            Some((_, _, totals)) => fr.rows.iter().map(|&i| totals[i]).collect(),
            None => vec![1.0; fr.n],
        };
        check_response(fr, family, agg.is_some(), &parsed.response)?;
        if nagq == 0 || nagq > 100 {
            return Err(Error::Usage(format!(
                "--nagq {nagq}: use 1 (Laplace) to 100 quadrature points"
            )));
        }
        if nagq > 1 && !(fr.terms.len() == 1 && fr.terms[0].k == 1) {
            return Err(Error::Usage(format!(
                "--nagq {nagq} needs a single scalar random effect such as (1|team), as in lme4; this formula has {} random-effect terms{}: use --nagq 1 (Laplace)",
                fr.terms.len(),
                if fr.terms.iter().any(|t| t.k > 1) { " with slopes" } else { "" }
            )));
        }
        check_separation(&model, family)?;
        let n = fr.n;
        let (nodes, node_w) = gauss_hermite(nagq);
        Ok(Glmm {
            weights,
            aggregated: agg.is_some(),
            family,
            link,
            nagq,
            u: vec![0.0; model.pls.q],
            b: Vec::new(),
            offset: vec![0.0; n],
            eta: vec![0.0; n],
            w: vec![0.0; n],
            r: vec![0.0; n],
            scratch: Vec::new(),
            beta_work: Vec::new(),
            beta_old: Vec::new(),
            nodes,
            node_w,
            model,
            scalar_work: scalar::ScalarWork::default(),
            patterns_ready: false,
        })
    }

    /// The GLMM of `formula` on `data` in `slot`: the slot's model given the
    /// new data in place when it has this formula, family and link (a power
    /// run's next replicate reuses the frame's and buffers' allocations),
    /// else built afresh. The checks of [`Glmm::new`] apply either way.
    pub fn update_or_build<'g>(
        slot: &'g mut Option<Glmm>,
        formula: &str,
        data: &DataFrame,
        family: Family,
        link: Link,
    ) -> Result<&'g mut Glmm> {
        let reuse = slot.as_ref().is_some_and(|g| {
            !g.aggregated
                && g.nagq == 1
                && g.family == family
                && g.link == link
                && g.model.formula.text == formula
        });
        if reuse {
            let g = slot.as_mut().expect("checked");
            if let Err(e) = g.update_data(data) {
                *slot = None;
                return Err(e);
            }
        } else {
            *slot = None;
            *slot = Some(Glmm::new(formula, data, family, link, 1)?);
        }
        Ok(slot.as_mut().expect("set above"))
    }

    /// Replace the data of a GLMM without a `cbind` response.
    fn update_data(&mut self, data: &DataFrame) -> Result<()> {
        self.model.update_structure(data)?;
        let fr = &self.model.frame;
        check_response(fr, self.family, false, &self.model.formula.response)?;
        check_separation(&self.model, self.family)?;
        let n = fr.n;
        self.weights.clear();
        self.weights.resize(n, 1.0);
        for v in [&mut self.offset, &mut self.eta, &mut self.w, &mut self.r] {
            v.clear();
            v.resize(n, 0.0);
        }
        self.u.clear();
        self.u.resize(self.model.pls.q, 0.0);
        self.patterns_ready = false;
        Ok(())
    }

    /// η = offset + Z Λ u for the current u and θ.
    fn set_eta(&mut self, theta: &[f64]) {
        let pls = &self.model.pls;
        pls.lambda_times_into(theta, &self.u, &mut self.b);
        self.eta.copy_from_slice(&self.offset);
        for (t, term) in self.model.frame.terms.iter().enumerate() {
            let (qo, _, k, _) = pls.term_layout[t];
            for (i, e) in self.eta.iter_mut().enumerate() {
                let base = qo + term.refs[i] as usize * k;
                for a in 0..k {
                    *e += term.z[i * k + a] * self.b[base + a];
                }
            }
        }
    }

    /// Σ −2 log p(y | μ(η)) at the current η.
    fn cond_dev(&self) -> f64 {
        let y = &self.model.frame.y;
        (0..y.len())
            .map(|i| {
                let mu = self.link.inverse(self.eta[i]);
                self.family.minus_two_loglik(y[i], mu, self.weights[i])
            })
            .sum()
    }

    /// PIRLS for û at (θ, β) from the current u; leaves η at û and the
    /// factor L at û's weights. Returns the Laplace deviance.
    fn pirls(&mut self, theta: &[f64], beta: &[f64]) -> f64 {
        let mut b = std::mem::take(&mut self.beta_work);
        b.clear();
        b.extend_from_slice(beta);
        let d = self.pirls_with(theta, &mut b, false);
        self.beta_work = b;
        d
    }

    /// glmer's first stage (nAGQ = 0): PIRLS over β and u jointly at θ,
    /// from the current (β, u); leaves β in `beta`. Returns the Laplace
    /// deviance at the joint mode.
    fn pirls_joint(&mut self, theta: &[f64], beta: &mut Vec<f64>) -> f64 {
        self.pirls_with(theta, beta, true)
    }

    /// PIRLS for u (and β when `joint`) at θ: Newton steps on the weighted
    /// PLS system, halved until the penalised deviance does not increase,
    /// to convergence at rounding level (the deviance's finite-difference
    /// Hessian, step 1e-4, needs it exact to ~1e-12).
    fn pirls_with(&mut self, theta: &[f64], beta: &mut Vec<f64>, joint: bool) -> f64 {
        self.set_offset(beta);
        self.set_eta(theta);
        let mut obj = self.cond_dev() + sq(&self.u);
        let mut u_old = std::mem::take(&mut self.scratch);
        let mut b_old = std::mem::take(&mut self.beta_old);
        let p = self.model.frame.p;
        for _ in 0..60 {
            self.weights_at_eta();
            if joint {
                // The working response on the whole linear predictor.
                for (r, o) in self.r.iter_mut().zip(&self.offset) {
                    *r += o;
                }
            }
            if !self.factor(theta) {
                obj = f64::INFINITY;
                break;
            }
            u_old.clone_from(&self.u);
            b_old.clone_from(beta);
            let pls = &self.model.pls;
            let (q, m) = (pls.q, p + 1);
            if joint {
                // β from L_XX' β = l_yX.
                let lm = &pls.lm;
                for j in 0..p {
                    beta[j] = lm[p * m + j];
                }
                for j in (0..p).rev() {
                    for k in j + 1..p {
                        beta[j] -= lm[k * m + j] * beta[k];
                    }
                    beta[j] /= lm[j * m + j];
                }
            }
            // u = L⁻ᵀ(c_u − R_ZX β) jointly, or L⁻ᵀ c_u for u alone (the
            // last column of R_ZX is L⁻¹Λ'Z'W r).
            for r in 0..q {
                let row = &pls.rzx[r * m..(r + 1) * m];
                let xb: f64 = if joint {
                    (0..p).map(|j| row[j] * beta[j]).sum()
                } else {
                    0.0
                };
                self.u[r] = row[p] - xb;
            }
            self.model.pls.backward_solve(&mut self.u);
            let mut new_obj = f64::INFINITY;
            for _ in 0..20 {
                if joint {
                    self.set_offset(beta);
                }
                self.set_eta(theta);
                new_obj = self.cond_dev() + sq(&self.u);
                if new_obj <= obj + 1e-10 * (1.0 + obj.abs()) {
                    break;
                }
                halve(&mut self.u, &u_old);
                if joint {
                    halve(beta, &b_old);
                }
            }
            let change = (obj - new_obj).abs();
            obj = new_obj;
            if change <= 1e-14 * (1.0 + obj.abs()) {
                break;
            }
        }
        self.scratch = u_old;
        self.beta_old = b_old;
        if !obj.is_finite() {
            return f64::INFINITY;
        }
        // L at û's weights.
        self.weights_at_eta();
        if !self.factor(theta) {
            return f64::INFINITY;
        }
        obj + self.model.pls.ldl2
    }

    /// The offset Xβ.
    fn set_offset(&mut self, beta: &[f64]) {
        let fr = &self.model.frame;
        let (n, p) = (fr.n, fr.p);
        for i in 0..n {
            self.offset[i] = (0..p).map(|j| fr.x[j * n + i] * beta[j]).sum();
        }
    }

    /// Weights and working response (ZΛu + (y − μ)/μ'(η)) at the current η.
    fn weights_at_eta(&mut self) {
        let y = &self.model.frame.y;
        for i in 0..y.len() {
            let eta = self.eta[i];
            let mu = self.link.inverse(eta);
            let d = self.link.mu_eta(eta);
            self.w[i] = self.weights[i] * d * d / self.family.variance(mu).max(f64::MIN_POSITIVE);
            self.r[i] = (eta - self.offset[i]) + (y[i] - mu) / d;
        }
    }

    fn factor(&mut self, theta: &[f64]) -> bool {
        let m = &mut self.model;
        m.pls
            .set_weighted(&m.frame, &self.w, &self.r, &mut self.scratch)
            && m.pls.factor(theta)
    }

    /// The deviance (Laplace, or AGQ with nAGQ > 1) at x = (θ, β).
    pub fn deviance(&mut self, x: &[f64]) -> f64 {
        let nth = self.model.pls.ntheta;
        let (theta, beta) = x.split_at(nth);
        let lap = self.pirls(theta, beta);
        if self.nagq == 1 || !lap.is_finite() {
            return lap;
        }
        self.agq(theta[0])
    }

    /// Adaptive Gauss–Hermite deviance for one scalar random effect, at
    /// the modes û and factor left by [`Glmm::pirls`].
    fn agq(&mut self, theta: f64) -> f64 {
        let q = self.model.pls.q;
        let fr = &self.model.frame;
        let refs = &fr.terms[0].refs;
        let z = &fr.terms[0].z;
        // g_j(u) = Σ_{i∈j} −2 log p(y_i | offset_i + θ z_i u) + u², at u = û_j + s_j t.
        let g_at = |t: f64, out: &mut Vec<f64>, u: &[f64], scale: &[f64]| {
            out.clear();
            out.extend((0..q).map(|j| {
                let v = u[j] + scale[j] * t;
                v * v
            }));
            for i in 0..fr.n {
                let j = refs[i] as usize;
                let v = u[j] + scale[j] * t;
                let mu = self.link.inverse(self.offset[i] + theta * z[i] * v);
                out[j] += self.family.minus_two_loglik(fr.y[i], mu, self.weights[i]);
            }
        };
        let scale: Vec<f64> = (0..q).map(|j| 1.0 / self.model.pls.l_diag(j)).collect();
        let mut g0 = Vec::with_capacity(q);
        g_at(0.0, &mut g0, &self.u, &scale);
        let mut acc = vec![0.0; q];
        let mut gk = Vec::with_capacity(q);
        for (k, &t) in self.nodes.iter().enumerate() {
            g_at(t, &mut gk, &self.u, &scale);
            for j in 0..q {
                acc[j] += self.node_w[k] * (-0.5 * (gk[j] - g0[j] - t * t)).exp();
            }
        }
        (0..q)
            .map(|j| g0[j] - 2.0 * scale[j].ln() - 2.0 * acc[j].ln())
            .sum()
    }

    /// Fit by maximum likelihood (Laplace or AGQ).
    pub fn fit(&mut self) -> Result<GlmmFit> {
        if self.scalar_applies() {
            let beta0 = self.glm_start()?;
            return self.fit_scalar(&beta0);
        }
        self.fit_general()
    }

    /// [`Glmm::fit`] from a given GLM start `beta0` (the GLM without random
    /// effects, e.g. shared with a GEE fit of the same data); the general
    /// path makes its own.
    pub fn fit_from(&mut self, beta0: &[f64]) -> Result<GlmmFit> {
        if self.scalar_applies() {
            return self.fit_scalar(beta0);
        }
        self.fit_general()
    }

    /// [`Glmm::fit`] by the general path (sparse PIRLS, derivative-free
    /// optimisation, finite-difference Hessian) whatever the model: what
    /// the one-scalar-effect path is checked against.
    pub fn fit_general(&mut self) -> Result<GlmmFit> {
        let nth = self.model.pls.ntheta;
        let p = self.model.frame.p;
        // Stage 1 (glmer's nAGQ = 0): θ alone, β and u jointly by PIRLS,
        // from the GLM; its (θ, β) start the joint optimisation.
        let beta0 = self.glm_start()?;
        let th_lower = self.model.pls.lower.clone();
        let th0 = self.model.theta0();
        let mut beta = beta0.clone();
        let stage1 = optim::minimize(
            |th: &[f64]| {
                beta.clone_from(&beta0);
                self.u.iter_mut().for_each(|v| *v = 0.0);
                self.pirls_joint(th, &mut beta)
            },
            &th0,
            &th_lower,
        );
        let mut x0: Vec<f64> = stage1.x.to_vec();
        beta.clone_from(&beta0);
        self.u.iter_mut().for_each(|v| *v = 0.0);
        let s1 = self.pirls_joint(&x0, &mut beta);
        x0.extend(if s1.is_finite() { &beta } else { &beta0 });
        let mut lower = self.model.pls.lower.clone();
        lower.extend(std::iter::repeat_n(f64::NEG_INFINITY, p));
        let opt = optim::minimize(|x: &[f64]| self.deviance(x), &x0, &lower);
        let xs: Vec<f64> = opt.x.to_vec();
        let deviance = self.deviance(&xs);
        if !deviance.is_finite() {
            return Err(Error::Usage(
                "the GLMM fit failed: the deviance is not finite at the optimum (check the response for separation or extreme counts)".into(),
            ));
        }
        let b = self.b.clone();
        let vcov = self.beta_vcov(&xs, nth, p);
        self.deviance(&xs); // leave the modes at the optimum
        let (theta, beta) = xs.split_at(nth);
        let singular = theta
            .iter()
            .zip(&self.model.pls.lower)
            .any(|(&t, &l)| l == 0.0 && t < crate::lmm::SINGULAR_TOL);
        Ok(GlmmFit {
            theta: theta.to_vec(),
            beta: beta.to_vec(),
            names: self.model.frame.x_names.clone(),
            vcov,
            deviance,
            n: self.model.frame.n,
            df_model: p + nth,
            singular,
            optimizer: opt,
            b,
        })
    }

    /// [`Glmm::fit`] by the one-scalar-effect path ([`scalar`]).
    fn fit_scalar(&mut self, beta0: &[f64]) -> Result<GlmmFit> {
        let mut w = std::mem::take(&mut self.scalar_work);
        let fr = &self.model.frame;
        if !std::mem::take(&mut self.patterns_ready) {
            w.prepare(fr, self.family, &self.weights);
        }
        let fit = scalar::fit(fr, self.family, self.link, beta0, &mut w);
        self.scalar_work = w;
        let fit = fit
            .ok_or_else(|| {
                Error::Usage(
                    "the GLMM fit failed: the deviance is not finite (check the response for separation or extreme counts)".into(),
                )
            })?;
        let p = fr.p;
        let mut x = vec![fit.theta];
        x.extend_from_slice(&fit.beta);
        let mut optimizer = optim::OptResult::given(&x, "newton (analytic gradient and Hessian)");
        optimizer.f = fit.deviance;
        optimizer.evals = fit.evals;
        optimizer.converged = fit.converged;
        Ok(GlmmFit {
            singular: fit.theta < crate::lmm::SINGULAR_TOL,
            theta: vec![fit.theta],
            beta: fit.beta,
            names: fr.x_names.clone(),
            vcov: fit.vcov,
            deviance: fit.deviance,
            n: fr.n,
            df_model: p + 1,
            optimizer,
            b: fit.b,
        })
    }

    /// Starting β: the GLM without random effects (IRLS). When the model
    /// takes the one-scalar-effect path this groups the rows into the
    /// patterns that path works on and fits the GLM on them; a
    /// [`Glmm::fit_from`] that follows (with the frame and weights
    /// unchanged) reuses them.
    pub fn glm_start(&mut self) -> Result<Vec<f64>> {
        if self.scalar_applies() {
            let fr = &self.model.frame;
            self.scalar_work.prepare(fr, self.family, &self.weights);
            self.patterns_ready = true;
            return scalar::glm(&mut self.scalar_work, self.family, self.link, fr.p).ok_or_else(
                || {
                    Error::Usage(
                        "the GLM start for the fixed effects failed: check the response and predictors (separation, or a predictor constant within the data)".into(),
                    )
                },
            );
        }
        glm_irls(&self.model.frame, self.family, self.link, &self.weights)
    }

    /// The rows grouped into patterns by the clusters of random-effects
    /// term `term`: those of the last [`Glmm::glm_start`], while a fit has
    /// not used them (None otherwise, or for another term).
    pub fn patterns(&self, term: usize) -> Option<&patterns::Patterns> {
        (self.patterns_ready && term == 0).then(|| self.scalar_work.patterns())
    }

    /// Whether [`Glmm::fit`] takes the one-scalar-effect path.
    fn scalar_applies(&self) -> bool {
        self.nagq == 1 && scalar::applies(&self.model.frame, self.family, self.link)
    }

    /// 2·H⁻¹ restricted to β, H the central-difference Hessian of the
    /// deviance in (θ, β) with step 1e-4 (as lme4's `deriv12`).
    pub fn beta_vcov(&mut self, x: &[f64], nth: usize, p: usize) -> Vec<f64> {
        let d = x.len();
        let h = 1e-4;
        let f0 = self.deviance(x);
        let mut xp = x.to_vec();
        let mut hess = Mat::zeros(d, d);
        let mut fpl = vec![0.0; d];
        let mut fmi = vec![0.0; d];
        for i in 0..d {
            xp[i] = x[i] + h;
            fpl[i] = self.deviance(&xp);
            xp[i] = x[i] - h;
            fmi[i] = self.deviance(&xp);
            xp[i] = x[i];
            hess[(i, i)] = (fpl[i] - 2.0 * f0 + fmi[i]) / (h * h);
        }
        for i in 0..d {
            for j in 0..i {
                let mut f = [0.0; 4];
                for (k, (si, sj)) in [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)]
                    .iter()
                    .enumerate()
                {
                    xp[i] = x[i] + si * h;
                    xp[j] = x[j] + sj * h;
                    f[k] = self.deviance(&xp);
                }
                xp[i] = x[i];
                xp[j] = x[j];
                let v = (f[0] - f[1] - f[2] + f[3]) / (4.0 * h * h);
                hess[(i, j)] = v;
                hess[(j, i)] = v;
            }
        }
        let (mut vals, mut vecs, mut inv) = (Vec::new(), Mat::default(), Mat::default());
        dense::sym_eigen(&mut hess, &mut vals, &mut vecs);
        dense::spectral_sum(&vals, &vecs, &mut inv, |ev| ev != 0.0, |ev| 2.0 / ev);
        let mut out = vec![0.0; p * p];
        for a in 0..p {
            for b in 0..p {
                out[a * p + b] = 0.5 * (inv[(nth + a, nth + b)] + inv[(nth + b, nth + a)]);
            }
        }
        out
    }
}

/// For `cbind(s, f) ~ rhs` (binomial only): the formula on a proportion
/// column, the data with that column added (`s/(s+f)`, missing where
/// s + f = 0), and each data row's trials s + f.
fn aggregated(
    formula: &str,
    data: &DataFrame,
    family: Family,
) -> Result<Option<(String, DataFrame, Vec<f64>)>> {
    let text = formula.trim_start();
    let Some(rest) = text.strip_prefix("cbind(") else {
        return Ok(None);
    };
    let bad = || {
        Error::Usage(format!(
            "`{formula}`: write an aggregated binomial response as cbind(successes, failures) ~ ..., with two numeric columns"
        ))
    };
    let close = rest.find(')').ok_or_else(bad)?;
    let (inner, rhs) = (&rest[..close], rest[close + 1..].trim_start());
    let rhs = rhs.strip_prefix('~').ok_or_else(bad)?;
    let names: Vec<&str> = inner.split(',').map(str::trim).collect();
    if names.len() != 2 || names.iter().any(|n| n.is_empty()) {
        return Err(bad());
    }
    if family != Family::Binomial {
        return Err(Error::Usage(format!(
            "cbind(successes, failures) is a binomial response: use --family binomial (got {})",
            family.name()
        )));
    }
    let col = |name: &str| -> Result<&[f64]> {
        match &data.column(name)?.data {
            crate::lmm::data::ColumnData::Numeric(v) => Ok(v),
            _ => Err(Error::Usage(format!(
                "cbind(): column `{name}` must be numeric (counts)"
            ))),
        }
    };
    let (s, f) = (col(names[0])?, col(names[1])?);
    let mut prop = Vec::with_capacity(s.len());
    let mut totals = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let (a, b) = (s[i], f[i]);
        if a.is_nan() || b.is_nan() {
            prop.push(f64::NAN);
            totals.push(0.0);
            continue;
        }
        if !(a >= 0.0 && b >= 0.0 && a.fract() == 0.0 && b.fract() == 0.0 && a + b < 9.0e15) {
            return Err(Error::Usage(format!(
                "cbind({}, {}): data row {} (CSV line {}) has {a} and {b}; both must be non-negative whole numbers",
                names[0],
                names[1],
                i + 1,
                i + 2
            )));
        }
        totals.push(a + b);
        prop.push(if a + b > 0.0 { a / (a + b) } else { f64::NAN });
    }
    let name = ".cbind_proportion";
    let mut d = data.clone();
    d.columns
        .push(crate::lmm::data::Column::numeric(name, prop));
    let d = DataFrame::from_columns(d.columns)?;
    Ok(Some((format!("{name} ~{rhs}"), d, totals)))
}

/// The GLM fit without random effects, by IRLS (prior weights `weights`).
pub fn glm_irls(
    fr: &crate::lmm::frame::ModelFrame,
    family: Family,
    link: Link,
    weights: &[f64],
) -> Result<Vec<f64>> {
    let (n, p) = (fr.n, fr.p);
    let mean = fr.y.iter().sum::<f64>() / n as f64;
    let mut beta = vec![0.0; p];
    let mut eta = vec![link_of(link, family, mean); n];
    let mut ols = crate::stats::Ols::default();
    let mut wx: Vec<Vec<f64>> = vec![vec![0.0; n]; p];
    let mut wz = vec![0.0; n];
    for _ in 0..25 {
        for i in 0..n {
            let mu = link.inverse(eta[i]);
            let d = link.mu_eta(eta[i]);
            let w = (weights[i] * d * d / family.variance(mu)).sqrt();
            let zi = eta[i] + (fr.y[i] - mu) / d;
            wz[i] = w * zi;
            for j in 0..p {
                wx[j][i] = w * fr.x[j * n + i];
            }
        }
        let cols: Vec<&[f64]> = wx.iter().map(|v| v.as_slice()).collect();
        if !ols.fit(&cols, &wz) {
            break;
        }
        let nb = ols.beta();
        let change = nb
            .iter()
            .zip(&beta)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        beta.copy_from_slice(nb);
        for (i, e) in eta.iter_mut().enumerate() {
            *e = (0..p).map(|j| fr.x[j * n + i] * beta[j]).sum();
        }
        if change < 1e-10 {
            break;
        }
    }
    if beta.iter().any(|b| !b.is_finite()) {
        return Err(Error::Usage(
            "the GLM start for the fixed effects failed: check the response and predictors".into(),
        ));
    }
    Ok(beta)
}
pub(crate) fn link_of(link: Link, family: Family, mu: f64) -> f64 {
    let mu = mu.clamp(
        1e-6,
        if family == Family::Binomial {
            1.0 - 1e-6
        } else {
            f64::MAX
        },
    );
    match link {
        Link::Logit => (mu / (1.0 - mu)).ln(),
        Link::Probit => crate::stats::normal_quantile(mu),
        Link::Log => mu.ln(),
    }
}

/// v ← (v + old)/2.
fn halve(v: &mut [f64], old: &[f64]) {
    for (x, &o) in v.iter_mut().zip(old) {
        *x = 0.5 * (*x + o);
    }
}

fn sq(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum()
}

/// Gauss–Hermite nodes and weights for the standard normal density
/// (Σ w_k f(z_k) ≈ E f(Z)), by Golub–Welsch: the eigenvalues of the Jacobi
/// matrix of the probabilists' Hermite polynomials, and the squared first
/// components of its eigenvectors (nalgebra's symmetric QR; the 48-point
/// rule of the moment integrals costs well under a millisecond).
pub fn gauss_hermite(n: usize) -> (Vec<f64>, Vec<f64>) {
    if n <= 1 {
        return (vec![0.0], vec![1.0]);
    }
    let j = nalgebra::DMatrix::from_fn(n, n, |r, c| {
        if r + 1 == c || c + 1 == r {
            (r.max(c) as f64).sqrt()
        } else {
            0.0
        }
    });
    let eig = nalgebra::SymmetricEigen::new(j);
    let mut pairs: Vec<(f64, f64)> = (0..n)
        .map(|k| (eig.eigenvalues[k], eig.eigenvectors[(0, k)].powi(2)))
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    pairs.into_iter().unzip()
}

/// The response is 0/1 (a proportion with `cbind`) for binomial, a count
/// for Poisson; else one line naming the data row.
fn check_response(
    fr: &crate::lmm::frame::ModelFrame,
    family: Family,
    aggregated: bool,
    response: &str,
) -> Result<()> {
    let ok = |y: f64| match family {
        Family::Binomial if aggregated => (0.0..=1.0).contains(&y),
        // Without short-circuits: a random 0/1 response would make every
        // other branch a misprediction.
        Family::Binomial => (y == 0.0) | (y == 1.0),
        Family::Poisson => y >= 0.0 && y.fract() == 0.0 && y < 9.0e15,
    };
    if fr.y.iter().fold(true, |all, &y| all & ok(y)) {
        return Ok(());
    }
    for (k, &y) in fr.y.iter().enumerate() {
        if !ok(y) {
            let what = match family {
                Family::Binomial => "0 or 1 for --family binomial",
                Family::Poisson => "a non-negative whole number (a count) for --family poisson",
            };
            return Err(Error::Usage(format!(
                "the response `{response}` is {y} in data row {} (CSV line {}): it must be {what}",
                fr.rows[k] + 1,
                fr.rows[k] + 2
            )));
        }
    }
    Ok(())
}

/// Complete separation by a single fixed-effect column: a binary response
/// that a 0/1 indicator column predicts perfectly (every row with the
/// indicator has the same response, and it differs from... ) makes the
/// estimate infinite. Reported by name.
fn check_separation(model: &Model, family: Family) -> Result<()> {
    if family != Family::Binomial {
        return Ok(());
    }
    let fr = &model.frame;
    let n = fr.n;
    for j in 0..fr.p {
        if fr.x_names[j] == "(Intercept)" {
            continue;
        }
        // Whether the column is an indicator, and the response among rows
        // with it set: one pass without branches.
        let col = &fr.x[j * n..(j + 1) * n];
        let (mut indicator, mut ones, mut total) = (true, 0.0, 0.0);
        for (&v, &y) in col.iter().zip(&fr.y) {
            indicator &= (v == 0.0) | (v == 1.0);
            total += v;
            ones += v * y;
        }
        if indicator && total > 0.0 && (ones == 0.0 || ones == total) {
            return Err(Error::Usage(format!(
                "complete separation: every one of the {total} rows with `{}` = 1 has response {}, so its coefficient is infinite; combine levels, drop the term, or use a penalised model",
                fr.x_names[j],
                if ones == 0.0 { 0 } else { 1 }
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::gauss_hermite;

    /// An n-point rule integrates polynomials of degree 2n − 1 exactly:
    /// E Z^{2k} = (2k − 1)!! and odd moments 0, and the weights sum to 1.
    #[test]
    fn gauss_hermite_integrates_normal_moments() {
        for n in [2usize, 5, 20, 48] {
            let (z, w) = gauss_hermite(n);
            assert_eq!(z.len(), n);
            assert!(z.windows(2).all(|p| p[0] < p[1]), "nodes sorted");
            let mut double_factorial = 1.0;
            for k in 0..n.min(12) {
                let even: f64 = z
                    .iter()
                    .zip(&w)
                    .map(|(z, w)| w * z.powi(2 * k as i32))
                    .sum();
                let odd: f64 = z
                    .iter()
                    .zip(&w)
                    .map(|(z, w)| w * z.powi(2 * k as i32 + 1))
                    .sum();
                assert!(
                    (even / double_factorial - 1.0).abs() < 1e-11,
                    "n = {n}: E Z^{} = {even}, not {double_factorial}",
                    2 * k
                );
                assert!(
                    odd.abs() < 1e-9 * double_factorial.max(1.0),
                    "n = {n}: odd moment {odd}"
                );
                double_factorial *= (2 * k + 1) as f64;
            }
        }
    }
}
