#!/usr/bin/env bash
# t_rerun — `--until-end` as a backfill, run twice with the same group: the
# first run writes exactly the manifest's end state and exits 0; the second
# resumes from the offsets stored in PostgreSQL, finds nothing new and
# changes nothing (rows, dead letters, max(ingested_at), offsets).
# 20k messages over 3 partitions stay far below the mock's ~5 MiB per
# partition too (CAMJOIN_KAFKA=mock), so producing everything first is safe.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen

TOPIC=rerun-events GROUP=rerun-it PARTS=3

pg_start
kafka_start "$TOPIC" "$PARTS"
gen rerun --topic "$TOPIC" --count 20000 --seed 3003 \
    --dup-ratio 0.10 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    --manifest "$CJ_TMP/rerun.manifest.csv"
log "generator: $(cat "$CJ_TMP/rerun.json")"
camjoin_args "$TOPIC" "$GROUP"

snapshot() {
    psql_val "SELECT (SELECT count(*) FROM camera_events) || ' rows, '
                  || (SELECT count(*) FROM camjoin_dead_letters) || ' dead letters, max(ingested_at) '
                  || coalesce((SELECT max(ingested_at)::text FROM camera_events), '-')
                  || ', offsets ' || (SELECT string_agg(kafka_partition || ':' || next_offset, ','
                                                        ORDER BY kafka_partition)
                                      FROM camjoin_offsets WHERE consumer_group = '$GROUP')"
}

camjoin_start first "${CJ_ARGS[@]}" --until-end
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "first --until-end: exit code" 0 "$CAMJOIN_RC"
assert_final_state "$CJ_TMP/rerun.json" "$CJ_TMP/rerun.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
before=$(snapshot)

camjoin_start second "${CJ_ARGS[@]}" --until-end
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "second --until-end: exit code" 0 "$CAMJOIN_RC"
echo "second run, same group"
assert_eq "state unchanged" "$before" "$(snapshot)"
echo "PASS: t_rerun"
