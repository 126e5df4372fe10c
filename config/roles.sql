-- camjoin least-privilege setup (see docs/SECURITY.md).
--
-- Two roles:
--   camjoin_owner  NOLOGIN  owns the tables, the sequence and the indexes of
--                           config/schema.sql (nobody logs in as it; DDL and
--                           migrations run as an administrator with SET ROLE)
--   camjoin        LOGIN    what the daemon connects as: it may read and append
--                           rows, move its offsets and create TEMP staging
--                           tables, nothing else (no CREATE on any schema, no
--                           DDL, no DELETE/TRUNCATE, no UPDATE of events)
--
-- How to apply, as a superuser (or a role with CREATEROLE that may create in
-- schema public), in the database camjoin writes to, from the repository root:
--
--   createdb camjoin                      # if it does not exist yet
--   psql -v ON_ERROR_STOP=1 -d camjoin -f config/roles.sql
--   psql -d camjoin -c "ALTER ROLE camjoin PASSWORD '...'"   # or \password camjoin
--
-- The file is idempotent (run it again after an upgrade). It creates the
-- schema itself, as camjoin_owner, by including config/schema.sql (\ir: the
-- path is relative to this file). Tables that already exist (created by an
-- earlier camjoin run as another role) are handed over to camjoin_owner.
-- camjoin then finds every object present at startup and runs no DDL at all.
--
-- If postgres.table is not the default camera_events, create that table as
-- camjoin_owner (schema.sql with the name replaced) and repeat the two
-- camera_events statements below for it.
--
-- It revokes the database's default PUBLIC privileges (CONNECT, TEMPORARY)
-- and CREATE on schema public, so that only roles granted them explicitly can
-- connect or create: grant CONNECT to your other roles (e.g. a read-only
-- dashboard role: GRANT CONNECT ON DATABASE ...; GRANT SELECT ON camera_events).

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
END
$$;
ALTER ROLE camjoin_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE camjoin LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- Nobody but the owner creates objects in public (PostgreSQL 15's default
-- already; older clusters grant CREATE to PUBLIC).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE :"camjoin_db" FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO camjoin_owner;

-- Tables that exist already (an earlier camjoin run as another role created
-- them) change hands first; the id sequence and the indexes follow their table.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['camera_events', 'camjoin_offsets', 'camjoin_dead_letters'] LOOP
        IF to_regclass(t) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I OWNER TO camjoin_owner', t);
        END IF;
    END LOOP;
END
$$;
-- The schema (whatever is missing of it), created by its owner.
SET ROLE camjoin_owner;
\ir schema.sql
RESET ROLE;

-- The daemon's role: exactly what camjoin does, nothing more.
REVOKE ALL ON camera_events, camjoin_offsets, camjoin_dead_letters FROM camjoin;
REVOKE ALL ON SEQUENCE camjoin_dead_letters_id_seq FROM camjoin;
REVOKE CREATE ON SCHEMA public FROM camjoin;
GRANT CONNECT, TEMPORARY ON DATABASE :"camjoin_db" TO camjoin;  -- TEMP: the COPY staging tables
GRANT USAGE ON SCHEMA public TO camjoin;
GRANT SELECT, INSERT ON camera_events TO camjoin;          -- rows; SELECT for the dedup warm-up
GRANT SELECT, INSERT ON camjoin_dead_letters TO camjoin;
GRANT USAGE ON SEQUENCE camjoin_dead_letters_id_seq TO camjoin;  -- nextval() for the id
GRANT SELECT, INSERT, UPDATE ON camjoin_offsets TO camjoin;   -- the fenced offset UPDATE
