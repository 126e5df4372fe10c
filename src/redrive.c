/* redrive — see include/camjoin/redrive.h.
 *
 * One transaction per chunk of up to CHUNK dead letters (and CHUNK_BYTES of
 * payloads), in (partition, offset) order, each chunk after the last one's position (keyset paging:
 * dead letters that stay dead are not selected again by this run, and are
 * by the next):
 *
 *   BEGIN; the re-drive lock; the rows' staging table (ON COMMIT DROP)
 *   SELECT the chunk: the topic's dead letters not in camjoin_redriven
 *   route_message() each payload (no dedup window: the primary key decides)
 *   COPY the rows into the stage, then the staged INSERT ... ON CONFLICT DO
 *     NOTHING with its rollup (sink_sql_add_insert_staged, the sink's own)
 *   INSERT INTO camjoin_redriven the positions of those that became a row or were
 *     dropped by join.on_miss=drop; it must insert exactly that many
 *   COMMIT
 *
 * The lock is taken before the SELECT, whose snapshot (READ COMMITTED)
 * therefore sees every mark a concurrent re-drive committed; the primary
 * key of camjoin_redriven would refuse a second mark anyway. The stage is
 * created in each transaction so that the same code runs behind a
 * transaction-pooling PgBouncer.
 */
#include "camjoin/redrive.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/batch.h"
#include "camjoin/pg_conn.h"
#include "camjoin/replay.h"
#include "camjoin/route.h"
#include "camjoin/sink_pg.h"
#include "camjoin/strbuf.h"
#include "sink_sql.h"

#define CHUNK 5000                 /* dead letters per transaction, at most */
#define CHUNK_BYTES (64 << 20)     /* and their payloads, past the first one */
#define REDRIVE_LOCK "7262330618" /* beside the schema's 7262330617 */
#define MAX_REASONS 32            /* distinct reasons reported; more are "other" */

struct tally {
    char reason[EVENT_REASON_MAX];
    uint64_t n;
};

struct redrive {
    PGconn *pg;
    const char *table_id, *topic_lit; /* escaped; the connection's */
    const camjoin_config *cfg;
    const refdata_t *ref;
    route_rules rules;
    batch_t *batch;
    strbuf_t sql;
    char *reason_lit;       /* escaped --reason, or NULL */
    int64_t since_ms;
    int64_t now_ms;         /* the timestamp policy's clock, read once a chunk */
    int32_t last_p;         /* the last chunk's last position */
    int64_t last_o;
    int32_t *mark_p;        /* this chunk's positions to mark, and their outcome */
    int64_t *mark_o;
    const char **outcome;
    size_t nids;
    uint64_t selected, rows, dropped, still, inserted;
    struct tally was[MAX_REASONS + 1], now[MAX_REASONS + 1]; /* the stored reason; the
                                                  current one of those still dead */
    size_t nwas, nnow;
    char *err;
    size_t errlen;
};

int redrive_parse_since(const char *spec, int64_t *ms, char *err, size_t errlen)
{
    replay_spec_t r;
    *ms = -1;
    if (!spec)
        return 0;
    if (spec[0] != '@' || replay_parse(spec, &r, err, errlen) != 0 || r.kind != REPLAY_TIME) {
        snprintf(err, errlen, "--since: expected @TIME (@RFC3339, @EPOCH_MS or @-DURATION "
                 "such as @-1h), got \"%.80s\"", spec);
        return -1;
    }
    *ms = r.time_ms;
    replay_spec_clear(&r);
    return 0;
}

static void count(struct tally *t, size_t *n, const char *reason)
{
    size_t i = 0;
    while (i < *n && strcmp(t[i].reason, reason) != 0)
        i++;
    if (i == *n) {
        if (*n == MAX_REASONS) /* the last slot collects the rest */
            reason = "other";
        else
            (*n)++;
        snprintf(t[i].reason, sizeof t[i].reason, "%s", reason);
    }
    t[i].n++;
}

/* Runs x->sql (reset afterwards); NULL with x->err set unless the status
 * is `want`. The caller clears the result. */
static PGresult *exec_want(struct redrive *x, ExecStatusType want, const char *what)
{
    char m[512];
    if (x->sql.oom) {
        snprintf(x->err, x->errlen, "%s: out of memory", what);
        strbuf_reset(&x->sql);
        return NULL;
    }
    PGresult *r = PQexec(x->pg, x->sql.data);
    strbuf_reset(&x->sql);
    if (PQresultStatus(r) == want)
        return r;
    pg_conn_first_line(m, sizeof m, r ? PQresultErrorMessage(r) : PQerrorMessage(x->pg));
    snprintf(x->err, x->errlen, "%s: %s", what, m);
    PQclear(r);
    return NULL;
}

static int exec_ok(struct redrive *x, const char *what)
{
    PGresult *r = exec_want(x, PGRES_COMMAND_OK, what);
    PQclear(r);
    return r ? 0 : -1;
}

