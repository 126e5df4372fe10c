-- bench/dashboard_fill.sql: the dashboard phase's rows (bench/run.sh), written
-- by PostgreSQL itself. psql variables: rows (how many), end (the instant
-- the 24 h end at, ISO 8601); config/cameras.csv on its standard input. Every
-- camera of the CSV in every minute, with its site, name and zone, one event
-- type per camera; one row in 100 a join miss on one of 7 unknown cameras;
-- ingested_at 10 ms after event_ts, as a live camjoin writes them. Then the
-- rollup, built by camjoin_rollup_rebuild().
SELECT count(camjoin_ensure_partition('camera_events', d::date))
  FROM generate_series(((:'end'::timestamptz - interval '25 hours') AT TIME ZONE 'UTC')::date,
                       (:'end'::timestamptz AT TIME ZONE 'UTC')::date, interval '1 day') d;
CREATE TEMP TABLE dash_cameras (camera_id text, site_id text, site_name text, zone text,
                                latitude double precision, longitude double precision);
\copy dash_cameras FROM pstdin WITH (FORMAT csv, HEADER)
SELECT count(*) AS ncams FROM dash_cameras \gset
WITH c AS (SELECT row_number() OVER (ORDER BY camera_id) - 1 AS i, * FROM dash_cameras),
     g AS (SELECT g, :'end'::timestamptz - g * (86400.0 / :rows) * interval '1 second' AS ts,
                  g % 100 = 0 AS miss
             FROM generate_series(1, :rows) g)
INSERT INTO camera_events (event_id, event_ts, camera_id, event_type, confidence, object_count,
                           site_id, site_name, zone, latitude, longitude, kafka_partition,
                           kafka_offset, ingested_at)
SELECT 'dash-' || g, ts, CASE WHEN miss THEN 'unknown-cam-' || g / 100 % 7 ELSE c.camera_id END,
       (ARRAY['person', 'vehicle', 'bicycle', 'animal', 'package', 'motion'])[1 + c.i % 6],
       (g % 100) / 100.0, g % 5,
       CASE WHEN NOT miss THEN c.site_id END, CASE WHEN NOT miss THEN c.site_name END,
       CASE WHEN NOT miss THEN c.zone END, CASE WHEN NOT miss THEN c.latitude END,
       CASE WHEN NOT miss THEN c.longitude END, g % 64, g, ts + interval '10 ms'
  FROM g JOIN c ON c.i = g.g % :ncams;
SELECT camjoin_rollup_rebuild('camera_events', '-infinity', 'infinity');
VACUUM ANALYZE;
