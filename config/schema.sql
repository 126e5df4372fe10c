-- camjoin schema: exactly what the daemon creates (idempotently) at startup.
-- The events table name is configurable (postgres.table); this file uses the default.
-- Apply it in one transaction: psql -1 -v ON_ERROR_STOP=1 -f schema.sql
CREATE TABLE IF NOT EXISTS "camera_events" (
  event_id text NOT NULL, event_ts timestamptz NOT NULL,
  camera_id text NOT NULL, event_type text NOT NULL,
  confidence real, object_count integer, attributes jsonb,
  site_id text, site_name text, zone text, latitude double precision, longitude double precision,
  kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL,
  ingested_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_id, event_ts)) PARTITION BY RANGE (event_ts);
CREATE TABLE IF NOT EXISTS camjoin_offsets (consumer_group text, topic text, kafka_partition integer,
  next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, kafka_partition));
CREATE TABLE IF NOT EXISTS camjoin_dead_letters (id bigserial PRIMARY KEY, topic text NOT NULL,
  kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL, payload bytea,
  reason text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
-- the natural key of a dead letter: a replay does not repeat it
CREATE UNIQUE INDEX IF NOT EXISTS camjoin_dead_letters_position
  ON camjoin_dead_letters (topic, kafka_partition, kafka_offset);
-- dead letters re-driven by camjoin --redrive-dead-letters, by position:
-- each once, in the transaction that wrote what it became ('row' or
-- 'dropped'); no foreign key, so that dead letters may be truncated
CREATE TABLE IF NOT EXISTS camjoin_redriven (topic text NOT NULL,
  kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL,
  outcome text NOT NULL, redriven_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, kafka_partition, kafka_offset));
