#!/usr/bin/env bash
# f_request_errors — Kafka request errors injected while events flow, one
# camjoin process all along (same PID, never restarted). One kind at a time,
# each followed by a wait until camjoin has committed everything that was in
# Kafka when it was injected: Fetch NOT_LEADER_FOR_PARTITION x5,
# OffsetCommit NOT_COORDINATOR x5, Produce NOT_LEADER_FOR_PARTITION x5 (the
# generator's side), Heartbeat REBALANCE_IN_PROGRESS x1 (forces one
# rebalance: revoke, re-read stored offsets, warm-up, assign).
#
# Why the mock: this test needs librdkafka's request-error injection
# (camjoin-mock-kafka's `request-errors` control command,
# rd_kafka_mock_push_request_errors), which a real broker cannot do on
# demand. Broker crashes and leader failover run on real brokers:
# f_broker.sh and f_failover.sh. Under the mock, every partition must stay
# under its retention (~30k events a partition, tools/README.md).
#
# The generator runs through all of it with a long message.timeout.ms, so
# every message is eventually delivered: its exit status 0 proves that the
# manifest is exactly what Kafka holds. The end state must then be exact, as
# in t_core. It sends one Produce request at a time per broker
# (max.in.flight.requests.per.connection=1). The mock checks no producer
# sequence numbers: when an injected error fails one request, it appends the
# next one in flight, which a real broker refuses as out of order, and some
# messages end up acknowledged to the producer but missing from the mock's
# log. Measured at 3,000 messages/s on 4 partitions with NOT_LEADER x5
# injected every second for 10 s: 4 to 16 of 36,000 lost in 5 of 8 runs with
# 5 requests in flight, none in 9 runs with 1.
#
# Sizes: FAULTS_SCALE=full, or F_REQERR_RATE.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
need_bin camjoin camjoin-gen

TOPIC=reqerr-events GROUP=reqerr-faults
fault_param PARTS - 4 8
fault_param RATE F_REQERR_RATE 1500 2500
# four injected-error steps (~3 s each, the rebalance ~7 s) and a margin
fault_param DURATION F_REQERR_DURATION 30
total=$((RATE * DURATION))

fault_setup kafka_start_mock --brokers 1

still_producing() {
    kill -0 "${GEN_PIDS[reqerr]}" 2>/dev/null ||
        fail "the generator had already finished at the $1; make F_REQERR_DURATION longer"
}
offsets_now() { _offsets_sum "$TOPIC" "$GROUP"; }

fault_start reqerr 5005 "120000" "$((RATE * 2))" \
    -X max.in.flight.requests.per.connection=1

# ---- injected request errors, one kind at a time. Recovery of each =
# injection -> everything that was in Kafka just before it is committed
# (the end offsets are read before injecting, so that kcat's own requests do
# not consume the injected errors).
declare -A rec_err=()
inject() {  # LABEL APIKEY ERRCODE COUNT
    local label=$1 ends t0 assigned
    still_producing "$label injection"
    ends=$(kafka_end_total "$TOPIC")
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

fault_finish reqerr "$total" "$TOPIC" "$GROUP" "$CJ"
sent=$SENT

log "checking the end state"
starts=$(kafka_start_offsets "$TOPIC" "$PARTS" | tr '\n' ' ')
tr ' ' '\n' <<<"$starts" | grep . | grep -qv ':0$' &&
    fail "the mock's retention dropped messages (log start offsets: $starts): the topic can no longer be checked; use a smaller size or more partitions"
load_manifest "$CJ_TMP/reqerr.manifest.csv"
load_messages "$TOPIC"
psql_val "ANALYZE manifest" >/dev/null
fault_figures "$TOPIC"
rebalances=$(grep -c 'msg="partitions assigned"' "$CJ_TMP/cj.log" || true)
fenced=$(stopped_field "$CJ_TMP/cj.log" fenced)
echo "FIGURES f_request_errors: runs=1 events=$sent lost=$F_LOST duplicate_rows=$F_DUP_ROWS" \
     "dead_letters=$F_DEAD/$(json_get "$CJ_TMP/reqerr.json" malformed)" \
     "dead_letters_missing=$F_DEAD_MISSING dead_letters_extra=$F_DEAD_EXTRA" \
     "catchup_fetch_not_leader_s=${rec_err[fetch_not_leader]}" \
     "catchup_offsetcommit_not_coordinator_s=${rec_err[offsetcommit_not_coordinator]}" \
     "catchup_heartbeat_rebalance_s=${rec_err[heartbeat_rebalance_in_progress]}" \
     "catchup_produce_not_leader_s=${rec_err[produce_not_leader]}" \
     "assignments=$rebalances fenced=$fenced"

assert_final_state "$CJ_TMP/reqerr.json" "$CJ_TMP/reqerr.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "PASS: f_request_errors ($sent messages, 4 kinds of request errors)"
