/*
 * sink_schema — the schema camjoin creates (see src/sink_sql.h and
 * sink_pg_schema_sql() in include/camjoin/sink_pg.h): the events table,
 * partitioned by day, the partition functions the upkeep calls, the rollup
 * table with its hand-change triggers and rebuild function, and the
 * dashboard views. config/schema.sql is this text for the default table.
 *
 * Every statement is idempotent (IF NOT EXISTS, CREATE OR REPLACE), so the
 * whole text runs again whenever sink_sql_schema_present() finds something
 * missing, for instance on a database that an earlier camjoin created. The
 * names derived from the events table T (T_minute, the views) are built from
 * its quoted identifier by sink_sql_add_ident(); the functions never hold
 * T's name: they take T as a regclass, or find it as the trigger's
 * TG_TABLE_NAME.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_sql.h"

#include "camjoin/base.h"
#include "camjoin/rollup.h"
#include "camjoin/sink_pg.h"

/* The partitions of `parent` (a regclass) as rows b(rel, name, is_default,
 * lo, hi), the bounds read back from pg_get_expr() (MINVALUE and MAXVALUE
 * as -infinity and infinity; NULL for the default partition). */
#define SQL_BOUNDS                                                              \
    "(SELECT c.oid::regclass AS rel, c.relname::text AS name,\n"              \
    "          e.expr = 'DEFAULT' AS is_default,\n"                            \
    "          CASE r.m[1] WHEN 'MINVALUE' THEN '-infinity'"                   \
    " ELSE btrim(r.m[1], '''') END::timestamptz AS lo,\n"                      \
    "          CASE r.m[2] WHEN 'MAXVALUE' THEN 'infinity'"                    \
    " ELSE btrim(r.m[2], '''') END::timestamptz AS hi\n"                       \
    "     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,\n"         \
    "          LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) e,\n" \
    "          LATERAL (SELECT regexp_match(e.expr,"                           \
    " '^FOR VALUES FROM \\((.*)\\) TO \\((.*)\\)$') AS m) r\n"                 \
    "    WHERE i.inhparent = parent) b"
/* b's UTC day if b covers exactly one UTC day, else NULL. */
#define SQL_BOUNDS_DAY                                                          \
    "CASE WHEN isfinite(b.lo) AND isfinite(b.hi)\n"                            \
    "        AND b.lo = (b.lo AT TIME ZONE 'UTC')::date::timestamp"            \
    " AT TIME ZONE 'UTC'\n"                                                    \
    "        AND b.hi = ((b.lo AT TIME ZONE 'UTC')::date + 1)::timestamp"      \
    " AT TIME ZONE 'UTC'\n"                                                    \
    "       THEN (b.lo AT TIME ZONE 'UTC')::date END"
#define SQL_DEFINER                                                             \
    "SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$\n"
/* The same, for the functions that read bounds back as text: under the
 * session's DateStyle they could come back as '... IST', which
 * PostgreSQL's default abbreviations read as Israel's time, not India's. */
#define SQL_DEFINER_ISO                                                         \
    "SECURITY DEFINER SET search_path = pg_catalog, pg_temp\n"                \
    "SET datestyle = 'ISO, YMD' SET timezone = 'UTC' AS $$\n"
#define SQL_NOT_PARTITIONED                                                     \
    "  IF NOT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = parent)" \
    " THEN\n"                                                                  \
    "    RAISE EXCEPTION 'table % is not partitioned', parent USING ERRCODE = 'CJ001',\n" \
    "      HINT = 'camjoin writes to it all the same, without partition upkeep;'\n" \
    "             ' README, \"Partitions, rollups and views\", shows the migration';\n" \
    "  END IF;\n"

/* Gives the new partition v_nsp.v_part the SELECT grants of `parent`, so
 * that whoever may read the table may read a partition of it by name. */
