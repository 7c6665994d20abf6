# More glmer reference cases (random slopes, two terms on one factor, an
# aggregated binomial) for crtsim's GLMM; run as
#   Rscript make_reference_glmm.R OUTDIR extra_specs.R
# and copy OUTDIR/fits/{crt_binary_slope,crt_count_uncorrelated,cbpp_cbind}.json
# and OUTDIR/data/cbpp_aggregated.csv here.
datasets$cbpp_aggregated <- function() {
  d <- lme4::cbpp
  data.frame(herd = as.character(d$herd), period = as.character(d$period),
             incidence = d$incidence, healthy = d$size - d$incidence)
}
cases <- list(
  case("crt_binary_slope", "crt_binary_parallel",
       "recovered ~ arm + baseline_high + (baseline_high|team)"),
  case("crt_count_uncorrelated", "crt_binary_parallel",
       "contacts ~ arm + baseline_high + (1|team) + (0 + baseline_high|team)", family = "poisson"),
  case("cbpp_cbind", "cbpp_aggregated", "cbind(incidence, healthy) ~ period + (1|herd)")
)
