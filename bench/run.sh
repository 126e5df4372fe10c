#!/usr/bin/env bash
# bench/run.sh — camjoin's benchmark harness. Prints a table and writes
# bench/results/<phase>.json. Run by hand (it is not a test):
#
#   bash bench/run.sh                # every phase, then the peers (below),
#                                    #   each printing its table as it ends
#   bash bench/run.sh throughput     # one phase: throughput latency linger1
#                                    #   peak size memory cpu sweep rss
#                                    #   dashboard plots
#                                    #   (several may be given)
#   bash bench/run.sh peers          # Flink, Kafka Connect and a Python
#                                    #   consumer on the same workload
#                                    #   (bench/peers/), then one table
#   bash bench/run.sh mock           # the mock beside the real broker:
#                                    #   throughput, latency and linger1 on
#                                    #   camjoin-mock-kafka into results/mock/,
#                                    #   then the table (bench/compare.sh)
#
# PostgreSQL 15 is one throwaway cluster for the run (durable defaults:
# fsync on, synchronous_commit on). Each phase starts its own Apache Kafka
# broker (tests/kafka/kafka.sh, one KRaft node; CAMJOIN_KAFKA=mock: the
# mock cluster) through the integration tests' harness
# (tests/integration/lib.sh), so nothing is left running. The live phases
# first send 20 s of traffic through the broker (kafka_warm_traffic): a
# fresh JVM's JIT would otherwise be measured. Every phase checks its own
# result (rows = the generator's valid_new, offsets at the partition ends)
# before it prints a figure.
# Sizes can be overridden: BENCH_EVENTS (1000000), BENCH_PARTITIONS (64),
# BENCH_RATES ("5000 10000 20000 35000 50000"), BENCH_LAT_SECONDS (30), BENCH_RSS_SECONDS
# (600), BENCH_RSS_WINDOW (dedup.window for the RSS run, 5m), BENCH_CPU_EVENTS
# (100000), BENCH_SWEEP ("1000 5000 20000 50000 100000"), BENCH_SIZE_EVENTS
# (2000000) and BENCH_SIZE_PARTITIONS (16), BENCH_WARM_SECONDS (20), BENCH_REPEAT
# (3: the throughput and latency figures are medians of that many runs),
# BENCH_PEAK_RATES ("40000 50000 60000 70000 80000") and BENCH_PEAK_SECONDS (60),
# BENCH_DASH_ROWS (10000000);
# for the peers BENCH_PEER_EVENTS (300000) and BENCH_PEER_PARTITIONS (32).
# BENCH_CAMJOIN_ARGS (words, e.g. "-X fetch.min.bytes=65536") is added to
# every camjoin run, to measure one lever against the defaults; the results
# record it.
set -euo pipefail
BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CAMJOIN_SRC=$BENCH_SRC
# shellcheck source=../tests/integration/lib.sh
source "$BENCH_SRC/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$BENCH_SRC/bench/lib.sh"
RESULTS=${BENCH_RESULTS:-$BENCH_SRC/bench/results}
mkdir -p "$RESULTS"

EVENTS=${BENCH_EVENTS:-1000000}
PARTS=${BENCH_PARTITIONS:-64}
RATES=${BENCH_RATES:-5000 10000 20000 35000 50000}
LAT_S=${BENCH_LAT_SECONDS:-30}
RSS_S=${BENCH_RSS_SECONDS:-600}
RSS_WINDOW=${BENCH_RSS_WINDOW:-5m}
CPU_EVENTS=${BENCH_CPU_EVENTS:-100000}
SWEEP=${BENCH_SWEEP:-1000 5000 20000 50000 100000}
SIZE_EVENTS=${BENCH_SIZE_EVENTS:-2000000}
SIZE_PARTS=${BENCH_SIZE_PARTITIONS:-16}
WARM_S=${BENCH_WARM_SECONDS:-20}
PEAK_RATES=${BENCH_PEAK_RATES:-40000 50000 60000 70000 80000}
PEAK_S=${BENCH_PEAK_SECONDS:-60}
DASH_ROWS=${BENCH_DASH_ROWS:-10000000}
REPEAT=${BENCH_REPEAT:-3}
# a bigger heap for the broker than the tests' (the size phase holds ~350 MB)
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms1g -Xmx1g}
# The broker's logs off PostgreSQL's disk (tmpfs), as on any real deployment
# where they are different hosts: on one ext4 file system the writeback of
# Kafka's dirty log pages stalls PostgreSQL's WAL fsyncs (measured at 10k/s:
# p99 60-129 ms with both on the disk, 38-42 ms with the logs on tmpfs).
# BENCH_KAFKA_LOG_ROOT= (empty) keeps them on the disk.
export CAMJOIN_KAFKA_LOG_ROOT=${BENCH_KAFKA_LOG_ROOT-/dev/shm}
[[ -z $CAMJOIN_KAFKA_LOG_ROOT || -d $CAMJOIN_KAFKA_LOG_ROOT ]] || CAMJOIN_KAFKA_LOG_ROOT=""
COLS="event_id, event_ts, camera_id, event_type, confidence, object_count, attributes, site_id, site_name, zone, latitude, longitude, kafka_partition, kafka_offset"

need_bin camjoin camjoin-gen camjoin-mock-kafka
KAFKA_KIND=$([[ ${CAMJOIN_KAFKA:-real} == mock ]] && echo "mock (librdkafka $(pkg-config --modversion rdkafka))" ||
    echo "Apache Kafka $KAFKA_VERSION")
