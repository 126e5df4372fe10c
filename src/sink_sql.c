/* sink_sql — see src/sink_sql.h. */
#include "sink_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/sink_pg.h"

const char sink_sql_setup[] =
    /* a camjoin frozen mid-transaction (SIGSTOP, a VM pause) must not hold
     * its camjoin_offsets row locks, and so stall the partitions' new owner,
     * for longer than the consumer group takes to replace it */
    "SET idle_in_transaction_session_timeout = '10s';"
    "CREATE TEMP TABLE IF NOT EXISTS camjoin_stage_events ("
    " event_id text, event_ts timestamptz, camera_id text, event_type text,"
    " confidence real, object_count integer, attributes jsonb, site_id text,"
    " site_name text, zone text, latitude double precision,"
    " longitude double precision, kafka_partition integer,"
    " kafka_offset bigint) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS camjoin_stage_dead ("
    " topic text, kafka_partition integer, kafka_offset bigint, payload bytea,"
    " reason text) ON COMMIT DELETE ROWS";

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
        "  PRIMARY KEY (event_id, event_ts));\n"
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
        "-- finds the events of the dedup window, to warm it after a rebalance\n"
        "CREATE INDEX IF NOT EXISTS %s ON %s (ingested_at);\n",
        table, index, table);
    return strbuf_take(&q);
}

void sink_sql_schema_present(strbuf_t *q, const char *table,
                             const char *index)
{
    strbuf_reset(q);
    strbuf_addf(q, "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT "
                   "NULL AND to_regclass('camjoin_offsets') IS NOT NULL AND "
                   "to_regclass('camjoin_dead_letters') IS NOT NULL AND "
                   "to_regclass('camjoin_dead_letters_position') IS NOT NULL",
                table, index);
}

void sink_sql_offsets(strbuf_t *q, const char *group, const char *topic)
{
    strbuf_reset(q);
    strbuf_addf(q, "SELECT kafka_partition, next_offset FROM camjoin_offsets "
                   "WHERE consumer_group = %s AND topic = %s", group, topic);
}

/* The fence, for partitions that have a stored offset: an UPDATE that must
 * touch exactly one row per partition (next_offset = expected). */
static void add_update(strbuf_t *q, const batch_offset_t *off, size_t n,
                       const char *group, const char *topic)
{
    const char *sep = "";
    strbuf_addf(q, "UPDATE camjoin_offsets o SET next_offset = v.n, "
                   "updated_at = now() FROM (VALUES ");
    for (size_t i = 0; i < n; i++) {
        if (off[i].expected == BATCH_OFFSET_NONE)
            continue;
        strbuf_addf(q, "%s(%d, %lld::bigint, %lld::bigint)", sep,
                    (int)off[i].partition, (long long)off[i].expected,
                    (long long)off[i].next);
        sep = ",";
    }
    strbuf_addf(q, ") v(p, e, n) WHERE o.consumer_group = %s AND o.topic = %s "
                   "AND o.kafka_partition = v.p AND o.next_offset = v.e;",
                group, topic);
}

/* The fence for partitions without a row: the INSERT must add every row
 * (a conflict means another consumer got there first). */
static void add_insert(strbuf_t *q, const batch_offset_t *off, size_t n,
                       const char *group, const char *topic)
{
    const char *sep = "";
    strbuf_addf(q, "INSERT INTO camjoin_offsets (consumer_group, topic, "
                   "kafka_partition, next_offset) VALUES ");
    for (size_t i = 0; i < n; i++) {
        if (off[i].expected != BATCH_OFFSET_NONE)
            continue;
        strbuf_addf(q, "%s(%s, %s, %d, %lld)", sep, group, topic,
                    (int)off[i].partition, (long long)off[i].next);
        sep = ",";
    }
    strbuf_addf(q, " ON CONFLICT DO NOTHING;");
}

