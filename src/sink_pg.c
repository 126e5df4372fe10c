/* sink_pg — see include/camjoin/sink_pg.h. */
#include "camjoin/sink_pg.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/event.h"
#include "camjoin/log.h"
#include "sink_sql.h"

#define COPY_CHUNK (256 * 1024)
#define MAX_RESULTS 16
#define BACKOFF_MIN_MS 100
#define CONNECT_TIMEOUT_MS 10000

enum op_kind { OP_TXN, OP_OFFSETS, OP_WARM };
enum conn_state { C_DOWN, C_CONNECTING, C_SETUP, C_READY };
/* What the statement in flight is; decides what step_done() does next. */
enum step { S_NONE, S_SETUP, S_VERIFY, S_WRITE, S_COMMIT, S_ROLLBACK, S_OFFSETS,
            S_WARM };

struct op {
    enum op_kind kind;
    batch_t *batch;      /* OP_TXN; owned until on_txn_done */
    int verify;          /* a previous attempt's outcome is unknown */
    int staged;          /* met existing rows: write it through staging */
    int32_t *partitions; /* OP_WARM; owned */
    size_t npartitions;
    void *req_ud;        /* OP_OFFSETS, OP_WARM: handed to their callbacks */
    struct op *next;
};

struct sink_pg {
    uv_loop_t *loop;
    const camjoin_config *cfg;
    sink_pg_callbacks cb;
    void *ud;

    PGconn *conn;
    enum conn_state state;
    uv_poll_t *poll;     /* heap: re-created for every socket */
    int poll_fd;
    uv_timer_t retry;
    int64_t backoff_ms;

    /* escaped once, at open: literals, identifiers */
    char *group_lit, *topic_lit, *table_id, *index_id;
    struct op *head, *tail;
    size_t ntxn;

    /* the statement in flight */
    enum step step;
    sink_write_plan plan;  /* of the S_WRITE statement (also its COPY data) */
    size_t copy_idx, copy_off;
    int copying, copy_ended;
    int copy_out;        /* a COPY TO STDOUT is streaming rows to us */
    size_t warm_rows;
    int nres, failed;
    int64_t tuples[MAX_RESULTS];
    char errmsg[512];
    PGresult *rows;      /* TUPLES_OK result kept for step_done */
    int fenced;          /* the ROLLBACK in flight is for a failed fence */
    int retry_pending;   /* a failed statement waits out its backoff */
    uint64_t txn_start_ns;
    char sqlstate[6];    /* of the first failed result */
    int conflict;        /* the ROLLBACK in flight follows a unique violation */
    int staging;         /* batches go staged until one meets no conflict */
    uint64_t restaged;

    strbuf_t sql;
};

static void start_connect(sink_pg_t *s);
static void on_io(uv_poll_t *h, int status, int events);
static void run_next(sink_pg_t *s);

/* ---- small helpers ---- */

static void first_line(char *dst, size_t size, const char *msg)
{
    snprintf(dst, size, "%s", msg && *msg ? msg : "unknown error");
    dst[strcspn(dst, "\r\n")] = '\0';
}

static void poll_close_cb(uv_handle_t *h) { free(h); }

static void poll_drop(sink_pg_t *s)
{
    if (!s->poll)
        return;
    uv_poll_stop(s->poll);
    uv_close((uv_handle_t *)s->poll, poll_close_cb);
    s->poll = NULL;
    s->poll_fd = -1;
}

/* Watches the connection's socket, re-creating the handle if it changed. */
static int poll_watch(sink_pg_t *s, int events)
{
    int fd = PQsocket(s->conn);
    if (fd < 0)
        return -1;
    if (s->poll && s->poll_fd != fd)
        poll_drop(s);
    if (!s->poll) {
        if (!(s->poll = malloc(sizeof *s->poll)))
            return -1;
        uv_poll_init(s->loop, s->poll, fd);
        s->poll->data = s;
        s->poll_fd = fd;
    }
    return uv_poll_start(s->poll, events, on_io);
}

/* ---- connection lifecycle ---- */

static void conn_lost(sink_pg_t *s, const char *why);

/* poll_watch, treating a failure as a lost connection. Returns -1 then. */
static int watch(sink_pg_t *s, int events)
{
    if (poll_watch(s, events) == 0)
        return 0;
    conn_lost(s, "postgres: cannot watch the socket");
    return -1;
}

