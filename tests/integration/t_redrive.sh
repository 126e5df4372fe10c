#!/usr/bin/env bash
# t_redrive — camjoin --redrive-dead-letters after a bad deploy whose
# event.max_age was too strict (README "Re-drive dead letters").
#
# 12,000 messages (5 % duplicates, 2 % unknown cameras, 1 % malformed) are
# produced, and read 2 s later with event.max_age=1s: every event is a dead
# letter event_ts_too_old, and no row is written. Expectations come from the
# generator's manifest (S messages, M malformed, V = S - M events, U of them
# of an unknown camera, K distinct ids of a known camera):
#   1. the strict run: 0 rows, S dead letters, V of them event_ts_too_old.
#   2. a re-drive under the same strict rule: everything still dead, nothing
#      marked.
#   3. two re-drives at once, --reason event_ts_too_old, the rule relaxed and
#      join.on_miss=drop: together they turn V - U into rows (K inserted, the
#      rest already present: duplicates), drop U, leave none dead; each dead
#      letter is marked once (camjoin_redriven: V - U 'row', U 'dropped').
#      The table then holds exactly the K known-camera ids, each row equal to
#      the Kafka message at its position, and the rollup equals the rows.
#   4. a re-drive of everything: the M malformed ones, still dead by their
#      reasons; nothing changes.
#   5. --since after the dead letters were stored, and an unknown --reason:
#      nothing selected. --reason without --redrive-dead-letters and a bad
#      --since: exit 2.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen

TOPIC=redrive-events GROUP=redrive-it PARTS=3

pg_start
kafka_start "$TOPIC" "$PARTS"
gen rd --topic "$TOPIC" --count 12000 --seed 5151 \
    --dup-ratio 0.05 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    --manifest "$CJ_TMP/rd.manifest.csv"
