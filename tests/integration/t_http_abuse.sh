#!/usr/bin/env bash
# t_http_abuse — camjoin's HTTP endpoint (--http, loopback) under abuse while
# events flow at 2,000/s (http_abuse.py runs each attack):
#   flood      2,000 idle connections at once: HTTP_CONN_MAX (256) are held,
#              every other one is answered 503 at once
#   slowloris  a head sent a byte a second: 408 after about 5 s
#   bighead    a 1 MiB header: 431; badbytes, a request line of bytes
#              0x80-0xff: 400; POST, PUT, DELETE: 405; `..` paths: 404;
#              two pipelined requests: one response
# For each window (a quiet one first) the rate of committed messages is
# measured against the generator's; camjoin's descriptors and resident memory
# are sampled throughout. Then the end state is exact (t_core's checks), the
# process is the one that started, and /healthz answers 200.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen

TOPIC=http-abuse GROUP=http-abuse PARTS=4 RATE=2000 DURATION=45
CONN_MAX=256   # HTTP_CONN_MAX in include/camjoin/http.h
ANSWERING=64   # HTTP_ANSWERING_MAX in src/http.c: 503s in flight past the cap
abuse() { python3 "$CAMJOIN_SRC/tests/integration/http_abuse.py" "$PORT" "$@"; }

# under AddressSanitizer, freed memory waits in a 256 MiB quarantine by
# default: keep it small, so that RSS means what it means without ASan
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"

pg_start
kafka_start "$TOPIC" "$PARTS"
PORT=$(free_port)
camjoin_args "$TOPIC" "$GROUP"
camjoin_start abuse "${CJ_ARGS[@]}" --http "$PORT"
pid=$CAMJOIN_PID
wait_for 30 -- curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" || fail "no /healthz"
gen_start load --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed 9191 \
    --dup-ratio 0.05 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    --manifest "$CJ_TMP/load.manifest.csv"
wait_progress "$TOPIC" "$GROUP" "$((RATE * 3))" 60 "$pid"

# camjoin's descriptors and RSS every 0.1 s, "fds rss_kib" a line
( while kill -0 "$pid" 2>/dev/null; do
      echo "$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) $(vmrss_kib "$pid")"
      sleep 0.1
  done ) >"$CJ_TMP/res.txt" &
CAMJOIN_PIDS+=("$!")
base_fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
base_rss=$(vmrss_kib "$pid")

window() {  # NAME COMMAND...: runs it; its output in $CJ_TMP/NAME.json; the rate into RATES
    local name=$1 a b t0 t1
    shift
    a=$(_offsets_sum "$TOPIC" "$GROUP")
    t0=$(now_s)
    "$@" >"$CJ_TMP/$name.json"
    t1=$(now_s)
    b=$(_offsets_sum "$TOPIC" "$GROUP")
    RATES[$name]=$(awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }')
    log "$name: $(cat "$CJ_TMP/$name.json") committed ${RATES[$name]} messages/s"
}
declare -A RATES=()
quiet() { sleep 4; echo '{}'; }
short_ones() {  # the quick attacks, one after the other for 4 s; the last round's answers
    local end=$(($(date +%s) + 4)) out
    while (($(date +%s) < end)); do
        out=$(for a in bighead badbytes methods dotdot pipeline; do abuse "$a"; done)
    done
    echo "$out"
}
window quiet quiet
window flood abuse flood 4.5
window slowloris abuse slowloris
window short short_ones

echo "answers"
assert_eq "flood: answered 503 at once / held open, unanswered" \
    "{\"503\": $((2000 - CONN_MAX))} / $CONN_MAX" \
    "$(jq -c '.statuses' "$CJ_TMP/flood.json" | sed 's/:/: /') / $(jq .unanswered_open "$CJ_TMP/flood.json")"
assert_eq "slowloris: status" 408 "$(jq .status "$CJ_TMP/slowloris.json")"
jq -e '.after_s >= 4.5 and .after_s <= 7' "$CJ_TMP/slowloris.json" >/dev/null ||
    fail "slowloris answered after $(jq .after_s "$CJ_TMP/slowloris.json") s, expected about 5"
{ read -r bighead; read -r badbytes; read -r methods; read -r dotdot; read -r pipeline; } <"$CJ_TMP/short.json"
assert_eq "a 1 MiB header" '{"status": 431}' "$bighead"
assert_eq "a request line of bytes 0x80-0xff" '{"status": 400}' "$badbytes"
assert_eq "POST, PUT, DELETE" '{"DELETE": 405, "POST": 405, "PUT": 405}' "$methods"
assert_eq ".. paths" '{"/../../etc/passwd": 404, "/metrics/../metrics": 404}' "$dotdot"
assert_eq "two pipelined requests" '{"responses": 1, "status": 200}' "$pipeline"
assert_eq "/healthz after the attacks" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")"

echo "ingestion during each window (messages committed per second; the generator sends $RATE)"
for w in quiet flood slowloris short; do
    r=${RATES[$w]}
    awk -v r="$r" -v g="$RATE" 'BEGIN { exit !(r >= 0.8 * g) }' ||
        fail "$w: $r messages/s committed, under 80 % of the $RATE sent"
    printf '  ok  %-58s %s\n' "$w: committed messages/s" "$r"
done

gen_wait load
wait_offsets "$TOPIC" "$GROUP" "$(json_get "$CJ_TMP/load.json" sent)" 120 "$pid"
kill -0 "$pid" 2>/dev/null || fail "camjoin is gone"
read -r max_fds max_rss <<<"$(awk '$1 > f { f = $1 } $2 > r { r = $2 } END { print f, r }' "$CJ_TMP/res.txt")"
echo "resources (sampled every 0.1 s)"
((max_fds <= base_fds + CONN_MAX + ANSWERING + 16)) ||
    fail "descriptors peaked at $max_fds, over $base_fds + $CONN_MAX + $ANSWERING + 16"
printf '  ok  %-58s %s\n' "descriptors: before, peak (caps $CONN_MAX + $ANSWERING)" "$base_fds, $max_fds"
((max_rss <= base_rss + 32768)) || fail "RSS peaked at $max_rss KiB, over $base_rss + 32 MiB"
printf '  ok  %-58s %s\n' "RSS KiB: before, peak" "$base_rss, $max_rss"
camjoin_stop "$pid"
assert_eq "exit code after SIGTERM (the same process all along)" 0 "$CAMJOIN_RC"
assert_final_state "$CJ_TMP/load.json" "$CJ_TMP/load.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "FIGURES t_http_abuse: sent_rate=$RATE quiet=${RATES[quiet]} flood=${RATES[flood]}" \
     "slowloris=${RATES[slowloris]} short=${RATES[short]} fds=$base_fds/$max_fds" \
     "rss_kib=$base_rss/$max_rss"
echo "PASS: t_http_abuse"
