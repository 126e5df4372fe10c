#!/usr/bin/env bash
# t_hostile_messages — every kind of bad Kafka message value, produced with
# kcat onto a real broker, then consumed by `camjoin --until-end`:
#
#   * each hostile message becomes exactly one dead letter whose reason is the
#     EXACT code of include/camjoin/event.h (the expectation table below is
#     written from the contract, message by message, keyed by partition and
#     offset), and its stored payload is the produced bytes (encode(payload,
#     'hex') against xxd for everything up to 64 KiB, length + md5 above);
#   * a valid event follows every hostile one and must be written (so a bad
#     message never takes its neighbours down), plus boundary cases that must
#     be ACCEPTED (128-byte event_id, 9999-12-31, epoch 0, INT32_MAX, ...);
#   * camjoin exits 0, stored offsets = partition ends, no duplicate rows.
#
# Sizes. The topic's max.message.bytes is raised above the 10 MB message
# (the broker's default is 1 MiB). The layout below also suits the mock
# (CAMJOIN_KAFKA=mock): librdkafka's mock cluster (camjoin-mock-kafka)
# keeps ~5 MiB per partition, and its trimming has a quirk (rdkafka_mock.c,
# rd_kafka_mock_msgset_new): the byte counter already includes the new
# message set when the oldest ones are trimmed, so a set that pushes the
# partition over 5 MiB deletes every older set and then, when the list is
# empty, moves the log start past ITSELF (it is invisible, yet counted).
# Measured: a 10 MB message is kept only when it is the very first message
# of its partition (nothing to trim), and is dropped as soon as anything
# follows it. So the 10 MB message goes alone onto partition 1 (produced
# first, nothing after it), and partition 0 holds the interleaved sequence,
# whose largest messages are 1 MiB (accepted: exactly the limit) and
# 1 MiB + 1 byte (too_large), ~3 MB in all, well under 5 MiB.
# The producer needs -X message.max.bytes above the message size; camjoin's
# consumer is left at librdkafka's defaults on purpose (fetch.message.max.bytes
# is 1 MiB; librdkafka must grow its fetch size for the 10 MB message).
#
# Figures: one summary line (messages, rows, dead letters, lost, duplicate
# rows, wrong reasons, consume time).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin
command -v kcat >/dev/null || fail "kcat not found"

TOPIC=hostile-messages GROUP=hostile-it
MAX_BYTES=1048576            # --set event.max_message_bytes=1MiB
BIG_BYTES=${T_HOSTILE_BIG_BYTES:-10000000}   # the 10 MB message (partition 1)
FIX=$CJ_TMP/fixtures
mkdir -p "$FIX"

# A camera of the shipped reference table, and its site: valid rows must be
# joined (read from the CSV, not from camjoin).
CAM=$(sed -n 2p "$CAMERAS_CSV" | cut -d, -f1)
CAM_SITE=$(sed -n 2p "$CAMERAS_CSV" | cut -d, -f2)
[[ -n "$CAM" && -n "$CAM_SITE" ]] || fail "cannot read a camera from $CAMERAS_CSV"

# ------------------------------------------------------------- fixtures
# The expectation table: one line per message, in production order:
#   partition  offset  kind(dead|row)  expected(reason|event_id)  length(-1 = NULL)
#   md5  hex(<= 64 KiB, else "-")  expected event_ts (rows only, UTC, else "-")
EXPECT=$CJ_TMP/expect.tsv
: >"$EXPECT"
declare -A NEXT_OFF=([0]=0 [1]=0)
MSG_FILES=() MSG_PARTS=() MSG_MODES=()
n_hostile=0 n_valid=0

# record PART KIND EXPECTED MODE(file|empty|null) [TS]: the message is in
# $FIX/cur.bin (for MODE file); appends it to the table and the send list.
record() {
    local part=$1 kind=$2 expected=$3 mode=$4 ts=${5:--} off f len md5 hex
    off=${NEXT_OFF[$part]}
    NEXT_OFF[$part]=$((off + 1))
    f=$FIX/p$part-$off.bin
    case $mode in
        file) mv "$FIX/cur.bin" "$f"; len=$(stat -c %s "$f") ;;
        empty) : >"$f"; len=0 ;;
        null) : >"$f"; len=-1 ;;
    esac
    [[ $mode != file || $len -gt 0 ]] || fail "fixture $expected is empty; use mode empty"
    md5=$(md5sum <"$f" | cut -d' ' -f1)
    if ((len <= 65536)); then hex=$(xxd -p "$f" | tr -d '\n'); else hex=-; fi
    [[ -n "$hex" ]] || hex=-
    [[ $mode == null ]] && md5=- && hex=-
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$off" "$kind" "$expected" "$len" \
        "$md5" "$hex" "$ts" >>"$EXPECT"
    MSG_FILES+=("$f") MSG_PARTS+=("$part") MSG_MODES+=("$mode")
}

