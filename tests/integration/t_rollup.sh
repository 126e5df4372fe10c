#!/usr/bin/env bash
# t_rollup — the per-minute rollup table (camjoin's batches add to it; triggers
# follow hand deletes and updates) and the dashboard views, against the rows
# they summarize, exactly:
#
#   1. camjoin-gen (duplicates, unknown cameras, malformed messages) plus
#      events spread over the last 3.4 days (kcat), one --until-end run
#      (direct binary COPY): the events table is partitioned with a default
#      partition, it holds every valid event, and for every (minute, site,
#      zone, camera, event type) the rollup's events, object_count_sum and
#      confidence_max equal count(*), sum(object_count) and max(confidence)
#      over the rows (a full outer join with 0 differing groups); the sum of
#      events equals the events produced; camjoin_rollup_rebuild over all
#      time writes the same rollup again;
#   2. 500 rows deleted (the rollup subtracts them), an earlier camjoin's
#      INSERT trigger put back (the next start drops it), then a replay from
#      earliest: the rollup equals the rows again and adds up to all events
#      (the replay meets existing rows and goes through the staging path:
#      only the rows really inserted count);
#   3. the same with postgres.write_mode=staged, into a second events table
#      (its rollup and views named after it) whose name is as long as
#      camjoin takes (44 bytes; a 45-byte one is refused at startup, exit 1);
#   4. the views against SQL over the rows: events per site per minute,
#      top cameras of the last hour, join misses per minute (and in all: the
#      generator's unknown cameras), dead letters per hour and reason (and
#      by reason: the generator's malformed counts);
#   5. COPY text by hand is not counted until camjoin_rollup_rebuild of its
#      day, which writes exactly its groups; rows moved out of the default
#      partition by camjoin_ensure_partition, rows written to a partition
#      directly, and a partition dropped by camjoin_drop_partition leave the
#      rollup as it was (the history stays); the partition functions give
#      the same answers under an odd DateStyle and TimeZone;
#   6. an install made by an earlier camjoin (an unpartitioned table with
#      rows): camjoin adds everything else, fills the rollup from the rows
#      already there, keeps writing to the unpartitioned table (exit 0, the
#      rollup exact), camjoin_ensure_partition raises SQLSTATE CJ001, and
#      the least-privilege role of roles.sql runs on it with no DDL;
#   7. the README's two migrations of such an install to a partitioned
#      table (A: copy a day at a time; B: attach the old table whole), run as
#      printed there: the table is partitioned, every row and the rollup are
#      exact, and camjoin runs on it as the least-privilege role.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen

TOPIC=rollup-events GROUP=rollup-it PARTS=4
COUNT=${T_ROLLUP_COUNT:-30000} OLD=${T_ROLLUP_OLD:-3000}
# the second events table's name is as long as camjoin takes (44 bytes:
# ${STAGED}_join_misses_minute is 63, PostgreSQL's limit)
STAGED=rollup_staged_with_a_name_of_exactly_44bytes

