#!/usr/bin/env bash
# bench/compare.sh REAL_DIR MOCK_DIR — the same benchmark phases on a real
# Apache Kafka broker and on librdkafka's mock cluster, side by side, as the
# markdown table of docs/BENCHMARKS.md. Reads throughput.json, latency.json
# and linger1.json from both directories (bench/run.sh writes them; `bash
# bench/run.sh mock` fills MOCK_DIR and calls this).
set -euo pipefail
real=${1:?usage: compare.sh REAL_DIR MOCK_DIR} mock=${2:?usage: compare.sh REAL_DIR MOCK_DIR}
for d in "$real" "$mock"; do
    for f in throughput latency linger1; do
        [[ -s $d/$f.json ]] || { echo "compare.sh: $d/$f.json is missing (bash bench/run.sh $f)" >&2; exit 1; }
    done
done
row() {  # LABEL JQ_EXPR FILE FORMAT
    local r m
    r=$(jq -r "$2" "$real/$3.json") m=$(jq -r "$2" "$mock/$3.json")
    printf "| %s | $4 | $4 | %.2f |\n" "$1" "$r" "$m" "$(echo "$m / $r" | bc -l)"
}
echo "| figure | real broker: $(jq -r .machine.kafka "$real/throughput.json") | $(jq -r .machine.kafka "$mock/throughput.json") | mock / real |"
echo "|---|---:|---:|---:|"
row "backlog, camjoin --until-end, events/s" .camjoin.events_per_s throughput "%.0f"
row "backlog, raw consume (kcat), events/s" .raw_consume.events_per_s throughput "%.0f"
row "backlog, camjoin CPU s per 1M events" .camjoin.cpu_s_per_1m_events throughput "%.2f"
for r in $(jq -r '.runs[].rate' "$real/latency.json"); do
    for q in p50 p99; do
        row "live ${r}/s, ${q} ms" ".runs[] | select(.rate == $r) | .${q}_ms" latency "%.2f"
    done
done
row "live 10000/s linger.ms=1, p50 ms" .p50_ms linger1 "%.2f"
row "live 10000/s linger.ms=1, p99 ms" .p99_ms linger1 "%.2f"
row "live 10000/s linger.ms=1, max ms" .max_ms linger1 "%.2f"
