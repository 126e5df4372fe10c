#!/usr/bin/env bash
# t_logs — the log formats end to end:
#   1. --log-format json, --until-end over a produced topic: every stderr line
#      is one JSON object with ts, level and msg; the "started" line shows the
#      conninfo with its password masked (the password, given in the
#      conninfo, appears nowhere in the output; the cluster uses trust
#      authentication, so libpq never sends it), reference_rows equals the
#      CSV's data lines, and the "stopped" line's counts are JSON numbers
#      equal to the generator's summary;
#   2. the default format: every line matches
#      ^ts=\S+ level=(error|warn|info|debug) msg=;
#   3. repeat suppression: bootstrap brokers that refuse every connection
#      make librdkafka log each failed attempt twice, at debug (never
#      suppressed: the independent count of attempts, with -X debug=broker
#      -v) and at error (msg="librdkafka"), and report it to the error
#      callback (msg="kafka", warn). In 3 s, within the 10 s interval, each of
#      the two msgs must be written once and the exit must write the rest as
#      repeated=N summary=flush: for msg="librdkafka" N = attempts - 1
#      exactly; for msg="kafka" N >= 1 (the error callback is a separate
#      channel: an attempt failing during shutdown may reach one and not the
#      other). librdkafka tries about one broker a second, so with 10 brokers
#      none is tried twice (librdkafka would suppress its own identical
#      errors) and they are never all down (an extra _ALL_BROKERS_DOWN).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen

TOPIC=log-events GROUP=logs-it PARTS=2
PW="Pw-$RANDOM$RANDOM-secret"

pg_start
kafka_start "$TOPIC" "$PARTS"
gen logs --topic "$TOPIC" --count 3000 --seed 4242 --dup-ratio 0.05 \
    --unknown-camera-ratio 0.03 --malformed-ratio 0.02
SUMMARY=$CJ_TMP/logs.json
log "generator: $(cat "$SUMMARY")"

# A keyword conninfo holding a password (ignored by trust authentication).
CONNINFO="host=127.0.0.1 port=$PGPORT dbname=camjoin user=postgres password=$PW"
MASKED="host=127.0.0.1 port=$PGPORT dbname=camjoin user=postgres password=****"
base_args() {  # GROUP
    BASE=(--brokers "$KAFKA_BROKERS" --topic "$TOPIC" --group "$1" --pg "$CONNINFO"
          --reference "$CAMERAS_CSV" -X session.timeout.ms=6000 -X heartbeat.interval.ms=500)
}

echo "1. --log-format json"
base_args "$GROUP"
camjoin_start json "${BASE[@]}" --until-end --log-format json
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "json run exit code" 0 "$CAMJOIN_RC"
LOG=$CJ_TMP/json.log
lines=$(grep -c '' "$LOG")
((lines >= 3)) || fail "only $lines log lines"
# each line on its own: a JSON object whose ts, level and msg are strings
bad=$(jq -R -r 'try (fromjson | if type == "object" and (.ts | type) == "string"
                      and (.level | IN("error", "warn", "info", "debug"))
                      and (.msg | type) == "string" then empty else "not a log record: \(.)" end)
                catch "not JSON: \(.)"' "$LOG" | head -n 3)
[[ -z "$bad" ]] || fail "json log: $bad"
echo "  ok  all $lines lines are JSON log records"
while IFS= read -r line; do
    jq -e . >/dev/null <<<"$line" || fail "jq -e . rejects: $line"
done <"$LOG"
echo "  ok  jq -e . accepts each line"

assert_eq "password in the log or stdout" 0 "$(cat "$LOG" "$CJ_TMP/json.out" | grep -cF -- "$PW" || true)"
assert_eq "started lines" 1 "$(jq -R 'fromjson | select(.msg == "started")' "$LOG" | jq -s length)"
started() { jq -R -r "fromjson | select(.msg == \"started\") | $1" "$LOG"; }
assert_eq "started: pg (masked)" "$MASKED" "$(started .pg)"
csv_rows=$(tail -n +2 "$CAMERAS_CSV" | grep -c .)
assert_eq "started: reference_rows = CSV data lines" "number $csv_rows" \
    "$(started '"\(.reference_rows | type) \(.reference_rows)"')"
