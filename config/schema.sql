-- camjoin schema: exactly what the daemon creates (idempotently) at startup.
-- The events table name is configurable (postgres.table); this file uses the default.
CREATE TABLE IF NOT EXISTS "camera_events" (
  event_id text NOT NULL, event_ts timestamptz NOT NULL,
  camera_id text NOT NULL, event_type text NOT NULL,
  confidence real, object_count integer, attributes jsonb,
  site_id text, site_name text, zone text, latitude double precision, longitude double precision,
  kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL,
  ingested_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_id, event_ts));
CREATE TABLE IF NOT EXISTS camjoin_offsets (consumer_group text, topic text, kafka_partition integer,
  next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, kafka_partition));
CREATE TABLE IF NOT EXISTS camjoin_dead_letters (id bigserial PRIMARY KEY, topic text NOT NULL,
  kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL, payload bytea,
  reason text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
-- the natural key of a dead letter: a replay does not repeat it
CREATE UNIQUE INDEX IF NOT EXISTS camjoin_dead_letters_position
  ON camjoin_dead_letters (topic, kafka_partition, kafka_offset);
-- finds the events of the dedup window, to warm it after a rebalance
CREATE INDEX IF NOT EXISTS "camera_events_ingested_at_idx" ON "camera_events" (ingested_at);
