#!/usr/bin/env bash
# bench/peers/connect/run.sh — the Kafka Connect peer of camjoin's benchmark:
# what the most used sink does on the same rows. Kafka Connect standalone
# (Apache Kafka 4.4.0) with Debezium's JDBC sink connector upserting into
# PostgreSQL 15. It does no dedup and no join: the upsert on the table's key
# (event_id, event_ts) makes a re-sent event overwrite its row, and the join
# columns (site_id, site_name, zone, latitude, longitude) stay NULL.
#
#   bash bench/peers/connect/run.sh          # 300k events, 32 partitions
#   PEER_EVENTS=50000 bash bench/peers/connect/run.sh
#   bash bench/peers/connect/run.sh live     # 10k events/s live (below)
#
# Environment: PEER_EVENTS (300000), PEER_PARTITIONS (32), PEER_TASKS
# (tasks.max, 2), PEER_BATCH_SIZE (the sink's batch.size, 2000),
# PEER_MAX_POLL (consumer max.poll.records, 2000), PEER_MALFORMED (the
# generator's --malformed-ratio, 0 as in bench/run.sh), PEER_NO_BUILD=1
# (use the build in CAMJOIN_BIN as it is), CAMJOIN_BIN (build/ in the repository).
# Writes bench/results/peers/connect.json (PEER_RESULTS: another folder).
# live: Connect on a topic of 8 partitions, on a warmed broker
# (PEER_WARM_SECONDS of traffic, 20), camjoin-gen --ts-text at PEER_LIVE_RATE
# (10000) events/s for PEER_LIVE_SECONDS (30); the latency from PostgreSQL's
# commit timestamps (bench/lib.sh's peer_live), into connect-live.json.
#
# The steps: build camjoin (for camjoin-gen); a throwaway PostgreSQL 15 and
# one Apache Kafka broker (tests/integration/lib.sh, as bench/run.sh); the
# backlog from camjoin-gen with bench/run.sh's throughput flags (seed 7, 5 %
# duplicates, 1 % unknown cameras); the jars (pom.xml beside this file,
# fetched once into ${XDG_CACHE_HOME:-$HOME/.cache}/camjoin/connect-*);
# Connect until every row is in and the sink's group has no lag; then the
# checks (distinct event_ids = the manifest's valid ids, no row lost) and
# only then the figures. The Connect JVM dies with this shell (pdeathsig)
# and is stopped by lib.sh's EXIT trap; PostgreSQL and Kafka too.
#
# Why the messages are re-encoded before Connect reads them: the Debezium
# JDBC sink needs a schema on every record (it builds each row from the
# record's value schema and Struct fields, so the schemaless Map that
# JsonConverter with schemas.enable=false gives it cannot be written).
# The standard fix without a schema registry is JsonConverter's
# schema.content (in Kafka 4.4): one Connect schema (value-schema.json) for
# every bare JSON message, which needs schemas.enable=true. A Connect field
# has one type, and camjoin-gen writes event_ts three ways: RFC 3339 with Z
# or an offset (80 %) and integer epoch milliseconds (20 %). JsonConverter
# turns a number into null for a string field and a string into 0 for an
# integer one, so no one schema takes both. A producer that feeds a
# schema'd sink sends one type: here a jq pass (not timed) copies the
# backlog into a second topic with the epoch-ms event_ts written as an
# RFC 3339 UTC string, every other message byte for byte. PostgreSQL parses
# the strings (the JDBC URL has stringtype=unspecified, so the text is bound
# as untyped and cast to timestamptz by the server). Fields not in the
# schema (fw, bbox) are dropped by the converter: attributes stays NULL.
# kafka_partition and kafka_offset come from Kafka's InsertField SMT.
# Malformed messages: errors.tolerance=all with a dead-letter topic, counted.
set -euo pipefail
PEER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CAMJOIN_SRC=$(cd "$PEER_DIR/../../.." && pwd)
export CAMJOIN_BIN=${CAMJOIN_BIN:-$CAMJOIN_SRC/build}
EVENTS=${PEER_EVENTS:-300000}
PARTS=${PEER_PARTITIONS:-32}
TASKS=${PEER_TASKS:-2}
BATCH_SIZE=${PEER_BATCH_SIZE:-2000}
MAX_POLL=${PEER_MAX_POLL:-2000}
MALFORMED=${PEER_MALFORMED:-0}
RESULTS=${PEER_RESULTS:-$CAMJOIN_SRC/bench/results/peers}
TOPIC_RAW=peer-raw TOPIC=peer-json DLQ=peer-dlq CONNECTOR=peer-connect TABLE=connect_events
PHASE=${1:-backlog}
[[ $PHASE == backlog || $PHASE == live ]] || { echo "run.sh: unknown phase '$PHASE' (backlog, live)" >&2; exit 2; }
LIVE_RATE=${PEER_LIVE_RATE:-10000} LIVE_S=${PEER_LIVE_SECONDS:-30} WARM_S=${PEER_WARM_SECONDS:-20}

