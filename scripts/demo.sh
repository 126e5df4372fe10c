#!/usr/bin/env bash
# The two-minute demo, from a fresh Debian 12 machine (as root):
#   bash scripts/demo.sh
# Installs what is missing (the package list of .ci/run, scripts/deps.sh),
# builds build/ (or $CAMJOIN_BIN) if needed, starts a throwaway PostgreSQL 15
# and a real Apache Kafka broker (KRaft, one node; fetched from Maven Central
# into ~/.cache/camjoin on first use, tests/kafka/kafka.sh) with the topic
# camera-events (8 partitions), runs camjoin live while camjoin-gen sends
# DEMO_RATE events/s for DEMO_DURATION s (defaults 10000 and 30), stops
# camjoin with SIGTERM once every offset is committed, and prints a report
# read back from PostgreSQL and the Kafka version it ran against. It also
# draws two pictures with gnuplot into $DEMO_OUT (default build/demo): events
# per minute by site from the rollup, and camjoin's end-to-end latency
# histogram (scraped from its /metrics), and prints their paths.
# CAMJOIN_KAFKA=mock uses librdkafka's mock cluster instead (offline).
# Everything it started is removed at exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RATE=${DEMO_RATE:-10000}
DURATION=${DEMO_DURATION:-30}
TOPIC=camera-events GROUP=camjoin-demo PARTS=8

# --- dependencies: apt only when something is missing
source scripts/deps.sh
deps_install demo

# --- build (Release) unless the build directory is already configured
export CAMJOIN_SRC=$ROOT CAMJOIN_BIN=${CAMJOIN_BIN:-$ROOT/build}
if [[ ! -f $CAMJOIN_BIN/CMakeCache.txt ]]; then
    echo "== configuring $CAMJOIN_BIN (Release)"
    cmake -S . -B "$CAMJOIN_BIN" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
echo "== building camjoin, camjoin-gen, camjoin-mock-kafka"
cmake --build "$CAMJOIN_BIN" -j2 --target camjoin camjoin-gen camjoin-mock-kafka >/dev/null

source tests/integration/lib.sh

pg_start
kafka_start "$TOPIC" "$PARTS"
log "warming the broker with 10 s of traffic (a fresh JVM's first seconds are slow)"
kafka_warm_traffic 10
camjoin_args "$TOPIC" "$GROUP"
HTTP_PORT=$(free_port)
camjoin_start demo "${CJ_ARGS[@]}" --http "$HTTP_PORT"
pid=$CAMJOIN_PID
wait_progress "$TOPIC" "$GROUP" 0 60 "$pid"
# Start producing once the group has assigned the partitions, so that the
# latency figures measure the pipeline, not the group join.
for ((i = 0; i < 300; i++)); do
    grep -q 'msg="partitions assigned"' "$CJ_TMP/demo.log" && break
    sleep 0.1
done
log "camjoin running (pid $pid); producing $RATE events/s for $DURATION s"

gen_start demo --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed 42 \
    --dup-ratio 0.05 --unknown-camera-ratio 0.01 --malformed-ratio 0.005
while kill -0 "${GEN_PIDS[demo]}" 2>/dev/null; do
    sleep 5
    log "committed so far: $(_offsets_sum "$TOPIC" "$GROUP") messages"
done
gen_wait demo
sent=$(json_get "$CJ_TMP/demo.json" sent)
wait_offsets "$TOPIC" "$GROUP" "$sent" $((DURATION + 120)) "$pid"
curl -fsS -m 5 "http://127.0.0.1:$HTTP_PORT/metrics" >"$CJ_TMP/demo-metrics.txt" ||
    fail "camjoin's /metrics did not answer"
camjoin_stop "$pid"
[[ $CAMJOIN_RC -eq 0 ]] || fail "camjoin exited $CAMJOIN_RC after SIGTERM"
log "camjoin stopped: $(grep 'msg="stopped"' "$CJ_TMP/demo.log" | sed 's/.*msg="stopped" //')"

if [[ ${CAMJOIN_KAFKA:-real} == mock ]]; then
    kafka_ran="librdkafka's mock cluster (CAMJOIN_KAFKA=mock), librdkafka $(pkg-config --modversion rdkafka)"