# A valid event: event_id, then optional JSON text appended inside the object.
valid_json() { printf '{"event_id":"%s","camera_id":"%s","event_ts":"2024-05-01T10:00:00Z","event_type":"motion"%s}' "$1" "$CAM" "${2:-}"; }

# bad REASON PRINTF-FORMAT [ARGS...]: a hostile message on partition 0 (printf
# builds the bytes: use %s with a single-quoted argument for literal JSON,
# the format itself only for raw bytes such as \xff), followed by a valid one.
bad() {
    local reason=$1
    shift
    # shellcheck disable=SC2059
    printf "$@" >"$FIX/cur.bin"
    record 0 dead "$reason" file
    n_hostile=$((n_hostile + 1))
    next_valid
}
bad_mode() {  # REASON MODE(empty|null)
    record 0 dead "$1" "$2"
    n_hostile=$((n_hostile + 1))
    next_valid
}
next_valid() {
    local id=ok-$n_valid
    valid_json "$id" >"$FIX/cur.bin"
    record 0 row "$id" file "2024-05-01 10:00:00+00"
    n_valid=$((n_valid + 1))
}
# good EVENT_ID EXPECTED_TS PRINTF...: a boundary case that must be accepted.
good() {
    local id=$1 ts=$2
    shift 2
    # shellcheck disable=SC2059
    printf "$@" >"$FIX/cur.bin"
    record 0 row "$id" file "$ts"
}
ev() {  # ev FIELDS...: an object with the four required fields, then FIELDS
    printf '{"event_id":"x","camera_id":"%s","event_ts":"2024-05-01T10:00:00Z","event_type":"motion"%s}' "$CAM" "${1:-}"
}
# ev_with KEY JSONVALUE: the valid object with one required field replaced.
ev_with() {
    local key=$1 val=$2 id='"x"' cam="\"$CAM\"" ts='"2024-05-01T10:00:00Z"' type='"motion"'
    case $key in
        event_id) id=$val ;; camera_id) cam=$val ;; event_ts) ts=$val ;; event_type) type=$val ;;
        *) fail "ev_with: $key" ;;
    esac
    printf '{"event_id":%s,"camera_id":%s,"event_ts":%s,"event_type":%s}' "$id" "$cam" "$ts" "$type"
}
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }
rep() { head -c "$2" /dev/zero | tr '\0' "$1"; }   # rep CHAR COUNT

