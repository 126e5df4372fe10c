#!/usr/bin/env bash
# bench/peers/plot.sh — the peers' backlog figures beside camjoin's as one
# plot, docs/bench-peers.png (events/s, CPU seconds per 1M events, peak
# RSS): the figures of bench/peers/table.sh (its --dat output, in
# DIR/peers.dat), drawn by plot.gp. Usage: bash bench/peers/plot.sh [DIR
# [OUT_DIR]] (defaults bench/results/peers and docs). Needs gnuplot
# (apt-get install gnuplot-nox).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${1:-$(cd "$HERE/../results/peers" && pwd)}
OUT=${2:-$(cd "$HERE/../../docs" && pwd)}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
dat=$DIR/peers.dat
bash "$HERE/table.sh" --dat "$DIR" >"$dat"
[[ -s $dat ]] || { echo "plot.sh: no peer results in $DIR" >&2; exit 1; }
gnuplot -e "dat='$dat'; out='$OUT/bench-peers.png'" "$HERE/plot.gp"
echo "wrote $OUT/bench-peers.png"