rollup_events() { psql_val "SELECT coalesce(sum(events), 0) FROM ${1}_minute"; }
rollup_md5() { psql_val "SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM ${1}_minute r"; }
check_rollup() {  # TABLE EXPECTED_ROWS WHAT [counts]
    assert_eq "$3: rows in $1" "$2" "$(psql_val "SELECT count(*) FROM $1")"
    assert_eq "$3: rollup groups differing from the rows${4:+ (${4})}" 0 "$(rollup_diff "$1" "${4:-}")"
    assert_eq "$3: rollup events" "$2" "$(rollup_events "$1")"
}
# check_views TABLE: each view of TABLE against the same SQL over TABLE's rows
check_views() {  # TABLE
    local t=$1
    assert_eq "${t}_site_minute = rows per site per minute (differing)" 0 \
        "$(psql_val "SELECT count(*) FROM
            (SELECT date_trunc('minute', event_ts, 'UTC') AS minute, site_id, max(site_name) AS site_name,
                    count(*) AS events, coalesce(sum(object_count), 0) AS ocs FROM $t GROUP BY 1, 2) a
            FULL JOIN ${t}_site_minute v ON a.minute = v.minute AND a.site_id IS NOT DISTINCT FROM v.site_id
            WHERE a.events IS DISTINCT FROM v.events OR a.ocs IS DISTINCT FROM v.object_count_sum
               OR a.site_name IS DISTINCT FROM v.site_name")"
    # one statement, so both sides see the same now()
    assert_eq "${t}_top_cameras_1h = rows of the last hour per camera (differing, wrong order)" "0 0" \
        "$(psql_val "WITH a AS (SELECT camera_id, site_id, max(site_name) AS site_name, count(*) AS events
                                 FROM $t WHERE event_ts >= date_trunc('minute', now()) - interval '1 hour'
                                GROUP BY 1, 2),
                          v AS (SELECT *, row_number() OVER () AS pos FROM ${t}_top_cameras_1h)
                     SELECT (SELECT count(*) FROM a FULL JOIN v ON a.camera_id = v.camera_id
                               AND a.site_id IS NOT DISTINCT FROM v.site_id
                              WHERE a.events IS DISTINCT FROM v.events OR a.site_name IS DISTINCT FROM v.site_name)
                            || ' ' ||
                            (SELECT count(*) FROM v v1 JOIN v v2 ON v2.pos = v1.pos + 1 WHERE v2.events > v1.events)")"
    assert_eq "${t}_top_cameras_1h: cameras, events (not empty)" \
        "$(psql_val "SELECT count(DISTINCT (camera_id, site_id)) || ' ' || count(*) FROM $t
                     WHERE event_ts >= date_trunc('minute', now()) - interval '1 hour'")" \
        "$(psql_val "SELECT count(*) || ' ' || sum(events) FROM ${t}_top_cameras_1h")"
    assert_eq "${t}_join_misses_minute = rows without a site per minute (differing)" 0 \
        "$(psql_val "SELECT count(*) FROM
            (SELECT date_trunc('minute', event_ts, 'UTC') AS minute, count(*) AS events FROM $t
              WHERE site_id IS NULL GROUP BY 1) a
            FULL JOIN ${t}_join_misses_minute v USING (minute) WHERE a.events IS DISTINCT FROM v.events")"
}

pg_start
kafka_start "$TOPIC" "$PARTS"
load_cameras
camjoin_args "$TOPIC" "$GROUP"

echo "producing"
gen r --topic "$TOPIC" --count "$COUNT" --seed 606 --dup-ratio 0.10 \
    --unknown-camera-ratio 0.05 --malformed-ratio 0.02 --manifest "$CJ_TMP/r.manifest.csv"
log "generator: $(cat "$CJ_TMP/r.json")"
valid_new=$(json_get "$CJ_TMP/r.json" valid_new)
unknown=$(json_get "$CJ_TMP/r.json" unknown_camera)
# OLD more events, every 97 s back from now (3.4 days: days without a
# partition of their own), one in 10 on an unknown camera, some without
# confidence or object_count, event_ts in RFC 3339 with Z
psql_val "SELECT 'old-' || g || E'\t' || jsonb_strip_nulls(jsonb_build_object(
              'event_id', 'old-' || g,
              'camera_id', CASE WHEN g % 10 = 0 THEN 'unknown-old-' || g % 7
                                ELSE c[1 + g % array_length(c, 1)] END,
              'event_ts', to_char((now() - g * interval '97 seconds') AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
              'event_type', (ARRAY['person', 'vehicle', 'animal'])[1 + g % 3],
              'confidence', CASE WHEN g % 9 <> 0 THEN round((g % 101) / 100.0, 2) END,
              'object_count', CASE WHEN g % 11 <> 0 THEN g % 6 END))
          FROM generate_series(1, $OLD) g,
               (SELECT array_agg(camera_id ORDER BY camera_id) AS c FROM ref_cameras) r" >"$CJ_TMP/old.jsonl"
kcat -P -b "$KAFKA_BROKERS" -t "$TOPIC" -K $'\t' -l "$CJ_TMP/old.jsonl" 2>"$CJ_TMP/kcat.err" ||
    fail "kcat -P failed: $(cat "$CJ_TMP/kcat.err")"
old_unknown=$((OLD / 10))
total=$((valid_new + OLD))
sent=$(($(json_get "$CJ_TMP/r.json" sent) + OLD))

echo "1. one run, direct COPY"
camjoin_start r1 "${CJ_ARGS[@]}" --until-end
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "run 1 exit code" 0 "$CAMJOIN_RC"
assert_eq "camera_events: partitioned, with its default partition" "p camera_events_default" \
    "$(psql_val "SELECT c.relkind::text || ' ' || d.relname FROM pg_partitioned_table p
                 JOIN pg_class c ON c.oid = p.partrelid JOIN pg_class d ON d.oid = p.partdefid
                 WHERE c.relname = 'camera_events'")"
