#!/usr/bin/env bash
# t_metrics — /metrics, /healthz and /readyz scraped from a live run.
#
# camjoin runs with --http while camjoin-gen produces 6,000 messages (10 %
# duplicates, 2 % unknown cameras, 5 % malformed) to a 3-partition topic.
# Once the offsets in PostgreSQL reach the end, ONE scrape is checked value
# by value against numbers computed elsewhere:
#   - the generator's summary (sent, valid_new, duplicates, malformed and
#     malformed_by_reason, unknown_camera),
#   - PostgreSQL (rows, dead letters by reason, committed transactions are
#     not visible there, so the commit histogram is checked against the
#     batches counter and the batches against the latency counts),
#   - kcat (each partition's end offset = high watermark = committed offset,
#     so the lag is 0),
#   - the CSV (reference rows) and `camjoin --version`;
#   - kcat again for the payload bytes (camjoin_consumed_bytes_total) and,
#     while PostgreSQL is down, the Kafka timestamp of each partition's last
#     committed message (camjoin_consumer_lag_seconds);
#   - /proc and ps for process_* (fds, fd limit, RSS, CPU, start time); the
#     batches for camjoin_batch_rows (_sum = rows, _count = batches); one
#     rebalance for one consumer; one PostgreSQL reconnect after one outage.
# Then the scrape goes through `promtool check metrics` (Prometheus's own
# linter), which must print nothing, and the endpoints' status codes are
# checked: 200 for /healthz and /readyz, 404 for an unknown path, 405 for
# POST.
# Then PostgreSQL is stopped and 900 more messages are produced: camjoin
# fetches them but cannot commit, so each partition's lag must be exactly
# its new end offset (kcat) minus its old one, the buffer exactly 900, and
# /readyz 503 "postgres unavailable" while /healthz stays 200. After
# PostgreSQL returns, the lag must drain to 0 and /readyz return to 200.
# Last, a session holds an exclusive lock on camera_events while 3,000 more
# arrive: the buffer (batch.max_buffered=2000) fills, the partitions pause,
# and after http.ready_max_pause (1 s) /readyz answers 503 with that reason;
# once the lock goes, everything commits and /readyz is 200 again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen
command -v promtool >/dev/null || fail "promtool is needed (Debian package prometheus)"
command -v curl >/dev/null || fail "curl is needed"

TOPIC=metrics-events GROUP=metrics-it PARTS=3

pg_start
kafka_start "$TOPIC" "$PARTS"
camjoin_args "$TOPIC" "$GROUP"
HTTP_PORT=$(free_port)
URL="http://127.0.0.1:$HTTP_PORT"
# a small buffer and a 1 s pause limit, for the back-pressure phase at the end
camjoin_start metrics "${CJ_ARGS[@]}" --http "$HTTP_PORT" \
    --set batch.max_buffered=2000 --set http.ready_max_pause=1s   # a port alone: loopback
pid=$CAMJOIN_PID
t_started=$(now_s)
wait_progress "$TOPIC" "$GROUP" 0 30 "$pid"

code() { curl -s -o "$CJ_TMP/body" -w '%{http_code}' -m 2 "$@" || true; }

# /readyz turns 200 once the partitions are assigned and positioned
ready() { [[ $(code "$URL/readyz") == 200 ]]; }
rc=0
wait_for -p "$pid" 15 -- ready || rc=$?
((rc != 2)) || fail "camjoin exited before it was ready"
assert_eq "/readyz status once assigned" 200 "$(code "$URL/readyz")"
assert_eq "/readyz body" ready "$(cat "$CJ_TMP/body")"
assert_eq "/healthz status" 200 "$(code "$URL/healthz")"
assert_eq "/healthz body" ok "$(cat "$CJ_TMP/body")"
assert_eq "unknown path status" 404 "$(code "$URL/nope")"
assert_eq "POST /metrics status" 405 "$(code -X POST "$URL/metrics")"

