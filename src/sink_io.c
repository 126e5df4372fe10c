/* sink_io — see sink_io.h.
 *
 * Nonblocking libpq over a uv_poll_t: a statement is sent whole
 * (PQsendQuery) and flushed as the socket takes it; its COPY FROM STDIN
 * data is pushed in chunks whenever the socket is writable, a COPY TO
 * STDOUT is drained line by line, and its results are collected as they
 * arrive. When the last one is in, `done` goes up; what comes next is the
 * sink's decision. Any libpq or libuv failure on the way is `lost`, with
 * libpq's message cut to its first line. Why one string a statement: a
 * batch's write is BEGIN, COPYs and the fenced UPDATE/INSERT in one round
 * trip; only COMMIT (once the fences are seen to hold) needs another.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/pg_conn.h"
#include "sink_io.h"

#define COPY_CHUNK (256 * 1024)

static void on_io(uv_poll_t *h, int status, int events);

/* ---- the socket ---- */

void sink_io_init(sink_io_t *io, uv_loop_t *loop, const sink_io_events *ev,
                  void *ud)
{
    memset(io, 0, sizeof *io);
    io->loop = loop;
    io->ev = ev;
    io->ud = ud;
    io->poll_fd = -1;
}

static void poll_close_cb(uv_handle_t *h) { free(h); }

void sink_io_stop(sink_io_t *io)
{
    if (io->poll) {
        uv_poll_stop(io->poll);
        uv_close((uv_handle_t *)io->poll, poll_close_cb);
        io->poll = NULL;
    }
    io->poll_fd = -1;
    io->mode = IO_OFF;
    io->conn = NULL;
    PQclear(io->st.rows);
    io->st.rows = NULL;
}

/* Watches the connection's socket for `events`, re-creating the handle if
 * the socket changed. Returns 0, or -1 (nothing watched). */
static int watch_fd(sink_io_t *io, int events)
{
    int fd = PQsocket(io->conn);
    if (fd < 0)
        return -1;
    if (io->poll && io->poll_fd != fd) {
        uv_poll_stop(io->poll);
        uv_close((uv_handle_t *)io->poll, poll_close_cb);
        io->poll = NULL;
    }
    if (!io->poll) {
        if (!(io->poll = malloc(sizeof *io->poll)))
            return -1;
        if (uv_poll_init(io->loop, io->poll, fd) != 0) {
            free(io->poll);
            io->poll = NULL;
            return -1;
        }
        io->poll->data = io;
        io->poll_fd = fd;
    }
    return uv_poll_start(io->poll, events, on_io);
}

static void lost(sink_io_t *io, const char *why)
{
    io->mode = IO_OFF;
    io->ev->lost(io->ud, why);
}

/* `what: ` and libpq's message, first line. */
static void lost_pq(sink_io_t *io, const char *what)
{
    char m[512], msg[600];
    pg_conn_first_line(m, sizeof m, io->conn ? PQerrorMessage(io->conn) : NULL);
    snprintf(msg, sizeof msg, "%s: %s", what, m);
    lost(io, msg);
}

/* watch_fd, treating a failure as a lost connection. Returns -1 then. */
static int watch(sink_io_t *io, int events)
{
    if (watch_fd(io, events) == 0)
        return 0;
    lost(io, "postgres: cannot watch the socket");
    return -1;
}

static int start(sink_io_t *io, PGconn *conn, int mode, int events)
{
    io->conn = conn;
    io->mode = mode;
    if (watch_fd(io, events) == 0)
        return 0;
    io->mode = IO_OFF;
    return -1;
}

int sink_io_connect(sink_io_t *io, PGconn *conn)
{
    return start(io, conn, IO_CONNECTING, UV_WRITABLE); /* PQconnectStart's first wait */
}

int sink_io_watch_idle(sink_io_t *io, PGconn *conn)
{
    return start(io, conn, IO_IDLE, UV_READABLE);
}

void sink_io_send(sink_io_t *io, const char *sql, const char *const *copy,
                  const size_t *copy_len, size_t ncopy)
{
    PQclear(io->st.rows);
    memset(&io->st, 0, sizeof io->st);
    io->copy = copy;
    io->copy_len = copy_len;
    io->ncopy = ncopy;
    io->copy_idx = io->copy_off = 0;
    io->copying = io->copy_ended = io->copy_out = 0;
    io->mode = IO_BUSY;
    if (!PQsendQuery(io->conn, sql)) {
        lost_pq(io, "postgres send");
        return;
    }
    int f = PQflush(io->conn);
    if (f < 0)
        lost_pq(io, "postgres flush");
    else
        watch(io, UV_READABLE | (f ? UV_WRITABLE : 0));
}