command -v kcat >/dev/null || fail "kcat not found (apt-get install kcat)"

# ------------------------------------------------------------- helpers
read -ra BENCH_CJ_EXTRA <<<"${BENCH_CAMJOIN_ARGS:-}"
bench_args() {  # TOPIC GROUP: the tests' CJ_ARGS plus BENCH_CAMJOIN_ARGS
    camjoin_args "$@"
    CJ_ARGS+=("${BENCH_CJ_EXTRA[@]}")
}
fresh_db() {  # drops camjoin's tables so the next run starts empty
    psql -XAtq -v ON_ERROR_STOP=1 -c "DROP TABLE IF EXISTS camera_events, camera_events_minute, camjoin_offsets, camjoin_dead_letters, ceiling CASCADE" >/dev/null
}
produce_fixed() {  # TOPIC PARTS COUNT: pre-produces COUNT events (5 % dups, 1 % unknown)
    bench_produce "$1" "$3" 0
    local starts
    starts=$(kafka_start_offsets "$1" "$2" | awk -F: '$2 != 0' | wc -l)
    [[ $starts == 0 ]] || fail "$starts partitions lost messages to retention (the mock keeps ~5 MiB a partition); raise BENCH_PARTITIONS"
}
# runs camjoin --until-end on TOPIC with GROUP and extra ARGS; sets RUN_* vars
run_until_end() {  # NAME TOPIC GROUP [ARGS...]
    local name=$1 topic=$2 grp=$3
    shift 3
    bench_args "$topic" "$grp"
    CAMJOIN_WRAPPER="/usr/bin/time -f %U,%S,%M -o $CJ_TMP/$name.time" \
        camjoin_start "$name" "${CJ_ARGS[@]}" --until-end "$@"
    camjoin_wait "$CAMJOIN_PID" 900
    [[ $CAMJOIN_RC == 0 ]] || fail "camjoin $name exited $CAMJOIN_RC"
    RUN_ACTIVE=$(log_field "$CJ_TMP/$name.log" '"stopped"' active_s)
    RUN_RATE=$(log_field "$CJ_TMP/$name.log" '"stopped"' rate)
    RUN_ROWS=$(log_field "$CJ_TMP/$name.log" '"stopped"' rows)
    IFS=, read -r RUN_USER RUN_SYS RUN_MAXRSS <"$CJ_TMP/$name.time"
}
json_out() {  # NAME JSON: pretty-prints into results
    jq . <<<"$2" >"$RESULTS/$1.json"
    log "wrote $RESULTS/$1.json"
}
machine_json() {
    jq -n --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)" \
        --arg cores "$(nproc)" --arg mem "$(free -g | awk '/^Mem:/ { print $2 }')" \
        --arg kernel "$(uname -r)" --arg pg "$(psql_val 'SHOW server_version')" \
        --arg rdkafka "$(pkg-config --modversion rdkafka 2>/dev/null || echo ?)" \
        --arg commit "$(git -C "$BENCH_SRC" rev-parse --short HEAD 2>/dev/null || echo ?)" \
        --arg kafka "$KAFKA_KIND" --arg logs "${CAMJOIN_KAFKA_LOG_ROOT:-the disk}" \
        --arg extra "${BENCH_CAMJOIN_ARGS:-}" \
        '{cpu: $cpu, cores: ($cores | tonumber), mem_gib: ($mem | tonumber),
          kernel: $kernel, postgresql: $pg, librdkafka: $rdkafka, commit: $commit,
          kafka: $kafka, kafka_logs: $logs, camjoin_extra_args: $extra}'
}

