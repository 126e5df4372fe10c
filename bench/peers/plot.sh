#!/usr/bin/env bash
# bench/peers/plot.sh — the peers' backlog figures beside camjoin's as one
# plot, docs/bench-peers.png (events/s, CPU seconds per 1M events, peak
# RSS), from the JSON files the peers' runners wrote; the same figures as
# bench/peers/table.sh. Usage: bash bench/peers/plot.sh [DIR [OUT_DIR]]
# (defaults bench/results/peers and docs). A peer whose file is missing is
# left out. Needs gnuplot (apt-get install gnuplot-nox).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${1:-$(cd "$HERE/../results/peers" && pwd)}
OUT=${2:-$(cd "$HERE/../../docs" && pwd)}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
dat=$DIR/peers.dat
: >"$dat"
point() {  # LABEL FILE JQ(events/s) JQ(cpu s per 1M) JQ(peak RSS MiB)
    [[ -s $DIR/$2 ]] || return 0
    jq -r --arg l "$1" "\"\\\"\(\$l)\\\" \(($3) | floor) \(($4) * 10 | round / 10) \(($5) | round)\"" \
        "$DIR/$2" >>"$dat"
}
point "camjoin" python-backlog.json .camjoin.rate .camjoin.cpu_s_per_1m_events '.camjoin.max_rss_kb / 1024'
point "Python" python-backlog.json .peer.rate .peer.cpu_s_per_1m_events '.peer.max_rss_kb / 1024'
point "Flink (defaults)" flink.json .events_per_s .cpu_s_per_million_events .peak_rss_mib
point "Flink (5,000 rows)" flink-tuned.json .events_per_s .cpu_s_per_million_events .peak_rss_mib
point "Kafka Connect" connect.json .events_per_s .cpu_s_per_million_events .peak_rss_mib
[[ -s $dat ]] || { echo "plot.sh: no peer results in $DIR" >&2; exit 1; }
gnuplot -e "dat='$dat'; out='$OUT/bench-peers.png'" "$HERE/plot.gp"
echo "wrote $OUT/bench-peers.png"
