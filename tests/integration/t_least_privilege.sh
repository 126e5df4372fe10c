#!/usr/bin/env bash
# t_least_privilege — camjoin runs end to end as the least-privilege role of
# config/roles.sql:
#
#   1. roles.sql applied by the superuser on a fresh database (twice: it is
#      idempotent), and on a database whose tables a superuser created first
#      (they are handed over to camjoin_owner);
#   2. the exact privilege set of role camjoin (table grants, function
#      EXECUTE, schema CREATE, database TEMP/CONNECT/CREATE) and what it must
#      NOT be able to do, tried with psql as camjoin: CREATE TABLE, DROP,
#      ALTER, DELETE, UPDATE of events, TRUNCATE, CREATE SCHEMA, deleting
#      from or truncating the rollup table (camjoin may add to it: its
#      batches' groups), DDL on a partition all fail; CREATE TEMP TABLE and the
#      partition functions (SECURITY DEFINER) work, and what they create
#      belongs to camjoin_owner and is readable by the readers;
#      the same for the read-only role camjoin_reader: SELECT on the events
#      table, its partitions, the rollup table, the views and the dead
#      letters, nothing else;
#   3. camjoin --until-end as camjoin over generator data: the exact end state
#      of assert_final_state (rows, dead letters, join, offsets), and the
#      rollup table equal to the rows' aggregates (camjoin's upserts, as
#      camjoin); a second run
#      writes nothing; a --replay-from earliest run duplicates nothing;
#      camjoin authenticates with SCRAM, its password in a libpq passfile
#      (PGPASSFILE) or in the conninfo: the password is in no log line, and a
#      wrong one is exit 1 naming the failure without echoing it;
#   4. control: without TEMPORARY on the database camjoin cannot start (exit
#      1, the PostgreSQL error named) — the grant is needed and this test
#      notices a missing privilege.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen

TOPIC=lp-events GROUP=lp-it PARTS=4
COUNT=${T_LP_COUNT:-20000}
ROLES_SQL=$CAMJOIN_SRC/config/roles.sql

pg_start
apply_roles() {  # DATABASE: roles.sql as the superuser
    PGDATABASE=$1 psql -XAq -v ON_ERROR_STOP=1 -f "$ROLES_SQL" >"$CJ_TMP/roles.out" 2>&1 ||
        fail "roles.sql failed on $1: $(cat "$CJ_TMP/roles.out")"
}
as_camjoin() {  # SQL: run as role camjoin; prints "ok" or the error's first line
    as_role camjoin "$1"
}
as_role() {  # ROLE SQL: prints "ok" or the error's first line
    local out
    if out=$(PGUSER=$1 psql -wXAtq -v ON_ERROR_STOP=1 -c "$2" 2>&1); then
        echo ok
    else
        sed -n '/ERROR:/ { s/.*ERROR: *//p; q }' <<<"$out"
    fi
}

echo "roles.sql"
apply_roles camjoin
apply_roles camjoin   # idempotent
assert_eq "owner of every camjoin table, partition and view" \
    "camera_events:p=camjoin_owner camera_events_default:r=camjoin_owner camera_events_join_misses_minute:v=camjoin_owner camera_events_minute:r=camjoin_owner camera_events_site_minute:v=camjoin_owner camera_events_top_cameras_1h:v=camjoin_owner camjoin_dead_letters:r=camjoin_owner camjoin_dead_letters_hourly:v=camjoin_owner camjoin_offsets:r=camjoin_owner camjoin_redriven:r=camjoin_owner" \
    "$(psql_val "SELECT string_agg(relname || ':' || relkind::text || '=' || pg_get_userbyid(relowner), ' ' ORDER BY relname)
                 FROM pg_class WHERE relkind IN ('r', 'p', 'v') AND relnamespace = 'public'::regnamespace")"
