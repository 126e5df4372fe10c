#!/usr/bin/env bash
# t_pg_tls — camjoin to PostgreSQL over TLS with SCRAM, as docs/SECURITY.md
# recommends, on a real PostgreSQL 15 (the test's cluster with ssl=on).
#
# A CA, a server certificate (for the name localhost only), a client
# certificate and a second, unrelated CA are made with openssl at test time;
# nothing is committed. pg_hba.conf lets role camjoin (config/roles.sql's
# writer) in only over TLS with scram-sha-256, and role camjoin_cert (a
# member of camjoin) only with a client certificate; log_connections shows
# how each connection came in.
#   1. sslmode=verify-full, sslrootcert, the password in a passfile: the
#      pipeline's exact end state, and every connection of camjoin's the
#      server logged is TLS.
#   2. Each of these exits 1 at once (no retry loop, no "waiting" line) with
#      one line naming the cause: a wrong CA, a wrong host name, a server
#      that speaks plain text only under sslmode=require, a wrong password.
#      No output holds the password.
#   3. A client certificate (sslcert, sslkey) works; the same key readable
#      by others is refused by libpq, and the line says so.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen
command -v openssl >/dev/null || fail "openssl is needed"

TOPIC=tls-events GROUP=tls-it PARTS=3

pg_start
CERTS=$PG_DIR/certs
mkdir "$CERTS"
ca() {  # NAME: a self-signed CA, NAME.crt and NAME.key
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 2 \
        -subj "/CN=camjoin test $1" -keyout "$CERTS/$1.key" -out "$CERTS/$1.crt" 2>/dev/null
}
leaf() {  # NAME CN EXTENSIONS: NAME.crt signed by ca, and NAME.key
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=$2" \
        -keyout "$CERTS/$1.key" -out "$CERTS/$1.csr" 2>/dev/null
    openssl x509 -req -in "$CERTS/$1.csr" -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" \
        -CAcreateserial -days 2 -out "$CERTS/$1.crt" -extfile <(printf '%s\n' "$3") 2>/dev/null
}
ca ca
ca other-ca
leaf server localhost "subjectAltName=DNS:localhost
extendedKeyUsage=serverAuth"
leaf client camjoin_cert "extendedKeyUsage=clientAuth"
chmod 600 "$CERTS"/*.key
[[ $EUID -ne 0 ]] || chown -R postgres: "$CERTS"
# the client's copy of its key, owned by the user camjoin runs as
cp "$CERTS/client.key" "$CJ_TMP/client.key"
chmod 600 "$CJ_TMP/client.key"

hba=$PG_DIR/data/pg_hba.conf
cat >"$hba" <<EOF
local   all  all                          trust
host    all  postgres      127.0.0.1/32   trust
hostssl all  camjoin       127.0.0.1/32   scram-sha-256
hostssl all  camjoin_cert  127.0.0.1/32   cert
EOF
psql_val "ALTER SYSTEM SET ssl = on" >/dev/null
psql_val "ALTER SYSTEM SET ssl_cert_file = '$CERTS/server.crt'" >/dev/null
psql_val "ALTER SYSTEM SET ssl_key_file = '$CERTS/server.key'" >/dev/null
psql_val "ALTER SYSTEM SET ssl_ca_file = '$CERTS/ca.crt'" >/dev/null
psql_val "ALTER SYSTEM SET log_connections = on" >/dev/null
pg_restart
assert_eq "the server's ssl setting" on "$(psql_val "SHOW ssl")"
psql -XAq -v ON_ERROR_STOP=1 -f "$CAMJOIN_SRC/config/roles.sql" >"$CJ_TMP/roles.out" 2>&1 ||
    fail "roles.sql: $(cat "$CJ_TMP/roles.out")"
PW="tls-pw-$RANDOM$RANDOM"
psql_val "ALTER ROLE camjoin PASSWORD '$PW'; CREATE ROLE camjoin_cert LOGIN IN ROLE camjoin" >/dev/null
printf 'localhost:%s:camjoin:camjoin:%s\n' "$PGPORT" "$PW" >"$CJ_TMP/pgpass"
chmod 600 "$CJ_TMP/pgpass"
export PGPASSFILE=$CJ_TMP/pgpass

kafka_start "$TOPIC" "$PARTS"
gen tls --topic "$TOPIC" --count 10000 --seed 8181 --dup-ratio 0.05 \
    --unknown-camera-ratio 0.02 --malformed-ratio 0.01 --manifest "$CJ_TMP/tls.manifest.csv"
# hostaddr: no name lookup; host: the name the certificate is checked against
PGBASE="host=localhost hostaddr=127.0.0.1 port=$PGPORT dbname=camjoin"
GOOD="$PGBASE user=camjoin sslmode=verify-full sslrootcert=$CERTS/ca.crt"

echo "1. verify-full with SCRAM"
camjoin_args "$TOPIC" "$GROUP"
camjoin_start good "${CJ_ARGS[@]}" --pg "$GOOD" --until-end
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "verify-full: exit code" 0 "$CAMJOIN_RC"
assert_final_state "$CJ_TMP/tls.json" "$CJ_TMP/tls.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
conns=$(grep -c 'connection authorized: user=camjoin database' "$PG_DIR/postgres.log" || true)
((conns >= 2)) || fail "the server logged $conns connections of camjoin's, expected the sink's and the upkeep's at least"
assert_eq "camjoin's connections the server logged / of them over TLS 1.3" "$conns / $conns" \
    "$conns / $(grep 'connection authorized: user=camjoin database' "$PG_DIR/postgres.log" |
                grep -c 'SSL enabled (protocol=TLSv1.3' || true)"

refused() {  # NAME EXPECTED_CAUSE CONNINFO [ENV...]: exit 1 at once, one line naming the cause
    local name=$1 cause=$2 pg=$3 t0
    shift 3
    camjoin_args "$TOPIC" "tls-$name"
    t0=$(date +%s)
    env "$@" "$CAMJOIN_BIN/camjoin" "${CJ_ARGS[@]}" --pg "$pg" --until-end \
        >"$CJ_TMP/$name.out" 2>"$CJ_TMP/$name.log" && CAMJOIN_RC=0 || CAMJOIN_RC=$?
    assert_eq "$name: exit code, lines on stderr" "1 1" "$CAMJOIN_RC $(wc -l <"$CJ_TMP/$name.log")"
    grep -qF -- "$cause" "$CJ_TMP/$name.log" || fail "$name: the line does not say '$cause': $(cat "$CJ_TMP/$name.log")"
    echo "  ok  $name: $(cat "$CJ_TMP/$name.log")"
    (($(date +%s) - t0 < 10)) || fail "$name: took $(($(date +%s) - t0)) s: retried?"
}

echo "2. what must fail at once"
refused wrong-ca "certificate verify failed" "$PGBASE user=camjoin sslmode=verify-full sslrootcert=$CERTS/other-ca.crt"
refused wrong-host 'does not match host name "127.0.0.1"' \
    "host=127.0.0.1 port=$PGPORT dbname=camjoin user=camjoin sslmode=verify-full sslrootcert=$CERTS/ca.crt"
refused wrong-password 'password authentication failed for user "camjoin"' "$GOOD password=Wrong-$PW" \
    PGPASSFILE=/nonexistent
psql_val "ALTER SYSTEM SET ssl = off" >/dev/null
pg_restart
refused plain-server "server does not support SSL, but SSL was required" "$PGBASE user=camjoin sslmode=require"
psql_val "ALTER SYSTEM RESET ssl" >/dev/null
psql_val "ALTER SYSTEM SET ssl = on" >/dev/null
pg_restart
assert_eq "outputs holding the password" 0 \
    "$(cat "$CJ_TMP"/good.log "$CJ_TMP"/good.out "$CJ_TMP"/wrong-*.log "$CJ_TMP"/wrong-*.out \
        "$CJ_TMP"/plain-server.* | grep -cF -- "$PW" || true)"

echo "3. a client certificate"
CERT="$PGBASE user=camjoin_cert sslmode=verify-full sslrootcert=$CERTS/ca.crt sslcert=$CERTS/client.crt"
camjoin_args "$TOPIC" tls-cert
camjoin_start cert "${CJ_ARGS[@]}" --pg "$CERT sslkey=$CJ_TMP/client.key" --until-end
camjoin_wait "$CAMJOIN_PID" 120
assert_eq "client certificate: exit code" 0 "$CAMJOIN_RC"
assert_eq "client certificate: the group's stored offsets = partition ends" \
    "$(kafka_ends_csv "$TOPIC")" \
    "$(stored_offsets_csv tls-cert)"
assert_eq "client certificate: the server authenticated it by certificate" 1 \
    "$(grep -c 'connection authenticated: identity="CN=camjoin_cert" method=cert' "$PG_DIR/postgres.log" |
       awk '{ print ($1 > 0) }')"
chmod 644 "$CJ_TMP/client.key"
refused key-readable "has group or world access" "$CERT sslkey=$CJ_TMP/client.key"
echo "PASS: t_pg_tls"
