#!/usr/bin/env bash
# t_stack — the docker-compose stack (docker-compose.yml, Dockerfile,
# .dockerignore, deploy/) checked without a Docker engine, then the Grafana
# dashboard's SQL run against a live camjoin and compared with the raw tables.
#
#  1. Compose: Debian's docker-compose 1.29 validates the file (config -q);
#     every image is pinned; camjoin, gen and kafka-init agree on the brokers
#     and the topic; camjoin's PostgreSQL URI is the postgres service's;
#     Prometheus scrapes camjoin's --http port every 5 s; Grafana mounts the
#     provisioning and the dashboards where the provider and the home
#     dashboard point; the datasources match the postgres and prometheus
#     services. camjoin's compose environment and flags go through
#     `camjoin --print-config`: exit 0 and every --set shown (and a misspelled
#     key added to them must exit 2). `promtool check config` passes.
#  2. Dockerfile: two Debian 12 stages, build packages from .ci/run, every
#     package known to apt-cache; the build stage's cmake RUN is executed here
#     with /src, /build and /staging mapped to scratch paths, every COPY
#     --from=build source must exist in that install, and every library the
#     copied binaries load (readelf NEEDED) must come from a package the
#     runtime stage installs (dpkg -S).
#  3. Dashboard: valid against tests/data/grafana-dashboard.schema.json, which
#     must also reject broken variants (panel without datasource or targets,
#     target without rawSql/expr, ...); every datasource uid provisioned; SQL
#     uses only $__timeFilter(), $__timeFrom(), $__timeTo() and
#     ${var:sqlstring}; the Prometheus expressions pass `promtool check rules`.
#  4. Live: PostgreSQL 15 and a real Kafka broker with the compose topic and
#     partition count; camjoin with the compose environment and flags (hosts,
#     --http address and reference path replaced); the generator with the
#     compose entrypoint and flags for 2 s (duplicates, unknown cameras,
#     malformed messages). Once every offset is committed: the image's
#     HEALTHCHECK command succeeds against camjoin (and fails on a closed
#     port); every metric the expressions name is in a /metrics scrape; every
#     dashboard SQL query, panels and variables, succeeds and returns rows
#     with the variables at All, at one value each, and chained
#     site -> zone -> camera; and the key panels equal SQL over the raw
#     tables (range: now - 1 h .. now + 1 h, as Grafana would substitute it).
#
# The SQL names the rollup table and views of the issue-6 storage contract:
# camera_events_minute, camera_events_top_cameras_1h,
# camera_events_join_misses_minute and camjoin_dead_letters_hourly.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen

PY=/usr/bin/python3   # Debian's, with python3-jsonschema and python3-yaml
for t in docker-compose promtool jq kcat curl readelf dpkg apt-cache; do
    command -v "$t" >/dev/null || fail "$t is needed (see .ci/run PACKAGES)"
done
"$PY" -c 'import jsonschema, yaml' 2>/dev/null ||
    fail "$PY needs the jsonschema and yaml modules (python3-jsonschema, python3-yaml)"

SRC=$CAMJOIN_SRC
DASH=$SRC/deploy/grafana/dashboards/camjoin.json
SCHEMA=$SRC/tests/data/grafana-dashboard.schema.json
PROM_CFG=$SRC/deploy/prometheus/prometheus.yml
COMPOSE=$CJ_TMP/compose.resolved.yml

# t_stack.py (beside this file) reads the compose file, the Dockerfile, the
# Prometheus and Grafana files and the dashboard
st() { "$PY" "$CAMJOIN_SRC/tests/integration/t_stack.py" "$@"; }
sqlq() { printf "'%s'" "${1//\'/\'\'}"; }   # a SQL string literal

