-- camjoin least-privilege setup (see docs/SECURITY.md).
--
-- Three roles:
--   camjoin_owner   NOLOGIN  owns every object of config/schema.sql: tables,
--                            partitions, sequence, indexes, views, functions
--                            (nobody logs in as it; DDL and migrations run as
--                            an administrator with SET ROLE)
--   camjoin         LOGIN    what the daemon connects as: it may read and
--                            append rows, move its offsets, create TEMP staging
--                            tables and call the three partition functions
--                            (which run as camjoin_owner), nothing else (no
--                            CREATE on any schema, no DDL, no DELETE/TRUNCATE,
--                            no UPDATE of events; on the rollup table only the
--                            upsert that adds each batch's groups)
--   camjoin_reader  LOGIN    a read-only dashboard role (Grafana): SELECT on
--                            the events table (and so its partitions), the
--                            rollup table, the views and the dead letters;
--                            nothing else (not camjoin_offsets, no TEMP)
--
-- How to apply, as a superuser (or a role with CREATEROLE that may create in
-- schema public), in the database camjoin writes to, from the repository root:
--
--   createdb camjoin                      # if it does not exist yet
--   psql -v ON_ERROR_STOP=1 -d camjoin -f config/roles.sql
--   psql -d camjoin -c "ALTER ROLE camjoin PASSWORD '...'"   # or \password camjoin
--   psql -d camjoin -c '\password camjoin_reader'
--
-- The file is idempotent (run it again after an upgrade). It creates the
-- schema itself, as camjoin_owner, by including config/schema.sql (\ir: the
-- path is relative to this file) in one transaction. Objects that already
-- exist (created by an earlier camjoin run as another role) are handed over
-- to camjoin_owner. camjoin then finds every object present at startup and
-- runs no DDL at all.
--
-- If postgres.table is not the default camera_events, create that table as
-- camjoin_owner (schema.sql with the name replaced) and repeat the
-- camera_events statements below for it, its partitions, its rollup table
-- and its three views.
--
-- It revokes the database's default PUBLIC privileges (CONNECT, TEMPORARY)
-- and CREATE on schema public, so that only roles granted them explicitly can
-- connect or create: grant CONNECT to your other roles.

\set ON_ERROR_STOP 1
SELECT current_database() AS camjoin_db \gset

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'camjoin_owner') THEN
        CREATE ROLE camjoin_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'camjoin') THEN
        CREATE ROLE camjoin LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'camjoin_reader') THEN
        CREATE ROLE camjoin_reader LOGIN;
    END IF;
END
$$;
ALTER ROLE camjoin_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE camjoin LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE camjoin_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE camjoin_reader SET default_transaction_read_only = on;

-- Nobody but the owner creates objects in public (PostgreSQL 15's default
-- already; older clusters grant CREATE to PUBLIC).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE :"camjoin_db" FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO camjoin_owner;

-- Objects that exist already (an earlier camjoin run as another role created
-- them) change hands first: tables, the events table's partitions (ALTER
-- TABLE does not recurse to them), views and functions; the id sequence and
-- the indexes follow their table.
DO $$
DECLARE r regclass; f text;
BEGIN
    FOR r IN SELECT to_regclass(t) FROM unnest(ARRAY['camera_events', 'camera_events_minute',
                 'camjoin_offsets', 'camjoin_dead_letters', 'camjoin_redriven']) t WHERE to_regclass(t) IS NOT NULL
             UNION ALL
             SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = to_regclass('camera_events') LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO camjoin_owner', r);
    END LOOP;
    FOR r IN SELECT to_regclass(v) FROM unnest(ARRAY['camera_events_site_minute',
                 'camera_events_top_cameras_1h', 'camera_events_join_misses_minute',
                 'camjoin_dead_letters_hourly']) v WHERE to_regclass(v) IS NOT NULL LOOP
        EXECUTE format('ALTER VIEW %s OWNER TO camjoin_owner', r);
    END LOOP;
    FOREACH f IN ARRAY ARRAY['camjoin_partitions(regclass)', 'camjoin_ensure_partition(regclass,date)',
                 'camjoin_drop_partition(regclass,date)', 'camjoin_ensure_default_partition(regclass)',
                 'camjoin_rollup()', 'camjoin_rollup_rebuild(regclass,timestamptz,timestamptz)'] LOOP
        IF to_regprocedure(f) IS NOT NULL THEN
            EXECUTE format('ALTER FUNCTION %s OWNER TO camjoin_owner', to_regprocedure(f));
        END IF;
    END LOOP;