assert_eq "camjoin_partitions lists the default partition" "camera_events_default" \
    "$(psql_val "SELECT name FROM camjoin_partitions('camera_events') WHERE is_default")"
check_rollup camera_events "$total" "run 1"
assert_eq "run 1: rollup rows without a site = unknown cameras" "$((unknown + old_unknown))" \
    "$(psql_val "SELECT sum(events) FROM camera_events_minute WHERE site_id IS NULL")"
rollup_rows=$(psql_val "SELECT count(*) FROM camera_events_minute")
minutes=$(psql_val "SELECT count(DISTINCT minute) FROM camera_events_minute")
incremental=$(rollup_md5 camera_events)
assert_eq "the rollup table leaves room for HOT updates" "{fillfactor=70}" \
    "$(psql_val "SELECT reloptions FROM pg_class WHERE relname = 'camera_events_minute'")"
assert_eq "camjoin_rollup_rebuild over all time: the groups it wrote" "$rollup_rows" \
    "$(psql_val "SELECT camjoin_rollup_rebuild('camera_events', '-infinity', 'infinity')")"
assert_eq "the rebuilt rollup = the one camjoin's batches added up" "$incremental" "$(rollup_md5 camera_events)"

echo "2. 500 rows deleted, then a replay from earliest"
psql_val "DELETE FROM camera_events WHERE event_id IN
              (SELECT event_id FROM camera_events ORDER BY md5(event_id) LIMIT 500)" >/dev/null
check_rollup camera_events "$((total - 500))" "after the DELETE" counts
# the INSERT trigger of an earlier camjoin, which counted every row: the
# next start must notice it and drop it, or the replay would count twice
psql_val "CREATE TRIGGER camjoin_rollup_insert AFTER INSERT ON camera_events
          REFERENCING NEW TABLE AS camjoin_new FOR EACH STATEMENT EXECUTE FUNCTION camjoin_rollup()" >/dev/null
camjoin_start r2 "${CJ_ARGS[@]}" --until-end --replay-from earliest
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "replay exit code" 0 "$CAMJOIN_RC"
assert_eq "the earlier camjoin's INSERT trigger is gone" 0 \
    "$(psql_val "SELECT count(*) FROM pg_trigger WHERE tgname = 'camjoin_rollup_insert'")"
assert_eq "replay inserted exactly the deleted rows" 500 "$(stopped_field "$CJ_TMP/r2.log" inserted)"
restaged=$(stopped_field "$CJ_TMP/r2.log" restaged)
[[ $restaged -ge 1 ]] || fail "the replay never went through staging (restaged=$restaged)"
check_rollup camera_events "$total" "after the replay"

echo "3. postgres.write_mode=staged, into a second table"
assert_eq "name of the second table: bytes" 44 "${#STAGED}"
camjoin_start long "${CJ_ARGS[@]}" --until-end --group rollup-long --table "${STAGED}x"
camjoin_wait "$CAMJOIN_PID" 60
assert_eq "a 45-byte table name: exit code" 1 "$CAMJOIN_RC"
grep -qF "postgres.table: \"${STAGED}x\" is longer than 44 bytes" "$CJ_TMP/long.log" ||
    fail "a 45-byte table name: no message naming it: $(tail -n 2 "$CJ_TMP/long.log")"
camjoin_start r3 "${CJ_ARGS[@]}" --until-end --group rollup-staged --table $STAGED \
    --set postgres.write_mode=staged
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "staged run exit code" 0 "$CAMJOIN_RC"
check_rollup $STAGED "$total" "staged"
psql_val "DELETE FROM $STAGED WHERE event_id IN
              (SELECT event_id FROM $STAGED ORDER BY md5(event_id) LIMIT 500)" >/dev/null
camjoin_start r4 "${CJ_ARGS[@]}" --until-end --group rollup-staged --table $STAGED \
    --set postgres.write_mode=staged --replay-from earliest
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "staged replay exit code" 0 "$CAMJOIN_RC"
assert_eq "staged replay: consumed, inserted" "$sent 500" \
    "$(stopped_field "$CJ_TMP/r4.log" consumed) $(stopped_field "$CJ_TMP/r4.log" inserted)"
check_rollup $STAGED "$total" "staged replay"
assert_eq "the two tables' rollups are equal" "$(rollup_md5 camera_events)" "$(rollup_md5 $STAGED)"

