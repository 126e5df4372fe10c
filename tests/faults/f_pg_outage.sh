#!/usr/bin/env bash
# f_pg_outage — PostgreSQL disappears mid-stream (`pg_ctl stop -m immediate`)
# for OUTAGE seconds while camjoin-gen keeps producing, then comes back.
#
# Expected (docs/ARCHITECTURE.md §1 Back-pressure, README "Failures"):
#   - camjoin stays up: the same PID runs from start to end and exits 0 on
#     the final SIGTERM;
#   - it logs "postgres unavailable, retrying", then, once batch.max_buffered
#     (20000 here) messages wait, "buffer full, pausing partitions" during the
#     outage; after PostgreSQL is back "postgres connected" and "buffer
#     drained, resuming partitions";
#   - while paused it stops consuming: camjoin_messages_consumed_total (from
#     /metrics, sampled every second) does not move between the first sample
#     that shows paused partitions and the end of the outage, and
#     camjoin_buffered_messages never exceeds max_buffered + 8192 (the loop
#     checks the limit after each drain pass of at most 8 x 1024 messages,
#     source_kafka.c DRAIN_BUDGET);
#   - memory stays bounded: VmRSS, sampled every second, stays below the
#     baseline (just before the outage) + 200 MiB. Why that bound: the
#     buffer holds at most ~28k messages (above) of ~150-250 bytes, kept as
#     payload + parsed row + binary COPY row (< 2 KiB each: < 56 MiB); librdkafka's
#     pre-fetch queue is purged on pause and is capped anyway by
#     queued.max.messages.kbytes (64 MiB); 200 MiB leaves room for malloc
#     fragmentation and libpq's reconnect buffers. An unbounded buffer shows
#     up in the two /metrics checks above before it would reach this bound
#     at these rates;
#   - the final table is exactly the manifest (assert_final_state: no id
#     lost, no duplicate row, dead letters once each, offsets = partition ends).
# Recovery time = PostgreSQL accepting connections again (pg_ctl start -w
# returned) -> start of the first transaction that wrote rows; it includes
# camjoin's reconnect backoff (100 ms doubling, capped by postgres.retry_max
# = 10 s by default).
#
# Sizes: default OUTAGE=10 s at 3000 events/s (buffer full after ~7 s);
# FAULTS_SCALE=full: 30 s at 2000 events/s. F_PG_OUTAGE_SECONDS and
# F_PG_OUTAGE_RATE override them. 8 partitions keep every partition under the
# mock's ~30k-event retention too (CAMJOIN_KAFKA=mock), so every row is
# checked against its message.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
need_bin camjoin camjoin-gen

fault_param OUTAGE F_PG_OUTAGE_SECONDS 10 30
fault_param RATE F_PG_OUTAGE_RATE 3000 2000
MAX_BUFFERED=20000 DRAIN_BUDGET=8192 RSS_BOUND_MIB=200
BEFORE=6 AFTER=8             # seconds of production before and after the outage
DURATION=$((BEFORE + OUTAGE + AFTER))
TOPIC=pgout-events GROUP=pgout-ft PARTS=8
((RATE * OUTAGE > MAX_BUFFERED)) ||
    fail "RATE x OUTAGE ($((RATE * OUTAGE))) must exceed batch.max_buffered ($MAX_BUFFERED) for the pause to happen"
echo "f_pg_outage: ${OUTAGE} s outage, $RATE events/s for $DURATION s, batch.max_buffered=$MAX_BUFFERED"

fault_setup
HTTP_PORT=$(free_port)
metric() {  # NAME: its value from /metrics (empty if unreachable)
    curl -fsS --max-time 2 "http://127.0.0.1:$HTTP_PORT/metrics" 2>/dev/null |
        awk -v n="$1" '$1 == n { printf "%d\n", $2 }'
}
log_epoch() {  # MSG: epoch seconds of the first `msg="MSG"` line of the run's log
    local ts
    ts=$(grep -m1 "msg=\"$1\"" "$CJ_TMP/pgout.log" | sed -nE 's/^ts=([^ ]+) .*/\1/p')
    [[ -n "$ts" ]] || fail "camjoin never logged msg=\"$1\""
    date -d "$ts" +%s.%N
}

