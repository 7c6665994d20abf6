# lme4's default PIRLS tolerance (glmerControl(tolPwrss = 1e-7)) stops short
# on cbpp's expanded 0/1 rows: its Laplace deviance there is 5.4e-4 above the
# converged value and the SEs move by 1%. This refits cbpp_laplace with
# tolPwrss = 1e-13 (converged) for crtsim's test, which converges PIRLS fully.
# Usage: Rscript make_tight_cbpp.R   (in tests/data/glmm; needs r-cran-lme4, r-cran-jsonlite)
suppressMessages({ library(lme4); library(jsonlite) })
d <- read.csv("data/cbpp_bernoulli.csv")
f <- glmer(y ~ period + (1|herd), data = d, family = binomial,
           control = glmerControl(tolPwrss = 1e-13))
se <- sqrt(diag(as.matrix(vcov(f))))
fx <- fixef(f)
out <- list(
  name = "cbpp_laplace_tight", data = "data/cbpp_bernoulli.csv",
  formula = "y ~ period + (1|herd)", family = "binomial", link = "logit", nAGQ = 1,
  tolPwrss = 1e-13, n_obs = nrow(d),
  fixed = lapply(seq_along(fx), function(j) list(term = names(fx)[j], estimate = unname(fx[j]),
                 se = unname(se[j]), z = unname(fx[j] / se[j]))),
  theta = unname(getME(f, "theta")),
  minus_two_loglik = -2 * as.numeric(logLik(f)),
  singular = isSingular(f),
  lme4_version = as.character(packageVersion("lme4")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "fits/cbpp_laplace_tight.json")