# ------------------------------------------------- 1+2. throughput, ceiling
phase_throughput() {
    local topic=bench-tput
    kafka_start "$topic" "$PARTS"
    log "producing $EVENTS events into $PARTS partitions"
    produce_fixed "$topic" "$PARTS" "$EVENTS"
    local valid
    valid=$(json_get "$CJ_TMP/produce.json" valid_new)

    # raw consume rate: librdkafka alone (kcat), no parsing, no sink
    local t0 t1 n raw_s
    t0=$(now_s)
    n=$(kcat -C -b "$KAFKA_BROKERS" -t "$topic" -o beginning -e -q -f '%o\n' \
        -X fetch.wait.max.ms=5 2>"$CJ_TMP/kcat.err" | wc -l)
    t1=$(now_s)
    [[ $n == "$EVENTS" ]] || fail "kcat read $n messages, expected $EVENTS"
    raw_s=$(echo "$t1 - $t0" | bc -l)

    # REPEAT runs, each into an empty database; the run with the median time
    # gives every camjoin figure (the first one also warms a fresh broker)
    local i pg_cpu_cj runs=() best=""
    for ((i = 1; i <= REPEAT; i++)); do
        fresh_db
        psql_val "CHECKPOINT" >/dev/null
        pg_cpu_start
        run_until_end "tput$i" "$topic" "bench$i"
        pg_cpu_cj=$(pg_cpu_stop)
        assert_eq "run $i: rows written = new valid events" "$valid" "$(psql_val 'SELECT count(*) FROM camera_events')"
        assert_eq "run $i: offsets at the end" "$EVENTS" \
            "$(psql_val "SELECT sum(next_offset) FROM camjoin_offsets WHERE consumer_group = 'bench$i'")"
        runs+=("$RUN_ACTIVE $RUN_RATE $RUN_USER $RUN_SYS $RUN_MAXRSS $pg_cpu_cj")
    done
    best=$(printf '%s\n' "${runs[@]}" | sort -g | sed -n "$(((REPEAT + 1) / 2))p")
    read -r RUN_ACTIVE RUN_RATE RUN_USER RUN_SYS RUN_MAXRSS pg_cpu_cj <<<"$best"
    local all_s cj_rows_s
    all_s=$(printf '%s\n' "${runs[@]}" | awk '{ print $1 }' | sort -g | paste -sd, -)
    cj_rows_s=$(echo "$valid / $RUN_ACTIVE" | bc -l)

    # the ceiling: the same joined rows, one plain COPY into an empty table
    # with the same columns (and defaults), unpartitioned, the primary key its
    # only index
    psql -XAtq -v ON_ERROR_STOP=1 -c "CREATE TABLE ceiling (LIKE camera_events INCLUDING DEFAULTS,
                                        PRIMARY KEY (event_id, event_ts))" \
        -c "\\copy (SELECT $COLS FROM camera_events) TO '$CJ_TMP/rows.copy'" >/dev/null
    local pg_cpu_copy copy_s copy_rows_s ratio cruns=()
    for ((i = 1; i <= REPEAT; i++)); do
        psql_val "TRUNCATE ceiling" >/dev/null
        psql_val "CHECKPOINT" >/dev/null
        pg_cpu_start
        t0=$(now_s)
        psql -XAtq -v ON_ERROR_STOP=1 -c "\\copy ceiling ($COLS) FROM '$CJ_TMP/rows.copy'" >/dev/null
        t1=$(now_s)
        pg_cpu_copy=$(pg_cpu_stop)
        assert_eq "ceiling run $i: rows" "$valid" "$(psql_val 'SELECT count(*) FROM ceiling')"
        cruns+=("$(echo "$t1 - $t0" | bc -l) $pg_cpu_copy")
    done
    read -r copy_s pg_cpu_copy <<<"$(printf '%s\n' "${cruns[@]}" | sort -g | sed -n "$(((REPEAT + 1) / 2))p")"
    copy_rows_s=$(echo "$valid / $copy_s" | bc -l)
    ratio=$(echo "$cj_rows_s / $copy_rows_s" | bc -l)
    local cpu_per_m
    cpu_per_m=$(echo "($RUN_USER + $RUN_SYS) * 1000000 / $EVENTS" | bc -l)

    json_out throughput "$(jq -n --argjson machine "$(machine_json)" \
        --arg repeat "$REPEAT" --arg all_s "$all_s" \
        --arg copy_all "$(printf '%s\n' "${cruns[@]}" | awk '{ print $1 }' | sort -g | paste -sd, -)" \
        --arg events "$EVENTS" --arg rows "$valid" --arg parts "$PARTS" \
        --arg active "$RUN_ACTIVE" --arg ev_s "$RUN_RATE" --arg rows_s "$cj_rows_s" \
        --arg copy_s "$copy_s" --arg copy_rows_s "$copy_rows_s" --arg ratio "$ratio" \
        --arg raw_s "$raw_s" --arg user "$RUN_USER" --arg sys "$RUN_SYS" \
        --arg maxrss "$RUN_MAXRSS" --arg cpu_per_m "$cpu_per_m" \
        --arg bytes "$(stat -c %s "$CJ_TMP/rows.copy")" \
        --arg pgcj "$pg_cpu_cj" --arg pgcopy "$pg_cpu_copy" \
        '{machine: $machine, events: ($events|tonumber), rows: ($rows|tonumber),
          partitions: ($parts|tonumber), runs: ($repeat|tonumber),
          camjoin_seconds_all: ($all_s | split(",") | map(tonumber)),
          copy_seconds_all: ($copy_all | split(",") | map(tonumber)),
          camjoin: {seconds: ($active|tonumber), events_per_s: ($ev_s|tonumber),
                    rows_per_s: ($rows_s|tonumber), cpu_user_s: ($user|tonumber),
                    cpu_sys_s: ($sys|tonumber), cpu_s_per_1m_events: ($cpu_per_m|tonumber),
                    max_rss_kb: ($maxrss|tonumber),
                    postgres_cpu_s: ($pgcj|tonumber)},
          copy_ceiling: {seconds: ($copy_s|tonumber), rows_per_s: ($copy_rows_s|tonumber),
                         postgres_cpu_s: ($pgcopy|tonumber),
                         copy_text_bytes: ($bytes|tonumber)},
          ratio_rows_per_s: ($ratio|tonumber),
          raw_consume: {seconds: ($raw_s|tonumber),
                        events_per_s: (($events|tonumber) / ($raw_s|tonumber))}}')"
    printf '\n%-44s %12s\n' "throughput ($EVENTS events, $PARTS partitions, median of $REPEAT, $KAFKA_KIND)" ""
    printf '  %-42s %12.0f events/s  (%.0f rows/s, %.2f s)\n' "camjoin --until-end" "$RUN_RATE" "$cj_rows_s" "$RUN_ACTIVE"
    printf '  %-42s %12.0f rows/s    (%.2f s)\n' "single-connection COPY ceiling" "$copy_rows_s" "$copy_s"
    printf '  %-42s %12.2f\n' "ratio camjoin / COPY (rows/s)" "$ratio"
    printf '  %-42s %12.0f events/s\n' "raw consume (kcat, no sink)" "$(echo "$EVENTS / $raw_s" | bc -l)"
    printf '  %-42s %12.2f s   (max RSS %d KiB)\n' "camjoin CPU per 1M events" "$cpu_per_m" "$RUN_MAXRSS"
    printf '  %-42s %12s s   (COPY ceiling: %s s)\n' "PostgreSQL CPU during the camjoin run" "$pg_cpu_cj" "$pg_cpu_copy"
    kafka_stop
}

