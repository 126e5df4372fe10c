#!/usr/bin/env bash
# t_core — the whole path, live: camjoin consumes while camjoin-gen produces
# 100k messages (10% duplicates, 2% unknown cameras, 1% malformed) to a
# 4-partition topic; after a graceful stop the tables must equal exactly what
# the generator's manifest says (assert_final_state in lib.sh).
#
# The data is consumed while it is produced (the mock, CAMJOIN_KAFKA=mock,
# keeps only ~5 MiB per partition).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen

TOPIC=core-events GROUP=core-it PARTS=4
RATE=${T_CORE_RATE:-25000} DURATION=${T_CORE_DURATION:-4}   # 100k messages

pg_start
kafka_start "$TOPIC" "$PARTS"
camjoin_args "$TOPIC" "$GROUP"
t_start=$(now_s)
camjoin_start core "${CJ_ARGS[@]}"
pid=$CAMJOIN_PID
wait_progress "$TOPIC" "$GROUP" 0 30 "$pid"   # schema created, PostgreSQL reachable

log "producing $((RATE * DURATION)) messages at $RATE/s"
t_gen=$(now_s)
gen core --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed 1001 \
    --dup-ratio 0.10 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    --manifest "$CJ_TMP/core.manifest.csv"
sent=$(json_get "$CJ_TMP/core.json" sent)
log "generator: $(cat "$CJ_TMP/core.json")"

wait_offsets "$TOPIC" "$GROUP" "$sent" 120 "$pid"
camjoin_stop "$pid"
assert_eq "camjoin exit code after SIGTERM" 0 "$CAMJOIN_RC"

assert_final_state "$CJ_TMP/core.json" "$CJ_TMP/core.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"

last_commit=$(psql_val "SELECT extract(epoch FROM max(updated_at)) FROM camjoin_offsets
                        WHERE consumer_group = '$GROUP' AND topic = '$TOPIC'")
awk -v n="$sent" -v g="$t_gen" -v s="$t_start" -v c="$last_commit" 'BEGIN {
    printf "end-to-end: %d messages, generator start to last commit %.2f s = %.0f msg/s (camjoin start to last commit %.2f s)\n",
           n, c - g, n / (c - g), c - s }'
echo "PASS: t_core ($sent messages)"