#define SQL_COPY_GRANTS                                                         \
    "  FOR v_grantee IN SELECT a.grantee FROM pg_class c, aclexplode(c.relacl) a\n" \
    "     WHERE c.oid = parent AND a.privilege_type = 'SELECT'"              \
    " AND a.grantee <> c.relowner LOOP\n"                                     \
    "    EXECUTE format('GRANT SELECT ON %I.%I TO %s', v_nsp, v_part,\n"       \
    "      CASE v_grantee WHEN 0 THEN 'PUBLIC'"                                \
    " ELSE quote_ident(pg_get_userbyid(v_grantee)) END);\n"                   \
    "  END LOOP;\n"
/* The functions: one text for every events table. */
static const char ddl_functions[] =
    "--\n"
    "-- Partitions: one per UTC day, <table>_pYYYYMMDD, FOR VALUES FROM\n"
    "-- ('YYYY-MM-DD 00:00:00+00') TO (the next day), and <table>_default for\n"
    "-- the rows of days that have none. The daemon's upkeep uses these three\n"
    "-- functions only. SECURITY DEFINER: they run as their owner (the schema's\n"
    "-- owner), so a writer without DDL rights may call them; EXECUTE is revoked\n"
    "-- from PUBLIC below and granted by config/roles.sql. The search_path is\n"
    "-- pinned (every name they use is in pg_catalog or schema-qualified), and\n"
    "-- so are DateStyle and TimeZone, as they read the bounds back as text. An\n"
    "-- events table that an earlier camjoin created unpartitioned is left as it\n"
    "-- is; camjoin_ensure_partition() and camjoin_drop_partition() raise\n"
    "-- SQLSTATE CJ001 for it (README, \"Partitions, rollups and views\").\n"
    "--\n"
    "-- camjoin_partitions(parent): name, UTC day and is_default of each\n"
    "-- partition; day is NULL unless the partition covers exactly one UTC day\n"
    "-- (the default, or an old table attached whole, which retention leaves).\n"
    "CREATE OR REPLACE FUNCTION camjoin_partitions(parent regclass)\n"
    "RETURNS TABLE (name text, day date, is_default boolean)\n"
    "LANGUAGE plpgsql STABLE STRICT " SQL_DEFINER_ISO
    "BEGIN\n"
    "  RETURN QUERY SELECT b.name, " SQL_BOUNDS_DAY ",\n"
    "         b.is_default\n"
    "    FROM " SQL_BOUNDS "\n"
    "   ORDER BY b.is_default DESC, b.lo;\n"
    "END $$;\n"
    "-- camjoin_ensure_partition(parent, day): the partition of that UTC day\n"
    "-- exists when it returns its name (an existing partition whose range\n"
    "-- covers the day counts). A new one takes that day's rows out of the\n"
    "-- default partition in the same transaction: the default is locked, the\n"
    "-- table created LIKE the parent, the rows moved (DELETE ... RETURNING into\n"
    "-- INSERT), then the table attached. It gets the parent's SELECT grants:\n"
    "-- whoever may read the table may read the partition by name. The\n"
    "-- rollups do not change, as statements on a partition fire no trigger of\n"
    "-- the parent. Calls for one table run one at a time (SHARE UPDATE\n"
    "-- EXCLUSIVE on it: reads and inserts go on). A writer that routes a row\n"
    "-- of that day to the default partition at that very moment fails with a\n"
    "-- partition constraint violation, and retries.\n"
    "CREATE OR REPLACE FUNCTION camjoin_ensure_partition(parent regclass, day date)\n"
    "RETURNS text LANGUAGE plpgsql STRICT " SQL_DEFINER_ISO
    "DECLARE\n"
    "  v_from text := to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00';\n"
    "  v_to text := to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00';\n"
    "  v_nsp text; v_rel text; v_part text; v_def oid; v_cols text; v_grantee oid;\n"
    "BEGIN\n"
    SQL_NOT_PARTITIONED
    "  EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);\n"
    "  SELECT b.name INTO v_part FROM " SQL_BOUNDS "\n"
    "   WHERE NOT b.is_default AND b.lo <= v_from::timestamptz"
    " AND b.hi >= v_to::timestamptz;\n"
    "  IF v_part IS NOT NULL THEN\n"
    "    RETURN v_part;\n"
    "  END IF;\n"
    "  SELECT n.nspname, c.relname, p.partdefid INTO v_nsp, v_rel, v_def\n"
    "    FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid\n"
    "    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.partrelid = parent;\n"
    "  v_part := v_rel || '_p' || to_char(day, 'YYYYMMDD');\n"
    "  IF octet_length(v_part) > 63 THEN\n"
    "    RAISE EXCEPTION 'partition name % is longer than 63 bytes', v_part;\n"
    "  END IF;\n"
    "  EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING'\n"
    "                 ' CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)',\n"
    "                 v_nsp, v_part, parent);\n"
    SQL_COPY_GRANTS
    "  IF v_def <> 0 THEN\n"
    "    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_def::regclass);\n"
    "    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols\n"
    "      FROM pg_attribute WHERE attrelid = parent AND attnum > 0"
    " AND NOT attisdropped;\n"
    "    EXECUTE format('WITH moved AS (DELETE FROM %s WHERE event_ts >= %L AND'\n"
    "                   ' event_ts < %L RETURNING %s) INSERT INTO %I.%I (%s)'\n"
    "                   ' SELECT %s FROM moved', v_def::regclass, v_from, v_to,\n"
    "                   v_cols, v_nsp, v_part, v_cols, v_cols);\n"
    "  END IF;\n"
    "  EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L)'\n"
    "                 ' TO (%L)', parent, v_nsp, v_part, v_from, v_to);\n"
    "  RETURN v_part;\n"
    "END $$;\n"
    "-- camjoin_drop_partition(parent, day): detaches and drops the partition of\n"
    "-- that UTC day; returns the number of rows it held (0: there was none).\n"
    "-- The rollups keep them (DROP fires no trigger). To archive a partition\n"
    "-- first, read it through the parent (WHERE event_ts >= day AND event_ts <\n"
    "-- day + 1 is pruned to it) and compare the counts in the same transaction.\n"
    "CREATE OR REPLACE FUNCTION camjoin_drop_partition(parent regclass, day date)\n"
    "RETURNS bigint LANGUAGE plpgsql STRICT " SQL_DEFINER_ISO
    "DECLARE\n"
    "  v_part regclass; v_rows bigint;\n"
    "BEGIN\n"
    SQL_NOT_PARTITIONED
    "  EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);\n"
    "  SELECT b.rel INTO v_part FROM " SQL_BOUNDS "\n"
    "   WHERE NOT b.is_default AND " SQL_BOUNDS_DAY " = day;\n"
    "  IF v_part IS NULL THEN\n"
    "    RETURN 0;\n"
    "  END IF;\n"
    "  EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent, v_part);\n"
    "  EXECUTE format('SELECT count(*) FROM %s', v_part) INTO v_rows;\n"
    "  EXECUTE format('DROP TABLE %s', v_part);\n"
    "  RETURN v_rows;\n"
    "END $$;\n"
    "-- camjoin_ensure_default_partition(parent): creates <table>_default when\n"
    "-- the table is partitioned and has no default partition; returns the\n"
    "-- default's name, or NULL for an unpartitioned table. Used by this DDL.\n"
    "CREATE OR REPLACE FUNCTION camjoin_ensure_default_partition(parent regclass)\n"
    "RETURNS text LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp"
    " AS $$\n"
    "DECLARE\n"
    "  v_nsp text; v_rel text; v_part text; v_def oid; v_grantee oid;\n"
    "BEGIN\n"
    "  SELECT n.nspname, c.relname, p.partdefid INTO v_nsp, v_rel, v_def\n"
    "    FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid\n"
    "    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.partrelid = parent;\n"
    "  IF NOT FOUND THEN\n"
    "    RETURN NULL;\n"
    "  ELSIF v_def <> 0 THEN\n"
    "    RETURN (SELECT relname FROM pg_class WHERE oid = v_def);\n"
    "  END IF;\n"
    "  v_part := v_rel || '_default';\n"
    "  EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s DEFAULT', v_nsp, v_part,\n"
    "                 parent);\n"
    SQL_COPY_GRANTS
    "  RETURN v_part;\n"
    "END $$;\n"
    "--\n"
    "-- Rollups: <table>_minute counts the events table's rows per UTC minute of\n"
    "-- event_ts, site, zone, camera and event type (join misses keep site_id\n"
    "-- and zone NULL; site_name, the latest seen, is not part of the key).\n"
    "-- camjoin adds the rows it writes itself, in the batch's transaction: the\n"
    "-- groups it summed, or (on the staged path) those of the rows its INSERT\n"
    "-- ... ON CONFLICT DO NOTHING RETURNING really inserted. Changes made by\n"
    "-- hand: DELETE and UPDATE on the parent are followed by camjoin_rollup(),\n"
    "-- statement-level AFTER triggers with transition tables (deleted rows\n"
    "-- subtracted, a group that reaches 0 events goes; confidence_max is not\n"
    "-- recomputed, so it may stay above what remains; an UPDATE does both).\n"
    "-- There is no INSERT trigger: camjoin is 15-18 % faster without it\n"
    "-- (PostgreSQL captured every row again and inserted a COPY into a\n"
    "-- partitioned table row by row), so rows inserted by hand are not counted\n"
    "-- until camjoin_rollup_rebuild() is run over their minutes. Statements\n"
    "-- run on a partition itself (the rows camjoin_ensure_partition moves)\n"
    "-- fire no trigger of the parent, nor do DETACH, DROP or TRUNCATE: the\n"
    "-- rollups keep the history that retention drops. SECURITY DEFINER: only\n"
    "-- the owner may delete from the rollup table. Every upsert goes in key\n"
    "-- order, so writers adding to the same minutes cannot deadlock.\n"
    "CREATE OR REPLACE FUNCTION camjoin_rollup() RETURNS trigger\n"
    "LANGUAGE plpgsql " SQL_DEFINER
    "DECLARE\n"
    "  v_rollup text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME || '_minute');\n"
    "BEGIN\n"
    "  IF TG_OP IN ('DELETE', 'UPDATE') THEN\n"
    "    EXECUTE format($q$UPDATE %s r SET events = r.events - d.events,\n"
    "        object_count_sum = r.object_count_sum - d.object_count_sum\n"
    "      FROM (SELECT date_trunc('minute', event_ts, 'UTC') AS minute, site_id, zone,\n"
    "                   camera_id, event_type, count(*) AS events,\n"
    "                   coalesce(sum(object_count), 0) AS object_count_sum\n"
    "              FROM camjoin_old GROUP BY 1, 2, 3, 4, 5) d\n"
    "     WHERE r.minute = d.minute AND r.camera_id = d.camera_id\n"
    "       AND r.event_type = d.event_type AND r.site_id IS NOT DISTINCT FROM d.site_id\n"
    "       AND r.zone IS NOT DISTINCT FROM d.zone$q$, v_rollup);\n"
    "    EXECUTE format($q$DELETE FROM %s r USING (SELECT DISTINCT\n"
    "        date_trunc('minute', event_ts, 'UTC') AS minute, camera_id FROM camjoin_old) d\n"
    "     WHERE r.minute = d.minute AND r.camera_id = d.camera_id"
    " AND r.events <= 0$q$,\n"
    "      v_rollup);\n"
    "  END IF;\n"
    "  IF TG_OP IN ('INSERT', 'UPDATE') THEN\n"
    "    EXECUTE format($q$INSERT INTO %s AS r (" ROLLUP_COLUMNS ")\n"
    "      SELECT " SQL_ROLLUP_AGGREGATE "\n"
    "        FROM camjoin_new GROUP BY 1, 2, 4, 5, 6 ORDER BY 1, 2, 4, 5, 6"
    SQL_ROLLUP_UPSERT "$q$, v_rollup);\n"
    "  END IF;\n"
    "  RETURN NULL;\n"
    "END $$;\n"
    "-- camjoin_rollup_rebuild(parent, from, to): makes the rollup of the\n"
    "-- minutes [from, to) (widened to whole minutes) equal to the rows that\n"
    "-- are in the events table now, and returns the number of groups written.\n"
    "-- For rows inserted or changed by hand, or after a restore. Minutes whose\n"
    "-- partitions retention dropped lose their history: rebuild only ranges\n"
    "-- whose rows are all there. Safe while camjoin runs: the lock makes its\n"
    "-- upserts wait, and a batch not committed yet adds its rows after.\n"
    "CREATE OR REPLACE FUNCTION camjoin_rollup_rebuild(parent regclass,"
    " from_ts timestamptz, to_ts timestamptz)\n"
    "RETURNS bigint LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp"
    " AS $$\n"
    "DECLARE\n"
    "  v_rollup text; v_groups bigint;\n"
    "  v_lo timestamptz := date_trunc('minute', from_ts, 'UTC');\n"
    "  v_hi timestamptz := CASE WHEN date_trunc('minute', to_ts, 'UTC') = to_ts THEN to_ts\n"
    "                      ELSE date_trunc('minute', to_ts, 'UTC') + interval '1 minute' END;\n"
    "BEGIN\n"
    "  SELECT format('%I.%I', n.nspname, c.relname || '_minute') INTO v_rollup\n"
    "    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;\n"
    "  EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_rollup);\n"
    "  EXECUTE format('DELETE FROM %s WHERE minute >= $1 AND minute < $2', v_rollup)\n"
    "    USING v_lo, v_hi;\n"
    "  EXECUTE format($q$INSERT INTO %s (" ROLLUP_COLUMNS ")\n"
    "      SELECT " SQL_ROLLUP_AGGREGATE "\n"
    "        FROM %s WHERE event_ts >= $1 AND event_ts < $2 GROUP BY 1, 2, 4, 5, 6$q$,\n"
    "    v_rollup, parent) USING v_lo, v_hi;\n"
    "  GET DIAGNOSTICS v_groups = ROW_COUNT;\n"
    "  RETURN v_groups;\n"
    "END $$;\n"
    "REVOKE ALL ON FUNCTION camjoin_partitions(regclass),\n"
    "  camjoin_ensure_partition(regclass, date), camjoin_drop_partition(regclass, date),\n"
    "  camjoin_ensure_default_partition(regclass), camjoin_rollup(),\n"
    "  camjoin_rollup_rebuild(regclass, timestamptz, timestamptz) FROM PUBLIC;\n";