-- finds the events of the dedup window, to warm it after a rebalance
-- (made on the parent, so every partition has it)
CREATE INDEX IF NOT EXISTS "camera_events_ingested_at_idx" ON "camera_events" (ingested_at);
--
-- Partitions: one per UTC day, <table>_pYYYYMMDD, FOR VALUES FROM
-- ('YYYY-MM-DD 00:00:00+00') TO (the next day), and <table>_default for
-- the rows of days that have none. The daemon's upkeep uses these three
-- functions only. SECURITY DEFINER: they run as their owner (the schema's
-- owner), so a writer without DDL rights may call them; EXECUTE is revoked
-- from PUBLIC below and granted by config/roles.sql. The search_path is
-- pinned (every name they use is in pg_catalog or schema-qualified), and
-- so are DateStyle and TimeZone, as they read the bounds back as text. An
-- events table that an earlier camjoin created unpartitioned is left as it
-- is; camjoin_ensure_partition() and camjoin_drop_partition() raise
-- SQLSTATE CJ001 for it (README, "Partitions, rollups and views").
--
-- camjoin_partitions(parent): name, UTC day and is_default of each
-- partition; day is NULL unless the partition covers exactly one UTC day
-- (the default, or an old table attached whole, which retention leaves).
CREATE OR REPLACE FUNCTION camjoin_partitions(parent regclass)
RETURNS TABLE (name text, day date, is_default boolean)
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO, YMD' SET timezone = 'UTC' AS $$
BEGIN
  RETURN QUERY SELECT b.name, CASE WHEN isfinite(b.lo) AND isfinite(b.hi)
        AND b.lo = (b.lo AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC'
        AND b.hi = ((b.lo AT TIME ZONE 'UTC')::date + 1)::timestamp AT TIME ZONE 'UTC'
       THEN (b.lo AT TIME ZONE 'UTC')::date END,
         b.is_default
    FROM (SELECT c.oid::regclass AS rel, c.relname::text AS name,
          e.expr = 'DEFAULT' AS is_default,
          CASE r.m[1] WHEN 'MINVALUE' THEN '-infinity' ELSE btrim(r.m[1], '''') END::timestamptz AS lo,
          CASE r.m[2] WHEN 'MAXVALUE' THEN 'infinity' ELSE btrim(r.m[2], '''') END::timestamptz AS hi
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
          LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) e,
          LATERAL (SELECT regexp_match(e.expr, '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') AS m) r
    WHERE i.inhparent = parent) b
   ORDER BY b.is_default DESC, b.lo;
END $$;
-- camjoin_ensure_partition(parent, day): the partition of that UTC day
-- exists when it returns its name (an existing partition whose range
-- covers the day counts). A new one takes that day's rows out of the
-- default partition in the same transaction: the default is locked, the
-- table created LIKE the parent, the rows moved (DELETE ... RETURNING into
-- INSERT), then the table attached. It gets the parent's SELECT grants:
-- whoever may read the table may read the partition by name. The
-- rollups do not change, as statements on a partition fire no trigger of
-- the parent. Calls for one table run one at a time (SHARE UPDATE
-- EXCLUSIVE on it: reads and inserts go on). A writer that routes a row
-- of that day to the default partition at that very moment fails with a
-- partition constraint violation, and retries.
CREATE OR REPLACE FUNCTION camjoin_ensure_partition(parent regclass, day date)
RETURNS text LANGUAGE plpgsql STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO, YMD' SET timezone = 'UTC' AS $$
DECLARE
  v_from text := to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00';
  v_to text := to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00';
  v_nsp text; v_rel text; v_part text; v_def oid; v_cols text; v_grantee oid;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = parent) THEN
    RAISE EXCEPTION 'table % is not partitioned', parent USING ERRCODE = 'CJ001',
      HINT = 'camjoin writes to it all the same, without partition upkeep;'
             ' README, "Partitions, rollups and views", shows the migration';
  END IF;
  EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);
  SELECT b.name INTO v_part FROM (SELECT c.oid::regclass AS rel, c.relname::text AS name,
          e.expr = 'DEFAULT' AS is_default,
          CASE r.m[1] WHEN 'MINVALUE' THEN '-infinity' ELSE btrim(r.m[1], '''') END::timestamptz AS lo,
          CASE r.m[2] WHEN 'MAXVALUE' THEN 'infinity' ELSE btrim(r.m[2], '''') END::timestamptz AS hi
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
          LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) e,
          LATERAL (SELECT regexp_match(e.expr, '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') AS m) r
    WHERE i.inhparent = parent) b
   WHERE NOT b.is_default AND b.lo <= v_from::timestamptz AND b.hi >= v_to::timestamptz;
  IF v_part IS NOT NULL THEN
    RETURN v_part;
  END IF;
  SELECT n.nspname, c.relname, p.partdefid INTO v_nsp, v_rel, v_def
    FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.partrelid = parent;
  v_part := v_rel || '_p' || to_char(day, 'YYYYMMDD');
  IF octet_length(v_part) > 63 THEN
    RAISE EXCEPTION 'partition name % is longer than 63 bytes', v_part;
  END IF;
  EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING'
                 ' CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)',
                 v_nsp, v_part, parent);
  FOR v_grantee IN SELECT a.grantee FROM pg_class c, aclexplode(c.relacl) a
     WHERE c.oid = parent AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner LOOP
    EXECUTE format('GRANT SELECT ON %I.%I TO %s', v_nsp, v_part,
      CASE v_grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(v_grantee)) END);
  END LOOP;
  IF v_def <> 0 THEN
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_def::regclass);
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols
      FROM pg_attribute WHERE attrelid = parent AND attnum > 0 AND NOT attisdropped;
    EXECUTE format('WITH moved AS (DELETE FROM %s WHERE event_ts >= %L AND'
                   ' event_ts < %L RETURNING %s) INSERT INTO %I.%I (%s)'
                   ' SELECT %s FROM moved', v_def::regclass, v_from, v_to,
                   v_cols, v_nsp, v_part, v_cols, v_cols);
  END IF;
  EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L)'
                 ' TO (%L)', parent, v_nsp, v_part, v_from, v_to);
  RETURN v_part;
