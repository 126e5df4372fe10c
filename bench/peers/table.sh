#!/usr/bin/env bash
# bench/peers/table.sh — one table of the peers' backlog figures beside
# camjoin's, from the JSON files the peers' runners wrote (bench/run.sh
# peers runs them all, then this). Usage: bash bench/peers/table.sh [--dat] [DIR]
# (default bench/results/peers). A peer whose file is missing is listed as
# "not run"; every figure printed was checked by its runner first. The
# live column is each one's commit_latency (bench/lib.sh) at 10k events/s:
# python-live.json, flink-live.json, flink-tuned-live.json, connect-live.json
# (camjoin's from the Python runner's live phase). --dat
# prints the same figures as gnuplot data instead ("SHORT LABEL" events/s
# cpu_s_per_1M peak_rss_MiB, missing peers left out), for bench/peers/plot.sh.
set -euo pipefail
DAT=0
if [[ ${1:-} == --dat ]]; then DAT=1; shift; fi
DIR=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../results/peers" && pwd)}
# the live figure at 10k events/s of FILE (JQ: the object with the commit
# timestamps' p50_ms and p99_ms), or "not run"
live() {  # FILE JQ
    if [[ -s $DIR/$1 ]]; then
        jq -r "($2) | \"\(.p50_ms) / \(.p99_ms)\"" "$DIR/$1"
    else
        echo "not run"
    fi
}
# LABEL SHORT FILE JQ(events/s) JQ(cpu s per 1M) JQ(peak RSS MiB) JQ(rows written) JQ(rows expected) LIVE_FILE LIVE_JQ
row() {
    local label=$1 short=$2 f=$DIR/$3 lat
    lat=$(live "$9" "${10}")
    if [[ ! -s $f ]]; then
        ((DAT)) || printf '| %s | not run | | | | %s |\n' "$label" "$lat"
        return 0
    fi
    if ((DAT)); then
        jq -r --arg l "$short" "\"\\\"\(\$l)\\\" \(($4) | floor) \(($5) * 10 | round / 10) \(($6) | round)\"" "$f"
    else
        jq -r --arg l "$label" --arg lat "$lat" "[\$l, ($4), ($5), ($6), ($7), ($8)] |
            \"| \(.[0]) | \(.[1] | floor) | \(.[2] * 10 | round / 10) | \(.[3] | round) | \(.[4]) of \(.[5]) | \(\$lat) |\"" "$f"
    fi
}
if ((!DAT)); then
    echo "| peer (backlog, --until-end style) | events/s | CPU s per 1M events | peak RSS MiB | rows written of expected | live 10k/s p50 / p99 ms |"
    echo "|---|---|---|---|---|---|"
fi
# the Python runner checks camjoin's rows against the manifest too, and
# records only the figures: its row says so instead of a count
row "camjoin (same session as the Python peer)" camjoin python-backlog.json \
    .camjoin.rate .camjoin.cpu_s_per_1m_events '.camjoin.max_rss_kb / 1024' '"all (checked)"' .rows \
    python-live.json .camjoin.commit_ts
row "Python: confluent-kafka + psycopg COPY" Python python-backlog.json \
    .peer.rate .peer.cpu_s_per_1m_events '.peer.max_rss_kb / 1024' .peer.inserted .rows \
    python-live.json .peer.commit_ts
row "Flink 2.2.1 SQL, JDBC sink defaults" "Flink (defaults)" flink.json \
    .events_per_s .cpu_s_per_million_events .peak_rss_mib .distinct_ids .expected_rows flink-live.json .
row "Flink 2.2.1 SQL, 5,000-row sink batches" "Flink (5,000 rows)" flink-tuned.json \
    .events_per_s .cpu_s_per_million_events .peak_rss_mib .distinct_ids .expected_rows flink-tuned-live.json .
row "Kafka Connect + Debezium JDBC sink, upsert" "Kafka Connect" connect.json \
    .events_per_s .cpu_s_per_million_events .peak_rss_mib .distinct_ids .expected_rows connect-live.json .