void sink_sql_write(strbuf_t *q, batch_t *b, const char *table,
                    const char *group, const char *topic, int staged,
                    sink_write_plan *plan)
{
    size_t nrows = batch_rows(b), ndead = batch_dead(b), noff;
    const batch_offset_t *off = batch_offsets(b, &noff);
    int res = 1; /* result index; BEGIN is result 0 */
    memset(plan, 0, sizeof *plan);
    plan->idx_insert = plan->idx_dead = plan->idx_upd = plan->idx_ins = -1;
    plan->staged = staged;
    strbuf_reset(q);
    strbuf_addf(q, "BEGIN;");
    if (!staged) {
        if (nrows) {
            plan->copy[plan->ncopy] = batch_event_data(b, &plan->copy_len[plan->ncopy]);
            plan->ncopy++;
            strbuf_addf(q, "COPY %s (" BATCH_EVENT_COLUMNS ") FROM STDIN (FORMAT binary);", table);
            plan->idx_insert = res++;
        }
        if (ndead) {
            plan->copy[plan->ncopy] = batch_dead_data(b, &plan->copy_len[plan->ncopy]);
            plan->ncopy++;
            strbuf_addf(q, "COPY camjoin_dead_letters (" BATCH_DEAD_COLUMNS
                           ") FROM STDIN (FORMAT binary);");
            plan->idx_dead = res++;
        }
        goto offsets;
    }
    if (nrows) {
        plan->copy[plan->ncopy] = batch_event_data(b, &plan->copy_len[plan->ncopy]);
        plan->ncopy++;
        strbuf_addf(q, "COPY camjoin_stage_events (" BATCH_EVENT_COLUMNS
                       ") FROM STDIN (FORMAT binary);");
        res++;
    }
    if (ndead) {
        plan->copy[plan->ncopy] = batch_dead_data(b, &plan->copy_len[plan->ncopy]);
        plan->ncopy++;
        strbuf_addf(q, "COPY camjoin_stage_dead (" BATCH_DEAD_COLUMNS
                       ") FROM STDIN (FORMAT binary);");
        res++;
    }
    if (nrows) {
        strbuf_addf(q, "INSERT INTO %s (" BATCH_EVENT_COLUMNS ", ingested_at) "
                       "SELECT " BATCH_EVENT_COLUMNS ", clock_timestamp() "
                       "FROM camjoin_stage_events ON CONFLICT DO NOTHING;", table);
        plan->idx_insert = res++;
    }
    if (ndead) {
        strbuf_addf(q, "INSERT INTO camjoin_dead_letters (" BATCH_DEAD_COLUMNS
                       ") SELECT " BATCH_DEAD_COLUMNS " FROM camjoin_stage_dead "
                       "ON CONFLICT DO NOTHING;");
        plan->idx_dead = res++;
    }
offsets:
    for (size_t i = 0; i < noff; i++)
        plan->n_upd += off[i].expected != BATCH_OFFSET_NONE;
    plan->n_ins = (int)noff - plan->n_upd;
    if (plan->n_upd) {
        add_update(q, off, noff, group, topic);
        plan->idx_upd = res++;
    }
    if (plan->n_ins) {
        add_insert(q, off, noff, group, topic);
        plan->idx_ins = res++;
    }
}

void sink_sql_warm(strbuf_t *q, const char *table, const int32_t *partitions,
                   size_t n, int64_t window_ms)
{
    strbuf_reset(q);
    strbuf_addf(q, "COPY (SELECT encode(convert_to(event_id, 'UTF8'), 'hex'), "
                   "kafka_partition, kafka_offset FROM %s WHERE ingested_at > "
                   "now() - interval '%lld milliseconds' AND kafka_partition IN (",
                table, (long long)window_ms);
    for (size_t i = 0; i < n; i++)
        strbuf_addf(q, "%s%d", i ? "," : "", (int)partitions[i]);
    strbuf_addf(q, "%s)) TO STDOUT", n ? "" : "NULL");
}
