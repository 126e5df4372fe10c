# shellcheck shell=bash disable=SC2034  # (variables set here are read by the sourcing scripts)
# lib_gen.sh — part of lib.sh (source lib.sh, not this file): the producer.
#
#   gen NAME ARGS... / gen_start NAME ARGS... / gen_wait NAME
#       camjoin-gen with the shipped cameras.csv (gen: start and wait); the
#       JSON summary lands in $CJ_TMP/NAME.json (read it with json_get).
#   json_get FILE KEY
#       one value of a JSON file; fails when KEY is missing.

declare -A GEN_PIDS=()   # NAME -> pid of a running camjoin-gen

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
