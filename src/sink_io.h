/*
 * sink_io — one libpq connection's socket on the loop: the nonblocking
 * connect, and one statement at a time in flight (sent whole, its COPY FROM
 * STDIN data pushed as the socket takes it, a COPY TO STDOUT drained line by
 * line, its results collected). Private to the sink; loop thread only. It
 * knows nothing of transactions: sink_pg.c decides, sink_io carries out.
 *
 * Ownership: the PGconn is the caller's (never freed here); the poll handle
 * and the statement's results are sink_io's. The COPY payloads given to
 * sink_io_send() must stay valid until the statement is done or lost.
 *
 * Events go up through the table given to sink_io_init(), on the loop
 * thread, possibly from inside sink_io_send() or sink_io_connect():
 *   connected  PQconnectPoll succeeded and the connection is nonblocking;
 *   done       every result of the statement is in `st`: the caller reads
 *              it and may take `st.rows` (setting it NULL);
 *   lost       a libpq or libuv failure, with a one-line reason; nothing
 *              more comes until the caller stops, then reconnects;
 *   line       one COPY TO STDOUT line, valid during the call.
 * The struct is embedded in its owner (as libuv's handles are); its fields
 * are sink_io.c's, except `st`, which the caller reads after `done`.
 */
#ifndef CAMJOIN_SINK_IO_H
#define CAMJOIN_SINK_IO_H

#include <libpq-fe.h>
#include <stdint.h>
#include <uv.h>

#include "camjoin/base.h"

#define SINK_IO_MAX_RESULTS 16

/* One statement's results; reset by each sink_io_send(). */
typedef struct sink_io_stmt {
    int nres, failed;
    int64_t tuples[SINK_IO_MAX_RESULTS]; /* PQcmdTuples of each result */
    char errmsg[512];                    /* of the first failed result, one line */
    char sqlstate[6];
    PGresult *rows;                      /* the first TUPLES_OK result */
} sink_io_stmt;

typedef struct sink_io_events {
    void (*connected)(void *ud);
    void (*done)(void *ud);
    void (*lost)(void *ud, const char *why);
    void (*line)(void *ud, const char *line, int len);
} sink_io_events;

typedef struct sink_io {
    uv_loop_t *loop;
    const sink_io_events *ev;
    void *ud;
    PGconn *conn;              /* the caller's */
    uv_poll_t *poll;           /* heap: re-created for every socket */
    int poll_fd;
    enum { IO_OFF, IO_CONNECTING, IO_IDLE, IO_BUSY } mode;
    const char *const *copy;   /* COPY FROM STDIN payloads of the statement */
    const size_t *copy_len;
    size_t ncopy, copy_idx, copy_off;
    int copying;               /* payload copy_idx is still being pushed */
    int copy_ended;            /* PQputCopyEnd sent for copy_idx */
    int copy_out;              /* a COPY TO STDOUT is streaming lines to us */
    sink_io_stmt st;
} sink_io_t;

void sink_io_init(sink_io_t *io, uv_loop_t *loop, const sink_io_events *ev,
                  void *ud);
/* Watches `conn`, just started with PQconnectStart, until it is connected
 * (connected) or fails (lost). Returns 0, or -1 when the socket cannot be
 * watched (nothing is, and no event comes). */
CJ_MUSTCHECK int sink_io_connect(sink_io_t *io, PGconn *conn);
/* Watches an open nonblocking `conn` with nothing in flight, to notice the
 * server going away (lost). Returns 0, or -1 as sink_io_connect(). */
CJ_MUSTCHECK int sink_io_watch_idle(sink_io_t *io, PGconn *conn);
/* Sends `sql` on the watched connection, then done or lost. The statement's
 * COPY FROM STDIN requests take copy[0..ncopy) in order; any other is
 * refused (a failed result). */
void sink_io_send(sink_io_t *io, const char *sql, const char *const *copy,
                  const size_t *copy_len, size_t ncopy);
/* Stops watching (the handle is freed once libuv is done with it) and
 * clears the results; the connection is left to its owner. */
void sink_io_stop(sink_io_t *io);

#endif
