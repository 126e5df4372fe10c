# shellcheck shell=bash disable=SC2034  # (variables set here are read by the sourcing scripts)
# lib.sh — shared harness for the integration tests (tests/integration/t_*.sh)
# and scripts/demo.sh. Source it from a script running under
# `set -euo pipefail`; it starts nothing by itself.
#
# What it gives:
#   pg_start / pg_stop / pg_down / pg_up / pg_restart
#       a throwaway PostgreSQL 15 cluster on a free loopback port (owned by
#       the `postgres` user when run as root), database `camjoin`; exports
#       PGHOST PGPORT PGUSER PGDATABASE and CAMJOIN_PG_URI.
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
#   camjoin_start NAME ARGS... / camjoin_stop PID / camjoin_wait PID [SECS]
#       the daemon in the background, stderr to $CJ_TMP/NAME.log; the pid is
#       left in CAMJOIN_PID, the exit code of a stop/wait in CAMJOIN_RC.
#   gen NAME ARGS... / gen_start NAME ARGS... / gen_wait NAME
#       camjoin-gen with the shipped cameras.csv; the JSON summary lands in
#       $CJ_TMP/NAME.json (read it with json_get).
#   wait_offsets / wait_progress TOPIC GROUP TOTAL TIMEOUT [PID]
#       until sum(next_offset) in camjoin_offsets is TOTAL / at least TOTAL.
#   kafka_end_offsets TOPIC / kafka_start_offsets TOPIC PARTITIONS
#       per-partition end and log-start offsets, read with kcat.
#   load_manifest FILE / load_cameras / load_messages TOPIC
#       \copy into tables `manifest`, `ref_cameras` and `kafka_messages`
#       (the topic read back with kcat), so that tests compute their
#       expectations in SQL, independently from camjoin.
#   assert_final_state SUMMARY MANIFEST TOPIC GROUP PARTITIONS
#       the exact end-state checks shared by t_core, t_restart and t_rerun.
#   assert_reasons NAME TOPIC
#       dead letters by reason = the manifest's malformed rows by reason.
#   pg_lock_hold APP / pg_lock_release APP
#       a session holding an exclusive lock on camera_events (COPY waits).
#   fail MSG / assert_eq NAME EXPECTED ACTUAL / psql_val SQL / json_get FILE KEY
#
# One EXIT trap (cleanup) stops everything that was started, in reverse
# order; on failure it prints the tail of every log, then the failure again. Set
# CAMJOIN_KEEP_TMP=1 to keep the scratch directory.

