#!/bin/sh
# Side by side, in one run (issue 13, acceptance 4): the time of one
# binary REFOCUS-size power-run replicate in crtsim (simulate + Laplace
# GLMM + GEE, from `crtsim power`, one thread) against lme4's glmer
# fitting the same model to the same simulated trials (R's own timer,
# model fit only: no simulation, no GEE).
#
# Needs R with lme4 (Debian: r-base-core r-cran-lme4); run from the
# repository root after `cargo build --release`:
#   sh benches/r/glmer_replicate.sh [REPS]
set -eu
REPS=${1:-50}
BIN=target/release/crtsim
CFG=configs/refocus_binary.toml
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
# The trials glmer fits: replicates 1..REPS of seed 2011.
i=1
while [ "$i" -le "$REPS" ]; do
  "$BIN" simulate "$CFG" --seed 2011 --replicate "$i" > "$DIR/trial_$i.csv"
  i=$((i + 1))
done
# crtsim: REPS x 200 replicates of glmm_z + gee_md, wall clock, one thread;
# three runs before glmer and two after (the VM's speed drifts), and the
# median of the five is reported, as glmer's median over its trials.
N=$((REPS * 200))
crtsim_run() {
  START=$(date +%s.%N)
  "$BIN" power "$CFG" --reps "$N" --threads 1 --no-null \
    --set 'analysis.methods=["glmm_z","gee_md"]' > /dev/null
  END=$(date +%s.%N)
  echo "($END - $START) * 1000000 / $N" | bc -l >> "$DIR/crtsim_us"
}
crtsim_run; crtsim_run; crtsim_run
GLMER_MS=$(Rscript -e '
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; reps <- as.integer(args[2])
t <- numeric(reps)
for (i in seq_len(reps)) {
  d <- read.csv(file.path(dir, sprintf("trial_%d.csv", i)))
  d <- d[!is.na(d$qpr), ]
  t[i] <- system.time(suppressMessages(
    glmer(qpr ~ arm + site + (1 | team), data = d, family = binomial)))[["elapsed"]]
}
cat(1000 * median(t))
' "$DIR" "$REPS")
crtsim_run; crtsim_run
CRTSIM_US=$(sort -g "$DIR/crtsim_us" | sed -n 3p)
echo "crtsim runs (us per replicate): $(sort -g "$DIR/crtsim_us" | xargs printf '%.0f ')"
echo "crtsim replicate (simulate + GLMM + GEE): $(printf '%.0f' "$CRTSIM_US") us (median of 5 runs)"
echo "glmer fit (median of $REPS trials):        $(printf '%.1f' "$GLMER_MS") ms"
echo "ratio: $(echo "$GLMER_MS * 1000 / $CRTSIM_US" | bc -l | xargs printf '%.0f')x"
