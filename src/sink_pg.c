/* sink_pg — see include/camjoin/sink_pg.h.
 *
 * The sink is one state machine (states and transitions: sink_txn.h). This
 * file does the libpq and libuv part: it turns what happens on the socket
 * into the events sink_txn_next() decides on, and then does what the
 * decision says: the actions on the operation at the head of the queue,
 * and the next state's entry (send its statement, arm the retry timer).
 * Every state change goes through set_state(), which asserts that the
 * transition is one sink_txn_legal() knows. The statement in flight on the
 * socket (sending, COPY data, collecting results) is sink_io's, a layer
 * below that reports back through its event table (sink_io.h) and knows
 * nothing of transactions. What belongs to whom: sink_pg_int.h.
 *
 * A callback may queue a request (and so send a statement) before it
 * returns: the state is always set before a callback runs, and nothing
 * after one assumes the state it had before.
 */
#include "camjoin/sink_pg.h"

#include <assert.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/base.h"
#include "camjoin/event.h"
#include "camjoin/pg_conn.h"
#include "sink_pg_int.h"

#define CONNECT_TIMEOUT_MS 10000

static void on_timer(uv_timer_t *t);
static void run_next(sink_pg_t *s);

/* ---- states ---- */

/* Every state change: asserts that the sink is in `from` and that from → to
 * is legal (sink_txn_legal). */
static void set_state(sink_pg_t *s, sink_state from, sink_state to)
{
    assert(s->state == from);
    assert(sink_txn_legal(from, to));
    (void)from;
    s->state = to;
}

/* sink_txn_next() for the current state and the operation at the head. */
static sink_txn_step decide(const sink_pg_t *s, sink_txn_input *in)
{
    in->head = s->head ? s->head->kind : SK_OP_NONE;
    sink_txn_step d = sink_txn_next(s->state, in);
    assert(d.next != SK_INVALID);
    return d;
}

/* libuv refuses only a closing handle or a NULL callback, and the timer
 * closes in sink_pg_free() alone. */
static void arm(sink_pg_t *s, uint64_t ms)
{
    int rc = uv_timer_start(&s->retry, on_timer, ms, 0);
    assert(rc == 0);
    (void)rc;
}

/* Enters statement state `to` from `from` and sends its sql; a WRITE takes
 * its COPY data along. A failure to send is a lost connection (handled). */
static void send_stmt(sink_pg_t *s, sink_state from, sink_state to, const char *sql)
{
    const sink_write_plan *w = &s->txn.plan;
    int copies = to == SK_WRITE;
    set_state(s, from, to);
    sink_io_send(&s->io, sql, copies ? w->copy : NULL, copies ? w->copy_len : NULL,
                 copies ? w->ncopy : 0);
}

static void news(sink_pg_t *s, enum sink_news_kind kind, const char *step,
                 const char *detail, uint64_t n)
{
    const sink_pg_news nw = {.kind = kind, .step = step, .detail = detail, .n = n};
    s->on_news(s->ud, &nw);
}

/* ---- connection lifecycle ---- */

/* Exponential backoff: pg_conn_backoff_next(), up to postgres.retry_max. */
static uint64_t backoff_next(sink_pg_t *s)
{
    s->backoff_ms = pg_conn_backoff_next(s->backoff_ms, s->cfg->pg_retry_max_ms);
    return (uint64_t)s->backoff_ms;
}

/* Enters DOWN from `from`: drops the connection, arms the reconnect. */
static void go_down(sink_pg_t *s, sink_state from, const char *why)
{
    char msg[600];
    snprintf(msg, sizeof msg, "%s", why); /* why may be in io.st */
    int was_up = sink_txn_up(from);
    set_state(s, from, SK_DOWN);
    sink_io_stop(&s->io);
    PQfinish(s->conn);
    s->conn = NULL;
    uint64_t delay = backoff_next(s);
    if (was_up || delay == PG_CONN_BACKOFF_MIN_MS)
        news(s, SINK_NEWS_DOWN, NULL, msg, 0);
    else
        news(s, SINK_NEWS_RETRY_FAILED, NULL, NULL, delay);
    arm(s, delay);
}

