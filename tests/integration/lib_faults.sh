# shellcheck shell=bash disable=SC2034,SC2153  # (variables are shared with lib.sh and the scripts)
# lib_faults.sh — part of lib.sh (source lib.sh, not this file): what the
# fault scenarios (tests/faults/f_*.sh) share.
#
#   fault_param VAR ENV CI [FULL]
#       a scenario's size: VAR = $ENV when set and not empty, else FULL under
#       FAULTS_SCALE=full (when given), else CI. ENV "-": no override.
#   fault_seed ENV DEFAULT
#       SEED = $ENV or DEFAULT; "random" draws one from /dev/urandom.
#   fault_setup [KAFKA_START [ARGS...]]
#       PostgreSQL, the broker (kafka_start by default; kafka_start_own NODES,
#       kafka_start_mock MOCK_ARGS...) with TOPIC of PARTS partitions, and
#       CJ_ARGS for TOPIC and GROUP (the script's variables).
#   fault_start GEN SEED TIMEOUT_MS WARM / fault_finish GEN TOTAL TOPIC GROUP PID
#       the start and the end of a one-process run (see there).
#   fault_figures TOPIC
#       after load_manifest and load_messages: sets F_LOST (valid manifest ids
#       not in camera_events), F_DUP_ROWS (count(*) - count(DISTINCT
#       (event_id, event_ts))), F_ROWS (count(*)), F_DEAD (dead letters of
#       TOPIC), F_DEAD_MISSING (malformed manifest keys with no dead letter
#       at their message's partition/offset carrying the manifest's reason)
#       and F_DEAD_EXTRA (dead letters stored more than once).
#   stats_pct P VALUES...  nearest-rank percentile (P in 0-100) of the values
#   stats_max VALUES...    largest value
#   vmrss_kib PID          VmRSS of PID from /proc, in KiB

fault_param() {  # VAR ENV CI [FULL]
    local value=$3
    if [[ ${FAULTS_SCALE:-} == full ]] && (($# >= 4)); then value=$4; fi
    if [[ $2 != - && -n ${!2:-} ]]; then value=${!2}; fi
    printf -v "$1" '%s' "$value"
}

fault_seed() {  # ENV DEFAULT
    fault_param SEED "$1" "$2"
    [[ $SEED != random ]] || SEED=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
}

fault_setup() {  # [KAFKA_START [ARGS...]] (TOPIC, PARTS, GROUP: the script's)
    local start=${1:-kafka_start}
    (($# == 0)) || shift
    pg_start
    "$start" "$TOPIC" "$PARTS" "$@"
    camjoin_args "$TOPIC" "$GROUP"
}

stats_pct() {  # P VALUES...
    local p=$1
    shift
    printf '%s\n' "$@" | sort -g |
        awk -v p="$p" '{ v[NR] = $1 } END { if (!NR) { print "n/a"; exit }
                        r = int((p * NR + 99) / 100); if (r < 1) r = 1; print v[r] }'
}

stats_max() { printf '%s\n' "$@" | sort -g | tail -n 1; }

vmrss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

fault_figures() {  # TOPIC (after load_manifest and load_messages)
    local topic=$1
    F_ROWS=$(psql_val "SELECT count(*) FROM camera_events")
    F_LOST=$(psql_val "SELECT count(*) FROM (SELECT DISTINCT event_id FROM manifest
                       WHERE kind = 'valid' EXCEPT SELECT event_id FROM camera_events) x")
    F_DUP_ROWS=$(psql_val "SELECT count(*) - count(DISTINCT (event_id, event_ts)) FROM camera_events")
    F_DEAD=$(psql_val "SELECT count(*) FROM camjoin_dead_letters WHERE topic = '$topic'")
    F_DEAD_EXTRA=$(psql_val "SELECT count(*) - count(DISTINCT (kafka_partition, kafka_offset))
                             FROM camjoin_dead_letters WHERE topic = '$topic'")
    F_DEAD_MISSING=$(psql_val "SELECT count(*) FROM manifest m
                       LEFT JOIN kafka_messages k ON k.key = m.event_id
                       LEFT JOIN camjoin_dead_letters d ON d.topic = '$topic'
                            AND d.kafka_partition = k.kafka_partition
                            AND d.kafka_offset = k.kafka_offset AND d.reason = m.reason
                       WHERE m.kind = 'malformed' AND d.id IS NULL")
}

# The start of a one-process fault run: camjoin (CJ, logging to
# $CJ_TMP/cj.log) with CJ_ARGS, then camjoin-gen GEN_NAME at RATE for
# DURATION (5 % duplicates, 2 % unknown cameras, 1 % malformed, a manifest in
# $CJ_TMP/GEN_NAME.manifest.csv) with message.timeout.ms TIMEOUT_MS and any
# further generator arguments, and returns once WARM messages are committed.
fault_start() {  # GEN_NAME SEED TIMEOUT_MS WARM [GEN_ARGS...] (RATE, DURATION, TOPIC, GROUP: the script's)
    camjoin_start cj "${CJ_ARGS[@]}"
    CJ=$CAMJOIN_PID
    wait_progress "$TOPIC" "$GROUP" 0 30 "$CJ"
    gen_start "$1" --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed "$2" \
        --dup-ratio 0.05 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
        -X message.timeout.ms="$3" --manifest "$CJ_TMP/$1.manifest.csv" "${@:5}"
    wait_progress "$TOPIC" "$GROUP" "$4" 60 "$CJ"
}

# The end of a one-process fault run: the generator finished (exit 0: every
# message delivered) with TOTAL messages, camjoin (PID, logging to
# $CJ_TMP/cj.log) committed them all and stops with exit 0, and it logged no
# error line of its own (librdkafka's connection errors are expected under
# broker faults). Sets SENT.
fault_finish() {  # GEN_NAME TOTAL TOPIC GROUP PID
    local gen=$1 total=$2 topic=$3 group=$4 pid=$5
    gen_wait "$gen"
    SENT=$(json_get "$CJ_TMP/$gen.json" sent)
    log "generator: $(cat "$CJ_TMP/$gen.json")"
    assert_eq "messages sent = rate x duration (generator exit 0: every one delivered)" "$total" "$SENT"
    assert_eq "messages in Kafka (the sum of the end offsets) = messages delivered" "$SENT" \
        "$(kafka_end_total "$topic")"
    wait_offsets "$topic" "$group" "$SENT" 120 "$pid"
    kill -0 "$pid" 2>/dev/null || fail "camjoin (pid $pid) is gone: it must recover by itself"
    camjoin_stop "$pid"
    assert_eq "camjoin exit code after SIGTERM (same process all along)" 0 "$CAMJOIN_RC"
    assert_eq "camjoin error-level log lines (other than librdkafka's)" 0 \
        "$(grep 'level=error' "$CJ_TMP/cj.log" | grep -vc 'msg="librdkafka"' || true)"
}
