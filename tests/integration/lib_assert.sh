# shellcheck shell=bash disable=SC2034  # (variables set here are read by the sourcing scripts)
# lib_assert.sh — part of lib.sh (source lib.sh, not this file): the tests'
# expectations, loaded into PostgreSQL so that they are computed in SQL,
# independently from camjoin, and the end-state checks shared by the tests.
#
#   load_manifest FILE / load_cameras / load_messages TOPIC
#       \copy into tables `manifest`, `ref_cameras` and `kafka_messages`
#       (the topic read back with kcat).
#   assert_reasons NAME TOPIC
#       dead letters by reason = the manifest's malformed rows by reason.
#   assert_rows_match_messages TOPIC
#       every row's columns = the Kafka message at its partition and offset.
#   assert_final_state SUMMARY MANIFEST TOPIC GROUP PARTITIONS
#       the exact end-state checks shared by t_core, t_restart and t_rerun
#       (and the fault scenarios).
#   rollup_diff TABLE [counts]
#       the groups of TABLE_minute that differ from the aggregate of TABLE's
#       rows (t_rollup, t_pgbouncer).

load_manifest() {  # FILE (CSV seq,kind,event_id,camera_id,reason; header optional)
    local header=""
    [[ $(head -c 4 "$1") == seq, ]] && header="HEADER,"
    psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS manifest;
CREATE TABLE manifest (seq bigint, kind text, event_id text, camera_id text, reason text);
\copy manifest FROM '$1' WITH (FORMAT csv, ${header} FORCE_NOT_NULL (event_id, camera_id, reason))
SQL
}

load_cameras() {  # the reference CSV as camjoin should see it (empty text = '', empty number = NULL)
    psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS ref_cameras;
CREATE TABLE ref_cameras (camera_id text PRIMARY KEY, site_id text, site_name text,
                          zone text, latitude double precision, longitude double precision);
\copy ref_cameras (camera_id, site_id, site_name, zone, latitude, longitude) FROM '$CAMERAS_CSV' WITH (FORMAT csv, HEADER, FORCE_NOT_NULL (site_id, site_name, zone))
SQL
}

load_messages() {  # TOPIC: every message still in the topic, via kcat, into kafka_messages
    kcat -b "$KAFKA_BROKERS" -t "$1" -C -o beginning -e -q -J 2>"$CJ_TMP/kcat.err" |
        jq -r '[.partition, .offset, .key, .payload] | @csv' >"$CJ_TMP/messages.csv"
    psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS kafka_messages;
CREATE TABLE kafka_messages (kafka_partition integer, kafka_offset bigint, key text, payload text,
                             PRIMARY KEY (kafka_partition, kafka_offset));
\copy kafka_messages FROM '$CJ_TMP/messages.csv' WITH (FORMAT csv)
CREATE INDEX ON kafka_messages (key);
ANALYZE kafka_messages;
SQL
}

# Reasons whose dead-letter count on TOPIC differs from the malformed rows
# of the loaded manifest, by reason: must be 0.
assert_reasons() {  # NAME TOPIC
    assert_eq "$1" 0 \
        "$(psql_val "SELECT count(*) FROM
                       (SELECT reason, count(*) n FROM manifest WHERE kind = 'malformed' GROUP BY 1) m
                       FULL JOIN (SELECT reason, count(*) n FROM camjoin_dead_letters
                                  WHERE topic = '$2' GROUP BY 1) d USING (reason)
                     WHERE m.n IS DISTINCT FROM d.n")"
}

# Each row of camera_events against the Kafka message at its partition and
# offset (loaded into kafka_messages): the message exists, its key is the
# event_id, and every event column is the message's field.
assert_rows_match_messages() {  # TOPIC
    local topic=$1
    load_messages "$topic"
    assert_eq "rows without a Kafka message at their offset" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events e LEFT JOIN kafka_messages k
                     USING (kafka_partition, kafka_offset) WHERE k.payload IS NULL")"
    assert_eq "rows whose columns differ from their message" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events e
                     JOIN kafka_messages k USING (kafka_partition, kafka_offset)
                     CROSS JOIN LATERAL (SELECT k.payload::jsonb AS j) m
                     WHERE k.key IS DISTINCT FROM e.event_id
                        OR e.event_id IS DISTINCT FROM m.j->>'event_id'
                        OR e.camera_id IS DISTINCT FROM m.j->>'camera_id'
                        OR e.event_type IS DISTINCT FROM m.j->>'event_type'
                        OR e.event_ts IS DISTINCT FROM CASE jsonb_typeof(m.j->'event_ts')
                             WHEN 'number' THEN timestamptz 'epoch'
                                                + (m.j->>'event_ts')::bigint * interval '1 ms'
                             ELSE (m.j->>'event_ts')::timestamptz END
                        OR e.confidence IS DISTINCT FROM (m.j->>'confidence')::real
                        OR e.object_count IS DISTINCT FROM (m.j->>'object_count')::integer
                        OR e.attributes IS DISTINCT FROM nullif(m.j - 'event_id' - 'camera_id'
                             - 'event_ts' - 'event_type' - 'confidence' - 'object_count', '{}')")"
}