camjoin_start pgout "${CJ_ARGS[@]}" --set "batch.max_buffered=$MAX_BUFFERED" \
    --http "127.0.0.1:$HTTP_PORT"
PID=$CAMJOIN_PID
wait_progress "$TOPIC" "$GROUP" 0 30 "$PID"
gen_start pgout --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed 3003 \
    --dup-ratio 0.10 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    --manifest "$CJ_TMP/pgout.manifest.csv"
wait_progress "$TOPIC" "$GROUP" $((RATE * (BEFORE - 3))) $((BEFORE + 20)) "$PID"
kill -0 "${GEN_PIDS[pgout]}" 2>/dev/null || fail "the generator finished before the outage"

baseline=$(vmrss_kib "$PID")
before=$(_offsets_sum "$TOPIC" "$GROUP")
t_down=$(now_s)
pg_down
log "PostgreSQL stopped (immediate) at $before committed messages; camjoin VmRSS ${baseline} KiB"

rss_max=$baseline buf_max=0 paused_consumed="" last_consumed="" samples=0
t_end=$(awk -v a="$t_down" -v o="$OUTAGE" 'BEGIN { printf "%.3f", a + o }')
while :; do
    sleep 1
    kill -0 "$PID" 2>/dev/null || fail "camjoin (pid $PID) exited during the outage"
    rss=$(vmrss_kib "$PID") buf=$(metric camjoin_buffered_messages)
    paused=$(metric camjoin_partitions_paused) consumed=$(metric camjoin_messages_consumed_total)
    [[ -n "$buf" && -n "$consumed" ]] || fail "/metrics unreachable during the outage (sample $((samples + 1)))"
    ((rss > rss_max)) && rss_max=$rss
    ((buf > buf_max)) && buf_max=$buf
    if [[ -z "$paused_consumed" ]] && ((paused > 0)); then paused_consumed=$consumed; fi
    last_consumed=$consumed samples=$((samples + 1))
    printf '    outage +%4.1fs: VmRSS %6d KiB, buffered %6d, paused partitions %d, consumed %d\n' \
        "$(awk -v a="$t_down" -v b="$(now_s)" 'BEGIN { print b - a }')" "$rss" "$buf" "$paused" "$consumed"
    [[ $(awk -v e="$t_end" -v n="$(now_s)" 'BEGIN { print (n + 1 >= e) }') == 1 ]] && break
done
sleep "$(awk -v e="$t_end" -v n="$(now_s)" 'BEGIN { d = e - n; printf "%.3f", (d > 0 ? d : 0) }')"
kill -0 "${GEN_PIDS[pgout]}" 2>/dev/null || fail "the generator stopped producing during the outage"
t_up0=$(now_s)
pg_up
t_up=$(now_s)
down_s=$(awk -v a="$t_down" -v b="$t_up0" 'BEGIN { printf "%.1f", b - a }')
log "PostgreSQL down for $down_s s; accepting connections again $(awk -v a="$t_up0" -v b="$t_up" 'BEGIN { printf "%.1f", b - a }') s after pg_ctl start"

gen_wait pgout
sent=$(json_get "$CJ_TMP/pgout.json" sent)
log "generator: $(cat "$CJ_TMP/pgout.json")"
assert_eq "generator sent RATE x DURATION events" $((RATE * DURATION)) "$sent"
wait_offsets "$TOPIC" "$GROUP" "$sent" 180 "$PID"
assert_eq "camjoin still the same process (pid $PID) after the outage" 0 "$(kill -0 "$PID" 2>/dev/null; echo $?)"
camjoin_stop "$PID"
assert_eq "exit code after SIGTERM" 0 "$CAMJOIN_RC"
assert_eq "camjoin processes started (no restart)" 1 "$(grep -c 'msg="started"' "$CJ_TMP/pgout.log")"

