# shellcheck shell=bash disable=SC2034  # (variables set here are read by the sourcing scripts)
# lib_kafka.sh — part of lib.sh (source lib.sh, not this file): the broker,
# on top of tests/kafka/kafka.sh (which lib.sh sources), and what the tests
# read from it with kcat.
#
#   kafka_start TOPIC PARTITIONS [K=V...] / kafka_stop
#       a real Apache Kafka broker (tests/kafka/kafka.sh) with TOPIC created
#       (topic configs K=V): the ctest run's shared broker when
#       CAMJOIN_KAFKA_SHARED names a live one, else one of this test's own;
#       once a broker is up, another call only creates another topic;
#       CAMJOIN_KAFKA=mock runs camjoin-mock-kafka instead (a quick offline
#       run). Exports KAFKA_BROKERS.
#   kafka_start_own TOPIC PARTITIONS [NODES [K=V...]]
#       always this test's own cluster (tests that kill or restart brokers).
#   kafka_start_mock TOPIC PARTITIONS [mock args] / kafka_ctl "CMD"
#       camjoin-mock-kafka, stdin on a fifo kept open for control commands,
#       for the tests that need librdkafka's request-error injection.
#   need_real_kafka
#       exits 77 (ctest: skipped) under CAMJOIN_KAFKA=mock, for the tests
#       of what only a real broker does.
#   kafka_warm_traffic SECONDS
#       traffic through a fresh broker before measuring latency (see there).
#   kafka_end_offsets TOPIC / kafka_end_total TOPIC /
#   kafka_start_offsets TOPIC PARTITIONS / kafka_partition_count TOPIC
#       per-partition end and log-start offsets, the sum of the end offsets,
#       and the partition count, read with kcat.

KAFKA_OWN=""   # set when this test started its own cluster
KAFKA_MOCK_PID=""
KAFKA_FD=""    # the mock's control fifo, open for writing

kafka_start() {  # TOPIC PARTITIONS [K=V...]
    local topic=$1 parts=$2 shared
    shift 2
    if [[ ${CAMJOIN_KAFKA:-real} == mock ]]; then
        kafka_start_mock "$topic" "$parts"
        return
    fi
    if [[ -n $KAFKA_BROKERS && -z $KAFKA_MOCK_PID ]]; then  # a broker is up: one more topic
        kafka_topic_create "$topic" "$parts" "$@"
        log "topic $topic with $parts partitions"
        return
    fi
    shared=$(kafka_shared_bootstrap "${CAMJOIN_KAFKA_SHARED:-}")
    if [[ -z $shared ]]; then
        kafka_start_own "$topic" "$parts" 1 "$@"
        return
    fi
    KAFKA_DIR=$CJ_TMP/kafka KAFKA_BROKERS=$shared KAFKA_NODES=1 KAFKA_RF=1
    KAFKA_DATA_ROOT=$CAMJOIN_KAFKA_SHARED/cluster
    mkdir -p "$KAFKA_DIR"
    export KAFKA_BROKERS
    kafka_topic_create "$topic" "$parts" "$@"
    log "shared Kafka $(cat "$CAMJOIN_KAFKA_SHARED/version") at $KAFKA_BROKERS, topic $topic with $parts partitions"
}