assert_eq "owner of the functions (SECURITY DEFINER where the writer calls them)" \
    "camjoin_drop_partition=camjoin_owner:true camjoin_ensure_default_partition=camjoin_owner:false camjoin_ensure_partition=camjoin_owner:true camjoin_partitions=camjoin_owner:true camjoin_rollup=camjoin_owner:true camjoin_rollup_rebuild=camjoin_owner:false" \
    "$(psql_val "SELECT string_agg(proname || '=' || pg_get_userbyid(proowner) || ':' || prosecdef, ' ' ORDER BY proname)
                 FROM pg_proc WHERE proname LIKE 'camjoin%' AND pronamespace = 'public'::regnamespace")"
assert_eq "events table partitioned by range, with its default partition" "p:true" \
    "$(psql_val "SELECT c.relkind::text || ':' || (p.partdefid <> 0) FROM pg_class c
                 JOIN pg_partitioned_table p ON p.partrelid = c.oid WHERE c.relname = 'camera_events'")"
assert_eq "roles: camjoin and camjoin_reader can log in, camjoin_owner cannot; none is privileged" \
    "camjoin:t:f:f:f camjoin_owner:f:f:f:f camjoin_reader:t:f:f:f" \
    "$(psql_val "SELECT string_agg(concat_ws(':', rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole), ' ' ORDER BY rolname)
                 FROM pg_roles WHERE rolname IN ('camjoin', 'camjoin_owner', 'camjoin_reader')")"
# a database whose tables camjoin (as a superuser) created before
PGDATABASE=postgres psql_val "CREATE DATABASE camjoin_pre" >/dev/null
PGDATABASE=camjoin_pre psql -XAq -v ON_ERROR_STOP=1 -f "$CAMJOIN_SRC/config/schema.sql" >/dev/null 2>&1
PGDATABASE=camjoin_pre psql_val "SELECT camjoin_ensure_partition('camera_events', current_date)" >/dev/null  # a daily partition too
apply_roles camjoin_pre
assert_eq "pre-existing tables handed over to camjoin_owner" "camjoin_owner" \
    "$(PGDATABASE=camjoin_pre psql_val "SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',')
                 FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S', 'i', 'p', 'I', 'v')")"
assert_eq "pre-existing functions handed over to camjoin_owner" "camjoin_owner" \
    "$(PGDATABASE=camjoin_pre psql_val "SELECT string_agg(DISTINCT pg_get_userbyid(proowner), ',')
                 FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'camjoin%'")"

echo "privileges of role camjoin (exact)"
table_grants() {  # ROLE: its table privileges as "table:PRIV,PRIV ..."
    psql_val "SELECT string_agg(table_name || ':' || privs, ' ' ORDER BY table_name) FROM
                (SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) privs
                 FROM information_schema.role_table_grants WHERE grantee = '$1' GROUP BY 1) g"
}
function_grants() {  # ROLE: the camjoin functions it may execute
    psql_val "SELECT coalesce(string_agg(proname, ',' ORDER BY proname), '-') FROM pg_proc
              WHERE proname LIKE 'camjoin%' AND has_function_privilege('$1', oid, 'EXECUTE')"
}
assert_eq "table privileges" \
    "camera_events:INSERT,SELECT camera_events_default:SELECT camera_events_minute:INSERT,SELECT,UPDATE camjoin_dead_letters:INSERT,SELECT camjoin_offsets:INSERT,SELECT,UPDATE camjoin_redriven:INSERT,SELECT" \
    "$(table_grants camjoin)"
assert_eq "function privileges (EXECUTE)" "camjoin_drop_partition,camjoin_ensure_partition,camjoin_partitions" \
    "$(function_grants camjoin)"
assert_eq "PUBLIC may execute no camjoin function" "-" "$(function_grants public)"
assert_eq "sequence privileges (USAGE, SELECT, UPDATE)" "t,f,f" \
    "$(psql_val "SELECT concat_ws(',', has_sequence_privilege('camjoin', 'camjoin_dead_letters_id_seq', 'USAGE'),
                        has_sequence_privilege('camjoin', 'camjoin_dead_letters_id_seq', 'SELECT'),
                        has_sequence_privilege('camjoin', 'camjoin_dead_letters_id_seq', 'UPDATE'))")"
