#!/usr/bin/env bash
# t_offset_gap — messages deleted by the broker before camjoin read them
# (retention; here Kafka's DeleteRecords, the admin API retention uses) are
# never skipped silently.
#
# 1. Stopped. Wave 1 (3 partitions) is consumed with --until-end; camjoin
#    stops. Wave 2 is produced; then the log start of partition 0 is moved
#    1,000 offsets past the stored offset, and of partition 1 by 500
#    (partition 2 keeps everything). camjoin, restarted live with --http:
#      - does not fail, logs each partition with the exact lost range;
#      - camjoin_offset_gaps_total = 2, camjoin_offsets_lost_total = 1,500;
#      - one `offset_gap` dead letter per gap at kafka_offset = the stored
#        offset, payload {"from_offset":S,"to_offset":L,"offsets":L-S}, and
#        written in the SAME transaction as the offset UPDATE from S to L
#        (a test trigger on camjoin_offsets records every UPDATE with its
#        transaction id; it must equal the dead letter's xmin);
#      - rows = wave 1's valid events plus every event still in the log
#        (kcat), exactly; dead letters = the malformed messages of both
#        waves that were read, plus the two gaps.
# 2. Running. batch.max_buffered=1000 and a lock that holds the COPY: camjoin
#    reads part of wave 3 (30,000 messages on partition 0) and pauses; the log start then moves
#    past what it has read. Once the lock goes, camjoin commits what it read,
#    meets the out-of-range position, and records the gap from exactly the
#    next unread offset to the new log start: nothing in between is in
#    PostgreSQL, everything read before it is.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_real_kafka
need_bin camjoin camjoin-gen

TOPIC=gap-events GROUP=gap-it PARTS=3
stored() { psql_val "SELECT next_offset FROM camjoin_offsets WHERE consumer_group = '$GROUP' AND kafka_partition = $1"; }
metric() { awk -v n="$1" '$1 == n { print $2 }' <<<"$(curl -s -m 5 "http://127.0.0.1:$HTTP/metrics")"; }

pg_start
kafka_start "$TOPIC" "$PARTS"
gen w1 --topic "$TOPIC" --count 6000 --seed 911 --id-prefix w1 --dup-ratio 0.05 \
    --unknown-camera-ratio 0.02 --malformed-ratio 0.02 --manifest "$CJ_TMP/w1.csv"
camjoin_args "$TOPIC" "$GROUP"
camjoin_start r1 "${CJ_ARGS[@]}" --until-end
camjoin_wait "$CAMJOIN_PID" 60
assert_eq "wave 1: exit code" 0 "$CAMJOIN_RC"
psql -XAtq -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE offsets_audit (xid text, kafka_partition int, old_next bigint, new_next bigint);
CREATE FUNCTION audit_offsets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offsets_audit VALUES (pg_current_xact_id()::text, NEW.kafka_partition,
                                      OLD.next_offset, NEW.next_offset);
    RETURN NEW;
END $$;
CREATE TRIGGER audit_offsets AFTER UPDATE ON camjoin_offsets FOR EACH ROW EXECUTE FUNCTION audit_offsets();
SQL

echo "1. gaps while camjoin is stopped"
s0=$(stored 0) s1=$(stored 1) s2=$(stored 2)
gen w2 --topic "$TOPIC" --count 9000 --seed 912 --id-prefix w2 --dup-ratio 0.05 \
    --unknown-camera-ratio 0.02 --malformed-ratio 0.02 --manifest "$CJ_TMP/w2.csv"
l0=$((s0 + 1000)) l1=$((s1 + 500))
kafka_delete_records "$TOPIC" 0 "$l0"
kafka_delete_records "$TOPIC" 1 "$l1"
assert_eq "log start offsets after DeleteRecords" "0:$l0 1:$l1 2:0" \
    "$(kafka_start_offsets "$TOPIC" "$PARTS" | paste -sd' ')"
log "stored offsets $s0 $s1 $s2; partition 0 loses [$s0, $l0), partition 1 [$s1, $l1)"

HTTP=$(free_port)
camjoin_start r2 "${CJ_ARGS[@]}" --http "127.0.0.1:$HTTP" --set batch.max_buffered=1000
pid=$CAMJOIN_PID
ends_sum=$(kafka_end_total "$TOPIC")
wait_offsets "$TOPIC" "$GROUP" "$ends_sum" 60 "$pid"
assert_eq "camjoin_offset_gaps_total" 2 "$(metric camjoin_offset_gaps_total)"
assert_eq "camjoin_offsets_lost_total" 1500 "$(metric camjoin_offsets_lost_total)"
for g in "0 $s0 $l0" "1 $s1 $l1"; do
    read -r p from to <<<"$g"
    assert_eq "partition $p: the lost range in the log" 1 \
        "$(grep -c "msg=\"messages lost: deleted by retention before camjoin read them; recorded as an offset_gap dead letter\" partition=$p from=$from to=$to lost_offsets=$((to - from))" "$CJ_TMP/r2.log")"
    assert_eq "partition $p: offset_gap dead letter (offset, payload)" \
        "$from|{\"from_offset\":$from,\"to_offset\":$to,\"offsets\":$((to - from))}" \
        "$(psql_val "SELECT kafka_offset || '|' || convert_from(payload, 'UTF8') FROM camjoin_dead_letters
                     WHERE reason = 'offset_gap' AND kafka_partition = $p")"
    assert_eq "partition $p: the gap and the offset move from $from to $to in one transaction" 1 \
        "$(psql_val "SELECT count(*) FROM camjoin_dead_letters d JOIN offsets_audit a
                     ON a.xid = d.xmin::text AND a.kafka_partition = $p
                     WHERE d.reason = 'offset_gap' AND d.kafka_partition = $p
                       AND a.old_next = $from AND a.new_next = $to")"
