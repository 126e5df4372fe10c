#!/usr/bin/env bash
# t_startup_wait — startup against a PostgreSQL that is not there yet, and
# against one that will never let camjoin in (docs/ARCHITECTURE.md §1
# "Startup"); and the priorities the journal records.
#
#   1. PostgreSQL down at start (a cluster stopped, its port refusing): camjoin
#      does not exit. It logs "waiting for PostgreSQL" (attempts=1
#      retry_ms=100 first), /healthz answers 200 and /readyz 503 with
#      "waiting for PostgreSQL: PostgreSQL unreachable: <libpq's line>", and
#      systemd (camjoin-notify-recv) gets EXTEND_TIMEOUT_USEC=60100000 (the
#      100 ms backoff + 60 s) and STATUS=waiting for PostgreSQL..., and no
#      READY=1. With stderr on the journal stream, every line carries the
#      sd-daemon prefix of its level (<4> warn, <6> info). Then PostgreSQL
#      starts: camjoin logs "postgres reached after waiting", sends READY=1
#      after it, and commits exactly what was produced meanwhile (rows =
#      the generator's valid_new, offsets = sent); SIGTERM exits 0.
#   2. SIGTERM while waiting: exit 0 within 5 s; nothing was written. That
#      run listens with --http :PORT, on every interface (ss shows a wildcard
#      address).
#   3. Permanent failures exit 1 at once with one line naming the cause,
#      never "waiting": a database that does not exist, a role that does not
#      exist (with the journal's <3> prefix on that line). A wrong password
#      and a missing privilege: t_least_privilege.
#   4. The database missing, found only once PostgreSQL is back: camjoin
#      waits while it is down, then exits 1 with one error line naming it.
#      That run listens with --http localhost:PORT (a host name: a loopback
#      address in ss, /healthz 200 through localhost).
#   5. Control: a JOURNAL_STREAM naming another file adds no prefix.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen camjoin-notify-recv

TOPIC=sw-events GROUP=sw-it PARTS=2
SOCK=$CJ_TMP/notify.sock
OUT=$CJ_TMP/notify.out

pg_start
kafka_start "$TOPIC" "$PARTS"
camjoin_args "$TOPIC" "$GROUP"
HTTP_PORT=$(free_port)
URL="http://127.0.0.1:$HTTP_PORT"
code() { curl -s -o "$CJ_TMP/body" -w '%{http_code}' -m 2 "$1" || true; }
readyz_waiting() { [[ $(code "$URL/readyz") == 503 ]] && grep -q '^waiting for PostgreSQL' "$CJ_TMP/body"; }
journal_of() { stat -c '%d:%i' "$1"; }   # FILE: JOURNAL_STREAM naming it
# lines whose <N> prefix is not their level's (or that have none)
bad_prefixes() {
    awk '{ want = ""; if ($0 ~ / level=error /) want = "<3>"; else if ($0 ~ / level=warn /) want = "<4>";
           else if ($0 ~ / level=info /) want = "<6>"; else if ($0 ~ / level=debug /) want = "<7>";
           if (substr($0, 1, 3) != want) n++ } END { print n + 0 }' "$1"
}
refused="connection to server at \"127.0.0.1\", port $PGPORT failed: Connection refused"

# ------------------------------------------------------- 1. wait, then go on
echo "1. PostgreSQL down at start"
gen swgen --topic "$TOPIC" --rate 4000 --duration 1 --seed 77 --dup-ratio 0.05
sent=$(json_get "$CJ_TMP/swgen.json" sent)
valid=$(json_get "$CJ_TMP/swgen.json" valid_new)
pg_down
notify_recv_start "$SOCK" "$OUT" --timeout 300
: >"$CJ_TMP/wait.log"
JOURNAL_STREAM=$(journal_of "$CJ_TMP/wait.log")
export JOURNAL_STREAM NOTIFY_SOCKET=$SOCK
camjoin_start wait "${CJ_ARGS[@]}" --http "$HTTP_PORT" --set postgres.retry_max=1s
unset JOURNAL_STREAM NOTIFY_SOCKET
pid=$CAMJOIN_PID
wait_for -p "$pid" 20 -- readyz_waiting || fail "/readyz never said 'waiting for PostgreSQL': $(cat "$CJ_TMP/body" 2>/dev/null)"
assert_eq "/readyz body while PostgreSQL is down" \
    "waiting for PostgreSQL: PostgreSQL unreachable: $refused" "$(cat "$CJ_TMP/body")"
