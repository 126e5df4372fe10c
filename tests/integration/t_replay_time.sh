#!/usr/bin/env bash
# t_replay_time — `--replay-from @TIME` against data on a real broker: it
# starts every partition at the first offset whose timestamp is >= TIME.
#
# Two waves of generator traffic (8,000 messages each, 3 partitions, with
# duplicates, unknown cameras and malformed messages) are produced with a
# pause between them, and TIME is taken inside the pause. The expectation is
# computed from the topic itself, not from camjoin or from the broker's
# offsets-for-times answer: kcat lists every message with its timestamp, and
#   * every message at or after TIME is one of wave 2, every one before it
#     of wave 1 (so TIME separates the waves);
#   * the first offset at or after TIME of each partition, read off that
#     list, is where camjoin must position the partition.
# Then, into an empty database each time, camjoin --until-end replays with
# TIME as epoch milliseconds, as RFC 3339 and as a duration before now
# (@-Ns, chosen to fall in the pause): the rows must be exactly wave 2's
# valid events by event_id (none of wave 1), the dead letters exactly wave
# 2's malformed messages with their reasons, and camjoin_offsets the high
# watermark of every partition.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_real_kafka
need_bin camjoin camjoin-gen

TOPIC=replaytime-events PARTS=3
PAUSE=6   # seconds between the waves; TIME is taken in its middle

pg_start
kafka_start "$TOPIC" "$PARTS"
gen w1 --topic "$TOPIC" --count 8000 --seed 601 --id-prefix w1 --dup-ratio 0.05 \
    --unknown-camera-ratio 0.02 --malformed-ratio 0.01 --manifest "$CJ_TMP/w1.csv"
sleep $((PAUSE / 2))
t_ms=$(date +%s%3N)
sleep $((PAUSE / 2))
gen w2 --topic "$TOPIC" --count 8000 --seed 602 --id-prefix w2 --dup-ratio 0.05 \
    --unknown-camera-ratio 0.02 --malformed-ratio 0.01 --manifest "$CJ_TMP/w2.csv"
t_w2_end=$(date +%s%3N)
log "TIME = $t_ms; wave 2 ended $((t_w2_end - t_ms)) ms later"

# ---- the expectation, from the topic's own timestamps
kcat -b "$KAFKA_BROKERS" -t "$TOPIC" -C -o beginning -e -q -f '%p %o %T %k\n' \
    >"$CJ_TMP/ts.txt" 2>"$CJ_TMP/kcat.err"
assert_eq "messages in the topic" 16000 "$(wc -l <"$CJ_TMP/ts.txt")"
# wave 2's keys: w2-602-N (valid, duplicates) and bad-602-N (malformed)
assert_eq "messages at or after TIME that are not wave 2" 0 \
    "$(awk -v t="$t_ms" '$3 >= t && $4 !~ /-602-/' "$CJ_TMP/ts.txt" | wc -l)"
assert_eq "wave 2 messages before TIME" 0 \
    "$(awk -v t="$t_ms" '$3 < t && $4 ~ /-602-/' "$CJ_TMP/ts.txt" | wc -l)"
declare -A first
for ((p = 0; p < PARTS; p++)); do
    first[$p]=$(awk -v t="$t_ms" -v p="$p" '$1 == p && $3 >= t { print $2; exit }' "$CJ_TMP/ts.txt")
    [[ -n ${first[$p]} && ${first[$p]} -gt 0 ]] ||
        fail "partition $p: no wave-1 and wave-2 messages on both sides of TIME (first=${first[$p]:-none})"
done
log "first offset at or after TIME (from the data): ${first[*]}"
ends=$(kafka_end_offsets "$TOPIC" | tr ' \n' ': ')
load_manifest "$CJ_TMP/w2.csv"
valid2=$(json_get "$CJ_TMP/w2.json" valid_new)
malformed2=$(json_get "$CJ_TMP/w2.json" malformed)

check_replay() {  # NAME SPEC
    local name=$1 spec=$2 p
    echo "replay --replay-from $spec"
    psql_val "TRUNCATE camera_events, camjoin_dead_letters, camjoin_offsets" >/dev/null 2>&1 || true
    camjoin_args "$TOPIC" "$name"
    camjoin_start "$name" "${CJ_ARGS[@]}" --until-end --replay-from "$spec"
    camjoin_wait "$CAMJOIN_PID" 120
    assert_eq "$name: exit code" 0 "$CAMJOIN_RC"
    for ((p = 0; p < PARTS; p++)); do
        assert_eq "$name: partition $p starts at its first offset at or after TIME" "${first[$p]}" \
            "$(sed -nE "s/.*msg=\"partition positioned\" partition=$p offset=([0-9]+).*/\1/p" \
                "$CJ_TMP/$name.log" | tail -n 1)"
    done
    assert_eq "$name: rows = wave 2's valid events" "$valid2" "$(psql_val "SELECT count(*) FROM camera_events")"
    assert_eq "$name: wave 2 valid ids missing" 0 \
        "$(psql_val "SELECT count(*) FROM (SELECT event_id FROM manifest WHERE kind = 'valid'
                     EXCEPT SELECT event_id FROM camera_events) x")"
    assert_eq "$name: rows that are not wave 2 valid events (wave 1 included)" 0 \
        "$(psql_val "SELECT count(*) FROM (SELECT event_id FROM camera_events
                     EXCEPT SELECT event_id FROM manifest WHERE kind = 'valid') x")"
    assert_eq "$name: dead letters = wave 2's malformed" "$malformed2" \
        "$(psql_val "SELECT count(*) FROM camjoin_dead_letters WHERE topic = '$TOPIC'")"
    assert_reasons "$name: reasons whose count differs from wave 2's manifest" "$TOPIC"
    assert_eq "$name: camjoin_offsets = high watermarks" "$ends" \
        "$(psql_val "SELECT kafka_partition || ':' || next_offset FROM camjoin_offsets
                     WHERE consumer_group = '$name' ORDER BY kafka_partition" | tr '\n' ' ')"
}

check_replay epoch-ms "@$t_ms"
rfc=$(date -u -d "@$((t_ms / 1000)).$(printf '%03d' $((t_ms % 1000)))" +%Y-%m-%dT%H:%M:%S.%3NZ)
check_replay rfc3339 "@$rfc"
# @-Ns: N seconds before camjoin parses it, N rounded up from now - TIME,
# which lands within a second (plus camjoin's start) after TIME: still in
# the pause, so the positions must still be wave 2's first offsets.
ago=$(( ($(date +%s%3N) - t_ms + 999) / 1000 ))
check_replay relative "@-${ago}s"
echo "PASS t_replay_time"
