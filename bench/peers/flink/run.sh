#!/usr/bin/env bash
# bench/peers/flink/run.sh — the Apache Flink peer of camjoin's benchmark:
# the same job (dedup by event_id, join to the camera table, rows into
# PostgreSQL) done by Flink SQL (job.sql) on Flink 2.2 in local mode (one
# JVM, FlinkPeer.java), on the same broker, PostgreSQL and data as
# bench/run.sh's throughput phase. Run by hand (it is not a test):
#
#   bash bench/peers/flink/run.sh                  # 300k events, 32 partitions
#   PEER_EVENTS=50000 bash bench/peers/flink/run.sh
#   PEER_TUNED=1 bash bench/peers/flink/run.sh     # bigger sink batches
#   bash bench/peers/flink/run.sh live             # 10k events/s live (below)
#
# Steps: builds camjoin (for camjoin-gen) into $CAMJOIN_BIN (build/ in the repository)
# and the peer with Maven (artifacts in ~/.m2, output in /tmp); starts a
# throwaway PostgreSQL 15 and an Apache Kafka broker (tests/integration/
# lib.sh, whose EXIT trap stops them, the Flink JVM too); produces the
# backlog with bench/run.sh's generator flags; applies config/schema.sql and
# loads config/cameras.csv into table `cameras`; runs the Flink job until
# its bounded source has read the backlog; checks the rows against the
# generator's manifest (fails before printing any figure if they differ);
# prints the figures and writes them to bench/results/peers/flink.json
# (flink-tuned.json with PEER_TUNED=1; PEER_RESULT names another).
# live: the job on an unbounded source over a topic of 8 partitions, on a
# warmed broker (PEER_WARM_SECONDS of traffic, 20), camjoin-gen at
# PEER_LIVE_RATE (10000) events/s for PEER_LIVE_SECONDS (30); the latency
# from PostgreSQL's commit timestamps (bench/lib.sh's peer_live), written to
# flink-live.json (flink-tuned-live.json with PEER_TUNED=1).
#
# Environment: PEER_EVENTS (300000), PEER_PARTITIONS (32), PEER_PARALLELISM
# (Flink's, 2), PEER_SINK_PARALLELISM (the JDBC sink's, 1), PEER_SINK_MAX_ROWS / PEER_SINK_INTERVAL (Flink's JDBC
# defaults 100 / 1s; PEER_TUNED=1: 5000 / 1s), PEER_REWRITE_BATCH (1: the
# PostgreSQL driver's reWriteBatchedInserts, multi-row INSERTs; 0: off),
# PEER_MALFORMED_RATIO (0, as bench/run.sh; e.g. 0.01 to exercise the
# validation), PEER_HEAP (1g), PEER_JAVA (java), PEER_SKIP_BUILD=1 (reuse
# both builds), PG_FSYNC (on), CAMJOIN_KEEP_TMP=1 (keep the logs).
set -euo pipefail
PEER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CAMJOIN_SRC=$(cd "$PEER_DIR/../../.." && pwd)
CAMJOIN_BIN=${CAMJOIN_BIN:-$CAMJOIN_SRC/build}
export CAMJOIN_SRC CAMJOIN_BIN
# shellcheck source=../../../tests/integration/lib.sh
source "$CAMJOIN_SRC/tests/integration/lib.sh"
# shellcheck source=../../lib.sh
source "$CAMJOIN_SRC/bench/lib.sh"

EVENTS=${PEER_EVENTS:-300000}
PARTS=${PEER_PARTITIONS:-32}
PARALLELISM=${PEER_PARALLELISM:-2}
# one writer: camera_events' statement-level rollup trigger upserts
# camera_events_minute, and two writers whose batches (one implicit
# transaction each, several statements) touch the same minutes deadlock
SINK_PARALLELISM=${PEER_SINK_PARALLELISM:-1}
TUNED=${PEER_TUNED:-0}
if [[ $TUNED == 1 ]]; then
    SINK_MAX_ROWS=${PEER_SINK_MAX_ROWS:-5000} SINK_INTERVAL=${PEER_SINK_INTERVAL:-1s}