echo "4. views"
check_views camera_events
check_views $STAGED
assert_eq "join misses in all = unknown cameras" "$((unknown + old_unknown))" \
    "$(psql_val "SELECT sum(events) FROM camera_events_join_misses_minute")"
assert_eq "camjoin_dead_letters_hourly = dead letters per hour and reason (differing)" 0 \
    "$(psql_val "SELECT count(*) FROM
        (SELECT date_trunc('hour', created_at, 'UTC') AS hour, reason, count(*) AS n
           FROM camjoin_dead_letters GROUP BY 1, 2) a
        FULL JOIN camjoin_dead_letters_hourly v USING (hour, reason) WHERE a.n IS DISTINCT FROM v.dead_letters")"
assert_eq "camjoin_dead_letters_hourly by reason = the generator's malformed messages" \
    "$(jq -r '.malformed_by_reason | to_entries | sort_by(.key) | map("\(.key)=\(.value)") | join(" ")' "$CJ_TMP/r.json")" \
    "$(psql_val "SELECT string_agg(reason || '=' || n, ' ' ORDER BY reason) FROM
                 (SELECT reason, sum(dead_letters) AS n FROM camjoin_dead_letters_hourly GROUP BY 1) x")"

echo "5. COPY text; moving rows between partitions and dropping one leave the rollup as it was"
day=$(psql_val "SELECT current_date - 40")
psql_val "COPY (SELECT 'text-' || g, date '$day' + g * interval '7 minutes', 'cam-text', 'person',
                       g / 200.0, g % 3, NULL, 'site-text', 'Text site', 'z', NULL, NULL, 0, g
                  FROM generate_series(1, 200) g) TO STDOUT" >"$CJ_TMP/text.copy"
psql_val "\\copy camera_events (event_id, event_ts, camera_id, event_type, confidence, object_count, attributes, site_id, site_name, zone, latitude, longitude, kafka_partition, kafka_offset) FROM '$CJ_TMP/text.copy'" >/dev/null
# rows inserted by hand fire no trigger: 200 groups (one a 7-minute step)
# are missing until the rebuild of their day, which writes exactly those
assert_eq "COPY text by hand: rollup groups missing" 200 "$(rollup_diff camera_events)"
assert_eq "COPY text by hand: rollup events unchanged" "$total" "$(rollup_events camera_events)"
assert_eq "camjoin_rollup_rebuild of that day: the groups it wrote" 200 \
    "$(psql_val "SELECT camjoin_rollup_rebuild('camera_events', '$day', date '$day' + 1)")"
check_rollup camera_events "$((total + 200))" "COPY text, rebuilt"
assert_eq "those rows are in the default partition" 200 \
    "$(psql_val "SELECT count(*) FROM camera_events_default WHERE event_id LIKE 'text-%'")"
before=$(rollup_md5 camera_events)
odd="SET datestyle = 'SQL, DMY'; SET timezone = 'Asia/Kolkata';"
part=$(psql -XAtq -v ON_ERROR_STOP=1 -c "$odd" -c "SELECT camjoin_ensure_partition('camera_events', '$day')")
assert_eq "camjoin_ensure_partition (TimeZone Asia/Kolkata, DateStyle SQL)" \
    "camera_events_p$(date -u -d "$day" +%Y%m%d)" "$part"
assert_eq "the rows moved: in $part, in the default partition" "200 0" \
    "$(psql_val "SELECT (SELECT count(*) FROM $part) || ' ' ||
                        (SELECT count(*) FROM camera_events_default WHERE event_id LIKE 'text-%')")"
assert_eq "rollup after the move: unchanged" "$before" "$(rollup_md5 camera_events)"
check_rollup camera_events "$((total + 200))" "after the move"
assert_eq "camjoin_partitions (TimeZone Asia/Kolkata): the day of $part" \
    "$(psql -XAtq -c "SET datestyle = 'SQL, DMY'" -c "SELECT date '$day'")" \
    "$(psql -XAtq -v ON_ERROR_STOP=1 -c "$odd" -c "SELECT day FROM camjoin_partitions('camera_events') WHERE name = '$part'")"
psql_val "INSERT INTO $part SELECT event_id || '-direct', event_ts, camera_id, event_type, confidence,
                 object_count, attributes, site_id, site_name, zone, latitude, longitude,
                 kafka_partition, kafka_offset, ingested_at FROM $part" >/dev/null