# ------------------------------------------------------------- 3. latency
# camjoin runs live; camjoin-gen produces at a fixed rate. camjoin itself
# measures each written message at the moment its COMMIT returns: now minus
# the message's Kafka timestamp (CreateTime, set by the producer's client
# when the application hands it the message), into a log-linear histogram
# (1/64 relative resolution, never under-reported); the percentiles come
# from its "stopped" log line. The Kafka timestamp has millisecond
# resolution, so each sample is over-stated by 0-1 ms.
wait_positioned() {  # LOGFILE PARTITIONS
    local i
    for ((i = 0; i < 300; i++)); do
        [[ $(grep -c 'msg="partition positioned"' "$1" || true) -ge $2 ]] && return 0
        sleep 0.1
    done
    fail "camjoin did not position $2 partitions within 30 s"
}
# The broker of the live phases, warmed by WARM_S seconds of traffic.
live_broker() {
    [[ ${CAMJOIN_KAFKA:-real} != mock ]] || return 0  # the mock: one per run (live_run)
    kafka_start bench-live-warm 1
    log "warming the broker: $WARM_S s of traffic"
    kafka_warm_traffic "$WARM_S"
}
# one live run on the running broker: RATE SECONDS NAME [camjoin args...];
# sets LAT_* variables. LIVE_GEN_X: extra camjoin-gen arguments.
live_run() {
    local rate=$1 secs=$2 name=$3 topic="bench-$3" parts=8 total cpu0 cpu1 t0 t1
    shift 3
    fresh_db
    # start clean: no checkpoint owed by the previous phase's WAL
    psql_val "CHECKPOINT" >/dev/null
    if [[ ${CAMJOIN_KAFKA:-real} == mock ]]; then
        kafka_start "$topic" "$parts"   # the mock serves one topic: its own per run
    else
        kafka_topic_create "$topic" "$parts"
    fi
    bench_args "$topic" "$name"
    camjoin_start "$name" "${CJ_ARGS[@]}" "$@"
    local pid=$CAMJOIN_PID
    wait_positioned "$CJ_TMP/$name.log" "$parts"
    cpu0=$(proc_cpu_s "$pid")
    t0=$(now_s)
    # shellcheck disable=SC2086
    gen_start "gen-$name" --topic "$topic" --rate "$rate" --duration "$secs" --seed 11 \
        --dup-ratio 0.05 --unknown-camera-ratio 0.01 --malformed-ratio 0.001 ${LIVE_GEN_X:-}
    if [[ -n "${LIVE_SAMPLER:-}" ]]; then "$LIVE_SAMPLER" "$pid" "gen-$name"; fi
    gen_wait "gen-$name"
    total=$(json_get "$CJ_TMP/gen-$name.json" sent)
    wait_offsets "$topic" "$name" "$total" 120
    t1=$(now_s)
    cpu1=$(proc_cpu_s "$pid")
    LAT_RSS_KB=$(proc_rss_kb "$pid")
    camjoin_stop "$pid"
    [[ $CAMJOIN_RC == 0 ]] || fail "camjoin $name exited $CAMJOIN_RC"
    assert_eq "rows at $rate/s = new valid events" "$(json_get "$CJ_TMP/gen-$name.json" valid_new)" \
        "$(psql_val 'SELECT count(*) FROM camera_events')"
    LAT_SENT=$total
    LAT_GEN_RATE=$(json_get "$CJ_TMP/gen-$name.json" rate)
    LAT_CPU_PCT=$(echo "($cpu1 - $cpu0) * 100 / ($t1 - $t0)" | bc -l)
    local f
    for f in p50 p99 p999 max; do
        printf -v "LAT_$f" '%s' "$(log_field "$CJ_TMP/$name.log" '"stopped"' "latency_${f}_ms")"
    done
    [[ ${CAMJOIN_KAFKA:-real} != mock ]] || kafka_stop
}

