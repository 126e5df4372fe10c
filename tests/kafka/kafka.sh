# shellcheck shell=bash disable=SC2034  # (variables set here are read by the sourcing scripts)
# kafka.sh — the one owner of real Apache Kafka brokers for camjoin's tests,
# demo and benchmarks. Source it (tests/integration/lib.sh does), or run it
# as a command for the ctest fixture and by hand:
#     bash tests/kafka/kafka.sh fetch | version
#     bash tests/kafka/kafka.sh shared-start DIR | shared-stop DIR
#
# The broker is Apache Kafka KAFKA_VERSION from Maven Central
# (tests/kafka/pom.xml): `mvn dependency:copy-dependencies` puts its jars in
# KAFKA_HOME = ${XDG_CACHE_HOME:-$HOME/.cache}/camjoin/kafka-VERSION, once,
# under a lock, and every later run reuses them. java and mvn are installed
# with apt (default-jre-headless, maven) when missing. No jar is in the repo.
#
# Nodes are KRaft "combined" (broker and controller in one JVM), on free
# loopback ports, with a throwaway log directory under the caller's DIR, a
# small heap, and parent-death signalling (setpriv --pdeathsig): a node dies
# with the shell that started it, on every exit path, even kill -9.
#
#   kafka_fetch                     jars into KAFKA_HOME (no-op when present)
#   maven_fetch POM HOME JAR LABEL [MVN_ARGS...]
#                                   the same for any pom (the benchmarks' peers)
#   kafka_cluster_start DIR N [K=V...]
#                                   N combined nodes (N=1: one node; N=3:
#                                   replication factor 3, min.insync.replicas
#                                   2); extra broker properties K=V; waits
#                                   until every broker is registered; exports
#                                   KAFKA_BROKERS (the bootstrap list)
#   kafka_node_kill ID [SIGNAL]     SIGKILL (default) one node, waits for it
#   kafka_node_start ID             (re)starts one node on its log directory
#   kafka_node_pid ID / kafka_node_alive ID
#   kafka_cluster_stop              SIGTERM every node (SIGKILL after 15 s)
#   kafka_topic_create TOPIC PARTITIONS [K=V...]
#                                   with the cluster's replication factor and
#                                   topic configs K=V; waits for a leader
#                                   (and a full ISR) on every partition
#   kafka_topic_partitions TOPIC N  grows the topic to N partitions
#   kafka_delete_records TOPIC PARTITION OFFSET
#                                   the broker's DeleteRecords: the log start
#                                   of that partition moves to OFFSET
#   kafka_leader TOPIC PARTITION    node id of the partition's leader
#   kafka_codecs TOPIC PARTITION    one "CODEC RECORDS" line per record batch
#                                   of the partition as the broker stored it
#                                   (DumpLogSegments over its log files)
#   kafka_tool CLASS ARGS...        one of Kafka's own tools (small JVM)
#   kafka_version                   the version the broker reports it runs
#   free_port                       a free TCP port on 127.0.0.1
#
# Failures call `fail` when the sourcing script has one (lib.sh), else
# print one line and exit 1.

KAFKA_VERSION=${CAMJOIN_KAFKA_VERSION:-4.4.0}
KAFKA_SCALA=2.13
KAFKA_HOME=${CAMJOIN_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/camjoin/kafka-$KAFKA_VERSION}
KAFKA_SH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# broker heap: small enough for three nodes beside PostgreSQL on a laptop
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}

KAFKA_DIR=""         # the cluster's scratch directory (configs, logs, data)
KAFKA_DATA_ROOT=""   # where the nodes' data directories are (node*/data)
KAFKA_NODES=0        # node count of the running cluster
KAFKA_RF=1           # replication factor for topics
KAFKA_BROKERS=""
declare -A KAFKA_PID=() KAFKA_PORT=()

_kafka_fail() {
    if declare -F fail >/dev/null; then fail "$*"; fi
    printf 'kafka.sh: %s\n' "$*" >&2
    exit 1
}
_kafka_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