assert_eq "started: brokers, topic, group, table" "$KAFKA_BROKERS $TOPIC $GROUP camera_events" \
    "$(started '"\(.brokers) \(.topic) \(.group) \(.table)"')"
assert_eq "started: log format and level, write mode, http" "json info auto " \
    "$(started '"\(.log_format) \(.log_level) \(.write_mode) \(.http)"')"
assert_eq "started: limits (numbers)" "600000 20000 0 200000 1048576 30000 1" \
    "$(started '[.dedup_window_ms, .batch_max_rows, .batch_max_wait_ms, .batch_max_buffered,
                 .max_message_bytes, .ready_max_pause_ms, .until_end]
                | map(numbers) | map(tostring) | join(" ")')"

stopped() { jq -R -r "fromjson | select(.msg == \"stopped\") | $1" "$LOG"; }
assert_eq "stopped lines" 1 "$(jq -R 'fromjson | select(.msg == "stopped")' "$LOG" | jq -s length)"
want="$(jq -r '"\(.sent) \(.valid_new) \(.valid_new) \(.duplicates) \(.malformed) \(.unknown_camera)"' "$SUMMARY")"
assert_eq "stopped: consumed rows inserted duplicates dead_letters join_misses (numbers) = generator" \
    "$want" \
    "$(stopped '[.consumed, .rows, .inserted, .duplicates, .dead_letters, .join_misses]
                | map(numbers) | map(tostring) | join(" ")')"

echo "2. the default format, logfmt"
base_args "$GROUP-2"
camjoin_start logfmt "${BASE[@]}" --until-end
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "logfmt run exit code" 0 "$CAMJOIN_RC"
LOG=$CJ_TMP/logfmt.log
assert_eq "logfmt lines not matching ^ts=\\S+ level=(error|warn|info|debug) msg=" 0 \
    "$(grep -cvE '^ts=\S+ level=(error|warn|info|debug) msg=' "$LOG" || true)"
assert_eq "logfmt: password anywhere" 0 "$(grep -cF -- "$PW" "$LOG" || true)"
grep -qF "pg=\"$MASKED\"" "$LOG" || fail "logfmt started line without pg=\"$MASKED\""
assert_eq "logfmt: consumed in the stopped line" "$(json_get "$SUMMARY" sent)" \
    "$(stopped_field "$LOG" consumed)"

echo "3. repeats: brokers that refuse every connection, for 3 s"
dead=()
for _ in $(seq 10); do dead+=("127.0.0.1:$(free_port)"); done
BROKERS=$(IFS=,; echo "${dead[*]}")
camjoin_start repeats --brokers "$BROKERS" --topic "$TOPIC" --group "$GROUP-3" --pg "$CONNINFO" \
    --reference "$CAMERAS_CSV" -X debug=broker -v
pid=$CAMJOIN_PID
sleep 3
camjoin_stop "$pid" 60
assert_eq "exit code after SIGTERM" 0 "$CAMJOIN_RC"
LOG=$CJ_TMP/repeats.log
attempts=$(grep -cE 'level=debug msg="librdkafka" facility=FAIL .*Connection refused' "$LOG" || true)
echo "  connection attempts refused (librdkafka debug lines): $attempts"
((attempts >= 2)) || fail "expected at least 2 refused connection attempts in 3 s, saw $attempts"
for key in 'level=warn msg="kafka"' 'level=error msg="librdkafka"'; do
    assert_eq "$key lines written" 1 "$(grep -cE "^ts=\S+ $key (detail|facility)=" "$LOG" || true)"
done
key='level=error msg="librdkafka"'
assert_eq "$key at exit: repeated=attempts-1 summary=flush" \
    "$key repeated=$((attempts - 1)) summary=flush" \
    "$(grep -E "^ts=\S+ $key repeated=" "$LOG" | cut -d' ' -f2-)"
key='level=warn msg="kafka"'
flush=$(grep -E "^ts=\S+ $key repeated=[1-9][0-9]* summary=flush$" "$LOG" | cut -d' ' -f2- || true)
[[ -n "$flush" ]] || fail "no '$key repeated=N summary=flush' line, N >= 1"
echo "  ok  $flush"
assert_eq "the flush lines come last" "flush flush" \
    "$(tail -n 2 "$LOG" | sed -nE 's/.* summary=(\w+)$/\1/p' | paste -sd' ')"
echo "PASS: t_logs"