phase_latency() {
    local rate rows=()
    live_broker
    printf '\n%s\n' "latency (producer send -> COMMIT returned), median of $REPEAT runs of ${LAT_S} s per rate, $KAFKA_KIND"
    printf '  %10s %10s %9s %9s %9s %9s %9s %9s\n' rate achieved p50_ms p99_ms p99.9_ms max_ms cpu_% rss_MiB
    local med f i vals
    med() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }
    for rate in $RATES; do
        declare -A acc=()
        for ((i = 1; i <= REPEAT; i++)); do
            live_run "$rate" "$LAT_S" "lat$rate-$i"
            for f in p50 p99 p999 max GEN_RATE SENT CPU_PCT RSS_KB; do
                vals="LAT_$f"
                acc[$f]+="${!vals} "
            done
        done
        for f in p50 p99 p999 max GEN_RATE SENT CPU_PCT RSS_KB; do
            # shellcheck disable=SC2086
            printf -v "LAT_$f" '%s' "$(med ${acc[$f]})"
        done
        log "rate $rate: p99 of the $REPEAT runs: ${acc[p99]}"
        printf '  %10s %10.0f %9.2f %9.2f %9.2f %9.2f %9.1f %9.1f\n' "$rate" "$LAT_GEN_RATE" \
            "$LAT_p50" "$LAT_p99" "$LAT_p999" "$LAT_max" "$LAT_CPU_PCT" "$(echo "$LAT_RSS_KB / 1024" | bc -l)"
        rows+=("$(jq -n --arg r "$rate" --arg a "$LAT_GEN_RATE" --arg n "$LAT_SENT" \
            --arg p50 "$LAT_p50" --arg p99 "$LAT_p99" --arg p999 "$LAT_p999" --arg max "$LAT_max" \
            --arg cpu "$LAT_CPU_PCT" --arg rss "$LAT_RSS_KB" --arg p99s "${acc[p99]}" \
            '{rate: ($r|tonumber), achieved_rate: ($a|tonumber), messages: ($n|tonumber),
              p99_ms_of_each_run: ($p99s | split(" ") | map(select(length > 0) | tonumber)),
              p50_ms: ($p50|tonumber), p99_ms: ($p99|tonumber), p999_ms: ($p999|tonumber),
              max_ms: ($max|tonumber), cpu_percent_of_one_core: ($cpu|tonumber),
              rss_kb: ($rss|tonumber)}')")
    done
    json_out latency "$(printf '%s\n' "${rows[@]}" | jq -s --argjson machine "$(machine_json)" \
        --arg secs "$LAT_S" '{machine: $machine, seconds_per_rate: ($secs|tonumber), runs: .}')"
    kafka_stop
}

# ------------------------------------- 3b. latency with small record batches
# 10,000 events/s for 30 s with linger.ms=1 (small message sets, as many
# producers send them): on the mock, whose fetch walks its whole log, this
# is where its cost grows with the log and its latency with it.
phase_linger1() {
    live_broker
    LIVE_GEN_X="-X linger.ms=1" live_run 10000 30 linger1
    printf '\n%s\n' "latency at 10k events/s with linger.ms=1, 30 s, $KAFKA_KIND"
    printf '  p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms  (camjoin CPU %.1f %%)\n' \
        "$LAT_p50" "$LAT_p99" "$LAT_p999" "$LAT_max" "$LAT_CPU_PCT"
    json_out linger1 "$(jq -n --argjson machine "$(machine_json)" --arg p50 "$LAT_p50" \
        --arg p99 "$LAT_p99" --arg p999 "$LAT_p999" --arg max "$LAT_max" --arg cpu "$LAT_CPU_PCT" \
        --arg n "$LAT_SENT" '{machine: $machine, rate: 10000, seconds: 30, producer_linger_ms: 1,
          messages: ($n|tonumber), p50_ms: ($p50|tonumber), p99_ms: ($p99|tonumber),
          p999_ms: ($p999|tonumber), max_ms: ($max|tonumber),
          cpu_percent_of_one_core: ($cpu|tonumber)}')"
    kafka_stop
}

# ------------------------------------------ 3c. size: a backlog of millions
# SIZE_EVENTS pre-produced events on SIZE_PARTS partitions, consumed with
# --until-end: exact counts (rows = valid_new, every offset at its
# partition's end). Far beyond the mock's ~5 MiB a partition.
phase_size() {
    local topic=bench-size valid
    kafka_start "$topic" "$SIZE_PARTS"
    log "producing $SIZE_EVENTS events into $SIZE_PARTS partitions"
    produce_fixed "$topic" "$SIZE_PARTS" "$SIZE_EVENTS"
    valid=$(json_get "$CJ_TMP/produce.json" valid_new)
    fresh_db
    psql_val "CHECKPOINT" >/dev/null
    run_until_end size "$topic" bench-size
    assert_eq "size: rows written = new valid events" "$valid" "$(psql_val 'SELECT count(*) FROM camera_events')"
    assert_eq "size: distinct event_ids = rows" "$valid" "$(psql_val 'SELECT count(DISTINCT event_id) FROM camera_events')"
    assert_eq "size: camjoin_offsets = partition ends" "$(kafka_end_offsets "$topic" | tr ' \n' ': ')" \
        "$(psql_val "SELECT kafka_partition || ':' || next_offset FROM camjoin_offsets
                     WHERE consumer_group = 'bench-size' ORDER BY kafka_partition" | tr '\n' ' ')"
    json_out size "$(jq -n --argjson machine "$(machine_json)" --arg e "$SIZE_EVENTS" \
        --arg p "$SIZE_PARTS" --arg v "$valid" --arg s "$RUN_ACTIVE" --arg r "$RUN_RATE" \
        --arg rss "$RUN_MAXRSS" '{machine: $machine, events: ($e|tonumber), partitions: ($p|tonumber),
          rows: ($v|tonumber), seconds: ($s|tonumber), events_per_s: ($r|tonumber),
          rows_per_s: (($v|tonumber) / ($s|tonumber)), max_rss_kb: ($rss|tonumber)}')"
    printf '\n%s\n' "size: $SIZE_EVENTS events on $SIZE_PARTS partitions, --until-end, $KAFKA_KIND"
    printf '  %-42s %12.0f events/s  (%d rows in %.2f s, max RSS %d KiB)\n' "camjoin" "$RUN_RATE" \
        "$valid" "$RUN_ACTIVE" "$RUN_MAXRSS"
    kafka_stop
}

