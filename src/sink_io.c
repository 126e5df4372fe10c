/* sink_io — the sink's statement in flight on the socket; see
 * sink_pg_int.h, and include/camjoin/sink_pg.h for the sink as a whole.
 *
 * Nonblocking libpq over a uv_poll_t: a statement is sent whole
 * (PQsendQuery), flushed as the socket takes it, its COPY FROM STDIN data
 * pushed in chunks whenever the socket is writable, a COPY TO STDOUT
 * drained row by row, and its results collected as they arrive; when the
 * last one is in, sink_pg_step_done() decides what comes next. Any libpq or
 * libuv failure on the way is a lost connection (sink_pg_lost), with
 * libpq's message cut to its first line. Why one string a statement: a
 * batch's write is BEGIN, COPYs and the fenced UPDATE/INSERT in one round
 * trip; only COMMIT (once the fences are seen to hold) needs another.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/event.h"
#include "camjoin/pg_conn.h"
#include "sink_pg_int.h"

#define COPY_CHUNK (256 * 1024)

static void on_io(uv_poll_t *h, int status, int events);

/* ---- the socket ---- */

static void poll_close_cb(uv_handle_t *h) { free(h); }

void sink_io_drop(sink_pg_t *s)
{
    if (!s->poll)
        return;
    uv_poll_stop(s->poll);
    uv_close((uv_handle_t *)s->poll, poll_close_cb);
    s->poll = NULL;
    s->poll_fd = -1;
}

int sink_io_watch(sink_pg_t *s, int events)
{
    int fd = PQsocket(s->conn);
    if (fd < 0)
        return -1;
    if (s->poll && s->poll_fd != fd)
        sink_io_drop(s);
    if (!s->poll) {
        if (!(s->poll = malloc(sizeof *s->poll)))
            return -1;
        if (uv_poll_init(s->loop, s->poll, fd) != 0) {
            free(s->poll);
            s->poll = NULL;
            return -1;
        }
        s->poll->data = s;
        s->poll_fd = fd;
    }
    return uv_poll_start(s->poll, events, on_io);
}

/* poll_watch, treating a failure as a lost connection. Returns -1 then. */
static int watch(sink_pg_t *s, int events)
{
    if (sink_io_watch(s, events) == 0)
        return 0;
    sink_pg_lost(s, "postgres: cannot watch the socket");
    return -1;
}

void sink_io_send(sink_pg_t *s, sink_state from, sink_state to, const char *sql)
{
    sink_pg_set_state(s, from, to);
    PQclear(s->st.rows);
    memset(&s->st, 0, sizeof s->st);
    if (!PQsendQuery(s->conn, sql)) {
        sink_pg_lost_pq(s, "postgres send");
        return;
    }
    int f = PQflush(s->conn);
    if (f < 0)
        sink_pg_lost_pq(s, "postgres flush");
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
    case PGRES_POLLING_OK: {
        if (PQsetnonblocking(s->conn, 1) != 0) {
            sink_pg_lost_pq(s, "postgres nonblocking");
            return;
        }
        sink_txn_input in = {.ev = SK_EV_CONNECTED};
        sink_io_send(s, SK_CONNECTING, sink_pg_decide(s, &in).next, sink_sql_setup);
        return;
    }
    default:
        sink_pg_lost_pq(s, "postgres connect");
    }
}

/* ---- the statement in flight: COPY streaming and result collection ---- */

/* Pushes COPY data until done or the socket is full. Returns 0, or -1 when
 * the connection failed (already handled). */