assert_eq "/healthz while waiting" 200 "$(code "$URL/healthz")"
sleep 3   # several attempts (100 ms doubling to 1 s)
kill -0 "$pid" 2>/dev/null || fail "camjoin exited while PostgreSQL was down: $(tail -n 3 "$CJ_TMP/wait.log")"
first=$(grep -m1 'msg="waiting for PostgreSQL"' "$CJ_TMP/wait.log" || true)
[[ $first == '<4>'*'level=warn'*"attempts=1 retry_ms=100" ]] ||
    fail "first waiting line: $first"
echo "  ok  still running, logging: ${first:0:120}..."
fields() { cut -d' ' -f5- "$OUT"; }
assert_eq "READY=1 while waiting" 0 "$(fields | grep -c '^READY=1$' || true)"
assert_eq "the first EXTEND_TIMEOUT_USEC (100 ms + 60 s)" "EXTEND_TIMEOUT_USEC=60100000" \
    "$(fields | grep -m1 '^EXTEND_TIMEOUT_USEC=')"
n_ext=$(fields | grep -c '^EXTEND_TIMEOUT_USEC=' || true)
((n_ext >= 3)) || fail "only $n_ext EXTEND_TIMEOUT_USEC in ~3 s of waiting"
assert_eq "STATUS while waiting" "STATUS=waiting for PostgreSQL: PostgreSQL unreachable: $refused" \
    "$(fields | grep -m1 '^STATUS=')"
pg_up
wait_offsets "$TOPIC" "$GROUP" "$sent" 60 "$pid"
assert_eq "rows after the wait (generator's valid_new)" "$valid" "$(psql_val 'SELECT count(*) FROM camera_events')"
assert_eq "distinct event_ids" "$valid" "$(psql_val 'SELECT count(DISTINCT event_id) FROM camera_events')"
assert_eq "/readyz once running" 200 "$(code "$URL/readyz")"
camjoin_stop "$pid"
assert_eq "exit code after SIGTERM" 0 "$CAMJOIN_RC"
notify_recv_stop
grep -q 'msg="postgres reached after waiting" attempts=' "$CJ_TMP/wait.log" ||
    fail "no 'postgres reached after waiting' line"
ready_seq=$(awk '$5 == "READY=1" { print $1; exit }' "$OUT")
last_wait_seq=$(awk '$5 ~ /^STATUS=waiting/ { s = $1 } END { print s }' "$OUT")
[[ -n $ready_seq ]] && ((ready_seq > last_wait_seq)) ||
    fail "READY=1 (datagram ${ready_seq:-none}) not after the last waiting STATUS ($last_wait_seq)"
echo "  ok  READY=1 (datagram $ready_seq) after the waiting STATUS= (last: $last_wait_seq), $n_ext extensions"
assert_eq "journal lines without their level's prefix" 0 "$(bad_prefixes "$CJ_TMP/wait.log")"
echo "  ok  $(wc -l <"$CJ_TMP/wait.log") lines, each with its priority: $(cut -c1-3 "$CJ_TMP/wait.log" | sort | uniq -c | tr -s ' \n' ' ')"

# ------------------------------------------------------ 2. SIGTERM while waiting
echo "2. SIGTERM while waiting"
pg_down
ALL_PORT=$(free_port)
camjoin_start sigterm "${CJ_ARGS[@]}" --group sw-term --http ":$ALL_PORT"
wait_log_count "$CJ_TMP/sigterm.log" 'msg="waiting for PostgreSQL"' 1 20 "$CAMJOIN_PID"
# --http :PORT listens on every interface ([::] takes IPv4 too; 0.0.0.0 without IPv6)
assert_eq "--http :$ALL_PORT listening address" "wildcard" \
    "$(ss -ltnH "sport = :$ALL_PORT" | awk '{ print $4 }' | sed -E 's/^(\*|\[::\]|0\.0\.0\.0):[0-9]+$/wildcard/')"