# ------------------------------------- 3c. the highest sustained live rate
# The highest produce rate that camjoin follows for BENCH_PEAK_SECONDS (60)
# with an end-to-end p99 of at most 100 ms: one run per rate of
# BENCH_PEAK_RATES (40000 ... 80000), in order, until one misses (p99
# over 100 ms, or the producer itself under 98 % of the rate).
peak_try() {  # RATE: one 60-s run; sets ok (1 when p99 <= 100 ms at the rate) and adds a row
    live_run "$1" "$PEAK_S" "peak$1"
    ok=$(echo "$LAT_p99 <= 100 && $LAT_GEN_RATE >= 0.98 * $1" | bc -l)
    printf '  %10s %10.0f %9.2f %9.2f %9.2f %9.1f %6s\n' "$1" "$LAT_GEN_RATE" "$LAT_p50" \
        "$LAT_p99" "$LAT_p999" "$LAT_CPU_PCT" "$([[ $ok == 1 ]] && echo yes || echo no)"
    rows+=("$(jq -n --arg r "$1" --arg a "$LAT_GEN_RATE" --arg p50 "$LAT_p50" --arg p99 "$LAT_p99" \
        --arg p999 "$LAT_p999" --arg cpu "$LAT_CPU_PCT" --arg ok "$ok" \
        '{rate: ($r|tonumber), achieved_rate: ($a|tonumber), p50_ms: ($p50|tonumber),
          p99_ms: ($p99|tonumber), p999_ms: ($p999|tonumber),
          cpu_percent_of_one_core: ($cpu|tonumber), held: ($ok == "1")}')")
}

phase_peak() {  # up the rates while they hold; if the first fails, halve it down to 5k/s
    local rate best=0 rows=() ok first=""
    live_broker
    printf '\n%s\n' "highest live rate with p99 <= 100 ms, ${PEAK_S} s per rate, $KAFKA_KIND"
    printf '  %10s %10s %9s %9s %9s %9s %6s\n' rate achieved p50_ms p99_ms p99.9_ms cpu_% held
    for rate in $PEAK_RATES; do
        first=${first:-$rate}
        peak_try "$rate"
        [[ $ok == 1 ]] || break
        best=$rate
    done
    rate=$first
    while ((best == 0 && (rate /= 2) >= 5000)); do
        peak_try "$rate"
        [[ $ok != 1 ]] || best=$rate
    done
    printf '  %-42s %10s events/s\n' "highest rate held" "$best"
    json_out peak "$(printf '%s\n' "${rows[@]}" | jq -s --argjson machine "$(machine_json)" \
        --arg secs "$PEAK_S" --arg best "$best" \
        '{machine: $machine, seconds_per_rate: ($secs|tonumber), p99_limit_ms: 100,
          highest_rate_held: ($best|tonumber), runs: .}')"
    kafka_stop
}

# ------------------------------------------------ 4. memory: RSS plateau
rss_sampler() {  # PID GEN_NAME: RSS every 5 s while the generator runs
    local pid=$1 t0
    t0=$(date +%s)
    : >"$CJ_TMP/rss.csv"
    while kill -0 "${GEN_PIDS[$2]}" 2>/dev/null; do
        printf '%s,%s,%s\n' "$(($(date +%s) - t0))" "$(proc_rss_kb "$pid")" \
            "$(curl -fsS "http://$RSS_HTTP/metrics" | awk '$1 == "camjoin_dedup_keys" { print $2 }')" >>"$CJ_TMP/rss.csv"
        sleep 5
    done
}
phase_rss() {
    RSS_HTTP=127.0.0.1:$(free_port)
    live_broker
    LIVE_SAMPLER=rss_sampler live_run 10000 "$RSS_S" rss --set "dedup.window=$RSS_WINDOW" --http "$RSS_HTTP"
    LIVE_SAMPLER=""
    kafka_stop
    cp "$CJ_TMP/rss.csv" "$RESULTS/rss.csv"
    # the plateau: RSS over the second half of the run (the window is full)
    local half first_half_max second_min second_max
    half=$((RSS_S / 2))
    second_min=$(awk -F, -v h="$half" '$1 >= h { if (m == "" || $2 < m) m = $2 } END { print m }' "$RESULTS/rss.csv")
    second_max=$(awk -F, -v h="$half" '$1 >= h { if ($2 > m) m = $2 } END { print m }' "$RESULTS/rss.csv")
    json_out rss "$(jq -n --arg secs "$RSS_S" --arg window "$RSS_WINDOW" --arg lo "$second_min" \
        --arg hi "$second_max" --arg p99 "$LAT_p99" --arg cpu "$LAT_CPU_PCT" \
        '{rate: 10000, seconds: ($secs|tonumber), dedup_window: $window,
          second_half_rss_kb: {min: ($lo|tonumber), max: ($hi|tonumber)},
          p99_ms: ($p99|tonumber), cpu_percent_of_one_core: ($cpu|tonumber),
          samples: "rss.csv (seconds, rss_kb, dedup_keys)"}')"
    printf '\n%s\n' "RSS at 10k events/s for $RSS_S s, dedup.window=$RSS_WINDOW"
    printf '  %-42s %s .. %s KiB\n' "RSS over the second half" "$second_min" "$second_max"
}

