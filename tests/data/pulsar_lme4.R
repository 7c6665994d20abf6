# Reference values for tests/stepped_wedge.rs (sw_fits_match_lme4):
# lme4 1.1 / lmerTest / pbkrtest (Debian bookworm packages) on two PULSAR
# datasets simulated by crtsim:
#   crtsim simulate configs/pulsar.toml --set outcome.measure=continuous \
#     --replicate R --out tests/data/pulsar_repR.csv      (R = 0, 1)
# and a closed cohort (same people every period, individual autocorrelation):
#   crtsim simulate configs/pulsar.toml --set stepped_wedge.sampling=cohort \
#     --set outcome.iac=0.6 --set outcome.measure=continuous \
#     --replicate 3 --out tests/data/pulsar_cohort_rep3.csv
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest)})
for (r in 0:1) {
  d <- read.csv(sprintf("tests/data/pulsar_rep%d.csv", r))
  d$cluster <- factor(d$cluster); d$period <- factor(d$period)
  m <- lmerTest::lmer(qpr ~ treat + period + (1|cluster) + (1|cluster:period),
                      data = d, REML = TRUE)
  s <- summary(m, ddf = "Satterthwaite")$coefficients
  k <- summary(m, ddf = "Kenward-Roger")$coefficients
  cat(sprintf("rep %d: REML %.8f theta %s singular %s\n", r, REMLcrit(m),
              paste(sprintf("%.8f", getME(m, "theta")), collapse = " "), isSingular(m)))
  cat(sprintf("  treat est %.8f se %.8f sat df %.6f p %.8g | KR se %.8f df %.6f p %.8g\n",
              s["treat", 1], s["treat", 2], s["treat", 3], s["treat", 5],
              k["treat", 2], k["treat", 3], k["treat", 5]))
}
d <- read.csv("tests/data/pulsar_cohort_rep3.csv")
d$cluster <- factor(d$cluster); d$period <- factor(d$period)
m <- lmerTest::lmer(qpr ~ treat + period + (1|cluster) + (1|cluster:period) +
                      (1|cluster:individual), data = d, REML = TRUE)
s <- summary(m, ddf = "Satterthwaite")$coefficients
k <- summary(m, ddf = "Kenward-Roger")$coefficients
cat(sprintf("cohort: REML %.8f theta %s singular %s\n", REMLcrit(m),
            paste(sprintf("%.8f", getME(m, "theta")), collapse = " "), isSingular(m)))
cat(sprintf("  treat est %.8f se %.8f sat df %.6f p %.8g | KR se %.8f df %.6f p %.8g\n",
            s["treat", 1], s["treat", 2], s["treat", 3], s["treat", 5],
            k["treat", 2], k["treat", 3], k["treat", 5]))
