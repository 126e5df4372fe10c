# shellcheck shell=bash disable=SC2034,SC2153  # (variables are shared with lib.sh and the scripts)
# lib_camjoin.sh — part of lib.sh (source lib.sh, not this file): the camjoin
# daemon as a background process, and the waits on what it commits or logs.
#
#   camjoin_args TOPIC GROUP
#       sets CJ_ARGS, the flags every test run passes.
#   camjoin_start NAME ARGS... / camjoin_stop PID [SECS] / camjoin_wait PID [SECS]
#       the daemon in the background, stderr to $CJ_TMP/NAME.log; the pid is
#       left in CAMJOIN_PID, the exit code of a stop/wait in CAMJOIN_RC.
#   camjoin_metric PORT NAME...
#       the values of the metrics NAME... (one line each, in that order) from
#       ONE scrape of camjoin's /metrics at 127.0.0.1:PORT (--http); nothing
#       when it does not answer within 2 s.
#   stopped_field LOG KEY
#       KEY=value of the daemon's final `msg="stopped"` line.
#   wait_offsets / wait_progress TOPIC GROUP TOTAL TIMEOUT [PID]
#       until sum(next_offset) in camjoin_offsets is TOTAL / at least TOTAL.
#   wait_new_commit TOPIC GROUP BEFORE T0 TIMEOUT [PID]
#       polls sum(next_offset) every 50 ms until it exceeds BEFORE; sets
#       RECOVERY_S = seconds from T0 (a now_s value) to the poll that saw it,
#       and COMMITTED_SUM. Fails on timeout or when PID is gone.
#   wait_log_count LOG PATTERN N TIMEOUT [PID]
#       until LOG has at least N lines containing the fixed string PATTERN;
#       fails on timeout or as soon as PID (camjoin) is gone.
#   notify_recv_start SOCK OUT [ARGS...] / notify_recv_stop
#       camjoin-notify-recv, systemd's side of NOTIFY_SOCKET (t_systemd,
#       t_startup_wait).

CAMJOIN_PID=""
CAMJOIN_RC=""
CAMJOIN_PIDS=()   # the daemons still to stop

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
    local pid=$1 timeout=${2:-120}
    wait_for "$timeout" -- pid_gone "$pid" || true
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        fail "camjoin (pid $pid) still running after ${timeout} s; killed"
    fi
    CAMJOIN_RC=0
    wait "$pid" || CAMJOIN_RC=$?
    forget_pid "$pid"
}

# The EXIT trap stops every pid in CAMJOIN_PIDS; one that has been waited for
# comes off the list (its number could be reused).
forget_pid() {  # PID
    local i
    for i in "${!CAMJOIN_PIDS[@]}"; do
        [[ "${CAMJOIN_PIDS[$i]}" != "$1" ]] || unset "CAMJOIN_PIDS[$i]"
    done
}

camjoin_stop() {  # PID [TIMEOUT]: SIGTERM (graceful stop), exit code into CAMJOIN_RC
    kill -TERM "$1" 2>/dev/null || true
    camjoin_wait "$1" "${2:-60}"
}

camjoin_metric() {  # PORT NAME...
    local port=$1 body
    shift
    body=$(curl -s -m 2 "http://127.0.0.1:$port/metrics" 2>/dev/null) || return 0
    [[ -n "$body" ]] || return 0
    awk -v names="$*" 'BEGIN { n = split(names, want, " ") }
                       { v[$1] = $2 }
                       END { for (i = 1; i <= n; i++) print v[want[i]] }' <<<"$body"
}

stopped_field() {  # LOG KEY
    local line
    line=$(grep 'msg="\?stopped"\? ' "$1" | tail -n 1)
    [[ -n "$line" ]] || fail "no msg=\"stopped\" line in $1"
    sed -nE "s/.* $2=([0-9]+).*/\1/p" <<<"$line"
}

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

_offsets_reached() {  # MODE TOPIC GROUP TOTAL: sets the caller's got
    got=$(_offsets_sum "$2" "$3") || exit
    ((got >= $4)) || return 1
    if [[ $1 == exact ]] && ((got != $4)); then
        fail "committed offsets sum to $got, more than the $4 messages produced"
    fi
}