phase_memory() {
    need_bin camjoin-bench-dedup
    local n rows=()
    printf '\n%s\n' "dedup window memory (128-bit fingerprints)"
    for n in 1000000 10000000; do
        rows+=("$("$CAMJOIN_BIN/camjoin-bench-dedup" "$n")")
        jq -r '"  \(.keys) keys: \(.bytes_per_key) B/key (accounting), \(.rss_bytes_per_key) B/key (RSS delta)"' <<<"${rows[-1]}"
    done
    json_out memory "$(printf '%s\n' "${rows[@]}" | jq -s '{runs: .}')"
}

# ------------------------------------------ 6. throughput vs batch.max_rows
phase_sweep() {
    local topic=bench-sweep n rows=() valid
    kafka_start "$topic" "$PARTS"
    produce_fixed "$topic" "$PARTS" "$EVENTS"
    valid=$(json_get "$CJ_TMP/produce.json" valid_new)
    printf '\n%s\n' "throughput vs batch.max_rows ($EVENTS events)"
    for n in $SWEEP; do
        fresh_db
        psql_val "CHECKPOINT" >/dev/null
        run_until_end "sweep$n" "$topic" "sweep$n" --set "batch.max_rows=$n"
        assert_eq "rows, batch.max_rows=$n" "$valid" "$(psql_val 'SELECT count(*) FROM camera_events')"
        printf '  batch.max_rows=%-8s %10.0f events/s %10.0f rows/s\n' "$n" "$RUN_RATE" \
            "$(echo "$valid / $RUN_ACTIVE" | bc -l)"
        rows+=("$(jq -n --arg n "$n" --arg r "$RUN_RATE" --arg s "$RUN_ACTIVE" --arg v "$valid" \
            '{max_rows: ($n|tonumber), events_per_s: ($r|tonumber), seconds: ($s|tonumber),
              rows_per_s: (($v|tonumber) / ($s|tonumber))}')")
    done
    json_out sweep "$(printf '%s\n' "${rows[@]}" | jq -s --arg e "$EVENTS" '{events: ($e|tonumber), runs: .}')"
    kafka_stop
}

# ------------------------------------------------------------- 5. CPU cost
phase_cpu() {
    local topic=bench-cpu
    kafka_start "$topic" 8
    produce_fixed "$topic" 8 "$CPU_EVENTS"
    fresh_db
    bench_args "$topic" cpu
    CAMJOIN_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=$CJ_TMP/callgrind.out" \
        camjoin_start cpu "${CJ_ARGS[@]}" --until-end -X session.timeout.ms=120000 \
        -X heartbeat.interval.ms=3000 -X max.poll.interval.ms=300000
    camjoin_wait "$CAMJOIN_PID" 900
    [[ $CAMJOIN_RC == 0 ]] || fail "camjoin under callgrind exited $CAMJOIN_RC"
    assert_eq "offsets at the end" "$CPU_EVENTS" "$(psql_val 'SELECT sum(next_offset) FROM camjoin_offsets')"
    callgrind_annotate --inclusive=no "$CJ_TMP/callgrind.out" >"$CJ_TMP/callgrind.txt" 2>/dev/null
    local total per
    total=$(sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' "$CJ_TMP/callgrind.txt" | tr -d ,)
    per=$(echo "$total / $CPU_EVENTS" | bc -l)
    cp "$CJ_TMP/callgrind.txt" "$RESULTS/callgrind.txt"
    local top
    top=$(awk '/^-+$/ { sec++ } sec == 6 && /[0-9]/ && NF >= 2 && n++ < 15 { print }' \
        "$CJ_TMP/callgrind.txt" | sed -E 's/^ *([0-9,]+) +\( *([0-9.]+)%\) +(.*)$/\1\t\2\t\3/' |
        jq -R -s 'split("\n") | map(select(length > 0) | split("\t") |
            {instructions: (.[0] | gsub(","; "") | tonumber), percent: (.[1] | tonumber), function: .[2]})')
    json_out cpu "$(jq -n --arg events "$CPU_EVENTS" --arg total "$total" --arg per "$per" \
        --argjson top "$top" '{events: ($events|tonumber), instructions: ($total|tonumber),
        instructions_per_event: ($per|tonumber), top_functions: $top}')"
    printf '\n%s\n' "CPU cost (callgrind, $CPU_EVENTS events, every thread of camjoin)"
    printf '  %-42s %12.0f\n' "instructions per event" "$per"
    jq -r '.top_functions[:10][] | "    \(.percent)%  \(.function)"' "$RESULTS/cpu.json"
    kafka_stop
}