static void lost(sink_pg_t *s, const char *why)
{
    sink_txn_input in = {.ev = SK_EV_LOST};
    sink_txn_step d = decide(s, &in);
    if (d.act & SK_ACT_MARK_VERIFY)
        s->head->verify = 1; /* it may have committed: check before redoing */
    go_down(s, s->state, why);
}

static void lost_pq(sink_pg_t *s, const char *what)
{
    char m[512], msg[600];
    pg_conn_first_line(m, sizeof m, s->conn ? PQerrorMessage(s->conn) : NULL);
    snprintf(msg, sizeof msg, "%s: %s", what, m);
    lost(s, msg);
}

/* Enters CONNECTING. PQconnectPoll has no timeout of its own: connect and
 * session setup must finish within CONNECT_TIMEOUT_MS, or the attempt
 * counts as failed. */
static void start_connect(sink_pg_t *s)
{
    set_state(s, SK_DOWN, SK_CONNECTING);
    s->conn = pg_conn_open(s->cfg->pg_conninfo, "camjoin", PG_CONN_ASYNC);
    if (!s->conn || PQstatus(s->conn) == CONNECTION_BAD) {
        lost_pq(s, "postgres connect");
        return;
    }
    arm(s, CONNECT_TIMEOUT_MS);
    if (sink_io_connect(&s->io, s->conn) != 0)
        lost(s, "postgres: cannot watch the socket");
}

static void on_timer(uv_timer_t *t)
{
    sink_pg_t *s = t->data;
    sink_state from = s->state;
    sink_txn_input in = {.ev = SK_EV_TIMER};
    sink_txn_step d = decide(s, &in);
    if (d.next == SK_CONNECTING) {
        start_connect(s);
    } else if (d.next == SK_IDLE) { /* the backoff of a failed TXN is over */
        set_state(s, from, SK_IDLE);
        run_next(s);
    } else {
        if (d.act & SK_ACT_MARK_VERIFY)
            s->head->verify = 1;
        go_down(s, from, "postgres connect: timed out");
    }
}

/* ---- operations ---- */

static void op_pop(sink_pg_t *s)
{
    struct op *o = s->head;
    s->head = o->next;
    if (!s->head)
        s->tail = NULL;
    if (o->kind == SK_OP_TXN)
        s->ntxn--;
    free(o->partitions);
    free(o->expected);
    free(o);
}

static void op_push(sink_pg_t *s, struct op *o)
{
    if (s->tail)
        s->tail->next = o;
    else
        s->head = o;
    s->tail = o;
    if (o->kind == SK_OP_TXN)
        s->ntxn++;
    run_next(s);
}

/* Enters the head operation's first statement, from IDLE. */
static void run_next(sink_pg_t *s)
{
    struct op *o = s->head;
    if (!o || s->state != SK_IDLE)
        return;
    sink_txn_input in = {.ev = SK_EV_RUN, .verify = o->verify};
    sink_state next = decide(s, &in).next;
    s->warm_rows = 0;
    if (next == SK_OFFSETS || next == SK_VERIFY) {
        sink_sql_offsets(&s->sql, s->group_lit, s->topic_lit);
    } else if (next == SK_WARM) {
        sink_sql_warm(&s->sql, s->table_id, o->partitions, o->npartitions,
                      s->cfg->dedup_window_ms);
    } else {
        int staged = s->cfg->write_mode == WRITE_STAGED || s->staging || o->staged;
        sink_sql_write(&s->sql, o->batch, o->expected, s->table_id, s->group_lit,
                       s->topic_lit, staged, s->cfg->pool_mode == POOL_TRANSACTION,
                       &s->txn.plan);
        s->txn.start_ns = uv_hrtime();
    }
    if (s->sql.oom)
        lost(s, "out of memory");
    else
        send_stmt(s, SK_IDLE, next, s->sql.data);
}

/* Pops the TXN at the head and hands its batch back to the owner. */
static void txn_finish(sink_pg_t *s, enum sink_result r, size_t inserted)
{
    struct op *o = s->head;
    batch_t *b = o->batch;
    sink_pg_txn_cb cb = o->on_txn;
    void *ud = o->ud;
    double ms = (double)(uv_hrtime() - s->txn.start_ns) / 1e6;
    op_pop(s);
    cb(ud, b, r, inserted, ms); /* batch back to the owner */
}