# ------------------------------------------------------------------ compose
echo "docker-compose.yml"
# what the compose file says by itself: no outside overrides
compose() {
    (cd "$SRC" && env -u DEMO_RATE -u DEMO_DURATION -u COMPOSE_FILE -u COMPOSE_PROJECT_NAME \
        -u COMPOSE_PROFILES "$@")
}
compose docker-compose -f docker-compose.yml config -q 2>"$CJ_TMP/compose.err" ||
    fail "docker-compose config -q: $(cat "$CJ_TMP/compose.err")"
echo "  ok  docker-compose $(docker-compose version --short 2>/dev/null) config -q"
compose docker-compose -f docker-compose.yml config >"$COMPOSE" 2>"$CJ_TMP/compose.err" ||
    fail "docker-compose config: $(cat "$CJ_TMP/compose.err")"
st compose-check "$COMPOSE"
gen_flag() {  # gen_flag FLAG: its value in the generator's command in $COMPOSE
    "$PY" -c 'import sys, yaml; a = yaml.safe_load(open(sys.argv[1]))["services"]["gen"]["command"]; print(a[a.index(sys.argv[2]) + 1])' "$COMPOSE" "$1"
}
assert_eq "the generator's default --rate (events/s)" 500 "$(gen_flag --rate)"
assert_eq "the generator's default --duration (s)" 3600 "$(gen_flag --duration)"
(cd "$SRC" && DEMO_RATE=2000 docker-compose -f docker-compose.yml config) >"$CJ_TMP/compose-rate.yml"
assert_eq "DEMO_RATE=2000 reaches the generator's --rate" 2000 \
    "$(COMPOSE=$CJ_TMP/compose-rate.yml gen_flag --rate)"

mapfile -t CJ_ENV < <(st compose-get "$COMPOSE" camjoin-env)
mapfile -t CJ_CMD < <(st compose-get "$COMPOSE" camjoin-args)
printf '%s\n' "${CJ_CMD[@]}" >"$CJ_TMP/camjoin.args"
# --print-config validates like --check-config, reference table included: the
# image's /etc/camjoin/cameras.csv is config/cameras.csv (Dockerfile), given here
env -i PATH="$PATH" "${CJ_ENV[@]}" CAMJOIN_REFERENCE="$CAMJOIN_SRC/config/cameras.csv" \
    "$CAMJOIN_BIN/camjoin" "${CJ_CMD[@]}" --print-config \
    >"$CJ_TMP/print-config.out" 2>"$CJ_TMP/print-config.err" ||
    fail "camjoin ${CJ_CMD[*]} --print-config: $(cat "$CJ_TMP/print-config.err")"
echo "  ok  camjoin with the compose environment and flags: --print-config exits 0"
st print-config-check "$CJ_TMP/camjoin.args" "$CJ_TMP/print-config.out"
grep -qxF "conninfo = postgresql://camjoin:****@postgres:5432/camjoin" "$CJ_TMP/print-config.out" ||
    fail "--print-config: conninfo is not CAMJOIN_PG with the password masked"
echo "  ok  --print-config conninfo = CAMJOIN_PG, password masked"
rc=0
env -i PATH="$PATH" "${CJ_ENV[@]}" CAMJOIN_REFERENCE="$CAMJOIN_SRC/config/cameras.csv" \
    "$CAMJOIN_BIN/camjoin" "${CJ_CMD[@]}" --set retention.dayz=1 \
    --print-config >/dev/null 2>&1 || rc=$?
assert_eq "the same flags plus a misspelled key: exit status" 2 "$rc"
promtool check config "$PROM_CFG" >"$CJ_TMP/promtool.out" 2>&1 ||
    fail "promtool check config: $(cat "$CJ_TMP/promtool.out")"
echo "  ok  promtool check config deploy/prometheus/prometheus.yml"

# --------------------------------------------------------------- Dockerfile
echo "Dockerfile"
st dockerfile-check
IMG=$CJ_TMP/image
build_cmd=$(st dockerfile-get build-cmd "$IMG")
log "build stage, paths mapped: $build_cmd"
bash -c "set -e; $build_cmd" >"$CJ_TMP/image-build.out" 2>&1 ||
    fail "the Dockerfile's build commands failed: $(tail -n 20 "$CJ_TMP/image-build.out")"