assert_eq "schema public: USAGE, CREATE" "t,f" \
    "$(psql_val "SELECT concat_ws(',', has_schema_privilege('camjoin', 'public', 'USAGE'), has_schema_privilege('camjoin', 'public', 'CREATE'))")"
assert_eq "database: CONNECT, TEMPORARY, CREATE" "t,t,f" \
    "$(psql_val "SELECT concat_ws(',', has_database_privilege('camjoin', 'camjoin', 'CONNECT'),
                        has_database_privilege('camjoin', 'camjoin', 'TEMPORARY'),
                        has_database_privilege('camjoin', 'camjoin', 'CREATE'))")"
assert_eq "PUBLIC: CREATE on public, CONNECT/TEMP on the database" "f,f,f" \
    "$(psql_val "SELECT concat_ws(',', has_schema_privilege('public', 'public', 'CREATE'),
                        has_database_privilege('public', 'camjoin', 'CONNECT'),
                        has_database_privilege('public', 'camjoin', 'TEMPORARY'))")"

echo "what camjoin must not be able to do (psql as camjoin)"
assert_eq "CREATE TABLE x()" "permission denied for schema public" "$(as_camjoin "CREATE TABLE x()")"
assert_eq "CREATE TABLE public.camjoin_x (like camera_events)" "permission denied for schema public" \
    "$(as_camjoin "CREATE TABLE public.camjoin_x (LIKE camera_events)")"
assert_eq "CREATE SCHEMA" "permission denied for database camjoin" "$(as_camjoin "CREATE SCHEMA s")"
assert_eq "DROP TABLE camera_events" "must be owner of table camera_events" "$(as_camjoin "DROP TABLE camera_events")"
assert_eq "ALTER TABLE camera_events" "must be owner of table camera_events" \
    "$(as_camjoin "ALTER TABLE camera_events ADD COLUMN x int")"
assert_eq "CREATE INDEX on camera_events" "must be owner of table camera_events" \
    "$(as_camjoin "CREATE INDEX ON camera_events (zone)")"
assert_eq "DELETE FROM camera_events" "permission denied for table camera_events" "$(as_camjoin "DELETE FROM camera_events")"
assert_eq "UPDATE camera_events" "permission denied for table camera_events" \
    "$(as_camjoin "UPDATE camera_events SET zone = 'x'")"
assert_eq "TRUNCATE camjoin_offsets" "permission denied for table camjoin_offsets" "$(as_camjoin "TRUNCATE camjoin_offsets")"
assert_eq "DELETE FROM camjoin_dead_letters" "permission denied for table camjoin_dead_letters" \
    "$(as_camjoin "DELETE FROM camjoin_dead_letters")"
assert_eq "TRUNCATE camera_events_minute" "permission denied for table camera_events_minute" \
    "$(as_camjoin "TRUNCATE camera_events_minute")"
assert_eq "camjoin_rollup_rebuild() (the owner's maintenance)" \
    "permission denied for function camjoin_rollup_rebuild" \
    "$(as_camjoin "SELECT camjoin_rollup_rebuild('camera_events', '-infinity', 'infinity')")"
assert_eq "DELETE FROM camera_events_minute" "permission denied for table camera_events_minute" \
    "$(as_camjoin "DELETE FROM camera_events_minute")"
assert_eq "DELETE FROM camera_events_default" "permission denied for table camera_events_default" \
    "$(as_camjoin "DELETE FROM camera_events_default")"
assert_eq "DROP TABLE camera_events_default" "must be owner of table camera_events_default" \
    "$(as_camjoin "DROP TABLE camera_events_default")"
