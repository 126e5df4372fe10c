# shellcheck shell=bash disable=SC2034  # (variables set here are read by the sourcing scripts)
# lib_pg.sh — part of lib.sh (source lib.sh, not this file): the test's own
# PostgreSQL 15 cluster and what the tests ask it.
#
#   pg_start / pg_stop / pg_down / pg_up / pg_restart
#       a throwaway PostgreSQL 15 cluster on a free loopback port (owned by
#       the `postgres` user when run as root), database `camjoin`; exports
#       PGHOST PGPORT PGUSER PGDATABASE and CAMJOIN_PG_URI. pg_down stops it
#       (immediate), pg_up starts it again on the same data; pg_stop (the
#       EXIT trap's) also removes it.
#   psql_val SQL
#       the value(s) of one query, unaligned, no header.
#   pg_lock_hold APP / pg_lock_release APP
#       a session holding an exclusive lock on camera_events (COPY waits).
#   pg_backend_state PID
#       pg_stat_activity state(s) of the backend(s) of client process PID
#       (matched by its TCP ports to $PGPORT, read with ss -p), one line each
#       as "state|query prefix"; nothing when it has no connection.

PG_DIR=""   # the cluster's directory while it exists

_pg_as() {  # runs a PostgreSQL server binary as the cluster owner
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_start() {
    local attempt
    [[ -x "$PG_BINDIR/initdb" ]] || fail "PostgreSQL 15 not found in $PG_BINDIR"
    PG_DIR=$(mktemp -d /tmp/camjoin-pg.XXXXXX)
    if [[ $EUID -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || fail "running as root but there is no 'postgres' user"
        chown postgres: "$PG_DIR"
    fi
    _pg_as "$PG_BINDIR/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync \
        -E UTF8 --locale=C >"$CJ_TMP/initdb.err" 2>&1 || fail "initdb failed: $(tail -n 5 "$CJ_TMP/initdb.err")"
    rm -f "$CJ_TMP/initdb.err"
    for attempt in 1 2 3 4 5; do
        PGPORT=$(free_port)
        {
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $PGPORT"
            echo "unix_socket_directories = '$PG_DIR'"
            if [[ "${PG_FSYNC:-on}" == off ]]; then echo "fsync = off"; fi
        } >>"$PG_DIR/data/postgresql.auto.conf"
        if _pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start \
            >/dev/null 2>&1; then
            break
        fi
        if ((attempt == 5)); then fail "PostgreSQL did not start: $(tail -n 5 "$PG_DIR/postgres.log")"; fi
        sed -i '/^port = /d' "$PG_DIR/data/postgresql.auto.conf"
    done
    export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=camjoin
    export CAMJOIN_PG_URI="postgresql://postgres@127.0.0.1:$PGPORT/camjoin"
    PGDATABASE=postgres psql -XAtq -v ON_ERROR_STOP=1 -c 'CREATE DATABASE camjoin' >/dev/null
    log "PostgreSQL 15 on 127.0.0.1:$PGPORT ($PG_DIR)"
}

pg_down() {
    [[ -n "$PG_DIR" ]] || return 0
    _pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
}

pg_up() {
    _pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start \
        >/dev/null 2>&1 || fail "PostgreSQL did not restart: $(tail -n 5 "$PG_DIR/postgres.log")"
}

pg_restart() { pg_down; pg_up; }

pg_stop() {
    [[ -n "$PG_DIR" ]] || return 0
    pg_down
    [[ "${CAMJOIN_KEEP_TMP:-0}" == 1 ]] || rm -rf "$PG_DIR"
    PG_DIR=""
}

psql_val() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# A session that holds an ACCESS EXCLUSIVE lock on camera_events (so that
# camjoin's COPY waits), named APP; pg_lock_hold returns once the lock is
# granted, pg_lock_release ends the session.
_pg_lock_granted() {  # APP
    [[ $(psql_val "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                   WHERE a.application_name = '$1' AND l.granted
                     AND l.relation = 'camera_events'::regclass") == 1 ]]
}
pg_lock_hold() {  # APP
    psql -XAtq -v ON_ERROR_STOP=1 "application_name=$1" \
        -c "BEGIN; LOCK TABLE camera_events IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120)" \
        >/dev/null 2>&1 &
    PG_LOCK_PSQL=$!
    wait_for 10 -- _pg_lock_granted "$1" ||
        fail "the lock of session $1 on camera_events was not granted within 10 s"
}
pg_lock_release() {  # APP
    psql_val "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1'" >/dev/null
    wait "$PG_LOCK_PSQL" 2>/dev/null || true
}

pg_backend_state() {  # PID
    local ports
    ports=$(ss -Htnp state established "( dport = :$PGPORT )" 2>/dev/null |
        awk -v pid="pid=$1," 'index($0, pid) { n = split($3, a, ":"); print a[n] }' | paste -sd, -)
    [[ -n "$ports" ]] || return 0
    psql_val "SELECT state || '|' || left(regexp_replace(query, '\s+', ' ', 'g'), 60)
              FROM pg_stat_activity WHERE client_port IN ($ports)"
}