_port_free() {
    local p=$1
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        return 1
    fi
    ! ss -Htan "( sport = :$p )" 2>/dev/null | grep -q .
}

free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40001))
        if _port_free "$p"; then
            echo "$p"
            return 0
        fi
    done
    _kafka_fail "no free TCP port found in 20000-60000"
}

# ------------------------------------------------------------------ fetch
_kafka_need_tools() {
    local missing=()
    command -v java >/dev/null || missing+=(default-jre-headless)
    command -v mvn >/dev/null || missing+=(maven)
    ((${#missing[@]})) || return 0
    [[ $EUID -eq 0 ]] || _kafka_fail "Kafka needs ${missing[*]}: install them as root (apt-get install ${missing[*]})"
    _kafka_log "installing ${missing[*]} (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >/dev/null 2>&1 || {
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
            >/dev/null || _kafka_fail "apt-get install ${missing[*]} failed"
    }
}

kafka_fetch() {
    maven_fetch "$KAFKA_SH_DIR/pom.xml" "$KAFKA_HOME" "kafka_$KAFKA_SCALA-$KAFKA_VERSION.jar" \
        "Apache Kafka $KAFKA_VERSION" -Dkafka.version="$KAFKA_VERSION"
}

# The jars of POM's dependencies into HOME/libs, once: nothing to do when
# HOME/libs/JAR is there. One fetch at a time (a lock beside HOME), so the
# parallel tests of a fresh machine wait for the first; the jars land in a
# temporary directory that is renamed into place only when mvn succeeded.
# Also the benchmarks' Kafka Connect peer (bench/peers/connect/run.sh).
maven_fetch() {  # POM HOME JAR LABEL [MVN_ARGS...]
    local pom=$1 home=$2 jar=$2/libs/$3 label=$4 tmp lock why
    shift 4
    [[ -f $jar ]] && return 0
    _kafka_need_tools
    mkdir -p "$home"
    exec {lock}>"$home.lock"
    flock "$lock"
    if [[ ! -f $jar ]]; then
        _kafka_log "fetching $label from Maven Central into $home"
        tmp=$(mktemp -d "$home/libs.XXXXXX")
        if ! mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$pom" "$@" \
            dependency:copy-dependencies -DoutputDirectory="$tmp" >"$home/fetch.log" 2>&1; then
            rm -rf "$tmp"
            exec {lock}>&-
            why=$(sed 's/\x1b\[[0-9;]*m//g' "$home/fetch.log" | grep -m 1 'ERROR\] .') ||
                why=$(tail -n 5 "$home/fetch.log")
            _kafka_fail "mvn could not fetch $label: $why"
        fi
        rm -rf "$home/libs"
        mv "$tmp" "$home/libs"
    fi
    exec {lock}>&-
    [[ -f $jar ]] || _kafka_fail "$jar missing after the fetch"
}

# Kafka's tools log at WARN to stderr; the broker logs to its node directory.
_kafka_log4j() {  # FILE LEVEL [LOGFILE]
    {
        echo "status = warn"
        if [[ -n ${3:-} ]]; then
            echo "appender.out.type = File"
            echo "appender.out.fileName = $3"
        else
            echo "appender.out.type = Console"
            echo "appender.out.target = SYSTEM_ERR"
        fi
        echo "appender.out.name = out"
        echo "appender.out.layout.type = PatternLayout"
        echo "appender.out.layout.pattern = [%d] %p %m (%c)%n"
        echo "rootLogger.level = $2"
        echo "rootLogger.appenderRef.out.ref = out"
    } >"$1"
}

kafka_tool() {  # CLASS ARGS...: one of Kafka's tools, quick to start
    local cls=$1 cfg
    shift
    kafka_fetch
    cfg=$KAFKA_HOME/tools-log4j2.properties
    [[ -f $cfg ]] || _kafka_log4j "$cfg" WARN
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$cfg" -cp "$KAFKA_HOME/libs/*" "$cls" "$@"
}

# ------------------------------------------------------------------ nodes
_kafka_node_config() {  # ID VOTERS EXTRA...: server.properties of node ID
    local id=$1 voters=$2 d=$KAFKA_DIR/node$1 min_isr=1
    shift 2
    ((KAFKA_RF >= 3)) && min_isr=2
    mkdir -p "$d" "$KAFKA_DATA_ROOT/node$id/data"
    {
        echo "process.roles=broker,controller"
        echo "node.id=$id"
        echo "controller.quorum.voters=$voters"
        echo "listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT[$id]},CONTROLLER://127.0.0.1:${KAFKA_PORT[c$id]}"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT[$id]}"
        echo "controller.listener.names=CONTROLLER"
        echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        echo "inter.broker.listener.name=PLAINTEXT"
        echo "log.dirs=$KAFKA_DATA_ROOT/node$id/data"
        echo "auto.create.topics.enable=false"
        echo "num.partitions=1"
        echo "default.replication.factor=$KAFKA_RF"
        echo "min.insync.replicas=$min_isr"
        # few internal partitions: the first group or transaction is quick
        echo "offsets.topic.num.partitions=4"
        echo "offsets.topic.replication.factor=$KAFKA_RF"
        echo "transaction.state.log.num.partitions=4"
        echo "transaction.state.log.replication.factor=$KAFKA_RF"
        echo "transaction.state.log.min.isr=$min_isr"
        echo "group.initial.rebalance.delay.ms=0"
        echo "share.coordinator.state.topic.replication.factor=$KAFKA_RF"
        echo "share.coordinator.state.topic.min.isr=$min_isr"
        # a throwaway cluster: no need to fsync or to keep logs around
        echo "log.flush.interval.messages=9223372036854775807"
        local kv
        for kv in "$@"; do echo "$kv"; done
    } >"$d/server.properties"
    _kafka_log4j "$d/log4j2.properties" INFO "$d/server.log"
}

kafka_node_pid() { echo "${KAFKA_PID[$1]:-}"; }
kafka_node_alive() { [[ -n ${KAFKA_PID[$1]:-} ]] && kill -0 "${KAFKA_PID[$1]}" 2>/dev/null; }

# Starts node ID of the configured cluster in the background. The node gets
# SIGKILL when this shell dies (pdeathsig), so nothing outlives a test.
kafka_node_start() {  # ID
    local id=$1 d=$KAFKA_DIR/node$1
    kafka_node_alive "$id" && _kafka_fail "kafka node $id is already running"
    # shellcheck disable=SC2086
    setpriv --pdeathsig KILL -- java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$d/log4j2.properties" \
        -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$d/server.properties" \
        >>"$d/stdout.log" 2>&1 </dev/null &
    KAFKA_PID[$id]=$!
}

kafka_node_kill() {  # ID [SIGNAL]: the signal, then SIGKILL after 15 s
    local id=$1 sig=${2:-KILL} pid=${KAFKA_PID[$1]:-} timer
    [[ -n $pid ]] || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    # every child is reaped by `wait` itself: bash prints no "Killed" notice
    sleep 15 &
    timer=$!
    wait -n "$pid" "$timer" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    kill "$timer" 2>/dev/null || true
    wait "$timer" 2>/dev/null || true
    KAFKA_PID[$id]=""
}

# The brokers registered with the controller, as seen by a metadata request.
_kafka_brokers_up() {
    { kcat -b "$KAFKA_BROKERS" -L -m 2 2>/dev/null || true; } | sed -n 's/^ \([0-9]*\) brokers:$/\1/p'
}

kafka_wait_ready() {  # [TIMEOUT_S]: every node running and registered
    local timeout=${1:-90} deadline id up
    deadline=$(($(date +%s) + timeout))
    while (($(date +%s) < deadline)); do
        for ((id = 1; id <= KAFKA_NODES; id++)); do
            kafka_node_alive "$id" ||
                _kafka_fail "kafka node $id exited: $(tail -n 5 "$KAFKA_DIR/node$id/stdout.log" \
                    "$KAFKA_DIR/node$id/server.log" 2>/dev/null | grep -E 'ERROR|Exception' | tail -n 3)"
        done
        up=$(_kafka_brokers_up)
        [[ ${up:-0} -ge $KAFKA_NODES ]] && return 0
        sleep 0.2
    done
    _kafka_fail "Kafka ($KAFKA_NODES nodes at $KAFKA_BROKERS) not ready within ${timeout} s"
}

kafka_cluster_start() {  # DIR N [K=V...]
    local dir=$1 n=$2 id voters="" cluster t0
    shift 2
    kafka_fetch
    t0=$(date +%s.%N)
    KAFKA_DIR=$dir KAFKA_DATA_ROOT=$dir KAFKA_NODES=$n KAFKA_RF=$((n >= 3 ? 3 : n))
    # CAMJOIN_KAFKA_LOG_ROOT: the nodes' logs on another file system (a
    # benchmark's broker off PostgreSQL's disk); removed by kafka_cluster_stop
    if [[ -n ${CAMJOIN_KAFKA_LOG_ROOT:-} ]]; then
        KAFKA_DATA_ROOT=$(mktemp -d "$CAMJOIN_KAFKA_LOG_ROOT/camjoin-kafka.XXXXXX")
    fi
    mkdir -p "$KAFKA_DIR"
    for ((id = 1; id <= n; id++)); do
        KAFKA_PORT[$id]=$(free_port)
        KAFKA_PORT[c$id]=$(free_port)
        voters+="${voters:+,}$id@127.0.0.1:${KAFKA_PORT[c$id]}"
        KAFKA_BROKERS+="${KAFKA_BROKERS:+,}127.0.0.1:${KAFKA_PORT[$id]}"
    done
    cluster=$(kafka_tool kafka.tools.StorageTool random-uuid) || _kafka_fail "kafka-storage random-uuid failed"
    local formats=()
    for ((id = 1; id <= n; id++)); do  # the formatters run side by side
        _kafka_node_config "$id" "$voters" "$@"
        kafka_tool kafka.tools.StorageTool format -t "$cluster" -c "$KAFKA_DIR/node$id/server.properties" \
            >"$KAFKA_DIR/node$id/format.log" 2>&1 &
        formats+=($!)
    done
    for ((id = 1; id <= n; id++)); do
        wait "${formats[$((id - 1))]}" ||
            _kafka_fail "kafka-storage format (node $id): $(tail -n 3 "$KAFKA_DIR/node$id/format.log")"
    done
    for ((id = 1; id <= n; id++)); do kafka_node_start "$id"; done
    export KAFKA_BROKERS
    kafka_wait_ready 120
    _kafka_warm
    KAFKA_START_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    _kafka_log "Apache Kafka $(kafka_version) ($n node(s), KRaft combined) at $KAFKA_BROKERS, ready in $KAFKA_START_S s"
}

# One idempotent message: a fresh broker loads its producer-id and
# transaction coordinators on the first InitProducerId ("coordinator load in
# progress"), which would otherwise delay the first producer of a test, a
# demo or a benchmark by up to a second, and show up as its latency.
_kafka_warm() {
    local t0=$SECONDS
    kafka_topic_create camjoin-warmup 1
    until echo warm | kcat -b "$KAFKA_BROKERS" -P -t camjoin-warmup -X enable.idempotence=true \
        -X message.timeout.ms=10000 2>/dev/null; do
        ((SECONDS - t0 < 60)) || _kafka_fail "the warm-up message was not delivered within 60 s"
        sleep 0.2
    done
}

kafka_cluster_stop() {
    local id pids=()
    for id in "${!KAFKA_PID[@]}"; do
        [[ $id == c* || -z ${KAFKA_PID[$id]} ]] || pids+=("$id")
    done
    # TERM all first (controlled shutdown in parallel), then reap
    for id in "${pids[@]}"; do kill -TERM "${KAFKA_PID[$id]}" 2>/dev/null || true; done
    for id in "${pids[@]}"; do kafka_node_kill "$id" TERM; done
    if [[ -n $KAFKA_DATA_ROOT && $KAFKA_DATA_ROOT != "$KAFKA_DIR" && -n ${CAMJOIN_KAFKA_LOG_ROOT:-} &&
          $KAFKA_DATA_ROOT == "$CAMJOIN_KAFKA_LOG_ROOT"/camjoin-kafka.* ]]; then
        rm -rf "$KAFKA_DATA_ROOT"
    fi
    KAFKA_NODES=0 KAFKA_BROKERS=""
}

# The version the broker logged at startup (AppInfoParser), else the pin.
kafka_version() {
    local v=""
    [[ -n $KAFKA_DIR ]] && v=$(grep -ho 'Kafka version: [^ ]*' "$KAFKA_DIR"/node*/server.log 2>/dev/null |
        head -n 1 | sed 's/Kafka version: //')
    echo "${v:-$KAFKA_VERSION}"
}

# ----------------------------------------------------------------- topics
# Waits until every partition has a leader, and KAFKA_RF in-sync replicas.
_kafka_topic_wait() {  # TOPIC PARTITIONS [TIMEOUT_S]
    local topic=$1 parts=$2 timeout=${3:-60} deadline ok
    deadline=$(($(date +%s) + timeout))
    while (($(date +%s) < deadline)); do
        ok=$({ kcat -b "$KAFKA_BROKERS" -L -t "$topic" -m 5 2>/dev/null || true; } |
            awk -v rf="$KAFKA_RF" '/partition [0-9]+, leader/ {
                    isr = $0; sub(/.*isrs: /, "", isr); n = split(isr, a, ",")
                    if ($4 + 0 >= 0 && $0 !~ /leader -1/ && $0 !~ /Err/ && n >= rf) ok++ }
                END { print ok + 0 }')
        ((ok >= parts)) && return 0
        sleep 0.2
    done
    _kafka_fail "topic $topic: $parts partitions with a leader and $KAFKA_RF in-sync replicas not seen within ${timeout} s"
}

kafka_topic_create() {  # TOPIC PARTITIONS [K=V...] (topic configs)
    local topic=$1 parts=$2 kv args=()
    shift 2
    for kv in "$@"; do args+=(--config "$kv"); done
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" --create \
        --topic "$topic" --partitions "$parts" --replication-factor "$KAFKA_RF" "${args[@]}" \
        >"$KAFKA_DIR/topic-$topic.log" 2>&1 ||
        _kafka_fail "create topic $topic: $(grep -v '^\s*at ' "$KAFKA_DIR/topic-$topic.log" | tail -n 3)"
    _kafka_topic_wait "$topic" "$parts"
}

kafka_topic_partitions() {  # TOPIC N
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" --alter \
        --topic "$1" --partitions "$2" >"$KAFKA_DIR/topic-$1.alter.log" 2>&1 ||
        _kafka_fail "grow topic $1 to $2 partitions: $(tail -n 3 "$KAFKA_DIR/topic-$1.alter.log")"
    _kafka_topic_wait "$1" "$2"
}

kafka_delete_records() {  # TOPIC PARTITION OFFSET
    local f=$KAFKA_DIR/delete-records.json
    printf '{"version":1,"partitions":[{"topic":"%s","partition":%d,"offset":%d}]}\n' "$1" "$2" "$3" >"$f"
    kafka_tool org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$KAFKA_BROKERS" \
        --offset-json-file "$f" >"$KAFKA_DIR/delete-records.log" 2>&1 ||
        _kafka_fail "delete records of $1[$2] below $3: $(tail -n 3 "$KAFKA_DIR/delete-records.log")"
    grep -q "partition: $1-$2	low_watermark: $3" "$KAFKA_DIR/delete-records.log" ||
        _kafka_fail "delete records of $1[$2] below $3: $(cat "$KAFKA_DIR/delete-records.log")"
}

kafka_codecs() {  # TOPIC PARTITION: "codec records" per batch, in offset order
    local files
    files=$(ls "$KAFKA_DATA_ROOT"/node*/data/"$1-$2"/*.log 2>/dev/null | paste -sd, -)
    [[ -n $files ]] || _kafka_fail "no log segments of $1-$2 under $KAFKA_DATA_ROOT"
    kafka_tool org.apache.kafka.tools.DumpLogSegments --files "$files" 2>/dev/null |
        sed -nE 's/.*baseOffset: .* count: ([0-9]+) .*compresscodec: ([a-z0-9]+).*/\2 \1/p'
}

kafka_leader() {  # TOPIC PARTITION
    { kcat -b "$KAFKA_BROKERS" -L -t "$1" -m 5 2>/dev/null || true; } |
        awk -v p="$2" '$1 == "partition" && $2 == p "," { print $4 + 0; exit }'
}

# ------------------------------------------- the shared broker of a ctest run
# shared-start DIR: one node in DIR, held by a detached process (setsid)
# that also watches the caller's parent (ctest): once that process is gone
# the holder stops the broker, so an interrupted ctest leaves nothing
# running. DIR/bootstrap holds the address; tests use the broker when
# CAMJOIN_KAFKA_SHARED=DIR (lib.sh).
_kafka_shared_start() {  # DIR
    local dir=$1 i
    _kafka_shared_stop "$dir" # a leftover of an interrupted run
    if [[ ${CAMJOIN_KAFKA:-real} == mock ]]; then
        _kafka_log "CAMJOIN_KAFKA=mock: no shared broker"
        return 0
    fi
    mkdir -p "$dir"
    setsid bash "$KAFKA_SH_DIR/kafka.sh" _shared-hold "$dir" "$PPID" </dev/null >"$dir/shared.log" 2>&1 &
    echo $! >"$dir/holder"
    for ((i = 0; i < 1500; i++)); do
        [[ -f $dir/bootstrap ]] && break
        kill -0 "$(cat "$dir/holder")" 2>/dev/null ||
            { cat "$dir/shared.log" >&2; _kafka_fail "the shared broker did not start"; }
        sleep 0.1
    done
    [[ -f $dir/bootstrap ]] || _kafka_fail "the shared broker was not ready within 150 s"
    _kafka_log "shared Kafka $(cat "$dir/version") at $(cat "$dir/bootstrap") (ready in $(cat "$dir/start_s") s)"
}

_kafka_shared_hold() {  # DIR OWNER_PID
    local dir=$1 owner=$2
    trap 'kafka_cluster_stop; exit 0' TERM INT
    kafka_cluster_start "$dir/cluster" 1
    echo "${KAFKA_PID[1]}" >"$dir/pid"
    echo "$KAFKA_START_S" >"$dir/start_s"
    kafka_version >"$dir/version"
    echo "$KAFKA_BROKERS" >"$dir/bootstrap.tmp"
    mv "$dir/bootstrap.tmp" "$dir/bootstrap"
    while kill -0 "$owner" 2>/dev/null && kafka_node_alive 1; do sleep 1; done
    _kafka_log "owner $owner gone or broker exited: stopping"
    kafka_cluster_stop
}

_kafka_shared_stop() {  # DIR
    local dir=$1 pid i
    [[ -d $dir ]] || return 0
    pid=$(cat "$dir/holder" 2>/dev/null || true)
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 200; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    pid=$(cat "$dir/pid" 2>/dev/null || true)
    [[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null || true
    rm -rf "$dir"
}

# A live shared broker's bootstrap list, or nothing.
kafka_shared_bootstrap() {  # DIR
    local dir=$1 pid
    [[ -n $dir && -f $dir/bootstrap ]] || return 0
    pid=$(cat "$dir/pid" 2>/dev/null || true)
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && cat "$dir/bootstrap"
    return 0
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case ${1:-} in
    fetch) kafka_fetch && echo "$KAFKA_HOME" ;;
    version) echo "$KAFKA_VERSION" ;;
    shared-start) _kafka_shared_start "${2:?usage: kafka.sh shared-start DIR}" ;;
    shared-stop) _kafka_shared_stop "${2:?usage: kafka.sh shared-stop DIR}" ;;
    _shared-hold) _kafka_shared_hold "$2" "$3" ;;
    *) echo "usage: kafka.sh fetch | version | shared-start DIR | shared-stop DIR" >&2; exit 2 ;;
    esac
fi