log "generator: $(cat "$CJ_TMP/rd.json")"
sleep 2 # every event is now older than the strict max_age
load_manifest "$CJ_TMP/rd.manifest.csv"
load_cameras
S=$(json_get "$CJ_TMP/rd.json" sent)
M=$(json_get "$CJ_TMP/rd.json" malformed)
V=$((S - M))
U=$(psql_val "SELECT count(*) FROM manifest WHERE kind IN ('valid', 'duplicate')
              AND camera_id NOT IN (SELECT camera_id FROM ref_cameras)")
K=$(psql_val "SELECT count(DISTINCT event_id) FROM manifest WHERE kind = 'valid'
              AND camera_id IN (SELECT camera_id FROM ref_cameras)")
log "S=$S M=$M V=$V U=$U K=$K"
((U > 0 && K > 0 && V - U > K)) || fail "the data set lacks unknown cameras or duplicates"
camjoin_args "$TOPIC" "$GROUP"

redrive() {  # NAME ARGS...: a re-drive, exit 0; its output in $CJ_TMP/NAME.out
    local name=$1
    shift
    "$CAMJOIN_BIN/camjoin" "${CJ_ARGS[@]}" --redrive-dead-letters "$@" \
        >"$CJ_TMP/$name.out" 2>"$CJ_TMP/$name.log" || fail "$name: exit $? ($(tail -n 3 "$CJ_TMP/$name.log"))"
}
total() { grep '^total ' "$CJ_TMP/$1.out"; }
snapshot() {
    psql_val "SELECT (SELECT count(*) FROM camera_events) || ' rows '
                  || (SELECT coalesce(md5(string_agg(event_id || kafka_partition || ':' || kafka_offset,
                                                     ',' ORDER BY event_id)), '-') FROM camera_events)
                  || ' marks ' || (SELECT count(*) FROM camjoin_redriven)
                  || ' rollup ' || (SELECT coalesce(sum(events), 0) FROM camera_events_minute)"
}

echo "1. the strict deploy: event.max_age=1s"
camjoin_start strict "${CJ_ARGS[@]}" --until-end --set event.max_age=1s
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "strict: exit code" 0 "$CAMJOIN_RC"
assert_eq "strict: rows" 0 "$(psql_val "SELECT count(*) FROM camera_events")"
assert_eq "strict: dead letters" "$S" "$(psql_val "SELECT count(*) FROM camjoin_dead_letters")"
assert_eq "strict: dead letters event_ts_too_old" "$V" \
    "$(psql_val "SELECT count(*) FROM camjoin_dead_letters WHERE reason = 'event_ts_too_old'")"

echo "2. a re-drive under the same rule"
redrive same --set event.max_age=1s
assert_eq "same rule: total" \
    "total selected=$S rows=0 inserted=0 already_present=0 dropped=0 still_dead=$S" "$(total same)"
assert_eq "same rule: marks" 0 "$(psql_val "SELECT count(*) FROM camjoin_redriven")"

echo "3. the rule relaxed: two re-drives at once, --reason event_ts_too_old, join.on_miss=drop"
for n in a b; do
    "$CAMJOIN_BIN/camjoin" "${CJ_ARGS[@]}" --redrive-dead-letters --reason event_ts_too_old \
        --set join.on_miss=drop >"$CJ_TMP/relaxed-$n.out" 2>"$CJ_TMP/relaxed-$n.log" &
    eval "pid_$n=$!"
done
wait "$pid_a" || fail "re-drive a: exit $?"
wait "$pid_b" || fail "re-drive b: exit $?"
sum=$(cat "$CJ_TMP"/relaxed-[ab].out | awk '/^total / {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } }
    END { printf "selected=%d rows=%d inserted=%d already_present=%d dropped=%d still_dead=%d",
          s["selected"], s["rows"], s["inserted"], s["already_present"], s["dropped"], s["still_dead"] }')
assert_eq "relaxed: the two totals together" \
    "selected=$V rows=$((V - U)) inserted=$K already_present=$((V - U - K)) dropped=$U still_dead=0" "$sum"
log "a: $(total relaxed-a); b: $(total relaxed-b)"
assert_eq "relaxed: marks by outcome" "dropped=$U row=$((V - U))" \
    "$(psql_val "SELECT string_agg(outcome || '=' || n, ' ' ORDER BY outcome)
                 FROM (SELECT outcome, count(*) n FROM camjoin_redriven GROUP BY 1) o")"
assert_eq "relaxed: marked dead letters that are not event_ts_too_old" 0 \
    "$(psql_val "SELECT count(*) FROM camjoin_redriven r LEFT JOIN camjoin_dead_letters d
                 USING (topic, kafka_partition, kafka_offset) WHERE d.reason IS DISTINCT FROM 'event_ts_too_old'")"
assert_eq "relaxed: rows" "$K" "$(psql_val "SELECT count(*) FROM camera_events")"
assert_eq "relaxed: ids not among the known-camera manifest ids, and the reverse" "0 0" \
    "$(psql_val "SELECT (SELECT count(*) FROM (SELECT event_id FROM camera_events EXCEPT
                         SELECT event_id FROM manifest WHERE kind = 'valid'
                         AND camera_id IN (SELECT camera_id FROM ref_cameras)) x) || ' ' ||
                        (SELECT count(*) FROM (SELECT event_id FROM manifest WHERE kind = 'valid'
                         AND camera_id IN (SELECT camera_id FROM ref_cameras) EXCEPT
                         SELECT event_id FROM camera_events) y)")"
assert_eq "relaxed: rows at a position that is not a marked dead letter" 0 \
    "$(psql_val "SELECT count(*) FROM camera_events e WHERE NOT EXISTS (SELECT FROM camjoin_dead_letters d
                 JOIN camjoin_redriven r USING (topic, kafka_partition, kafka_offset)
                 WHERE r.outcome = 'row' AND d.kafka_partition = e.kafka_partition
                   AND d.kafka_offset = e.kafka_offset)")"
assert_rows_match_messages "$TOPIC"
assert_eq "relaxed: rollup groups that differ from the rows" 0 "$(rollup_diff camera_events)"
assert_eq "relaxed: events in the rollup" "$K" "$(psql_val "SELECT sum(events) FROM camera_events_minute")"
assert_eq "relaxed: stored offsets (untouched by re-drives) = partition ends" \
    "$(kafka_ends_csv "$TOPIC")" \
    "$(stored_offsets_csv "$GROUP")"
after=$(snapshot)

echo "4. a re-drive of everything left"
redrive rest
assert_eq "rest: total" \
    "total selected=$M rows=0 inserted=0 already_present=0 dropped=0 still_dead=$M" "$(total rest)"
assert_eq "rest: still dead by reason = the manifest's malformed reasons" \
    "$(psql_val "SELECT string_agg('still_dead reason=' || reason || ' count=' || n, '|' ORDER BY reason)
                 FROM (SELECT reason, count(*) n FROM manifest WHERE kind = 'malformed' GROUP BY 1) m")" \
    "$(grep '^still_dead ' "$CJ_TMP/rest.out" | sort | paste -sd'|')"
assert_eq "rest: rows, marks, rollup unchanged" "$after" "$(snapshot)"

echo "5. filters and usage"
assert_eq "camjoin_dead_letters can be truncated beside camjoin_redriven (no foreign key)" ok \
    "$(psql_val "BEGIN; TRUNCATE camjoin_dead_letters; ROLLBACK" >/dev/null && echo ok)"
redrive later --since "@$(date -u -d '+1 min' +%Y-%m-%dT%H:%M:%SZ)"
assert_eq "--since after every dead letter: total" \
    "total selected=0 rows=0 inserted=0 already_present=0 dropped=0 still_dead=0" "$(total later)"
redrive none --reason no_such_reason
assert_eq "--reason no_such_reason: total" \
    "total selected=0 rows=0 inserted=0 already_present=0 dropped=0 still_dead=0" "$(total none)"
rc=0
"$CAMJOIN_BIN/camjoin" "${CJ_ARGS[@]}" --reason event_ts_too_old >"$CJ_TMP/u1.out" 2>&1 || rc=$?
assert_eq "--reason alone: exit code, message" "2 camjoin: --reason is for --redrive-dead-letters" \
    "$rc $(head -n 1 "$CJ_TMP/u1.out")"
rc=0
"$CAMJOIN_BIN/camjoin" "${CJ_ARGS[@]}" --redrive-dead-letters --since yesterday >"$CJ_TMP/u2.out" 2>&1 || rc=$?
assert_eq "--since yesterday: exit code" 2 "$rc"
assert_eq "rows, marks, rollup unchanged" "$after" "$(snapshot)"
echo "PASS: t_redrive"
