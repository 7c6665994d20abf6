//! Outcome families and links of a GLMM: the conditional log-likelihood of
//! one observation, the inverse link and its derivative, and the variance.

/// The outcome family (with its canonical link unless stated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Binomial: a proportion of `n` trials (n = 1 for a 0/1 response).
    Binomial,
    /// Poisson counts.
    Poisson,
}

/// The link function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Logit,
    Probit,
    Log,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Binomial => "binomial",
            Family::Poisson => "poisson",
        }
    }

    /// The canonical link.
    pub fn canonical(self) -> Link {
        match self {
            Family::Binomial => Link::Logit,
            Family::Poisson => Link::Log,
        }
    }

    /// Variance function V(μ) (per trial for the binomial).
    pub fn variance(self, mu: f64) -> f64 {
        match self {
            Family::Binomial => mu * (1.0 - mu),
            Family::Poisson => mu,
        }
    }

    /// −2 log p(y | μ) for one observation with prior weight `n` (binomial
    /// trials; 1 for Poisson), y the proportion (binomial) or count.
    pub fn minus_two_loglik(self, y: f64, mu: f64, n: f64) -> f64 {
        match self {
            Family::Binomial => {
                let s = (n * y).round();
                let f = n - s;
                let mut ll = ln_choose(n, s);
                if s > 0.0 {
                    ll += s * mu.ln();
                }
                if f > 0.0 {
                    ll += f * (1.0 - mu).ln();
                }
                -2.0 * ll
            }
            Family::Poisson => {
                let mut ll = -mu - ln_gamma(y + 1.0);
                if y > 0.0 {
                    ll += y * mu.ln();
                }
                -2.0 * ll
            }
        }
    }
}

impl Link {
    /// Whether this link goes with `family` (logit and probit with the
    /// binomial, log with the Poisson); the error says which do.
    pub fn check_family(self, family: Family) -> crate::error::Result<()> {
        let ok = matches!(
            (self, family),
            (Link::Logit | Link::Probit, Family::Binomial) | (Link::Log, Family::Poisson)
        );
        if ok {
            return Ok(());
        }
        Err(crate::error::Error::Usage(format!(
            "--link {} does not go with --family {}: use logit or probit for binomial, log for poisson",
            self.name(),
            family.name()
        )))
    }

    pub fn name(self) -> &'static str {
        match self {
            Link::Logit => "logit",
            Link::Probit => "probit",
            Link::Log => "log",
        }
    }

    /// μ = g⁻¹(η), kept inside the family's range.
    pub fn inverse(self, eta: f64) -> f64 {
        const EPS: f64 = f64::EPSILON;
        match self {
            Link::Logit => (1.0 / (1.0 + (-eta).exp())).clamp(EPS, 1.0 - EPS),
            Link::Probit => crate::stats::norm_cdf(eta).clamp(EPS, 1.0 - EPS),
            Link::Log => eta.min(700.0).exp().max(EPS),
        }
    }

    /// dμ/dη.
    pub fn mu_eta(self, eta: f64) -> f64 {
        match self {
            Link::Logit => {
                let e = (-eta.abs()).exp();
                (e / ((1.0 + e) * (1.0 + e))).max(f64::EPSILON)
            }
            Link::Probit => {
                let d = (-0.5 * eta * eta).exp() / (2.0 * std::f64::consts::PI).sqrt();
                d.max(f64::EPSILON)
            }
            Link::Log => eta.min(700.0).exp().max(f64::EPSILON),
        }
    }
}

/// log Γ(x) for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    statrs::function::gamma::ln_gamma(x)
}

/// log C(n, k).
pub fn ln_choose(n: f64, k: f64) -> f64 {
    if k <= 0.0 || k >= n {
        return 0.0;
    }
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
}