static void on_retry(uv_timer_t *t) { start_connect(t->data); }

/* Exponential backoff: 100 ms doubling up to postgres.retry_max. */
static uint64_t backoff_next(sink_pg_t *s)
{
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > s->cfg->pg_retry_max_ms)
        s->backoff_ms = s->cfg->pg_retry_max_ms;
    if (s->backoff_ms < BACKOFF_MIN_MS)
        s->backoff_ms = BACKOFF_MIN_MS;
    return (uint64_t)s->backoff_ms;
}

static void conn_lost(sink_pg_t *s, const char *why)
{
    char msg[600];
    snprintf(msg, sizeof msg, "%s", why);
    poll_drop(s);
    if (s->rows) {
        PQclear(s->rows);
        s->rows = NULL;
    }
    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    int was_up = s->state == C_READY;
    s->state = C_DOWN;
    s->retry_pending = 0;
    s->conflict = 0;
    if (s->head && s->head->kind == OP_TXN && s->step != S_NONE)
        s->head->verify = 1; /* it may have committed: check before redoing */
    s->step = S_NONE;
    uint64_t delay = backoff_next(s);
    if (was_up || delay == BACKOFF_MIN_MS)
        s->cb.on_state(s->ud, 0, msg);
    else
        log_debug("postgres reconnect failed", "retry_ms=%llu",
                  (unsigned long long)delay);
    uv_timer_start(&s->retry, on_retry, delay, 0);
}

static void conn_lost_pq(sink_pg_t *s, const char *what)
{
    char m[512], msg[600];
    first_line(m, sizeof m, s->conn ? PQerrorMessage(s->conn) : NULL);
    snprintf(msg, sizeof msg, "%s: %s", what, m);
    conn_lost(s, msg);
}

static void on_notice(void *arg, const char *msg)
{
    (void)arg;
    char q[512];
    log_debug("postgres notice", "detail=%s", log_quote(q, sizeof q, msg));
}

static int conninfo_sets(const PQconninfoOption *given, const char *key)
{
    for (const PQconninfoOption *o = given; o && o->keyword; o++)
        if (o->val && strcmp(o->keyword, key) == 0)
            return 1;
    return 0;
}

/* Conninfo = the user's string (expanded as dbname) plus our defaults for
 * every key the user did not set: fail fast on a dead server. `app` is the
 * application_name: a default when `force_app` is 0, else it wins. */
static PGconn *connect_params(const char *conninfo, const char *app, int force_app,
                              int async)
{
    static const char *const defaults[][2] = {
        {"connect_timeout", "5"},   {"keepalives", "1"},
        {"keepalives_idle", "10"},  {"keepalives_interval", "3"},
        {"keepalives_count", "3"},  {"tcp_user_timeout", "10000"},
        {"application_name", NULL}, /* `app` */
    };
    enum { NDEF = sizeof defaults / sizeof defaults[0] };
    const char *keys[NDEF + 2], *vals[NDEF + 2];
    size_t n = 0;
    PQconninfoOption *given = NULL;
    if (conninfo && *conninfo) {
        keys[n] = "dbname";
        vals[n++] = conninfo;
        given = PQconninfoParse(conninfo, NULL);
    }
    for (size_t i = 0; i < NDEF; i++) {
        int is_app = !defaults[i][1];
        if ((is_app && force_app) || !conninfo_sets(given, defaults[i][0])) {
            keys[n] = defaults[i][0]; /* later keywords win over the conninfo's */
            vals[n++] = is_app ? app : defaults[i][1];
        }
    }
    keys[n] = vals[n] = NULL;
    PQconninfoFree(given);
    PGconn *c = async ? PQconnectStartParams(keys, vals, 1)
                      : PQconnectdbParams(keys, vals, 1);
    if (c)
        PQsetNoticeProcessor(c, on_notice, NULL);
    return c;
}

static void ignore_notice(void *arg, const char *msg) { (void)arg, (void)msg; }

PGconn *sink_pg_connect(const char *conninfo, const char *app)
{
    PGconn *c = connect_params(conninfo, app, 1, 0);
    if (c) /* it runs off the loop thread, where nothing may log */
        PQsetNoticeProcessor(c, ignore_notice, NULL);
    return c;
}