kafka_start_own() {  # TOPIC PARTITIONS [NODES [K=V...]] (K=V: broker properties)
    local topic=$1 parts=$2 nodes=${3:-1}
    shift 2
    (($#)) && shift
    KAFKA_OWN=1
    # a directory per cluster: a script may stop one and start another
    kafka_cluster_start "$(mktemp -d "$CJ_TMP/kafka.XXXXXX")" "$nodes" "$@"
    kafka_topic_create "$topic" "$parts"
    log "topic $topic with $parts partitions, replication factor $KAFKA_RF"
}

# SECONDS of traffic through the broker (camjoin-gen at 10,000 events/s into
# a topic of its own, read back by a kcat consumer group), for the demo and
# the latency benchmarks: a fresh JVM broker compiles its produce and fetch
# paths in its first tens of seconds, which would otherwise show as hundreds
# of milliseconds of end-to-end latency that a broker in service never has.
kafka_warm_traffic() {  # SECONDS
    [[ ${CAMJOIN_KAFKA:-real} != mock ]] || return 0
    kafka_topic_create camjoin-warm-traffic 8
    gen_start warm-traffic --topic camjoin-warm-traffic --rate 10000 --duration "$1" --seed 1
    timeout $(($1 + 5)) kcat -b "$KAFKA_BROKERS" -G camjoin-warm-traffic camjoin-warm-traffic -q \
        >/dev/null 2>&1 || true
    gen_wait warm-traffic
}

need_real_kafka() {
    if [[ ${CAMJOIN_KAFKA:-real} == mock ]]; then
        echo "SKIPPED: $(basename "$0") tests what only a real broker does (CAMJOIN_KAFKA=mock)"
        exit 77
    fi
}

kafka_start_mock() {  # TOPIC PARTITIONS [more mock args...]
    local topic=$1 parts=$2 rc=0
    shift 2
    need_bin camjoin-mock-kafka
    rm -f "$CJ_TMP/kafka.in"
    mkfifo "$CJ_TMP/kafka.in"
    : >"$CJ_TMP/kafka.out"
    # Read-write open of a fifo never blocks, and holding a writer keeps the
    # mock's stdin from ever seeing EOF.
    exec {KAFKA_FD}<>"$CJ_TMP/kafka.in"
    "$CAMJOIN_BIN/camjoin-mock-kafka" --topic "$topic" --partitions "$parts" "$@" \
        <"$CJ_TMP/kafka.in" >"$CJ_TMP/kafka.out" 2>"$CJ_TMP/kafka.err" &
    KAFKA_MOCK_PID=$!
    wait_for -i 0.05 -p "$KAFKA_MOCK_PID" 10 -- lines_over "$CJ_TMP/kafka.out" 0 || rc=$?
    ((rc != 2)) || fail "camjoin-mock-kafka exited at startup"
    KAFKA_BROKERS=$(head -n 1 "$CJ_TMP/kafka.out")
    [[ -n "$KAFKA_BROKERS" ]] || fail "camjoin-mock-kafka printed no bootstrap list within 10 s"
    export KAFKA_BROKERS
    log "mock Kafka at $KAFKA_BROKERS, topic $topic with $parts partitions"
}

kafka_ctl() {  # "COMMAND": sends one control line to the mock, waits for its reply
    local before reply
    [[ -n $KAFKA_FD ]] || fail "kafka_ctl '$1': only the mock (kafka_start_mock) takes control commands"
    before=$(wc -l <"$CJ_TMP/kafka.out")
    printf '%s\n' "$1" >&"$KAFKA_FD"
    wait_for -i 0.05 5 -- lines_over "$CJ_TMP/kafka.out" "$before" ||
        fail "mock Kafka did not answer '$1' within 5 s"
    reply=$(sed -n "$((before + 1))p" "$CJ_TMP/kafka.out")
    [[ "$reply" == ok* ]] || fail "mock Kafka: '$1' answered '$reply'"
}

kafka_stop() {
    if [[ -n "$KAFKA_MOCK_PID" ]]; then _stop_pid "$KAFKA_MOCK_PID" TERM 10; fi
    if [[ -n "$KAFKA_FD" ]]; then exec {KAFKA_FD}>&-; fi
    KAFKA_MOCK_PID="" KAFKA_FD=""
    if [[ -n $KAFKA_OWN ]]; then kafka_cluster_stop; fi
    KAFKA_OWN=""
}

# The high watermark of every partition of TOPIC, as "PARTITION END" lines
# sorted by partition (ListOffsets latest). Without transactions it is the
# partition's message count; commit and abort markers take offsets too.
kafka_partition_count() {  # TOPIC
    { kcat -b "$KAFKA_BROKERS" -L -t "$1" 2>"$CJ_TMP/kcat.err" || true; } |
        grep -c '^    partition [0-9]*,' || true
}

kafka_end_offsets() {  # TOPIC
    local p n args=()
    n=$(kafka_partition_count "$1")
    ((n > 0)) || fail "topic $1: no partitions in the metadata ($(head -c 300 "$CJ_TMP/kcat.err"))"
    for ((p = 0; p < n; p++)); do args+=(-t "$1:$p:-1"); done
    kcat -b "$KAFKA_BROKERS" -Q "${args[@]}" 2>"$CJ_TMP/kcat.err" |
        sed -nE 's/.*\[([0-9]+)\] offset (-?[0-9]+).*/\1 \2/p' | sort -n
}

kafka_end_total() {  # TOPIC: the sum of the end offsets (the message count, without transactions)
    kafka_end_offsets "$1" | awk '{ s += $2 } END { print s + 0 }'
}

kafka_start_offsets() {  # TOPIC PARTITIONS: "PARTITION:START" lines
    local p args=()
    for ((p = 0; p < $2; p++)); do args+=(-t "$1:$p:-2"); done
    kcat -b "$KAFKA_BROKERS" -Q "${args[@]}" 2>"$CJ_TMP/kcat.err" |
        sed -nE 's/.*\[([0-9]+)\] offset (-?[0-9]+).*/\1:\2/p' | sort -n
}

kafka_ends_csv() {  # TOPIC: "P:END,P:END,..." (the partitions' end offsets)
    kafka_end_offsets "$1" | awk '{ print $1 ":" $2 }' | paste -sd,
}
