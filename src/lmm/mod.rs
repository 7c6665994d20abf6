//! Linear mixed models in lme4 syntax, fitted by REML or ML through the
//! profiled deviance in θ (Bates et al. 2015), with Satterthwaite,
//! Kenward–Roger, between-within and residual inference.
//!
//! Pipeline (as lme4's): [`formula`] → [`frame`] (model frame, X, Z terms) →
//! [`pls`] (blocked/sparse PLS system and profiled deviance) → [`optim`] →
//! [`Fit`] (estimates, variance components, BLUPs) → [`inference`].
//!
//! A [`Model`] is built once per design and can be refitted with new
//! responses ([`Model::set_response`]), which reuses all symbolic structure.

pub mod anova;
pub mod data;
pub mod dense;
pub mod formula;
pub mod frame;
pub mod inference;
pub mod numeric_df;
pub mod optim;
pub mod pls;
pub mod profile;
pub mod report;
pub mod transform;

use crate::error::{Error, Result};
use data::DataFrame;
use formula::Formula;
use frame::ModelFrame;
use pls::Pls;

/// lme4's `isSingular` tolerance on θ's diagonal.
pub const SINGULAR_TOL: f64 = 1e-4;

/// A model ready to fit: formula, model frame and PLS structure.
#[derive(Debug, Clone)]
pub struct Model {
    pub formula: Formula,
    pub frame: ModelFrame,
    pub pls: Pls,
    /// REML (true) or ML.
    pub reml: bool,
    /// Scratch for [`Model::fit_at_into`].
    scratch: Vec<f64>,
}

/// A fitted linear mixed model.
#[derive(Debug, Clone, Default)]
pub struct Fit {
    pub reml: bool,
    /// Relative covariance parameters (lme4's θ).
    pub theta: Vec<f64>,
    /// Fixed-effect estimates.
    pub beta: Vec<f64>,
    /// Fixed-effect names.
    pub names: Vec<String>,
    /// Covariance matrix of β̂ (p × p, row-major).
    pub vcov: Vec<f64>,
    /// Residual SD σ.
    pub sigma: f64,
    /// REML criterion (REML) or deviance (ML): −2 log-likelihood.
    pub objective: f64,
    /// Number of parameters (p + length(θ) + 1).
    pub df_model: usize,
    /// Observations used.
    pub n: usize,
    /// Whether a variance sits on the boundary (θ_diag < 1e-4).
    pub singular: bool,
    /// Optimiser diagnostics.
    pub optimizer: optim::OptResult,
    /// Conditional modes b = Λu in the PLS column order.
    pub b: Vec<f64>,
}

impl Fit {
    /// Log-likelihood (REML or ML).
    pub fn loglik(&self) -> f64 {
        -0.5 * self.objective
    }
    /// AIC = objective + 2·df.
    pub fn aic(&self) -> f64 {
        self.objective + 2.0 * self.df_model as f64
    }
    /// BIC = objective + log(n)·df.
    pub fn bic(&self) -> f64 {
        self.objective + (self.n as f64).ln() * self.df_model as f64
    }
    /// Standard error of coefficient j.
    pub fn se(&self, j: usize) -> f64 {
        let p = self.beta.len();
        self.vcov[j * p + j].sqrt()
    }
}

/// Conditional modes of one grouping factor: (name, column names, [(level, values)]).
pub type Ranef = (String, Vec<String>, Vec<(String, Vec<f64>)>);

/// One row of the variance-component table (as lme4's `VarCorr`).
#[derive(Debug, Clone, PartialEq)]
pub struct VarComp {
    pub group: String,
    pub term1: Option<String>,
    pub term2: Option<String>,
    /// Variance or covariance.
    pub vcov: f64,
    /// SD or correlation.
    pub sdcor: f64,
}

impl Model {
    /// Build a model from a formula and data.
    pub fn new(formula: &str, data: &DataFrame, reml: bool) -> Result<Model> {
        Self::from_formula(&Formula::parse(formula)?, data, reml)
    }