gen metrics --topic "$TOPIC" --count 6000 --seed 4242 --dup-ratio 0.10 \
    --unknown-camera-ratio 0.02 --malformed-ratio 0.05
S=$CJ_TMP/metrics.json
sent=$(json_get "$S" sent)
valid_new=$(json_get "$S" valid_new)
dups=$(json_get "$S" duplicates)
malformed=$(json_get "$S" malformed)
unknown=$(json_get "$S" unknown_camera)
log "generator: $(cat "$S")"
wait_offsets "$TOPIC" "$GROUP" "$sent" 60 "$pid"

# rows and dead letters are committed; the informational Kafka commit and
# the watermark cache follow within a tick
sleep 1.5
curl -fsS -m 5 "$URL/metrics" >"$CJ_TMP/scrape.txt" || fail "/metrics did not answer"
scraped_at=$(now_s)
M=$CJ_TMP/scrape.txt
val() {  # NAME or NAME{labels}: the value in the scrape, exactly one sample
    local n
    n=$(awk -v k="$1" '$1 == k' "$M" | wc -l)
    [[ $n -eq 1 ]] || fail "/metrics has $n samples named $1"
    awk -v k="$1" '$1 == k { print $2 }' "$M"
}

echo "counters against the generator's summary"
assert_eq camjoin_messages_consumed_total "$sent" "$(val camjoin_messages_consumed_total)"
assert_eq camjoin_rows_committed_total "$valid_new" "$(val camjoin_rows_committed_total)"
assert_eq camjoin_rows_inserted_total "$valid_new" "$(val camjoin_rows_inserted_total)"
assert_eq camjoin_duplicates_dropped_total "$dups" "$(val camjoin_duplicates_dropped_total)"
assert_eq camjoin_dead_letters_total "$malformed" "$(val camjoin_dead_letters_total)"
assert_eq camjoin_join_misses_total "$unknown" "$(val camjoin_join_misses_total)"
assert_eq camjoin_dedup_keys "$valid_new" "$(val camjoin_dedup_keys)"
assert_eq camjoin_commits_fenced_total 0 "$(val camjoin_commits_fenced_total)"
assert_eq camjoin_batches_restaged_total 0 "$(val camjoin_batches_restaged_total)"

echo "invalid messages by reason, against the summary and the dead-letter table"
jq -r '.malformed_by_reason | to_entries[] | select(.value > 0) | "\(.key) \(.value)"' "$S" |
    sort >"$CJ_TMP/want.reasons"
sed -nE 's/^camjoin_messages_invalid_total\{reason="([^"]+)"\} ([0-9]+)$/\1 \2/p' "$M" |
    sort >"$CJ_TMP/got.reasons"
psql_val "SELECT reason || ' ' || count(*) FROM camjoin_dead_letters GROUP BY reason" |
    sort >"$CJ_TMP/db.reasons"
[[ -s "$CJ_TMP/want.reasons" ]] || fail "the generator sent no malformed message"
diff "$CJ_TMP/want.reasons" "$CJ_TMP/got.reasons" ||
    fail "camjoin_messages_invalid_total{reason} differs from the generator's malformed_by_reason"
diff "$CJ_TMP/db.reasons" "$CJ_TMP/got.reasons" ||
    fail "camjoin_messages_invalid_total{reason} differs from the dead-letter table"
echo "  ok  $(wc -l <"$CJ_TMP/got.reasons") reasons: $(paste -sd, "$CJ_TMP/got.reasons")"

echo "against PostgreSQL"
assert_eq "rows metric = count(camera_events)" "$(psql_val "SELECT count(*) FROM camera_events")" \
    "$(val camjoin_rows_committed_total)"
assert_eq "camjoin_postgres_up" 1 "$(val camjoin_postgres_up)"