# Partition 1: the 10 MB message, alone (see the header). Its body is a
# valid event padded with an attribute, so only its size is wrong.
sized_event() {  # ID TOTAL_BYTES: a valid event padded to exactly TOTAL bytes
    local head
    head=$(valid_json "$1" ',"pad":"')
    head=${head%\}}   # {...,"pad":"
    { printf '%s' "$head"; rep p $(($2 - ${#head} - 2)); printf '"}'; }
}
sized_event big-10mb "$BIG_BYTES" >"$FIX/cur.bin"
[[ $(stat -c %s "$FIX/cur.bin") -eq $BIG_BYTES ]] || fail "10 MB fixture has the wrong size"
record 1 dead too_large file

# Partition 0, in order. Each hostile payload breaks exactly one rule.
# --- absent or empty values
next_valid
bad_mode empty empty                      # zero bytes
bad_mode empty null                       # tombstone (NULL value; kcat -Z)
# --- size: exactly the limit is accepted, one byte more is too_large
sized_event at-limit $MAX_BYTES >"$FIX/cur.bin"
record 0 row at-limit file "2024-05-01 10:00:00+00"
bad too_large '%s' "$(sized_event over-limit $((MAX_BYTES + 1)))"
# --- not JSON
bad invalid_json '%s' '{"event_id":"x",'                         # truncated
bad invalid_json '%s' "$(ev)garbage"                           # trailing garbage
bad invalid_json '%s' "$(ev)$(ev)"                             # two objects
bad invalid_json '%s' '   '                                    # whitespace only
bad invalid_json '%s' "{'event_id':'x'}"                       # single quotes
bad invalid_json '\xef\xbb\xbf%s' "$(ev)"                      # UTF-8 BOM before the object
bad invalid_json '%s' "$(ev_with event_id '"\ud800"')"         # escaped lone surrogate: a jansson syntax error
# --- encoding
bad invalid_utf8 '{"event_id":"x\xff","camera_id":"%s","event_ts":"2024-05-01T10:00:00Z","event_type":"motion"}' "$CAM"
bad invalid_utf8 '{"event_id":"x\xc0\xaf","camera_id":"%s","event_ts":"2024-05-01T10:00:00Z","event_type":"motion"}' "$CAM"   # overlong '/'
bad invalid_utf8 '{"event_id":"x\xed\xa0\x80","camera_id":"%s","event_ts":"2024-05-01T10:00:00Z","event_type":"motion"}' "$CAM" # raw surrogate
bad invalid_utf8 '{"\xfe":1,"event_id":"x","camera_id":"%s","event_ts":"2024-05-01T10:00:00Z","event_type":"motion"}' "$CAM"    # in a key
bad invalid_utf8 '%s\xff' "$(ev)"                                                      # outside any string
bad invalid_utf8 '{"event_id":"x","camera_id":"%s","event_ts":"2024-05-01T10:00:00Z","event_type":"mo\xe2\x82"}' "$CAM"         # truncated sequence
# a raw NUL byte is not the escape: inside a string it is an unescaped control
# character, after the object trailing garbage (jansson: syntax errors)
bad invalid_json '{"event_id":"a\x00b","camera_id":"%s","event_ts":"2024-05-01T10:00:00Z","event_type":"motion"}' "$CAM"
bad invalid_json '%s\x00' "$(ev)"
bad nul_character '%s' "$(ev_with event_id '"a\u0000b"')"
bad nul_character '%s' "$(ev ',"note":"x\u0000"')"                                     # in an attribute
bad nul_character '%s' "$(ev ',"k\u0000":1')"                                          # in a key
# --- structure
deep_array() { rep '[' "$1"; rep ']' "$1"; }
bad too_deep '%s' "$(ev ",\"deep\":$(deep_array 100000)")"                             # 100k-deep array attribute
bad too_deep '%s' "$(rep '[' 100000)"                                                  # 100k '[' and nothing else
bad too_deep '%s%s' "$(for ((i = 0; i < 20000; i++)); do printf '{"a":'; done)1" "$(rep '}' 20000)"   # 20k-deep objects
bad duplicate_key '%s' "$(ev ',"event_id":"y"')"                                       # a required key twice
bad duplicate_key '%s' "$(ev ',"x":1,"x":1')"                                          # an attribute twice, same value
bad duplicate_key '%s' "$(ev ',"attrs":{"k":1,"k":2}')"                                # inside a nested object
bad not_object '%s' '[]'
bad not_object '%s' '"str"'
bad not_object '%s' '42'
bad not_object '%s' 'null'
bad not_object '%s' 'true'
bad not_object '%s' "[$(ev)]"
# --- numbers
bad number_out_of_range '%s' "$(ev ',"confidence":1e400')"
bad number_out_of_range '%s' "$(ev ',"confidence":-1e400')"
bad number_out_of_range '%s' "$(ev ',"object_count":123456789012345678901234567890')"  # 30 digits
bad number_out_of_range '%s' "$(ev ',"extra":1e400')"                                  # even in an attribute
bad number_out_of_range '%s' "$(ev_with event_ts 123456789012345678901234567890)"
bad bad_value:confidence '%s' "$(ev ',"confidence":1.5')"
bad bad_value:confidence '%s' "$(ev ',"confidence":-0.1')"
bad bad_value:object_count '%s' "$(ev ',"object_count":-1')"
bad bad_value:object_count '%s' "$(ev ',"object_count":2147483648')"                   # INT32_MAX + 1
# --- wrong types, one per field (the checks run in field order, and every
# other field is valid, so the reason names the broken field)
bad bad_type:event_id '%s' "$(ev_with event_id 42)"
bad bad_type:event_id '%s' "$(ev_with event_id '["x"]')"
bad bad_type:camera_id '%s' "$(ev_with camera_id true)"
bad bad_type:camera_id '%s' "$(ev_with camera_id '{"id":"x"}')"
bad bad_type:event_ts '%s' "$(ev_with event_ts true)"
bad bad_type:event_ts '%s' "$(ev_with event_ts 1714557600000.5)"                       # a real, not an integer
bad bad_type:event_ts '%s' "$(ev_with event_ts '[1714557600000]')"
bad bad_type:event_type '%s' "$(ev_with event_type '{}')"
bad bad_type:event_type '%s' "$(ev_with event_type 7)"
bad bad_type:confidence '%s' "$(ev ',"confidence":"0.5"')"
bad bad_type:confidence '%s' "$(ev ',"confidence":true')"
bad bad_type:object_count '%s' "$(ev ',"object_count":1.0')"
bad bad_type:object_count '%s' "$(ev ',"object_count":"3"')"
# --- missing fields and string lengths
bad missing_field:event_id '%s' "{\"camera_id\":\"$CAM\",\"event_ts\":\"2024-05-01T10:00:00Z\",\"event_type\":\"motion\"}"
bad missing_field:event_type '%s' "$(ev_with event_type null)"
bad missing_field:camera_id '%s' '{"event_id":"x"}'
bad bad_value:event_id '%s' "$(ev_with event_id '""')"
bad bad_value:event_id '%s' "$(ev_with event_id "\"$(rep i 129)\"")"                  # 129 bytes
bad bad_value:event_type '%s' "$(ev_with event_type "\"$(rep t 65)\"")"               # 65 bytes
bad bad_value:camera_id '%s' "$(ev_with camera_id "\"$(rep c 129)\"")"
# --- timestamps: unparsable and absurd (string → bad_value, see get_ts())
for ts in '"yesterday"' '"10000-01-01T00:00:00Z"' '"2024-13-01T00:00:00Z"' '"2024-00-10T00:00:00Z"' \
    '"2024-02-30T00:00:00Z"' '"2023-02-29T00:00:00Z"' '"2024-05-01T24:00:00Z"' '"2024-05-01T23:59:60Z"' \
    '"2024-05-01T10:00:00"' '"2024-05-01T10:00:00+24:00"' '"2024-05-01"' '"1969-12-31T23:59:59Z"' \
    '"2024-05-01T10:00:00.1234567890Z"' '"1714557600000"' '""' '253402300800000' '-1'; do
    bad bad_value:event_ts '%s' "$(ev_with event_ts "$ts")"