    /// Build a model from an already parsed formula (a power loop parses once).
    pub fn from_formula(formula: &Formula, data: &DataFrame, reml: bool) -> Result<Model> {
        let formula = formula.clone();
        let frame = ModelFrame::new(&formula, data)?;
        let pls = Pls::new(&frame);
        Ok(Model {
            formula,
            frame,
            pls,
            reml,
            scratch: Vec::new(),
        })
    }

    /// Refit-ready model for a new data set with the same formula: the
    /// frame is refilled in place when the data have the same structure
    /// ([`ModelFrame::refill`]), and the sparse structure is kept when the
    /// grouping codes are (or, for a single random intercept, refreshed in
    /// place); otherwise this is [`Model::from_formula`]. Either way the
    /// model is exactly the one `from_formula` would build. On error the
    /// model must be updated again (or rebuilt) before it is used.
    pub fn update_data(&mut self, data: &DataFrame) -> Result<()> {
        self.update(data, true)
    }

    /// [`Model::update_data`] for a GLMM: the frame and the PLS structure
    /// for the new data, without the unweighted cross-products (X'X, Z'X,
    /// Z'y) an LMM factors. A GLMM never uses them: each of its
    /// factorisations installs weighted ones first ([`Pls::set_weighted`]).
    pub fn update_structure(&mut self, data: &DataFrame) -> Result<()> {
        self.update(data, false)
    }

    /// [`Model::update_data`], the unweighted cross-products only when
    /// `products`.
    fn update(&mut self, data: &DataFrame, products: bool) -> Result<()> {
        match self.frame.refill(&self.formula, data) {
            frame::Refilled::SameGroups => {
                if products {
                    self.pls.set_design(&self.frame);
                }
                return Ok(());
            }
            frame::Refilled::NewGroups => {
                let refreshed = self.pls.refresh_single_scalar_structure(&self.frame)
                    || self.pls.refresh_structure(&self.frame);
                if !refreshed {
                    self.pls = Pls::new(&self.frame);
                } else if products {
                    self.pls.set_design(&self.frame);
                }
                return Ok(());
            }
            frame::Refilled::No => {}
        }
        self.frame = ModelFrame::build(&self.formula, data, None)?;
        self.pls = Pls::new(&self.frame);
        Ok(())
    }

