#!/usr/bin/env bash
# t_pgbouncer — camjoin through a real PgBouncer (Debian's package), in
# session pooling and in transaction pooling (README "Behind PgBouncer").
#
# One topic of 20k messages (duplicates, unknown cameras, malformed ones) is
# read with --until-end four times, each run into its own database behind
# its own pool. server_round_robin=1 and three server connections per pool
# make PgBouncer hand a client's consecutive transactions to different
# server connections, which is what breaks a client that keeps state in its
# session; batches of at most 1,000 rows make 20 and more transactions a run.
#   1. session pool, postgres.pool_mode=session: the final state is exactly
#      the manifest's (rows, join, dead letters, offsets) and the rollup
#      equals the rows' aggregate.
#   2. transaction pool, postgres.pool_mode=transaction (upkeep straight to
#      PostgreSQL): the same; and afterwards no server connection of the
#      pool carries camjoin's idle_in_transaction_session_timeout, and no
#      temporary staging table is left in PostgreSQL.
#   3. the same with postgres.write_mode=staged (the ON CONFLICT path's
#      staging tables, per transaction).
#   4. the control: postgres.pool_mode=session through the transaction pool
#      cannot finish (its staging table is on another server connection),
#      and stores no offset past what it wrote.
#   5. a statement pool (no transaction blocks): exit 1, one line naming it.
#   6. PostgreSQL down behind the session pool at startup: camjoin waits
#      (PgBouncer's query_wait_timeout, 5 s here, and "cannot connect to
#      server" are transient), then writes.
#   And pool_mode=transaction without postgres.upkeep_conninfo is refused
#   (exit 2, one line naming the key).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen
PGBOUNCER=${PGBOUNCER:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
[[ -x $PGBOUNCER ]] || fail "pgbouncer not found (Debian package pgbouncer)"

TOPIC=pgb-events PARTS=4 POOL=3

pg_start
for db in sess txn txn_staged control stmt; do psql_val "CREATE DATABASE $db" >/dev/null; done
kafka_start "$TOPIC" "$PARTS"
gen pgb --topic "$TOPIC" --count 20000 --seed 4242 \
    --dup-ratio 0.10 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    --manifest "$CJ_TMP/pgb.manifest.csv"
log "generator: $(cat "$CJ_TMP/pgb.json")"

# PgBouncer refuses to run as root: it runs as the cluster's owner, from a
# directory in the cluster's (removed with it)
BDIR=$PG_DIR/pgbouncer
mkdir "$BDIR"
[[ $EUID -ne 0 ]] || chown postgres: "$BDIR"
BPORT=$(free_port)
{
    echo "[databases]"
    for db in sess txn txn_staged control stmt; do
        mode=transaction
        [[ $db != sess ]] || mode=session
        [[ $db != stmt ]] || mode=statement
        echo "$db = host=127.0.0.1 port=$PGPORT dbname=$db pool_mode=$mode pool_size=$POOL min_pool_size=$POOL"
    done
    echo "[pgbouncer]"
    echo "listen_addr = 127.0.0.1"
    echo "listen_port = $BPORT"
    echo "unix_socket_dir ="
    echo "auth_type = trust"
    echo "auth_file = $BDIR/users.txt"
    echo "server_round_robin = 1"
    # a query held while PostgreSQL is down fails after 5 s (default 120 s)
    echo "query_wait_timeout = 5"
    echo "server_login_retry = 1"
    echo "logfile = $BDIR/pgbouncer.log"
    echo "pidfile = $BDIR/pgbouncer.pid"
} >"$BDIR/pgbouncer.ini"
echo '"postgres" ""' >"$BDIR/users.txt"
chmod a+r "$BDIR"/*
if [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$PGBOUNCER" -d "$BDIR/pgbouncer.ini"
else
    "$PGBOUNCER" -d "$BDIR/pgbouncer.ini"
fi
wait_for 10 -- test -s "$BDIR/pgbouncer.pid" || fail "pgbouncer did not start: $(tail -n 5 "$BDIR/pgbouncer.log")"
CAMJOIN_PIDS+=("$(cat "$BDIR/pgbouncer.pid")") # stopped by the EXIT trap
log "$("$PGBOUNCER" --version | head -n 1) on 127.0.0.1:$BPORT, $POOL server connections per pool"
bouncer() { echo "postgresql://postgres@127.0.0.1:$BPORT/$1"; }
direct() { echo "postgresql://postgres@127.0.0.1:$PGPORT/$1"; }
# every transaction pool gets its POOL server connections now: POOL clients
# at once (round robin needs them to exist)
for db in txn txn_staged control; do
    pids=()
    for ((i = 0; i < POOL; i++)); do
        psql -XAtq "$(bouncer "$db")" -c "SELECT pg_sleep(0.5)" >/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
    assert_eq "server connections to database $db" "$POOL" \
        "$(PGDATABASE=postgres psql_val "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'")"
done

run_through() {  # NAME DATABASE CAMJOIN_ARGS...: --until-end through the pool, exit 0
    local name=$1 db=$2
    shift 2
    camjoin_args "$TOPIC" "pgb-$name"
    camjoin_start "$name" "${CJ_ARGS[@]}" --pg "$(bouncer "$db")" --until-end \
        --set batch.max_rows=1000 "$@"
    camjoin_wait "$CAMJOIN_PID" 120
    assert_eq "$name: exit code" 0 "$CAMJOIN_RC"
}

check_run() {  # NAME DATABASE: the final state of that run, and its rollup
    echo "$1: final state in database $2"
    PGDATABASE=$2 assert_final_state "$CJ_TMP/pgb.json" "$CJ_TMP/pgb.manifest.csv" \
        "$TOPIC" "pgb-$1" "$PARTS"
    assert_eq "$1: rollup groups that differ from the rows' aggregate" 0 \
        "$(PGDATABASE=$2 rollup_diff camera_events)"
    assert_eq "$1: events in the rollup = rows" \
        "$(PGDATABASE=$2 psql_val "SELECT count(*) FROM camera_events")" \
        "$(PGDATABASE=$2 psql_val "SELECT sum(events) FROM camera_events_minute")"
}

# what camjoin leaves on the pool's server connections: each SHOW runs on
# the next one (round robin), so POOL of them see every connection
leftovers() {  # DATABASE: "timeouts temp_tables"
    local i t=()
    for ((i = 0; i < POOL; i++)); do
        t+=("$(psql -XAtq "$(bouncer "$1")" -c "SHOW idle_in_transaction_session_timeout")")
    done
    echo "${t[*]} / $(PGDATABASE=$1 psql_val "SELECT count(*) FROM pg_class
                          WHERE relpersistence = 't' AND relname LIKE 'camjoin_stage%'")"
}

echo "1. session pooling"
run_through sess sess
check_run sess sess

echo "2. transaction pooling"
camjoin_args "$TOPIC" pgb-refused
"$CAMJOIN_BIN/camjoin" "${CJ_ARGS[@]}" --pg "$(bouncer txn)" --set postgres.pool_mode=transaction \
    --check-config >"$CJ_TMP/refused.out" 2>&1 && rc=0 || rc=$?
assert_eq "pool_mode=transaction without upkeep_conninfo: exit code" 2 "$rc"
assert_eq "pool_mode=transaction without upkeep_conninfo: the message" \
    "camjoin: postgres.pool_mode=transaction needs postgres.upkeep_conninfo: the partition upkeep holds a session advisory lock and session settings, so it must reach PostgreSQL itself or a session pool" \
    "$(head -n 1 "$CJ_TMP/refused.out")"
run_through txn txn --set postgres.pool_mode=transaction \
    --set postgres.upkeep_conninfo="$(direct txn)"
check_run txn txn
assert_eq "txn: the pool's timeouts / temporary staging tables left" \
    "$(printf '0 %.0s' $(seq "$POOL"))/ 0" "$(leftovers txn)"

echo "3. transaction pooling, staged writes"
run_through txn_staged txn_staged --set postgres.pool_mode=transaction \
    --set postgres.upkeep_conninfo="$(direct txn_staged)" --set postgres.write_mode=staged
check_run txn_staged txn_staged
assert_eq "txn_staged: the pool's timeouts / temporary staging tables left" \
    "$(printf '0 %.0s' $(seq "$POOL"))/ 0" "$(leftovers txn_staged)"

echo "4. control: session mode through the transaction pool"
camjoin_args "$TOPIC" pgb-control
camjoin_start control "${CJ_ARGS[@]}" --pg "$(bouncer control)" --until-end --set batch.max_rows=1000
wait_log_count "$CJ_TMP/control.log" \
    "behind a transaction-pooling PgBouncer, set postgres.pool_mode=transaction" 1 60 "$CAMJOIN_PID"
camjoin_stop "$CAMJOIN_PID" 30
assert_eq "control: rows whose offsets are not stored" 0 \
    "$(PGDATABASE=control psql_val "SELECT count(*) FROM camera_events e LEFT JOIN camjoin_offsets o
        ON o.consumer_group = 'pgb-control' AND o.kafka_partition = e.kafka_partition
        WHERE o.next_offset IS NULL OR e.kafka_offset >= o.next_offset")"
echo "5. statement pooling: refused, in one line"
camjoin_args "$TOPIC" pgb-stmt
camjoin_start stmt "${CJ_ARGS[@]}" --pg "$(bouncer stmt)" --until-end
camjoin_wait "$CAMJOIN_PID" 60
assert_eq "statement pool: exit code" 1 "$CAMJOIN_RC"
assert_eq "statement pool: the last line names it" 1 \
    "$(tail -n 1 "$CJ_TMP/stmt.log" | grep -c "^camjoin: PostgreSQL schema setup failed (not retried): PgBouncer's statement pooling refuses transaction blocks")"

echo "6. PostgreSQL down behind the session pool at startup: waited for"
pg_down
camjoin_args "$TOPIC" pgb-wait
camjoin_start wait "${CJ_ARGS[@]}" --pg "$(bouncer sess)" --until-end
wait_log_count "$CJ_TMP/wait.log" 'msg="waiting for PostgreSQL"' 1 60 "$CAMJOIN_PID"
pg_up
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "after the wait: exit code" 0 "$CAMJOIN_RC"
assert_eq "after the wait: the group's stored offsets = partition ends" \
    "$(kafka_ends_csv "$TOPIC")" \
    "$(PGDATABASE=sess stored_offsets_csv pgb-wait)"
assert_eq "after the wait: rows (the same events again: none added)" "$(json_get "$CJ_TMP/pgb.json" valid_new)" \
    "$(PGDATABASE=sess psql_val "SELECT count(*) FROM camera_events")"
echo "PASS: t_pgbouncer"