else
    kafka_ran="Apache Kafka $(kafka_version) (KRaft, one node, ready in ${KAFKA_START_S} s)"
fi
echo
echo "== camjoin demo report: topic $TOPIC ($PARTS partitions), $sent messages sent, broker: $kafka_ran"
psql -X -q -P pager=off -v topic="$TOPIC" -v grp="$GROUP" -f scripts/demo_report.sql
stopped=$(grep 'msg="stopped"' "$CJ_TMP/demo.log" | tail -n 1)
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$stopped"; }
echo "== End-to-end latency, ms: producer send (Kafka timestamp) to COMMIT returned, measured by camjoin per row and dead letter"
[[ ${CAMJOIN_KAFKA:-real} == mock ]] ||
    echo "   (the broker had 10 s of traffic first: a fresh JVM's JIT adds up to several hundred ms in its first seconds)"
printf ' p50 %s | p99 %s | p99.9 %s | max %s\n\n' "$(field latency_p50_ms)" "$(field latency_p99_ms)" \
    "$(field latency_p999_ms)" "$(field latency_max_ms)"
echo "== The generator's own count, for comparison"
jq -r '"sent \(.sent): \(.valid_new) new events, \(.duplicates) duplicates, \(.malformed) malformed, \(.unknown_camera) with an unknown camera; \(.rate) msg/s over \(.elapsed_s) s",
       (.malformed_by_reason | to_entries[] | "  malformed \(.key): \(.value)")' "$CJ_TMP/demo.json"

# --- two pictures: events per minute by site (the rollup) and the latency histogram
OUT=${DEMO_OUT:-$CAMJOIN_BIN/demo}
mkdir -p "$OUT"
psql -X -A -t -F $'\t' -v ON_ERROR_STOP=1 -c "
    WITH top AS (SELECT site_id FROM camera_events_minute WHERE site_id IS NOT NULL
                 GROUP BY site_id ORDER BY sum(events) DESC, site_id LIMIT 5)
    SELECT to_char(m.minute AT TIME ZONE 'UTC', 'HH24:MI'), m.site_id, sum(m.events)
    FROM camera_events_minute m JOIN top USING (site_id)
    GROUP BY 1, 2 ORDER BY 1, 2" >"$CJ_TMP/sites.long"
# pivot: one row a minute, one column a site
awk -F'\t' -v OFS='\t' '
    { if (!($2 in col)) { col[$2] = ++n; name[n] = $2 } if (!($1 in seen)) { seen[$1] = 1; mins[++m] = $1 }
      v[$1, $2] = $3 }
    END { printf "minute"; for (i = 1; i <= n; i++) printf "\t%s", name[i]; print ""
          for (j = 1; j <= m; j++) { printf "%s", mins[j]
              for (i = 1; i <= n; i++) printf "\t%d", v[mins[j], name[i]]; print "" } }' \
    "$CJ_TMP/sites.long" >"$CJ_TMP/sites.tsv"
# per-bucket counts of the cumulative histogram, bounds in ms, from the first
# bucket holding a message to the last
awk '/^camjoin_end_to_end_latency_seconds_bucket/ {
        le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
        n = $2 - prev; prev = $2
        if (le == "+Inf") next
        if (n > 0 && !first) first = k + 1
        if (n > 0) last = k + 1
        b[++k] = le * 1000; c[k] = n }
     END { for (i = first; i <= last; i++) printf "%g\t%d\n", b[i], c[i] }' \
    "$CJ_TMP/demo-metrics.txt" >"$CJ_TMP/latency.tsv"
gnuplot -e "sites='$CJ_TMP/sites.tsv'; lat='$CJ_TMP/latency.tsv'; out='$OUT'" scripts/demo_plots.gp
for f in "$OUT/demo-events-per-minute.png" "$OUT/demo-latency.png"; do
    [[ $(head -c 8 "$f" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || fail "$f is not a PNG"
done
echo "== Pictures"
echo "   events per minute by site: $OUT/demo-events-per-minute.png"
echo "   latency histogram:         $OUT/demo-latency.png"