static void send_query(sink_pg_t *s, enum step step, const char *sql)
{
    s->step = step;
    s->nres = s->failed = 0;
    s->copying = s->copy_ended = s->copy_out = 0;
    s->copy_idx = s->copy_off = 0;
    s->errmsg[0] = s->sqlstate[0] = '\0';
    if (!PQsendQuery(s->conn, sql)) {
        conn_lost_pq(s, "postgres send");
        return;
    }
    int f = PQflush(s->conn);
    if (f < 0)
        conn_lost_pq(s, "postgres flush");
    else
        watch(s, UV_READABLE | (f ? UV_WRITABLE : 0));
}

static void on_connect_io(sink_pg_t *s)
{
    switch (PQconnectPoll(s->conn)) {
    case PGRES_POLLING_READING:
        watch(s, UV_READABLE);
        return;
    case PGRES_POLLING_WRITING:
        watch(s, UV_WRITABLE);
        return;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(s->conn, 1) != 0) {
            conn_lost_pq(s, "postgres nonblocking");
            return;
        }
        s->state = C_SETUP;
        send_query(s, S_SETUP, sink_sql_setup);
        return;
    default:
        conn_lost_pq(s, "postgres connect");
    }
}

static void on_connect_timeout(uv_timer_t *t)
{
    conn_lost(t->data, "postgres connect: timed out");
}

static void start_connect(sink_pg_t *s)
{
    s->conn = connect_params(s->cfg->pg_conninfo, "camjoin", 0, 1);
    if (!s->conn || PQstatus(s->conn) == CONNECTION_BAD) {
        conn_lost_pq(s, "postgres connect");
        return;
    }
    s->state = C_CONNECTING;
    /* PQconnectPoll has no timeout of its own: connect and session setup
     * must finish within this, or the attempt counts as failed */
    uv_timer_start(&s->retry, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
    watch(s, UV_WRITABLE);
}

/* ---- the statement in flight: COPY streaming and result collection ---- */

/* Pushes COPY data until done or the socket is full. Returns 0, or -1 when
 * the connection failed (already handled). */
static int copy_push(sink_pg_t *s)
{
    const char *data = s->plan.copy[s->copy_idx];
    size_t len = s->plan.copy_len[s->copy_idx];
    while (s->copy_off < len) {
        size_t n = len - s->copy_off < COPY_CHUNK ? len - s->copy_off : COPY_CHUNK;
        int r = PQputCopyData(s->conn, data + s->copy_off, (int)n);
        if (r < 0)
            goto lost;
        if (r == 1)
            s->copy_off += n;
        int f = PQflush(s->conn);
        if (f < 0)
            goto lost;
        if (f == 1 || r == 0) /* socket full: continue when writable */
            return watch(s, UV_READABLE | UV_WRITABLE);
    }
    if (!s->copy_ended) {
        if (PQputCopyEnd(s->conn, NULL) != 1)
            goto lost;
        s->copy_ended = 1;
    }
    int f = PQflush(s->conn);
    if (f < 0)
        goto lost;
    if (f == 0)
        s->copying = 0; /* all sent: now wait for the COPY's result */
    return watch(s, UV_READABLE | (f ? UV_WRITABLE : 0));
lost:
    conn_lost_pq(s, "postgres copy");
    return -1;
}

static void step_done(sink_pg_t *s);

/* One warm-up row: hex(event_id) TAB partition TAB offset. */
static void warm_row(sink_pg_t *s, const char *line, int len)
{
    char id[EVENT_ID_MAX], *end;
    const char *tab = memchr(line, '\t', (size_t)len);
    size_t hex = tab ? (size_t)(tab - line) : 0, n = hex / 2;
    if (!tab || hex % 2 || n == 0 || n > sizeof id)
        return;
    for (size_t i = 0; i < n; i++) {
        char pair[3] = {line[2 * i], line[2 * i + 1], '\0'};
        id[i] = (char)strtol(pair, NULL, 16);
    }
    long part = strtol(tab + 1, &end, 10);
    long long off = *end == '\t' ? strtoll(end + 1, NULL, 10) : -1;
    if (off < 0)
        return;
    s->warm_rows++;
    s->cb.on_warm_row(s->head->req_ud, id, n, (int32_t)part, (int64_t)off);
}

/* Drains a COPY TO STDOUT. Returns 1 while it must wait for more input. */
static int copy_out_pull(sink_pg_t *s)
{
    char *buf;
    int n;
    while ((n = PQgetCopyData(s->conn, &buf, 1)) > 0) {
        warm_row(s, buf, n);
        PQfreemem(buf);
    }
    if (n == 0)
        return 1;
    s->copy_out = 0; /* -1: done, the COPY's result follows; -2: error */
    return 0;
}

static void collect(sink_pg_t *s)
{
    while (s->step != S_NONE && !s->copying) {
        if (s->copy_out && copy_out_pull(s))
            return;
        if (PQisBusy(s->conn))
            return;
        PGresult *r = PQgetResult(s->conn);
        if (!r) {
            step_done(s);
            return;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_OUT) {
            PQclear(r);
            s->copy_out = 1;
            continue;
        }
        if (st == PGRES_COPY_IN) {
            PQclear(r);
            if (s->step != S_WRITE || s->copy_idx >= s->plan.ncopy) {
                /* not ours: refuse it */
                PQputCopyEnd(s->conn, "camjoin: unexpected COPY");
                continue;
            }
            if (s->copy_ended) { /* second COPY of the statement */
                s->copy_idx++;
                s->copy_off = 0;
                s->copy_ended = 0;
            }
            s->copying = 1;
            if (copy_push(s) != 0)
                return;
            continue;
        }
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (s->nres < MAX_RESULTS) {
                const char *t = PQcmdTuples(r);
                s->tuples[s->nres] = *t ? atoll(t) : 0;
            }
            if (st == PGRES_TUPLES_OK && !s->rows) {
                s->rows = r; /* kept for step_done */
                r = NULL;
            }
        } else if (!s->failed) {
            const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            s->failed = 1;
            first_line(s->errmsg, sizeof s->errmsg, PQresultErrorMessage(r));
            snprintf(s->sqlstate, sizeof s->sqlstate, "%s", code ? code : "");
        }
        s->nres++;
        PQclear(r);
    }
}