END $$;
-- camjoin_drop_partition(parent, day): detaches and drops the partition of
-- that UTC day; returns the number of rows it held (0: there was none).
-- The rollups keep them (DROP fires no trigger). To archive a partition
-- first, read it through the parent (WHERE event_ts >= day AND event_ts <
-- day + 1 is pruned to it) and compare the counts in the same transaction.
CREATE OR REPLACE FUNCTION camjoin_drop_partition(parent regclass, day date)
RETURNS bigint LANGUAGE plpgsql STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO, YMD' SET timezone = 'UTC' AS $$
DECLARE
  v_part regclass; v_rows bigint;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = parent) THEN
    RAISE EXCEPTION 'table % is not partitioned', parent USING ERRCODE = 'CJ001',
      HINT = 'camjoin writes to it all the same, without partition upkeep;'
             ' README, "Partitions, rollups and views", shows the migration';
  END IF;
  EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);
  SELECT b.rel INTO v_part FROM (SELECT c.oid::regclass AS rel, c.relname::text AS name,
          e.expr = 'DEFAULT' AS is_default,
          CASE r.m[1] WHEN 'MINVALUE' THEN '-infinity' ELSE btrim(r.m[1], '''') END::timestamptz AS lo,
          CASE r.m[2] WHEN 'MAXVALUE' THEN 'infinity' ELSE btrim(r.m[2], '''') END::timestamptz AS hi
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
          LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) e,
          LATERAL (SELECT regexp_match(e.expr, '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') AS m) r
    WHERE i.inhparent = parent) b
   WHERE NOT b.is_default AND CASE WHEN isfinite(b.lo) AND isfinite(b.hi)
        AND b.lo = (b.lo AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC'
        AND b.hi = ((b.lo AT TIME ZONE 'UTC')::date + 1)::timestamp AT TIME ZONE 'UTC'
       THEN (b.lo AT TIME ZONE 'UTC')::date END = day;
  IF v_part IS NULL THEN
    RETURN 0;
  END IF;
  EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent, v_part);
  EXECUTE format('SELECT count(*) FROM %s', v_part) INTO v_rows;
  EXECUTE format('DROP TABLE %s', v_part);
  RETURN v_rows;
END $$;
-- camjoin_ensure_default_partition(parent): creates <table>_default when
-- the table is partitioned and has no default partition; returns the
-- default's name, or NULL for an unpartitioned table. Used by this DDL.
CREATE OR REPLACE FUNCTION camjoin_ensure_default_partition(parent regclass)
RETURNS text LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_nsp text; v_rel text; v_part text; v_def oid; v_grantee oid;
BEGIN
  SELECT n.nspname, c.relname, p.partdefid INTO v_nsp, v_rel, v_def
    FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.partrelid = parent;
  IF NOT FOUND THEN
    RETURN NULL;
  ELSIF v_def <> 0 THEN
    RETURN (SELECT relname FROM pg_class WHERE oid = v_def);
  END IF;
  v_part := v_rel || '_default';
  EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s DEFAULT', v_nsp, v_part,
                 parent);
  FOR v_grantee IN SELECT a.grantee FROM pg_class c, aclexplode(c.relacl) a
     WHERE c.oid = parent AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner LOOP
    EXECUTE format('GRANT SELECT ON %I.%I TO %s', v_nsp, v_part,
      CASE v_grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(v_grantee)) END);
  END LOOP;
  RETURN v_part;