done
assert_eq "offset_gap dead letters" 2 "$(psql_val "SELECT count(*) FROM camjoin_dead_letters WHERE reason = 'offset_gap'")"

# expected rows: wave 1 (committed before the deletion) plus every event
# still in the log; expected dead letters likewise, plus the gaps
load_messages "$TOPIC"
psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE TABLE w1 (seq bigint, kind text, event_id text, camera_id text, reason text);
\\copy w1 FROM '$CJ_TMP/w1.csv' WITH (FORMAT csv, HEADER, FORCE_NOT_NULL (event_id, camera_id, reason))
CREATE TABLE w2 (seq bigint, kind text, event_id text, camera_id text, reason text);
\\copy w2 FROM '$CJ_TMP/w2.csv' WITH (FORMAT csv, HEADER, FORCE_NOT_NULL (event_id, camera_id, reason))
CREATE TABLE expect_ids AS
    SELECT event_id FROM w1 WHERE kind = 'valid'
    UNION SELECT k.key FROM kafka_messages k JOIN w2 ON w2.event_id = k.key AND w2.kind IN ('valid', 'duplicate');
CREATE TABLE expect_dead AS
    SELECT reason FROM w1 WHERE kind = 'malformed'
    UNION ALL SELECT w2.reason FROM kafka_messages k JOIN w2 ON w2.event_id = k.key AND w2.kind = 'malformed';
SQL
assert_eq "rows = wave 1 + the events still in the log" "$(psql_val "SELECT count(*) FROM expect_ids")" \
    "$(psql_val "SELECT count(*) FROM camera_events")"
assert_eq "rows not expected, or expected and missing" 0 \
    "$(psql_val "SELECT count(*) FROM ((SELECT event_id FROM camera_events EXCEPT SELECT event_id FROM expect_ids)
                 UNION ALL (SELECT event_id FROM expect_ids EXCEPT SELECT event_id FROM camera_events)) x")"
assert_eq "rows of deleted messages only (wave 2, below the log start)" 0 \
    "$(psql_val "SELECT count(*) FROM camera_events WHERE event_id LIKE 'w2-%' AND event_id NOT IN
                 (SELECT key FROM kafka_messages WHERE key IS NOT NULL)")"
assert_eq "malformed dead letters by reason = wave 1 + those still in the log" \
    "$(psql_val "SELECT string_agg(reason || '=' || n, ',' ORDER BY reason) FROM
                 (SELECT reason, count(*) n FROM expect_dead GROUP BY 1) x")" \
    "$(psql_val "SELECT string_agg(reason || '=' || n, ',' ORDER BY reason) FROM
                 (SELECT reason, count(*) n FROM camjoin_dead_letters WHERE reason <> 'offset_gap' GROUP BY 1) x")"