static int copy_push(sink_pg_t *s)
{
    struct stmt *st = &s->st;
    const char *data = s->txn.plan.copy[st->copy_idx];
    size_t len = s->txn.plan.copy_len[st->copy_idx];
    while (st->copy_off < len) {
        size_t n = len - st->copy_off < COPY_CHUNK ? len - st->copy_off : COPY_CHUNK;
        int r = PQputCopyData(s->conn, data + st->copy_off, (int)n);
        if (r < 0)
            goto lost;
        if (r == 1)
            st->copy_off += n;
        int f = PQflush(s->conn);
        if (f < 0)
            goto lost;
        if (f == 1 || r == 0) /* socket full: continue when writable */
            return watch(s, UV_READABLE | UV_WRITABLE);
    }
    if (!st->copy_ended) {
        if (PQputCopyEnd(s->conn, NULL) != 1)
            goto lost;
        st->copy_ended = 1;
    }
    int f = PQflush(s->conn);
    if (f < 0)
        goto lost;
    if (f == 0)
        st->copying = 0; /* all sent: now wait for the COPY's result */
    return watch(s, UV_READABLE | (f ? UV_WRITABLE : 0));
lost:
    sink_pg_lost_pq(s, "postgres copy");
    return -1;
}

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
    s->st.warm_rows++;
    s->head->on_row(s->head->ud, id, n, (int32_t)part, (int64_t)off);
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
    s->st.copy_out = 0; /* -1: done, the COPY's result follows; -2: error */
    return 0;
}

static void collect(sink_pg_t *s)
{
    struct stmt *st = &s->st;
    while (sink_txn_in_flight(s->state) && !st->copying) {
        if (st->copy_out && copy_out_pull(s))
            return;
        if (PQisBusy(s->conn))
            return;
        PGresult *r = PQgetResult(s->conn);
        if (!r) {
            sink_pg_step_done(s);
            return;
        }
        ExecStatusType rs = PQresultStatus(r);
        if (rs == PGRES_COPY_OUT) {
            PQclear(r);
            st->copy_out = 1;
            continue;
        }
        if (rs == PGRES_COPY_IN) {
            PQclear(r);
            if (s->state != SK_WRITE || st->copy_idx >= s->txn.plan.ncopy) {
                /* not ours: refuse it */
                if (PQputCopyEnd(s->conn, "camjoin: unexpected COPY") < 0) {
                    sink_pg_lost_pq(s, "postgres copy");
                    return;
                }
                continue;
            }
            if (st->copy_ended) { /* second COPY of the statement */
                st->copy_idx++;
                st->copy_off = 0;
                st->copy_ended = 0;
            }
            st->copying = 1;
            if (copy_push(s) != 0)
                return;
            continue;
        }
        if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) {
            if (st->nres < MAX_RESULTS) {
                const char *t = PQcmdTuples(r);
                st->tuples[st->nres] = *t ? atoll(t) : 0;
            }
            if (rs == PGRES_TUPLES_OK && !st->rows) {
                st->rows = r; /* kept for step_done */
                r = NULL;
            }
        } else if (!st->failed) {
            const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            st->failed = 1;
            pg_conn_first_line(st->errmsg, sizeof st->errmsg, PQresultErrorMessage(r));
            snprintf(st->sqlstate, sizeof st->sqlstate, "%s", code ? code : "");
        }
        st->nres++;
        PQclear(r);
    }
}

static void on_io(uv_poll_t *h, int status, int events)
{
    sink_pg_t *s = h->data;
    if (status < 0) {
        sink_pg_lost(s, "postgres socket error");
        return;
    }
    if (s->state == SK_CONNECTING) {
        on_connect_io(s);
        return;
    }
    if (events & UV_WRITABLE) {
        if (s->st.copying) {
            if (copy_push(s) != 0)
                return;
        } else {
            int f = PQflush(s->conn);
            if (f < 0) {
                sink_pg_lost_pq(s, "postgres flush");
                return;
            }
            if (watch(s, UV_READABLE | (f ? UV_WRITABLE : 0)) != 0)
                return;
        }
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(s->conn)) {
            sink_pg_lost_pq(s, "postgres connection lost");
            return;
        }
    }
    if (sink_txn_in_flight(s->state))
        collect(s);
    else if (PQstatus(s->conn) == CONNECTION_BAD)
        sink_pg_lost_pq(s, "postgres connection lost");
}