done
# --- boundaries that must be accepted (exact stored event_ts in UTC)
good "$(rep i 128)" "2024-05-01 10:00:00+00" '%s' "$(valid_json "$(rep i 128)")"   # 128-byte event_id
good ts-max "9999-12-31 23:59:59.999999+00" '%s' "$(ev_with event_ts '"9999-12-31T23:59:59.999999Z"' | sed 's/"x"/"ts-max"/')"
good ts-epoch0 "1970-01-01 00:00:00+00" '%s' "$(ev_with event_ts 0 | sed 's/"x"/"ts-epoch0"/')"
good ts-ms-max "9999-12-31 23:59:59.999+00" '%s' "$(ev_with event_ts 253402300799999 | sed 's/"x"/"ts-ms-max"/')"
good ts-offset "2024-05-01 10:00:00+00" '%s' "$(ev_with event_ts '"2024-05-01T15:30:00+05:30"' | sed 's/"x"/"ts-offset"/')"
good ts-leap "2024-02-29 12:00:00+00" '%s' "$(ev_with event_ts '"2024-02-29T12:00:00z"' | sed 's/"x"/"ts-leap"/')"
good count-max "2024-05-01 10:00:00+00" '%s' "$(valid_json count-max ',"object_count":2147483647,"confidence":1')"
good deep-ok "2024-05-01 10:00:00+00" '%s' "$(valid_json deep-ok ",\"deep\":$(deep_array 100)")"
good utf8-ok "2024-05-01 10:00:00+00" '%s' "$(valid_json utf8-ok ',"note":"caf\u00e9 \ud83d\ude00 ✓"')"
next_valid

p0_total=${NEXT_OFF[0]} p1_total=${NEXT_OFF[1]}
total=$((p0_total + p1_total))
n_dead=$(awk -F'\t' '$3 == "dead"' "$EXPECT" | wc -l)
n_rows=$(awk -F'\t' '$3 == "row"' "$EXPECT" | wc -l)
log "fixtures: $total messages ($n_hostile hostile + 1 of 10 MB, $n_rows valid), p0=$p0_total p1=$p1_total"