assert_eq "rollup after an INSERT into the partition itself: unchanged" "$before" "$(rollup_md5 camera_events)"
psql_val "DELETE FROM $part WHERE event_id LIKE '%-direct'" >/dev/null
assert_eq "rollup after a DELETE from the partition itself: unchanged" "$before" "$(rollup_md5 camera_events)"
groups=$(psql_val "SELECT count(*) FROM camera_events_minute WHERE minute >= '$day' AND minute < date '$day' + 1")
assert_eq "camjoin_drop_partition (TimeZone Asia/Kolkata): rows it held" 200 \
    "$(psql -XAtq -v ON_ERROR_STOP=1 -c "$odd" -c "SELECT camjoin_drop_partition('camera_events', '$day')")"
assert_eq "rollup after the drop: unchanged (history kept)" "$before" "$(rollup_md5 camera_events)"
assert_eq "rollup groups without rows now = the dropped day's groups" "$groups" "$(rollup_diff camera_events)"
assert_eq "rows after the drop" "$total" "$(psql_val "SELECT count(*) FROM camera_events")"

echo "6. an install made by an earlier camjoin (unpartitioned table)"
PGDATABASE=postgres psql_val "CREATE DATABASE camjoin_old" >/dev/null
# the schema of the previous release (docs/ARCHITECTURE.md §3), and 5000 of the rows
PGDATABASE=camjoin_old psql -XAq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE camera_events (
  event_id text NOT NULL, event_ts timestamptz NOT NULL,
  camera_id text NOT NULL, event_type text NOT NULL,
  confidence real, object_count integer, attributes jsonb,
  site_id text, site_name text, zone text, latitude double precision, longitude double precision,
  kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL,
  ingested_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_id, event_ts));
CREATE TABLE camjoin_offsets (consumer_group text, topic text, kafka_partition integer,
  next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, kafka_partition));
CREATE TABLE camjoin_dead_letters (id bigserial PRIMARY KEY, topic text NOT NULL,
  kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL, payload bytea,
  reason text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE UNIQUE INDEX camjoin_dead_letters_position ON camjoin_dead_letters (topic, kafka_partition, kafka_offset);
CREATE INDEX camera_events_ingested_at_idx ON camera_events (ingested_at);
SQL
psql_val "\\copy (SELECT * FROM camera_events WHERE event_id NOT LIKE 'text-%' ORDER BY md5(event_id) LIMIT 5000) TO '$CJ_TMP/old-rows.copy'" >/dev/null
PGDATABASE=camjoin_old psql_val "\\copy camera_events FROM '$CJ_TMP/old-rows.copy'" >/dev/null
old_pg=${CAMJOIN_PG_URI%/camjoin}/camjoin_old
camjoin_start r5 "${CJ_ARGS[@]}" --pg "$old_pg" --until-end
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "run on the earlier install: exit code" 0 "$CAMJOIN_RC"
if grep -E 'level=error' "$CJ_TMP/r5.log"; then fail "the run on the earlier install logged an error"; fi
PGDATABASE=camjoin_old check_rollup camera_events "$total" "earlier install"
assert_eq "earlier install: the table stays unpartitioned" r \
    "$(PGDATABASE=camjoin_old psql_val "SELECT relkind FROM pg_class WHERE relname = 'camera_events'")"
assert_eq "earlier install: camjoin_ensure_partition raises" "CJ001" \
    "$(PGDATABASE=camjoin_old psql -XAtq -v VERBOSITY=verbose -c "SELECT camjoin_ensure_partition('camera_events', current_date)" 2>&1 |
        sed -nE 's/^ERROR: +([0-9A-Z]{5}): .*not partitioned.*/\1/p')"
PGDATABASE=camjoin_old psql -XAq -v ON_ERROR_STOP=1 -f "$CAMJOIN_SRC/config/roles.sql" >"$CJ_TMP/roles.out" 2>&1 ||
    fail "roles.sql on the earlier install: $(cat "$CJ_TMP/roles.out")"
PGDATABASE=camjoin_old psql_val "DELETE FROM camera_events WHERE event_id IN
              (SELECT event_id FROM camera_events ORDER BY md5(event_id) LIMIT 300)" >/dev/null