static void on_io(uv_poll_t *h, int status, int events)
{
    sink_pg_t *s = h->data;
    if (status < 0) {
        conn_lost(s, "postgres socket error");
        return;
    }
    if (s->state == C_CONNECTING) {
        on_connect_io(s);
        return;
    }
    if (events & UV_WRITABLE) {
        if (s->copying) {
            if (copy_push(s) != 0)
                return;
        } else {
            int f = PQflush(s->conn);
            if (f < 0) {
                conn_lost_pq(s, "postgres flush");
                return;
            }
            if (watch(s, UV_READABLE | (f ? UV_WRITABLE : 0)) != 0)
                return;
        }
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(s->conn)) {
            conn_lost_pq(s, "postgres connection lost");
            return;
        }
    }
    if (s->step != S_NONE)
        collect(s);
    else if (PQstatus(s->conn) == CONNECTION_BAD)
        conn_lost_pq(s, "postgres connection lost");
}

/* ---- operations ---- */

static void op_pop(sink_pg_t *s)
{
    struct op *o = s->head;
    s->head = o->next;
    if (!s->head)
        s->tail = NULL;
    if (o->kind == OP_TXN)
        s->ntxn--;
    free(o->partitions);
    free(o);
}

static struct op *op_push(sink_pg_t *s, enum op_kind kind, batch_t *b)
{
    struct op *o = calloc(1, sizeof *o);
    if (!o) { /* cannot queue: keep the process honest and loud */
        log_error("out of memory queueing a postgres operation", NULL);
        abort();
    }
    o->kind = kind;
    o->batch = b;
    if (s->tail)
        s->tail->next = o;
    else
        s->head = o;
    s->tail = o;
    if (kind == OP_TXN)
        s->ntxn++;
    return o;
}

static void send_offsets_query(sink_pg_t *s, enum step step)
{
    sink_sql_offsets(&s->sql, s->group_lit, s->topic_lit);
    if (s->sql.oom) {
        conn_lost(s, "out of memory");
        return;
    }
    send_query(s, step, s->sql.data);
}

static void send_write(sink_pg_t *s, struct op *o)
{
    int staged = s->cfg->write_mode == WRITE_STAGED || s->staging || o->staged;
    sink_sql_write(&s->sql, o->batch, s->table_id, s->group_lit, s->topic_lit,
                   staged, &s->plan);
    if (s->sql.oom) {
        conn_lost(s, "out of memory");
        return;
    }
    s->txn_start_ns = uv_hrtime();
    send_query(s, S_WRITE, s->sql.data);
}