if [[ ${PEER_NO_BUILD:-0} != 1 ]]; then
    echo "building camjoin into $CAMJOIN_BIN" >&2
    cmake -S "$CAMJOIN_SRC" -B "$CAMJOIN_BIN" -DCMAKE_BUILD_TYPE=Release >"/tmp/camjoin-peer-build.log" 2>&1 &&
        cmake --build "$CAMJOIN_BIN" -j2 >>"/tmp/camjoin-peer-build.log" 2>&1 || {
        tail -n 20 /tmp/camjoin-peer-build.log >&2
        echo "run.sh: the build failed (log: /tmp/camjoin-peer-build.log)" >&2
        exit 1
    }
fi
# shellcheck source=../../../tests/integration/lib.sh
source "$CAMJOIN_SRC/tests/integration/lib.sh"
# shellcheck source=../../lib.sh
source "$CAMJOIN_SRC/bench/lib.sh"
[[ ${CAMJOIN_KAFKA:-real} == real ]] || fail "the Connect peer needs a real broker (unset CAMJOIN_KAFKA)"
for t in jq kcat setpriv; do command -v "$t" >/dev/null || fail "$t not found"; done
need_bin camjoin-gen
# the broker as in bench/run.sh: a 1 GiB heap, its logs on tmpfs
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms1g -Xmx1g}
export CAMJOIN_KAFKA_LOG_ROOT=${BENCH_KAFKA_LOG_ROOT-/dev/shm}
[[ -z $CAMJOIN_KAFKA_LOG_ROOT || -d $CAMJOIN_KAFKA_LOG_ROOT ]] || CAMJOIN_KAFKA_LOG_ROOT=""

# ------------------------------------------------------------- the jars
pom_prop() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$PEER_DIR/pom.xml" | head -n 1; }
CONNECT_KAFKA=$(pom_prop kafka.version)
CONNECT_DBZ=$(pom_prop debezium.version)
CONNECT_HOME=${XDG_CACHE_HOME:-$HOME/.cache}/camjoin/connect-$CONNECT_KAFKA-$CONNECT_DBZ
connect_fetch() {
    maven_fetch "$PEER_DIR/pom.xml" "$CONNECT_HOME" "debezium-connector-jdbc-$CONNECT_DBZ.jar" \
        "Kafka Connect $CONNECT_KAFKA and Debezium JDBC sink $CONNECT_DBZ"
}

# ------------------------------------------------------------- helpers
rows_now() { psql_val "SELECT count(*) FROM $TABLE"; }
rows_at_least() { ROWS_SEEN=$(rows_now); ((ROWS_SEEN >= $1)); }
task_started() {  # (no log yet: 0)
    local n
    n=$(grep -c 'Sink task finished initialization and start' "$CJ_TMP/connect.log" 2>/dev/null) || true
    ((${n:-0} >= TASKS))
}
group_lag() {  # total lag of the sink's consumer group (empty: not known yet)
    kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$KAFKA_BROKERS" \
        --describe --group "connect-$CONNECTOR" 2>/dev/null |
        awk -v t="$TOPIC" '$2 == t && $6 ~ /^[0-9]+$/ { s += $6; n++ } END { if (n) print s }'
}
lag_zero() { GROUP_LAG=$(group_lag); [[ $GROUP_LAG == 0 ]]; }

