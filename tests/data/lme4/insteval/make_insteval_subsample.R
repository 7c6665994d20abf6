# A subsample of lme4's InstEval (the ratings of its first 500 students, in
# lme4's factor order, of every lecturer they rated) and the lme4/lmerTest
# fit of y ~ 1 + (1|s) + (1|d) on it, for tests/insteval_subsample.rs (the
# crossed design whose filled-in lecturer block is factored dense) and the
# criterion bench `crossed` in benches/lmm.rs.
#
# Run from the repository root (R with lme4, lmerTest, jsonlite; Debian:
# r-base-core r-cran-lme4 r-cran-lmertest r-cran-jsonlite):
#   Rscript tests/data/lme4/insteval/make_insteval_subsample.R
suppressMessages({library(lmerTest); library(jsonlite)})
out <- "tests/data/lme4/insteval"
d <- InstEval[as.integer(InstEval$s) <= 500, ]
d <- droplevels(d)
write.csv(data.frame(s = as.character(d$s), d = as.character(d$d), y = d$y),
          file.path(out, "insteval_500.csv"), row.names = FALSE)
d <- read.csv(file.path(out, "insteval_500.csv"), colClasses = c("character", "character", "numeric"))
f <- lmer(y ~ 1 + (1|s) + (1|d), data = d, REML = TRUE,
          control = lmerControl(optimizer = "bobyqa",
                                optCtrl = list(rhobeg = 2e-4, rhoend = 2e-11, maxfun = 1e5)))
sm <- summary(f)
ref <- list(
  formula = "y ~ 1 + (1|s) + (1|d)",
  n_obs = nrow(d), n_students = nlevels(factor(d$s)), n_lecturers = nlevels(factor(d$d)),
  reml_criterion = REMLcrit(f), theta = unname(getME(f, "theta")), sigma = sigma(f),
  estimate = unname(fixef(f)), se = unname(coef(sm)[, "Std. Error"]),
  df_satterthwaite = unname(coef(sm)[, "df"]),
  lme4 = as.character(packageVersion("lme4")), lmerTest = as.character(packageVersion("lmerTest")))
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "insteval_500.json"))