echo "  ok  the build stage's cmake commands build and install"
st dockerfile-libs "$IMG"
rm -rf "$IMG"

# ---------------------------------------------------------------- dashboard
echo "Grafana dashboard and provisioning"
"$PY" -m jsonschema -i "$DASH" "$SCHEMA" >"$CJ_TMP/jsonschema.out" 2>&1 ||
    fail "camjoin.json against the schema: $(head -c 2000 "$CJ_TMP/jsonschema.out")"
echo "  ok  $PY -m jsonschema: camjoin.json is valid"
st dash-static "$SCHEMA"
st dash-rules >"$CJ_TMP/dash-rules.yml"
n_expr=$(grep -c '^  - record:' "$CJ_TMP/dash-rules.yml")
promtool check rules "$CJ_TMP/dash-rules.yml" >"$CJ_TMP/promtool.out" 2>&1 ||
    fail "promtool check rules (the dashboard's expressions): $(cat "$CJ_TMP/promtool.out")"
assert_eq "promtool check rules: expressions parsed" "SUCCESS: $n_expr rules found" \
    "$(grep -o 'SUCCESS: .*' "$CJ_TMP/promtool.out")"

# --------------------------------------------------------------------- live
echo "live run with the compose settings"
TOPIC=$(st compose-get "$COMPOSE" topic)
PARTS=$(st compose-get "$COMPOSE" partitions)
GROUP=camjoin
for kv in "${CJ_ENV[@]}"; do [[ $kv != CAMJOIN_GROUP=* ]] || GROUP=${kv#*=}; done
pg_start
# the postgres service's first start: deploy/postgres/init.sh with the
# service's environment (roles.sql, then the two passwords)
mapfile -t PG_ENV < <(st compose-get "$COMPOSE" postgres-env)
env "${PG_ENV[@]}" CAMJOIN_SQL_DIR="$SRC/config" sh "$SRC/deploy/postgres/init.sh" \
    >"$CJ_TMP/init.out" 2>&1 || fail "deploy/postgres/init.sh: $(tail -n 5 "$CJ_TMP/init.out")"
assert_eq "roles after init.sh (login, superuser)" "camjoin:true:false camjoin_owner:false:false camjoin_reader:true:false" \
    "$(psql_val "SELECT string_agg(rolname || ':' || rolcanlogin || ':' || rolsuper, ' ' ORDER BY rolname)
                 FROM pg_roles WHERE rolname LIKE 'camjoin%'")"
assert_eq "passwords set by init.sh (SCRAM verifiers)" "2" \
    "$(psql_val "SELECT count(*) FROM pg_authid WHERE rolname IN ('camjoin', 'camjoin_reader')
                 AND rolpassword LIKE 'SCRAM-SHA-256\$%'")"
kafka_start "$TOPIC" "$PARTS"
HTTP_PORT=$(free_port)
# the compose environment, with this test's broker, database and CSV; camjoin
# logs in as the writer role, as CAMJOIN_PG says in the compose file
for kv in "${CJ_ENV[@]}"; do export "${kv?}"; done
export CAMJOIN_BROKERS=$KAFKA_BROKERS CAMJOIN_REFERENCE=$CAMERAS_CSV
export CAMJOIN_PG="postgresql://camjoin@127.0.0.1:$PGPORT/camjoin"
args=()
for ((i = 0; i < ${#CJ_CMD[@]}; i++)); do
    args+=("${CJ_CMD[$i]}")
    if [[ ${CJ_CMD[$i]} == --http ]]; then
        args+=("127.0.0.1:$HTTP_PORT")
        i=$((i + 1))
    fi
done
camjoin_start stack "${args[@]}"
pid=$CAMJOIN_PID
wait_progress "$TOPIC" "$GROUP" 0 30 "$pid"   # schema created, PostgreSQL reachable

# the generator as the gen service runs it: its entrypoint and flags, 2 s
mapfile -t GEN < <(st compose-get "$COMPOSE" gen-argv)
gen_argv=()
for ((i = 0; i < ${#GEN[@]}; i++)); do
    gen_argv+=("${GEN[$i]}")
    case ${GEN[$i]} in
    --brokers) gen_argv+=("$KAFKA_BROKERS"); i=$((i + 1)) ;;
    --cameras) gen_argv+=("$CAMERAS_CSV"); i=$((i + 1)) ;;
    --duration) gen_argv+=(2); i=$((i + 1)) ;;
    esac
done
PATH="$CAMJOIN_BIN:$PATH" "${gen_argv[@]}" >"$CJ_TMP/gen.stdout" 2>"$CJ_TMP/gen.err" </dev/null ||
    fail "the gen service's command failed: $(tail -n 3 "$CJ_TMP/gen.err")"
S=$CJ_TMP/gen.json
tail -n 1 "$CJ_TMP/gen.stdout" >"$S"
log "generator: $(cat "$S")"
sent=$(json_get "$S" sent)
valid_new=$(json_get "$S" valid_new)
malformed=$(json_get "$S" malformed)
unknown=$(json_get "$S" unknown_camera)
for k in duplicates malformed unknown_camera; do
    (($(json_get "$S" "$k") > 0)) || fail "the generator sent no $k: $(cat "$S")"
done
wait_offsets "$TOPIC" "$GROUP" "$sent" 120 "$pid"

echo "image HEALTHCHECK and /metrics"
mapfile -t HC < <(st dockerfile-get healthcheck)
rc=0
CAMJOIN_HEALTH_PORT=$HTTP_PORT timeout 10 "${HC[@]}" || rc=$?
assert_eq "HEALTHCHECK command against camjoin's --http port" 0 "$rc"
rc=0
CAMJOIN_HEALTH_PORT=$(free_port) timeout 10 "${HC[@]}" 2>/dev/null || rc=$?
[[ $rc -ne 0 ]] || fail "HEALTHCHECK command succeeded against a closed port"
echo "  ok  HEALTHCHECK command against a closed port fails        exit $rc"
curl -fsS -m 5 "http://127.0.0.1:$HTTP_PORT/metrics" >"$CJ_TMP/scrape.txt" || fail "/metrics did not answer"
for m in $(st dash-metrics); do
    grep -qE "^$m(\{| )" "$CJ_TMP/scrape.txt" || fail "the dashboard uses $m, absent from camjoin's /metrics"
done
echo "  ok  every metric of the dashboard's expressions is scraped   $(st dash-metrics | wc -l) names"

echo "dashboard SQL against PostgreSQL, as Grafana's role camjoin_reader"
assert_eq "camjoin's session user (pg_stat_activity)" camjoin \
    "$(psql_val "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity WHERE application_name LIKE 'camjoin%'")"
export PGUSER=camjoin_reader
DASH_FROM=$(psql_val "SELECT to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
DASH_TO=$(psql_val "SELECT to_char((now() + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
export DASH_FROM DASH_TO
RANGE="event_ts BETWEEN '$DASH_FROM' AND '$DASH_TO'"
st dash-run-all "$CJ_TMP/values.json"
V=$CJ_TMP/values.json

q() { st dash-sql "$@"; }
first_row() { psql -XAtq -v ON_ERROR_STOP=1 -F ' ' -c "$1" | head -n 1; }
declare -A COL=([site]=site_id [zone]=zone [camera]=camera_id [event_type]=event_type)

rows=$(psql_val "SELECT count(*) FROM camera_events WHERE $RANGE")
assert_eq "rows in range = generator valid_new" "$valid_new" "$rows"

EPM="Events per minute by site and type"
assert_eq "[All] $EPM: sum = count(*)" "$rows" \
    "$(psql_val "SELECT sum(value) FROM ($(q panel "$EPM")) p")"
# at All one series per event type; over 2 h the buckets are minutes
assert_eq "[All] $EPM: points differing from GROUP BY minute, event_type" 0 \
    "$(psql_val "SELECT count(*) FROM ($(q panel "$EPM")) p
                 FULL JOIN (SELECT date_trunc('minute', event_ts, 'UTC') AS time, event_type AS metric,
                                   count(*) AS value
                            FROM camera_events WHERE $RANGE GROUP BY 1, 2) r USING (time, metric)
                 WHERE p.value IS DISTINCT FROM r.value")"
DAY_FROM=$(psql_val "SELECT to_char(('$DASH_TO'::timestamptz - interval '24 hours') AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
# over 24 h the buckets are 5 minutes (86,400 s / 300, in whole minutes), each
# point the mean per minute: at most 288 buckets a series, whatever the rows
assert_eq "[All, 24 h] $EPM: points differing from 5-minute buckets / 5" 0 \
    "$(psql_val "SELECT count(*) FROM ($(DASH_FROM=$DAY_FROM q panel "$EPM")) p
                 FULL JOIN (SELECT date_bin('5 minutes', event_ts, timestamptz '2000-01-01 00:00:00+00') AS time,
                                   event_type AS metric, count(*) AS n
                            FROM camera_events WHERE $RANGE GROUP BY 1, 2) r USING (time, metric)
                 WHERE round(p.value * 5) IS DISTINCT FROM r.n")"
for v in site zone camera event_type; do
    val=$(jq -r ".single.$v" "$V")
    assert_eq "[$v=$val] $EPM: sum = count(*)" \
        "$(psql_val "SELECT count(*) FROM camera_events WHERE $RANGE AND ${COL[$v]} = $(sqlq "$val")")" \
        "$(psql_val "SELECT sum(value) FROM ($(q panel "$EPM" "$v=$val")) p")"
done
chain=()
where=""
for v in site zone camera; do
    val=$(jq -r ".chain.$v" "$V")
    chain+=("$v=$val")
    where+=" AND ${COL[$v]} = $(sqlq "$val")"
done
assert_eq "[${chain[*]}] $EPM: sum = count(*)" \
    "$(psql_val "SELECT count(*) FROM camera_events WHERE $RANGE $where")" \
    "$(psql_val "SELECT sum(value) FROM ($(q panel "$EPM" "${chain[@]}")) p")"

LE="Latest events"
assert_eq "[All] $LE: rows = min(50, rows in range)" "$((rows < 50 ? rows : 50))" \
    "$(psql_val "SELECT count(*) FROM ($(q panel "$LE")) p")"
assert_eq "[All] $LE: rows older than the 50th newest" 0 \
    "$(psql_val "SELECT count(*) FROM ($(q panel "$LE")) p WHERE p.ingested_at <
                 (SELECT min(ingested_at) FROM (SELECT ingested_at FROM camera_events WHERE $RANGE
                                                ORDER BY ingested_at DESC LIMIT 50) x)")"
cam=$(jq -r .single.camera "$V")
n=$(psql_val "SELECT count(*) FROM camera_events WHERE $RANGE AND camera_id = $(sqlq "$cam")")
assert_eq "[camera=$cam] $LE: rows = min(50, its rows)" "$((n < 50 ? n : 50))" \
    "$(psql_val "SELECT count(*) FROM ($(q panel "$LE" "camera=$cam")) p
                 WHERE camera_id = $(sqlq "$cam")")"

TC="Top cameras, last hour"
LAST_HOUR="event_ts >= date_trunc('minute', now()) - interval '1 hour'"
assert_eq "[All] $TC: first row = top camera by GROUP BY" \
    "$(first_row "SELECT camera_id, count(*) FROM camera_events WHERE $LAST_HOUR
                  GROUP BY camera_id ORDER BY count(*) DESC, camera_id")" \
    "$(psql -XAtq -v ON_ERROR_STOP=1 -c "$(q panel "$TC")" | head -n 1 | cut -d'|' -f1,4 | tr '|' ' ')"
assert_eq "[All] $TC: listed cameras whose events differ from GROUP BY" 0 \
    "$(psql_val "SELECT count(*) FROM ($(q panel "$TC")) p
                 LEFT JOIN (SELECT camera_id, count(*) AS n FROM camera_events WHERE $LAST_HOUR
                            GROUP BY camera_id) r USING (camera_id)
                 WHERE p.events IS DISTINCT FROM r.n")"
site=$(jq -r .single.site "$V")
assert_eq "[site=$site] $TC: first row = the site's top camera" \
    "$(first_row "SELECT camera_id, count(*) FROM camera_events WHERE $LAST_HOUR
                  AND site_id = $(sqlq "$site") GROUP BY camera_id ORDER BY count(*) DESC, camera_id")" \
    "$(psql -XAtq -v ON_ERROR_STOP=1 -c "$(q panel "$TC" "site=$site")" | head -n 1 | cut -d'|' -f1,4 | tr '|' ' ')"

JM="Join misses per minute"
misses=$(psql_val "SELECT count(*) FROM camera_events WHERE $RANGE AND site_id IS NULL")
assert_eq "rows with site_id NULL = generator unknown_camera" "$unknown" "$misses"
assert_eq "$JM: sum = count(*) WHERE site_id IS NULL" "$misses" \
    "$(psql_val "SELECT sum(\"join misses\") FROM ($(q panel "$JM")) p")"

DL="Dead letters per hour by reason"
assert_eq "$DL: by reason = camjoin_dead_letters GROUP BY reason" \
    "$(psql_val "SELECT string_agg(reason || '=' || n, ',' ORDER BY reason)
                 FROM (SELECT reason, count(*) n FROM camjoin_dead_letters GROUP BY 1) d")" \
    "$(psql_val "SELECT string_agg(metric || '=' || n, ',' ORDER BY metric)
                 FROM (SELECT metric, sum(value) n FROM ($(q panel "$DL")) p GROUP BY 1) d")"
assert_eq "$DL: total = generator malformed" "$malformed" \
    "$(psql_val "SELECT sum(value) FROM ($(q panel "$DL")) p")"

# list = N values and the md5 of their sorted, comma-separated text
vlist() { psql_val "SELECT count(*) || ' values, md5 ' || md5(coalesce(string_agg(v, ',' ORDER BY v), ''))
                    FROM ($1) x(v)"; }
assert_eq "variable site = distinct site_id of the range" \
    "$(vlist "SELECT DISTINCT site_id FROM camera_events WHERE $RANGE AND site_id IS NOT NULL")" \
    "$(vlist "SELECT __value FROM ($(q variable site)) v")"
assert_eq "variable zone [site=$site] = the site's zones" \
    "$(vlist "SELECT DISTINCT zone FROM camera_events WHERE $RANGE AND site_id = $(sqlq "$site")")" \
    "$(vlist "SELECT zone FROM ($(q variable zone "site=$site")) v")"
assert_eq "variable camera = distinct known camera_id of the range" \
    "$(vlist "SELECT DISTINCT camera_id FROM camera_events WHERE $RANGE AND site_id IS NOT NULL")" \
    "$(vlist "SELECT camera_id FROM ($(q variable camera)) v")"
assert_eq "variable event_type = distinct event_type of the range" \
    "$(vlist "SELECT DISTINCT event_type FROM camera_events WHERE $RANGE")" \
    "$(vlist "SELECT event_type FROM ($(q variable event_type)) v")"

camjoin_stop "$pid"
assert_eq "camjoin exit code after SIGTERM" 0 "$CAMJOIN_RC"
echo "PASS: t_stack ($sent messages, $rows rows, $misses join misses, $malformed dead letters)"