END
$$;
-- The schema (whatever is missing of it), created by its owner, in one
-- transaction (the rollup table's first fill must see no writer in between).
SET ROLE camjoin_owner;
BEGIN;
\ir schema.sql
COMMIT;
RESET ROLE;

-- The daemon's role: exactly what camjoin does, nothing more.
REVOKE ALL ON camera_events, camjoin_offsets, camjoin_dead_letters, camjoin_redriven, camera_events_minute,
    camera_events_site_minute, camera_events_top_cameras_1h, camera_events_join_misses_minute,
    camjoin_dead_letters_hourly FROM camjoin, camjoin_reader;
REVOKE ALL ON SEQUENCE camjoin_dead_letters_id_seq FROM camjoin, camjoin_reader;
REVOKE ALL ON FUNCTION camjoin_partitions(regclass), camjoin_ensure_partition(regclass, date),
    camjoin_drop_partition(regclass, date), camjoin_ensure_default_partition(regclass),
    camjoin_rollup(), camjoin_rollup_rebuild(regclass, timestamptz, timestamptz)
    FROM camjoin, camjoin_reader;
REVOKE CREATE ON SCHEMA public FROM camjoin, camjoin_reader;
REVOKE ALL ON DATABASE :"camjoin_db" FROM camjoin_reader;
GRANT CONNECT, TEMPORARY ON DATABASE :"camjoin_db" TO camjoin;  -- TEMP: the COPY staging tables
GRANT USAGE ON SCHEMA public TO camjoin;
GRANT SELECT, INSERT ON camera_events TO camjoin;          -- rows; SELECT for the dedup warm-up
GRANT SELECT, INSERT ON camjoin_dead_letters TO camjoin;
GRANT USAGE ON SEQUENCE camjoin_dead_letters_id_seq TO camjoin;  -- nextval() for the id
GRANT SELECT, INSERT ON camjoin_redriven TO camjoin;          -- --redrive-dead-letters
GRANT SELECT, INSERT, UPDATE ON camjoin_offsets TO camjoin;   -- the fenced offset UPDATE
-- the batch's rollup groups: INSERT ... ON CONFLICT DO UPDATE (no DELETE:
-- hand deletes go through the owner's trigger)
GRANT SELECT, INSERT, UPDATE ON camera_events_minute TO camjoin;
-- the partition upkeep (SECURITY DEFINER: they run as camjoin_owner)
GRANT EXECUTE ON FUNCTION camjoin_partitions(regclass), camjoin_ensure_partition(regclass, date),
    camjoin_drop_partition(regclass, date) TO camjoin;

-- The dashboards' role: reads, nothing more.
GRANT CONNECT ON DATABASE :"camjoin_db" TO camjoin_reader;
GRANT USAGE ON SCHEMA public TO camjoin_reader;
GRANT SELECT ON camera_events, camera_events_minute, camera_events_site_minute,
    camera_events_top_cameras_1h, camera_events_join_misses_minute, camjoin_dead_letters,
    camjoin_dead_letters_hourly, camjoin_redriven TO camjoin_reader;

-- Partitions that exist: the same SELECT as their table (new ones get it from
-- camjoin_ensure_partition), so a partition may be read by name as well.
DO $$
DECLARE r regclass;
BEGIN
    FOR r IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'camera_events'::regclass LOOP
        EXECUTE format('REVOKE ALL ON %s FROM camjoin, camjoin_reader', r);
        EXECUTE format('GRANT SELECT ON %s TO camjoin, camjoin_reader', r);
    END LOOP;
END
$$;