static void run_next(sink_pg_t *s)
{
    struct op *o = s->head;
    if (!o || s->state != C_READY || s->step != S_NONE || s->retry_pending)
        return;
    if (o->kind == OP_OFFSETS) {
        send_offsets_query(s, S_OFFSETS);
    } else if (o->kind == OP_WARM) {
        s->warm_rows = 0;
        sink_sql_warm(&s->sql, s->table_id, o->partitions, o->npartitions,
                      s->cfg->dedup_window_ms);
        if (s->sql.oom)
            conn_lost(s, "out of memory");
        else
            send_query(s, S_WARM, s->sql.data);
    }
    else if (o->verify)
        send_offsets_query(s, S_VERIFY);
    else
        send_write(s, o);
}

static void txn_finish(sink_pg_t *s, enum sink_result r, size_t inserted)
{
    batch_t *b = s->head->batch;
    double ms = (double)(uv_hrtime() - s->txn_start_ns) / 1e6;
    op_pop(s);
    s->cb.on_txn_done(s->ud, b, r, inserted, ms); /* batch back to the owner */
}

/* Stored offsets from s->rows: looks up partition p, -1 when absent. */
static int64_t stored_offset(const PGresult *rows, int32_t p)
{
    for (int i = 0; i < PQntuples(rows); i++)
        if (atoi(PQgetvalue(rows, i, 0)) == p)
            return atoll(PQgetvalue(rows, i, 1));
    return BATCH_OFFSET_NONE;
}

static void verify_done(sink_pg_t *s)
{
    size_t n, same_next = 0, same_expected = 0;
    batch_offset_t *off = batch_offsets(s->head->batch, &n);
    for (size_t i = 0; i < n; i++) {
        int64_t v = stored_offset(s->rows, off[i].partition);
        same_next += v == off[i].next;
        same_expected += v == off[i].expected;
    }
    s->head->verify = 0;
    /* "not committed" first: when next == expected (a replay below the
     * stored offset) both hold, and running the batch again is harmless
     * (ON CONFLICT for rows and dead letters, the fence rewrites the value) */
    if (same_expected == n) {
        log_info("unknown commit outcome resolved: not committed, retrying",
                 "messages=%zu", batch_messages(s->head->batch));
    } else if (same_next == n) {
        log_info("unknown commit outcome resolved: committed", "messages=%zu",
                 batch_messages(s->head->batch));
        txn_finish(s, SINK_OK, batch_rows(s->head->batch));
    } else {
        txn_finish(s, SINK_FENCED, 0);
    }
}