# Kafka Connect standalone with the sink on $TOPIC (CONNECT_PID), until its
# tasks have started
connect_start() {
    REST_PORT=$(free_port)
    _kafka_log4j "$CJ_TMP/connect-log4j2.properties" INFO "$CJ_TMP/connect.log"
    cat >"$CJ_TMP/worker.properties" <<EOF
bootstrap.servers=$KAFKA_BROKERS
listeners=http://127.0.0.1:$REST_PORT
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true
value.converter.schema.content=$(jq -c . "$PEER_DIR/value-schema.json")
offset.storage.file.filename=$CJ_TMP/connect.offsets
offset.flush.interval.ms=1000
consumer.max.poll.records=$MAX_POLL
consumer.auto.offset.reset=earliest
EOF
    cat >"$CJ_TMP/sink.properties" <<EOF
name=$CONNECTOR
connector.class=io.debezium.connector.jdbc.JdbcSinkConnector
tasks.max=$TASKS
topics=$TOPIC
connection.url=jdbc:postgresql://127.0.0.1:$PGPORT/$PGDATABASE?stringtype=unspecified
connection.username=$PGUSER
connection.password=unused
insert.mode=upsert
primary.key.mode=record_value
primary.key.fields=event_id,event_ts
delete.enabled=false
schema.evolution=none
collection.name.format=$TABLE
batch.size=$BATCH_SIZE
transforms=pos
transforms.pos.type=org.apache.kafka.connect.transforms.InsertField\$Value
transforms.pos.partition.field=kafka_partition
transforms.pos.offset.field=kafka_offset
errors.tolerance=all
errors.log.enable=true
errors.deadletterqueue.topic.name=$DLQ
errors.deadletterqueue.topic.replication.factor=1
errors.deadletterqueue.context.headers.enable=true
EOF
    log "starting Kafka Connect standalone (Debezium JDBC sink $CONNECT_DBZ, tasks.max=$TASKS, batch.size=$BATCH_SIZE, max.poll.records=$MAX_POLL)"
    T_LAUNCH=$(now_s)
    setpriv --pdeathsig KILL -- java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$CJ_TMP/connect-log4j2.properties" -cp "$CONNECT_HOME/libs/*" \
        org.apache.kafka.connect.cli.ConnectStandalone "$CJ_TMP/worker.properties" "$CJ_TMP/sink.properties" \
        >"$CJ_TMP/connect.stdout.log" 2>&1 </dev/null &
    CONNECT_PID=$!
    CAMJOIN_PIDS+=("$CONNECT_PID")
    rc=0
    wait_for -i 0.05 -p "$CONNECT_PID" 120 -- task_started || rc=$?
    ((rc != 2)) || fail "Kafka Connect exited at startup: $(grep -E 'ERROR|Exception' "$CJ_TMP/connect.log" | head -n 3)"
    ((rc == 0)) || fail "the sink task did not start within 120 s"
}

# ------------------------------------------------------------- live
if [[ $PHASE == live ]]; then
    connect_fetch
    pg_start
    commit_ts_on
    kafka_start peer-connect-warm 1
    log "warming the broker: $WARM_S s of traffic"
    kafka_warm_traffic "$WARM_S"
    kafka_topic_create "$TOPIC" 8
    kafka_topic_create "$DLQ" 1
    psql -XAtq -1 -v ON_ERROR_STOP=1 -f "$CAMJOIN_SRC/config/schema.sql" >/dev/null
    psql_val "CREATE TABLE $TABLE (LIKE camera_events INCLUDING ALL)" >/dev/null
    connect_start
    # --ts-text: event_ts always a string, which the one value schema needs
    # (the backlog re-encodes the topic instead; see the top)
    peer_live "$CONNECT_PID" "$TOPIC" "$TABLE" "$LIVE_RATE" "$LIVE_S" --ts-text
    _stop_pid "$CONNECT_PID" TERM 20
    forget_pid "$CONNECT_PID"
    mkdir -p "$RESULTS"
    jq --arg cfg "tasks.max=$TASKS, batch.size=$BATCH_SIZE, max.poll.records=$MAX_POLL" --arg secs "$LIVE_S" \
        --arg commit "$(git -C "$CAMJOIN_SRC" rev-parse --short HEAD 2>/dev/null || echo '?')" \
        '{peer: "kafka-connect", settings: $cfg, partitions: 8, seconds: ($secs|tonumber), commit: $commit} + .' \
        <<<"$LIVE_JSON" >"$RESULTS/connect-live.json"
    printf '\n%s\n' "Kafka Connect peer live ($LIVE_RATE events/s for $LIVE_S s, 8 partitions)"
    jq -r '"  p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, p99.9 \(.p999_ms) ms, max \(.max_ms) ms (\(.rows_measured) rows); CPU \(.cpu_percent_of_one_core | floor) % of a core, RSS \(.rss_kib / 1024 | floor) MiB"' \
        "$RESULTS/connect-live.json"
    log "wrote $RESULTS/connect-live.json"
    exit 0
fi

# ------------------------------------------------------------- the backlog
connect_fetch
pg_start
kafka_start "$TOPIC_RAW" "$PARTS"
kafka_topic_create "$TOPIC" "$PARTS"
kafka_topic_create "$DLQ" 1
log "producing $EVENTS events into $PARTS partitions (camjoin-gen, bench/run.sh's throughput flags)"
bench_produce "$TOPIC_RAW" "$EVENTS" "$MALFORMED" --manifest "$CJ_TMP/produce.manifest.csv"
VALID=$(json_get "$CJ_TMP/produce.json" valid_new)
SENT=$(json_get "$CJ_TMP/produce.json" sent)
assert_eq "messages in $TOPIC_RAW = sent" "$SENT" "$(kafka_end_total "$TOPIC_RAW")"

# one type for event_ts (see the top): epoch ms -> RFC 3339 UTC, the rest as it is
log "re-encoding the backlog into $TOPIC (epoch-ms event_ts as RFC 3339 strings; not timed)"
# shellcheck disable=SC2016
kcat -C -b "$KAFKA_BROKERS" -t "$TOPIC_RAW" -o beginning -e -q -J 2>"$CJ_TMP/kcat.err" | jq -r '
    (.payload // "") as $p | (try ($p | fromjson) catch null) as $j
    | (if ($j | type) == "object" and ($j.event_ts | type) == "number" then
           ($j.event_ts / 1000 | floor) as $s
           | $j | .event_ts = (($s | strftime("%Y-%m-%dT%H:%M:%S")) + "."
                               + ("00" + (($j.event_ts - $s * 1000) | tostring))[-3:] + "Z")
           | tojson
       else $p end) as $v
    | "\(.key // "")\t\($v)"' |
    kcat -P -b "$KAFKA_BROKERS" -t "$TOPIC" -K $'\t' -X linger.ms=20 2>>"$CJ_TMP/kcat.err" ||
    fail "re-encoding failed: $(tail -n 3 "$CJ_TMP/kcat.err")"
assert_eq "messages in $TOPIC = sent" "$SENT" "$(kafka_end_total "$TOPIC")"

# the sink's table: camera_events' columns, key, defaults and indexes, without
# the partitions and the rollup triggers (as bench/run.sh's COPY ceiling)
psql -XAtq -1 -v ON_ERROR_STOP=1 -f "$CAMJOIN_SRC/config/schema.sql" >/dev/null
psql_val "CREATE TABLE $TABLE (LIKE camera_events INCLUDING ALL)" >/dev/null
psql_val "CHECKPOINT" >/dev/null

# ------------------------------------------------------------- Connect
connect_start
T0=$(now_s)
CPU0=$(proc_cpu_s "$CONNECT_PID")
log "sink task started $(echo "$T0 - $T_LAUNCH" | bc -l | xargs printf '%.1f') s after launch; waiting for $VALID rows"
rc=0
wait_for -i 0.1 -p "$CONNECT_PID" 1800 -- rows_at_least "$VALID" || rc=$?
((rc != 2)) || fail "Kafka Connect exited: $(grep -E 'ERROR|Exception' "$CJ_TMP/connect.log" | head -n 3)"
((rc == 0)) || fail "only ${ROWS_SEEN:-?} of $VALID rows within 1800 s"
T1=$(now_s)
CPU1=$(proc_cpu_s "$CONNECT_PID")
grep -q 'Task threw an uncaught and unrecoverable exception' "$CJ_TMP/connect.log" &&
    fail "a sink task died: $(grep -A3 'unrecoverable exception' "$CJ_TMP/connect.log" | head -n 4)"
rc=0
wait_for -i 1 -p "$CONNECT_PID" 120 -- lag_zero || rc=$?
((rc == 0)) || fail "the sink's consumer group connect-$CONNECTOR still has lag '${GROUP_LAG:-?}' after 120 s"
HWM_KIB=$(proc_hwm_kib "$CONNECT_PID")
CPU_TOTAL=$(proc_cpu_s "$CONNECT_PID")
_stop_pid "$CONNECT_PID" TERM 20

# ------------------------------------------------------------- checks
load_manifest "$CJ_TMP/produce.manifest.csv"
ROWS=$(rows_now)
DISTINCT=$(psql_val "SELECT count(DISTINCT event_id) FROM $TABLE")
LOST=$(psql_val "SELECT count(*) FROM (SELECT event_id FROM manifest WHERE kind = 'valid'
                 EXCEPT SELECT event_id FROM $TABLE) x")
EXTRA=$(psql_val "SELECT count(*) FROM (SELECT event_id FROM $TABLE
                  EXCEPT SELECT event_id FROM manifest WHERE kind = 'valid') x")
DEAD=$(kafka_end_total "$DLQ")
echo "checks"
assert_eq "manifest distinct valid ids = valid_new" "$VALID" \
    "$(psql_val "SELECT count(DISTINCT event_id) FROM manifest WHERE kind = 'valid'")"
assert_eq "distinct event_ids in $TABLE = valid_new" "$VALID" "$DISTINCT"
assert_eq "rows in $TABLE = valid_new (upsert collapses re-sends)" "$VALID" "$ROWS"
assert_eq "valid ids not in $TABLE (rows lost)" 0 "$LOST"
assert_eq "ids in $TABLE not valid in the manifest" 0 "$EXTRA"
assert_eq "rows whose camera_id differs from the manifest" 0 \
    "$(psql_val "SELECT count(*) FROM $TABLE e JOIN manifest m ON m.event_id = e.event_id
                 AND m.kind = 'valid' WHERE m.camera_id IS DISTINCT FROM e.camera_id")"
# each row against camjoin-gen's own message (the raw topic, before the
# re-encoding): event_ts as the same instant, the other data columns equal
load_messages "$TOPIC_RAW"
assert_eq "rows whose columns differ from their raw message" 0 \
    "$(psql_val "SELECT count(*) FROM $TABLE e WHERE NOT EXISTS (
                   SELECT FROM kafka_messages k CROSS JOIN LATERAL (SELECT k.payload::jsonb AS j) m
                    WHERE k.key = e.event_id AND k.key NOT LIKE 'bad-%'
                      AND e.camera_id = m.j->>'camera_id' AND e.event_type = m.j->>'event_type'
                      AND e.event_ts = CASE jsonb_typeof(m.j->'event_ts')
                            WHEN 'number' THEN timestamptz 'epoch' + (m.j->>'event_ts')::bigint * interval '1 ms'
                            ELSE (m.j->>'event_ts')::timestamptz END
                      AND e.confidence IS NOT DISTINCT FROM (m.j->>'confidence')::real
                      AND e.object_count IS NOT DISTINCT FROM (m.j->>'object_count')::integer)")"
assert_eq "rows without kafka_partition/kafka_offset" 0 \
    "$(psql_val "SELECT count(*) FROM $TABLE WHERE kafka_partition IS NULL OR kafka_offset IS NULL")"
assert_eq "dead letters = malformed messages" "$(json_get "$CJ_TMP/produce.json" malformed)" "$DEAD"
assert_eq "consumer group lag" 0 "$GROUP_LAG"

# ------------------------------------------------------------- figures
ELAPSED=$(echo "$T1 - $T0" | bc -l)
CPU=$(echo "$CPU1 - $CPU0" | bc -l)
mkdir -p "$RESULTS"
jq -n --arg events "$SENT" --arg parts "$PARTS" --arg elapsed "$ELAPSED" --arg cpu "$CPU" \
    --arg cpu_total "$CPU_TOTAL" --arg startup "$(echo "$T0 - $T_LAUNCH" | bc -l)" \
    --arg hwm "$HWM_KIB" --arg rows "$ROWS" --arg distinct "$DISTINCT" --arg valid "$VALID" \
    --arg lost "$LOST" --arg dead "$DEAD" --arg batch "$BATCH_SIZE" --arg poll "$MAX_POLL" \
    --arg tasks "$TASKS" --arg kafka "$CONNECT_KAFKA" --arg dbz "$CONNECT_DBZ" \
    --arg commit "$(git -C "$CAMJOIN_SRC" rev-parse --short HEAD 2>/dev/null || echo ?)" \
    --arg dups "$(json_get "$CJ_TMP/produce.json" duplicates)" --arg table "$TABLE" \
    '{peer: "Kafka Connect standalone \($kafka) + Debezium JDBC sink \($dbz), upsert",
      commit: $commit, table: $table, dedup: false, join: false,
      events: ($events|tonumber), partitions: ($parts|tonumber),
      elapsed_s: ($elapsed|tonumber), events_per_s: (($events|tonumber) / ($elapsed|tonumber)),
      cpu_s: ($cpu|tonumber), cpu_s_per_million_events: (($cpu|tonumber) * 1e6 / ($events|tonumber)),
      cpu_s_with_startup: ($cpu_total|tonumber), startup_s: ($startup|tonumber),
      peak_rss_mib: (($hwm|tonumber) / 1024),
      rows: ($rows|tonumber), distinct_ids: ($distinct|tonumber), expected_rows: ($valid|tonumber),
      duplicates_sent: ($dups|tonumber),
      duplicates_written: (($rows|tonumber) - ($distinct|tonumber)),
      rows_lost: ($lost|tonumber), dead_letters: ($dead|tonumber),
      settings: {"batch.size": ($batch|tonumber), "consumer.max.poll.records": ($poll|tonumber),
                 "tasks.max": ($tasks|tonumber), "insert.mode": "upsert",
                 "primary.key.fields": "event_id,event_ts"}}' >"$RESULTS/connect.json"
log "wrote $RESULTS/connect.json"
printf '\n%s\n' "Kafka Connect $CONNECT_KAFKA + Debezium JDBC sink $CONNECT_DBZ (upsert, no dedup, no join): $SENT events, $PARTS partitions"
printf '  %-34s %10.0f events/s  (%.2f s from the task start to the last row)\n' "throughput" \
    "$(echo "$SENT / $ELAPSED" | bc -l)" "$ELAPSED"
printf '  %-34s %10.2f s   (%.2f s per 1M events; %.2f s with startup)\n' "JVM CPU" "$CPU" \
    "$(echo "$CPU * 1000000 / $SENT" | bc -l)" "$CPU_TOTAL"
printf '  %-34s %10.0f MiB\n' "peak RSS (VmHWM)" "$(echo "$HWM_KIB / 1024" | bc -l)"
printf '  %-34s %10s   (distinct %s, expected %s, lost %s, dead letters %s)\n' "rows" "$ROWS" \
    "$DISTINCT" "$VALID" "$LOST" "$DEAD"