    /// The REML model of `formula` on `data` in `slot`: the slot's model
    /// updated in place when it has this formula ([`Model::update_data`]),
    /// else built afresh. None when the data cannot be modelled.
    pub fn update_or_build<'m>(
        slot: &'m mut Option<Model>,
        formula: &Formula,
        data: &DataFrame,
    ) -> Option<&'m mut Model> {
        match slot.as_mut().filter(|m| m.formula == *formula && m.reml) {
            Some(m) => m.update_data(data).ok()?,
            None => *slot = Some(Model::from_formula(formula, data, true).ok()?),
        }
        slot.as_mut()
    }

    /// Replace the response (same rows and design), e.g. a simulated outcome.
    pub fn set_response(&mut self, y: &[f64]) -> Result<()> {
        if y.len() != self.frame.n {
            return Err(Error::Usage(format!(
                "new response has {} values, the model has {} rows",
                y.len(),
                self.frame.n
            )));
        }
        self.frame.y.copy_from_slice(y);
        self.pls.set_response(&self.frame, y);
        Ok(())
    }

    /// lme4's starting value: 1 on T's diagonals, 0 below.
    pub fn theta0(&self) -> Vec<f64> {
        self.theta0_small().to_vec()
    }

    fn theta0_small(&self) -> optim::ThetaVec {
        self.pls
            .lower
            .iter()
            .map(|&l| if l == 0.0 { 1.0 } else { 0.0 })
            .collect()
    }

    /// Fit by REML or ML.
    pub fn fit(&mut self) -> Fit {
        let mut fit = Fit::default();
        self.fit_into(&mut fit);
        fit
    }

    /// [`Model::fit`] into a reused `Fit` (a power loop allocates nothing
    /// here once the shapes have been seen).
    pub fn fit_into(&mut self, fit: &mut Fit) {
        let reml = self.reml;
        let x0 = self.theta0_small();
        let lower = std::mem::take(&mut self.pls.lower);
        let pls = &mut self.pls;
        let opt = optim::minimize(|th: &[f64]| pls.objective(th, reml), &x0, &lower);
        self.pls.lower = lower;
        self.fit_at_into(opt, fit);
    }

    /// Build the fitted object at the optimiser's result.
    pub fn fit_at(&mut self, opt: optim::OptResult) -> Fit {
        let mut fit = Fit::default();
        self.fit_at_into(opt, &mut fit);
        fit
    }

    /// [`Model::fit_at`] into a reused `Fit`.
    pub fn fit_at_into(&mut self, opt: optim::OptResult, fit: &mut Fit) {
        fit.theta.clear();
        fit.theta.extend_from_slice(&opt.x);
        let objective = self.pls.objective(&fit.theta, self.reml);
        let (p, m, q) = (self.pls.p, self.pls.p + 1, self.pls.q);
        let lm = &self.pls.lm;
        // β from L_XX' β = l_yX.
        let beta = &mut fit.beta;
        beta.clear();
        beta.extend((0..p).map(|j| lm[p * m + j]));
        for j in (0..p).rev() {
            for k in j + 1..p {
                beta[j] -= lm[k * m + j] * beta[k];
            }
            beta[j] /= lm[j * m + j];
        }
        let n = self.frame.n as f64;
        let sigma2 = self.pls.pwrss / if self.reml { n - p as f64 } else { n };
        // vcov = σ² (L_XX L_XX')⁻¹ = σ² L⁻ᵀ L⁻¹: L⁻¹, then its scaled
        // cross-product.
        let linv = &mut self.scratch;
        self.pls.lx_inverse_into(linv);
        fit.vcov.clear();
        for a in 0..p {
            for b in 0..p {
                let s: f64 = (0..p).map(|k| linv[k * p + a] * linv[k * p + b]).sum();
                fit.vcov.push(sigma2 * s);
            }
        }
        // u = L⁻ᵀ (c_u − R_ZX β), b = Λ u.
        let u = &mut self.scratch;
        u.clear();
        u.extend((0..q).map(|r| {
            let row = &self.pls.rzx[r * m..(r + 1) * m];
            row[p] - (0..p).map(|j| row[j] * fit.beta[j]).sum::<f64>()
        }));
        self.pls.backward_solve(u);
        self.pls.lambda_times_into(&fit.theta, u, &mut fit.b);
        fit.singular = fit
            .theta
            .iter()
            .zip(&self.pls.lower)
            .any(|(&t, &l)| l == 0.0 && t < SINGULAR_TOL);
        fit.reml = self.reml;
        fit.df_model = p + fit.theta.len() + 1;
        fit.names.clone_from(&self.frame.x_names);
        fit.sigma = sigma2.sqrt();
        fit.objective = objective;
        fit.n = self.frame.n;
        fit.optimizer = opt;
    }

    /// Variance components in lme4's `as.data.frame(VarCorr())` order: per
    /// term, variances then covariances; the residual last.
    pub fn varcorr(&self, fit: &Fit) -> Vec<VarComp> {
        let mut out = Vec::new();
        let s2 = fit.sigma * fit.sigma;
        let mut seen: Vec<&str> = Vec::new();
        for (t, term) in self.frame.terms.iter().enumerate() {
            let (_, to, k, _) = self.pls.term_layout[t];
            let cov = term_cov(&fit.theta[to..to + k * (k + 1) / 2], k, s2);
            // lme4 names a repeated grouping factor `g.1`, `g.2`, ...
            let dup = seen.iter().filter(|g| **g == term.group.as_str()).count();
            seen.push(term.group.as_str());
            let gname = if dup == 0 {
                term.group.clone()
            } else {
                format!("{}.{dup}", term.group)
            };
            for a in 0..k {
                out.push(VarComp {
                    group: gname.clone(),
                    term1: Some(term.col_names[a].clone()),
                    term2: None,
                    vcov: cov[a * k + a],
                    sdcor: cov[a * k + a].sqrt(),
                });
            }
            for a in 0..k {
                for c in a + 1..k {
                    let v = cov[c * k + a];
                    let denom = (cov[a * k + a] * cov[c * k + c]).sqrt();
                    out.push(VarComp {
                        group: gname.clone(),
                        term1: Some(term.col_names[a].clone()),
                        term2: Some(term.col_names[c].clone()),
                        vcov: v,
                        sdcor: if denom > 0.0 { v / denom } else { f64::NAN },
                    });
                }
            }
        }
        out.push(VarComp {
            group: "Residual".into(),
            term1: None,
            term2: None,
            vcov: s2,
            sdcor: fit.sigma,
        });
        out
    }

    /// Conditional modes per grouping factor: (group name, column names,
    /// [(level, values)]). Terms sharing a grouping factor are merged, as
    /// lme4's `ranef` does.
    pub fn ranef(&self, fit: &Fit) -> Vec<Ranef> {
        let mut out: Vec<Ranef> = Vec::new();
        for (t, term) in self.frame.terms.iter().enumerate() {
            let (qo, _, k, nl) = self.pls.term_layout[t];
            let levels: Vec<(String, Vec<f64>)> = (0..nl)
                .map(|g| {
                    (
                        term.levels.name(g).to_string(),
                        fit.b[qo + g * k..qo + (g + 1) * k].to_vec(),
                    )
                })
                .collect();
            if let Some(e) = out.iter_mut().find(|e| e.0 == term.group) {
                e.1.extend(term.col_names.iter().cloned());
                for ((_, vals), (_, more)) in e.2.iter_mut().zip(levels) {
                    vals.extend(more);
                }
            } else {
                out.push((term.group.clone(), term.col_names.clone(), levels));
            }
        }
        out
    }

    /// Number of levels of each grouping factor, in term order.
    pub fn n_groups(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = Vec::new();
        for t in &self.frame.terms {
            if !v.iter().any(|(g, _)| g == &t.group) {
                v.push((t.group.clone(), t.nlevels()));
            }
        }
        v
    }
}

