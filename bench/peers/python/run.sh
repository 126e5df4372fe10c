#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2153  # (CAMJOIN_PID, CAMJOIN_RC: set by lib.sh)
# bench/peers/python/run.sh — the Python peer of camjoin's benchmark (issue
# 13): bench/peers/python/peer.py (confluent-kafka + psycopg 3, "what a team
# writes in an afternoon") measured the way bench/run.sh measures camjoin.
# Run by hand (it is not a test), after building camjoin:
#
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2
#   bash bench/peers/python/run.sh              # backlog, then live
#   bash bench/peers/python/run.sh backlog      # one phase (backlog, live)
#   CAMJOIN_BIN=/tmp/b-peers bash bench/peers/python/run.sh backlog
#
# It starts a throwaway PostgreSQL 15 (durable defaults, as bench/run.sh) and
# an Apache Kafka broker (its logs on /dev/shm, a 1 GiB heap, as
# bench/run.sh) through the integration tests' harness
# (tests/integration/lib.sh), whose EXIT trap stops everything, the peer too.
# The peer's dependencies (requirements.txt, pinned) go into a venv outside
# the repo, made when missing or when requirements.txt changed (py_venv):
# ${XDG_CACHE_HOME:-$HOME/.cache}/camjoin/peers-venv (PEER_VENV overrides).
#
# backlog: camjoin-gen pre-produces PEER_EVENTS events on PEER_PARTITIONS
#   partitions with bench/run.sh's throughput flags (seed 7, 5 % duplicates,
#   1 % unknown cameras, PEER_MALFORMED_RATIO malformed, default 0 as there);
#   the peer runs --until-end into freshly made tables (config/schema.sql,
#   the day partitions camjoin's upkeep would make), PEER_REPEAT times
#   (median); then, unless PEER_CAMJOIN=0, camjoin --until-end on the same
#   topic, so both figures come from the same machine and minute.
# live: a warmed broker (PEER_WARM_SECONDS of traffic, as bench/run.sh),
#   8 partitions, camjoin-gen at PEER_LIVE_RATE events/s for
#   PEER_LIVE_SECONDS (bench/run.sh's live flags); the peer measures commit
#   time - Kafka timestamp of every message, camjoin its histogram; and for
#   both, bench/lib.sh's commit_latency reads the same figure from
#   PostgreSQL's commit timestamps, the way the Flink and Connect runners
#   measure their peers (the method's cross-check).
# Every run is checked before a figure is printed: rows = distinct event_ids
# = the generator's valid_new, the same ids as its manifest, join misses =
# unknown_camera, dead letters = malformed (by reason), offsets in
# camjoin_offsets = the partitions' ends.
# Sizes: PEER_EVENTS (300000), PEER_PARTITIONS (32), PEER_REPEAT (1),
# PEER_LIVE_RATE (10000), PEER_LIVE_SECONDS (30), PEER_WARM_SECONDS (20),
# PEER_BATCH_ROWS (20000, camjoin's batch.max_rows), PEER_BATCH_MS (100).
# Results: PEER_RESULTS/python-<phase>.json (default bench/results/peers).
set -euo pipefail
PEER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CAMJOIN_SRC=$(cd "$PEER_DIR/../../.." && pwd)
# shellcheck source=../../../tests/integration/lib.sh
source "$CAMJOIN_SRC/tests/integration/lib.sh"
# shellcheck source=../../lib.sh
source "$CAMJOIN_SRC/bench/lib.sh"

EVENTS=${PEER_EVENTS:-300000}
PARTS=${PEER_PARTITIONS:-32}
REPEAT=${PEER_REPEAT:-1}
MALFORMED=${PEER_MALFORMED_RATIO:-0}
WITH_CAMJOIN=${PEER_CAMJOIN:-1}
LIVE_RATE=${PEER_LIVE_RATE:-10000}
LIVE_S=${PEER_LIVE_SECONDS:-30}
WARM_S=${PEER_WARM_SECONDS:-20}
BATCH_ROWS=${PEER_BATCH_ROWS:-20000}
BATCH_MS=${PEER_BATCH_MS:-100}
VENV=${PEER_VENV:-$CJ_CACHE/peers-venv}
RESULTS=${PEER_RESULTS:-$CAMJOIN_SRC/bench/results/peers}
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms1g -Xmx1g}
export CAMJOIN_KAFKA_LOG_ROOT=${BENCH_KAFKA_LOG_ROOT-/dev/shm}
[[ -z $CAMJOIN_KAFKA_LOG_ROOT || -d $CAMJOIN_KAFKA_LOG_ROOT ]] || CAMJOIN_KAFKA_LOG_ROOT=""
export PGOPTIONS="-c client_min_messages=warning"
[[ ${CAMJOIN_KAFKA:-real} != mock ]] || fail "the peer is measured on a real broker only (unset CAMJOIN_KAFKA)"