echo "lag per partition, against kcat's end offsets"
assert_eq camjoin_partitions_assigned "$PARTS" "$(val camjoin_partitions_assigned)"
assert_eq camjoin_partitions_paused 0 "$(val camjoin_partitions_paused)"
assert_eq camjoin_paused_since_timestamp_seconds 0.000 "$(val camjoin_paused_since_timestamp_seconds)"
ends=0
while read -r p end; do
    assert_eq "high watermark of partition $p" "$end" \
        "$(val "camjoin_partition_high_watermark{partition=\"$p\"}")"
    assert_eq "committed offset of partition $p" "$end" \
        "$(val "camjoin_partition_committed_offset{partition=\"$p\"}")"
    assert_eq "lag of partition $p" 0 "$(val "camjoin_consumer_lag_messages{partition=\"$p\"}")"
    assert_eq "lag in seconds of partition $p (caught up)" 0.000 \
        "$(val "camjoin_consumer_lag_seconds{partition=\"$p\"}")"
    ends=$((ends + end))
done < <(kafka_end_offsets "$TOPIC")
assert_eq "sum of end offsets = sent" "$sent" "$ends"

echo "histograms"
e2e_count=$(val camjoin_end_to_end_latency_seconds_count)
assert_eq "end-to-end latency samples = rows + dead letters" $((valid_new + malformed)) "$e2e_count"
assert_eq "event latency samples = rows" "$valid_new" "$(val camjoin_event_latency_seconds_count)"
assert_eq "commit duration samples = batches" "$(val camjoin_batches_committed_total)" \
    "$(val camjoin_commit_duration_seconds_count)"
for h in camjoin_end_to_end_latency_seconds camjoin_event_latency_seconds camjoin_commit_duration_seconds; do
    awk -v h="${h}_bucket" -v c="$(val "${h}_count")" '
        index($1, h "{") == 1 { if ($2 + 0 < prev) bad = "buckets decrease at " $1; prev = $2 + 0; last = $2 }
        END { if (!bad && last != c) bad = "+Inf bucket " last " != count " c
              if (bad) { print bad; exit 1 } }' "$M" || fail "$h is not a valid cumulative histogram"
done
echo "  ok  buckets cumulative, +Inf = count for all three"
assert_eq "rows per batch: _sum = rows committed" "$valid_new" "$(val camjoin_batch_rows_sum | cut -d. -f1)"
assert_eq "rows per batch: _count = batches" "$(val camjoin_batches_committed_total)" "$(val camjoin_batch_rows_count)"
# one consumer joins an empty group: exactly one rebalance, timed once
assert_eq camjoin_rebalances_total 1 "$(val camjoin_rebalances_total)"
assert_eq "rebalance duration samples" 1 "$(val camjoin_rebalance_duration_seconds_count)"
assert_eq "camjoin_postgres_reconnects_total (no outage yet)" 0 "$(val camjoin_postgres_reconnects_total)"
bytes=$(kcat -b "$KAFKA_BROKERS" -C -t "$TOPIC" -e -q -f '%S\n' | awk '$1 > 0 { s += $1 } END { print s + 0 }')
assert_eq "camjoin_consumed_bytes_total = payload bytes in the topic (kcat)" "$bytes" \
    "$(val camjoin_consumed_bytes_total)"
grep -q '^# TYPE camjoin_kafka_errors_total counter$' "$M" || fail "no camjoin_kafka_errors_total family"

echo "process_* against /proc and ps"
in_range() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }
max_fds=$(awk '/^Max open files/ { print $4 }' "/proc/$pid/limits")
assert_eq process_max_fds "$max_fds" "$(val process_max_fds)"
fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
in_range "$(val process_open_fds)" $((fds - 3)) $((fds + 3)) ||
    fail "process_open_fds $(val process_open_fds), /proc/$pid/fd holds $fds"