CAMJOIN_SRC=${CAMJOIN_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
CAMJOIN_BIN=${CAMJOIN_BIN:-$CAMJOIN_SRC/build}
export CAMJOIN_SRC CAMJOIN_BIN
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
CAMERAS_CSV=${CAMERAS_CSV:-$CAMJOIN_SRC/config/cameras.csv}

source "$CAMJOIN_SRC/tests/kafka/kafka.sh"

CJ_TMP=$(mktemp -d /tmp/camjoin-it.XXXXXX)
PG_DIR=""
KAFKA_MOCK_PID=""
KAFKA_FD=""
CAMJOIN_PID=""
CAMJOIN_RC=""
CAMJOIN_PIDS=()
declare -A GEN_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
CJ_FAIL=""
fail() { CJ_FAIL="FAIL: $*"; printf '%s\n' "$CJ_FAIL" >&2; exit 1; }

assert_eq() {
    local name=$1 expected=$2 actual=$3
    if [[ "$expected" != "$actual" ]]; then
        fail "$name: expected '$expected', got '$actual'"
    fi
    printf '  ok  %-58s %s\n' "$name" "$actual"
}

need_bin() {
    local b
    for b in "$@"; do
        [[ -x "$CAMJOIN_BIN/$b" ]] || fail "$CAMJOIN_BIN/$b not found (build first, or set CAMJOIN_BIN)"
    done
}

now_s() { date +%s.%N; }

# ---------------------------------------------------------------- cleanup
_stop_pid() {  # PID SIGNAL GRACE_SECONDS: signal, wait up to GRACE, then KILL
    local pid=$1 sig=$2 grace=$3 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

_dump_logs() {
    local f rc=0
    if [[ -n "$KAFKA_MOCK_PID" ]] && ! kill -0 "$KAFKA_MOCK_PID" 2>/dev/null; then
        wait "$KAFKA_MOCK_PID" || rc=$?
        printf -- '----- camjoin-mock-kafka had exited on its own, status %d\n' "$rc" >&2
        KAFKA_MOCK_PID=""
    fi
    for f in "$CJ_TMP"/*.log "$CJ_TMP"/*.err ${PG_DIR:+"$PG_DIR"/postgres.log} \
        ${KAFKA_OWN:+"$KAFKA_DIR"/node*/server.log}; do
        [[ -s "$f" ]] || continue
        printf -- '----- tail of %s\n' "$f" >&2
        tail -n 25 "$f" >&2
    done
}

cleanup() {
    local rc=$? pid name
    trap - EXIT
    set +e
    [[ $rc -ne 0 ]] && _dump_logs
    for pid in "${CAMJOIN_PIDS[@]}"; do _stop_pid "$pid" TERM 10; done
    for name in "${!GEN_PIDS[@]}"; do _stop_pid "${GEN_PIDS[$name]}" TERM 5; done
    kafka_stop
    pg_stop
    if [[ "${CAMJOIN_KEEP_TMP:-0}" == 1 ]]; then
        printf 'kept %s\n' "$CJ_TMP" >&2
    else
        rm -rf "$CJ_TMP"
    fi
    [[ -z "$CJ_FAIL" ]] || printf '%s\n' "$CJ_FAIL" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------- PostgreSQL
_pg_as() {  # runs a PostgreSQL server binary as the cluster owner
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_start() {
    local attempt
    [[ -x "$PG_BINDIR/initdb" ]] || fail "PostgreSQL 15 not found in $PG_BINDIR"
    PG_DIR=$(mktemp -d /tmp/camjoin-pg.XXXXXX)
    if [[ $EUID -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || fail "running as root but there is no 'postgres' user"
        chown postgres: "$PG_DIR"
    fi
    _pg_as "$PG_BINDIR/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync \
        -E UTF8 --locale=C >"$CJ_TMP/initdb.err" 2>&1 || fail "initdb failed: $(tail -n 5 "$CJ_TMP/initdb.err")"
    rm -f "$CJ_TMP/initdb.err"
    for attempt in 1 2 3 4 5; do
        PGPORT=$(free_port)
        {
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $PGPORT"
            echo "unix_socket_directories = '$PG_DIR'"
            if [[ "${PG_FSYNC:-on}" == off ]]; then echo "fsync = off"; fi
        } >>"$PG_DIR/data/postgresql.auto.conf"
        if _pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start \
            >/dev/null 2>&1; then
            break
        fi
        if ((attempt == 5)); then fail "PostgreSQL did not start: $(tail -n 5 "$PG_DIR/postgres.log")"; fi
        sed -i '/^port = /d' "$PG_DIR/data/postgresql.auto.conf"
    done
    export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=camjoin
    export CAMJOIN_PG_URI="postgresql://postgres@127.0.0.1:$PGPORT/camjoin"
    PGDATABASE=postgres psql -XAtq -v ON_ERROR_STOP=1 -c 'CREATE DATABASE camjoin' >/dev/null
    log "PostgreSQL 15 on 127.0.0.1:$PGPORT ($PG_DIR)"
}

pg_down() {
    [[ -n "$PG_DIR" ]] || return 0
    _pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
}

pg_up() {
    _pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start \
        >/dev/null 2>&1 || fail "PostgreSQL did not restart: $(tail -n 5 "$PG_DIR/postgres.log")"
}

pg_restart() { pg_down; pg_up; }

pg_stop() {
    [[ -n "$PG_DIR" ]] || return 0
    pg_down
    [[ "${CAMJOIN_KEEP_TMP:-0}" == 1 ]] || rm -rf "$PG_DIR"
    PG_DIR=""
}

psql_val() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# ------------------------------------------------------------------ Kafka
KAFKA_OWN=""   # set when this test started its own cluster

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
    local topic=$1 parts=$2 i
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
    for ((i = 0; i < 200; i++)); do
        if [[ $(wc -l <"$CJ_TMP/kafka.out") -ge 1 ]]; then break; fi
        kill -0 "$KAFKA_MOCK_PID" 2>/dev/null || fail "camjoin-mock-kafka exited at startup"
        sleep 0.05
    done
    KAFKA_BROKERS=$(head -n 1 "$CJ_TMP/kafka.out")
    [[ -n "$KAFKA_BROKERS" ]] || fail "camjoin-mock-kafka printed no bootstrap list within 10 s"
    export KAFKA_BROKERS
    log "mock Kafka at $KAFKA_BROKERS, topic $topic with $parts partitions"
}

kafka_ctl() {  # "COMMAND": sends one control line to the mock, waits for its reply
    local before reply i
    [[ -n $KAFKA_FD ]] || fail "kafka_ctl '$1': only the mock (kafka_start_mock) takes control commands"
    before=$(wc -l <"$CJ_TMP/kafka.out")
    printf '%s\n' "$1" >&"$KAFKA_FD"
    for ((i = 0; i < 100; i++)); do
        if [[ $(wc -l <"$CJ_TMP/kafka.out") -gt $before ]]; then
            reply=$(sed -n "$((before + 1))p" "$CJ_TMP/kafka.out")
            [[ "$reply" == ok* ]] || fail "mock Kafka: '$1' answered '$reply'"
            return 0
        fi
        sleep 0.05
    done
    fail "mock Kafka did not answer '$1' within 5 s"
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

kafka_start_offsets() {  # TOPIC PARTITIONS: "PARTITION:START" lines
    local p args=()
    for ((p = 0; p < $2; p++)); do args+=(-t "$1:$p:-2"); done
    kcat -b "$KAFKA_BROKERS" -Q "${args[@]}" 2>"$CJ_TMP/kcat.err" |
        sed -nE 's/.*\[([0-9]+)\] offset (-?[0-9]+).*/\1:\2/p' | sort -n
}

# ---------------------------------------------------------------- camjoin
# The mock's group coordinator (librdkafka 2.0.2) keeps a member that closed
# its consumer until the member's session times out (kcat -G behaves the
# same), so a restart in the same group would wait for the default 45 s.
# A 6 s session keeps the tests' restarts quick.
camjoin_args() {  # TOPIC GROUP: sets CJ_ARGS, the flags every test run passes
    CJ_ARGS=(--brokers "$KAFKA_BROKERS" --topic "$1" --group "$2"
             --pg "$CAMJOIN_PG_URI" --reference "$CAMERAS_CSV"
             -X session.timeout.ms=6000 -X heartbeat.interval.ms=500)
}

camjoin_start() {  # NAME ARGS...: background run, stderr to $CJ_TMP/NAME.log
    local name=$1
    shift
    need_bin camjoin
    # CAMJOIN_WRAPPER (e.g. "valgrind --error-exitcode=97 ...") runs the daemon
    # under a tool; valgrind keeps the PID, so signals still reach camjoin
    # shellcheck disable=SC2086
    ${CAMJOIN_WRAPPER:-} "$CAMJOIN_BIN/camjoin" "$@" >"$CJ_TMP/$name.out" 2>"$CJ_TMP/$name.log" </dev/null &
    CAMJOIN_PID=$!
    CAMJOIN_PIDS+=("$CAMJOIN_PID")
}

camjoin_wait() {  # PID [TIMEOUT]: exit code into CAMJOIN_RC; kills and fails on timeout
    local pid=$1 timeout=${2:-120} i
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        fail "camjoin (pid $pid) still running after ${timeout} s; killed"
    fi
    CAMJOIN_RC=0
    wait "$pid" || CAMJOIN_RC=$?
    for i in "${!CAMJOIN_PIDS[@]}"; do
        [[ "${CAMJOIN_PIDS[$i]}" != "$pid" ]] || unset "CAMJOIN_PIDS[$i]"
    done
}

camjoin_stop() {  # PID [TIMEOUT]: SIGTERM (graceful stop), exit code into CAMJOIN_RC
    kill -TERM "$1" 2>/dev/null || true
    camjoin_wait "$1" "${2:-60}"
}

# ------------------------------------------------------------- generator
gen_start() {  # NAME ARGS...: camjoin-gen in the background
    local name=$1
    shift
    need_bin camjoin-gen
    "$CAMJOIN_BIN/camjoin-gen" --brokers "$KAFKA_BROKERS" --cameras "$CAMERAS_CSV" "$@" \
        >"$CJ_TMP/$name.stdout" 2>"$CJ_TMP/$name.err" </dev/null &
    GEN_PIDS[$name]=$!
}

gen_wait() {  # NAME: waits for it and keeps the summary in $CJ_TMP/NAME.json
    local name=$1 rc=0
    wait "${GEN_PIDS[$name]}" || rc=$?
    unset "GEN_PIDS[$name]"
    [[ $rc -eq 0 ]] || fail "camjoin-gen ($name) exited $rc: $(tail -n 3 "$CJ_TMP/$name.err")"
    tail -n 1 "$CJ_TMP/$name.stdout" >"$CJ_TMP/$name.json"
    jq -e . "$CJ_TMP/$name.json" >/dev/null 2>&1 ||
        fail "camjoin-gen ($name) summary is not JSON: $(cat "$CJ_TMP/$name.json")"
}

gen() { gen_start "$@"; gen_wait "$1"; }

json_get() {  # FILE KEY (a jq path without the dot, e.g. sent or malformed_by_reason)
    jq -er ".$2" "$1" || fail "key '$2' missing in $1"
}

# ------------------------------------------------------------ expectations
_offsets_sum() {  # TOPIC GROUP: committed messages, -1 while the table is absent
    if [[ $(psql_val "SELECT to_regclass('camjoin_offsets') IS NOT NULL") != t ]]; then
        echo -1
        return
    fi
    psql_val "SELECT coalesce(sum(next_offset), 0) FROM camjoin_offsets
              WHERE consumer_group = '$2' AND topic = '$1'"
}

# wait_offsets TOPIC GROUP TOTAL TIMEOUT [PID]: until sum(next_offset) = TOTAL
# (more is a failure); fails on timeout or as soon as PID (camjoin) is gone.
# wait_progress: the same, but returns once the sum is at least TOTAL.
wait_offsets() { _wait_offsets exact "$@"; }
wait_progress() { _wait_offsets at-least "$@"; }

_wait_offsets() {
    local mode=$1 topic=$2 group=$3 total=$4 timeout=$5 pid=${6:-} got=-1 deadline
    deadline=$(($(date +%s) + timeout))
    while (($(date +%s) < deadline)); do
        got=$(_offsets_sum "$topic" "$group")
        if ((got >= total)); then
            if [[ $mode == exact ]] && ((got != total)); then
                fail "committed offsets sum to $got, more than the $total messages produced"
            fi
            return 0
        fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            fail "camjoin exited before committing offsets up to $total (at $got)"
        fi
        sleep 0.2
    done
    # where it stopped, to tell a consumer that fell short from a broker that
    # holds fewer messages than were acknowledged
    local ends stored
    ends=$(kafka_end_offsets "$topic" 2>/dev/null | tr ' \n' ': ')
    stored=$(psql_val "SELECT string_agg(kafka_partition || ':' || next_offset, ' ' ORDER BY kafka_partition)
                       FROM camjoin_offsets WHERE consumer_group = '$group' AND topic = '$topic'" 2>/dev/null)
    fail "committed offsets reached $got of $total within ${timeout} s (stored: $stored; broker's end offsets: $ends)"
}

load_manifest() {  # FILE (CSV seq,kind,event_id,camera_id,reason; header optional)
    local header=""
    [[ $(head -c 4 "$1") == seq, ]] && header="HEADER,"
    psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS manifest;
CREATE TABLE manifest (seq bigint, kind text, event_id text, camera_id text, reason text);
\copy manifest FROM '$1' WITH (FORMAT csv, ${header} FORCE_NOT_NULL (event_id, camera_id, reason))
SQL
}

load_cameras() {  # the reference CSV as camjoin should see it (empty text = '', empty number = NULL)
    psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS ref_cameras;
CREATE TABLE ref_cameras (camera_id text PRIMARY KEY, site_id text, site_name text,
                          zone text, latitude double precision, longitude double precision);
\copy ref_cameras (camera_id, site_id, site_name, zone, latitude, longitude) FROM '$CAMERAS_CSV' WITH (FORMAT csv, HEADER, FORCE_NOT_NULL (site_id, site_name, zone))
SQL
}

load_messages() {  # TOPIC: every message still in the topic, via kcat, into kafka_messages
    kcat -b "$KAFKA_BROKERS" -t "$1" -C -o beginning -e -q -J 2>"$CJ_TMP/kcat.err" |
        jq -r '[.partition, .offset, .key, .payload] | @csv' >"$CJ_TMP/messages.csv"
    psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS kafka_messages;
CREATE TABLE kafka_messages (kafka_partition integer, kafka_offset bigint, key text, payload text,
                             PRIMARY KEY (kafka_partition, kafka_offset));
\copy kafka_messages FROM '$CJ_TMP/messages.csv' WITH (FORMAT csv)
CREATE INDEX ON kafka_messages (key);
ANALYZE kafka_messages;
SQL
}

# Reasons whose dead-letter count on TOPIC differs from the malformed rows
# of the loaded manifest, by reason: must be 0.
assert_reasons() {  # NAME TOPIC
    assert_eq "$1" 0 \
        "$(psql_val "SELECT count(*) FROM
                       (SELECT reason, count(*) n FROM manifest WHERE kind = 'malformed' GROUP BY 1) m
                       FULL JOIN (SELECT reason, count(*) n FROM camjoin_dead_letters
                                  WHERE topic = '$2' GROUP BY 1) d USING (reason)
                     WHERE m.n IS DISTINCT FROM d.n")"
}

# A session that holds an ACCESS EXCLUSIVE lock on camera_events (so that
# camjoin's COPY waits), named APP; pg_lock_hold returns once the lock is
# granted, pg_lock_release ends the session.
pg_lock_hold() {  # APP
    local i
    psql -XAtq -v ON_ERROR_STOP=1 "application_name=$1" \
        -c "BEGIN; LOCK TABLE camera_events IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120)" \
        >/dev/null 2>&1 &
    PG_LOCK_PSQL=$!
    for ((i = 0; i < 100; i++)); do
        [[ $(psql_val "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                       WHERE a.application_name = '$1' AND l.granted
                         AND l.relation = 'camera_events'::regclass") == 1 ]] && return 0
        sleep 0.1
    done
    fail "the lock of session $1 on camera_events was not granted within 10 s"
}
pg_lock_release() {  # APP
    psql_val "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1'" >/dev/null
    wait "$PG_LOCK_PSQL" 2>/dev/null || true
}

# The exact end state after every produced message has been consumed:
# rows = the manifest's valid events (as a set, no duplicates), each row's
# columns = its Kafka message, site columns = the reference table, dead
# letters = the malformed messages (payload and reason per message, once
# each), offsets = the end of every partition.
assert_final_state() {  # SUMMARY_JSON MANIFEST TOPIC GROUP PARTITIONS
    local summary=$1 manifest=$2 topic=$3 group=$4 parts=$5
    local sent valid_new malformed unknown expected_offsets
    sent=$(json_get "$summary" sent)
    valid_new=$(json_get "$summary" valid_new)
    malformed=$(json_get "$summary" malformed)
    unknown=$(json_get "$summary" unknown_camera)
    load_manifest "$manifest"
    load_cameras

    echo "event rows"
    assert_eq "manifest rows = sent" "$sent" "$(psql_val "SELECT count(*) FROM manifest")"
    assert_eq "manifest distinct valid ids = valid_new" "$valid_new" \
        "$(psql_val "SELECT count(DISTINCT event_id) FROM manifest WHERE kind = 'valid'")"
    assert_eq "count(camera_events) = valid_new" "$valid_new" \
        "$(psql_val "SELECT count(*) FROM camera_events")"
    assert_eq "duplicate event_ids in camera_events" 0 \
        "$(psql_val "SELECT count(*) - count(DISTINCT event_id) FROM camera_events")"
    assert_eq "ids in table, not valid in manifest" 0 \
        "$(psql_val "SELECT count(*) FROM (SELECT event_id FROM camera_events
                     EXCEPT SELECT event_id FROM manifest WHERE kind = 'valid') x")"
    assert_eq "valid ids in manifest, not in table" 0 \
        "$(psql_val "SELECT count(*) FROM (SELECT event_id FROM manifest WHERE kind = 'valid'
                     EXCEPT SELECT event_id FROM camera_events) x")"
    assert_eq "rows whose camera_id differs from the manifest" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events e JOIN manifest m
                     ON m.event_id = e.event_id AND m.kind = 'valid'
                     WHERE m.camera_id IS DISTINCT FROM e.camera_id")"

    echo "row contents (each row against the Kafka message at its partition/offset)"
    load_messages "$topic"
    assert_eq "rows without a Kafka message at their offset" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events e LEFT JOIN kafka_messages k
                     USING (kafka_partition, kafka_offset) WHERE k.payload IS NULL")"
    assert_eq "rows whose columns differ from their message" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events e
                     JOIN kafka_messages k USING (kafka_partition, kafka_offset)
                     CROSS JOIN LATERAL (SELECT k.payload::jsonb AS j) m
                     WHERE k.key IS DISTINCT FROM e.event_id
                        OR e.event_id IS DISTINCT FROM m.j->>'event_id'
                        OR e.camera_id IS DISTINCT FROM m.j->>'camera_id'
                        OR e.event_type IS DISTINCT FROM m.j->>'event_type'
                        OR e.event_ts IS DISTINCT FROM CASE jsonb_typeof(m.j->'event_ts')
                             WHEN 'number' THEN timestamptz 'epoch'
                                                + (m.j->>'event_ts')::bigint * interval '1 ms'
                             ELSE (m.j->>'event_ts')::timestamptz END
                        OR e.confidence IS DISTINCT FROM (m.j->>'confidence')::real
                        OR e.object_count IS DISTINCT FROM (m.j->>'object_count')::integer
                        OR e.attributes IS DISTINCT FROM nullif(m.j - 'event_id' - 'camera_id'
                             - 'event_ts' - 'event_type' - 'confidence' - 'object_count', '{}')")"
    assert_eq "dead letters whose payload differs from their message" 0 \
        "$(psql_val "SELECT count(*) FROM camjoin_dead_letters d
                     LEFT JOIN kafka_messages k USING (kafka_partition, kafka_offset)
                     WHERE d.topic = '$topic' AND (k.kafka_offset IS NULL
                        OR coalesce(d.payload, '') <> coalesce(convert_to(k.payload, 'UTF8'), ''))")"
    assert_eq "dead letters whose reason differs from the manifest's" 0 \
        "$(psql_val "SELECT count(*) FROM camjoin_dead_letters d
                     LEFT JOIN kafka_messages k USING (kafka_partition, kafka_offset)
                     LEFT JOIN manifest m ON m.kind = 'malformed' AND m.event_id = k.key
                     WHERE d.topic = '$topic' AND m.reason IS DISTINCT FROM d.reason")"

    echo "join"
    assert_eq "matched rows = valid manifest ids with a known camera" \
        "$(psql_val "SELECT count(DISTINCT event_id) FROM manifest m
                     WHERE kind = 'valid' AND camera_id IN (SELECT camera_id FROM ref_cameras)")" \
        "$(psql_val "SELECT count(*) FROM camera_events e JOIN ref_cameras r USING (camera_id)")"
    assert_eq "matched rows with site columns != reference" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events e JOIN ref_cameras r USING (camera_id)
                     WHERE e.site_id IS DISTINCT FROM r.site_id
                        OR e.site_name IS DISTINCT FROM r.site_name
                        OR e.zone IS DISTINCT FROM r.zone
                        OR e.latitude IS DISTINCT FROM r.latitude
                        OR e.longitude IS DISTINCT FROM r.longitude")"
    assert_eq "unknown-camera rows = unknown_camera" "$unknown" \
        "$(psql_val "SELECT count(*) FROM camera_events
                     WHERE camera_id NOT IN (SELECT camera_id FROM ref_cameras)")"
    assert_eq "unknown-camera rows with a non-NULL site column" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events
                     WHERE camera_id NOT IN (SELECT camera_id FROM ref_cameras)
                       AND (site_id IS NOT NULL OR site_name IS NOT NULL OR zone IS NOT NULL
                            OR latitude IS NOT NULL OR longitude IS NOT NULL)")"

    echo "dead letters"
    assert_eq "manifest malformed rows = malformed" "$malformed" \
        "$(psql_val "SELECT count(*) FROM manifest WHERE kind = 'malformed'")"
    assert_eq "count(camjoin_dead_letters) = malformed" "$malformed" \
        "$(psql_val "SELECT count(*) FROM camjoin_dead_letters WHERE topic = '$topic'")"
    assert_eq "dead letters stored more than once" 0 \
        "$(psql_val "SELECT count(*) - count(DISTINCT (kafka_partition, kafka_offset))
                     FROM camjoin_dead_letters WHERE topic = '$topic'")"
    assert_reasons "reasons whose count differs from the manifest" "$topic"
    assert_eq "summary malformed_by_reason = manifest reasons" \
        "$(psql_val "SELECT string_agg(reason || '=' || n, ',' ORDER BY reason) FROM
                     (SELECT reason, count(*) n FROM manifest WHERE kind = 'malformed' GROUP BY 1) m")" \
        "$(jq -r '.malformed_by_reason | to_entries | map(select(.value > 0)) | sort_by(.key)
                  | map("\(.key)=\(.value)") | join(",")' "$summary")"
    psql_val "SELECT '    ' || reason || ': ' || count(*) FROM camjoin_dead_letters
              WHERE topic = '$topic' GROUP BY reason ORDER BY reason"

    echo "offsets"
    expected_offsets=$(kafka_end_offsets "$topic")
    # Information only: a start above 0 means retention (the mock's ~5 MiB a
    # partition) dropped old messages, after or (if rows are missing) before
    # camjoin read them.
    echo "    log start offsets: $(kafka_start_offsets "$topic" "$parts" | tr '\n' ' ')"
    assert_eq "partitions with messages" "$parts" "$(awk '$2 > 0' <<<"$expected_offsets" | wc -l)"
    assert_eq "sum of partition end offsets = sent" "$sent" \
        "$(awk '{ s += $2 } END { print s }' <<<"$expected_offsets")"
    assert_eq "camjoin_offsets per partition = partition end offsets" \
        "$(tr ' \n' ': ' <<<"$expected_offsets")" \
        "$(psql_val "SELECT kafka_partition || ':' || next_offset FROM camjoin_offsets
                     WHERE consumer_group = '$group' AND topic = '$topic'
                     ORDER BY kafka_partition" | tr '\n' ' ')"
}

# ===================================================================
# faults A: helpers for tests/faults/f_kill9.sh, f_sigterm.sh and
# f_pg_outage.sh (added as one block; nothing above is changed).
#
#   wait_new_commit TOPIC GROUP BEFORE T0 TIMEOUT [PID]
#       polls sum(next_offset) every 50 ms until it exceeds BEFORE; sets
#       RECOVERY_S = seconds from T0 (a now_s value) to the poll that saw it,
#       and COMMITTED_SUM. Fails on timeout or when PID is gone.
#   stats_pct P VALUES...  nearest-rank percentile (P in 0-100) of the values
#   stats_max VALUES...    largest value
#   vmrss_kib PID          VmRSS of PID from /proc, in KiB
#   fault_figures TOPIC    after load_manifest and load_messages: sets F_LOST (valid manifest ids
#       not in camera_events), F_DUP_ROWS (count(*) - count(DISTINCT
#       (event_id, event_ts))), F_ROWS (count(*)), F_DEAD (dead letters of
#       TOPIC), F_DEAD_MISSING (malformed manifest keys with no dead letter
#       at their message's partition/offset carrying the manifest's reason)
#       and F_DEAD_EXTRA (dead letters stored more than once).
#   stopped_field LOG KEY  KEY=value of the daemon's final `msg="stopped"` line
#   fault_start GEN SEED TIMEOUT_MS WARM / fault_finish GEN TOTAL TOPIC GROUP PID
#                          the start and the end of a one-process run (see there)
# ===================================================================
wait_new_commit() {  # TOPIC GROUP BEFORE T0 TIMEOUT [PID]
    local topic=$1 group=$2 before=$3 t0=$4 timeout=$5 pid=${6:-} got deadline
    deadline=$(($(date +%s) + timeout))
    while (($(date +%s) < deadline)); do
        got=$(_offsets_sum "$topic" "$group" 2>/dev/null || echo -1)
        if ((got > before)); then
            COMMITTED_SUM=$got
            RECOVERY_S=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }')
            return 0
        fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            fail "camjoin (pid $pid) exited before committing past $before"
        fi
        sleep 0.05
    done
    fail "no commit past $before within ${timeout} s (sum(next_offset) at $got)"
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
# $CJ_TMP/GEN_NAME.manifest.csv) with message.timeout.ms TIMEOUT_MS, and
# returns once WARM messages are committed.
fault_start() {  # GEN_NAME SEED TIMEOUT_MS WARM (RATE, DURATION, TOPIC, GROUP: the script's)
    camjoin_start cj "${CJ_ARGS[@]}"
    CJ=$CAMJOIN_PID
    wait_progress "$TOPIC" "$GROUP" 0 30 "$CJ"
    gen_start "$1" --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed "$2" \
        --dup-ratio 0.05 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
        -X message.timeout.ms="$3" --manifest "$CJ_TMP/$1.manifest.csv"
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
    wait_offsets "$topic" "$group" "$SENT" 120 "$pid"
    kill -0 "$pid" 2>/dev/null || fail "camjoin (pid $pid) is gone: it must recover by itself"
    camjoin_stop "$pid"
    assert_eq "camjoin exit code after SIGTERM (same process all along)" 0 "$CAMJOIN_RC"
    assert_eq "camjoin error-level log lines (other than librdkafka's)" 0 \
        "$(grep 'level=error' "$CJ_TMP/cj.log" | grep -vc 'msg="librdkafka"' || true)"
}

stopped_field() {  # LOG KEY
    local line
    line=$(grep 'msg="\?stopped"\? ' "$1" | tail -n 1)
    [[ -n "$line" ]] || fail "no msg=\"stopped\" line in $1"
    sed -nE "s/.* $2=([0-9]+).*/\1/p" <<<"$line"
}
# ======================================================== end faults A

# ===================================================================
# faults B: helpers for tests/faults/f_commit_kill.sh, f_broker.sh and
# f_rebalance.sh (added as one block; nothing above is changed).
#
#   wait_log_count LOG PATTERN N TIMEOUT [PID]
#       until LOG has at least N lines containing the fixed string PATTERN;
#       fails on timeout or as soon as PID (camjoin) is gone.
#   camjoin_metric PORT NAME...
#       the values of the metrics NAME... (one line each, in that order) from
#       ONE scrape of camjoin's /metrics at 127.0.0.1:PORT (--http); nothing
#       when it does not answer within 2 s.
#   pg_backend_state PID
#       pg_stat_activity state(s) of the backend(s) of client process PID
#       (matched by its TCP ports to $PGPORT, read with ss -p), one line each
#       as "state|query prefix"; nothing when it has no connection.
# ===================================================================
camjoin_metric() {  # PORT NAME...
    local port=$1 body
    shift
    body=$(curl -s -m 2 "http://127.0.0.1:$port/metrics" 2>/dev/null) || return 0
    [[ -n "$body" ]] || return 0
    awk -v names="$*" 'BEGIN { n = split(names, want, " ") }
                       { v[$1] = $2 }
                       END { for (i = 1; i <= n; i++) print v[want[i]] }' <<<"$body"
}

pg_backend_state() {  # PID
    local ports
    ports=$(ss -Htnp state established "( dport = :$PGPORT )" 2>/dev/null |
        awk -v pid="pid=$1," 'index($0, pid) { n = split($3, a, ":"); print a[n] }' | paste -sd, -)
    [[ -n "$ports" ]] || return 0
    psql_val "SELECT state || '|' || left(regexp_replace(query, '\s+', ' ', 'g'), 60)
              FROM pg_stat_activity WHERE client_port IN ($ports)"
}

wait_log_count() {  # LOG PATTERN N TIMEOUT [PID]
    local file=$1 pat=$2 n=$3 timeout=$4 pid=${5:-} got=0 deadline
    deadline=$(($(date +%s) + timeout))
    while (($(date +%s) < deadline)); do
        got=$(grep -cF -- "$pat" "$file" 2>/dev/null || true)
        ((got >= n)) && return 0
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            fail "camjoin (pid $pid) exited while waiting for $n lines '$pat' in $file (at $got)"
        fi
        sleep 0.1
    done
    fail "$file: $got lines '$pat' within ${timeout} s, expected $n"
}
# ======================================================== end faults B