need_bin camjoin camjoin-gen
command -v kcat >/dev/null || fail "kcat not found (apt-get install kcat)"
command -v python3 >/dev/null || fail "python3 not found (apt-get install python3 python3-venv)"

# ------------------------------------------------------------- the venv
py_venv "$VENV" "$PEER_DIR/requirements.txt"
PY_VERSIONS=$("$VENV/bin/python" -c 'import sys, confluent_kafka, psycopg
from importlib.metadata import version
print("Python %s, confluent-kafka %s (librdkafka %s), psycopg %s (%s)" % (sys.version.split()[0],
      version("confluent-kafka"), confluent_kafka.libversion()[0], psycopg.__version__, psycopg.pq.__impl__))') ||
    fail "the venv $VENV does not import its packages (remove it to have it made again)"

# ------------------------------------------------------------- helpers
med_line() { sort -g | sed -n "$((($# + 1) / 2))p"; }  # (stdin: lines; $#: how many)

# camjoin's tables, new and empty, with the day partitions (today .. +7, UTC)
# that camjoin's upkeep makes at its start (postgres.partitions_ahead = 7),
# and the rollup kept by a trigger for the peer (camjoin drops it at start)
fresh_schema() {
    psql -XAtq -v ON_ERROR_STOP=1 -c "DROP TABLE IF EXISTS camera_events, camera_events_minute,
        camjoin_offsets, camjoin_dead_letters CASCADE" >/dev/null
    psql -XAtq -1 -v ON_ERROR_STOP=1 -f "$CAMJOIN_SRC/config/schema.sql" >/dev/null ||
        fail "config/schema.sql did not apply"
    peer_rollup_trigger
    psql_val "SELECT count(camjoin_ensure_partition('camera_events', (now() AT TIME ZONE 'UTC')::date + d))
              FROM generate_series(0, 7) d" >/dev/null
}

PEER_PID=""
peer_start() {  # NAME ARGS...: peer.py in the background (stdout NAME.out, stderr NAME.log)
    local name=$1
    shift
    "$VENV/bin/python" "$PEER_DIR/peer.py" --brokers "$KAFKA_BROKERS" --pg "$CAMJOIN_PG_URI" \
        --cameras "$CAMERAS_CSV" --batch-rows "$BATCH_ROWS" --batch-ms "$BATCH_MS" "$@" \
        >"$CJ_TMP/$name.out" 2>"$CJ_TMP/$name.log" </dev/null &
    PEER_PID=$!
    CAMJOIN_PIDS+=("$PEER_PID")  # the EXIT trap stops it
}
peer_wait() {  # NAME TIMEOUT: waits for the peer, fails unless it exited 0 with its figures
    local name=$1 rc=0 i
    wait_for -i 0.2 "$2" -- pid_gone "$PEER_PID" || fail "peer.py ($name) still running after $2 s"
    wait "$PEER_PID" || rc=$?
    for i in "${!CAMJOIN_PIDS[@]}"; do
        [[ ${CAMJOIN_PIDS[$i]} != "$PEER_PID" ]] || unset "CAMJOIN_PIDS[$i]"
    done
    ((rc == 0)) || fail "peer.py ($name) exited $rc: $(tail -n 5 "$CJ_TMP/$name.log")"
    tail -n 1 "$CJ_TMP/$name.out" >"$CJ_TMP/$name.json"
    jq -e .consumed "$CJ_TMP/$name.json" >/dev/null 2>&1 || fail "peer.py ($name) printed no figures"
}
_peer_assigned() { grep -q "assigned $2 partitions" "$1"; }  # LOG N

# The end state of a run with GROUP over TOPIC, against the generator's
# SUMMARY and the manifest loaded with load_manifest.
check_result() {  # WHO SUMMARY TOPIC GROUP
    local who=$1 s=$2 topic=$3 group=$4 valid
    valid=$(json_get "$s" valid_new)
    assert_eq "$who: rows = valid_new" "$valid" "$(psql_val 'SELECT count(*) FROM camera_events')"
    assert_eq "$who: distinct event_ids = valid_new" "$valid" \
        "$(psql_val 'SELECT count(DISTINCT event_id) FROM camera_events')"
    assert_eq "$who: ids not valid in the manifest, or missing" 0 \
        "$(psql_val "SELECT count(*) FROM ((SELECT event_id FROM camera_events
                       EXCEPT SELECT event_id FROM manifest WHERE kind = 'valid')
                     UNION ALL (SELECT event_id FROM manifest WHERE kind = 'valid'
                       EXCEPT SELECT event_id FROM camera_events)) x")"
    assert_eq "$who: join misses = unknown_camera" "$(json_get "$s" unknown_camera)" \
        "$(psql_val 'SELECT count(*) FROM camera_events WHERE site_id IS NULL')"
    assert_eq "$who: dead letters = malformed" "$(json_get "$s" malformed)" \
        "$(psql_val "SELECT count(*) FROM camjoin_dead_letters WHERE topic = '$topic'")"
    assert_reasons "$who: dead-letter reasons differing from the manifest's" "$topic"
    assert_eq "$who: camjoin_offsets = the partitions' ends" "$(kafka_end_offsets "$topic" | tr ' \n' ': ')" \
        "$(psql_val "SELECT kafka_partition || ':' || next_offset FROM camjoin_offsets
                     WHERE consumer_group = '$group' AND topic = '$topic' ORDER BY kafka_partition" | tr '\n' ' ')"
}

json_out() {  # NAME JSON
    mkdir -p "$RESULTS"
    jq . <<<"$2" >"$RESULTS/$1.json"
    log "wrote $RESULTS/$1.json"
}

# ------------------------------------------------------------- backlog
phase_backlog() {
    local topic=peer-backlog i runs=() best name sum
    kafka_start "$topic" "$PARTS"
    log "producing $EVENTS events into $PARTS partitions"
    bench_produce "$topic" "$EVENTS" "$MALFORMED" --manifest "$CJ_TMP/manifest.csv"
    sum=$CJ_TMP/produce.json
    load_manifest "$CJ_TMP/manifest.csv"
    local valid
    valid=$(json_get "$sum" valid_new)

    for ((i = 1; i <= REPEAT; i++)); do
        name=peer$i
        fresh_schema
        psql_val "CHECKPOINT" >/dev/null
        pg_cpu_start
        local t0 t1
        t0=$(now_s)
        # shellcheck disable=SC2086
        peer_start "$name" --topic "$topic" --group "$name" --until-end ${PEER_VERBOSE:+--verbose}
        peer_wait "$name" 1800
        t1=$(now_s)
        local pg_cpu
        pg_cpu=$(pg_cpu_stop)
        echo "run $i: the peer"
        check_result "peer run $i" "$sum" "$topic" "$name"
        runs+=("$(jq -r '.active_s' "$CJ_TMP/$name.json") $name $pg_cpu $(echo "$t1 - $t0" | bc -l)")
    done
    local p_name p_pg p_wall
    best=$(printf '%s\n' "${runs[@]}" | med_line "${runs[@]}")
    read -r _ p_name p_pg p_wall <<<"$best"
    local pj=$CJ_TMP/$p_name.json p_cpu_m
    p_cpu_m=$(jq -r --arg e "$EVENTS" '(.cpu_user_s + .cpu_sys_s) * 1000000 / ($e | tonumber)' "$pj")

    local c_active="" c_rate="" c_user="" c_sys="" c_rss="" c_pg="" c_cpu_m=""
    if [[ $WITH_CAMJOIN == 1 ]]; then
        fresh_schema
        psql_val "CHECKPOINT" >/dev/null
        pg_cpu_start
        camjoin_args "$topic" camjoin
        CAMJOIN_WRAPPER="/usr/bin/time -f %U,%S,%M -o $CJ_TMP/camjoin.time" \
            camjoin_start camjoin "${CJ_ARGS[@]}" --until-end
        camjoin_wait "$CAMJOIN_PID" 1800
        [[ $CAMJOIN_RC == 0 ]] || fail "camjoin exited $CAMJOIN_RC"
        c_pg=$(pg_cpu_stop)
        echo "camjoin on the same topic"
        check_result "camjoin" "$sum" "$topic" camjoin
        c_active=$(log_field "$CJ_TMP/camjoin.log" '"stopped"' active_s)
        c_rate=$(log_field "$CJ_TMP/camjoin.log" '"stopped"' rate)
        IFS=, read -r c_user c_sys c_rss <"$CJ_TMP/camjoin.time"
        c_cpu_m=$(echo "($c_user + $c_sys) * 1000000 / $EVENTS" | bc -l)
    fi

    json_out python-backlog "$(jq -n --slurpfile peer "$pj" --arg versions "$PY_VERSIONS" \
        --arg events "$EVENTS" --arg parts "$PARTS" --arg rows "$valid" --arg repeat "$REPEAT" \
        --arg all "$(printf '%s\n' "${runs[@]}" | awk '{ print $1 }' | sort -g | paste -sd, -)" \
        --arg pg "$p_pg" --arg wall "$p_wall" --arg cpum "$p_cpu_m" \
        --arg commit "$(git -C "$CAMJOIN_SRC" rev-parse --short HEAD 2>/dev/null || echo ?)" \
        --arg c_active "$c_active" --arg c_rate "$c_rate" --arg c_user "$c_user" --arg c_sys "$c_sys" \
        --arg c_rss "$c_rss" --arg c_pg "$c_pg" --arg c_cpum "$c_cpu_m" \
        '{commit: $commit, peer_versions: $versions, events: ($events|tonumber),
          partitions: ($parts|tonumber), rows: ($rows|tonumber), runs: ($repeat|tonumber),
          peer_seconds_all: ($all | split(",") | map(tonumber)),
          peer: ($peer[0] + {cpu_s_per_1m_events: ($cpum|tonumber), postgres_cpu_s: ($pg|tonumber),
                             process_wall_s: ($wall|tonumber)}),
          camjoin: (if $c_active == "" then null else
            {active_s: ($c_active|tonumber), rate: ($c_rate|tonumber), cpu_user_s: ($c_user|tonumber),
             cpu_sys_s: ($c_sys|tonumber), cpu_s_per_1m_events: ($c_cpum|tonumber),
             max_rss_kb: ($c_rss|tonumber), postgres_cpu_s: ($c_pg|tonumber)} end)}')"

    printf '\n%s\n' "backlog: $EVENTS events ($valid new valid) on $PARTS partitions, --until-end, Apache Kafka $KAFKA_VERSION, median of $REPEAT"
    printf '  %s\n' "$PY_VERSIONS"
    jq -r --arg cpum "$p_cpu_m" --arg pg "$p_pg" --arg rows "$valid" '
        "  python peer        \(.rate) events/s  (\(($rows|tonumber) / .active_s | floor) rows/s, \(.active_s) s active)",
        "  python peer        \($cpum | tonumber * 100 | round / 100) CPU-s per 1M events (user \(.cpu_user_s) s, sys \(.cpu_sys_s) s), peak RSS \(.max_rss_kb) KiB",
        "  python peer        PostgreSQL CPU during the run: \($pg) s; \(.batches) batches",
        "  python peer        consumed \(.consumed), inserted \(.inserted), in-memory duplicates \(.duplicates), PK conflicts \(.pk_conflicts), dead letters \(.dead_letters), join misses \(.join_misses)"' "$pj"
    if [[ $WITH_CAMJOIN == 1 ]]; then
        printf '  %-18s %.0f events/s  (%.0f rows/s, %s s active)\n' camjoin "$c_rate" \
            "$(echo "$valid / $c_active" | bc -l)" "$c_active"
        printf '  %-18s %.2f CPU-s per 1M events (user %s s, sys %s s), peak RSS %s KiB\n' camjoin \
            "$c_cpu_m" "$c_user" "$c_sys" "$c_rss"
        printf '  %-18s PostgreSQL CPU during the run: %s s\n' camjoin "$c_pg"
        printf '  %-18s %.2f\n' "camjoin / peer" "$(echo "$c_rate / $(jq -r .rate "$pj")" | bc -l)"
    fi
    kafka_stop
}

