#!/usr/bin/env bash
# t_partitions_added — partitions added to the topic while camjoin runs are
# picked up and consumed from offset 0.
#
# camjoin runs live with its default topic.metadata.refresh.interval.ms
# (10 s; librdkafka's own default is 5 minutes). camjoin-gen produces
# 12,000 messages over 24 s (duplicates, unknown cameras, malformed ones)
# with a 1 s metadata refresh of its own, and after 4 s the topic grows
# from 2 to 4 partitions (kafka-topics --alter), so from then on keys also
# land on partitions 2 and 3 — before camjoin knows they exist. Then:
#   * camjoin logs a new assignment of 4 partitions within 30 s, and
#     positions partitions 2 and 3 at offset 0 (no stored offset: the log
#     start), so the messages produced there before the rebalance are read;
#   * the end state is exact against the manifest (assert_final_state:
#     rows by id and column, join, dead letters, offsets = the high
#     watermarks of all 4 partitions, each of which holds messages).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_real_kafka
need_bin camjoin camjoin-gen

TOPIC=grow-events GROUP=grow-it
pg_start
kafka_start "$TOPIC" 2
camjoin_args "$TOPIC" "$GROUP"
camjoin_start grow "${CJ_ARGS[@]}"
pid=$CAMJOIN_PID
wait_log_count "$CJ_TMP/grow.log" 'msg="partitions assigned" count=2' 1 30 "$pid"

gen_start grow --topic "$TOPIC" --rate 500 --duration 24 --seed 1212 --dup-ratio 0.05 \
    --unknown-camera-ratio 0.02 --malformed-ratio 0.01 --manifest "$CJ_TMP/grow.csv" \
    -X topic.metadata.refresh.interval.ms=1000
sleep 4
kafka_topic_partitions "$TOPIC" 4
t_grown=$(now_s)
log "topic grown to 4 partitions"
# the premise: messages are still being produced once the topic has grown
# (Kafka's admin tool is a JVM; on a loaded machine it can take seconds)
kill -0 "${GEN_PIDS[grow]}" 2>/dev/null ||
    fail "camjoin-gen had finished before the topic grew: partitions 2 and 3 got no messages"
wait_log_count "$CJ_TMP/grow.log" 'msg="partitions assigned" count=4' 1 30 "$pid"
log "camjoin assigned 4 partitions $(awk -v a="$t_grown" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }') s after the change"
gen_wait grow
sent=$(json_get "$CJ_TMP/grow.json" sent)
for p in 2 3; do
    assert_eq "partition $p positioned at offset 0" 1 \
        "$(grep -c "msg=\"partition positioned\" partition=$p offset=0 " "$CJ_TMP/grow.log")"
done
wait_offsets "$TOPIC" "$GROUP" "$sent" 60 "$pid"
camjoin_stop "$pid"
assert_eq "exit code after SIGTERM" 0 "$CAMJOIN_RC"
assert_final_state "$CJ_TMP/grow.json" "$CJ_TMP/grow.csv" "$TOPIC" "$GROUP" 4
echo "PASS t_partitions_added ($sent messages)"
