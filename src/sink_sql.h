/*
 * sink_sql — the SQL text sink_pg sends. Private to the sink.
 *
 * Kept apart from the connection state machine so each reads on its own:
 * this file knows what a batch's transaction says; sink_pg.c knows how to
 * get it to the server without blocking. Every identifier and literal that
 * comes from configuration arrives here already escaped by libpq
 * (PQescapeIdentifier / PQescapeLiteral); numbers are formatted here; all
 * row data travels as COPY data, never as SQL text.
 *
 * sink_schema.c holds the schema (sink_pg_schema_sql(), declared in
 * sink_pg.h because config/schema.sql and its test use it): the events
 * table, partitioned by day on event_ts, its default partition, the
 * partition functions the upkeep calls, the per-minute rollup table (which
 * camjoin's own writes keep, in each batch's transaction; triggers follow
 * changes made by hand) and the dashboard views. The names derived from the events table
 * (<table>_minute, the views) are made from its quoted identifier by
 * appending a suffix inside the quotes; the SQL functions take the table as
 * a regclass and never hold its name.
 */
#ifndef CAMJOIN_SINK_SQL_H
#define CAMJOIN_SINK_SQL_H

#include "camjoin/base.h"
#include "camjoin/batch.h"
#include <stdint.h>

#include "camjoin/strbuf.h"

/* `id` (a quoted identifier, "...") with `suffix` (no quote in it) appended
 * inside the quotes: "camera_events" + _minute = "camera_events_minute".
 * Sets q->oom for an id that is not quoted. _lit: the same name as a string
 * literal (what to_regclass() takes), quoted as PQescapeLiteral does. */
void sink_sql_add_ident(strbuf_t *q, const char *id, const char *suffix);
void sink_sql_add_ident_lit(strbuf_t *q, const char *id, const char *suffix);

/* The rollup groups of a set of event rows (GROUP BY 1, 2, 4, 5, 6), in
 * ROLLUP_COLUMNS order; and the upsert that adds groups to a rollup table
 * aliased r. */
#define SQL_ROLLUP_AGGREGATE                                                    \
    "date_trunc('minute', event_ts, 'UTC'), site_id, max(site_name), zone,\n"  \
    "        camera_id, event_type, count(*), coalesce(sum(object_count), 0),\n" \
    "        max(confidence)"
#define SQL_ROLLUP_UPSERT                                                       \
    "\n  ON CONFLICT (minute, site_id, zone, camera_id, event_type) DO UPDATE\n"  \
    "    SET events = r.events + excluded.events,\n"                           \
    "        object_count_sum = r.object_count_sum + excluded.object_count_sum,\n" \
    "        confidence_max = greatest(r.confidence_max, excluded.confidence_max),\n" \
    "        site_name = excluded.site_name"

/* Per-connection setup: the temporary staging tables (emptied by COMMIT):
 * events and dead letters for the staged path, rollup groups for the direct
 * path, and the idle-in-transaction timeout. _txn_pool: the setup behind a
 * transaction-pooling PgBouncer (postgres.pool_mode=transaction), where the
 * next transaction may run on another server connection: nothing. */
extern const char sink_sql_setup[];
extern const char sink_sql_setup_txn_pool[];
/* CREATE TEMP TABLE IF NOT EXISTS camjoin_stage_events (...) ON COMMIT DROP:
 * the rows' staging table for one transaction. */
extern const char sink_sql_stage_events_txn[];

/* Appends the staged INSERT: camjoin_stage_events into `table` (escaped)
 * ON CONFLICT DO NOTHING, and the rollup upsert of the rows really inserted,
 * in one statement whose one row is their count; ";" ends it. */
void sink_sql_add_insert_staged(strbuf_t *q, const char *table);

/* What the write statement will produce, so results can be checked. */
typedef struct sink_write_plan {
    const char *copy[3];     /* COPY payloads, in the order the statement needs */
    size_t copy_len[3], ncopy;
    int staged;              /* through the staging tables (ON CONFLICT) */
    int idx_insert;          /* result index of the events INSERT or COPY, or -1 */
    int insert_counted;      /* that result is one row holding the count (staged) */
    int idx_dead;            /* result index of the dead letters INSERT or COPY, or -1 */
    int idx_upd, n_upd;      /* fenced UPDATE: result index, rows it must touch */
    int idx_ins, n_ins;      /* first-offset INSERT: result index, rows */
} sink_write_plan;

/* The whole write of a batch as one simple-query string: BEGIN, the rows and
 * dead letters, and the fenced offset advance. COMMIT is sent separately,
 * once the fences are seen to hold. expected[i] is the fence of
 * batch_offsets(b)[i]: the offset camjoin_offsets holds now, or
 * BATCH_OFFSET_NONE for no row. `table`, `group` and `topic` are escaped.
 *
 * Direct (`staged` 0): COPY straight into the target tables — the fast path,
 * about half the server's work, but a row that already exists (a replay, a
 * duplicate older than the dedup window) fails the whole statement with a
 * unique violation; the batch's rollup groups go through a small staging
 * COPY and one upsert. Staged (`staged` 1): COPY into the session's
 * temporary staging tables, then INSERT … SELECT … ON CONFLICT DO NOTHING,
 * whose RETURNING feeds the rollup upsert in the same statement.
 * `txn_pool`: the transaction first sets the timeout with SET LOCAL and
 * creates the staging tables it uses ON COMMIT DROP, as nothing of the
 * session is there (sink_sql_setup_txn_pool). On ENOMEM q->oom is set. */
void sink_sql_write(strbuf_t *q, batch_t *b, const int64_t *expected,
                    const char *table, const char *group, const char *topic, int staged,
                    int txn_pool, sink_write_plan *plan);

/* One row, one boolean: does every object of the schema exist (tables,
 * index, rollup table, views, functions, triggers, and the default partition
 * of a partitioned events table)? `table` and `index` are quoted
 * identifiers, as sink_pg_schema_sql() takes them. */
void sink_sql_schema_present(strbuf_t *q, const char *table, const char *index);

/* The longest events table name whose derived names (<table>_minute, …,
 * <table>_join_misses_minute) fit PostgreSQL's 63 bytes. */
#define SINK_SQL_TABLE_MAX (63 - (int)sizeof "_join_misses_minute" + 1)

/* SELECT kafka_partition, next_offset for one group and topic. */
void sink_sql_offsets(strbuf_t *q, const char *group, const char *topic);

/* COPY … TO STDOUT of hex(event_id), partition, offset for the events of
 * these partitions ingested within the last window_ms (the dedup warm-up). */
void sink_sql_warm(strbuf_t *q, const char *table, const int32_t *partitions,
                   size_t n, int64_t window_ms);
/* Parses one line of that COPY's output, `hex(event_id) TAB partition TAB
 * offset`, NUL-terminated as libpq's PQgetCopyData() gives it, into id (at
 * most `size` bytes, *id_len of them), partition and offset. Returns 0, or
 * -1 for a line that is not one (it is skipped). */
CJ_MUSTCHECK int sink_sql_warm_line(const char *line, size_t len, char *id, size_t size,
                       size_t *id_len, int32_t *partition, int64_t *offset);

#endif