# ------------------------------------------------------------- live
LIVE_p50="" LIVE_p99="" LIVE_p999="" LIVE_max=""
_positioned() { (($(grep -c 'msg="partition positioned"' "$1" || true) >= $2)); }  # LOG N
# One live run of WHO (peer or camjoin) on a topic of its own, on the
# running broker; sets LIVE_* (CPU % of one core while the traffic lasts,
# RSS at its end, the latency percentiles, the generator's achieved rate).
live_one() {  # WHO
    local who=$1 topic=peer-live-$1 parts=8 name=live-$1 pid cpu0 cpu1 t0 t1 rc=0 f
    fresh_schema
    psql_val "CHECKPOINT" >/dev/null
    kafka_topic_create "$topic" "$parts"
    if [[ $who == peer ]]; then
        # shellcheck disable=SC2086
        peer_start "$name" --topic "$topic" --group "$name" --latency ${PEER_VERBOSE:+--verbose}
        pid=$PEER_PID
        wait_for -p "$pid" 60 -- _peer_assigned "$CJ_TMP/$name.log" "$parts" || rc=$?
    else
        camjoin_args "$topic" "$name"
        camjoin_start "$name" "${CJ_ARGS[@]}"
        pid=$CAMJOIN_PID
        wait_for -p "$pid" 60 -- _positioned "$CJ_TMP/$name.log" "$parts" || rc=$?
    fi
    ((rc == 0)) || fail "$who was not consuming $parts partitions within 60 s: $(tail -n 5 "$CJ_TMP/$name.log")"
    sleep 1  # its first fetches
    cpu0=$(proc_cpu_s "$pid")
    t0=$(now_s)
    gen_start "gen-$name" --topic "$topic" --rate "$LIVE_RATE" --duration "$LIVE_S" --seed 11 \
        --dup-ratio 0.05 --unknown-camera-ratio 0.01 --malformed-ratio 0.001 \
        --manifest "$CJ_TMP/manifest-$name.csv"
    gen_wait "gen-$name"
    local sum=$CJ_TMP/gen-$name.json
    wait_offsets "$topic" "$name" "$(json_get "$sum" sent)" 120 "$pid"
    t1=$(now_s)
    cpu1=$(proc_cpu_s "$pid")
    LIVE_RSS=$(proc_rss_kb "$pid")
    if [[ $who == peer ]]; then
        kill -TERM "$pid"
        peer_wait "$name" 60
        for f in p50 p99 p999 max; do
            printf -v "LIVE_$f" '%s' "$(jq -r ".latency_${f}_ms" "$CJ_TMP/$name.json")"
        done
        LIVE_BATCHES=$(jq -r .batches "$CJ_TMP/$name.json")
    else
        camjoin_stop "$pid"
        [[ $CAMJOIN_RC == 0 ]] || fail "camjoin ($name) exited $CAMJOIN_RC"
        for f in p50 p99 p999 max; do
            printf -v "LIVE_$f" '%s' "$(log_field "$CJ_TMP/$name.log" '"stopped"' "latency_${f}_ms")"
        done
        LIVE_BATCHES=$(log_field "$CJ_TMP/$name.log" '"stopped"' batches)
    fi
    load_manifest "$CJ_TMP/manifest-$name.csv"
    echo "live: $who"
    check_result "live $who" "$sum" "$topic" "$name"
    # the same percentiles from PostgreSQL's commit timestamps (bench/lib.sh),
    # as the Flink and Connect runners measure: the method's cross-check
    read -r LIVE_CT_p50 LIVE_CT_p99 LIVE_CT_p999 LIVE_CT_max LIVE_CT_n < <(commit_latency "$topic" camera_events)
    LIVE_CPU=$(echo "($cpu1 - $cpu0) * 100 / ($t1 - $t0)" | bc -l)
    LIVE_ACHIEVED=$(json_get "$sum" rate)
    LIVE_SENT=$(json_get "$sum" sent)
}
live_json() {  # the LIVE_* of the last live_one, as JSON
    jq -n --arg a "$LIVE_ACHIEVED" --arg n "$LIVE_SENT" --arg cpu "$LIVE_CPU" --arg rss "$LIVE_RSS" \
        --arg p50 "$LIVE_p50" --arg p99 "$LIVE_p99" --arg p999 "$LIVE_p999" --arg max "$LIVE_max" \
        --arg b "$LIVE_BATCHES" --arg c50 "$LIVE_CT_p50" --arg c99 "$LIVE_CT_p99" \
        --arg c999 "$LIVE_CT_p999" --arg cmax "$LIVE_CT_max" --arg cn "$LIVE_CT_n" \
        '{achieved_rate: ($a|tonumber), messages: ($n|tonumber), batches: ($b|tonumber),
          cpu_percent_of_one_core: ($cpu|tonumber), rss_kb: ($rss|tonumber),
          p50_ms: ($p50|tonumber), p99_ms: ($p99|tonumber), p999_ms: ($p999|tonumber),
          max_ms: ($max|tonumber),
          commit_ts: {p50_ms: ($c50|tonumber), p99_ms: ($c99|tonumber), p999_ms: ($c999|tonumber),
                      max_ms: ($cmax|tonumber), rows: ($cn|tonumber)}}'
}
live_line() {  # WHO: one table row of the last live_one
    printf '  %-12s %10.0f %9.2f %9.2f %9.2f %9.2f %9.1f %9.1f %8s   %s / %s\n' "$1" "$LIVE_ACHIEVED" \
        "$LIVE_p50" "$LIVE_p99" "$LIVE_p999" "$LIVE_max" "$LIVE_CPU" \
        "$(echo "$LIVE_RSS / 1024" | bc -l)" "$LIVE_BATCHES" "$LIVE_CT_p50" "$LIVE_CT_p99"
}