char *sink_pg_schema_sql(const char *table, const char *index)
{
    strbuf_t q = {0};
    strbuf_addf(&q,
        "CREATE TABLE IF NOT EXISTS %s (\n"
        "  event_id text NOT NULL, event_ts timestamptz NOT NULL,\n"
        "  camera_id text NOT NULL, event_type text NOT NULL,\n"
        "  confidence real, object_count integer, attributes jsonb,\n"
        "  site_id text, site_name text, zone text, latitude double precision,"
        " longitude double precision,\n"
        "  kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL,\n"
        "  ingested_at timestamptz NOT NULL DEFAULT now(),\n"
        "  PRIMARY KEY (event_id, event_ts)) PARTITION BY RANGE (event_ts);\n"
        "CREATE TABLE IF NOT EXISTS camjoin_offsets (consumer_group text,"
        " topic text, kafka_partition integer,\n"
        "  next_offset bigint NOT NULL, updated_at timestamptz NOT NULL"
        " DEFAULT now(),\n"
        "  PRIMARY KEY (consumer_group, topic, kafka_partition));\n"
        "CREATE TABLE IF NOT EXISTS camjoin_dead_letters (id bigserial PRIMARY"
        " KEY, topic text NOT NULL,\n"
        "  kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL,"
        " payload bytea,\n"
        "  reason text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());\n"
        "-- the natural key of a dead letter: a replay does not repeat it\n"
        "CREATE UNIQUE INDEX IF NOT EXISTS camjoin_dead_letters_position\n"
        "  ON camjoin_dead_letters (topic, kafka_partition, kafka_offset);\n"
        "-- dead letters re-driven by camjoin --redrive-dead-letters, by position:\n"
        "-- each once, in the transaction that wrote what it became ('row' or\n"
        "-- 'dropped'); no foreign key, so that dead letters may be truncated\n"
        "CREATE TABLE IF NOT EXISTS camjoin_redriven (topic text NOT NULL,\n"
        "  kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL,\n"
        "  outcome text NOT NULL, redriven_at timestamptz NOT NULL DEFAULT now(),\n"
        "  PRIMARY KEY (topic, kafka_partition, kafka_offset));\n"
        "-- finds the events of the dedup window, to warm it after a rebalance\n"
        "-- (made on the parent, so every partition has it)\n"
        "CREATE INDEX IF NOT EXISTS %s ON %s (ingested_at);\n",
        table, index, table);
    strbuf_addf(&q, "%s", ddl_functions);
    strbuf_addf(&q, "SELECT camjoin_ensure_default_partition(");
    sink_sql_add_ident_lit(&q, table, "");
    strbuf_addf(&q, ");\nCREATE TABLE IF NOT EXISTS ");
    sink_sql_add_ident(&q, table, "_minute");
    strbuf_addf(&q, " (\n"
        "  minute timestamptz NOT NULL, site_id text, site_name text, zone text,\n"
        "  camera_id text NOT NULL, event_type text NOT NULL, events bigint NOT NULL,\n"
        "  object_count_sum bigint NOT NULL, confidence_max real,\n"
        "  CONSTRAINT ");
    sink_sql_add_ident(&q, table, "_minute_key");
    strbuf_addf(&q, " UNIQUE NULLS NOT DISTINCT\n"
        "    (minute, site_id, zone, camera_id, event_type));\n"
        "-- room on each page for the next versions of its rows: every batch\n"
        "-- updates the groups of the minute, and a HOT update needs no index entry\n"
        "ALTER TABLE ");
    sink_sql_add_ident(&q, table, "_minute");
    strbuf_addf(&q, " SET (fillfactor = 70);\n"
        "-- camjoin adds its own rows to the rollup (no INSERT trigger: see\n"
        "-- camjoin_rollup_rebuild above); an earlier camjoin's trigger goes\n"
        "DROP TRIGGER IF EXISTS camjoin_rollup_insert ON %s;\n"
        "CREATE OR REPLACE TRIGGER camjoin_rollup_delete AFTER DELETE ON %s\n"
        "  REFERENCING OLD TABLE AS camjoin_old\n"
        "  FOR EACH STATEMENT EXECUTE FUNCTION camjoin_rollup();\n"
        "CREATE OR REPLACE TRIGGER camjoin_rollup_update AFTER UPDATE ON %s\n"
        "  REFERENCING OLD TABLE AS camjoin_old NEW TABLE AS camjoin_new\n"
        "  FOR EACH STATEMENT EXECUTE FUNCTION camjoin_rollup();\n"
        "-- the rows an earlier camjoin wrote are counted once, when the rollup\n"
        "-- table is new (the triggers' lock keeps writers out until the end of\n"
        "-- the transaction: apply this file with psql -1)\n"
        "INSERT INTO ", table, table, table);
    sink_sql_add_ident(&q, table, "_minute");
    strbuf_addf(&q, " (" ROLLUP_COLUMNS ")\n"
        "  SELECT " SQL_ROLLUP_AGGREGATE "\n"
        "    FROM %s WHERE NOT EXISTS (SELECT FROM ", table);
    sink_sql_add_ident(&q, table, "_minute");
    strbuf_addf(&q, ")\n   GROUP BY 1, 2, 4, 5, 6;\n"
        "-- views for dashboards (minutes and hours are UTC)\n"
        "CREATE OR REPLACE VIEW ");
    sink_sql_add_ident(&q, table, "_site_minute");
    strbuf_addf(&q, " AS\n"
        "  SELECT minute, site_id, max(site_name) AS site_name, sum(events)::bigint AS events,\n"
        "         sum(object_count_sum)::bigint AS object_count_sum\n"
        "    FROM ");
    sink_sql_add_ident(&q, table, "_minute");
    strbuf_addf(&q, " GROUP BY minute, site_id;\n"
        "CREATE OR REPLACE VIEW ");
    sink_sql_add_ident(&q, table, "_top_cameras_1h");
    strbuf_addf(&q, " AS\n"
        "  SELECT camera_id, site_id, max(site_name) AS site_name, sum(events)::bigint AS events\n"
        "    FROM ");
    sink_sql_add_ident(&q, table, "_minute");
    strbuf_addf(&q, "\n"
        "   WHERE minute >= date_trunc('minute', now()) - interval '1 hour'\n"
        "   GROUP BY camera_id, site_id ORDER BY events DESC, camera_id, site_id;\n"
        "CREATE OR REPLACE VIEW ");
    sink_sql_add_ident(&q, table, "_join_misses_minute");
    strbuf_addf(&q, " AS\n"
        "  SELECT minute, sum(events)::bigint AS events FROM ");
    sink_sql_add_ident(&q, table, "_minute");
    strbuf_addf(&q, "\n"
        "   WHERE site_id IS NULL GROUP BY minute;\n"
        "CREATE OR REPLACE VIEW camjoin_dead_letters_hourly AS\n"
        "  SELECT date_trunc('hour', created_at, 'UTC') AS hour, reason,"
        " count(*) AS dead_letters\n"
        "    FROM camjoin_dead_letters GROUP BY 1, 2;\n");
    if (q.oom) {
        strbuf_free(&q);
        return NULL;
    }
    return strbuf_take(&q);
}