END $$;
--
-- Rollups: <table>_minute counts the events table's rows per UTC minute of
-- event_ts, site, zone, camera and event type (join misses keep site_id
-- and zone NULL; site_name, the latest seen, is not part of the key).
-- camjoin adds the rows it writes itself, in the batch's transaction: the
-- groups it summed, or (on the staged path) those of the rows its INSERT
-- ... ON CONFLICT DO NOTHING RETURNING really inserted. Changes made by
-- hand: DELETE and UPDATE on the parent are followed by camjoin_rollup(),
-- statement-level AFTER triggers with transition tables (deleted rows
-- subtracted, a group that reaches 0 events goes; confidence_max is not
-- recomputed, so it may stay above what remains; an UPDATE does both).
-- There is no INSERT trigger: camjoin is 15-18 % faster without it
-- (PostgreSQL captured every row again and inserted a COPY into a
-- partitioned table row by row), so rows inserted by hand are not counted
-- until camjoin_rollup_rebuild() is run over their minutes. Statements
-- run on a partition itself (the rows camjoin_ensure_partition moves)
-- fire no trigger of the parent, nor do DETACH, DROP or TRUNCATE: the
-- rollups keep the history that retention drops. SECURITY DEFINER: only
-- the owner may delete from the rollup table. Every upsert goes in key
-- order, so writers adding to the same minutes cannot deadlock.
CREATE OR REPLACE FUNCTION camjoin_rollup() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rollup text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME || '_minute');
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    EXECUTE format($q$UPDATE %s r SET events = r.events - d.events,
        object_count_sum = r.object_count_sum - d.object_count_sum
      FROM (SELECT date_trunc('minute', event_ts, 'UTC') AS minute, site_id, zone,
                   camera_id, event_type, count(*) AS events,
                   coalesce(sum(object_count), 0) AS object_count_sum
              FROM camjoin_old GROUP BY 1, 2, 3, 4, 5) d
     WHERE r.minute = d.minute AND r.camera_id = d.camera_id
       AND r.event_type = d.event_type AND r.site_id IS NOT DISTINCT FROM d.site_id
       AND r.zone IS NOT DISTINCT FROM d.zone$q$, v_rollup);
    EXECUTE format($q$DELETE FROM %s r USING (SELECT DISTINCT
        date_trunc('minute', event_ts, 'UTC') AS minute, camera_id FROM camjoin_old) d
     WHERE r.minute = d.minute AND r.camera_id = d.camera_id AND r.events <= 0$q$,
      v_rollup);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    EXECUTE format($q$INSERT INTO %s AS r (minute, site_id, site_name, zone, camera_id, event_type, events, object_count_sum, confidence_max)
      SELECT date_trunc('minute', event_ts, 'UTC'), site_id, max(site_name), zone,
        camera_id, event_type, count(*), coalesce(sum(object_count), 0),
        max(confidence)
        FROM camjoin_new GROUP BY 1, 2, 4, 5, 6 ORDER BY 1, 2, 4, 5, 6
  ON CONFLICT (minute, site_id, zone, camera_id, event_type) DO UPDATE
    SET events = r.events + excluded.events,
        object_count_sum = r.object_count_sum + excluded.object_count_sum,
        confidence_max = greatest(r.confidence_max, excluded.confidence_max),
        site_name = excluded.site_name$q$, v_rollup);
  END IF;
  RETURN NULL;
END $$;
-- camjoin_rollup_rebuild(parent, from, to): makes the rollup of the
-- minutes [from, to) (widened to whole minutes) equal to the rows that
-- are in the events table now, and returns the number of groups written.
-- For rows inserted or changed by hand, or after a restore. Minutes whose
-- partitions retention dropped lose their history: rebuild only ranges
-- whose rows are all there. Safe while camjoin runs: the lock makes its
-- upserts wait, and a batch not committed yet adds its rows after.
CREATE OR REPLACE FUNCTION camjoin_rollup_rebuild(parent regclass, from_ts timestamptz, to_ts timestamptz)
RETURNS bigint LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rollup text; v_groups bigint;
  v_lo timestamptz := date_trunc('minute', from_ts, 'UTC');
  v_hi timestamptz := CASE WHEN date_trunc('minute', to_ts, 'UTC') = to_ts THEN to_ts
                      ELSE date_trunc('minute', to_ts, 'UTC') + interval '1 minute' END;
BEGIN
  SELECT format('%I.%I', n.nspname, c.relname || '_minute') INTO v_rollup
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
  EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_rollup);
  EXECUTE format('DELETE FROM %s WHERE minute >= $1 AND minute < $2', v_rollup)
    USING v_lo, v_hi;
  EXECUTE format($q$INSERT INTO %s (minute, site_id, site_name, zone, camera_id, event_type, events, object_count_sum, confidence_max)
      SELECT date_trunc('minute', event_ts, 'UTC'), site_id, max(site_name), zone,
        camera_id, event_type, count(*), coalesce(sum(object_count), 0),
        max(confidence)
        FROM %s WHERE event_ts >= $1 AND event_ts < $2 GROUP BY 1, 2, 4, 5, 6$q$,
    v_rollup, parent) USING v_lo, v_hi;
  GET DIAGNOSTICS v_groups = ROW_COUNT;
  RETURN v_groups;