static void on_connect_io(sink_io_t *io)
{
    switch (PQconnectPoll(io->conn)) {
    case PGRES_POLLING_READING:
        watch(io, UV_READABLE);
        return;
    case PGRES_POLLING_WRITING:
        watch(io, UV_WRITABLE);
        return;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(io->conn, 1) != 0) {
            lost_pq(io, "postgres nonblocking");
            return;
        }
        io->mode = IO_IDLE;
        io->ev->connected(io->ud);
        return;
    default:
        lost_pq(io, "postgres connect");
    }
}

/* ---- the statement in flight: COPY streaming and result collection ---- */

/* Pushes COPY data until done or the socket is full. Returns 0, or -1 when
 * the connection failed (already reported). */
static int copy_push(sink_io_t *io)
{
    const char *data = io->copy[io->copy_idx];
    size_t len = io->copy_len[io->copy_idx];
    while (io->copy_off < len) {
        size_t n = len - io->copy_off < COPY_CHUNK ? len - io->copy_off : COPY_CHUNK;
        int r = PQputCopyData(io->conn, data + io->copy_off, (int)n);
        if (r < 0)
            goto lost;
        if (r == 1)
            io->copy_off += n;
        int f = PQflush(io->conn);
        if (f < 0)
            goto lost;
        if (f == 1 || r == 0) /* socket full: continue when writable */
            return watch(io, UV_READABLE | UV_WRITABLE);
    }
    if (!io->copy_ended) {
        if (PQputCopyEnd(io->conn, NULL) != 1)
            goto lost;
        io->copy_ended = 1;
    }
    int f = PQflush(io->conn);
    if (f < 0)
        goto lost;
    if (f == 0)
        io->copying = 0; /* all sent: now wait for the COPY's result */
    return watch(io, UV_READABLE | (f ? UV_WRITABLE : 0));
lost:
    lost_pq(io, "postgres copy");
    return -1;
}

/* Drains a COPY TO STDOUT. Returns 1 while it must wait for more input. */
static int copy_out_pull(sink_io_t *io)
{
    char *buf;
    int n;
    while ((n = PQgetCopyData(io->conn, &buf, 1)) > 0) {
        io->ev->line(io->ud, buf, n);
        PQfreemem(buf);
    }
    if (n == 0)
        return 1;
    io->copy_out = 0; /* -1: done, the COPY's result follows; -2: error */
    return 0;
}

static void collect(sink_io_t *io)
{
    sink_io_stmt *st = &io->st;
    while (io->mode == IO_BUSY && !io->copying) {
        if (io->copy_out && copy_out_pull(io))
            return;
        if (PQisBusy(io->conn))
            return;
        PGresult *r = PQgetResult(io->conn);
        if (!r) {
            io->mode = IO_IDLE;
            io->ev->done(io->ud);
            return;
        }
        ExecStatusType rs = PQresultStatus(r);
        if (rs == PGRES_COPY_OUT) {
            PQclear(r);
            io->copy_out = 1;
            continue;
        }
        if (rs == PGRES_COPY_IN) {
            PQclear(r);
            if (io->copy_ended) { /* the statement's next COPY */
                io->copy_idx++;
                io->copy_off = 0;
                io->copy_ended = 0;
            }
            if (io->copy_idx >= io->ncopy) { /* not ours: refuse it */
                if (PQputCopyEnd(io->conn, "camjoin: unexpected COPY") < 0) {
                    lost_pq(io, "postgres copy");
                    return;
                }
                io->copy_ended = 1;
                continue;
            }
            io->copying = 1;
            if (copy_push(io) != 0)
                return;
            continue;
        }
        if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) {
            if (st->nres < SINK_IO_MAX_RESULTS) {
                const char *t = PQcmdTuples(r);
                st->tuples[st->nres] = *t ? atoll(t) : 0;
            }
            if (rs == PGRES_TUPLES_OK && !st->rows) {
                st->rows = r; /* kept for the caller */
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
    sink_io_t *io = h->data;
    if (status < 0) {
        lost(io, "postgres socket error");
        return;
    }
    if (io->mode == IO_CONNECTING) {
        on_connect_io(io);
        return;
    }
    if (events & UV_WRITABLE) {
        if (io->copying) {
            if (copy_push(io) != 0)
                return;
        } else {
            int f = PQflush(io->conn);
            if (f < 0) {
                lost_pq(io, "postgres flush");
                return;
            }
            if (watch(io, UV_READABLE | (f ? UV_WRITABLE : 0)) != 0)
                return;
        }
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(io->conn)) {
            lost_pq(io, "postgres connection lost");
            return;
        }
    }
    if (io->mode == IO_BUSY)
        collect(io);
    else if (PQstatus(io->conn) == CONNECTION_BAD)
        lost_pq(io, "postgres connection lost");
}