static void offsets_done(sink_pg_t *s)
{
    int n = PQntuples(s->rows);
    int32_t *parts = malloc(sizeof *parts * (size_t)(n ? n : 1));
    int64_t *next = malloc(sizeof *next * (size_t)(n ? n : 1));
    if (!parts || !next) {
        free(parts);
        free(next);
        conn_lost(s, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        parts[i] = atoi(PQgetvalue(s->rows, i, 0));
        next[i] = atoll(PQgetvalue(s->rows, i, 1));
    }
    void *ud = s->head->req_ud;
    op_pop(s);
    s->cb.on_offsets(ud, parts, next, (size_t)n);
    free(parts);
    free(next);
}

/* A statement finished (every result collected). Decide the next one. */
static void on_retry_op(uv_timer_t *t)
{
    sink_pg_t *s = t->data;
    s->retry_pending = 0;
    run_next(s);
}

static void step_done(sink_pg_t *s)
{
    enum step step = s->step;
    if (PQstatus(s->conn) == CONNECTION_BAD) {
        conn_lost_pq(s, "postgres connection lost"); /* step still set */
        return;
    }
    s->step = S_NONE;
    if (s->failed && step == S_WRITE && !s->plan.staged &&
        strcmp(s->sqlstate, "23505") == 0) {
        /* unique violation on the direct COPY: redo the batch staged */
        if (!s->staging)
            log_info("batch met rows that exist already; writing through "
                     "staging tables until a batch meets none", "error=\"%s\"",
                     s->errmsg);
        s->conflict = 1;
        s->fenced = 0;
        send_query(s, S_ROLLBACK, "ROLLBACK");
        goto out;
    }
    if (s->failed && step != S_ROLLBACK) {
        log_warn("postgres statement failed", "step=%d error=\"%s\"", (int)step,
                 s->errmsg);
        if (step == S_WRITE || step == S_COMMIT) {
            s->fenced = 0;
            send_query(s, S_ROLLBACK, "ROLLBACK");
        } else {
            /* setup, verify or offsets read failed: reconnect and retry */
            conn_lost(s, s->errmsg);
        }
        goto out;
    }
    switch (step) {
    case S_SETUP:
        uv_timer_stop(&s->retry); /* the connect timeout */
        s->state = C_READY;
        s->backoff_ms = 0;
        s->cb.on_state(s->ud, 1, NULL);
        break;
    case S_VERIFY:
        verify_done(s);
        break;
    case S_OFFSETS:
        offsets_done(s);
        break;
    case S_WARM: {
        size_t rows = s->warm_rows;
        void *ud = s->head->req_ud;
        op_pop(s);
        s->cb.on_warm_done(ud, rows);
        break;
    }
    case S_WRITE: {
        const sink_write_plan *w = &s->plan;
        int ok = (w->idx_upd < 0 || s->tuples[w->idx_upd] == w->n_upd) &&
                 (w->idx_ins < 0 || s->tuples[w->idx_ins] == w->n_ins);
        s->fenced = !ok;
        send_query(s, ok ? S_COMMIT : S_ROLLBACK, ok ? "COMMIT" : "ROLLBACK");
        goto out;
    }
    case S_COMMIT: {
        const sink_write_plan *w = &s->plan;
        batch_t *b = s->head->batch;
        size_t inserted = w->idx_insert >= 0 ? (size_t)s->tuples[w->idx_insert] : 0;
        size_t dead = w->idx_dead >= 0 ? (size_t)s->tuples[w->idx_dead] : 0;
        s->backoff_ms = 0;
        if (w->staged && inserted == batch_rows(b) && dead == batch_dead(b))
            s->staging = 0; /* no conflict any more: back to direct COPY */
        txn_finish(s, SINK_OK, inserted);
        break;
    }
    case S_ROLLBACK:
        if (s->conflict) {
            s->conflict = 0;
            s->head->staged = 1;
            s->staging = 1;
            s->restaged++;
            break; /* run_next redoes it at once */
        }
        if (s->fenced) {
            txn_finish(s, SINK_FENCED, 0);
            break;
        }
        /* a statement failed: retry the same batch after a pause */
        s->retry_pending = 1;
        uv_timer_start(&s->retry, on_retry_op, backoff_next(s), 0);
        return;
    default:
        break;
    }
out:
    if (s->rows) {
        PQclear(s->rows);
        s->rows = NULL;
    }
    run_next(s);
}

/* ---- public API ---- */

sink_pg_t *sink_pg_new(uv_loop_t *loop, const camjoin_config *cfg,
                       const sink_pg_callbacks *cb, void *ud)
{
    sink_pg_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->cfg = cfg;
    s->cb = *cb;
    s->ud = ud;
    s->poll_fd = -1;
    uv_timer_init(loop, &s->retry);
    s->retry.data = s;
    return s;
}

static char *escape(PGconn *c, const char *v, int ident)
{
    char *e = ident ? PQescapeIdentifier(c, v, strlen(v))
                    : PQescapeLiteral(c, v, strlen(v));
    char *copy = e ? strdup(e) : NULL; /* libpq memory → ours */
    PQfreemem(e);
    return copy;
}

int sink_pg_check_conninfo(const char *conninfo, char *err, size_t errlen)
{
    char *msg = NULL;
    if (!conninfo || !*conninfo)
        return 0;
    PQconninfoOption *o = PQconninfoParse(conninfo, &msg);
    if (o) {
        PQconninfoFree(o);
        return 0;
    }
    /* libpq quotes the whole string, password included: keep its reason only */
    char why[256];
    first_line(why, sizeof why, msg ? msg : "out of memory");
    char *cut = strstr(why, " in URI");
    if (!cut)
        cut = strstr(why, ": \"");
    if (cut)
        *cut = '\0';
    size_t n = strlen(why);
    while (n && (why[n - 1] == ' ' || why[n - 1] == ':'))
        why[--n] = '\0';
    snprintf(err, errlen, "postgres.conninfo: not a valid connection string or "
             "URI (%s)", why);
    PQfreemem(msg);
    return -1;
}

/* 1 when every object of the schema exists already. */
static int schema_present(sink_pg_t *s)
{
    sink_sql_schema_present(&s->sql, s->table_id, s->index_id);
    if (s->sql.oom)
        return 0;
    PGresult *r = PQexec(s->conn, s->sql.data);
    int yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
              strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return yes;
}

int sink_pg_open(sink_pg_t *s, char *err, size_t errlen)
{
    char m[512];
    s->conn = connect_params(s->cfg->pg_conninfo, "camjoin", 0, 0);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        first_line(m, sizeof m, s->conn ? PQerrorMessage(s->conn) : "out of memory");
        snprintf(err, errlen, "PostgreSQL unreachable: %s", m);
        goto fail;
    }
    s->group_lit = escape(s->conn, s->cfg->group, 0);
    s->topic_lit = escape(s->conn, s->cfg->topic, 0);
    s->table_id = escape(s->conn, s->cfg->table, 1);
    char index[512];
    snprintf(index, sizeof index, "%s_ingested_at_idx", s->cfg->table);
    s->index_id = escape(s->conn, index, 1);
    char *ddl = s->table_id && s->index_id
                    ? sink_pg_schema_sql(s->table_id, s->index_id) : NULL;
    if (!s->group_lit || !s->topic_lit || !ddl) {
        free(ddl);
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* DDL only when something is missing: a least-privilege role (no CREATE
     * on the schema) can run against a schema created by its owner. The DDL
     * is one transaction, serialized across instances starting together. */
    const char *steps[] = {"BEGIN", "SELECT pg_advisory_xact_lock(7262330617)",
                           ddl, "COMMIT", sink_sql_setup};
    enum { SESSION_STEP = 4 };
    size_t first = schema_present(s) ? SESSION_STEP : 0;
    /* PostgreSQL cuts names at 63 bytes: the derived ones must stay apart */
    if (first == 0 && strlen(s->cfg->table) > SINK_SQL_TABLE_MAX) {
        snprintf(err, errlen, "postgres.table: \"%.80s\" is longer than %d bytes "
                 "(camjoin names its rollup table and views after it, such as "
                 "<table>_join_misses_minute)", s->cfg->table, SINK_SQL_TABLE_MAX);
        free(ddl);
        goto fail;
    }
    for (size_t i = first; i < sizeof steps / sizeof steps[0]; i++) {
        PGresult *r = PQexec(s->conn, steps[i]);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            first_line(m, sizeof m, PQresultErrorMessage(r));
            snprintf(err, errlen, "PostgreSQL %s failed: %s",
                     i == SESSION_STEP ? "session setup (temporary staging tables)"
                                       : "schema setup", m);
            PQclear(r);
            free(ddl);
            goto fail;
        }
        PQclear(r);
    }
    free(ddl);
    if (PQsetnonblocking(s->conn, 1) != 0) {
        snprintf(err, errlen, "PostgreSQL: cannot switch to nonblocking mode");
        goto fail;
    }
    s->state = C_READY;
    if (poll_watch(s, UV_READABLE) != 0) { /* notices a server going away */
        snprintf(err, errlen, "PostgreSQL: cannot watch the socket");
        goto fail;
    }
    return 0;
fail:
    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    return -1;
}

