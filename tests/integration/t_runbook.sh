#!/usr/bin/env bash
# t_runbook — README's "Replay after a bad deploy" (the block after the
# marker `runbook:bad-deploy`), extracted and run exactly as written, after a
# simulated bad deploy that read a backlog; then the table must equal an
# undisturbed run's.
#
#   1. A good release (the shipped cameras CSV) consumes 3,000 events.
#   2. It stops; 3,000 more arrive meanwhile (the backlog, older Kafka
#      timestamps). T0 = now.
#   3. A bad release (every camera moved to site "bad-site") starts at T0,
#      reads the backlog and 3,000 live events, and stops. Control: rows of the
#      backlog carry bad-site (so ingested-at-T0-or-later is not "produced
#      after T0": the old runbook's hole), and the table differs from the
#      undisturbed run below.
#   4. The runbook block runs with PG, CONF (the good release's camjoin.conf)
#      and T0, camjoin on PATH, in a scratch directory.
#   5. Undisturbed: the good release reads the whole topic from the earliest
#      offset into a second database. Rows (every column but ingested_at),
#      dead letters (position, reason, payload) and the rollup's non-empty
#      groups are then byte-for-byte equal, and no group is negative.
#   6. --replay-until 0:100,2:250 from the earliest offset, into a third
#      database: the dry run's ends are the bounds (the end for partitions not
#      listed), the run exits 0 with the stored offsets at those ends, and its
#      rows are exactly the undisturbed run's within the bounds.
#   Also: the dry run printed one line per partition, its starts are the
#   first offsets written from where the bad release was positioned, and the
#   runbook exited 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen

