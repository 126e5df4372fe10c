#!/bin/sh
# deploy/postgres/init.sh — run once by the postgres image, at the first start
# on an empty volume (/docker-entrypoint-initdb.d), as POSTGRES_USER: the
# least-privilege roles of config/roles.sql (which also creates the schema,
# owned by camjoin_owner), then the passwords of the two login roles from the
# environment. camjoin writes as `camjoin`; Grafana reads as `camjoin_reader`.
# tests/integration/t_stack.sh runs this file against its own PostgreSQL
# (CAMJOIN_SQL_DIR pointing at config/).
set -eu
dir=${CAMJOIN_SQL_DIR:-/camjoin-sql}
psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$dir/roles.sql"
psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
    -v pw="$CAMJOIN_PASSWORD" -v rpw="$CAMJOIN_READER_PASSWORD" <<'SQL'
ALTER ROLE camjoin PASSWORD :'pw';
ALTER ROLE camjoin_reader PASSWORD :'rpw';
SQL
