/* sink_sql — see src/sink_sql.h (the schema is in sink_schema.c). */
#include "sink_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/base.h"
#include "camjoin/rollup.h"
#include "camjoin/sink_pg.h"

/* The staging tables, each as "name (columns)". */
#define STAGE_EVENTS                                                              \
    "camjoin_stage_events ("                                                      \
    " event_id text, event_ts timestamptz, camera_id text, event_type text,"      \
    " confidence real, object_count integer, attributes jsonb, site_id text,"     \
    " site_name text, zone text, latitude double precision,"                      \
    " longitude double precision, kafka_partition integer,"                       \
    " kafka_offset bigint)"
#define STAGE_DEAD                                                                \
    "camjoin_stage_dead ("                                                        \
    " topic text, kafka_partition integer, kafka_offset bigint, payload bytea,"   \
    " reason text)"
/* the batch's rollup groups, for the upsert into <table>_minute */
#define STAGE_MINUTE                                                              \
    "camjoin_stage_minute ("                                                      \
    " minute timestamptz, site_id text, site_name text, zone text,"               \
    " camera_id text, event_type text, events bigint, object_count_sum bigint,"   \
    " confidence_max real)"

/* a camjoin frozen mid-transaction (SIGSTOP, a VM pause) must not hold its
 * camjoin_offsets row locks, and so stall the partitions' new owner, for
 * longer than the consumer group takes to replace it */
#define IDLE_TIMEOUT "idle_in_transaction_session_timeout = '10s'"

const char sink_sql_setup[] =
    "SET " IDLE_TIMEOUT ";"
    "CREATE TEMP TABLE IF NOT EXISTS " STAGE_EVENTS " ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS " STAGE_DEAD " ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS " STAGE_MINUTE " ON COMMIT DELETE ROWS";

/* Transaction pooling: nothing may outlive a transaction, so the session
 * gets nothing; each write sets and creates what it uses (sink_sql_write).
 * The statement only shows that the pooler answers. */
const char sink_sql_setup_txn_pool[] = "SELECT 1";

/* the same tables for one transaction (a transaction pool, a re-drive) */
const char sink_sql_stage_events_txn[] =
    "CREATE TEMP TABLE IF NOT EXISTS " STAGE_EVENTS " ON COMMIT DROP";
static const char stage_dead_txn[] =
    "CREATE TEMP TABLE IF NOT EXISTS " STAGE_DEAD " ON COMMIT DROP";
static const char stage_minute_txn[] =
    "CREATE TEMP TABLE IF NOT EXISTS " STAGE_MINUTE " ON COMMIT DROP";

/* `id` (a quoted identifier, "...") with `suffix` (no quote in it) appended
 * inside the quotes: "camera_events" + _minute = "camera_events_minute". */
void sink_sql_add_ident(strbuf_t *q, const char *id, const char *suffix)
{
    size_t n = strlen(id);
    if (n < 2 || id[0] != '"' || id[n - 1] != '"') {
        q->oom = 1; /* not a quoted identifier: build nothing */
        return;
    }
    strbuf_addf(q, "%.*s%s\"", (int)(n - 1), id, suffix);
}

/* The same identifier as a string literal (what to_regclass() takes),
 * quoted as PQescapeLiteral does: quotes doubled, and backslashes doubled
 * in an E'' string. */
void sink_sql_add_ident_lit(strbuf_t *q, const char *id, const char *suffix)
{
    strbuf_t name = {0};
    sink_sql_add_ident(&name, id, suffix);
    if (name.oom || !name.data) {
        q->oom = 1;
        strbuf_free(&name);
        return;
    }
    strbuf_addf(q, "%s'", strchr(name.data, '\\') ? " E" : "");
    for (const char *c = name.data; *c; c++) {
        if (*c == '\'' || *c == '\\')
            strbuf_addf(q, "%c", *c);
        strbuf_addf(q, "%c", *c);
    }
    strbuf_addf(q, "'");
    strbuf_free(&name);
}

void sink_sql_offsets(strbuf_t *q, const char *group, const char *topic)
{
    strbuf_reset(q);
    strbuf_addf(q, "SELECT kafka_partition, next_offset FROM camjoin_offsets "
                   "WHERE consumer_group = %s AND topic = %s", group, topic);
}

/* The fence, for partitions that have a stored offset: an UPDATE that must
 * touch exactly one row per partition (next_offset = expected). */
static void add_update(strbuf_t *q, const batch_offset_t *off,
                       const int64_t *expected, size_t n, const char *group,
                       const char *topic)
{
    const char *sep = "";
    strbuf_addf(q, "UPDATE camjoin_offsets o SET next_offset = v.n, "
                   "updated_at = now() FROM (VALUES ");
    for (size_t i = 0; i < n; i++) {
        if (expected[i] == BATCH_OFFSET_NONE)
            continue;
        strbuf_addf(q, "%s(%d, %lld::bigint, %lld::bigint)", sep,
                    (int)off[i].partition, (long long)expected[i],
                    (long long)off[i].next);
        sep = ",";
    }
    strbuf_addf(q, ") v(p, e, n) WHERE o.consumer_group = %s AND o.topic = %s "
                   "AND o.kafka_partition = v.p AND o.next_offset = v.e;",
                group, topic);
}

/* The fence for partitions without a row: the INSERT must add every row
 * (a conflict means another consumer got there first). */
static void add_insert(strbuf_t *q, const batch_offset_t *off,
                       const int64_t *expected, size_t n, const char *group,
                       const char *topic)
{
    const char *sep = "";
    strbuf_addf(q, "INSERT INTO camjoin_offsets (consumer_group, topic, "
                   "kafka_partition, next_offset) VALUES ");
    for (size_t i = 0; i < n; i++) {
        if (expected[i] != BATCH_OFFSET_NONE)
            continue;
        strbuf_addf(q, "%s(%s, %s, %d, %lld)", sep, group, topic,
                    (int)off[i].partition, (long long)off[i].next);
        sep = ",";
    }
    strbuf_addf(q, " ON CONFLICT DO NOTHING;");
}