# ------------------------------------------------------------ produce
pg_start
kafka_start "$TOPIC" 2 max.message.bytes=$((BIG_BYTES + 1000000))
t0=$(now_s)
for i in "${!MSG_FILES[@]}"; do
    f=${MSG_FILES[$i]} part=${MSG_PARTS[$i]}
    kc=(kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC" -p "$part" -X message.max.bytes=$((BIG_BYTES + 1000000))
        -X enable.idempotence=true)
    case ${MSG_MODES[$i]} in
        file) "${kc[@]}" -k "m$i" "$f" ;;
        empty) printf 'm%s\t\n' "$i" | "${kc[@]}" -K $'\t' ;;
        null) printf 'm%s\t\n' "$i" | "${kc[@]}" -K $'\t' -Z ;;
    esac 2>"$CJ_TMP/kcat-produce.err" || fail "kcat could not produce message $i: $(cat "$CJ_TMP/kcat-produce.err")"
done
log "produced $total messages in $(elapsed "$t0") s"

# The broker must hold exactly what was produced, from offset 0, or the
# table above would not describe the topic.
assert_eq "partition end offsets" "0 $p0_total|1 $p1_total" "$(kafka_end_offsets "$TOPIC" | paste -sd'|')"
assert_eq "partition start offsets" "0:0|1:0" "$(kafka_start_offsets "$TOPIC" 2 | paste -sd'|')"

# ------------------------------------------------------------ consume
camjoin_args "$TOPIC" "$GROUP"
t0=$(now_s)
camjoin_start hostile "${CJ_ARGS[@]}" --until-end --set event.max_message_bytes=1MiB
camjoin_wait "$CAMJOIN_PID" 60
consume_s=$(elapsed "$t0")
assert_eq "camjoin --until-end exit code" 0 "$CAMJOIN_RC"
if grep -E 'level=(error|fatal)' "$CJ_TMP/hostile.log"; then fail "camjoin logged an error"; fi

# ------------------------------------------------------------ compare
psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE TABLE expect (kafka_partition int, kafka_offset bigint, kind text, expected text,
                     len bigint, md5 text, hex text, ts text);
\copy expect FROM '$EXPECT' WITH (FORMAT text, NULL '-')
SQL

