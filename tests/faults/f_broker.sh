#!/usr/bin/env bash
# f_broker — Kafka broker faults while events flow, one camjoin process all
# along (same PID, never restarted):
#   1. the (only) broker is down for OUTAGE seconds: `broker-down 1` ...
#      `broker-up 1` on the mock's control interface. The mock closes every
#      connection and refuses new ones; its group coordinator keeps running,
#      so with session.timeout.ms=6000 the member is also expired during the
#      outage and has to rejoin the group afterwards.
#   2. injected request errors, one kind at a time, each followed by a wait
#      until camjoin has committed everything that was in Kafka when it was
#      injected: Fetch NOT_LEADER_FOR_PARTITION x5, OffsetCommit
#      NOT_COORDINATOR x5, Produce NOT_LEADER_FOR_PARTITION x5 (the
#      generator's side), Heartbeat REBALANCE_IN_PROGRESS x1 (forces one
#      rebalance: revoke, re-read stored offsets, warm-up, assign).
# The generator runs through all of it with message.timeout.ms longer than
# the outage, so that every message is eventually delivered: its exit status
# 0 proves that the manifest is exactly what Kafka holds (and the end-state
# check compares Kafka's end offsets with the count sent). The end state must
# then be exact, as in t_core. Recovery time = broker-up -> next commit.
#
# One mock broker: librdkafka 2.0.2's mock has no leader election on
# broker-down (tools/README.md), so with 3 brokers taking down a leader is
# the same outage for its partitions, while 1 broker also takes the group
# coordinator down (the harder case).
#
# Sizes: FAULTS_SCALE=full (OUTAGE 20 s), or F_BROKER_OUTAGE / F_BROKER_RATE.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
need_bin camjoin camjoin-mock-kafka camjoin-gen

TOPIC=broker-events GROUP=broker-faults PARTS=4
# The end-state check reads the whole topic back: every partition must stay
# under the mock's retention (~30k events a partition, tools/README.md).
if [[ "${FAULTS_SCALE:-}" == full ]]; then
    PARTS=8   # 150k events, 18.75k a partition
    OUTAGE=${F_BROKER_OUTAGE:-20} RATE=${F_BROKER_RATE:-2500}
else
    OUTAGE=${F_BROKER_OUTAGE:-8} RATE=${F_BROKER_RATE:-1500}
fi
# before the outage ~4 s, the outage, its recovery (reconnect backoff and
# rejoin: ~12 s), four injected-error steps (~3 s each, the rebalance ~7 s),
# and a margin
DURATION=${F_BROKER_DURATION:-$((OUTAGE + 40))}
total=$((RATE * DURATION))

pg_start
kafka_start "$TOPIC" "$PARTS" --brokers 1
camjoin_args "$TOPIC" "$GROUP"
# F_BROKER_CAMJOIN_X="prop=value ...": extra librdkafka properties for camjoin
# (experiments, e.g. reconnect.backoff.max.ms=1000)
for x in ${F_BROKER_CAMJOIN_X:-}; do CJ_ARGS+=(-X "$x"); done

still_producing() {
    kill -0 "${GEN_PIDS[broker]}" 2>/dev/null ||
        fail "the generator had already finished at the $1; make F_BROKER_DURATION longer"
}
offsets_now() { _offsets_sum "$TOPIC" "$GROUP"; }

camjoin_start cj "${CJ_ARGS[@]}"
CJ=$CAMJOIN_PID
wait_progress "$TOPIC" "$GROUP" 0 30 "$CJ"
gen_start broker --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed 5005 \
    --dup-ratio 0.05 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    -X message.timeout.ms=$(((OUTAGE + 120) * 1000)) \
    --manifest "$CJ_TMP/broker.manifest.csv"
wait_progress "$TOPIC" "$GROUP" $((RATE * 2)) 60 "$CJ"

# ---- 1. broker down
still_producing "broker-down"
log "broker-down 1 for ${OUTAGE} s"
kafka_ctl "broker-down 1"
sleep 1
at_down=$(offsets_now)   # the last in-flight commit has landed
sleep $((OUTAGE - 1))
during=$(offsets_now)
kill -0 "$CJ" 2>/dev/null || fail "camjoin exited during the broker outage"
still_producing "broker-up"
before=$(offsets_now)
assigned0=$(grep -c 'msg="partitions assigned"' "$CJ_TMP/cj.log" || true)
t_up=$(now_s)
kafka_ctl "broker-up 1"
log "broker-up 1 (committed during the outage after its first second: $((during - at_down)))"
wait_new_commit "$TOPIC" "$GROUP" "$before" "$t_up" 60 "$CJ"
rec_outage=$RECOVERY_S
rebal_outage=$(($(grep -c 'msg="partitions assigned"' "$CJ_TMP/cj.log" || true) - assigned0))
log "first commit ${rec_outage} s after broker-up"
assert_eq "no commits while the only broker was down (after its first second)" "$at_down" "$during"

