# lme4's profile-likelihood intervals (confint of profile(), lme4's new
# names) for tests/profile.rs, REML fits: sleepstudy's random slope model,
# correlated and uncorrelated, Penicillin's crossed model at 95% and 90%,
# and the vendored stepped wedge's cluster and cluster-period model. The
# profile is tabulated on a fine grid (delta = 0.02, lme4's default is
# 0.25): lme4 inverts an interpolating spline, and on the stepped wedge's
# default grid its cluster SD's lower end is 0.60686, where the finer grid
# (and crtsim's root) gives 0.60438.
# Reads the vendored CSVs in tests/data/lme4/data. Run from the repository
# root (R with lme4 and jsonlite; Debian: r-base-core r-cran-lme4
# r-cran-jsonlite):
#   Rscript tests/data/lme4/profile/make_profile.R
suppressMessages({library(lme4); library(jsonlite)})
dir <- "tests/data/lme4"
case <- function(file, formula, level) {
  d <- read.csv(file.path(dir, "data", file))
  f <- lmer(as.formula(formula), data = d, REML = TRUE)
  pr <- profile(f, signames = FALSE, delta = 0.02, maxpts = 1000)
  ci <- confint(pr, level = level)
  list(data = file, formula = formula, level = level,
       intervals = lapply(seq_len(nrow(ci)), function(i)
         list(name = rownames(ci)[i], lower = unname(ci[i, 1]), upper = unname(ci[i, 2]))))
}
ref <- list(
  lme4 = as.character(packageVersion("lme4")),
  cases = list(
    case("sleepstudy.csv", "Reaction ~ Days + (Days|Subject)", 0.95),
    case("sleepstudy.csv", "Reaction ~ Days + (Days||Subject)", 0.95),
    case("crt_stepped_wedge.csv",
         "qpr ~ treat + factor(period) + (1|cluster) + (1|cluster:period)", 0.95),
    case("penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", 0.95),
    case("penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", 0.90)))
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(dir, "profile", "profile.json"))
