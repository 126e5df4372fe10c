#!/usr/bin/env bash
# f_broker — the only Kafka broker killed with SIGKILL while events flow,
# then restarted on the same log directory (real log recovery), one camjoin
# process all along (same PID, never restarted).
#
# The broker is this test's own single KRaft node (it is also the group
# coordinator, so the group is gone with it). The generator produces with
# acks=all and idempotence, and a message.timeout.ms longer than the outage,
# so every message is eventually delivered: its exit status 0 proves that
# the manifest is exactly what Kafka holds. During the outage nothing may be
# committed (after its first second); afterwards the end state must be
# exact, as in t_core: 0 rows lost, 0 duplicates, each malformed message
# once as a dead letter, offsets at the partitions' ends. The outage is
# counted once in camjoin_kafka_errors_total{code="_ALL_BROKERS_DOWN"}.
#
# Figures: the broker's restart time (start -> ready, its log recovery
# included) and camjoin's recovery: broker ready -> first commit.
#
# Sizes: FAULTS_SCALE=full (OUTAGE 20 s), or F_BROKER_OUTAGE / F_BROKER_RATE.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
need_real_kafka
need_bin camjoin camjoin-gen

TOPIC=broker-events GROUP=broker-faults
fault_param PARTS - 4 8
fault_param OUTAGE F_BROKER_OUTAGE 8 20
fault_param RATE F_BROKER_RATE 2000 5000
# ~5 s before the kill, the outage, the restart and recovery (~10 s), a margin
fault_param DURATION F_BROKER_DURATION $((OUTAGE + 25))
total=$((RATE * DURATION))

fault_setup kafka_start_own 1
offsets_now() { _offsets_sum "$TOPIC" "$GROUP"; }
# librdkafka reports "all broker connections are down" once per fall to none
# up: camjoin_kafka_errors_total counts it, once per outage we make
PORT=$(free_port)
CJ_ARGS+=(--http "$PORT")
all_down() { camjoin_metric "$PORT" 'camjoin_kafka_errors_total{code="_ALL_BROKERS_DOWN"}'; }

fault_start broker 5005 "$(((OUTAGE + 120) * 1000))" "$((RATE * 4))"

kill -0 "${GEN_PIDS[broker]}" 2>/dev/null || fail "the generator finished before the kill"
assert_eq "camjoin_kafka_errors_total{code=\"_ALL_BROKERS_DOWN\"} before the kill (absent)" "" "$(all_down)"
log "kill -9 the broker (pid $(kafka_node_pid 1)) for ${OUTAGE} s"
kafka_node_kill 1 KILL
sleep 1
at_down=$(offsets_now)   # a commit in flight at the kill has landed
sleep $((OUTAGE - 1))
during=$(offsets_now)
kill -0 "$CJ" 2>/dev/null || fail "camjoin exited during the broker outage"
kill -0 "${GEN_PIDS[broker]}" 2>/dev/null || fail "the generator finished during the outage"
assert_eq "no commits while the only broker was down (after its first second)" "$at_down" "$during"
assert_eq "camjoin_kafka_errors_total{code=\"_ALL_BROKERS_DOWN\"} during the outage" 1 "$(all_down)"

t_start=$(now_s)
kafka_node_start 1
kafka_wait_ready 120
t_up=$(now_s)
restart_s=$(awk -v a="$t_start" -v b="$t_up" 'BEGIN { printf "%.2f", b - a }')
log "broker restarted on its log directory, ready after $restart_s s"
wait_new_commit "$TOPIC" "$GROUP" "$during" "$t_up" 90 "$CJ"
rec=$RECOVERY_S
log "first commit $rec s after the broker was ready"
assert_eq "camjoin_kafka_errors_total{code=\"_ALL_BROKERS_DOWN\"} after the restart (one outage)" 1 \
    "$(all_down)"

fault_finish broker "$total" "$TOPIC" "$GROUP" "$CJ"
sent=$SENT

log "checking the end state"
load_manifest "$CJ_TMP/broker.manifest.csv"
load_messages "$TOPIC"
fault_figures "$TOPIC"
echo "FIGURES f_broker: runs=1 events=$sent outage_s=$OUTAGE lost=$F_LOST duplicate_rows=$F_DUP_ROWS" \
     "dead_letters=$F_DEAD/$(json_get "$CJ_TMP/broker.json" malformed)" \
     "dead_letters_missing=$F_DEAD_MISSING dead_letters_extra=$F_DEAD_EXTRA" \
     "broker_restart_s=$restart_s recovery_broker_up_to_commit_s=$rec" \
     "assignments=$(grep -c 'msg="partitions assigned"' "$CJ_TMP/cj.log" || true)" \
     "fenced=$(stopped_field "$CJ_TMP/cj.log" fenced)"
assert_final_state "$CJ_TMP/broker.json" "$CJ_TMP/broker.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "PASS: f_broker ($sent messages, broker killed for ${OUTAGE} s, first commit ${rec} s after it was back)"
