#!/bin/sh
# Side by side, in one run (issue 13, acceptance 4): the time of one
# binary REFOCUS-size power-run replicate in crtsim (simulate + Laplace
# GLMM + GEE, from `crtsim power`, one thread) against lme4's glmer
# fitting the same model to the same simulated trials (R's own timer,
# model fit only: no simulation, no GEE).
#
# This VM's speed drifts by 20–40% over tens of seconds, so the two are
# interleaved: in each of ROUNDS rounds R times one `crtsim power` run of
# 2000 replicates (wall clock, from R's own timer) and then glmer on
# REPS/ROUNDS of the trials. Each round gives a ratio under the same
# conditions; the summary is the median over rounds.
#
# Needs R with lme4 (Debian: r-base-core r-cran-lme4); run from the
# repository root after `cargo build --release`:
#   sh benches/r/glmer_replicate.sh [REPS] [ROUNDS]
# BIN=path overrides the crtsim binary (to time another build).
set -eu
REPS=${1:-50}
ROUNDS=${2:-5}
BIN=${BIN:-target/release/crtsim}
CFG=configs/refocus_binary.toml
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
# The trials glmer fits: replicates 1..REPS of seed 2011.
i=1
while [ "$i" -le "$REPS" ]; do
  "$BIN" simulate "$CFG" --seed 2011 --replicate "$i" > "$DIR/trial_$i.csv"
  i=$((i + 1))
done
Rscript -e '
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; reps <- as.integer(args[2]); rounds <- as.integer(args[3])
bin <- args[4]; cfg <- args[5]
n <- 2000
trials <- lapply(seq_len(reps), function(i) {
  d <- read.csv(file.path(dir, sprintf("trial_%d.csv", i)))
  d[!is.na(d$qpr), ]
})
fit <- function(d) glmer(qpr ~ arm + site + (1 | team), data = d, family = binomial)
invisible(suppressMessages(fit(trials[[1]])))  # load and compile once
per <- split(seq_len(reps), rep_len(seq_len(rounds), reps))
out <- NULL
for (r in seq_len(rounds)) {
  t_c <- system.time(system2(bin, c("power", cfg, "--reps", n, "--threads", "1",
    "--no-null", "--set", shQuote("analysis.methods=[\"glmm_z\",\"gee_md\"]")),
    stdout = FALSE))[["elapsed"]] * 1e6 / n
  t_g <- sapply(per[[r]], function(i)
    system.time(suppressMessages(fit(trials[[i]])))[["elapsed"]]) * 1000
  out <- rbind(out, data.frame(round = r, crtsim_us = t_c, glmer_ms = median(t_g),
                               ratio = median(t_g) * 1000 / t_c))
}
print(format(out, digits = 4), row.names = FALSE)
cat(sprintf("crtsim replicate (simulate + GLMM + GEE): %.0f us (median of %d rounds)\n",
            median(out$crtsim_us), rounds))
cat(sprintf("glmer fit (median of the rounds medians of %d trials): %.1f ms\n",
            reps, median(out$glmer_ms)))
cat(sprintf("ratio (median over rounds): %.0fx, range %.0f-%.0fx\n",
            median(out$ratio), min(out$ratio), max(out$ratio)))
' "$DIR" "$REPS" "$ROUNDS" "$BIN" "$CFG"
