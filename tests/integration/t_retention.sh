#!/usr/bin/env bash
# t_retention — partition upkeep, retention and archive, in the daemon.
#
# The events are ours: 300 for the day 5 days ago and 200 for 3 days ago,
# written as JSON lines by SQL (so the expectations come from the same
# table, not from camjoin) and produced with kcat, keyed by event_id; plus
# camjoin-gen events stamped now (today, UTC).
#
#  1. camjoin runs with retention off (retention.interval=24h: its first
#     full run is over before anything is produced): today .. today+2 have
#     partitions, the old days' rows land in the default partition.
#     Snapshot of those rows: table `snap`.
#  2. camjoin restarts with retention.days=2, retention.interval=1s and
#     archive.dir, while more events of today arrive: the old days get
#     partitions (rows moved out of the default one), are archived and
#     dropped. Checked: partitions, the default partition empty, old rows
#     gone and today's all there, the archive files (gzip CSV row count
#     and header, rows = snapshot = our inputs as sets, sorted by event_ts,
#     event_id), the manifests (jq; rows, bytes, xxh64 against xxhsum,
#     columns, event_ts range, version), the modes (0640 files, 0750
#     directories: nothing for others), the rollups kept (T_minute),
#     the /metrics counters against numbers computed from the database
#     before the run, the log line. Then more runs with nothing to do
#     change nothing: files, partitions, counters.
#  2c. scripts/history/history.py (DuckDB from PyPI) reads the archives and
#     the live table as one view: events per UTC day (all, archived) and the
#     ids of each source against what we sent and what T holds.
#  3. archive.dir under a regular file (unwritable even for root) and 100
#     events of 4 days ago: the partition is made but NOT dropped, the
#     failure is counted and logged, and ingestion goes on.
#  4. a plain (unpartitioned) events table: one warning, no failure.
#  2b. 10 late events of 5 days ago: the day is made, archived and dropped
#     again, into new files (.1, ...): the first archive is not touched.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen
command -v xxhsum >/dev/null || fail "xxhsum is needed (Debian package xxhash)"
command -v curl >/dev/null || fail "curl is needed"
# psql here reads and writes UTC; camjoin gets a far-off zone (UTC+12:45 or
# +13:45): upkeep must not depend on the session's TimeZone.
export PGTZ=UTC
CJ_TZ=Pacific/Chatham

TOPIC=retention-events GROUP=retention-it PARTS=2 T=camera_events
umask 022 # the archive modes below are checked against it

# The test reasons in UTC days: do not straddle midnight.
left=$((86400 - $(date -u +%s) % 86400))
if ((left < 300)); then
    log "waiting ${left} s for the UTC day to turn"
    sleep $((left + 5))
fi
TODAY=$(date -u +%F)
day() { date -u -d "$TODAY $1 days" +%F; }
ymd() { tr -d - <<<"$1"; }
ym() { date -u -d "$1" +%Y/%m; }
D5=$(day -5) D4=$(day -4) D3=$(day -3) D2=$(day -2)
T0=$(date -u +%s)

pg_start
kafka_start "$TOPIC" "$PARTS"
load_cameras

grep -q camjoin_ensure_partition "$CAMJOIN_SRC/src/sink_schema.c" ||
    fail "src/sink_schema.c has no camjoin_ensure_partition: the partitioned schema is missing"

# ------------------------------------------------------------ helpers
# Our old-day events, one table: every 10th camera unknown (a join miss), a
# fifth of the timestamps as epoch ms, an extra key (attributes) on every
# 7th. `payload` is exactly what is produced; `tag` says which batch.
psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE TABLE sent_old AS
WITH d(day, n, tag) AS (VALUES ('$D5'::date, 300, 'old'), ('$D3'::date, 200, 'old'),
                               ('$D4'::date, 100, 'old'), ('$D5'::date, 10, 'late')),
cams AS (SELECT camera_id, row_number() OVER (ORDER BY camera_id) - 1 AS k,
                count(*) OVER () AS ncam FROM ref_cameras),
