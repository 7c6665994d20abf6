# Reference fits for formula functions (issue 14, acceptance 4): lme4's lmer
# on models with poly(), scale(), I(), log(), exp(), sqrt(), factor(),
# offset() and (x || g), written to functions.json beside this script.
# Run from the repository root, after tests/data/lme4/anova/make_anova.R
# (which exports cake.csv):
#   Rscript tests/data/lme4/functions/make_functions.R
suppressMessages({library(lme4); library(jsonlite)})
dir <- "tests/data/lme4/data"
cases <- list(
  list(data = "sleepstudy.csv", formula = "Reaction ~ poly(Days, 2) + (1|Subject)"),
  list(data = "sleepstudy.csv", formula = "Reaction ~ poly(Days, 3) + (Days|Subject)"),
  list(data = "sleepstudy.csv", formula = "Reaction ~ scale(Days) + I(Days^2) + (1|Subject)"),
  list(data = "sleepstudy.csv", formula = "Reaction ~ log(Days + 1) + sqrt(Days) + (1|Subject)"),
  list(data = "sleepstudy.csv", formula = "Reaction ~ factor(Days) + (1|Subject)"),
  list(data = "sleepstudy.csv", formula = "Reaction ~ Days + offset(2 * Days) + (1|Subject)"),
  list(data = "sleepstudy.csv", formula = "Reaction ~ Days + (Days || Subject)"),
  list(data = "sleepstudy.csv", formula = "Reaction ~ I((Days - 4.5)/2) + exp(Days/10) + (1|Subject)"),
  list(data = "crt_parallel.csv", formula = "qpr ~ arm + scale(baseline) + (1|team)"),
  list(data = "crt_parallel.csv", formula = "qpr ~ arm + I(baseline/10) + as.numeric(arm) : site + (1|team)")
)
# One tightly converged REML fit: its criterion, sigma, theta and the
# fixed effects' estimates and SEs.
fit_case <- function(cs) {
  d <- read.csv(file.path(dir, cs$data))
  m <- lmer(as.formula(cs$formula), data = d, REML = TRUE,
            control = lmerControl(optimizer = "bobyqa",
                                  optCtrl = list(rhobeg = 2e-4, rhoend = 2e-11, maxfun = 1e5)))
  s <- summary(m)$coefficients
  list(data = cs$data, formula = cs$formula,
       objective = unname(REMLcrit(m)),
       sigma = sigma(m), theta = unname(getME(m, "theta")),
       fixed = lapply(seq_len(nrow(s)), function(i)
         list(term = rownames(s)[i], estimate = unname(s[i, 1]), se = unname(s[i, 2]))))
}
out <- lapply(cases, fit_case)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/data/lme4/functions/functions.json")
# R's orthogonal polynomial basis on an uneven x, for the basis itself.
x <- c(0.5, 1, 2, 3.5, 7, 11, 20, 20, 33)
writeLines(toJSON(list(x = x, degree = 4, basis = unname(split(poly(x, 4), col(poly(x, 4))))),
                  digits = NA, pretty = TRUE),
           "tests/data/lme4/functions/poly.json")
# Sum-to-zero contrasts (crtsim fit --contrasts sum).
options(contrasts = c("contr.sum", "contr.poly"))
sum_cases <- list(
  list(data = "cake.csv", formula = "angle ~ recipe * temp + (1|recipe:replicate)"),
  list(data = "crt_parallel.csv", formula = "qpr ~ arm + site + baseline + (1|team)")
)
out <- lapply(sum_cases, fit_case)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/data/lme4/functions/contrasts_sum.json")