assert_eq "camjoin_ensure_default_partition() (DDL's, not the writer's)" \
    "permission denied for function camjoin_ensure_default_partition" \
    "$(as_camjoin "SELECT camjoin_ensure_default_partition('camera_events')")"
assert_eq "CREATE TEMP TABLE (the staging tables)" "ok" "$(as_camjoin "CREATE TEMP TABLE t (a int)")"

echo "the partition functions as camjoin (they run as camjoin_owner)"
far=$(psql_val "SELECT to_char(current_date + 400, 'YYYYMMDD')")
assert_eq "camjoin_ensure_partition (day + 400), twice" "camera_events_p$far camera_events_p$far" \
    "$(PGUSER=camjoin psql -wXAtq -v ON_ERROR_STOP=1 -c "SELECT camjoin_ensure_partition('camera_events', current_date + 400)" \
        -c "SELECT camjoin_ensure_partition('camera_events', current_date + 400)" | paste -sd' ')"
assert_eq "the new partition: owner, and who may read it" "camjoin_owner camjoin=r/camjoin_owner,camjoin_reader=r/camjoin_owner" \
    "$(psql_val "SELECT pg_get_userbyid(relowner) || ' ' || (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(relacl) a
                 WHERE a::text NOT LIKE 'camjoin_owner=%') FROM pg_class WHERE relname = 'camera_events_p$far'")"
assert_eq "camjoin_partitions as camjoin" "camera_events_default||t camera_events_p$far|$(psql_val "SELECT current_date + 400")|f" \
    "$(PGUSER=camjoin psql -wXAtq -v ON_ERROR_STOP=1 -c "SELECT format('%s|%s|%s', name, day, is_default) FROM camjoin_partitions('camera_events')" | paste -sd' ')"
assert_eq "camjoin_drop_partition as camjoin (rows held), twice" "0 0" \
    "$(PGUSER=camjoin psql -wXAtq -v ON_ERROR_STOP=1 -c "SELECT camjoin_drop_partition('camera_events', current_date + 400)" \
        -c "SELECT camjoin_drop_partition('camera_events', current_date + 400)" | paste -sd' ')"
assert_eq "partition gone" "" "$(psql_val "SELECT to_regclass('camera_events_p$far')")"

echo "privileges of role camjoin_reader (exact), and what it must not do"
assert_eq "reader: table privileges" \
    "camera_events:SELECT camera_events_default:SELECT camera_events_join_misses_minute:SELECT camera_events_minute:SELECT camera_events_site_minute:SELECT camera_events_top_cameras_1h:SELECT camjoin_dead_letters:SELECT camjoin_dead_letters_hourly:SELECT camjoin_redriven:SELECT" \
    "$(table_grants camjoin_reader)"
assert_eq "reader: function privileges (EXECUTE)" "-" "$(function_grants camjoin_reader)"
assert_eq "reader: schema USAGE, CREATE; database CONNECT, TEMPORARY, CREATE; sequence USAGE" "t,f,t,f,f,f" \
    "$(psql_val "SELECT concat_ws(',', has_schema_privilege('camjoin_reader', 'public', 'USAGE'),
                        has_schema_privilege('camjoin_reader', 'public', 'CREATE'),
                        has_database_privilege('camjoin_reader', 'camjoin', 'CONNECT'),
                        has_database_privilege('camjoin_reader', 'camjoin', 'TEMPORARY'),
                        has_database_privilege('camjoin_reader', 'camjoin', 'CREATE'),
                        has_sequence_privilege('camjoin_reader', 'camjoin_dead_letters_id_seq', 'USAGE'))")"
for v in camera_events camera_events_default camera_events_minute camera_events_site_minute \
         camera_events_top_cameras_1h camera_events_join_misses_minute camjoin_dead_letters camjoin_dead_letters_hourly \
         camjoin_redriven; do
    assert_eq "reader: SELECT FROM $v" ok "$(as_role camjoin_reader "SELECT count(*) FROM $v")"