# The exact end state after every produced message has been consumed:
# rows = the manifest's valid events (as a set, no duplicates), each row's
# columns = its Kafka message, site columns = the reference table, dead
# letters = the malformed messages (payload and reason per message, once
# each), offsets = the end of every partition.
assert_final_state() {  # SUMMARY_JSON MANIFEST TOPIC GROUP PARTITIONS
    local summary=$1 manifest=$2 topic=$3 group=$4 parts=$5
    local sent valid_new malformed unknown expected_offsets
    sent=$(json_get "$summary" sent)
    valid_new=$(json_get "$summary" valid_new)
    malformed=$(json_get "$summary" malformed)
    unknown=$(json_get "$summary" unknown_camera)
    load_manifest "$manifest"
    load_cameras

    echo "event rows"
    assert_eq "manifest rows = sent" "$sent" "$(psql_val "SELECT count(*) FROM manifest")"
    assert_eq "manifest distinct valid ids = valid_new" "$valid_new" \
        "$(psql_val "SELECT count(DISTINCT event_id) FROM manifest WHERE kind = 'valid'")"
    assert_eq "count(camera_events) = valid_new" "$valid_new" \
        "$(psql_val "SELECT count(*) FROM camera_events")"
    assert_eq "duplicate event_ids in camera_events" 0 \
        "$(psql_val "SELECT count(*) - count(DISTINCT event_id) FROM camera_events")"
    assert_eq "ids in table, not valid in manifest" 0 \
        "$(psql_val "SELECT count(*) FROM (SELECT event_id FROM camera_events
                     EXCEPT SELECT event_id FROM manifest WHERE kind = 'valid') x")"
    assert_eq "valid ids in manifest, not in table" 0 \
        "$(psql_val "SELECT count(*) FROM (SELECT event_id FROM manifest WHERE kind = 'valid'
                     EXCEPT SELECT event_id FROM camera_events) x")"
    assert_eq "rows whose camera_id differs from the manifest" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events e JOIN manifest m
                     ON m.event_id = e.event_id AND m.kind = 'valid'
                     WHERE m.camera_id IS DISTINCT FROM e.camera_id")"

    echo "row contents (each row against the Kafka message at its partition/offset)"
    assert_rows_match_messages "$topic"
    assert_eq "dead letters whose payload differs from their message" 0 \
        "$(psql_val "SELECT count(*) FROM camjoin_dead_letters d
                     LEFT JOIN kafka_messages k USING (kafka_partition, kafka_offset)
                     WHERE d.topic = '$topic' AND (k.kafka_offset IS NULL
                        OR coalesce(d.payload, '') <> coalesce(convert_to(k.payload, 'UTF8'), ''))")"
    assert_eq "dead letters whose reason differs from the manifest's" 0 \
        "$(psql_val "SELECT count(*) FROM camjoin_dead_letters d
                     LEFT JOIN kafka_messages k USING (kafka_partition, kafka_offset)
                     LEFT JOIN manifest m ON m.kind = 'malformed' AND m.event_id = k.key
                     WHERE d.topic = '$topic' AND m.reason IS DISTINCT FROM d.reason")"

    echo "join"
    assert_eq "matched rows = valid manifest ids with a known camera" \
        "$(psql_val "SELECT count(DISTINCT event_id) FROM manifest m
                     WHERE kind = 'valid' AND camera_id IN (SELECT camera_id FROM ref_cameras)")" \
        "$(psql_val "SELECT count(*) FROM camera_events e JOIN ref_cameras r USING (camera_id)")"
    assert_eq "matched rows with site columns != reference" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events e JOIN ref_cameras r USING (camera_id)
                     WHERE e.site_id IS DISTINCT FROM r.site_id
                        OR e.site_name IS DISTINCT FROM r.site_name
                        OR e.zone IS DISTINCT FROM r.zone
                        OR e.latitude IS DISTINCT FROM r.latitude
                        OR e.longitude IS DISTINCT FROM r.longitude")"
    assert_eq "unknown-camera rows = unknown_camera" "$unknown" \
        "$(psql_val "SELECT count(*) FROM camera_events
                     WHERE camera_id NOT IN (SELECT camera_id FROM ref_cameras)")"
    assert_eq "unknown-camera rows with a non-NULL site column" 0 \
        "$(psql_val "SELECT count(*) FROM camera_events
                     WHERE camera_id NOT IN (SELECT camera_id FROM ref_cameras)
                       AND (site_id IS NOT NULL OR site_name IS NOT NULL OR zone IS NOT NULL
                            OR latitude IS NOT NULL OR longitude IS NOT NULL)")"

    echo "dead letters"
    assert_eq "manifest malformed rows = malformed" "$malformed" \
        "$(psql_val "SELECT count(*) FROM manifest WHERE kind = 'malformed'")"
    assert_eq "count(camjoin_dead_letters) = malformed" "$malformed" \
        "$(psql_val "SELECT count(*) FROM camjoin_dead_letters WHERE topic = '$topic'")"
    assert_eq "dead letters stored more than once" 0 \
        "$(psql_val "SELECT count(*) - count(DISTINCT (kafka_partition, kafka_offset))
                     FROM camjoin_dead_letters WHERE topic = '$topic'")"
    assert_reasons "reasons whose count differs from the manifest" "$topic"
    assert_eq "summary malformed_by_reason = manifest reasons" \
        "$(psql_val "SELECT string_agg(reason || '=' || n, ',' ORDER BY reason) FROM
                     (SELECT reason, count(*) n FROM manifest WHERE kind = 'malformed' GROUP BY 1) m")" \
        "$(jq -r '.malformed_by_reason | to_entries | map(select(.value > 0)) | sort_by(.key)
                  | map("\(.key)=\(.value)") | join(",")' "$summary")"
    psql_val "SELECT '    ' || reason || ': ' || count(*) FROM camjoin_dead_letters
              WHERE topic = '$topic' GROUP BY reason ORDER BY reason"

    echo "offsets"
    expected_offsets=$(kafka_end_offsets "$topic")
    # Information only: a start above 0 means retention (the mock's ~5 MiB a
    # partition) dropped old messages, after or (if rows are missing) before
    # camjoin read them.
    echo "    log start offsets: $(kafka_start_offsets "$topic" "$parts" | tr '\n' ' ')"
    assert_eq "partitions with messages" "$parts" "$(awk '$2 > 0' <<<"$expected_offsets" | wc -l)"
    assert_eq "sum of partition end offsets = sent" "$sent" \
        "$(awk '{ s += $2 } END { print s }' <<<"$expected_offsets")"
    assert_eq "camjoin_offsets per partition = partition end offsets" \
        "$(tr ' \n' ': ' <<<"$expected_offsets")" \
        "$(psql_val "SELECT kafka_partition || ':' || next_offset FROM camjoin_offsets
                     WHERE consumer_group = '$group' AND topic = '$topic'
                     ORDER BY kafka_partition" | tr '\n' ' ')"
}

# rollup_diff TABLE [counts]: groups where TABLE_minute differs from TABLE's
# aggregates (with "counts": in events or object_count_sum, or confidence_max
# below the rows' max; a DELETE does not recompute confidence_max)
rollup_diff() {
    local cmax="a.cmax IS DISTINCT FROM r.confidence_max"
    [[ ${2:-} != counts ]] || cmax="a.cmax > r.confidence_max OR (a.cmax IS NOT NULL AND r.confidence_max IS NULL)"
    psql_val "SELECT count(*) FROM
        (SELECT date_trunc('minute', event_ts, 'UTC') AS minute, site_id, zone, camera_id, event_type,
                count(*) AS events, coalesce(sum(object_count), 0) AS ocs, max(confidence) AS cmax
           FROM $1 GROUP BY 1, 2, 3, 4, 5) a
        FULL JOIN ${1}_minute r ON a.minute = r.minute AND a.camera_id = r.camera_id
         AND a.event_type = r.event_type AND a.site_id IS NOT DISTINCT FROM r.site_id
         AND a.zone IS NOT DISTINCT FROM r.zone
        WHERE a.events IS DISTINCT FROM r.events OR a.ocs IS DISTINCT FROM r.object_count_sum
           OR $cmax"
}
