#!/usr/bin/env bash
# bench/peers/table.sh — one table of the peers' backlog figures beside
# camjoin's, from the JSON files the peers' runners wrote (bench/run.sh
# peers runs them all, then this). Usage: bash bench/peers/table.sh [DIR]
# (default bench/results/peers). A peer whose file is missing is listed as
# "not run"; every figure printed was checked by its runner first.
set -euo pipefail
DIR=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../results/peers" && pwd)}
row() {  # LABEL FILE JQ(events/s) JQ(cpu s per 1M) JQ(peak RSS MiB) JQ(rows written) JQ(rows expected)
    local label=$1 f=$DIR/$2
    if [[ ! -s $f ]]; then
        printf '| %s | not run | | | |\n' "$label"
        return
    fi
    jq -r --arg l "$label" "[\$l, ($3), ($4), ($5), ($6), ($7)] |
        \"| \(.[0]) | \(.[1] | floor) | \(.[2] * 10 | round / 10) | \(.[3] | round) | \(.[4]) of \(.[5]) |\"" "$f"
}
echo "| peer (backlog, --until-end style) | events/s | CPU s per 1M events | peak RSS MiB | rows written of expected |"
echo "|---|---|---|---|---|"
# the Python runner checks camjoin's rows against the manifest too, and
# records only the figures: its row says so instead of a count
row "camjoin (same session as the Python peer)" python-backlog.json \
    .camjoin.rate .camjoin.cpu_s_per_1m_events '.camjoin.max_rss_kb / 1024' '"all (checked)"' .rows
row "Python: confluent-kafka + psycopg COPY" python-backlog.json \
    .peer.rate .peer.cpu_s_per_1m_events '.peer.max_rss_kb / 1024' .peer.inserted .rows
row "Flink 2.2.1 SQL, JDBC sink defaults" flink.json \
    .events_per_s .cpu_s_per_million_events .peak_rss_mib .distinct_ids .expected_rows
row "Flink 2.2.1 SQL, 5,000-row sink batches" flink-tuned.json \
    .events_per_s .cpu_s_per_million_events .peak_rss_mib .distinct_ids .expected_rows
row "Kafka Connect + Debezium JDBC sink, upsert" connect.json \
    .events_per_s .cpu_s_per_million_events .peak_rss_mib .distinct_ids .expected_rows
