#!/bin/sh
# Side by side, in one run (issue 14, acceptance 1): lme4's InstEval (73,421
# ratings; 2,972 students crossed with 1,128 lecturers), both models, fitted
# by `crtsim fit` and by lme4's lmer (REML), whole process each: start,
# CSV read, fit and summary. crtsim's summary carries Satterthwaite df
# (lmer's has none; lmerTest's summary adds them, timed as a third column).
#
# Needs R with lme4 and lmerTest (Debian: r-base-core r-cran-lme4
# r-cran-lmertest); run from the repository root after
# `cargo build --release`:
#   sh benches/r/insteval.sh
set -eu
BIN=target/release/crtsim
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
Rscript -e 'suppressMessages(library(lme4)); d <- InstEval
write.csv(data.frame(s = d$s, d = d$d, service = d$service, dept = d$dept, y = d$y),
          file.path(commandArgs(TRUE)[1], "insteval.csv"), row.names = FALSE)' "$DIR"
now() { date +%s.%N; }
run() { # label, command...
  label=$1; shift
  start=$(now)
  /usr/bin/time -f "%M" -o "$DIR/rss" "$@" > "$DIR/out" 2>&1
  end=$(now)
  printf '%-34s %8.2f s  %6d MB\n' "$label" "$(echo "$end - $start" | bc -l)" "$(( $(cat "$DIR/rss") / 1024 ))"
}
M1='y ~ 1 + (1|s) + (1|d)'
M2='y ~ service + (1|s) + (1|d) + (1|dept:service)'
for M in "$M1" "$M2"; do
  echo "$M"
  run "  crtsim fit (Satterthwaite)" "$BIN" fit "$DIR/insteval.csv" --formula "$M"
  grep "REML criterion" "$DIR/out" | sed 's/^/    /'
  run "  lme4 lmer" Rscript -e 'suppressMessages(library(lme4))
a <- commandArgs(TRUE); d <- read.csv(a[1])
d$s <- factor(d$s); d$d <- factor(d$d); d$dept <- factor(d$dept); d$service <- factor(d$service)
f <- lmer(as.formula(a[2]), data = d); print(summary(f)); cat("REML criterion", format(REMLcrit(f), digits = 12), "\n")' "$DIR/insteval.csv" "$M"
  grep "REML criterion" "$DIR/out" | tail -1 | sed 's/^/    /'
  run "  lmerTest lmer (Satterthwaite)" Rscript -e 'suppressMessages(library(lmerTest))
a <- commandArgs(TRUE); d <- read.csv(a[1])
d$s <- factor(d$s); d$d <- factor(d$d); d$dept <- factor(d$dept); d$service <- factor(d$service)
f <- lmer(as.formula(a[2]), data = d); print(coef(summary(f)), digits = 10)' "$DIR/insteval.csv" "$M"
  sed -n 2,4p "$DIR/out" | sed 's/^/    /'
done