echo "dead letters (partition/offset/reason against the table)"
wrong=$(psql_val "SELECT count(*) FROM (SELECT * FROM expect WHERE kind = 'dead') e
                  FULL JOIN (SELECT * FROM camjoin_dead_letters WHERE topic = '$TOPIC') d
                  USING (kafka_partition, kafka_offset)
                  WHERE e.expected IS DISTINCT FROM d.reason")
if [[ $wrong != 0 ]]; then
    psql -X -c "SELECT kafka_partition p, kafka_offset o, e.expected, d.reason AS actual,
                       left(encode(d.payload, 'escape'), 80) payload
                FROM (SELECT * FROM expect WHERE kind = 'dead') e
                FULL JOIN (SELECT * FROM camjoin_dead_letters WHERE topic = '$TOPIC') d
                USING (kafka_partition, kafka_offset)
                WHERE e.expected IS DISTINCT FROM d.reason ORDER BY 1, 2" >&2
fi
assert_eq "dead letters missing, extra or with another reason" 0 "$wrong"
assert_eq "count(camjoin_dead_letters)" "$n_dead" \
    "$(psql_val "SELECT count(*) FROM camjoin_dead_letters WHERE topic = '$TOPIC'")"
psql_val "SELECT '    ' || reason || ': ' || count(*) FROM camjoin_dead_letters
          WHERE topic = '$TOPIC' GROUP BY reason ORDER BY reason"

echo "payload round trip (stored bytes = produced bytes)"
badpay=$(psql_val "SELECT count(*) FROM expect e JOIN camjoin_dead_letters d USING (kafka_partition, kafka_offset)
                   WHERE CASE WHEN e.len = -1 THEN d.payload IS NOT NULL
                              ELSE d.payload IS NULL OR octet_length(d.payload) <> e.len
                                   OR md5(d.payload) <> e.md5
                                   OR (e.hex IS NOT NULL AND encode(d.payload, 'hex') <> e.hex)
                                   OR (e.len = 0 AND d.payload <> ''::bytea) END")
if [[ $badpay != 0 ]]; then
    psql -X -c "SELECT kafka_partition p, kafka_offset o, e.len, octet_length(d.payload) stored_len,
                       d.payload IS NULL stored_null, left(encode(d.payload, 'hex'), 60) stored,
                       left(e.hex, 60) expected
                FROM expect e JOIN camjoin_dead_letters d USING (kafka_partition, kafka_offset)
                ORDER BY 1, 2" >&2
fi
assert_eq "dead letters whose payload differs from the produced bytes" 0 "$badpay"
assert_eq "10 MB dead letter: stored payload length" "$BIG_BYTES" \
    "$(psql_val "SELECT octet_length(payload) FROM camjoin_dead_letters WHERE topic = '$TOPIC' AND kafka_partition = 1")"
assert_eq "tombstone dead letter: payload IS NULL" t \
    "$(psql_val "SELECT d.payload IS NULL FROM camjoin_dead_letters d JOIN expect e USING (kafka_partition, kafka_offset) WHERE e.len = -1")"
assert_eq "empty-value dead letter: payload is 0 bytes, not NULL" 0 \
    "$(psql_val "SELECT octet_length(d.payload) FROM camjoin_dead_letters d JOIN expect e USING (kafka_partition, kafka_offset) WHERE e.len = 0")"

echo "event rows (the valid messages between and after the hostile ones)"
wrongrows=$(psql_val "SELECT count(*) FROM (SELECT * FROM expect WHERE kind = 'row') e
                      FULL JOIN camera_events c USING (kafka_partition, kafka_offset)
                      WHERE e.expected IS DISTINCT FROM c.event_id
                         OR e.ts::timestamptz IS DISTINCT FROM c.event_ts")
if [[ $wrongrows != 0 ]]; then
    psql -X -c "SELECT kafka_partition p, kafka_offset o, left(e.expected, 20) expected, e.ts,
                       left(c.event_id, 20) actual, c.event_ts
                FROM (SELECT * FROM expect WHERE kind = 'row') e
                FULL JOIN camera_events c USING (kafka_partition, kafka_offset)
                WHERE e.expected IS DISTINCT FROM c.event_id OR e.ts::timestamptz IS DISTINCT FROM c.event_ts
                ORDER BY 1, 2" >&2
fi
assert_eq "rows missing, extra, or with another event_id/event_ts" 0 "$wrongrows"
assert_eq "count(camera_events)" "$n_rows" "$(psql_val "SELECT count(*) FROM camera_events")"
assert_eq "duplicate rows" 0 "$(psql_val "SELECT count(*) - count(DISTINCT event_id) FROM camera_events")"
assert_eq "rows not joined to $CAM's site" 0 \
    "$(psql_val "SELECT count(*) FROM camera_events WHERE site_id IS DISTINCT FROM '$CAM_SITE'")"
assert_eq "1 MiB event: attribute pad length" $((MAX_BYTES - $(valid_json at-limit ',"pad":"' | wc -c) - 1)) \
    "$(psql_val "SELECT length(attributes->>'pad') FROM camera_events WHERE event_id = 'at-limit'")"
assert_eq "utf8-ok event: attribute decoded" "café 😀 ✓" \
    "$(psql_val "SELECT attributes->>'note' FROM camera_events WHERE event_id = 'utf8-ok'")"
assert_eq "boundary values stored" "2147483647|1" \
    "$(psql_val "SELECT object_count || '|' || confidence FROM camera_events WHERE event_id = 'count-max'")"

echo "offsets"
assert_eq "camjoin_offsets = partition ends" "0:$p0_total 1:$p1_total" \
    "$(psql_val "SELECT string_agg(kafka_partition || ':' || next_offset, ' ' ORDER BY kafka_partition)
                 FROM camjoin_offsets WHERE consumer_group = '$GROUP' AND topic = '$TOPIC'")"
lost=$((total - $(psql_val "SELECT count(*) FROM camera_events") - $(psql_val "SELECT count(*) FROM camjoin_dead_letters WHERE topic = '$TOPIC'")))
assert_eq "messages neither written nor dead-lettered" 0 "$lost"

echo "FIGURES hostile_messages: messages=$total hostile=$((n_hostile + 1)) rows=$n_rows dead_letters=$n_dead lost=$lost duplicate_rows=0 wrong_reason=$wrong largest=${BIG_BYTES}B consume_s=$consume_s exit=$CAMJOIN_RC"
echo "PASS: t_hostile_messages ($total messages: $n_dead dead letters with exact reasons, $n_rows rows)"
