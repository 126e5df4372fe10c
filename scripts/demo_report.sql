-- The demo's report, read back from PostgreSQL after the run.
-- psql variables: topic, grp (consumer group). Usage:
--   psql -X -v topic=camera-events -v grp=camjoin -f scripts/demo_report.sql
\set ON_ERROR_STOP 1
\pset footer off
\pset null '-'

\echo
\echo '== Delivery: every consumed message is a row, a dropped duplicate or a dead letter'
WITH consumed AS (SELECT coalesce(sum(next_offset), 0) AS n FROM camjoin_offsets
                  WHERE topic = :'topic' AND consumer_group = :'grp'),
     written AS (SELECT count(*) AS n FROM camera_events),
     dead AS (SELECT count(*) AS n FROM camjoin_dead_letters WHERE topic = :'topic')
SELECT consumed.n AS messages_consumed, written.n AS rows_written,
       consumed.n - written.n - dead.n AS duplicates_dropped, dead.n AS dead_letters
FROM consumed, written, dead;

\echo '== Dead letters by reason'
SELECT reason, count(*) AS messages
FROM camjoin_dead_letters WHERE topic = :'topic'
GROUP BY reason ORDER BY messages DESC, reason;

\echo '== Join with the camera reference table'
SELECT count(*) AS rows, count(site_id) AS matched, count(*) - count(site_id) AS unknown_camera,
       round(100.0 * count(site_id) / nullif(count(*), 0), 2) AS hit_rate_pct
FROM camera_events;

\echo '== Events per site, top 5'
SELECT site_name, site_id, count(*) AS events
FROM camera_events WHERE site_id IS NOT NULL
GROUP BY site_name, site_id ORDER BY events DESC, site_name LIMIT 5;

\echo '== Per-minute rollup (camera_events_minute, kept in each batch''s transaction) against the raw rows'
SELECT (SELECT sum(events) FROM camera_events_minute) AS rollup_events,
       (SELECT count(*) FROM camera_events) AS raw_rows,
       (SELECT count(*) FROM camera_events_minute) AS rollup_rows,
       (SELECT count(DISTINCT minute) FROM camera_events_minute) AS minutes;