# ------------------------------------- 7. the dashboard's queries, at size
# DASH_ROWS (10M) synthetic rows over the 24 h before now
# (bench/dashboard_fill.sql: no Kafka, no camjoin; the rollup rebuilt from
# them). Then bench/dashboard.py times every SQL query of
# deploy/grafana/dashboards/camjoin.json (panels and variables) over 1 h,
# 6 h and 24 h, with every variable All and with one value each.
phase_dashboard() {
    local end
    fresh_db
    psql -XAtq -1 -v ON_ERROR_STOP=1 -f "$BENCH_SRC/config/schema.sql" >/dev/null
    end=$(psql_val "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')")
    log "writing $DASH_ROWS rows over 24 h"
    psql -XAtq -v ON_ERROR_STOP=1 -v rows="$DASH_ROWS" -v end="$end" <"$BENCH_SRC/config/cameras.csv" \
        -f "$BENCH_SRC/bench/dashboard_fill.sql" >/dev/null
    assert_eq "dashboard: rows" "$DASH_ROWS" "$(psql_val "SELECT count(*) FROM camera_events")"
    assert_eq "dashboard: rollup events = rows" "$DASH_ROWS" \
        "$(psql_val "SELECT sum(events) FROM camera_events_minute")"
    python3 "$BENCH_SRC/bench/dashboard.py" --dashboard "$BENCH_SRC/deploy/grafana/dashboards/camjoin.json" \
        --end "$end" >"$CJ_TMP/dashboard.json"
    json_out dashboard "$(jq --argjson machine "$(machine_json)" --arg rows "$DASH_ROWS" \
        --arg groups "$(psql_val "SELECT count(*) FROM camera_events_minute")" \
        '{machine: $machine, rows: ($rows|tonumber), rollup_rows: ($groups|tonumber)} + .' "$CJ_TMP/dashboard.json")"
    printf '\n%s\n' "dashboard: $DASH_ROWS rows over 24 h ($(jq .rollup_rows "$RESULTS/dashboard.json") rollup rows), median of 5"
    jq -r '.queries[] | "  \(.query | .[0:40] | . + " " * (40 - length)) \(.range | . + " " * (4 - length)) \(.filter)  \(.median_ms) ms  \(.rows) rows"' \
        "$RESULTS/dashboard.json"
    jq -r '"  worst: \(.worst.query) \(.worst.range) \(.worst.filter) \(.worst.median_ms) ms; most rows: \(.most_rows.query) \(.most_rows.range) \(.most_rows.filter) \(.most_rows.rows)"' \
        "$RESULTS/dashboard.json"
}

# --------------------------------------------------------------- 6. plots
phase_plots() {
    command -v gnuplot >/dev/null || fail "gnuplot not found (apt-get install gnuplot-nox)"
    [[ -s "$RESULTS/latency.json" && -s "$RESULTS/sweep.json" ]] ||
        fail "plots need latency.json and sweep.json in $RESULTS (run those phases first)"
    jq -r '.runs[] | "\(.rate) \(.p50_ms) \(.p99_ms) \(.p999_ms) \(.max_ms)"' \
        "$RESULTS/latency.json" >"$RESULTS/latency.dat"
    local ceiling=0
    if [[ -s "$RESULTS/throughput.json" ]]; then
        ceiling=$(jq '.copy_ceiling.rows_per_s' "$RESULTS/throughput.json")
    fi
    jq -r --arg c "$ceiling" '.runs[] | "\(.max_rows) \(.rows_per_s) \($c)"' \
        "$RESULTS/sweep.json" >"$RESULTS/sweep.dat"
    gnuplot -e "results='$RESULTS'; out='$BENCH_SRC/docs'" "$BENCH_SRC/bench/plots.gp"
    log "wrote docs/bench-latency.png and docs/bench-batch-rows.png"
}

PHASES=("$@")
ALL=0
[[ ${#PHASES[@]} -gt 0 ]] || { ALL=1; PHASES=(throughput latency linger1 peak size memory cpu sweep rss dashboard plots); }
if [[ ${PHASES[*]} == mock ]]; then
    # the mock beside the real broker: the same phases into results/mock/
    CAMJOIN_KAFKA=mock BENCH_RESULTS=$RESULTS/mock bash "$BENCH_SRC/bench/run.sh" \
        throughput latency linger1
    bash "$BENCH_SRC/bench/compare.sh" "$RESULTS" "$RESULTS/mock"
    exit 0
fi
# the peers (bench/peers/*/run.sh), one after the other on this machine,
# on the throughput phase's workload; each runner starts its own
# PostgreSQL and broker with this file's settings, checks its table
# against the generator's manifest and writes results/peers/*.json;
# then one table and one plot (docs/bench-peers.png) of them all
run_peers() {
    export PEER_EVENTS=${BENCH_PEER_EVENTS:-300000} PEER_PARTITIONS=${BENCH_PEER_PARTITIONS:-32}
    export PEER_RESULTS=$RESULTS/peers
    bash "$BENCH_SRC/bench/peers/python/run.sh"
    bash "$BENCH_SRC/bench/peers/flink/run.sh"
    PEER_TUNED=1 bash "$BENCH_SRC/bench/peers/flink/run.sh"
    bash "$BENCH_SRC/bench/peers/connect/run.sh"
    bash "$BENCH_SRC/bench/peers/flink/run.sh" live       # each: 10k events/s live
    PEER_TUNED=1 bash "$BENCH_SRC/bench/peers/flink/run.sh" live
    bash "$BENCH_SRC/bench/peers/connect/run.sh" live
    bash "$BENCH_SRC/bench/peers/table.sh" "$RESULTS/peers"
    bash "$BENCH_SRC/bench/peers/plot.sh" "$RESULTS/peers" "$BENCH_SRC/docs"
}
if [[ ${PHASES[*]} == peers ]]; then
    run_peers
    exit 0
fi
pg_start
for ph in "${PHASES[@]}"; do
    declare -F "phase_$ph" >/dev/null || fail "unknown phase '$ph'"
    "phase_$ph"
done
if [[ $ALL == 1 ]]; then  # every figure from one run: the peers last, each on its own cluster
    pg_stop
    run_peers
fi