start=$(date -d "$(ps -o lstart= -p "$pid")" +%s)
in_range "$(val process_start_time_seconds)" $((start - 1)) $((start + 1)) ||
    fail "process_start_time_seconds $(val process_start_time_seconds), ps says $start"
rss=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$pid/status")
in_range "$(val process_resident_memory_bytes)" $((rss * 8 / 10)) $((rss * 12 / 10)) ||
    fail "process_resident_memory_bytes $(val process_resident_memory_bytes), VmRSS $rss"
cpu=$(awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / t }' "/proc/$pid/stat")
in_range "$(val process_cpu_seconds_total)" "$(awk -v c="$cpu" 'BEGIN { print c - 0.5 }')" "$(awk -v c="$cpu" 'BEGIN { print c + 0.5 }')" ||
    fail "process_cpu_seconds_total $(val process_cpu_seconds_total), /proc/$pid/stat $cpu"
echo "  ok  fds $(val process_open_fds) of $max_fds, RSS $rss, CPU $(val process_cpu_seconds_total) s, started $start"

echo "reference table and build"
cameras=$(awk 'NR > 1 && NF' "$CAMERAS_CSV" | wc -l)
assert_eq camjoin_reference_rows "$cameras" "$(val camjoin_reference_rows)"
loaded=$(val camjoin_reference_loaded_timestamp_seconds)
awk -v a="$loaded" -v s="$t_started" -v e="$scraped_at" 'BEGIN { exit !(a >= s - 1 && a <= e) }' ||
    fail "camjoin_reference_loaded_timestamp_seconds $loaded not within the run ($t_started .. $scraped_at)"
version=$("$CAMJOIN_BIN/camjoin" --version | awk '{ print $2; exit }')
assert_eq "build_info" 1 "$(val "camjoin_build_info{version=\"$version\"}")"

echo "promtool check metrics"
promtool check metrics <"$M" >"$CJ_TMP/promtool.out" 2>&1 || fail "promtool: $(cat "$CJ_TMP/promtool.out")"
[[ ! -s "$CJ_TMP/promtool.out" ]] || fail "promtool lint: $(cat "$CJ_TMP/promtool.out")"
echo "  ok  promtool check metrics: clean ($(grep -c '^# TYPE' "$M") metric families, $(grep -vc '^#' "$M") samples)"

echo "lag while PostgreSQL is down: 900 more messages are fetched, none committed"
declare -A END0
while read -r p end; do END0[$p]=$end; done < <(kafka_end_offsets "$TOPIC")
pg_down
gen metrics2 --topic "$TOPIC" --count 900 --seed 4343 --id-prefix lag
declare -A END1
while read -r p end; do END1[$p]=$end; done < <(kafka_end_offsets "$TOPIC")
scrape_holds() { curl -fsS -m 2 "$URL/metrics" >"$M" 2>/dev/null && awk "$1" "$M"; }
scrape_until() {  # AWK_CONDITION DESCRIPTION: re-scrape until it holds (20 s)
    wait_for -i 0.2 20 -- scrape_holds "$1" || fail "within 20 s: $2 (last scrape in $M)"
}
scrape_until '/^camjoin_postgres_up / { up = $2 } /^camjoin_partition_high_watermark/ { h += $2 }
              END { exit !(up == 0 && h == '"$((sent + 900))"') }' \
    "postgres_up 0 and the watermarks at $((sent + 900))"
for p in "${!END1[@]}"; do
    assert_eq "high watermark of partition $p, PostgreSQL down" "${END1[$p]}" \
        "$(val "camjoin_partition_high_watermark{partition=\"$p\"}")"
    assert_eq "committed offset of partition $p, PostgreSQL down" "${END0[$p]}" \
        "$(val "camjoin_partition_committed_offset{partition=\"$p\"}")"
    assert_eq "lag of partition $p, PostgreSQL down" $((END1[$p] - END0[$p])) \
        "$(val "camjoin_consumer_lag_messages{partition=\"$p\"}")"