/* What one dead letter becomes; the positions to mark are collected in x. */
static void route_one(struct redrive *x, int32_t p, int64_t o,
                      const unsigned char *payload, size_t len, const char *reason)
{
    route_result r;
    const char *outcome = NULL;
    count(x->was, &x->nwas, reason);
    x->selected++;
    if (payload) {
        route_message(&x->rules, NULL, x->ref, payload, len, p, o, x->now_ms, 0, &r);
        if (r.kind == ROUTE_ROW && batch_add_event(x->batch, &r.ev, r.row, p, o) != 0) {
            r.kind = ROUTE_DEAD; /* as the pipeline says of a row it cannot encode */
            snprintf(r.reason, sizeof r.reason, "unencodable");
        }
        outcome = r.kind == ROUTE_ROW ? "row" : r.kind == ROUTE_DROPPED ? "dropped" : NULL;
        if (!outcome)
            reason = r.reason;
        route_clear(&r);
    }
    if (!outcome) { /* still dead (a NULL payload always is) */
        x->still++;
        count(x->now, &x->nnow, reason);
        return;
    }
    x->rows += outcome[0] == 'r';
    x->dropped += outcome[0] == 'd';
    x->mark_p[x->nids] = p;
    x->mark_o[x->nids] = o;
    x->outcome[x->nids++] = outcome;
}

/* The chunk's rows into the stage, then into the table. */
static int write_rows(struct redrive *x)
{
    size_t len;
    const char *data = batch_event_data(x->batch, &len);
    char m[512];
    strbuf_addf(&x->sql, "COPY camjoin_stage_events (" BATCH_EVENT_COLUMNS
                         ") FROM STDIN (FORMAT binary)");
    PGresult *r = exec_want(x, PGRES_COPY_IN, "staging the rows");
    PQclear(r);
    if (!r)
        return -1;
    if (PQputCopyData(x->pg, data, (int)len) != 1 || PQputCopyEnd(x->pg, NULL) != 1) {
        pg_conn_first_line(m, sizeof m, PQerrorMessage(x->pg));
        snprintf(x->err, x->errlen, "staging the rows: %s", m);
        return -1;
    }
    int ok = 1;
    while ((r = PQgetResult(x->pg)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && ok) {
            pg_conn_first_line(m, sizeof m, PQresultErrorMessage(r));
            snprintf(x->err, x->errlen, "staging the rows: %s", m);
            ok = 0;
        }
        PQclear(r);
    }
    if (!ok)
        return -1;
    sink_sql_add_insert_staged(&x->sql, x->table_id);
    if (!(r = exec_want(x, PGRES_TUPLES_OK, "inserting the rows")))
        return -1;
    x->inserted += strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

/* Marks the chunk's re-driven dead letters: exactly x->nids new marks. */
static int mark(struct redrive *x)
{
    strbuf_addf(&x->sql, "INSERT INTO camjoin_redriven (topic, kafka_partition, kafka_offset,"
                         " outcome) VALUES ");
    for (size_t i = 0; i < x->nids; i++)
        strbuf_addf(&x->sql, "%s(%s, %d, %lld, '%s')", i ? "," : "", x->topic_lit,
                    (int)x->mark_p[i], (long long)x->mark_o[i], x->outcome[i]);
    PGresult *r = exec_want(x, PGRES_COMMAND_OK, "marking the re-driven dead letters");
    if (!r)
        return -1;
    int ok = strtoull(PQcmdTuples(r), NULL, 10) == x->nids;
    PQclear(r);
    if (!ok)
        snprintf(x->err, x->errlen, "marking the re-driven dead letters: fewer marks than "
                 "dead letters");
    return ok ? 0 : -1;
}

/* One chunk in one transaction. 1: done (nothing was left), 0: a chunk was
 * committed, -1: failed (rolled back). */
static int chunk(struct redrive *x)
{
    strbuf_addf(&x->sql, "BEGIN");
    if (exec_ok(x, "BEGIN") != 0)
        return -1;
    strbuf_addf(&x->sql, "SELECT pg_advisory_xact_lock(" REDRIVE_LOCK ")");
    PGresult *r = exec_want(x, PGRES_TUPLES_OK, "waiting for another re-drive");
    PQclear(r);
    if (!r)
        goto fail;
    strbuf_addf(&x->sql, "%s", sink_sql_stage_events_txn);
    if (exec_ok(x, "creating the staging table") != 0)
        goto fail;
    /* the next CHUNK dead letters (the LIMIT innermost: the running sum then
     * reads those only), cut where their payloads pass CHUNK_BYTES (the first
     * one always comes) */
    strbuf_addf(&x->sql, "SELECT kafka_partition, kafka_offset, payload, reason FROM"
                         " (SELECT c.*, sum(coalesce(octet_length(c.payload), 0)) OVER"
                         " (ORDER BY c.kafka_partition, c.kafka_offset) AS upto FROM"
                         " (SELECT d.kafka_partition, d.kafka_offset, d.payload, d.reason"
                         " FROM camjoin_dead_letters d WHERE d.topic = %s AND NOT EXISTS"
                         " (SELECT FROM camjoin_redriven r WHERE r.topic = d.topic AND"
                         " r.kafka_partition = d.kafka_partition AND r.kafka_offset = d.kafka_offset)"
                         " AND (d.kafka_partition, d.kafka_offset) > (%d, %lld)",
                x->topic_lit, (int)x->last_p, (long long)x->last_o);
    if (x->reason_lit)
        strbuf_addf(&x->sql, " AND d.reason = %s", x->reason_lit);
    if (x->since_ms >= 0)
        strbuf_addf(&x->sql, " AND d.created_at >= to_timestamp(%lld / 1000.0)",
                    (long long)x->since_ms);
    strbuf_addf(&x->sql, " ORDER BY d.kafka_partition, d.kafka_offset LIMIT %d) c) w"
                         " WHERE upto - coalesce(octet_length(payload), 0) < %d"
                         " ORDER BY kafka_partition, kafka_offset", CHUNK, CHUNK_BYTES);
    if (!(r = exec_want(x, PGRES_TUPLES_OK, "reading the dead letters")))
        goto fail;
    int n = PQntuples(r);
    x->nids = 0;
    x->now_ms = clock_wall_ms();
    batch_reset(x->batch);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        unsigned char *payload =
            PQgetisnull(r, i, 2) ? NULL
                                 : PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2), &len);
        x->last_p = (int32_t)atoi(PQgetvalue(r, i, 0));
        x->last_o = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        route_one(x, x->last_p, x->last_o, payload, len, PQgetvalue(r, i, 3));
        PQfreemem(payload);
    }
    PQclear(r);
    if (n == 0) { /* nothing left: end the empty transaction */
        strbuf_addf(&x->sql, "ROLLBACK");
        return exec_ok(x, "ROLLBACK") == 0 ? 1 : -1;
    }
    if ((batch_rows(x->batch) && write_rows(x) != 0) || (x->nids && mark(x) != 0))
        goto fail;
    strbuf_addf(&x->sql, "COMMIT");
    return exec_ok(x, "COMMIT");