/// σ² T T' for one term (k × k, row-major) from its θ entries.
pub fn term_cov(theta: &[f64], k: usize, s2: f64) -> Vec<f64> {
    // T' (row-major): row a holds T's column a; then T T' = (T')'(T').
    let mut tt = vec![0.0; k * k];
    for a in 0..k {
        for c in a..k {
            tt[a * k + c] = theta[pls::tri(k, c, a)];
        }
    }
    scaled_crossprod(&tt, k, s2)
}

/// s2 · M'M for a row-major n × n matrix M.
fn scaled_crossprod(m: &[f64], n: usize, s2: f64) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for a in 0..n {
        for b in 0..n {
            let s: f64 = (0..n).map(|k| m[k * n + a] * m[k * n + b]).sum();
            out[a * n + b] = s2 * s;
        }
    }
    out
}

/// A complete analysis: the model, its fit, coefficient tests and an optional LRT.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub model: Model,
    pub fit: Fit,
    pub tests: inference::CoefTests,
    /// (null formula, test) when a likelihood-ratio test was requested.
    pub lrt: Option<(String, inference::Lrt)>,
}

/// The most random-effect levels (columns) in one connected block, above
/// which [`analyse`] refuses Kenward–Roger's df.
pub const KR_MAX_BLOCK: usize = 1500;

