# shellcheck shell=bash
# bench/lib.sh — what bench/run.sh and the peers' runners (bench/peers/*/run.sh)
# measure with, sourced after tests/integration/lib.sh (whose PG_DIR, CJ_TMP,
# CAMJOIN_PIDS and fail it uses):
#   bench_produce TOPIC COUNT MALFORMED_RATIO [GEN_ARGS...]
#       the benchmarks' one backlog workload, pre-produced: seed 7, 5 %
#       duplicates, 1 % unknown cameras (camjoin-gen; summary in
#       $CJ_TMP/produce.json)
#   log_field FILE MSG KEY    logfmt value of KEY in the last line with MSG
#   proc_cpu_s PID            user+system CPU seconds of PID so far
#   proc_rss_kb PID / proc_hwm_kib PID   resident set now / at its peak
#   pg_cpu_start / pg_cpu_stop
#       CPU seconds of the PostgreSQL cluster (every child of the postmaster,
#       backends included) in between. A sampler records each child's
#       utime+stime every 0.25 s (one awk per sample, ~1 % of a core), so a
#       backend that exits is counted up to its last sample: the figure is a
#       lower bound. The sampler is on CAMJOIN_PIDS until pg_cpu_stop, so the
#       harness's EXIT trap stops it on any failure.
#   peer_rollup_trigger
#       keeps camera_events_minute for a peer with a statement-level AFTER
#       INSERT trigger (camjoin_rollup() handles INSERT): the peers do the
#       rollup work camjoin does, as earlier camjoins did it. camjoin adds
#       its batches' groups itself, and drops this trigger when it starts.
#   commit_ts_on
#       track_commit_timestamp = on (restarts the run's PostgreSQL), for
#       commit_latency; once per cluster, before the live runs
#   commit_latency TOPIC TABLE [FROM_MS]
#       one line "p50 p99 p999 max n" (ms, n rows): each row's commit time
#       (pg_xact_commit_timestamp of its xmin) minus its Kafka message's
#       CreateTime, for the event_ids sent once at FROM_MS (epoch ms) or
#       later. The same end-to-end figure for every sink, read from
#       PostgreSQL and Kafka only (ids sent twice are left out: an upsert
#       writes the row again for the second message, a dedup keeps the
#       first). It is the server's commit record, so it is at most a round
#       trip earlier than camjoin's own histogram (COMMIT returned).
#   peer_live PID TOPIC TABLE RATE SECONDS [GEN_ARGS...]
#       a peer's live figure: the peer (PID) consumes TOPIC into TABLE. 200
#       events (ids ready-*) first, until they are all in TABLE (the peer
#       works end to end); then camjoin-gen at RATE events/s for SECONDS
#       (seed 11, 5 % duplicates, 1 % unknown cameras, as the Python
#       runner's live phase), until every new id is in TABLE (180 s at
#       most). Fails unless each id of the manifest is in TABLE exactly
#       once; then sets LIVE_JSON: the achieved rate, the peer's CPU % of one
#       core from the traffic's start to the last row, its RSS then, and
#       commit_latency's percentiles of the traffic.

bench_produce() {  # TOPIC COUNT MALFORMED_RATIO [GEN_ARGS...]
    gen produce --topic "$1" --count "$2" --seed 7 --dup-ratio 0.05 \
        --unknown-camera-ratio 0.01 --malformed-ratio "$3" -X linger.ms=20 "${@:4}"
}
log_field() {  # FILE MSG KEY
    grep -F "$2" "$1" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$3=//p" | tr -d '"'
}
proc_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
proc_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
proc_hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

pg_cpu_start() {
    local pm
    pm=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    [[ -r "/proc/$pm/task/$pm/children" ]] || fail "/proc/PID/task/PID/children is missing"
    (
        while :; do
            # shellcheck disable=SC2046
            awk '{ print FILENAME, $14 + $15 }' $(sed -E 's|([0-9]+)|/proc/\1/stat|g' \
                "/proc/$pm/task/$pm/children") 2>/dev/null
            sleep 0.25
        done
    ) >"$CJ_TMP/pgcpu.txt" &
    PG_CPU_SAMPLER=$!
    CAMJOIN_PIDS+=("$PG_CPU_SAMPLER")
    sleep 0.5
}
pg_cpu_stop() {  # prints the CPU seconds since pg_cpu_start
    kill "$PG_CPU_SAMPLER" 2>/dev/null || true
    wait "$PG_CPU_SAMPLER" 2>/dev/null || true
    forget_pid "$PG_CPU_SAMPLER"
    awk -v hz="$(getconf CLK_TCK)" '{ if (!($1 in first)) first[$1] = $2; last[$1] = $2 }
         END { for (p in last) s += last[p] - first[p]; printf "%.2f\n", s / hz }' "$CJ_TMP/pgcpu.txt"
}