fail:
    strbuf_addf(&x->sql, "ROLLBACK");
    char keep[512];
    snprintf(keep, sizeof keep, "%s", x->err); /* the first failure is the one to tell */
    (void)exec_ok(x, "ROLLBACK");
    snprintf(x->err, x->errlen, "%s", keep);
    return -1;
}

static void report(const struct redrive *x, FILE *out)
{
    fprintf(out, "redrive topic=%s reason=%s since=%s\n", x->cfg->topic,
            x->cfg->redrive_reason ? x->cfg->redrive_reason : "-",
            x->cfg->redrive_since ? x->cfg->redrive_since : "-");
    for (size_t i = 0; i < x->nwas; i++)
        fprintf(out, "dead_letters reason=%s selected=%llu\n", x->was[i].reason,
                (unsigned long long)x->was[i].n);
    for (size_t i = 0; i < x->nnow; i++)
        fprintf(out, "still_dead reason=%s count=%llu\n", x->now[i].reason,
                (unsigned long long)x->now[i].n);
    fprintf(out, "total selected=%llu rows=%llu inserted=%llu already_present=%llu "
                 "dropped=%llu still_dead=%llu\n",
            (unsigned long long)x->selected, (unsigned long long)x->rows,
            (unsigned long long)x->inserted, (unsigned long long)(x->rows - x->inserted),
            (unsigned long long)x->dropped, (unsigned long long)x->still);
}

int redrive_run(const camjoin_config *cfg, const refdata_t *ref, int64_t since_ms, FILE *out,
                char *err, size_t errlen)
{
    sink_pg_conn_t *c = NULL;
    if (sink_pg_connect(cfg, &c, err, errlen) != SINK_OPEN_OK)
        return -1;
    struct redrive x = {
        .pg = sink_pg_conn_pq(c), .table_id = sink_pg_conn_table_id(c),
        .topic_lit = sink_pg_conn_topic_lit(c), .cfg = cfg, .ref = ref,
        .rules = {.max_message_bytes = (size_t)cfg->max_message_bytes,
                  .max_future_ms = cfg->max_future_ms, .max_age_ms = cfg->max_age_ms,
                  .on_miss = cfg->on_miss},
        .batch = batch_new(cfg->topic), .since_ms = since_ms, .last_p = -1, .last_o = -1,
        .mark_p = malloc(CHUNK * sizeof(int32_t)), .mark_o = malloc(CHUNK * sizeof(int64_t)),
        .outcome = malloc(CHUNK * sizeof(char *)),
        .err = err, .errlen = errlen};
    int rc = -1;
    if (cfg->redrive_reason)
        x.reason_lit = pg_conn_escape(x.pg, cfg->redrive_reason, 0);
    if (!x.batch || !x.mark_p || !x.mark_o || !x.outcome || (cfg->redrive_reason && !x.reason_lit)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    while ((rc = chunk(&x)) == 0)
        ;
    if (rc == 1) {
        rc = 0;
        report(&x, out);
    }
out:
    batch_free(x.batch);
    free(x.mark_p);
    free(x.mark_o);
    free(x.outcome);
    free(x.reason_lit);
    strbuf_free(&x.sql);
    sink_pg_conn_free(c);
    return rc;
}