done
assert_eq "reader: SELECT FROM camjoin_offsets" "permission denied for table camjoin_offsets" \
    "$(as_role camjoin_reader "SELECT count(*) FROM camjoin_offsets")"
ins="INSERT INTO camera_events (event_id, event_ts, camera_id, event_type, kafka_partition, kafka_offset) VALUES ('x', now(), 'c', 't', 0, 0)"
assert_eq "reader: INSERT INTO camera_events (sessions are read-only)" "cannot execute INSERT in a read-only transaction" \
    "$(as_role camjoin_reader "$ins")"
assert_eq "reader: INSERT INTO camera_events in a READ WRITE transaction" "permission denied for table camera_events" \
    "$(as_role camjoin_reader "START TRANSACTION READ WRITE; $ins")"
assert_eq "reader: camjoin_partitions()" "permission denied for function camjoin_partitions" \
    "$(as_role camjoin_reader "SELECT * FROM camjoin_partitions('camera_events')")"
assert_eq "reader: CREATE TEMP TABLE" 'permission denied to create temporary tables in database "camjoin"' \
    "$(as_role camjoin_reader "START TRANSACTION READ WRITE; CREATE TEMP TABLE t (a int)")"

echo "password authentication (SCRAM) for camjoin; the password in a libpq passfile"
PW="lp-pw-$RANDOM$RANDOM-x"
psql_val "ALTER ROLE camjoin PASSWORD '$PW'" >/dev/null
hba=$PG_DIR/data/pg_hba.conf
{ echo "host all camjoin 127.0.0.1/32 scram-sha-256"; cat "$hba"; } >"$CJ_TMP/hba" && cat "$CJ_TMP/hba" >"$hba"
_pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" reload >/dev/null
sleep 0.5
assert_eq "psql as camjoin without a password" "fe_sendauth: no password supplied" \
    "$(PGUSER=camjoin PGPASSFILE=/nonexistent psql -wXAtq -c 'SELECT 1' 2>&1 | sed -n 's/.*: *fe_sendauth/fe_sendauth/p')"
printf '127.0.0.1:%s:camjoin:camjoin:%s\n' "$PGPORT" "$PW" >"$CJ_TMP/pgpass"
chmod 600 "$CJ_TMP/pgpass"
export PGPASSFILE=$CJ_TMP/pgpass
assert_eq "psql as camjoin with the passfile" ok "$(as_camjoin "SELECT 1")"

echo "camjoin end to end as role camjoin"
kafka_start "$TOPIC" "$PARTS"
CAMJOIN_PG_URI="postgresql://camjoin@127.0.0.1:$PGPORT/camjoin"   # no password: PGPASSFILE
camjoin_args "$TOPIC" "$GROUP"
gen lp --topic "$TOPIC" --count "$COUNT" --seed 4242 --dup-ratio 0.10 \
    --unknown-camera-ratio 0.02 --malformed-ratio 0.02 --manifest "$CJ_TMP/lp.manifest.csv"
sent=$(json_get "$CJ_TMP/lp.json" sent)
log "generator: $(cat "$CJ_TMP/lp.json")"
t0=$(now_s)
camjoin_start lp1 "${CJ_ARGS[@]}" --until-end
camjoin_wait "$CAMJOIN_PID" 120
run_s=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }')
assert_eq "run 1 (--until-end) exit code" 0 "$CAMJOIN_RC"
assert_final_state "$CJ_TMP/lp.json" "$CJ_TMP/lp.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
rows=$(psql_val "SELECT count(*) FROM camera_events")
dead=$(psql_val "SELECT count(*) FROM camjoin_dead_letters")
assert_eq "rollup written as camjoin: events" "$rows" "$(psql_val "SELECT sum(events) FROM camera_events_minute")"
assert_eq "rollup written as camjoin: groups differing from the rows" 0 "$(rollup_diff camera_events)"