peer_rollup_trigger() {
    psql_val "CREATE TRIGGER camjoin_rollup_insert AFTER INSERT ON camera_events
              REFERENCING NEW TABLE AS camjoin_new
              FOR EACH STATEMENT EXECUTE FUNCTION camjoin_rollup()" >/dev/null
}

commit_ts_on() {
    psql_val "ALTER SYSTEM SET track_commit_timestamp = on" >/dev/null
    pg_restart
    [[ $(psql_val "SHOW track_commit_timestamp") == on ]] || fail "track_commit_timestamp is not on"
}
commit_latency() {  # TOPIC TABLE [FROM_MS]
    kcat -C -b "$KAFKA_BROKERS" -t "$1" -o beginning -e -q -f '%k\t%T\n' >"$CJ_TMP/kafka-ts.tsv" ||
        fail "kcat could not read $1's timestamps"
    psql -XAtq -v ON_ERROR_STOP=1 -F ' ' <<SQL || fail "commit_latency: the query failed"
CREATE TEMP TABLE kafka_ts (event_id text, ts_ms bigint);
\copy kafka_ts FROM '$CJ_TMP/kafka-ts.tsv'
SELECT round(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_disc(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_disc(0.999) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(max(ms)::numeric, 2), count(*)
  FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(e.xmin)) * 1000 - k.ts_ms AS ms
          FROM $2 e
          JOIN (SELECT event_id, min(ts_ms) AS ts_ms FROM kafka_ts
                 GROUP BY event_id HAVING count(*) = 1) k USING (event_id)
         WHERE k.ts_ms >= ${3:-0}) x;
SQL
}

_rows_in() { LIVE_ROWS=$(psql_val "SELECT count(*) FROM $1 WHERE event_id LIKE '$2%'"); ((LIVE_ROWS >= $3)); }
peer_live() {  # PID TOPIC TABLE RATE SECONDS [GEN_ARGS...]
    local pid=$1 topic=$2 table=$3 rate=$4 secs=$5 rc=0 ready valid t0 t0_ms t1 cpu0 cpu1 rss
    shift 5
    gen produce-ready --topic "$topic" --count 200 --seed 5 --id-prefix ready "$@"
    ready=$(json_get "$CJ_TMP/produce-ready.json" valid_new)
    wait_for -i 0.1 -p "$pid" 180 -- _rows_in "$table" ready- "$ready" || rc=$?
    ((rc != 2)) || fail "the peer exited before its first $ready rows"
    ((rc == 0)) || fail "the peer wrote ${LIVE_ROWS:-?} of its first $ready rows within 180 s"
    sleep 2  # past its first batches' commits
    cpu0=$(proc_cpu_s "$pid") t0=$(now_s) t0_ms=$(date +%s%3N)
    gen_start live --topic "$topic" --rate "$rate" --duration "$secs" --seed 11 --id-prefix live \
        --dup-ratio 0.05 --unknown-camera-ratio 0.01 --manifest "$CJ_TMP/live.manifest.csv" "$@"
    gen_wait live
    valid=$(json_get "$CJ_TMP/live.json" valid_new)
    rc=0
    wait_for -i 0.05 -p "$pid" 180 -- _rows_in "$table" live- "$valid" || rc=$?
    ((rc != 2)) || fail "the peer exited during the live traffic"
    ((rc == 0)) || fail "the peer wrote ${LIVE_ROWS:-?} of $valid live rows within 180 s"
    t1=$(now_s) cpu1=$(proc_cpu_s "$pid") rss=$(proc_rss_kb "$pid")
    load_manifest "$CJ_TMP/live.manifest.csv"
    assert_eq "live: valid ids in the manifest, not in $table (lost)" 0 \
        "$(psql_val "SELECT count(*) FROM (SELECT event_id FROM manifest WHERE kind = 'valid'
                     EXCEPT SELECT event_id FROM $table) x")"
    assert_eq "live: rows = distinct ids = valid_new" "$valid $valid" \
        "$(psql_val "SELECT count(*) || ' ' || count(DISTINCT event_id) FROM $table WHERE event_id LIKE 'live-%'")"
    local lat
    lat=$(commit_latency "$topic" "$table" "$t0_ms")
    LIVE_JSON=$(jq -n --arg a "$(json_get "$CJ_TMP/live.json" rate)" --arg n "$(json_get "$CJ_TMP/live.json" sent)" \
        --arg cpu "$(echo "($cpu1 - $cpu0) * 100 / ($t1 - $t0)" | bc -l)" --arg rss "$rss" --arg lat "$lat" \
        '($lat | split(" ") | map(tonumber)) as $l |
         {rate: ($a|tonumber), messages: ($n|tonumber), cpu_percent_of_one_core: ($cpu|tonumber),
          rss_kib: ($rss|tonumber), p50_ms: $l[0], p99_ms: $l[1], p999_ms: $l[2], max_ms: $l[3],
          rows_measured: $l[4], latency: "commit_latency (bench/lib.sh): commit time - Kafka CreateTime"}')
}