_wait_offsets() {
    local mode=$1 topic=$2 group=$3 total=$4 timeout=$5 pid=${6:-} got=-1 rc=0
    wait_for -i 0.2 -p "$pid" "$timeout" -- _offsets_reached "$mode" "$topic" "$group" "$total" ||
        rc=$?
    ((rc != 0)) || return 0
    ((rc != 2)) || fail "camjoin exited before committing offsets up to $total (at $got)"
    # where it stopped, to tell a consumer that fell short from a broker that
    # holds fewer messages than were acknowledged
    local ends stored
    ends=$(kafka_end_offsets "$topic" 2>/dev/null | tr ' \n' ': ')
    stored=$(psql_val "SELECT string_agg(kafka_partition || ':' || next_offset, ' ' ORDER BY kafka_partition)
                       FROM camjoin_offsets WHERE consumer_group = '$group' AND topic = '$topic'" 2>/dev/null)
    fail "committed offsets reached $got of $total within ${timeout} s (stored: $stored; broker's end offsets: $ends)"
}

_commit_past() {  # TOPIC GROUP BEFORE: sets the caller's got
    got=$(_offsets_sum "$1" "$2" 2>/dev/null || echo -1)
    ((got > $3))
}

wait_new_commit() {  # TOPIC GROUP BEFORE T0 TIMEOUT [PID]
    local topic=$1 group=$2 before=$3 t0=$4 timeout=$5 pid=${6:-} got rc=0
    wait_for -i 0.05 -p "$pid" "$timeout" -- _commit_past "$topic" "$group" "$before" || rc=$?
    if ((rc == 0)); then
        COMMITTED_SUM=$got
        RECOVERY_S=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }')
        return 0
    fi
    ((rc != 2)) || fail "camjoin (pid $pid) exited before committing past $before"
    fail "no commit past $before within ${timeout} s (sum(next_offset) at $got)"
}

_log_count_reached() {  # FILE PATTERN N: sets the caller's got
    got=$(grep -cF -- "$2" "$1" 2>/dev/null || true)
    ((got >= $3))
}

wait_log_count() {  # LOG PATTERN N TIMEOUT [PID]
    local file=$1 pat=$2 n=$3 timeout=$4 pid=${5:-} got=0 rc=0
    wait_for -p "$pid" "$timeout" -- _log_count_reached "$file" "$pat" "$n" || rc=$?
    ((rc != 0)) || return 0
    ((rc != 2)) || fail "camjoin (pid $pid) exited while waiting for $n lines '$pat' in $file (at $got)"
    fail "$file: $got lines '$pat' within ${timeout} s, expected $n"
}

# camjoin-notify-recv (tests/tools) on SOCK, its datagrams into OUT, errors
# into $CJ_TMP/notify.err, in the background (RECV_PID; the EXIT trap stops
# it too), bound on return; ARGS: its further flags. notify_recv_stop:
# SIGTERM, exit 0 expected.
notify_recv_start() {  # SOCK OUT [ARGS...]
    local sock=$1 out=$2
    shift 2
    "$CAMJOIN_BIN/camjoin-notify-recv" "$sock" "$@" >"$out" 2>"$CJ_TMP/notify.err" &
    RECV_PID=$!
    CAMJOIN_PIDS+=("$RECV_PID")
    wait_for -i 0.05 5 -- test -S "$sock" || fail "camjoin-notify-recv did not bind $sock"
}

notify_recv_stop() {
    sleep 0.3 # a datagram sent just before camjoin's exit is read at once: a moment
    kill -TERM "$RECV_PID"
    wait "$RECV_PID" || fail "camjoin-notify-recv exited $?: $(cat "$CJ_TMP/notify.err")"
    RECV_PID=""
}

stored_offsets_csv() {  # GROUP: camjoin_offsets of GROUP as "P:NEXT,..." (PGDATABASE's)
    psql_val "SELECT string_agg(kafka_partition || ':' || next_offset, ',' ORDER BY kafka_partition)
              FROM camjoin_offsets WHERE consumer_group = '$1'"
}
