-- bench/peers/flink/job.sql - the Flink peer's job: camjoin's dedup and join
-- in Flink SQL. Run by FlinkPeer (run.sh sets every ${VAR}):
--   Kafka (JSON; bounded at the latest offsets for the backlog, unbounded
--   live: PEER_BOUNDED_MODE) -> validation -> JDBC
--   lookup join on camera_id (table `cameras`, lookup cache) -> dedup by
--   event_id (ROW_NUMBER ... = 1, state TTL = camjoin's 10 min window) ->
--   JDBC sink into camera_events (config/schema.sql's table).
-- Statements end with ';' at the end of a line; '--' lines are comments.

SET 'execution.runtime-mode' = 'streaming';
SET 'parallelism.default' = '${PEER_PARALLELISM}';
SET 'pipeline.name' = 'camjoin-flink-peer';
-- dedup state lives as long as camjoin's dedup window (dedup.window 10m)
SET 'table.exec.state.ttl' = '${PEER_STATE_TTL}';
-- TIMESTAMP values are UTC wall clock (the JVM runs with -Duser.timezone=UTC)
SET 'table.local-time-zone' = 'UTC';

-- The topic as camjoin-gen writes it. event_ts, confidence and object_count
-- are read as STRING (a JSON number arrives as its digits) and checked in
-- SQL below: with 'json.ignore-parse-errors' a field of the wrong type
-- ("confidence":"high" into a DOUBLE) would be read as NULL, i.e. absent,
-- and the message kept. bbox (an array) arrives as its JSON text. A message
-- that is not JSON is skipped by the format: Flink counts nothing.
CREATE TABLE events_src (
  event_id STRING,
  camera_id STRING,
  event_ts STRING,
  event_type STRING,
  confidence STRING,
  object_count STRING,
  fw STRING,
  bbox STRING,
  kafka_partition INT METADATA FROM 'partition' VIRTUAL,
  kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  proctime AS PROCTIME()
) WITH (
  'connector' = 'kafka',
  'topic' = '${PEER_TOPIC}',
  'properties.bootstrap.servers' = '${KAFKA_BROKERS}',
  'properties.group.id' = 'camjoin-flink-peer',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = '${PEER_BOUNDED_MODE}',
  'format' = 'json',
  'json.fail-on-missing-field' = 'false',
  'json.ignore-parse-errors' = 'true'
);

-- The camera table, loaded by run.sh from config/cameras.csv into PostgreSQL.
CREATE TABLE cameras (
  camera_id STRING,
  site_id STRING,
  site_name STRING,
  zone STRING,
  latitude DOUBLE,
  longitude DOUBLE,
  PRIMARY KEY (camera_id) NOT ENFORCED
) WITH (
  'connector' = 'jdbc',
  'url' = '${PEER_JDBC_URL}',
  'table-name' = 'cameras',
  'lookup.cache' = 'PARTIAL',
  'lookup.partial-cache.max-rows' = '100000',
  'lookup.partial-cache.expire-after-write' = '10 min',
  'lookup.partial-cache.cache-missing-key' = 'true',
  'lookup.max-retries' = '3'
);

-- camjoin's table (config/schema.sql), every data column plus
-- kafka_partition / kafka_offset from the Kafka metadata; ingested_at keeps
-- its default. No primary key here: the deduplicated stream is append-only,
-- so the sink INSERTs (the table's primary key would reject a duplicate).
CREATE TABLE camera_events (
  event_id STRING,
  event_ts TIMESTAMP(3),
  camera_id STRING,
  event_type STRING,
  confidence FLOAT,
  object_count INT,
  attributes STRING,
  site_id STRING,
  site_name STRING,
  zone STRING,
  latitude DOUBLE,
  longitude DOUBLE,
  kafka_partition INT,
  kafka_offset BIGINT
) WITH (
  'connector' = 'jdbc',
  'url' = '${PEER_JDBC_URL}',
  'table-name' = '${PEER_SINK_TABLE}',
  'sink.buffer-flush.max-rows' = '${PEER_SINK_MAX_ROWS}',
  'sink.buffer-flush.interval' = '${PEER_SINK_INTERVAL}',
  'sink.max-retries' = '3',
  'sink.parallelism' = '${PEER_SINK_PARALLELISM}'
);

-- event_ts as a UTC TIMESTAMP(3): epoch milliseconds, or RFC 3339
-- (YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)); anything else is NULL.
CREATE VIEW parsed AS
SELECT *,
  CASE
    WHEN REGEXP(event_ts, '^[0-9]{1,15}$') THEN
      CAST(TO_TIMESTAMP_LTZ(CAST(event_ts AS BIGINT), 3) AS TIMESTAMP(3))
    WHEN REGEXP(event_ts, '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$') THEN
      TIMESTAMPADD(MINUTE,
        CASE WHEN UPPER(RIGHT(event_ts, 1)) = 'Z' THEN 0
             ELSE (CASE WHEN SUBSTRING(RIGHT(event_ts, 6), 1, 1) = '-' THEN 1 ELSE -1 END)
                  * (CAST(SUBSTRING(RIGHT(event_ts, 6), 2, 2) AS INT) * 60
                     + CAST(SUBSTRING(RIGHT(event_ts, 6), 5, 2) AS INT))
        END,
        TO_TIMESTAMP(SUBSTRING(event_ts, 1, 10) || ' ' || SUBSTRING(event_ts, 12, 8) || '.'
                     || RPAD(COALESCE(REGEXP_EXTRACT(event_ts, '^.{19}\.([0-9]+)', 1), ''), 3, '0'),
                     'yyyy-MM-dd HH:mm:ss.SSS'))
  END AS ts_utc
FROM events_src;

-- camjoin's validation rules (src/event.c), as far as the typed columns
-- allow: required non-empty strings, a valid event_ts, confidence in [0,1],
-- object_count a non-negative int32.
CREATE VIEW valid AS
SELECT * FROM parsed
WHERE event_id IS NOT NULL AND CHAR_LENGTH(event_id) > 0
  AND camera_id IS NOT NULL AND CHAR_LENGTH(camera_id) > 0
  AND event_type IS NOT NULL AND CHAR_LENGTH(event_type) > 0
  AND ts_utc IS NOT NULL
  AND (confidence IS NULL OR (REGEXP(confidence, '^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$')
                              AND CAST(confidence AS DOUBLE) BETWEEN 0 AND 1))
  AND (object_count IS NULL OR (REGEXP(object_count, '^[0-9]{1,10}$')
                                AND CAST(object_count AS BIGINT) <= 2147483647));

-- the join first (on the source's processing time: a lookup join must
-- follow a processing-time attribute, and after the Deduplicate the
-- planner no longer keeps the stream append-only), then the dedup: the
-- first message of each event_id, on processing time. Flink plans it as
-- Deduplicate keep-first-row, append-only output, only when rn itself is
-- not selected.
CREATE VIEW joined AS
SELECT v.*, c.site_id, c.site_name, c.zone, c.latitude, c.longitude
FROM valid AS v
LEFT JOIN cameras FOR SYSTEM_TIME AS OF v.proctime AS c
  ON v.camera_id = c.camera_id;

CREATE VIEW dedup AS
SELECT event_id, camera_id, ts_utc, event_type, confidence, object_count, fw, bbox,
       site_id, site_name, zone, latitude, longitude, kafka_partition, kafka_offset
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proctime ASC) AS rn
  FROM joined)
WHERE rn = 1;

INSERT INTO camera_events
SELECT event_id, ts_utc, camera_id, event_type,
       CAST(CAST(confidence AS DOUBLE) AS FLOAT), CAST(object_count AS INT),
       CASE WHEN fw IS NULL AND bbox IS NULL THEN CAST(NULL AS STRING)
            ELSE '{' || COALESCE('"fw":' || JSON_STRING(fw), '')
                 || CASE WHEN fw IS NOT NULL AND bbox IS NOT NULL THEN ',' ELSE '' END
                 || COALESCE('"bbox":' || bbox, '') || '}' END,
       site_id, site_name, zone, latitude, longitude, kafka_partition, kafka_offset
FROM dedup;