# run 2 with the password in the conninfo instead (no passfile): it must
# appear in no log line; a wrong one fails with exit 1 and is not echoed
PGPASSFILE=/nonexistent camjoin_start lp2 "${CJ_ARGS[@]}" --until-end \
    --pg "postgresql://camjoin:$PW@127.0.0.1:$PGPORT/camjoin"
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "run 2 (password in the URI, nothing new) exit code" 0 "$CAMJOIN_RC"
PGPASSFILE=/nonexistent camjoin_start lp-badpw "${CJ_ARGS[@]}" --until-end \
    --pg "host=127.0.0.1 port=$PGPORT dbname=camjoin user=camjoin password=Wrong-$PW"
camjoin_wait "$CAMJOIN_PID" 60
assert_eq "wrong password: exit code" 1 "$CAMJOIN_RC"
grep -q 'password authentication failed for user "camjoin"' "$CJ_TMP/lp-badpw.log" ||
    fail "wrong password: reason not named: $(cat "$CJ_TMP/lp-badpw.log")"
assert_eq "log lines of runs 1, 2 and the wrong password holding the password" 0 \
    "$(cat "$CJ_TMP"/lp1.log "$CJ_TMP"/lp2.log "$CJ_TMP"/lp-badpw.log "$CJ_TMP"/lp1.out "$CJ_TMP"/lp2.out | grep -cF -- "$PW" || true)"
camjoin_start lp3 "${CJ_ARGS[@]}" --until-end --replay-from earliest
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "run 3 (--replay-from earliest) exit code" 0 "$CAMJOIN_RC"
assert_eq "rows after runs 2 and 3" "$rows" "$(psql_val "SELECT count(*) FROM camera_events")"
assert_eq "dead letters after runs 2 and 3" "$dead" "$(psql_val "SELECT count(*) FROM camjoin_dead_letters")"
assert_eq "duplicate rows" 0 "$(psql_val "SELECT count(*) - count(DISTINCT event_id) FROM camera_events")"
assert_eq "rollup after runs 2 and 3: groups differing from the rows" 0 "$(rollup_diff camera_events)"
assert_eq "run 3 read every message again" "$sent" \
    "$(sed -nE 's/.*msg="stopped" consumed=([0-9]+).*/\1/p' "$CJ_TMP/lp3.log")"
for r in lp1 lp2 lp3; do
    if grep -Ei 'level=error|permission denied|must be owner' "$CJ_TMP/$r.log"; then fail "$r logged an error"; fi
done

echo "control: without TEMPORARY camjoin cannot stage its COPY"
psql_val "REVOKE TEMPORARY ON DATABASE camjoin FROM camjoin" >/dev/null
camjoin_start lp-notemp "${CJ_ARGS[@]}" --until-end
camjoin_wait "$CAMJOIN_PID" 60
assert_eq "exit code without TEMPORARY" 1 "$CAMJOIN_RC"
grep -q 'permission denied to create temporary tables in database "camjoin"' "$CJ_TMP/lp-notemp.log" ||
    fail "the startup failure does not name the missing privilege: $(tail -n 3 "$CJ_TMP/lp-notemp.log")"
echo "  ok  startup failure: $(grep -m1 'temporary' "$CJ_TMP/lp-notemp.log" | cut -c1-140)"
apply_roles camjoin   # restores it
assert_eq "TEMPORARY restored by re-applying roles.sql" t \
    "$(psql_val "SELECT has_database_privilege('camjoin', 'camjoin', 'TEMPORARY')")"

lost=$((sent - $(json_get "$CJ_TMP/lp.json" duplicates) - rows - dead))
echo "FIGURES least_privilege: events=$sent rows=$rows dead_letters=$dead lost=$lost duplicate_rows=0 runs=3 run1_s=$run_s denied_ops=15 reader_denied_ops=5"
echo "PASS: t_least_privilege ($sent messages as role camjoin, no DDL, exact end state)"