assert_eq "/healthz through 127.0.0.1 on :PORT" 200 "$(code "http://127.0.0.1:$ALL_PORT/healthz")"
t0=$(now_s)
camjoin_stop "$CAMJOIN_PID" 5
assert_eq "exit code of SIGTERM while waiting" 0 "$CAMJOIN_RC"
grep -q 'msg="signal received while waiting for PostgreSQL, exiting"' "$CJ_TMP/sigterm.log" ||
    fail "no 'signal received while waiting' line: $(tail -n 3 "$CJ_TMP/sigterm.log")"
echo "  ok  exit 0 in $(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }') s"
pg_up

# ------------------------------------------------------ 3. permanent: exit 1 at once
echo "3. permanent failures"
permanent() {  # NAME CONNINFO EXPECTED_LINE
    local rc=0 t0 secs
    : >"$CJ_TMP/$1.err"
    t0=$(now_s)
    JOURNAL_STREAM=$(journal_of "$CJ_TMP/$1.err") timeout 30 "$CAMJOIN_BIN/camjoin" \
        "${CJ_ARGS[@]}" --pg "$2" >/dev/null 2>"$CJ_TMP/$1.err" </dev/null || rc=$?
    secs=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }')
    assert_eq "$1: exit code" 1 "$rc"
    assert_eq "$1: stderr" "<3>camjoin: $3" "$(cat "$CJ_TMP/$1.err")"
    awk -v s="$secs" 'BEGIN { exit !(s < 10) }' || fail "$1: took $secs s"
    echo "  ok  $1 in $secs s"
}
server="connection to server at \"127.0.0.1\", port $PGPORT failed"
permanent "no such database" "postgresql://postgres@127.0.0.1:$PGPORT/nosuchdb" \
    "PostgreSQL refused the connection (not retried): $server: FATAL:  database \"nosuchdb\" does not exist"
permanent "no such role" "postgresql://nobody_here@127.0.0.1:$PGPORT/camjoin" \
    "PostgreSQL refused the connection (not retried): $server: FATAL:  role \"nobody_here\" does not exist"

# ------------------------------------------ 4. permanent, found after a wait
echo "4. a missing database found once PostgreSQL is back"
pg_down
NAME_PORT=$(free_port)
camjoin_start late "${CJ_ARGS[@]}" --group sw-late --pg "postgresql://postgres@127.0.0.1:$PGPORT/nosuchdb" \
    --set postgres.retry_max=1s --http "localhost:$NAME_PORT"
wait_log_count "$CJ_TMP/late.log" 'msg="waiting for PostgreSQL"' 1 20 "$CAMJOIN_PID"
# --http HOST:PORT takes a host name: localhost, a loopback address, not a wildcard
assert_eq "--http localhost:$NAME_PORT listening address" "loopback" \
    "$(ss -ltnH "sport = :$NAME_PORT" | awk '{ print $4 }' | sed -E 's/^(127\.0\.0\.1|\[::1\]):[0-9]+$/loopback/')"
assert_eq "/healthz through localhost" 200 "$(code "http://localhost:$NAME_PORT/healthz")"
pg_up
camjoin_wait "$CAMJOIN_PID" 30
assert_eq "exit code, database missing after the wait" 1 "$CAMJOIN_RC"
assert_eq "error lines" 1 "$(grep -c 'level=error' "$CJ_TMP/late.log" || true)"
last=$(grep 'level=error' "$CJ_TMP/late.log")
grep -qF 'level=error msg="startup failed, not retried" error="PostgreSQL refused the connection (not retried): ' <<<"$last" &&
    grep -qF 'FATAL:  database \"nosuchdb\" does not exist"' <<<"$last" || fail "last line: $last"
echo "  ok  ${last:0:150}..."

# ------------------------------------------------------------ 5. control
echo "5. JOURNAL_STREAM naming another file"
: >"$CJ_TMP/other"
rc=0
JOURNAL_STREAM=$(journal_of "$CJ_TMP/other") "$CAMJOIN_BIN/camjoin" "${CJ_ARGS[@]}" \
    --pg "postgresql://postgres@127.0.0.1:$PGPORT/nosuchdb" >/dev/null 2>"$CJ_TMP/control.err" || rc=$?
assert_eq "exit code" 1 "$rc"
assert_eq "lines with a <N> prefix" 0 "$(grep -c '^<[0-9]>' "$CJ_TMP/control.err" || true)"
echo "PASS: t_startup_wait"
