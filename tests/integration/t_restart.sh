#!/usr/bin/env bash
# t_restart — exactly-once across restarts of the same consumer group while
# the producer keeps going: camjoin #1 is stopped with SIGTERM mid-stream,
# camjoin #2 is killed with SIGKILL mid-stream (docs/ARCHITECTURE.md §3: delivery holds
# through kill -9), camjoin #3 finishes. The end state must be exactly the
# generator's manifest: same checks as t_core, dead letters stored once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen

TOPIC=restart-events GROUP=restart-it PARTS=4
# Slow enough that each run (its group join) starts mid-stream.
RATE=${T_RESTART_RATE:-2000} DURATION=${T_RESTART_DURATION:-15}   # 30k messages
total=$((RATE * DURATION))

pg_start
kafka_start "$TOPIC" "$PARTS"
camjoin_args "$TOPIC" "$GROUP"   # session.timeout.ms=6000: see lib.sh

# still_producing WHAT: the interruption must really happen mid-stream.
still_producing() {
    kill -0 "${GEN_PIDS[restart]}" 2>/dev/null ||
        fail "the generator had already finished at the $1; the test no longer interrupts mid-stream"
}

camjoin_start run1 "${CJ_ARGS[@]}"
wait_progress "$TOPIC" "$GROUP" 0 30 "$CAMJOIN_PID"
gen_start restart --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed 2002 \
    --dup-ratio 0.10 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    --manifest "$CJ_TMP/restart.manifest.csv"

wait_progress "$TOPIC" "$GROUP" $((total / 6)) 60 "$CAMJOIN_PID"
still_producing "SIGTERM"
camjoin_stop "$CAMJOIN_PID"
assert_eq "run 1: exit code after SIGTERM" 0 "$CAMJOIN_RC"
after1=$(_offsets_sum "$TOPIC" "$GROUP")
echo "  run 1 stopped with SIGTERM at $after1 committed messages"

camjoin_start run2 "${CJ_ARGS[@]}"
wait_progress "$TOPIC" "$GROUP" $((after1 + total / 6)) 60 "$CAMJOIN_PID"
still_producing "SIGKILL"
kill -KILL "$CAMJOIN_PID"
camjoin_wait "$CAMJOIN_PID" 10
assert_eq "run 2: killed by SIGKILL (exit code)" 137 "$CAMJOIN_RC"
echo "  run 2 killed at $(_offsets_sum "$TOPIC" "$GROUP") committed messages"

camjoin_start run3 "${CJ_ARGS[@]}"
gen_wait restart
sent=$(json_get "$CJ_TMP/restart.json" sent)
log "generator: $(cat "$CJ_TMP/restart.json")"
wait_offsets "$TOPIC" "$GROUP" "$sent" 120 "$CAMJOIN_PID"
camjoin_stop "$CAMJOIN_PID"
assert_eq "run 3: exit code after SIGTERM" 0 "$CAMJOIN_RC"

assert_final_state "$CJ_TMP/restart.json" "$CJ_TMP/restart.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "PASS: t_restart ($sent messages, 3 runs: SIGTERM, SIGKILL, to the end)"