ev AS (SELECT d.day, d.tag, i, d.tag || '-' || to_char(d.day, 'YYYYMMDD') || '-' || i AS event_id,
              (d.day::timestamp AT TIME ZONE 'UTC')
                + (i * (86399000 / d.n) + i % 1000) * interval '1 ms' AS event_ts
       FROM d CROSS JOIN generate_series(0, d.n - 1) i)
SELECT ev.day, ev.tag, ev.event_id, ev.event_ts,
       CASE WHEN i % 10 = 0 THEN 'unknown-cam-' || i % 3
            ELSE (SELECT camera_id FROM cams WHERE k = i % ncam) END AS camera_id,
       (jsonb_build_object('event_id', ev.event_id,
          'camera_id', CASE WHEN i % 10 = 0 THEN 'unknown-cam-' || i % 3
                            ELSE (SELECT camera_id FROM cams WHERE k = i % ncam) END,
          'event_ts', CASE WHEN i % 5 = 0
                           THEN to_jsonb((extract(epoch FROM ev.event_ts) * 1000)::bigint)
                           ELSE to_jsonb(to_char(ev.event_ts AT TIME ZONE 'UTC',
                                                 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) END,
          'event_type', (ARRAY['person', 'vehicle', 'animal'])[1 + i % 3],
          'confidence', round((i % 100) / 100.0, 2),
          'object_count', i % 7)
        || CASE WHEN i % 7 = 0 THEN jsonb_build_object('note', 'old ' || i) ELSE '{}' END)::text
         AS payload
FROM ev;
SQL
produce_old() {  # DAY [TAG]: kcat -P of those events, key = event_id
    psql_val "SELECT event_id || E'\\t' || payload FROM sent_old WHERE day = '$1'
              AND tag = '${2:-old}' ORDER BY event_id" >"$CJ_TMP/${2:-old}-$1.txt"
    kcat -P -b "$KAFKA_BROKERS" -t "$TOPIC" -K $'\t' <"$CJ_TMP/${2:-old}-$1.txt" 2>"$CJ_TMP/kcat-p.err" ||
        fail "kcat -P: $(cat "$CJ_TMP/kcat-p.err")"
}
sent_for() { psql_val "SELECT count(*) FROM sent_old WHERE day = '$1' AND tag = 'old'"; }

# The daily partitions of T as a sorted, space-separated list of names.
daily_parts() {
    psql_val "SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_inherits i
              JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = '$T'::regclass AND c.relname ~ '_p[0-9]{8}$'"
}
default_rows() { psql_val "SELECT count(*) FROM ${T}_default"; }

# wait_metric PORT NAME MIN TIMEOUT PID: until the counter is at least MIN
metric_at_least() {  # PORT NAME MIN: sets the caller's got
    got=$(camjoin_metric "$1" "$2")
    [[ -n "$got" ]] && ((got >= $3))
}
wait_metric() {
    local port=$1 name=$2 min=$3 timeout=$4 pid=$5 got="" rc=0
    wait_for -i 0.2 -p "$pid" "$timeout" -- metric_at_least "$port" "$name" "$min" || rc=$?
    ((rc != 2)) || fail "camjoin exited while waiting for $name >= $min"
    ((rc == 0)) || fail "$name reached '$got' within ${timeout} s, expected at least $min"
}
scrape() { curl -s -m 2 "http://127.0.0.1:$1/metrics" >"$2" || fail "no /metrics on port $1"; }
mval() { awk -v n="$2" '$1 == n { print $2; found = 1 } END { if (!found) print "absent" }' "$1"; }

UPKEEP_METRICS=(camjoin_partitions_created_total camjoin_partition_rows_moved_total
    camjoin_partitions_dropped_total camjoin_archived_rows_total camjoin_upkeep_failures_total)

camjoin_args "$TOPIC" "$GROUP"

# ------------------------------------------------ 1. ingest, no retention
echo "phase 1: ingest with retention off"
PGTZ=$CJ_TZ camjoin_start p1 "${CJ_ARGS[@]}" --set postgres.partitions_ahead=2 --set retention.interval=24h
pid=$CAMJOIN_PID
# the startup step and the first full run, both before anything is produced
wait_log_count "$CJ_TMP/p1.log" 'msg="partition upkeep"' 2 30 "$pid"
produce_old "$D5"
produce_old "$D3"
gen today1 --topic "$TOPIC" --count 2000 --seed 61 --dup-ratio 0 --malformed-ratio 0 \
    --unknown-camera-ratio 0.02
sent1=$(json_get "$CJ_TMP/today1.json" sent)
new1=$(json_get "$CJ_TMP/today1.json" valid_new)
total=$((300 + 200 + sent1))
wait_offsets "$TOPIC" "$GROUP" "$total" 60 "$pid"
camjoin_stop "$pid"
assert_eq "phase 1 exit code" 0 "$CAMJOIN_RC"

assert_eq "T is partitioned (relkind)" p "$(psql_val "SELECT relkind FROM pg_class WHERE oid = '$T'::regclass")"
want_ahead="${T}_p$(ymd "$TODAY") ${T}_p$(ymd "$(day 1)") ${T}_p$(ymd "$(day 2)")"
assert_eq "daily partitions after phase 1: today .. today+2" "$want_ahead" "$(daily_parts)"
assert_eq "rows of $D5 in the default partition" 300 \
    "$(psql_val "SELECT count(*) FROM ${T}_default WHERE event_ts::date = '$D5'")"
assert_eq "rows of $D3 in the default partition" 200 \
    "$(psql_val "SELECT count(*) FROM ${T}_default WHERE event_ts::date = '$D3'")"
assert_eq "rows in the default partition" 500 "$(default_rows)"
assert_eq "today's rows = the generator's valid_new" "$new1" \
    "$(psql_val "SELECT count(*) FROM $T WHERE event_ts >= '$TODAY'")"

# Snapshot, and the expectations of phase 2, from the database as it is now.
psql_val "CREATE TABLE snap AS SELECT * FROM $T WHERE event_ts < '$D2'" >/dev/null
assert_eq "snapshot event_ids = the ids we sent for $D5 and $D3" 0 \
    "$(psql_val "SELECT count(*) FROM ((SELECT event_id, event_ts, camera_id FROM snap
                 EXCEPT SELECT event_id, event_ts, camera_id FROM sent_old WHERE day IN ('$D5', '$D3') AND tag = 'old')
                 UNION ALL (SELECT event_id, event_ts, camera_id FROM sent_old WHERE day IN ('$D5', '$D3') AND tag = 'old'
                 EXCEPT SELECT event_id, event_ts, camera_id FROM snap)) x")"
exp_created=$(psql_val "SELECT (SELECT count(DISTINCT (event_ts AT TIME ZONE 'UTC')::date)
                                FROM ${T}_default)
                        + (SELECT count(*) FROM generate_series(0, 2) g
                           WHERE to_regclass('${T}_p' || to_char('$TODAY'::date + g, 'YYYYMMDD')) IS NULL)")
exp_moved=$(default_rows)
exp_dropped=$(psql_val "SELECT count(DISTINCT (event_ts AT TIME ZONE 'UTC')::date) FROM $T
                        WHERE event_ts < '$D2'")
exp_archived=$(psql_val "SELECT count(*) FROM $T WHERE event_ts < '$D2'")
log "expected in phase 2: created=$exp_created moved=$exp_moved dropped=$exp_dropped archived=$exp_archived"

# ------------------------------------------------ 2. retention with archive
echo "phase 2: retention.days=2 with archive.dir, every second"
ARCH=$CJ_TMP/archive
PORT=$(free_port)
t_p2=$(date +%s)
PGTZ=$CJ_TZ camjoin_start p2 "${CJ_ARGS[@]}" --set postgres.partitions_ahead=2 --set retention.days=2 \
    --set retention.interval=1s --set archive.dir="$ARCH" --http "$PORT"
pid=$CAMJOIN_PID
gen today2 --topic "$TOPIC" --count 500 --seed 62 --dup-ratio 0 --malformed-ratio 0
sent2=$(json_get "$CJ_TMP/today2.json" sent)
new2=$(json_get "$CJ_TMP/today2.json" valid_new)
total=$((total + sent2))
wait_offsets "$TOPIC" "$GROUP" "$total" 60 "$pid"
wait_metric "$PORT" camjoin_partitions_dropped_total "$exp_dropped" 60 "$pid"
scrape "$PORT" "$CJ_TMP/m1.txt"

echo "partitions and rows"
assert_eq "daily partitions: today .. today+2 only" "$want_ahead" "$(daily_parts)"
assert_eq "the default partition is empty" 0 "$(default_rows)"
assert_eq "rows before $D2 left in $T" 0 "$(psql_val "SELECT count(*) FROM $T WHERE event_ts < '$D2'")"
assert_eq "today's rows = valid_new of both generator runs" $((new1 + new2)) \
    "$(psql_val "SELECT count(*) FROM $T WHERE event_ts >= '$TODAY'")"

echo "archive files"
want_files=$(for d in "$D3" "$D5"; do
    printf '%s/%s/%s/%s_p%s.csv.gz\n%s/%s/%s/%s_p%s.manifest.json\n' "$ARCH" "$T" "$(ym "$d")" \
        "$T" "$(ymd "$d")" "$ARCH" "$T" "$(ym "$d")" "$T" "$(ymd "$d")"
done | sort)
assert_eq "files under archive.dir (no .tmp left)" "$(tr '\n' ' ' <<<"$want_files")" \
    "$(find "$ARCH" -type f | sort | tr '\n' ' ')"
# under this test's umask 022: nothing for others (the unit's UMask=0077
# leaves the group out too)
assert_eq "modes under archive.dir: files / directories below it" "640 / 750" \
    "$(find "$ARCH" -type f -printf '%m\n' | sort -u | paste -sd' ') / $(find "$ARCH" -mindepth 1 -type d -printf '%m\n' | sort -u | paste -sd' ')"
header=$(psql_val "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                   WHERE attrelid = '$T'::regclass AND attnum > 0 AND NOT attisdropped")
version=$("$CAMJOIN_BIN/camjoin" --version | awk '{ print $2; exit }')
psql_val "CREATE TABLE arch (LIKE $T)" >/dev/null
for d in "$D5" "$D3"; do
    f=$ARCH/$T/$(ym "$d")/${T}_p$(ymd "$d").csv.gz
    m=${f%.csv.gz}.manifest.json
    n=$(sent_for "$d")
    gzip -t "$f" || fail "$f is not a valid gzip file"
    assert_eq "$d: CSV header = the table's columns" "$header" "$(zcat "$f" | head -n 1)"
    assert_eq "$d: zcat | tail -n +2 | wc -l = events sent" "$n" "$(zcat "$f" | tail -n +2 | wc -l)"
    zcat "$f" | tail -n +2 | LC_ALL=C sort -c -t, -k2,2 -k1,1 ||
        fail "$d: rows not ordered by event_ts, event_id"
    zcat "$f" | psql -XAtq -v ON_ERROR_STOP=1 -c "\\copy arch FROM STDIN (FORMAT csv, HEADER)"
    jq -e . "$m" >/dev/null || fail "$m is not JSON"
    assert_eq "$d: manifest rows" "$n" "$(jq -r .rows "$m")"
    assert_eq "$d: manifest bytes = file size" "$(stat -c %s "$f")" "$(jq -r .bytes "$m")"
    assert_eq "$d: manifest xxh64 = xxhsum -H1" "$(xxhsum -H1 "$f" 2>/dev/null | awk '{ print $1 }')" \
        "$(jq -r .xxh64 "$m")"
    assert_eq "$d: manifest table, partition, day, file" "$T ${T}_p$(ymd "$d") $d $(basename "$f")" \
        "$(jq -r '"\(.table) \(.partition) \(.day) \(.file)"' "$m")"
    assert_eq "$d: manifest columns" "$header" "$(jq -r '.columns | join(",")' "$m")"
    assert_eq "$d: manifest event_ts range = what we sent" \
        "$(psql_val "SELECT to_char(min(event_ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                     || ' ' || to_char(max(event_ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                     FROM sent_old WHERE day = '$d' AND tag = 'old'")" \
        "$(jq -r '"\(.min_event_ts) \(.max_event_ts)"' "$m")"
    assert_eq "$d: manifest camjoin_version" "$version" "$(jq -r .camjoin_version "$m")"
    created=$(date -u -d "$(jq -r .created_at "$m")" +%s)
    ((created >= t_p2 && created <= $(date +%s))) || fail "$d: created_at $(jq -r .created_at "$m") not in this run"
done
assert_eq "archived rows = snapshot (as sets, every column)" "0 0 500" \
    "$(psql_val "SELECT (SELECT count(*) FROM (SELECT * FROM snap EXCEPT ALL SELECT * FROM arch) a)
                 || ' ' || (SELECT count(*) FROM (SELECT * FROM arch EXCEPT ALL SELECT * FROM snap) b)
                 || ' ' || (SELECT count(*) FROM arch)")"
assert_eq "archived rows = our inputs (id, event_ts, camera, type, confidence, count)" 0 \
    "$(psql_val "SELECT count(*) FROM arch a FULL JOIN (SELECT * FROM sent_old WHERE day IN ('$D5', '$D3') AND tag = 'old') s
                 USING (event_id)
                 WHERE a.event_ts IS DISTINCT FROM s.event_ts OR a.camera_id IS DISTINCT FROM s.camera_id
                    OR a.event_type IS DISTINCT FROM s.payload::jsonb->>'event_type'
                    OR a.confidence IS DISTINCT FROM (s.payload::jsonb->>'confidence')::real
                    OR a.object_count IS DISTINCT FROM (s.payload::jsonb->>'object_count')::int")"

echo "rollups keep the history (${T}_minute)"
for d in "$D5" "$D3"; do
    assert_eq "$d: sum(events) in ${T}_minute = events sent" "$(sent_for "$d")" \
        "$(psql_val "SELECT coalesce(sum(events), 0) FROM ${T}_minute
                     WHERE minute >= '$d' AND minute < '$d'::date + 1")"
done
assert_eq "join misses of $D5 in ${T}_minute" \
    "$(psql_val "SELECT count(*) FROM sent_old WHERE day = '$D5' AND tag = 'old'
                 AND camera_id LIKE 'unknown-cam-%'")" \
    "$(psql_val "SELECT coalesce(sum(events), 0) FROM ${T}_minute
                 WHERE minute >= '$D5' AND minute < '$D5'::date + 1 AND site_id IS NULL")"

echo "metrics (one scrape) against the database before the run"
assert_eq camjoin_partitions_created_total "$exp_created" "$(mval "$CJ_TMP/m1.txt" camjoin_partitions_created_total)"
assert_eq camjoin_partition_rows_moved_total "$exp_moved" "$(mval "$CJ_TMP/m1.txt" camjoin_partition_rows_moved_total)"
assert_eq camjoin_partitions_dropped_total "$exp_dropped" "$(mval "$CJ_TMP/m1.txt" camjoin_partitions_dropped_total)"
assert_eq camjoin_archived_rows_total "$exp_archived" "$(mval "$CJ_TMP/m1.txt" camjoin_archived_rows_total)"
assert_eq camjoin_upkeep_failures_total 0 "$(mval "$CJ_TMP/m1.txt" camjoin_upkeep_failures_total)"
runs=$(mval "$CJ_TMP/m1.txt" camjoin_upkeep_runs_total)
((runs >= 2)) || fail "camjoin_upkeep_runs_total $runs, expected at least 2 (startup + one full run)"
last=$(mval "$CJ_TMP/m1.txt" camjoin_upkeep_last_success_timestamp_seconds)
awk -v l="$last" -v a="$t_p2" -v b="$(date +%s)" 'BEGIN { exit !(l >= a && l <= b + 1) }' ||
    fail "camjoin_upkeep_last_success_timestamp_seconds $last not within this run"
echo "  ok  runs=$runs last_success=$last"
assert_eq "log: one run did all of it" 1 \
    "$(grep -c "msg=\"partition upkeep\" created=$exp_created moved_rows=$exp_moved dropped=$exp_dropped archived_rows=$exp_archived " "$CJ_TMP/p2.log")"

echo "runs with nothing to do change nothing"
snap_files=$(find "$ARCH" -type f -exec xxhsum -H1 {} + 2>/dev/null | sort)
before=$(camjoin_metric "$PORT" "${UPKEEP_METRICS[@]}" | tr '\n' ' ')
wait_metric "$PORT" camjoin_upkeep_runs_total $((runs + 2)) 30 "$pid"
assert_eq "counters after two more runs" "$before" "$(camjoin_metric "$PORT" "${UPKEEP_METRICS[@]}" | tr '\n' ' ')"
assert_eq "archive files and their hashes" "$(tr '\n' ' ' <<<"$snap_files")" \
    "$(find "$ARCH" -type f -exec xxhsum -H1 {} + 2>/dev/null | sort | tr '\n' ' ')"
assert_eq "daily partitions" "$want_ahead" "$(daily_parts)"
idle=$(grep -c 'msg="partition upkeep" created=0 moved_rows=0 dropped=0 archived_rows=0 ' "$CJ_TMP/p2.log" || true)
((idle >= 2)) || fail "p2.log: $idle lines of runs that did nothing, expected at least 2"
echo "  ok  log: $idle runs with created=0 moved_rows=0 dropped=0 archived_rows=0"

echo "late rows of an archived day: archived again, into new files"
read -r c0 m0 d0 a0 f0 <<<"$(camjoin_metric "$PORT" "${UPKEEP_METRICS[@]}" | tr '\n' ' ')"
produce_old "$D5" late
total=$((total + 10))
wait_offsets "$TOPIC" "$GROUP" "$total" 60 "$pid"
wait_metric "$PORT" camjoin_archived_rows_total $((a0 + 10)) 60 "$pid"
read -r c1 m1 d1 a1 f1 <<<"$(camjoin_metric "$PORT" "${UPKEEP_METRICS[@]}" | tr '\n' ' ')"
dir5=$ARCH/$T/$(ym "$D5")
late_files=$(find "$dir5" -name "${T}_p$(ymd "$D5").[0-9]*.csv.gz" | sort)
nlate=$(grep -c . <<<"$late_files" || true)
# the 10 rows may be committed in more than one transaction, and a run may
# come between them: one new copy per run that found some
((nlate >= 1 && nlate <= 10)) || fail "$nlate new archive files for $D5, expected 1..10"
assert_eq "new files are .1 .. .$nlate, each with its manifest" \
    "$(for ((i = 1; i <= nlate; i++)); do printf '%s ' "$dir5/${T}_p$(ymd "$D5").$i.csv.gz" \
        "$dir5/${T}_p$(ymd "$D5").$i.manifest.json"; done)" \
    "$(find "$dir5" -name "${T}_p$(ymd "$D5").[0-9]*" | sort -V | tr '\n' ' ')"
assert_eq "the first archive is untouched" "$(grep "${T}_p$(ymd "$D5")\.[cm]" <<<"$snap_files" | tr '\n' ' ')" \
    "$(xxhsum -H1 "$dir5/${T}_p$(ymd "$D5").csv.gz" "$dir5/${T}_p$(ymd "$D5").manifest.json" 2>/dev/null |
       sort | tr '\n' ' ')"
psql_val "TRUNCATE arch" >/dev/null
rows_in_manifests=0
while read -r f; do
    zcat "$f" | psql -XAtq -v ON_ERROR_STOP=1 -c "\\copy arch FROM STDIN (FORMAT csv, HEADER)"
    rows_in_manifests=$((rows_in_manifests + $(jq -r .rows "${f%.csv.gz}.manifest.json")))
done <<<"$late_files"
assert_eq "late rows in the new files = the late events we sent" "10 0" \
    "$(psql_val "SELECT count(*) || ' ' || (SELECT count(*) FROM (
                   (SELECT event_id, event_ts FROM arch EXCEPT SELECT event_id, event_ts FROM sent_old WHERE tag = 'late')
                   UNION ALL (SELECT event_id, event_ts FROM sent_old WHERE tag = 'late'
                              EXCEPT SELECT event_id, event_ts FROM arch)) x) FROM arch")"
assert_eq "rows in their manifests" 10 "$rows_in_manifests"
assert_eq "counters moved by: created, moved, dropped, archived, failures" "$nlate 10 $nlate 10 0" \
    "$((c1 - c0)) $((m1 - m0)) $((d1 - d0)) $((a1 - a0)) $((f1 - f0))"
assert_eq "rows before $D2 left in $T" 0 "$(psql_val "SELECT count(*) FROM $T WHERE event_ts < '$D2'")"
assert_eq "the default partition is empty" 0 "$(default_rows)"
camjoin_stop "$pid"
assert_eq "phase 2 exit code" 0 "$CAMJOIN_RC"

echo "history: the archives and the live table in one query (scripts/history, DuckDB)"
py_venv "$CJ_CACHE/history-venv" "$CAMJOIN_SRC/scripts/history/requirements.txt"
hist() {  # SQL: its result as CSV lines without the header
    "$PY_VENV/bin/python" "$CAMJOIN_SRC/scripts/history/history.py" --archive "$ARCH" \
        --pg "$CAMJOIN_PG_URI" --table "$T" --sql "$1" 2>"$CJ_TMP/history.err" | tail -n +2 ||
        fail "history.py: $(cat "$CJ_TMP/history.err")"
}
# archived: every old event sent so far (the D4 ones come in phase 3); live: T
assert_eq "events per UTC day: day,all,from the archives" \
    "$(psql_val "SELECT string_agg(day || ',' || n || ',' || a, ' ' ORDER BY day) FROM
                 (SELECT day, sum(n) n, sum(a) a FROM
                    (SELECT day, count(*) n, count(*) a FROM sent_old WHERE day <> '$D4' GROUP BY 1
                     UNION ALL SELECT (event_ts AT TIME ZONE 'UTC')::date, count(*), 0 FROM $T GROUP BY 1) x
                  GROUP BY 1) y")" \
    "$(hist "SELECT CAST(timezone('UTC', event_ts) AS DATE), count(*),
                    count(*) FILTER (WHERE source = 'archive') FROM events GROUP BY 1 ORDER BY 1" | paste -sd' ')"
assert_eq "the archives' ids (md5 of the sorted list) = the old events sent" \
    "$(psql_val "SELECT md5(string_agg(event_id, ',' ORDER BY event_id)) FROM sent_old WHERE day <> '$D4'")" \
    "$(hist "SELECT md5(string_agg(event_id, ',' ORDER BY event_id)) FROM events WHERE source = 'archive'")"
assert_eq "the live ids (md5 of the sorted list) = $T's" \
    "$(psql_val "SELECT md5(string_agg(event_id, ',' ORDER BY event_id)) FROM $T")" \
    "$(hist "SELECT md5(string_agg(event_id, ',' ORDER BY event_id)) FROM events WHERE source = 'live'")"

# ----------------------------------------- 3. archive.dir cannot be written
echo "phase 3: archive.dir unusable (a path through a regular file)"
: >"$CJ_TMP/notadir"
PORT=$(free_port)
PGTZ=$CJ_TZ camjoin_start p3 "${CJ_ARGS[@]}" --set postgres.partitions_ahead=2 --set retention.days=2 \
    --set retention.interval=1s --set archive.dir="$CJ_TMP/notadir/archive" --http "$PORT"
pid=$CAMJOIN_PID
wait_metric "$PORT" camjoin_upkeep_runs_total 2 30 "$pid"
produce_old "$D4"
wait_metric "$PORT" camjoin_upkeep_failures_total 2 60 "$pid"
gen today3 --topic "$TOPIC" --count 300 --seed 63 --dup-ratio 0 --malformed-ratio 0
new3=$(json_get "$CJ_TMP/today3.json" valid_new)
total=$((total + 100 + $(json_get "$CJ_TMP/today3.json" sent)))
wait_offsets "$TOPIC" "$GROUP" "$total" 60 "$pid"
scrape "$PORT" "$CJ_TMP/m3.txt"
assert_eq "partition of $D4 made and kept, with its rows" "${T}_p$(ymd "$D4") 100" \
    "$(psql_val "SELECT c.relname || ' ' || (SELECT count(*) FROM $T WHERE event_ts >= '$D4'
                   AND event_ts < '$D4'::date + 1) FROM pg_class c WHERE c.relname = '${T}_p$(ymd "$D4")'")"
assert_eq "the default partition is empty" 0 "$(default_rows)"
assert_eq "camjoin_partitions_created_total" 1 "$(mval "$CJ_TMP/m3.txt" camjoin_partitions_created_total)"
# rows committed after the run that made the partition go straight into it:
# between 1 and 100 were moved
moved=$(mval "$CJ_TMP/m3.txt" camjoin_partition_rows_moved_total)
((moved >= 1 && moved <= 100)) || fail "camjoin_partition_rows_moved_total $moved, expected 1..100"
echo "  ok  camjoin_partition_rows_moved_total $moved (of 100)"
assert_eq "camjoin_partitions_dropped_total" 0 "$(mval "$CJ_TMP/m3.txt" camjoin_partitions_dropped_total)"
assert_eq "camjoin_archived_rows_total" 0 "$(mval "$CJ_TMP/m3.txt" camjoin_archived_rows_total)"
fails=$(mval "$CJ_TMP/m3.txt" camjoin_upkeep_failures_total)
((fails >= 2)) || fail "camjoin_upkeep_failures_total $fails, expected at least 2"
echo "  ok  camjoin_upkeep_failures_total $fails"
grep -q "level=warn msg=\"partition upkeep failed; retried next interval\" error=\"archive: cannot use $CJ_TMP/notadir/archive/$T/$(ym "$D4"): Not a directory\"" \
    "$CJ_TMP/p3.log" || fail "no warning naming the unusable archive directory in p3.log"
echo "  ok  warning logged: archive: cannot use .../notadir/...: Not a directory"
assert_eq "ingestion went on: today's rows" $((new1 + new2 + new3)) \
    "$(psql_val "SELECT count(*) FROM $T WHERE event_ts >= '$TODAY'")"
camjoin_stop "$pid"
assert_eq "phase 3 exit code" 0 "$CAMJOIN_RC"

# ----------------------------------------------- 4. an unpartitioned table
echo "phase 4: a plain events table"
psql_val "CREATE TABLE plain_events (LIKE $T INCLUDING DEFAULTS, PRIMARY KEY (event_id, event_ts));
          CREATE INDEX plain_events_ingested_at_idx ON plain_events (ingested_at)" >/dev/null
PORT=$(free_port)
PGTZ=$CJ_TZ camjoin_start p4 --brokers "$KAFKA_BROKERS" --topic "$TOPIC" --group plain-it --pg "$CAMJOIN_PG_URI" \
    --reference "$CAMERAS_CSV" -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
    --table plain_events --set retention.days=2 --set retention.interval=1s \
    --set archive.dir="$CJ_TMP/archive4" --http "$PORT"
pid=$CAMJOIN_PID
wait_metric "$PORT" camjoin_upkeep_runs_total 4 30 "$pid"
scrape "$PORT" "$CJ_TMP/m4.txt"
assert_eq "relkind of plain_events" r "$(psql_val "SELECT relkind FROM pg_class WHERE oid = 'plain_events'::regclass")"
assert_eq "\"not partitioned\" warnings (once)" 1 "$(grep -c 'msg="events table is not partitioned' "$CJ_TMP/p4.log")"
for mtr in camjoin_upkeep_failures_total camjoin_partitions_created_total camjoin_partitions_dropped_total; do
    assert_eq "$mtr" 0 "$(mval "$CJ_TMP/m4.txt" "$mtr")"
done
assert_eq "no archive written" no "$([[ -e "$CJ_TMP/archive4" ]] && echo yes || echo no)"
camjoin_stop "$pid"
assert_eq "phase 4 exit code" 0 "$CAMJOIN_RC"

echo "FIGURES: archived_days=2 archived_rows=$exp_archived moved_rows=$exp_moved late_copies=$nlate today_rows=$((new1 + new2 + new3)) elapsed_s=$(($(date -u +%s) - T0))"
echo "PASS: t_retention"