/* The rows' rollup groups from the batch (direct path): COPY into the
 * session's stage, then the upsert, in key order. */
static void add_rollup(strbuf_t *q, batch_t *b, const char *table, sink_write_plan *plan)
{
    const char *data = batch_rollup_data(b, &plan->copy_len[plan->ncopy]);
    if (!data) {
        q->oom = 1;
        return;
    }
    plan->copy[plan->ncopy++] = data;
    strbuf_addf(q, "COPY camjoin_stage_minute (" ROLLUP_COLUMNS ") FROM STDIN (FORMAT binary);"
                   "INSERT INTO ");
    sink_sql_add_ident(q, table, "_minute");
    strbuf_addf(q, " AS r (" ROLLUP_COLUMNS ") SELECT " ROLLUP_COLUMNS
                   " FROM camjoin_stage_minute ORDER BY minute, site_id, zone, camera_id,"
                   " event_type" SQL_ROLLUP_UPSERT ";");
}

void sink_sql_add_insert_staged(strbuf_t *q, const char *table)
{
    /* the rollup of the rows really inserted (RETURNING skips those that
     * met a conflict); the statement's one row is their count */
    strbuf_addf(q, "WITH ins AS (INSERT INTO %s (" BATCH_EVENT_COLUMNS ", ingested_at) "
                   "SELECT " BATCH_EVENT_COLUMNS ", clock_timestamp() "
                   "FROM camjoin_stage_events ON CONFLICT DO NOTHING "
                   "RETURNING event_ts, site_id, site_name, zone, camera_id, event_type, "
                   "object_count, confidence), up AS (INSERT INTO ", table);
    sink_sql_add_ident(q, table, "_minute");
    strbuf_addf(q, " AS r (" ROLLUP_COLUMNS ") SELECT " SQL_ROLLUP_AGGREGATE
                   " FROM ins GROUP BY 1, 2, 4, 5, 6 ORDER BY 1, 2, 4, 5, 6"
                   SQL_ROLLUP_UPSERT ") SELECT count(*) FROM ins;");
}

void sink_sql_write(strbuf_t *q, batch_t *b, const int64_t *expected,
                    const char *table, const char *group, const char *topic, int staged,
                    int txn_pool, sink_write_plan *plan)
{
    size_t nrows = batch_rows(b), ndead = batch_dead(b), noff;
    const batch_offset_t *off = batch_offsets(b, &noff);
    int res = 1; /* result index; BEGIN is result 0 */
    memset(plan, 0, sizeof *plan);
    plan->idx_insert = plan->idx_dead = plan->idx_upd = plan->idx_ins = -1;
    plan->staged = staged;
    strbuf_reset(q);
    strbuf_addf(q, "BEGIN;");
    if (txn_pool) { /* what sink_sql_setup gives a session, for this transaction only */
        strbuf_addf(q, "SET LOCAL " IDLE_TIMEOUT ";");
        res++;
        if (nrows) {
            strbuf_addf(q, "%s;", staged ? sink_sql_stage_events_txn : stage_minute_txn);
            res++;
        }
        if (ndead && staged) {
            strbuf_addf(q, "%s;", stage_dead_txn);
            res++;
        }
    }
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
        /* The upsert locks rollup rows that every consumer's batches touch
         * (a minute's groups). It comes after the last COPY, so from then
         * on the server never waits for this client's data: a camjoin
         * frozen after it (SIGSTOP, a paused VM) is idle in transaction,
         * which idle_in_transaction_session_timeout ends. Frozen inside a
         * COPY it would be "active", and hold the locks for good. */
        if (nrows) {
            add_rollup(q, b, table, plan);
            res += 2; /* its COPY and upsert */
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
        sink_sql_add_insert_staged(q, table);
        plan->idx_insert = res++;
        plan->insert_counted = 1;
    }
    if (ndead) {
        strbuf_addf(q, "INSERT INTO camjoin_dead_letters (" BATCH_DEAD_COLUMNS
                       ") SELECT " BATCH_DEAD_COLUMNS " FROM camjoin_stage_dead "
                       "ON CONFLICT DO NOTHING;");
        plan->idx_dead = res++;
    }
offsets:
    for (size_t i = 0; i < noff; i++)
        plan->n_upd += expected[i] != BATCH_OFFSET_NONE;
    plan->n_ins = (int)noff - plan->n_upd;
    if (plan->n_upd) {
        add_update(q, off, expected, noff, group, topic);
        plan->idx_upd = res++;
    }
    if (plan->n_ins) {
        add_insert(q, off, expected, noff, group, topic);
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

int sink_sql_warm_line(const char *line, size_t len, char *id, size_t size,
                       size_t *id_len, int32_t *partition, int64_t *offset)
{
    const char *tab = memchr(line, '\t', len);
    size_t hex = tab ? (size_t)(tab - line) : 0, n = hex / 2;
    char *end;
    if (!tab || hex % 2 || n == 0 || n > size)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char pair[3] = {line[2 * i], line[2 * i + 1], '\0'};
        id[i] = (char)strtol(pair, NULL, 16);
    }
    long part = strtol(tab + 1, &end, 10); /* the NUL stops them */
    if (*end != '\t' || part < 0 || part > INT32_MAX)
        return -1;
    long long off = strtoll(end + 1, &end, 10);
    if (off < 0 || (*end && *end != '\n'))
        return -1;
    *id_len = n;
    *partition = (int32_t)part;
    *offset = (int64_t)off;
    return 0;
}
