#!/usr/bin/env bash
# f_failover — a 3-node Kafka cluster (replication factor 3,
# min.insync.replicas=2) loses the leader of partition 0 to SIGKILL while
# events flow; one camjoin process all along.
#
# The generator produces with acks=all and idempotence, so every message it
# was told is delivered is on at least two replicas, and retries after the
# failover add no Kafka-level duplicate. The killed node stays down; the
# other two hold every partition (the ISR shrinks to 2, still
# min.insync.replicas). The end state must be exact against the manifest:
# 0 rows lost, 0 duplicates, each malformed message once, offsets at the
# partitions' ends.
#
# Figures: the election (kill -> every partition the victim led has another
# leader, as the metadata of the surviving brokers says) and camjoin's
# recovery: leader elected -> the first commit that advances EVERY one of
# those partitions (the others keep committing all along). That recovery is
# split in two: elected -> the producer's first write to each of them (their
# high watermarks move: nothing newer can be consumed before), then -> the
# commit, camjoin's own part.
#
# Sizes: FAULTS_SCALE=full, or F_FAILOVER_RATE / F_FAILOVER_DURATION.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
need_real_kafka
need_bin camjoin camjoin-gen

TOPIC=failover-events GROUP=failover-faults
fault_param PARTS - 6 12
fault_param RATE F_FAILOVER_RATE 2000 5000
fault_param DURATION F_FAILOVER_DURATION 30 60
total=$((RATE * DURATION))

fault_setup kafka_start_own 3
part_offset() { psql_val "SELECT coalesce(max(next_offset), -1) FROM camjoin_offsets
                          WHERE consumer_group = '$GROUP' AND topic = '$TOPIC' AND kafka_partition = $1"; }
part_high() { kafka_end_offsets "$TOPIC" | awk -v p="$1" '$1 == p { print $2 }'; }

fault_start fo 6116 "120000" "$((RATE * 5))"

victim=$(kafka_leader "$TOPIC" 0)
[[ -n $victim ]] || fail "no leader for partition 0"
led=()
for ((p = 0; p < PARTS; p++)); do
    [[ $(kafka_leader "$TOPIC" "$p") != "$victim" ]] || led+=("$p")
done
kill -0 "${GEN_PIDS[fo]}" 2>/dev/null || fail "the generator finished before the kill"
log "kill -9 node $victim, leader of partitions ${led[*]}"
t_kill=$(now_s)
kafka_node_kill "$victim" KILL
leaders_moved() {  # every partition of led has a leader other than the victim
    local p l moved=0
    for p in "${led[@]}"; do
        l=$(kafka_leader "$TOPIC" "$p")
        [[ -n $l && $l != "$victim" && $l -ge 0 ]] && moved=$((moved + 1))
    done
    ((moved == ${#led[@]}))
}
wait_for 60 -- leaders_moved || fail "partitions ${led[*]} had no new leader within 60 s"
t_elected=$(now_s)
declare -A base=() hbase=() produced=()
for p in "${led[@]}"; do base[$p]=$(part_offset "$p") hbase[$p]=$(part_high "$p"); done
election_s=$(awk -v a="$t_kill" -v b="$t_elected" 'BEGIN { printf "%.2f", b - a }')
log "new leaders after $election_s s"
committed_past() {  # every partition of led committed past base; notes when each got a message
    local p done_n=0
    for p in "${led[@]}"; do
        [[ -n ${produced[$p]:-} ]] || (($(part_high "$p") <= hbase[$p])) || produced[$p]=$(now_s)
        (($(part_offset "$p") > base[$p])) && done_n=$((done_n + 1))
    done
    ((done_n == ${#led[@]}))
}
rc=0
wait_for -i 0.05 -p "$CJ" 90 -- committed_past || rc=$?
((rc != 2)) || fail "camjoin exited after the failover"
((rc == 0)) || fail "partitions ${led[*]}: no commit within 90 s of the election"
t_rec=$(now_s)
rec=$(awk -v a="$t_elected" -v b="$t_rec" 'BEGIN { printf "%.2f", b - a }')
t_prod=$t_elected
for p in "${led[@]}"; do
    t_prod=$(awk -v a="$t_prod" -v b="${produced[$p]:-$t_rec}" 'BEGIN { print (b > a ? b : a) }')
done
prod_s=$(awk -v a="$t_elected" -v b="$t_prod" 'BEGIN { printf "%.2f", b - a }')
own_s=$(awk -v a="$t_prod" -v b="$t_rec" 'BEGIN { printf "%.2f", b - a }')
log "every partition the victim led committed again $rec s after the election" \
    "(the producer wrote to them again after $prod_s s; camjoin committed $own_s s later)"

fault_finish fo "$total" "$TOPIC" "$GROUP" "$CJ"
sent=$SENT

log "checking the end state (two of three nodes up)"
load_manifest "$CJ_TMP/fo.manifest.csv"
load_messages "$TOPIC"
fault_figures "$TOPIC"
echo "FIGURES f_failover: runs=1 nodes=3 rf=3 min_isr=2 events=$sent lost=$F_LOST duplicate_rows=$F_DUP_ROWS" \
     "dead_letters=$F_DEAD/$(json_get "$CJ_TMP/fo.json" malformed)" \
     "dead_letters_missing=$F_DEAD_MISSING dead_letters_extra=$F_DEAD_EXTRA" \
     "victim=$victim partitions_moved=${#led[@]} election_s=$election_s" \
     "recovery_elected_to_commit_s=$rec producer_resumed_s=$prod_s camjoin_after_producer_s=$own_s" \
     "assignments=$(grep -c 'msg="partitions assigned"' "$CJ_TMP/cj.log" || true)" \
     "fenced=$(stopped_field "$CJ_TMP/cj.log" fenced)"
assert_final_state "$CJ_TMP/fo.json" "$CJ_TMP/fo.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "PASS: f_failover ($sent messages, leader node $victim killed, recovered $rec s after the election)"