/// The number of columns of the largest connected block of the random
/// effects (see [`Pls::components`]).
pub fn largest_block(pls: &Pls) -> usize {
    let (ptr, _) = pls.components();
    ptr.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

/// Fit `formula` to `data` (REML unless `ml`), with the coefficient tests
/// `tests` asks for (z and residual-df tests always) and, if `null_formula`
/// is given, an ML likelihood-ratio test against it. Kenward–Roger's df
/// are refused (one line) for one block of more than [`KR_MAX_BLOCK`]
/// crossed levels.
pub fn analyse(
    data: &DataFrame,
    formula: &str,
    ml: bool,
    null_formula: Option<&str>,
    tests: inference::TestOptions,
    contrasts: formula::Contrasts,
) -> Result<Analysis> {
    // A response of extreme magnitude (its squares overflow or underflow)
    // is fitted in units of a power of two, which is exact, and the results
    // are returned in the original units.
    let mut parsed = Formula::parse(formula)?;
    parsed.contrasts = contrasts;
    let scale = response_scale(data, &parsed.response);
    let scaled;
    let data = if scale == 1.0 {
        data
    } else {
        let mut d = data.clone();
        if let data::ColumnData::Numeric(v) = &data.column(&parsed.response)?.data {
            d.set_numeric(&parsed.response, v.iter().map(|v| v * scale).collect())?;
        }
        scaled = d;
        &scaled
    };
    let mut model = Model::from_formula(&parsed, data, !ml)?;
    let block = largest_block(&model.pls);
    if tests.kenward_roger && !ml && block > KR_MAX_BLOCK {
        return Err(Error::Usage(format!(
            "--df kenward-roger: the random effects form one block of {block} crossed levels, and Kenward-Roger's df need dense matrices over the whole block (cost growing with its cube; above {KR_MAX_BLOCK} levels, minutes to hours): use --df satterthwaite (the default), which works on the sparse factor"
        )));
    }
    let mut fit = model.fit();
    if !(fit.objective.is_finite() && fit.sigma.is_finite() && fit.sigma > 0.0) {
        return Err(Error::Usage(format!(
            "the fit failed: the {} criterion at the optimum is {} and the residual SD {}; check the response `{}` for extreme values",
            if ml { "ML" } else { "REML" },
            fit.objective,
            fit.sigma,
            parsed.response
        )));
    }
    // An exact fit (residual SD a millionth of the response's) leaves
    // nothing to infer from: the model has as many parameters as the data
    // can carry.
    let y = &model.frame.y;
    let ybar = y.iter().sum::<f64>() / y.len() as f64;
    let sd_y = (y.iter().map(|v| (v - ybar).powi(2)).sum::<f64>() / y.len() as f64).sqrt();
    if fit.sigma < 1e-6 * sd_y {
        return Err(Error::Usage(format!(
            "the model fits the response `{}` exactly (residual SD {:.2e}, the response's SD {:.3}) on {} rows: there is nothing left to estimate the variances and tests from; use fewer parameters or more data",
            parsed.response,
            fit.sigma / scale,
            sd_y / scale,
            y.len()
        )));
    }
    let mut tests = inference::coef_tests_with(&model, &fit, tests);
    if scale != 1.0 {
        unscale(&mut fit, &mut tests, &model, scale);
        let s2 = fit.sigma * fit.sigma;
        let representable = fit.objective.is_finite()
            && s2.is_normal()
            && fit.vcov.iter().all(|v| v.is_finite())
            && model.varcorr(&fit).iter().all(|v| v.vcov.is_finite());
        if !representable {
            return Err(Error::Usage(format!(
                "the response `{}` is on a scale (largest |value| about 2^{}) whose variances a double cannot hold (beyond 1e308 or below 1e-308); rescale it (e.g. divide by 1e150 or multiply by 1e150) and fit again",
                parsed.response,
                -(scale.log2() as i64)
            )));
        }
    }
    let lrt = match null_formula {
        None => None,
        Some(nf) => {
            let mut nullf = Formula::parse(nf)?;
            nullf.contrasts = contrasts;
            let mut null = Model::from_formula(&nullf, data, false)?;
            check_nested(&null, &model)?;
            let f0 = null.fit();
            // Both by ML, as lme4's anova() refits REML models.
            let f1 = if ml {
                fit.clone()
            } else {
                let mut alt = model.clone();
                alt.reml = false;
                alt.fit()
            };
            Some((nf.to_string(), inference::lrt(&f0, &f1)))
        }
    };
    Ok(Analysis {
        model,
        fit,
        tests,
        lrt,
    })
}

/// The power of two by which a response is rescaled before fitting: 1
/// unless its largest magnitude is beyond 2^±200 (where sums of squares over
/// many rows leave the range of a double).
fn response_scale(data: &DataFrame, response: &str) -> f64 {
    let Ok(col) = data.column(response) else {
        return 1.0;
    };
    let data::ColumnData::Numeric(v) = &col.data else {
        return 1.0;
    };
    let m = v
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0f64, |a, x| a.max(x.abs()));
    if m == 0.0 || (2f64.powi(-200)..=2f64.powi(200)).contains(&m) {
        return 1.0;
    }
    2f64.powi(-(m.log2().round() as i32))
}