else
    SINK_MAX_ROWS=${PEER_SINK_MAX_ROWS:-100} SINK_INTERVAL=${PEER_SINK_INTERVAL:-1s}
fi
REWRITE=${PEER_REWRITE_BATCH:-1}
MALFORMED_RATIO=${PEER_MALFORMED_RATIO:-0}
HEAP=${PEER_HEAP:-1g}
JAVA=${PEER_JAVA:-java}
PHASE=${1:-backlog}
[[ $PHASE == backlog || $PHASE == live ]] || fail "unknown phase '$PHASE' (backlog, live)"
RESULT_NAME=${PEER_RESULT:-$([[ $TUNED == 1 ]] && echo flink-tuned || echo flink)$([[ $PHASE != live ]] || echo -live)}
RESULTS=${PEER_RESULTS:-$CAMJOIN_SRC/bench/results/peers}
PEER_BUILD=${PEER_BUILD:-/tmp/camjoin-flink-peer}
TOPIC=peer-flink
# as bench/run.sh: a 1 GiB broker heap, its logs on tmpfs
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms1g -Xmx1g}
export CAMJOIN_KAFKA_LOG_ROOT=${BENCH_KAFKA_LOG_ROOT-/dev/shm}
[[ -z $CAMJOIN_KAFKA_LOG_ROOT || -d $CAMJOIN_KAFKA_LOG_ROOT ]] || CAMJOIN_KAFKA_LOG_ROOT=""

[[ $EVENTS =~ ^[1-9][0-9]*$ ]] || fail "PEER_EVENTS must be a positive integer, got '$EVENTS'"
[[ $PARTS =~ ^[1-9][0-9]*$ ]] || fail "PEER_PARTITIONS must be a positive integer, got '$PARTS'"
[[ $SINK_MAX_ROWS =~ ^[1-9][0-9]*$ ]] || fail "PEER_SINK_MAX_ROWS must be a positive integer, got '$SINK_MAX_ROWS'"
for b in mvn jq kcat psql bc "$JAVA"; do
    command -v "$b" >/dev/null || fail "$b not found"
done
[[ ${CAMJOIN_KAFKA:-real} != mock ]] || fail "the Flink peer needs a real broker (unset CAMJOIN_KAFKA=mock)"

