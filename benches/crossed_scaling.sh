#!/bin/sh
# Scaling of a crossed fit (issue 14, acceptance 2): `y ~ x + (1|a) + (1|b)`
# on 20,000 generated rows with K × K levels (examples/crossed_design.rs),
# whole-process time and peak RSS of `crtsim fit`, with --df residual and
# with the default Satterthwaite df. Optionally a second binary (say a
# build of an older commit) is timed alongside.
#   sh benches/crossed_scaling.sh [OTHER_BINARY]
set -eu
BIN=target/release/crtsim
OTHER=${1:-}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
cargo build --release --example crossed_design -q
for K in 250 500 1000 2000; do
  target/release/examples/crossed_design "$K" 20000 1 > "$DIR/c.csv"
  for B in "$BIN" $OTHER; do
    for DF in residual satterthwaite; do
      /usr/bin/time -f "%e %M" -o "$DIR/t" timeout 600 "$B" fit "$DIR/c.csv" \
        --formula 'y ~ x + (1|a) + (1|b)' --df "$DF" > /dev/null 2>&1 || echo "timeout/failed" > "$DIR/t"
      printf 'K = %4d  %-28s --df %-13s %s\n' "$K" "$B" "$DF" "$(awk '{printf "%.2f s, %d MB", $1, $2/1024}' "$DIR/t")"
    done
  done
done