camjoin_start r6 "${CJ_ARGS[@]}" --pg "${old_pg/postgres@/camjoin@}" --until-end --replay-from earliest
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "earlier install, as role camjoin (no DDL right): exit code" 0 "$CAMJOIN_RC"
if grep -E 'level=error|permission denied|must be owner' "$CJ_TMP/r6.log"; then fail "the run as camjoin logged an error"; fi
PGDATABASE=camjoin_old check_rollup camera_events "$total" "earlier install, as camjoin"

echo "7. the README's migrations, on copies of that install"
readme_block() {  # FIRST_LINE: the ```sql block of README.md that starts with FIRST_LINE
    awk -v first="$1" '$0 == "```sql" { getline; if ($0 == first) on = 1 }
                       on && $0 == "```" { exit }
                       on { print }' "$CAMJOIN_SRC/README.md"
}
for m in A B; do
    db=camjoin_m${m,,}
    PGDATABASE=postgres psql_val "CREATE DATABASE $db TEMPLATE camjoin_old" >/dev/null
    readme_block "-- migration $m" | sed "s|/usr/share/camjoin/schema.sql|$CAMJOIN_SRC/config/schema.sql|" \
        >"$CJ_TMP/migration_$m.sql"
    [[ $(grep -c . "$CJ_TMP/migration_$m.sql") -gt 10 ]] || fail "README.md has no block '-- migration $m'"
    PGDATABASE=$db psql -XAq -v ON_ERROR_STOP=1 -c "SET ROLE camjoin_owner" -f "$CJ_TMP/migration_$m.sql" \
        >"$CJ_TMP/migration_$m.out" 2>&1 || fail "migration $m failed: $(grep -m3 ERROR "$CJ_TMP/migration_$m.out")"
    PGDATABASE=$db psql -XAq -v ON_ERROR_STOP=1 -f "$CAMJOIN_SRC/config/roles.sql" >"$CJ_TMP/roles.out" 2>&1 ||
        fail "roles.sql after migration $m: $(cat "$CJ_TMP/roles.out")"
    assert_eq "migration $m: partitioned, with a default partition, owned by camjoin_owner" "p true camjoin_owner" \
        "$(PGDATABASE=$db psql_val "SELECT c.relkind::text || ' ' || (p.partdefid <> 0)::text || ' ' || pg_get_userbyid(c.relowner)
                                    FROM pg_class c JOIN pg_partitioned_table p ON p.partrelid = c.oid
                                   WHERE c.relname = 'camera_events'")"
    PGDATABASE=$db check_rollup camera_events "$total" "migration $m"
    PGDATABASE=$db psql_val "DELETE FROM camera_events WHERE event_id IN
                  (SELECT event_id FROM camera_events ORDER BY md5(event_id) LIMIT 300)" >/dev/null
    camjoin_start "m$m" "${CJ_ARGS[@]}" --pg "postgresql://camjoin@127.0.0.1:$PGPORT/$db" --until-end --replay-from earliest
    camjoin_wait "$CAMJOIN_PID" 120
    assert_eq "migration $m, then camjoin as role camjoin: exit code" 0 "$CAMJOIN_RC"
    if grep -E 'level=(error|warn)|permission denied|must be owner' "$CJ_TMP/m$m.log"; then
        fail "the run after migration $m logged an error or a warning"
    fi
    PGDATABASE=$db check_rollup camera_events "$total" "migration $m, then camjoin"
done
assert_eq "migration A: the old table is gone; days with rows each in their partition" "0 0" \
    "$(PGDATABASE=camjoin_ma psql_val "SELECT (to_regclass('camera_events_unpartitioned') IS NOT NULL)::int || ' ' ||
        (SELECT count(*) FROM camera_events e JOIN camjoin_partitions('camera_events') p
            ON p.name = e.tableoid::regclass::text WHERE p.day IS DISTINCT FROM (e.event_ts AT TIME ZONE 'UTC')::date)")"
assert_eq "migration B: the old table is a partition that is not a day" "camera_events_legacy|" \
    "$(PGDATABASE=camjoin_mb psql_val "SELECT name || '|' || coalesce(day::text, '') FROM camjoin_partitions('camera_events')
                                       WHERE NOT is_default AND name = 'camera_events_legacy'")"

echo "FIGURES rollup: rows=$total rollup_rows=$rollup_rows minutes=$minutes differing_direct=0 differing_replay=0 differing_staged=0 differing_views=0 differing_earlier_install=0 differing_migrations=0 restaged=$restaged"
echo "PASS: t_rollup ($sent messages; rollups and views equal the rows exactly)"