done
assert_eq "buffered messages, PostgreSQL down" 900 "$(val camjoin_buffered_messages)"
# lag in seconds: now minus the Kafka timestamp of the last committed message
# (the one at the old end offset - 1, read back with kcat)
for p in "${!END1[@]}"; do
    ts=$(kcat -b "$KAFKA_BROKERS" -C -t "$TOPIC" -p "$p" -o $((END0[$p] - 1)) -c 1 -q -f '%T\n')
    lag_s=$(val "camjoin_consumer_lag_seconds{partition=\"$p\"}")
    now=$(now_s)
    awk -v l="$lag_s" -v ts="$ts" -v now="$now" 'BEGIN { want = now - ts / 1000; exit !(l >= want - 3 && l <= want + 0.1) }' ||
        fail "lag seconds of partition $p: $lag_s, the last committed message was produced at $ts ms (now $now)"
done
echo "  ok  camjoin_consumer_lag_seconds = now - the last committed message's Kafka timestamp, per partition"
assert_eq "/readyz status, PostgreSQL down" 503 "$(code "$URL/readyz")"
assert_eq "/readyz reason" "postgres unavailable" "$(cat "$CJ_TMP/body")"
assert_eq "/healthz status, PostgreSQL down" 200 "$(code "$URL/healthz")"
pg_up
wait_offsets "$TOPIC" "$GROUP" $((sent + 900)) 60 "$pid"
scrape_until '/^camjoin_consumer_lag_messages/ { l += $2 } /^camjoin_postgres_up / { up = $2 }
              END { exit !(l == 0 && up == 1) }' "lag back to 0 after the outage"
assert_eq "rows after the outage" $((valid_new + $(json_get "$CJ_TMP/metrics2.json" valid_new))) \
    "$(val camjoin_rows_committed_total)"
assert_eq "/readyz status after the outage" 200 "$(code "$URL/readyz")"
assert_eq "camjoin_postgres_reconnects_total after one outage" 1 "$(val camjoin_postgres_reconnects_total)"

echo "back-pressure: a lock holds the COPY; the buffer fills; /readyz turns 503 after 1 s"
pg_lock_hold t_metrics_lock
gen metrics3 --topic "$TOPIC" --count 3000 --seed 4444 --id-prefix pause
scrape_until '/^camjoin_partitions_paused / { p = $2 } /^camjoin_postgres_up / { up = $2 }
              /^camjoin_paused_since_timestamp_seconds / { s = $2 }
              END { srand(); now = srand(); exit !(p == 3 && up == 1 && s > 0 && now - s > 1) }' \
    "partitions paused for more than 1 s with PostgreSQL up"
assert_eq "/readyz status, paused > http.ready_max_pause" 503 "$(code "$URL/readyz")"
assert_eq "/readyz reason" "paused by back-pressure longer than http.ready_max_pause" "$(cat "$CJ_TMP/body")"
pg_lock_release t_metrics_lock
wait_offsets "$TOPIC" "$GROUP" $((sent + 900 + 3000)) 60 "$pid"
scrape_until '/^camjoin_partitions_paused / { p = $2 } /^camjoin_consumer_lag_messages/ { l += $2 }
              END { exit !(p == 0 && l == 0) }' "resumed and caught up after the lock"
assert_eq "/readyz status after the lock" 200 "$(code "$URL/readyz")"
assert_eq "rows after all three phases" \
    $((valid_new + $(json_get "$CJ_TMP/metrics2.json" valid_new) + $(json_get "$CJ_TMP/metrics3.json" valid_new))) \
    "$(psql_val "SELECT count(*) FROM camera_events")"

camjoin_stop "$pid"
assert_eq "camjoin exit code after SIGTERM" 0 "$CAMJOIN_RC"
echo "PASS: t_metrics ($sent messages, one scrape checked against the summary, PostgreSQL and kcat)"
