# lme4's profile-likelihood intervals (confint(method = "profile"), lme4's
# own names) for tests/profile.rs: sleepstudy's random slope model and
# Penicillin's crossed model, REML fits, at 95% and (Penicillin) 90%.
# Reads the vendored CSVs in tests/data/lme4/data. Run from the repository
# root (R with lme4 and jsonlite; Debian: r-base-core r-cran-lme4
# r-cran-jsonlite):
#   Rscript tests/data/lme4/profile/make_profile.R
suppressMessages({library(lme4); library(jsonlite)})
dir <- "tests/data/lme4"
case <- function(file, formula, level) {
  d <- read.csv(file.path(dir, "data", file))
  f <- lmer(as.formula(formula), data = d, REML = TRUE)
  ci <- confint(f, method = "profile", level = level, oldNames = FALSE, quiet = TRUE)
  list(data = file, formula = formula, level = level,
       intervals = lapply(seq_len(nrow(ci)), function(i)
         list(name = rownames(ci)[i], lower = unname(ci[i, 1]), upper = unname(ci[i, 2]))))
}
ref <- list(
  lme4 = as.character(packageVersion("lme4")),
  cases = list(
    case("sleepstudy.csv", "Reaction ~ Days + (Days|Subject)", 0.95),
    case("penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", 0.95),
    case("penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", 0.90)))
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(dir, "profile", "profile.json"))