phase_live() {
    local peer_json peer_line cj_json=null cj_line=""
    commit_ts_on
    kafka_start peer-live-warm 1
    log "warming the broker: $WARM_S s of traffic"
    kafka_warm_traffic "$WARM_S"
    live_one peer
    peer_json=$(live_json)
    peer_line=$(live_line "python peer")
    if [[ $WITH_CAMJOIN == 1 ]]; then
        live_one camjoin
        cj_json=$(live_json)
        cj_line=$(live_line camjoin)
    fi
    json_out python-live "$(jq -n --arg versions "$PY_VERSIONS" --arg rate "$LIVE_RATE" \
        --arg secs "$LIVE_S" --arg rows "$BATCH_ROWS" --arg ms "$BATCH_MS" \
        --argjson peer "$peer_json" --argjson camjoin "$cj_json" \
        '{peer_versions: $versions, rate: ($rate|tonumber), seconds: ($secs|tonumber),
          partitions: 8, peer_batch_rows: ($rows|tonumber), peer_batch_ms: ($ms|tonumber),
          peer: $peer, camjoin: $camjoin}')"
    printf '\n%s\n' "live: $LIVE_RATE events/s for $LIVE_S s on 8 partitions, Apache Kafka $KAFKA_VERSION; latency = Kafka timestamp -> COMMIT returned"
    printf '  %s; the peer batches %s rows / %s ms\n' "$PY_VERSIONS" "$BATCH_ROWS" "$BATCH_MS"
    printf '  %-12s %10s %9s %9s %9s %9s %9s %9s %8s   %s\n' "" achieved p50_ms p99_ms p99.9_ms max_ms cpu_% rss_MiB batches \
        "commit-ts p50/p99 ms"
    printf '%s\n' "$peer_line"
    [[ -z $cj_line ]] || printf '%s\n' "$cj_line"
    kafka_stop
}

PHASES=("$@")
[[ ${#PHASES[@]} -gt 0 ]] || PHASES=(backlog live)
for ph in "${PHASES[@]}"; do
    declare -F "phase_$ph" >/dev/null || fail "unknown phase '$ph' (backlog, live)"
done
pg_start
for ph in "${PHASES[@]}"; do "phase_$ph"; done