END $$;
REVOKE ALL ON FUNCTION camjoin_partitions(regclass),
  camjoin_ensure_partition(regclass, date), camjoin_drop_partition(regclass, date),
  camjoin_ensure_default_partition(regclass), camjoin_rollup(),
  camjoin_rollup_rebuild(regclass, timestamptz, timestamptz) FROM PUBLIC;
SELECT camjoin_ensure_default_partition('"camera_events"');
CREATE TABLE IF NOT EXISTS "camera_events_minute" (
  minute timestamptz NOT NULL, site_id text, site_name text, zone text,
  camera_id text NOT NULL, event_type text NOT NULL, events bigint NOT NULL,
  object_count_sum bigint NOT NULL, confidence_max real,
  CONSTRAINT "camera_events_minute_key" UNIQUE NULLS NOT DISTINCT
    (minute, site_id, zone, camera_id, event_type));
-- room on each page for the next versions of its rows: every batch
-- updates the groups of the minute, and a HOT update needs no index entry
ALTER TABLE "camera_events_minute" SET (fillfactor = 70);
-- camjoin adds its own rows to the rollup (no INSERT trigger: see
-- camjoin_rollup_rebuild above); an earlier camjoin's trigger goes
DROP TRIGGER IF EXISTS camjoin_rollup_insert ON "camera_events";
CREATE OR REPLACE TRIGGER camjoin_rollup_delete AFTER DELETE ON "camera_events"
  REFERENCING OLD TABLE AS camjoin_old
  FOR EACH STATEMENT EXECUTE FUNCTION camjoin_rollup();
CREATE OR REPLACE TRIGGER camjoin_rollup_update AFTER UPDATE ON "camera_events"
  REFERENCING OLD TABLE AS camjoin_old NEW TABLE AS camjoin_new
  FOR EACH STATEMENT EXECUTE FUNCTION camjoin_rollup();
-- the rows an earlier camjoin wrote are counted once, when the rollup
-- table is new (the triggers' lock keeps writers out until the end of
-- the transaction: apply this file with psql -1)
INSERT INTO "camera_events_minute" (minute, site_id, site_name, zone, camera_id, event_type, events, object_count_sum, confidence_max)
  SELECT date_trunc('minute', event_ts, 'UTC'), site_id, max(site_name), zone,
        camera_id, event_type, count(*), coalesce(sum(object_count), 0),
        max(confidence)
    FROM "camera_events" WHERE NOT EXISTS (SELECT FROM "camera_events_minute")
   GROUP BY 1, 2, 4, 5, 6;
-- views for dashboards (minutes and hours are UTC)
CREATE OR REPLACE VIEW "camera_events_site_minute" AS
  SELECT minute, site_id, max(site_name) AS site_name, sum(events)::bigint AS events,
         sum(object_count_sum)::bigint AS object_count_sum
    FROM "camera_events_minute" GROUP BY minute, site_id;
CREATE OR REPLACE VIEW "camera_events_top_cameras_1h" AS
  SELECT camera_id, site_id, max(site_name) AS site_name, sum(events)::bigint AS events
    FROM "camera_events_minute"
   WHERE minute >= date_trunc('minute', now()) - interval '1 hour'
   GROUP BY camera_id, site_id ORDER BY events DESC, camera_id, site_id;
CREATE OR REPLACE VIEW "camera_events_join_misses_minute" AS
  SELECT minute, sum(events)::bigint AS events FROM "camera_events_minute"
   WHERE site_id IS NULL GROUP BY minute;
CREATE OR REPLACE VIEW camjoin_dead_letters_hourly AS
  SELECT date_trunc('hour', created_at, 'UTC') AS hour, reason, count(*) AS dead_letters
    FROM camjoin_dead_letters GROUP BY 1, 2;