/* The stored offset of partition p in an offsets result, -1 when absent. */
static int64_t stored_offset(const PGresult *rows, int32_t p)
{
    for (int i = 0; i < PQntuples(rows); i++)
        if (atoi(PQgetvalue(rows, i, 0)) == p)
            return atoll(PQgetvalue(rows, i, 1));
    return BATCH_OFFSET_NONE;
}

static sink_verdict verify_verdict(sink_pg_t *s, const PGresult *rows)
{
    size_t n, at_expected = 0, at_next = 0;
    const batch_offset_t *off = batch_offsets(s->head->batch, &n);
    for (size_t i = 0; i < n; i++) {
        int64_t v = stored_offset(rows, off[i].partition);
        at_next += v == off[i].next;
        at_expected += v == s->head->expected[i];
    }
    sink_verdict v = sink_txn_verdict(n, at_expected, at_next);
    if (v == SK_NOT_COMMITTED || v == SK_COMMITTED)
        news(s, v == SK_COMMITTED ? SINK_NEWS_COMMITTED : SINK_NEWS_NOT_COMMITTED,
             NULL, NULL, batch_messages(s->head->batch));
    return v;
}

/* OFFSETS done: from OFFSETS to IDLE, the offsets to the owner. */
static void offsets_done(sink_pg_t *s, const PGresult *rows)
{
    int n = PQntuples(rows);
    int32_t *parts = malloc(sizeof *parts * (size_t)(n ? n : 1));
    int64_t *next = malloc(sizeof *next * (size_t)(n ? n : 1));
    if (!parts || !next) {
        free(parts);
        free(next);
        lost(s, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        parts[i] = atoi(PQgetvalue(rows, i, 0));
        next[i] = atoll(PQgetvalue(rows, i, 1));
    }
    sink_pg_offsets_cb cb = s->head->on_offsets;
    void *ud = s->head->ud;
    set_state(s, SK_OFFSETS, SK_IDLE);
    op_pop(s);
    cb(ud, parts, next, (size_t)n);
    free(parts);
    free(next);
    run_next(s);
}

/* The WRITE's results: did every fence hold; what it inserted. */
static int write_results(sink_pg_t *s, const PGresult *rows)
{
    const sink_write_plan *w = &s->txn.plan;
    const int64_t *t = s->io.st.tuples;
    s->txn.inserted = w->idx_insert >= 0 ? (size_t)t[w->idx_insert] : 0;
    if (w->insert_counted) /* the staged INSERT's count: the one row there is */
        s->txn.inserted = rows && PQntuples(rows) == 1 ? (size_t)atoll(PQgetvalue(rows, 0, 0)) : 0;
    s->txn.dead = w->idx_dead >= 0 ? (size_t)t[w->idx_dead] : 0;
    return (w->idx_upd < 0 || t[w->idx_upd] == w->n_upd) &&
           (w->idx_ins < 0 || t[w->idx_ins] == w->n_ins);
}

/* A staging table missing from a session that made it means the session
 * changed under us: a transaction-pooling PgBouncer. Say so in the error. */
static void hint_pooler(sink_pg_t *s)
{
    char *m = s->io.st.errmsg;
    size_t n = strlen(m);
    if (s->cfg->pool_mode == POOL_SESSION && strcmp(s->io.st.sqlstate, "42P01") == 0 &&
        strstr(m, "camjoin_stage_"))
        snprintf(m + n, sizeof s->io.st.errmsg - n,
                 " (the session's staging table is gone: behind a transaction-pooling "
                 "PgBouncer, set postgres.pool_mode=transaction)");
}

/* The statement in flight finished (every result collected): decide. */
static void step_done(sink_pg_t *s)
{
    sink_state from = s->state;
    if (PQstatus(s->conn) == CONNECTION_BAD) {
        lost_pq(s, "postgres connection lost"); /* still in flight */
        return;
    }
    PGresult *rows = s->io.st.rows; /* taken: ours from here */
    s->io.st.rows = NULL;
    batch_t *b = s->head && s->head->kind == SK_OP_TXN ? s->head->batch : NULL;
    sink_txn_input in = {.ev = s->io.st.failed ? SK_EV_FAILED : SK_EV_DONE,
                         .err = sink_txn_classify(s->io.st.sqlstate),
                         .staged = s->txn.plan.staged};
    if (!s->io.st.failed && from == SK_WRITE)
        in.fences_held = write_results(s, rows);
    else if (!s->io.st.failed && from == SK_COMMIT)
        in.complete = s->txn.inserted == batch_rows(b) && s->txn.dead == batch_dead(b);
    else if (!s->io.st.failed && from == SK_VERIFY)
        in.verdict = verify_verdict(s, rows);
    sink_txn_step d = decide(s, &in);
    if (s->io.st.failed)
        hint_pooler(s);

    if (d.next == SK_ROLLBACK_CONFLICT && !s->staging)
        news(s, SINK_NEWS_STAGING, NULL, s->io.st.errmsg, 0);
    else if (s->io.st.failed && d.next != SK_ROLLBACK_CONFLICT && from != SK_ROLLBACK_CONFLICT &&
             from != SK_ROLLBACK_FENCED && from != SK_ROLLBACK_RETRY)
        news(s, SINK_NEWS_FAILED, sink_txn_state_name(from), s->io.st.errmsg, 0);

    if (d.next == SK_DOWN) { /* setup, verify, offsets or warm-up failed */
        PQclear(rows);
        go_down(s, from, s->io.st.errmsg);
        return;
    }
    switch (d.next) {
    case SK_COMMIT:
        send_stmt(s, from, SK_COMMIT, "COMMIT");
        break;
    case SK_ROLLBACK_CONFLICT:
    case SK_ROLLBACK_FENCED:
    case SK_ROLLBACK_RETRY:
        send_stmt(s, from, d.next, "ROLLBACK");
        break;
    case SK_BACKOFF: /* a statement failed: retry the same batch after a pause */
        set_state(s, from, SK_BACKOFF);
        arm(s, backoff_next(s));
        break;
    default: /* SK_IDLE */
        if (from == SK_OFFSETS) {
            offsets_done(s, rows);
            break;
        }
        if (d.act & SK_ACT_UP) {
            uv_timer_stop(&s->retry); /* the connect timeout */
            s->backoff_ms = 0;
        }
        if (d.act & SK_ACT_RESET_BACKOFF)
            s->backoff_ms = 0;
        if (d.act & SK_ACT_STAGING_OFF)
            s->staging = 0; /* no conflict any more: back to direct COPY */
        if (d.act & SK_ACT_CLEAR_VERIFY)
            s->head->verify = 0;
        if (d.act & SK_ACT_RESTAGE) { /* redone staged at once, by run_next */
            s->head->staged = 1;
            s->staging = 1;
            s->restaged++;
        }
        set_state(s, from, SK_IDLE);
        if (d.act & SK_ACT_UP) {
            news(s, SINK_NEWS_UP, NULL, NULL, 0);
        } else if (d.act & SK_ACT_FINISH_OK) {
            txn_finish(s, SINK_OK, from == SK_VERIFY ? batch_rows(b) : s->txn.inserted);
        } else if (d.act & SK_ACT_FINISH_FENCED) {
            txn_finish(s, SINK_FENCED, 0);
        } else if (d.act & SK_ACT_DELIVER) { /* the warm-up */
            sink_pg_warm_done_cb cb = s->head->on_warm;
            void *ud = s->head->ud;
            size_t n = s->warm_rows;
            op_pop(s);
            cb(ud, n);
        }
        run_next(s);
    }
    PQclear(rows);
}

/* ---- the socket's events (sink_io) ---- */

static void io_connected(void *ud)
{
    sink_pg_t *s = ud;
    sink_txn_input in = {.ev = SK_EV_CONNECTED};
    send_stmt(s, SK_CONNECTING, decide(s, &in).next,
              s->cfg->pool_mode == POOL_TRANSACTION ? sink_sql_setup_txn_pool : sink_sql_setup);
}

static void io_done(void *ud) { step_done(ud); }
static void io_lost(void *ud, const char *why) { lost(ud, why); }

/* One line of the warm-up's COPY TO STDOUT, to the request's row callback. */
static void io_line(void *ud, const char *line, int len)
{
    sink_pg_t *s = ud;
    char id[EVENT_ID_MAX];
    size_t n;
    int32_t partition;
    int64_t offset;
    if (s->state != SK_WARM ||
        sink_sql_warm_line(line, (size_t)len, id, sizeof id, &n, &partition, &offset) != 0)
        return;
    s->warm_rows++;
    s->head->on_row(s->head->ud, id, n, partition, offset);
}

static const sink_io_events io_events = {
    .connected = io_connected, .done = io_done, .lost = io_lost, .line = io_line,
};

/* ---- public API ---- */

sink_pg_t *sink_pg_new(uv_loop_t *loop, const camjoin_config *cfg,
                       sink_pg_news_cb on_news, void *ud)
{
    sink_pg_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->cfg = cfg;
    s->on_news = on_news;
    s->ud = ud;
    sink_io_init(&s->io, loop, &io_events, s);
    s->state = SK_DOWN;
    uv_timer_init(loop, &s->retry);
    s->retry.data = s;
    return s;
}

/* The connection made by sink_pg_connect() (sink_open.c) becomes the
 * sink's; c is freed. */
int sink_pg_attach(sink_pg_t *s, sink_pg_conn_t *c, char *err, size_t errlen)
{
    assert(s->state == SK_DOWN && !s->conn);
    free(s->group_lit); /* a failed attach before this one */
    free(s->topic_lit);
    free(s->table_id);
    free(s->index_id);
    s->conn = sink_pg_conn_take(c, &s->group_lit, &s->topic_lit, &s->table_id, &s->index_id);
    if (PQsetnonblocking(s->conn, 1) != 0) {
        snprintf(err, errlen, "PostgreSQL: cannot switch to nonblocking mode");
        goto fail;
    }
    if (sink_io_watch_idle(&s->io, s->conn) != 0) { /* notices a server going away */
        snprintf(err, errlen, "PostgreSQL: cannot watch the socket");
        goto fail;
    }
    sink_txn_input in = {.ev = SK_EV_OPENED};
    set_state(s, SK_DOWN, decide(s, &in).next);
    return 0;
fail:
    sink_io_stop(&s->io);
    PQfinish(s->conn);
    s->conn = NULL;
    return -1;
}

int sink_pg_submit(sink_pg_t *s, batch_t *b, int64_t *expected,
                   sink_pg_txn_cb done, void *ud)
{
    struct op *o = calloc(1, sizeof *o);
    if (!o)
        return -1;
    /* the batch and the fence are the op's from here (freed with it) */
    *o = (struct op){.kind = SK_OP_TXN, .batch = b, .expected = expected, .on_txn = done,
                     .ud = ud};
    op_push(s, o);
    return 0;
}

int sink_pg_read_offsets(sink_pg_t *s, sink_pg_offsets_cb done, void *ud)
{
    struct op *o = calloc(1, sizeof *o);
    if (!o)
        return -1;
    *o = (struct op){.kind = SK_OP_OFFSETS, .on_offsets = done, .ud = ud};
    op_push(s, o);
    return 0;
}

int sink_pg_warm(sink_pg_t *s, const int32_t *partitions, size_t n,
                 sink_pg_row_cb row, sink_pg_warm_done_cb done, void *ud)
{
    struct op *o = calloc(1, sizeof *o);
    int32_t *p = malloc((n ? n : 1) * sizeof *p);
    if (!o || !p) {
        free(o);
        free(p);
        return -1;
    }
    memcpy(p, partitions, n * sizeof *partitions);
    *o = (struct op){.kind = SK_OP_WARM, .partitions = p, .npartitions = n,
                     .on_row = row, .on_warm = done, .ud = ud};
    op_push(s, o);
    return 0;
}

size_t sink_pg_pending(const sink_pg_t *s) { return s->ntxn; }
int sink_pg_up(const sink_pg_t *s) { return sink_txn_up(s->state); }
uint64_t sink_pg_restaged(const sink_pg_t *s) { return s->restaged; }

static void sink_closed(uv_handle_t *h) { free(h->data); }

void sink_pg_free(sink_pg_t *s)
{
    if (!s)
        return;
    sink_io_stop(&s->io);
    uv_timer_stop(&s->retry);
    uv_close((uv_handle_t *)&s->retry, sink_closed);
    PQfinish(s->conn);
    s->conn = NULL;
    while (s->head) {
        batch_free(s->head->batch);
        op_pop(s);
    }
    free(s->group_lit);
    free(s->topic_lit);
    free(s->table_id);
    free(s->index_id);
    strbuf_free(&s->sql);
    /* s itself goes when the loop has closed the timer (sink_closed) */
}