assert_eq "camjoin_offsets = high watermarks" "$(kafka_end_offsets "$TOPIC" | tr ' \n' ': ')" \
    "$(psql_val "SELECT kafka_partition || ':' || next_offset FROM camjoin_offsets
                 WHERE consumer_group = '$GROUP' ORDER BY kafka_partition" | tr '\n' ' ')"

echo "2. a gap while camjoin runs (paused by back-pressure, then out of range)"
pg_lock_hold t_gap_lock
start3=$(kafka_end_offsets "$TOPIC" | awk '$1 == 0 { print $2 }')
seq 1 30000 | awk '{ printf "w3-%d\t{\"event_id\":\"w3-%d\",\"camera_id\":\"cam-x\",\"event_ts\":1796180400000,\"event_type\":\"person\"}\n", $1, $1 }' |
    kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC" -p 0 -K $'\t' 2>"$CJ_TMP/w3.err" || fail "kcat: $(cat "$CJ_TMP/w3.err")"
all_paused() { [[ $(metric camjoin_partitions_paused) == "$PARTS" ]]; }
wait_for 10 -- all_paused || true
assert_eq "partitions paused by back-pressure" "$PARTS" "$(metric camjoin_partitions_paused)"
l3=$((start3 + 20000))   # a drain pass reads at most ~8k before the pause
kafka_delete_records "$TOPIC" 0 "$l3"
pg_lock_release t_gap_lock
ends_sum=$(kafka_end_total "$TOPIC")
wait_offsets "$TOPIC" "$GROUP" "$ends_sum" 60 "$pid"
assert_eq "camjoin_offset_gaps_total, both phases" 3 "$(metric camjoin_offset_gaps_total)"
camjoin_stop "$pid"
assert_eq "exit code after SIGTERM" 0 "$CAMJOIN_RC"
assert_eq "offset gaps on the stopped line" 3 "$(stopped_field "$CJ_TMP/r2.log" offset_gaps)"
f3=$(psql_val "SELECT kafka_offset FROM camjoin_dead_letters WHERE reason = 'offset_gap'
               AND kafka_partition = 0 AND kafka_offset >= $start3")
[[ -n $f3 ]] || fail "no offset_gap dead letter for the running gap"
log "running gap: partition 0 read up to $f3 of wave 3 [$start3, $((start3 + 30000))), log start moved to $l3"
((f3 > start3 && f3 < l3)) || fail "the running gap starts at $f3, outside ($start3, $l3)"
assert_eq "running gap: payload" "{\"from_offset\":$f3,\"to_offset\":$l3,\"offsets\":$((l3 - f3))}" \
    "$(psql_val "SELECT convert_from(payload, 'UTF8') FROM camjoin_dead_letters
                 WHERE reason = 'offset_gap' AND kafka_partition = 0 AND kafka_offset = $f3")"
assert_eq "running gap: in the transaction that moves the offset from $f3 to $l3" 1 \
    "$(psql_val "SELECT count(*) FROM camjoin_dead_letters d JOIN offsets_audit a ON a.xid = d.xmin::text
                 WHERE d.reason = 'offset_gap' AND d.kafka_offset = $f3 AND a.kafka_partition = 0
                   AND a.old_next = $f3 AND a.new_next = $l3")"
assert_eq "wave 3 read before the gap: every offset in [$start3, $f3) has its row" $((f3 - start3)) \
    "$(psql_val "SELECT count(*) FROM camera_events WHERE kafka_partition = 0
                 AND kafka_offset >= $start3 AND kafka_offset < $f3")"
assert_eq "wave 3 in the gap: no row" 0 \
    "$(psql_val "SELECT count(*) FROM camera_events WHERE kafka_partition = 0
                 AND kafka_offset >= $f3 AND kafka_offset < $l3")"
assert_eq "wave 3 after the gap: every message has its row" $((start3 + 30000 - l3)) \
    "$(psql_val "SELECT count(*) FROM camera_events WHERE kafka_partition = 0 AND kafka_offset >= $l3")"
echo "PASS t_offset_gap"