/// Return a fit made on y·scale to y's units: β, its covariance, σ, the
/// conditional modes, the criterion (+2(n−p)·ln(1/scale) for REML, +2n·ln
/// for ML) and the Kenward–Roger SEs; θ, t, df and p do not change.
fn unscale(fit: &mut Fit, tests: &mut inference::CoefTests, model: &Model, scale: f64) {
    let c = 1.0 / scale;
    fit.beta.iter_mut().for_each(|b| *b *= c);
    fit.vcov.iter_mut().for_each(|v| *v *= c * c);
    fit.b.iter_mut().for_each(|b| *b *= c);
    fit.sigma *= c;
    let dof = if fit.reml {
        fit.n - model.frame.p
    } else {
        fit.n
    };
    fit.objective += 2.0 * dof as f64 * c.ln();
    tests.se_kenward_roger.iter_mut().for_each(|s| *s *= c);
}

/// Check that `null` is nested in `alt`: same rows, its fixed-effect columns
/// and random-effects terms a subset of the alternative's, fewer parameters.
pub fn check_nested(null: &Model, alt: &Model) -> Result<()> {
    let nf = &null.formula.text;
    if null.frame.rows != alt.frame.rows {
        return Err(Error::Usage(format!(
            "--lrt: the null model `{nf}` uses {} rows and the model {} (missing values differ); fit both to the same rows",
            null.frame.n, alt.frame.n
        )));
    }
    if null.frame.response != alt.frame.response {
        return Err(Error::Usage(format!(
            "--lrt: the null model `{nf}` has response `{}`, the model `{}`",
            null.frame.response, alt.frame.response
        )));
    }
    for c in &null.frame.x_names {
        if !alt.frame.x_names.contains(c) {
            return Err(Error::Usage(format!(
                "--lrt: the null model `{nf}` is not nested in the model: its fixed effect `{c}` is not in the model"
            )));
        }
    }
    for t in &null.frame.terms {
        let inside = alt.frame.terms.iter().any(|a| {
            a.group == t.group
                && (a.spec.intercept || !t.spec.intercept)
                && t.spec.slopes.iter().all(|s| a.spec.slopes.contains(s))
        });
        if !inside {
            return Err(Error::Usage(format!(
                "--lrt: the null model `{nf}` is not nested in the model: its random term for `{}` is not in the model",
                t.group
            )));
        }
    }
    let np0 = null.frame.p + null.pls.ntheta;
    let np1 = alt.frame.p + alt.pls.ntheta;
    if np0 >= np1 {
        return Err(Error::Usage(format!(
            "--lrt: the null model `{nf}` has {np0} parameters, not fewer than the model's {np1}: it is not a nested sub-model"
        )));
    }
    Ok(())
}