# ------------------------------------------------------------------ builds
if [[ ${PEER_SKIP_BUILD:-0} != 1 ]]; then
    log "building camjoin into $CAMJOIN_BIN"
    { cmake -S "$CAMJOIN_SRC" -B "$CAMJOIN_BIN" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$CAMJOIN_BIN" -j2; } >"$CJ_TMP/build.log" 2>&1 ||
        fail "camjoin build failed: $(tail -n 10 "$CJ_TMP/build.log")"
    log "building the Flink peer with Maven into $PEER_BUILD"
    mvn -B -q -f "$PEER_DIR/pom.xml" -Dflink.peer.build="$PEER_BUILD" package \
        dependency:build-classpath -Dmdep.outputFile="$PEER_BUILD/classpath.txt" \
        >"$CJ_TMP/mvn.log" 2>&1 || fail "mvn failed: $(grep -m 5 ERROR "$CJ_TMP/mvn.log")"
fi
need_bin camjoin-gen
[[ -s $PEER_BUILD/classpath.txt && -d $PEER_BUILD/classes ]] ||
    fail "no Flink peer build in $PEER_BUILD (run without PEER_SKIP_BUILD=1)"

# camjoin's tables (config/schema.sql, the rollup by trigger) and `cameras`
tables() {
    psql -XAtq -1 -v ON_ERROR_STOP=1 -f "$CAMJOIN_SRC/config/schema.sql" >/dev/null 2>"$CJ_TMP/schema.err" ||
        fail "config/schema.sql failed: $(head -n 5 "$CJ_TMP/schema.err")"
    peer_rollup_trigger
    psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
CREATE TABLE cameras (camera_id text PRIMARY KEY, site_id text, site_name text,
                      zone text, latitude double precision, longitude double precision);
\copy cameras (camera_id, site_id, site_name, zone, latitude, longitude) FROM '$CAMERAS_CSV' WITH (FORMAT csv, HEADER, FORCE_NOT_NULL (site_id, site_name, zone))
ANALYZE cameras;
SQL
}
# the Flink job on TOPIC in the background (FLINK_PID), its source bounded
# at the latest offsets (backlog) or not (live)
flink_start() {  # TOPIC BOUNDED_MODE
    JDBC_URL="jdbc:postgresql://127.0.0.1:$PGPORT/camjoin?user=postgres&stringtype=unspecified"
    if [[ $REWRITE == 1 ]]; then JDBC_URL+="&reWriteBatchedInserts=true"; fi
    export KAFKA_BROKERS PEER_TOPIC=$1 PEER_BOUNDED_MODE=$2 PEER_JDBC_URL=$JDBC_URL PEER_SINK_TABLE=camera_events
    export PEER_SINK_MAX_ROWS=$SINK_MAX_ROWS PEER_SINK_INTERVAL=$SINK_INTERVAL
    export PEER_PARALLELISM=$PARALLELISM PEER_SINK_PARALLELISM=$SINK_PARALLELISM PEER_STATE_TTL=${PEER_STATE_TTL:-10 min}
    log "Flink job: parallelism $PARALLELISM (sink $SINK_PARALLELISM), sink batches $SINK_MAX_ROWS rows / $SINK_INTERVAL, reWriteBatchedInserts=$REWRITE"
    "$JAVA" -Xms256m -Xmx"$HEAP" -Duser.timezone=UTC -XX:+UseParallelGC \
        -cp "$PEER_BUILD/classes:$(cat "$PEER_BUILD/classpath.txt")" \
        camjoin.peer.FlinkPeer "$PEER_DIR/job.sql" >"$CJ_TMP/flink.out" 2>"$CJ_TMP/flink.log" </dev/null &
    FLINK_PID=$!
    CAMJOIN_PIDS+=("$FLINK_PID")   # lib.sh's EXIT trap stops it with the daemons
}

# ------------------------------------------------------------ live
if [[ $PHASE == live ]]; then
    LIVE_TOPIC=peer-flink-live LIVE_RATE=${PEER_LIVE_RATE:-10000} LIVE_S=${PEER_LIVE_SECONDS:-30}
    pg_start
    commit_ts_on
    kafka_start peer-flink-warm 1
    log "warming the broker: ${PEER_WARM_SECONDS:-20} s of traffic"
    kafka_warm_traffic "${PEER_WARM_SECONDS:-20}"
    kafka_topic_create "$LIVE_TOPIC" 8
    tables
    flink_start "$LIVE_TOPIC" unbounded
    peer_live "$FLINK_PID" "$LIVE_TOPIC" camera_events "$LIVE_RATE" "$LIVE_S"
    _stop_pid "$FLINK_PID" TERM 20
    forget_pid "$FLINK_PID"
    mkdir -p "$RESULTS"
    jq --arg cfg "$SINK_MAX_ROWS rows / $SINK_INTERVAL" --arg secs "$LIVE_S" \
        --arg commit "$(git -C "$CAMJOIN_SRC" rev-parse --short HEAD 2>/dev/null || echo '?')" \
        '{peer: "flink", sink_batches: $cfg, partitions: 8, seconds: ($secs|tonumber), commit: $commit} + .' \
        <<<"$LIVE_JSON" >"$RESULTS/$RESULT_NAME.json"
    printf '\n%s\n' "Flink peer live ($LIVE_RATE events/s for $LIVE_S s, 8 partitions, sink $SINK_MAX_ROWS rows / $SINK_INTERVAL)"
    jq -r '"  p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, p99.9 \(.p999_ms) ms, max \(.max_ms) ms (\(.rows_measured) rows); CPU \(.cpu_percent_of_one_core | floor) % of a core, RSS \(.rss_kib / 1024 | floor) MiB"' \
        "$RESULTS/$RESULT_NAME.json"
    log "wrote $RESULTS/$RESULT_NAME.json"
    exit 0
fi

# ------------------------------------------------------------ the backlog
pg_start
kafka_start "$TOPIC" "$PARTS"
log "producing $EVENTS events into $PARTS partitions"
# bench/run.sh's produce_fixed flags (5 % duplicates, 1 % unknown cameras)
bench_produce "$TOPIC" "$EVENTS" "$MALFORMED_RATIO" --manifest "$CJ_TMP/manifest.csv"
SENT=$(json_get "$CJ_TMP/produce.json" sent)
VALID=$(json_get "$CJ_TMP/produce.json" valid_new)
MALFORMED=$(json_get "$CJ_TMP/produce.json" malformed)
DUPS_SENT=$(json_get "$CJ_TMP/produce.json" duplicates)
assert_eq "messages in the topic = sent" "$SENT" \
    "$(kafka_end_total "$TOPIC")"

# --------------------------------------------------------------- the tables
tables
load_manifest "$CJ_TMP/manifest.csv"
psql_val "CHECKPOINT" >/dev/null

# ----------------------------------------------------------- the Flink job
pg_cpu_start
T0=$(now_s)
flink_start "$TOPIC" latest-offset
FLINK_RC=0
wait "$FLINK_PID" || FLINK_RC=$?
forget_pid "$FLINK_PID"
T1=$(now_s)
PG_CPU=$(pg_cpu_stop)
[[ $FLINK_RC == 0 ]] || fail "the Flink job exited $FLINK_RC: $(grep -E '^(FlinkPeer: [^p]|  caused by)' "$CJ_TMP/flink.log" | tail -n 4 | cut -c1-400)"
FIG=$(tail -n 1 "$CJ_TMP/flink.out")
jq -e . <<<"$FIG" >/dev/null 2>&1 || fail "FlinkPeer printed no figures: $(tail -n 3 "$CJ_TMP/flink.out")"
JOB_S=$(jq -r .job_s <<<"$FIG")
JVM_S=$(jq -r .total_s <<<"$FIG")
JVM_CPU=$(jq -r .cpu_s <<<"$FIG")
RSS_KIB=$(jq -r .peak_rss_kib <<<"$FIG")
WALL_S=$(echo "$T1 - $T0" | bc -l)

# ------------------------------------------------ check, then the figures
echo "checks (against the generator's manifest)"
ROWS=$(psql_val "SELECT count(*) FROM camera_events")
DISTINCT=$(psql_val "SELECT count(DISTINCT event_id) FROM camera_events")
DUP_ROWS=$((ROWS - DISTINCT))
LOST=$(psql_val "SELECT count(*) FROM (SELECT event_id FROM manifest WHERE kind = 'valid'
                 EXCEPT SELECT event_id FROM camera_events) x")
# Flink's JSON format cannot see a duplicate key ({"event_type":"a",
# "event_type":"b"}: it keeps the last), which camjoin rejects as
# duplicate_key: such messages (only with PEER_MALFORMED_RATIO > 0) are
# written, counted apart, and no other malformed message may be.
MAL_WRITTEN=$(psql_val "SELECT count(*) FROM camera_events e JOIN manifest m
                        ON m.event_id = e.event_id AND m.kind = 'malformed'")
EXPECTED=$((VALID + MAL_WRITTEN))
assert_eq "manifest distinct valid ids = valid_new" "$VALID" \
    "$(psql_val "SELECT count(DISTINCT event_id) FROM manifest WHERE kind = 'valid'")"
assert_eq "duplicate event_id rows written" 0 "$DUP_ROWS"
assert_eq "valid ids in the manifest, not in the table (lost)" 0 "$LOST"
assert_eq "malformed messages written, other than duplicate_key" 0 \
    "$(psql_val "SELECT count(*) FROM camera_events e JOIN manifest m
                 ON m.event_id = e.event_id AND m.kind = 'malformed' WHERE m.reason <> 'duplicate_key'")"
assert_eq "ids in the table, neither valid nor malformed in the manifest" 0 \
    "$(psql_val "SELECT count(*) FROM (SELECT event_id FROM camera_events
                 EXCEPT SELECT event_id FROM manifest WHERE kind IN ('valid', 'malformed')) x")"
assert_eq "rows = valid unique events (+ duplicate_key messages: $MAL_WRITTEN)" "$EXPECTED" "$ROWS"
assert_eq "distinct event_ids = the same" "$EXPECTED" "$DISTINCT"
assert_eq "rows whose camera_id differs from the manifest" 0 \
    "$(psql_val "SELECT count(*) FROM camera_events e JOIN manifest m
                 ON m.event_id = e.event_id AND m.kind = 'valid'
                 WHERE m.camera_id IS DISTINCT FROM e.camera_id")"
assert_eq "joined rows with site columns != cameras" 0 \
    "$(psql_val "SELECT count(*) FROM camera_events e JOIN cameras r USING (camera_id)
                 WHERE e.site_id IS DISTINCT FROM r.site_id OR e.site_name IS DISTINCT FROM r.site_name
                    OR e.zone IS DISTINCT FROM r.zone OR e.latitude IS DISTINCT FROM r.latitude
                    OR e.longitude IS DISTINCT FROM r.longitude")"
assert_eq "unknown-camera rows = unknown_camera" "$(json_get "$CJ_TMP/produce.json" unknown_camera)" \
    "$(psql_val "SELECT count(*) FROM camera_events WHERE site_id IS NULL")"
# the columns against each row's own Kafka message
assert_rows_match_messages "$TOPIC"
# malformed messages: Flink's JSON format skips what it cannot parse and
# counts nothing, the rest is filtered in SQL; what was not written is known
# only from the manifest
SKIPPED=$((SENT - DUPS_SENT - ROWS))   # malformed messages not written

EV_S=$(echo "$EVENTS / $JOB_S" | bc -l)
CPU_TOTAL=$(echo "$JVM_CPU + $PG_CPU" | bc -l)
CPU_PER_M=$(echo "$JVM_CPU * 1000000 / $EVENTS" | bc -l)
CPU_TOTAL_PER_M=$(echo "$CPU_TOTAL * 1000000 / $EVENTS" | bc -l)
RSS_MIB=$(echo "$RSS_KIB / 1024" | bc -l)
mkdir -p "$RESULTS"
jq -n --arg events "$EVENTS" --arg parts "$PARTS" --arg job_s "$JOB_S" --arg jvm_s "$JVM_S" \
    --arg wall_s "$WALL_S" --arg ev_s "$EV_S" --arg jvm_cpu "$JVM_CPU" --arg pg_cpu "$PG_CPU" \
    --arg cpu_total "$CPU_TOTAL" --arg cpu_per_m "$CPU_PER_M" --arg cpu_total_per_m "$CPU_TOTAL_PER_M" \
    --arg rss "$RSS_MIB" --arg rows "$ROWS" --arg distinct "$DISTINCT" --arg expected "$EXPECTED" \
    --arg dups "$DUP_ROWS" --arg lost "$LOST" --arg sent "$SENT" --arg dups_sent "$DUPS_SENT" \
    --arg malformed "$MALFORMED" --arg mal_written "$MAL_WRITTEN" --arg skipped "$SKIPPED" --arg max_rows "$SINK_MAX_ROWS" \
    --arg interval "$SINK_INTERVAL" --arg rewrite "$REWRITE" --arg par "$PARALLELISM" --arg spar "$SINK_PARALLELISM" \
    --arg tuned "$TUNED" --arg heap "$HEAP" --arg ttl "$PEER_STATE_TTL" \
    --arg java "$("$JAVA" -version 2>&1 | head -n 1)" --arg kafka "Apache Kafka $KAFKA_VERSION" \
    --arg pg "$(psql_val 'SHOW server_version')" --arg cores "$(nproc)" \
    --arg commit "$(git -C "$CAMJOIN_SRC" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    --arg flink "$(sed -n 's|.*<flink.version>\(.*\)</flink.version>.*|\1|p' "$PEER_DIR/pom.xml")" \
    --arg kconn "$(sed -n 's|.*<flink.kafka.version>\(.*\)</flink.kafka.version>.*|\1|p' "$PEER_DIR/pom.xml")" \
    --arg jconn "$(sed -n 's|.*<flink.jdbc.version>\(.*\)</flink.jdbc.version>.*|\1|p' "$PEER_DIR/pom.xml")" \
    '{peer: "flink", flink: $flink, kafka_connector: $kconn, jdbc_connector: $jconn,
      java: $java, kafka: $kafka, postgresql: $pg, cores: ($cores|tonumber), commit: $commit,
      events: ($events|tonumber), partitions: ($parts|tonumber),
      elapsed_s: ($job_s|tonumber), events_per_s: ($ev_s|tonumber),
      jvm_total_s: ($jvm_s|tonumber), wall_s: ($wall_s|tonumber),
      cpu_s: ($jvm_cpu|tonumber), postgres_cpu_s: ($pg_cpu|tonumber),
      cpu_s_with_postgres: ($cpu_total|tonumber),
      cpu_s_per_million_events: ($cpu_per_m|tonumber),
      cpu_s_per_million_events_with_postgres: ($cpu_total_per_m|tonumber),
      peak_rss_mib: ($rss|tonumber),
      rows: ($rows|tonumber), distinct_ids: ($distinct|tonumber), expected_rows: ($expected|tonumber),
      duplicates_written: ($dups|tonumber), rows_lost: ($lost|tonumber),
      sent: ($sent|tonumber), duplicates_sent: ($dups_sent|tonumber),
      malformed_sent: ($malformed|tonumber), malformed_written_duplicate_key: ($mal_written|tonumber), not_written_besides_duplicates: ($skipped|tonumber),
      sink_table: "camera_events (config/schema.sql; kafka_partition/kafka_offset from Kafka metadata)",
      batch: {"sink.buffer-flush.max-rows": ($max_rows|tonumber),
              "sink.buffer-flush.interval": $interval,
              reWriteBatchedInserts: ($rewrite == "1"), tuned: ($tuned == "1")},
      parallelism: ($par|tonumber), sink_parallelism: ($spar|tonumber), heap: $heap, state_ttl: $ttl}' >"$RESULTS/$RESULT_NAME.json"

printf '\n%s\n' "Flink peer ($EVENTS events, $PARTS partitions, Flink parallelism $PARALLELISM, sink $SINK_MAX_ROWS rows / $SINK_INTERVAL)"
printf '  %-40s %12.0f events/s  (%.2f s job, %.2f s JVM)\n' "throughput" "$EV_S" "$JOB_S" "$JVM_S"
printf '  %-40s %12.2f s   (PostgreSQL: %.2f s)\n' "JVM CPU" "$JVM_CPU" "$PG_CPU"
printf '  %-40s %12.2f s   (with PostgreSQL: %.2f s)\n' "JVM CPU per 1M events" "$CPU_PER_M" "$CPU_TOTAL_PER_M"
printf '  %-40s %12.0f MiB\n' "JVM peak RSS" "$RSS_MIB"
printf '  %-40s %12s   (expected %s, distinct %s, duplicates %s, lost %s)\n' "rows" "$ROWS" "$EXPECTED" "$DISTINCT" "$DUP_ROWS" "$LOST"
log "wrote $RESULTS/$RESULT_NAME.json"
