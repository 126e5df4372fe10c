#!/usr/bin/env bash
# t_compression — the same data produced with each of Kafka's codecs
# (gzip, snappy, lz4, zstd) gives exactly the same rows.
#
# For each codec, camjoin-gen produces the same seeded stream (6,000
# messages on 2 partitions: duplicates, unknown cameras, malformed messages)
# to a topic of its own with `-X compression.codec=CODEC` (librdkafka's
# producer, as `kcat -z CODEC` would). The broker must store it compressed
# with that codec: Kafka's DumpLogSegments reads the topic's log files and
# every record batch of two or more records must carry `compresscodec:
# CODEC`. librdkafka sends a batch uncompressed when compressing it would
# make it larger, which happens to a batch of one small record (a lone
# message at the start or end of a linger window); such a batch may be
# stored as `none`, and only such a batch. Then camjoin
# --until-end consumes it into emptied tables, and the end state must be
# exact against the generator's manifest (assert_final_state: rows by id
# and column, the join, dead letters by reason, offsets at the partition
# ends). The manifests of the four runs must be identical.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_real_kafka
need_bin camjoin camjoin-gen

PARTS=2 COUNT=6000
pg_start
for codec in gzip snappy lz4 zstd; do
    topic=codec-$codec
    echo "codec $codec"
    kafka_start "$topic" "$PARTS"
    gen "$codec" --topic "$topic" --count "$COUNT" --seed 707 --dup-ratio 0.08 \
        --unknown-camera-ratio 0.02 --malformed-ratio 0.02 --manifest "$CJ_TMP/$codec.csv" \
        -X compression.codec="$codec" -X linger.ms=20
    cmp -s "$CJ_TMP/gzip.csv" "$CJ_TMP/$codec.csv" || fail "$codec: the manifest differs from gzip's"
    for ((p = 0; p < PARTS; p++)); do
        kafka_codecs "$topic" "$p" >"$CJ_TMP/$topic-$p.codecs"
        codecs=$(awk '$2 > 1 { print $1 }' "$CJ_TMP/$topic-$p.codecs" | sort -u | paste -sd, -)
        assert_eq "$topic[$p]: codec of every stored batch of 2+ records" "$codec" "$codecs"
        other=$(awk -v c="$codec" '$1 != c && !($1 == "none" && $2 == 1)' "$CJ_TMP/$topic-$p.codecs" | paste -sd, -)
        assert_eq "$topic[$p]: other batches (only lone records may be 'none')" "" "$other"
    done
    psql_val "TRUNCATE camera_events, camjoin_dead_letters" >/dev/null 2>&1 || true
    camjoin_args "$topic" "g-$codec"
    camjoin_start "run-$codec" "${CJ_ARGS[@]}" --until-end
    camjoin_wait "$CAMJOIN_PID" 120
    assert_eq "$codec: camjoin --until-end exit code" 0 "$CAMJOIN_RC"
    assert_final_state "$CJ_TMP/$codec.json" "$CJ_TMP/$codec.csv" "$topic" "g-$codec" "$PARTS"
done
echo "PASS t_compression"