void sink_pg_submit(sink_pg_t *s, batch_t *b)
{
    op_push(s, OP_TXN, b);
    run_next(s);
}

void sink_pg_read_offsets(sink_pg_t *s, void *ud)
{
    op_push(s, OP_OFFSETS, NULL)->req_ud = ud;
    run_next(s);
}

void sink_pg_warm(sink_pg_t *s, const int32_t *partitions, size_t n, void *ud)
{
    struct op *o = op_push(s, OP_WARM, NULL);
    o->req_ud = ud;
    o->partitions = malloc((n ? n : 1) * sizeof *o->partitions);
    if (!o->partitions) {
        log_error("out of memory queueing a postgres operation", NULL);
        abort();
    }
    memcpy(o->partitions, partitions, n * sizeof *partitions);
    o->npartitions = n;
    run_next(s);
}
size_t sink_pg_pending(const sink_pg_t *s) { return s->ntxn; }
int sink_pg_up(const sink_pg_t *s) { return s->state == C_READY; }
uint64_t sink_pg_restaged(const sink_pg_t *s) { return s->restaged; }

static void sink_closed(uv_handle_t *h) { free(h->data); }

void sink_pg_free(sink_pg_t *s)
{
    if (!s)
        return;
    poll_drop(s);
    uv_timer_stop(&s->retry);
    uv_close((uv_handle_t *)&s->retry, sink_closed);
    if (s->rows)
        PQclear(s->rows);
    s->rows = NULL;
    if (s->conn)
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
