# shellcheck shell=bash disable=SC2034  # (variables set here are read by the sourcing scripts)
# lib.sh — shared harness for the integration tests (tests/integration/t_*.sh),
# the fault scenarios (tests/faults/f_*.sh) and scripts/demo.sh. Source this
# one file from a script running under `set -euo pipefail`; it sources its
# parts below and starts nothing by itself.
#
# Where things live:
#   lib.sh (this file)
#       paths, log / fail / assert_eq / need_bin / now_s, wait_for, py_venv,
#       and the one EXIT trap (cleanup).
#   lib_pg.sh       pg_start / pg_stop / pg_down / pg_up / pg_restart, psql_val,
#                   pg_lock_hold / pg_lock_release, pg_backend_state
#   lib_kafka.sh    kafka_start / kafka_start_own / kafka_start_mock / kafka_ctl /
#                   kafka_stop / need_real_kafka / kafka_warm_traffic,
#                   kafka_end_offsets / kafka_end_total / kafka_start_offsets /
#                   kafka_partition_count
#                   (on top of tests/kafka/kafka.sh)
#   lib_gen.sh      gen / gen_start / gen_wait, json_get
#   lib_camjoin.sh  camjoin_args / camjoin_start / camjoin_stop / camjoin_wait / forget_pid,
#                   camjoin_metric, stopped_field, and the waits on what camjoin
#                   commits or logs: wait_offsets / wait_progress,
#                   wait_new_commit, wait_log_count; notify_recv_start / _stop
#   lib_assert.sh   load_manifest / load_cameras / load_messages (the expectations
#                   in SQL, computed independently from camjoin), assert_reasons,
#                   assert_rows_match_messages,
#                   assert_final_state, rollup_diff
#   lib_faults.sh   what the fault scenarios share: fault_param / fault_seed (their
#                   sizes), fault_start / fault_finish, fault_figures, stats_pct /
#                   stats_max, vmrss_kib
# Each function's arguments and contract are written where it is defined.
#
# wait_for [-i INTERVAL_S] [-p PID] TIMEOUT_S -- PREDICATE [ARGS...]
#     runs PREDICATE ARGS... in this shell (it may set variables for the
#     caller's message, or fail) every INTERVAL_S seconds (0.1 by default)
#     until it succeeds: returns 0 then, 1 once TIMEOUT_S (whole) seconds
#     have passed, 2 as soon as PID (if not empty) is gone (checked after
#     each miss).
#     Under `set -e` a predicate runs as a condition (errexit off inside):
#     it must return its status itself.
#
# py_venv DIR REQUIREMENTS
#     a Python venv in DIR (outside the repo; CJ_CACHE, that is
#     ${XDG_CACHE_HOME:-$HOME/.cache}/camjoin, holds the shared ones) with
#     REQUIREMENTS (pinned, from PyPI) installed, made again when the file
#     changes; sets PY_VENV to DIR.
#
# The EXIT trap (cleanup) stops everything that was started, in reverse
# order; on failure it prints the tail of every log, then the failure again.
# Set CAMJOIN_KEEP_TMP=1 to keep the scratch directory.

CAMJOIN_SRC=${CAMJOIN_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
CAMJOIN_BIN=${CAMJOIN_BIN:-$CAMJOIN_SRC/build}
export CAMJOIN_SRC CAMJOIN_BIN
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
CAMERAS_CSV=${CAMERAS_CSV:-$CAMJOIN_SRC/config/cameras.csv}

source "$CAMJOIN_SRC/tests/kafka/kafka.sh"

CJ_TMP=$(mktemp -d /tmp/camjoin-it.XXXXXX)

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

wait_for() {  # [-i INTERVAL_S] [-p PID] TIMEOUT_S -- PREDICATE [ARGS...] (see the top)
    local interval=0.1 pid="" deadline
    while [[ $1 == -[ip] ]]; do
        case $1 in
            -i) interval=$2 ;;
            -p) pid=$2 ;;
        esac
        shift 2
    done
    deadline=$((${EPOCHREALTIME//[.,]/} + $1 * 1000000))
    shift
    [[ $1 != -- ]] || shift
    while :; do
        "$@" && return 0
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 2; fi
        ((${EPOCHREALTIME//[.,]/} < deadline)) || return 1
        sleep "$interval"
    done
}

# predicates for wait_for
pid_gone() { ! kill -0 "$1" 2>/dev/null; }               # PID
lines_over() { (($(wc -l <"$1") > $2)); }                # FILE N: more than N lines

CJ_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/camjoin
py_venv() {
    local stamp
    PY_VENV=$1
    stamp=$PY_VENV/.requirements.txt
    if [[ -x $PY_VENV/bin/python ]] && cmp -s "$2" "$stamp"; then return 0; fi
    log "making the venv $PY_VENV ($2)"
    rm -rf "$PY_VENV"
    mkdir -p "$(dirname "$PY_VENV")"
    python3 -m venv "$PY_VENV" >"$CJ_TMP/venv.err" 2>&1 ||
        fail "python3 -m venv $PY_VENV failed (apt-get install python3-venv): $(tail -n 3 "$CJ_TMP/venv.err")"
    "$PY_VENV/bin/pip" install -q --disable-pip-version-check -r "$2" >"$CJ_TMP/pip.err" 2>&1 ||
        fail "pip install -r $2 failed: $(tail -n 5 "$CJ_TMP/pip.err")"
    cp "$2" "$stamp"
}

# ---------------------------------------------------------------- cleanup
_stop_pid() {  # PID SIGNAL GRACE_SECONDS: signal, wait up to GRACE, then KILL
    local pid=$1 sig=$2 grace=$3
    kill -0 "$pid" 2>/dev/null || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    wait_for "$grace" -- pid_gone "$pid" || true
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

CJ_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib_pg.sh
source "$CJ_LIB_DIR/lib_pg.sh"
# shellcheck source=lib_kafka.sh
source "$CJ_LIB_DIR/lib_kafka.sh"
# shellcheck source=lib_gen.sh
source "$CJ_LIB_DIR/lib_gen.sh"
# shellcheck source=lib_camjoin.sh
source "$CJ_LIB_DIR/lib_camjoin.sh"
# shellcheck source=lib_assert.sh
source "$CJ_LIB_DIR/lib_assert.sh"
# shellcheck source=lib_faults.sh
source "$CJ_LIB_DIR/lib_faults.sh"