# ---- 2. injected request errors, one kind at a time. Recovery of each =
# injection -> everything that was in Kafka just before it is committed
# (the end offsets are read before injecting, so that kcat's own requests do
# not consume the injected errors).
declare -A rec_err=()
kafka_sum() { kafka_end_offsets "$TOPIC" | awk '{ s += $2 } END { print s + 0 }'; }
inject() {  # LABEL APIKEY ERRCODE COUNT
    local label=$1 ends t0 assigned
    still_producing "$label injection"
    ends=$(kafka_sum)
    assigned=$(grep -c 'msg="partitions assigned"' "$CJ_TMP/cj.log" || true)
    t0=$(now_s)
    kafka_ctl "request-errors $2 $3 $4"
    if [[ ${5:-} == rebalance ]]; then
        # recovery = injection -> first commit after the new assignment
        wait_log_count "$CJ_TMP/cj.log" 'msg="partitions assigned"' $((assigned + 1)) 60 "$CJ"
        wait_new_commit "$TOPIC" "$GROUP" "$(offsets_now)" "$t0" 60 "$CJ"
        rec_err[$label]=$RECOVERY_S
        log "$label x$4: rebalanced, first commit after ${rec_err[$label]} s"
    else
        wait_progress "$TOPIC" "$GROUP" "$ends" 60 "$CJ"
        rec_err[$label]=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }')
        log "$label x$4: caught up with the $ends messages present at the injection after ${rec_err[$label]} s"
    fi
    sleep 2   # requests consume the rest of the injected errors
    rebal[$label]=$(($(grep -c 'msg="partitions assigned"' "$CJ_TMP/cj.log" || true) - assigned))
}
declare -A rebal=()
inject fetch_not_leader 1 6 5
inject offsetcommit_not_coordinator 8 16 5
inject produce_not_leader 0 6 5
# one REBALANCE_IN_PROGRESS heartbeat answer = one rejoin (revoke + assign)
inject heartbeat_rebalance_in_progress 12 27 1 rebalance
assert_eq "rebalances caused by one REBALANCE_IN_PROGRESS heartbeat" 1 \
    "${rebal[heartbeat_rebalance_in_progress]}"
still_producing "end of the injections"

gen_wait broker
sent=$(json_get "$CJ_TMP/broker.json" sent)
log "generator: $(cat "$CJ_TMP/broker.json")"
assert_eq "messages sent = rate x duration (generator exit 0: every one delivered)" "$total" "$sent"
wait_offsets "$TOPIC" "$GROUP" "$sent" 120 "$CJ"
kill -0 "$CJ" 2>/dev/null || fail "camjoin (pid $CJ) is gone: it must recover by itself"
camjoin_stop "$CJ"
assert_eq "camjoin exit code after SIGTERM (same process all along)" 0 "$CAMJOIN_RC"
# librdkafka's own connection errors are logged at error level (expected
# during the outage); camjoin itself must have logged none
assert_eq "camjoin error-level log lines (other than librdkafka's)" 0 \
    "$(grep 'level=error' "$CJ_TMP/cj.log" | grep -vc 'msg="librdkafka"' || true)"

log "checking the end state"
starts=$(kafka_start_offsets "$TOPIC" "$PARTS" | tr '\n' ' ')
tr ' ' '\n' <<<"$starts" | grep . | grep -qv ':0$' &&
    fail "the mock's retention dropped messages (log start offsets: $starts): the topic can no longer be checked; use a smaller size or more partitions"
load_manifest "$CJ_TMP/broker.manifest.csv"
load_messages "$TOPIC"
psql_val "ANALYZE manifest" >/dev/null
fault_figures "$TOPIC"
rebalances=$(grep -c 'msg="partitions assigned"' "$CJ_TMP/cj.log" || true)
fenced=$(stopped_field "$CJ_TMP/cj.log" fenced)
echo "FIGURES f_broker: runs=1 events=$sent outage_s=$OUTAGE lost=$F_LOST duplicate_rows=$F_DUP_ROWS" \
     "dead_letters=$F_DEAD/$(json_get "$CJ_TMP/broker.json" malformed)" \
     "dead_letters_missing=$F_DEAD_MISSING dead_letters_extra=$F_DEAD_EXTRA" \
     "recovery_broker_up_to_commit_s=$rec_outage" \
     "catchup_fetch_not_leader_s=${rec_err[fetch_not_leader]}" \
     "catchup_offsetcommit_not_coordinator_s=${rec_err[offsetcommit_not_coordinator]}" \
     "catchup_heartbeat_rebalance_s=${rec_err[heartbeat_rebalance_in_progress]}" \
     "catchup_produce_not_leader_s=${rec_err[produce_not_leader]}" \
     "rebalances_after_outage=$rebal_outage" \
     "assignments=$rebalances fenced=$fenced"

assert_final_state "$CJ_TMP/broker.json" "$CJ_TMP/broker.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "PASS: f_broker ($sent messages, ${OUTAGE} s outage, recovered in ${rec_outage} s, 4 kinds of request errors)"