/* The relations named after the events table. */
static const char *const derived[] = {"_minute", "_site_minute",
                                      "_top_cameras_1h", "_join_misses_minute"};

void sink_sql_schema_present(strbuf_t *q, const char *table, const char *index)
{
    strbuf_reset(q);
    strbuf_addf(q, "SELECT to_regclass(");
    sink_sql_add_ident_lit(q, table, "");
    strbuf_addf(q, ") IS NOT NULL AND to_regclass(");
    sink_sql_add_ident_lit(q, index, "");
    strbuf_addf(q, ") IS NOT NULL");
    for (size_t i = 0; i < ARRAY_LEN(derived); i++) {
        strbuf_addf(q, " AND to_regclass(");
        sink_sql_add_ident_lit(q, table, derived[i]);
        strbuf_addf(q, ") IS NOT NULL");
    }
    strbuf_addf(q,
        " AND to_regclass('camjoin_offsets') IS NOT NULL"
        " AND to_regclass('camjoin_dead_letters') IS NOT NULL"
        " AND to_regclass('camjoin_dead_letters_position') IS NOT NULL"
        " AND to_regclass('camjoin_dead_letters_hourly') IS NOT NULL"
        " AND to_regclass('camjoin_redriven') IS NOT NULL"
        " AND to_regprocedure('camjoin_partitions(regclass)') IS NOT NULL"
        " AND to_regprocedure('camjoin_ensure_partition(regclass,date)') IS NOT NULL"
        " AND to_regprocedure('camjoin_drop_partition(regclass,date)') IS NOT NULL"
        " AND to_regprocedure('camjoin_ensure_default_partition(regclass)')"
        " IS NOT NULL AND to_regprocedure('camjoin_rollup()') IS NOT NULL"
        " AND to_regprocedure('camjoin_rollup_rebuild(regclass,timestamptz,timestamptz)')"
        " IS NOT NULL"
        /* a partitioned events table has its default partition */
        " AND NOT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid ="
        " to_regclass(");
    sink_sql_add_ident_lit(q, table, "");
    strbuf_addf(q, ") AND partdefid = 0)"
        /* the two hand-change triggers, and not an earlier camjoin's
         * INSERT trigger, which would count camjoin's rows twice */
        " AND (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger"
        " WHERE tgrelid = to_regclass(");
    sink_sql_add_ident_lit(q, table, "");
    strbuf_addf(q, ") AND tgname IN ('camjoin_rollup_insert', 'camjoin_rollup_delete',"
                   " 'camjoin_rollup_update')) = 'camjoin_rollup_delete,camjoin_rollup_update'");
}