# Recovery: the first row written by a transaction that began after
# PostgreSQL was started again (ingested_at defaults to now(), the start of
# the writing transaction; same host clock). A batch whose COMMIT reached the
# server just before the immediate stop is resolved after the reconnect and
# is rightly not counted: it was written before the outage.
first_row=$(psql_val "SELECT extract(epoch FROM min(ingested_at)) FROM camera_events
                      WHERE ingested_at >= to_timestamp($t_up0)")
[[ -n "$first_row" ]] || fail "no row was written after PostgreSQL came back"
recovery=$(awk -v a="$t_up" -v b="$first_row" 'BEGIN { printf "%.2f", b - a }')
recovery_from_start=$(awk -v a="$t_up0" -v b="$first_row" 'BEGIN { printf "%.2f", b - a }')

echo "behaviour during the outage"
t_unavail=$(log_epoch "postgres unavailable, retrying")
t_pause=$(log_epoch "buffer full, pausing partitions")
t_resume=$(log_epoch "buffer drained, resuming partitions")
t_conn=$(grep 'msg="postgres connected"' "$CJ_TMP/pgout.log" | tail -n 1 | sed -nE 's/^ts=([^ ]+) .*/\1/p')
t_conn=$(date -d "$t_conn" +%s.%N)
in_window() { awk -v t="$1" -v a="$2" -v b="$3" 'BEGIN { print (t >= a && t <= b) ? "yes" : "no" }'; }
assert_eq "'postgres unavailable' logged during the outage" yes "$(in_window "$t_unavail" "$t_down" "$t_up")"
assert_eq "'buffer full, pausing partitions' logged during the outage" yes "$(in_window "$t_pause" "$t_down" "$t_up")"
assert_eq "'postgres connected' logged after PostgreSQL came back" yes "$(in_window "$t_conn" "$t_up0" "$(now_s)")"
assert_eq "'buffer drained, resuming partitions' logged after that" yes "$(in_window "$t_resume" "$t_conn" "$(now_s)")"
[[ -n "$paused_consumed" ]] || fail "/metrics never showed paused partitions during the outage"
assert_eq "messages consumed while paused (paused sample -> end of outage)" 0 $((last_consumed - paused_consumed))
((buf_max <= MAX_BUFFERED + DRAIN_BUDGET)) ||
    fail "buffered messages reached $buf_max, above max_buffered + drain budget ($((MAX_BUFFERED + DRAIN_BUDGET)))"
echo "  ok  max buffered during the outage <= $((MAX_BUFFERED + DRAIN_BUDGET))              $buf_max"
growth_kib=$((rss_max - baseline))
((growth_kib < RSS_BOUND_MIB * 1024)) ||
    fail "VmRSS grew by $((growth_kib / 1024)) MiB during the outage (bound $RSS_BOUND_MIB MiB)"
echo "  ok  VmRSS growth during the outage < $RSS_BOUND_MIB MiB                      $((growth_kib / 1024)) MiB"

load_manifest "$CJ_TMP/pgout.manifest.csv"
load_messages "$TOPIC"
fault_figures "$TOPIC"
malformed=$(json_get "$CJ_TMP/pgout.json" malformed)
SUMMARY="FIGURES f_pg_outage: events=$sent outage=${OUTAGE}s (down ${down_s}s) lost=$F_LOST duplicate_rows=$F_DUP_ROWS dead_letters=$F_DEAD/$malformed (missing=$F_DEAD_MISSING extra=$F_DEAD_EXTRA) recovery=${recovery}s (from pg_ctl start: ${recovery_from_start}s; reconnect after $(awk -v a="$t_up" -v b="$t_conn" 'BEGIN { printf "%.2f", b - a }')s) paused_after=$(awk -v a="$t_down" -v b="$t_pause" 'BEGIN { printf "%.1f", b - a }')s buffered_max=$buf_max rss_baseline=$((baseline / 1024))MiB rss_max=$((rss_max / 1024))MiB same_pid=yes"
echo "$SUMMARY"
assert_eq "lost valid ids" 0 "$F_LOST"
assert_eq "duplicate rows (count(*) - count(DISTINCT (event_id, event_ts)))" 0 "$F_DUP_ROWS"
assert_eq "count(*) = unique valid ids" "$(json_get "$CJ_TMP/pgout.json" valid_new)" "$F_ROWS"
assert_eq "malformed messages without their dead letter" 0 "$F_DEAD_MISSING"
assert_eq "dead letters stored more than once" 0 "$F_DEAD_EXTRA"
assert_final_state "$CJ_TMP/pgout.json" "$CJ_TMP/pgout.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "PASS: f_pg_outage ($sent events, ${OUTAGE} s PostgreSQL outage, pid $PID throughout)"