TOPIC=rb-events GROUP=rb-it PARTS=4 N=${T_RUNBOOK_EVENTS:-3000}
pg_start
kafka_start "$TOPIC" "$PARTS"
RB=$CJ_TMP/runbook
mkdir -p "$RB"
BAD_CSV=$CJ_TMP/bad-cameras.csv
python3 - "$CAMERAS_CSV" "$BAD_CSV" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8-sig")))
with open(sys.argv[2], "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    for r in rows:
        r.update(site_id="bad-site", site_name="Bad Site")
        w.writerow(r)
PY
CONF=$CJ_TMP/rb.conf
cat >"$CONF" <<EOF
[kafka]
brokers = $KAFKA_BROKERS
topic = $TOPIC
group = $GROUP
[postgres]
conninfo = $CAMJOIN_PG_URI
[reference]
path = $CAMERAS_CSV
[kafka.properties]
session.timeout.ms = 6000
heartbeat.interval.ms = 500
EOF
gen_args=(--topic "$TOPIC" --count "$N" --dup-ratio 0.05 --unknown-camera-ratio 0.02
          --malformed-ratio 0.01)

echo "1. the good release"
gen a "${gen_args[@]}" --seed 101
camjoin_start good -c "$CONF" --until-end
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "good release: exit code" 0 "$CAMJOIN_RC"

echo "2. a backlog while it is down"
gen b "${gen_args[@]}" --seed 102 --id-prefix b
sleep 1.2
T0=$(psql_val "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
sleep 0.2

echo "3. the bad release, from T0 = $T0"
camjoin_start bad -c "$CONF" --reference "$BAD_CSV"
sent=$(( $(json_get "$CJ_TMP/a.json" sent) + $(json_get "$CJ_TMP/b.json" sent) ))
wait_offsets "$TOPIC" "$GROUP" "$sent" 120 "$CAMJOIN_PID"
gen c "${gen_args[@]}" --seed 103 --id-prefix c
sent=$((sent + $(json_get "$CJ_TMP/c.json" sent)))
wait_offsets "$TOPIC" "$GROUP" "$sent" 120 "$CAMJOIN_PID"
camjoin_stop "$CAMJOIN_PID"
assert_eq "bad release: exit code" 0 "$CAMJOIN_RC"
backlog_bad=$(psql_val "SELECT count(*) FROM camera_events WHERE event_id LIKE 'b%' AND site_id = 'bad-site'")
((backlog_bad > 0)) || fail "the bad release wrote no row of the backlog: the test would prove nothing"
echo "  ok  the bad release wrote $backlog_bad backlog rows with the bad site"
# where the replay must start, without ingested_at: per partition, the first
# offset written (row or dead letter) at or after the offset the bad release
# was positioned at (its 'partition positioned' lines)
want_from=""
while IFS=: read -r part pos; do
    first=$(psql_val "SELECT min(o) FROM (SELECT kafka_offset AS o FROM camera_events
                      WHERE kafka_partition = $part AND kafka_offset >= $pos
                      UNION ALL SELECT kafka_offset FROM camjoin_dead_letters
                      WHERE kafka_partition = $part AND kafka_offset >= $pos) x")
    want_from+="${want_from:+,}$part:$first"
done < <(sed -nE 's/.*msg="partition positioned" partition=([0-9]+) offset=([0-9]+).*/\1:\2/p' \
    "$CJ_TMP/bad.log" | sort -t: -k1,1n)

dump() {  # DB: rows, dead letters and the rollup's non-empty groups, ordered
    PGDATABASE=$1 psql -XAtq -v ON_ERROR_STOP=1 <<'SQL'
COPY (SELECT event_id, event_ts, camera_id, event_type, confidence, object_count, attributes::text,
             site_id, site_name, zone, latitude, longitude, kafka_partition, kafka_offset
      FROM camera_events ORDER BY event_id, event_ts) TO STDOUT;
COPY (SELECT topic, kafka_partition, kafka_offset, reason, encode(payload, 'hex')
      FROM camjoin_dead_letters ORDER BY topic, kafka_partition, kafka_offset) TO STDOUT;
COPY (SELECT minute, site_id, site_name, zone, camera_id, event_type, events, object_count_sum,
             confidence_max
      FROM camera_events_minute WHERE events <> 0 ORDER BY 1, 2, 3, 4, 5, 6) TO STDOUT;
SQL
}

echo "5a. the undisturbed run, into a second database"
psql_val "CREATE DATABASE undisturbed" >/dev/null
camjoin_start undisturbed -c "$CONF" --pg "postgresql://postgres@127.0.0.1:$PGPORT/undisturbed" \
    --group rb-undisturbed --replay-from earliest --until-end
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "undisturbed run: exit code" 0 "$CAMJOIN_RC"
dump undisturbed >"$CJ_TMP/undisturbed.dump"
dump camjoin >"$CJ_TMP/before.dump"
! cmp -s "$CJ_TMP/before.dump" "$CJ_TMP/undisturbed.dump" ||
    fail "before the runbook the table already equals the undisturbed run"

echo "4. the runbook, as README.md prints it"
awk '/runbook:bad-deploy/ { on = 1; next } on && /^```sh$/ { blk = 1; next }
     blk && /^```$/ { exit } blk { print }' "$CAMJOIN_SRC/README.md" >"$CJ_TMP/runbook.sh"
[[ -s "$CJ_TMP/runbook.sh" ]] || fail "no runbook:bad-deploy block in README.md"
rc=0
(cd "$RB" && PATH="$CAMJOIN_BIN:$PATH" PG=$CAMJOIN_PG_URI CONF=$CONF T0=$T0 PGPASSFILE=/nonexistent \
    bash -e "$CJ_TMP/runbook.sh") >"$CJ_TMP/runbook.out" 2>&1 || rc=$?
[[ $rc == 0 ]] || fail "the runbook exited $rc: $(tail -n 5 "$CJ_TMP/runbook.out")"
assert_eq "dry run: one line per partition" "$PARTS" "$(grep -c '^partition=' "$RB/replay-plan.txt")"
assert_eq "dry run: the starts = where the bad release began" "$want_from" \
    "$(sed -nE 's/^partition=([0-9]+) start=([0-9]+) .*/\1:\2/p' "$RB/replay-plan.txt" | paste -sd,)"
sed 's/^/    /' "$RB/replay-plan.txt"

echo "5b. the table against the undisturbed run"
dump camjoin >"$CJ_TMP/after.dump"
cmp -s "$CJ_TMP/after.dump" "$CJ_TMP/undisturbed.dump" ||
    fail "after the runbook the table differs from the undisturbed run: $(diff "$CJ_TMP/after.dump" "$CJ_TMP/undisturbed.dump" | head -n 6)"
read -r rows dead groups <<<"$(psql_val "SELECT (SELECT count(*) FROM camera_events) || ' ' ||
    (SELECT count(*) FROM camjoin_dead_letters) || ' ' || (SELECT count(*) FROM camera_events_minute WHERE events <> 0)")"
echo "  ok  rows, dead letters and rollup groups equal the undisturbed run's: $rows rows, $dead dead letters, $groups groups"
assert_eq "rollup groups below zero" 0 "$(psql_val "SELECT count(*) FROM camera_events_minute WHERE events < 0")"
assert_eq "rows with the bad site" 0 "$(psql_val "SELECT count(*) FROM camera_events WHERE site_id = 'bad-site'")"
echo "6. --replay-until: a bounded replay into a third database"
psql_val "CREATE DATABASE bounded" >/dev/null
BOUNDED=(-c "$CONF" --pg "postgresql://postgres@127.0.0.1:$PGPORT/bounded" --group rb-bounded
         --replay-from earliest --replay-until 0:100,2:250)
"$CAMJOIN_BIN/camjoin" "${BOUNDED[@]}" --dry-run >"$CJ_TMP/bounded.plan" 2>"$CJ_TMP/bounded.err" ||
    fail "--dry-run with --replay-until: $(cat "$CJ_TMP/bounded.err")"
ends=$(kafka_ends_csv "$TOPIC")
IFS=, read -r _ e1 _ e3 <<<"$ends"
assert_eq "dry run: start:end per partition (listed: the bound; others: the end)" \
    "0:0:100,1:0:${e1#*:},2:0:250,3:0:${e3#*:}" \
    "$(sed -nE 's/^partition=([0-9]+) start=([0-9]+) end=([0-9]+) .*/\1:\2:\3/p' "$CJ_TMP/bounded.plan" | paste -sd,)"
camjoin_start bounded "${BOUNDED[@]}"
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "bounded replay: exit code (every partition at its bound)" 0 "$CAMJOIN_RC"
assert_eq "bounded replay: stored offsets" "0:100,$e1,2:250,$e3" \
    "$(PGDATABASE=bounded psql_val "SELECT string_agg(kafka_partition || ':' || next_offset, ',' ORDER BY kafka_partition)
                                  FROM camjoin_offsets WHERE consumer_group = 'rb-bounded'")"
in_bounds="(kafka_partition = 0 AND kafka_offset < 100) OR kafka_partition IN (1, 3)
           OR (kafka_partition = 2 AND kafka_offset < 250)"
assert_eq "bounded replay: rows = the undisturbed run's rows within the bounds" \
    "$(PGDATABASE=undisturbed psql_val "SELECT count(*) FROM camera_events WHERE $in_bounds")" \
    "$(PGDATABASE=bounded psql_val "SELECT count(*) FROM camera_events")"
assert_eq "bounded replay: rows past a bound" 0 \
    "$(PGDATABASE=bounded psql_val "SELECT count(*) FROM camera_events WHERE NOT ($in_bounds)")"
echo "PASS: t_runbook ($sent messages; $backlog_bad backlog rows repaired; a bounded replay)"
