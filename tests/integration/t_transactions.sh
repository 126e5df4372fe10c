#!/usr/bin/env bash
# t_transactions — a transactional producer on a real broker: commit and
# abort markers and aborted batches occupy offsets that are never delivered.
#
# camjoin-gen produces 6,000 messages (duplicates, unknown cameras,
# malformed ones) in transactions of 40 messages with --abort-every 3: every
# third transaction is aborted, so a third of the data is never visible to
# a read_committed consumer (camjoin's default). The expectations come from
# the generator's manifest (kind `aborted` for those messages) and from the
# topic read with kcat in both isolation levels:
#   * rows = exactly the committed valid events (none of an aborted
#     transaction), dead letters = the committed malformed messages by
#     reason;
#   * camjoin_offsets.next_offset = the high watermark of every partition,
#     past the last commit marker: offsets follow the consumer's position,
#     not "last message + 1";
#   * camjoin_consumer_lag_messages is 0 for every partition, and
#     camjoin_offsets_skipped_total = sum(high watermarks) - committed
#     messages (the markers plus the aborted data);
#   * first live (camjoin running while the producer writes), then with
#     --until-end in a fresh group on emptied tables: it exits 0 although
#     the last offset of every partition is a control record.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_real_kafka
need_bin camjoin camjoin-gen

TOPIC=txn-events GROUP=txn-it PARTS=3

check_rows() {  # LABEL
    assert_eq "$1: rows = committed valid events" "$valid" "$(psql_val "SELECT count(*) FROM camera_events")"
    assert_eq "$1: rows that are not committed valid events" 0 \
        "$(psql_val "SELECT count(*) FROM (SELECT event_id FROM camera_events
                     EXCEPT SELECT event_id FROM manifest WHERE kind = 'valid') x")"
    assert_eq "$1: committed valid events missing" 0 \
        "$(psql_val "SELECT count(*) FROM (SELECT event_id FROM manifest WHERE kind = 'valid'
                     EXCEPT SELECT event_id FROM camera_events) x")"
    # (an aborted re-send of a committed event carries a committed id)
    assert_eq "$1: rows of events only an aborted transaction carried" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events WHERE event_id IN
                       (SELECT event_id FROM manifest WHERE kind = 'aborted'
                        EXCEPT SELECT event_id FROM manifest WHERE kind <> 'aborted')")"
    assert_eq "$1: dead letters = committed malformed messages" "$malformed" \
        "$(psql_val "SELECT count(*) FROM camjoin_dead_letters WHERE topic = '$TOPIC'")"
    assert_reasons "$1: reasons whose count differs from the manifest" "$TOPIC"
}

check_offsets() {  # LABEL GROUP
    assert_eq "$1: camjoin_offsets = high watermarks (past the markers)" "$ends" \
        "$(psql_val "SELECT kafka_partition || ':' || next_offset FROM camjoin_offsets
                     WHERE consumer_group = '$2' AND topic = '$TOPIC' ORDER BY kafka_partition" | tr '\n' ' ')"
}

pg_start
kafka_start "$TOPIC" "$PARTS"
HTTP=$(free_port)
camjoin_args "$TOPIC" "$GROUP"
camjoin_start live "${CJ_ARGS[@]}" --http "127.0.0.1:$HTTP"
pid=$CAMJOIN_PID
wait_progress "$TOPIC" "$GROUP" 0 30 "$pid"

gen tx --topic "$TOPIC" --count 6000 --seed 808 --transactional-id camjoin-t-txn \
    --txn-messages 40 --abort-every 3 --dup-ratio 0.05 --unknown-camera-ratio 0.02 \
    --malformed-ratio 0.02 --manifest "$CJ_TMP/tx.csv"
log "generator: $(cat "$CJ_TMP/tx.json")"
sent=$(json_get "$CJ_TMP/tx.json" sent)
aborted=$(json_get "$CJ_TMP/tx.json" aborted)
valid=$(json_get "$CJ_TMP/tx.json" valid_new)
malformed=$(json_get "$CJ_TMP/tx.json" malformed)
txc=$(json_get "$CJ_TMP/tx.json" transactions_committed)
txa=$(json_get "$CJ_TMP/tx.json" transactions_aborted)
assert_eq "transactions: 150 of 40 messages, every third aborted" "100 committed, 50 aborted" \
    "$txc committed, $txa aborted"
assert_eq "messages: committed + aborted" 6000 $((sent + aborted))

# ---- the topic, independently of camjoin
load_manifest "$CJ_TMP/tx.csv"
assert_eq "manifest: aborted rows" "$aborted" "$(psql_val "SELECT count(*) FROM manifest WHERE kind = 'aborted'")"
aborted_only=$(psql_val "SELECT count(*) FROM (SELECT event_id FROM manifest WHERE kind = 'aborted'
                         EXCEPT SELECT event_id FROM manifest WHERE kind <> 'aborted') x")
((aborted_only > 0)) || fail "no event is carried by aborted transactions only"
committed_keys=$(kcat -b "$KAFKA_BROKERS" -t "$TOPIC" -C -e -q -X isolation.level=read_committed -f '%k\n' |
    sort | md5sum)
assert_eq "read_committed keys = the manifest's committed messages" \
    "$(psql_val "SELECT event_id FROM manifest WHERE kind <> 'aborted'" | sort | md5sum)" "$committed_keys"
assert_eq "read_uncommitted: every produced message" 6000 \
    "$(kcat -b "$KAFKA_BROKERS" -t "$TOPIC" -C -e -q -X isolation.level=read_uncommitted -f '%k\n' | wc -l)"
ends=$(kafka_end_offsets "$TOPIC" | tr ' \n' ': ')
hwm_sum=$(kafka_end_total "$TOPIC")
markers=$((hwm_sum - 6000))
log "high watermarks $ends: $hwm_sum offsets for 6000 data messages, $markers control records"
((markers >= txc + txa)) || fail "only $markers control records for $((txc + txa)) transactions"

echo "live"
wait_offsets "$TOPIC" "$GROUP" "$hwm_sum" 60 "$pid"
metrics=$(curl -s -m 5 "http://127.0.0.1:$HTTP/metrics")
assert_eq "live: consumer lag of every partition" "0 0 0" \
    "$(grep '^camjoin_consumer_lag_messages{' <<<"$metrics" | awk '{ print $2 }' | paste -sd' ')"
assert_eq "live: offsets skipped = high watermarks - committed messages" $((hwm_sum - sent)) \
    "$(awk '$1 == "camjoin_offsets_skipped_total" { print $2 }' <<<"$metrics")"
assert_eq "live: messages consumed = committed messages" "$sent" \
    "$(awk '$1 == "camjoin_messages_consumed_total" { print $2 }' <<<"$metrics")"
camjoin_stop "$pid"
assert_eq "live: exit code after SIGTERM" 0 "$CAMJOIN_RC"
check_rows live
check_offsets live "$GROUP"

echo "--until-end, fresh group, emptied tables"
psql_val "TRUNCATE camera_events, camjoin_dead_letters" >/dev/null
camjoin_args "$TOPIC" txn-until-end
camjoin_start until "${CJ_ARGS[@]}" --until-end
camjoin_wait "$CAMJOIN_PID" 60
assert_eq "--until-end: exit code (the last offsets are control records)" 0 "$CAMJOIN_RC"
check_rows until-end
check_offsets until-end txn-until-end
echo "PASS t_transactions ($sent committed, $aborted aborted, $markers control records)"
