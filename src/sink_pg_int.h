/*
 * sink_pg_int.h — what sink_pg.c (the operations, the state machine's
 * driver, the API) and sink_io.c (the statement in flight on the socket)
 * share. Private to the sink; loop thread only.
 *
 * Ownership: the sink owns the connection, the poll handle and the ops; an
 * op owns its batch (until its callback), its copy of `expected` and its
 * partitions; `st` is the statement in flight (sink_io_send() resets it),
 * `txn` the TXN at the head across its statements (set when its WRITE is
 * sent).
 */
#ifndef CAMJOIN_SINK_PG_INT_H
#define CAMJOIN_SINK_PG_INT_H

#include <libpq-fe.h>
#include <stdint.h>
#include <uv.h>

#include "camjoin/sink_pg.h"
#include "camjoin/strbuf.h"
#include "sink_sql.h"
#include "sink_txn.h"

#define MAX_RESULTS 16

struct op {
    sink_op kind;
    batch_t *batch;      /* TXN; owned until its callback */
    int64_t *expected;   /* TXN: the fence, parallel to batch_offsets(); owned */
    int verify;          /* TXN: a previous attempt's outcome is unknown */
    int staged;          /* TXN: met existing rows: write it through staging */
    int32_t *partitions; /* WARM; owned */
    size_t npartitions;
    sink_pg_txn_cb on_txn;
    sink_pg_offsets_cb on_offsets;
    sink_pg_row_cb on_row;
    sink_pg_warm_done_cb on_warm;
    void *ud;
    struct op *next;
};

/* The statement in flight; send_stmt() resets it. */
struct stmt {
    size_t copy_idx, copy_off; /* COPY FROM STDIN: which payload, bytes sent */
    int copying;               /* its data is still being pushed */
    int copy_ended;            /* PQputCopyEnd sent for copy_idx */
    int copy_out;              /* a COPY TO STDOUT is streaming rows to us */
    size_t warm_rows;
    int nres, failed;
    int64_t tuples[MAX_RESULTS];
    char errmsg[512];
    char sqlstate[6];          /* of the first failed result */
    PGresult *rows;            /* the first TUPLES_OK result */
};

/* The TXN at the head, across its statements; set when its WRITE is sent. */
struct txn {
    sink_write_plan plan;      /* of the WRITE (also its COPY data) */
    uint64_t start_ns;
    size_t inserted, dead;     /* what the WRITE inserted, reported at COMMIT */
};

struct sink_pg {
    uv_loop_t *loop;
    const camjoin_config *cfg;
    sink_pg_state_cb on_state;
    void *ud;

    PGconn *conn;
    sink_state state;
    uv_poll_t *poll;     /* heap: re-created for every socket */
    int poll_fd;
    uv_timer_t retry;    /* DOWN, BACKOFF: the backoff; CONNECTING, SETUP: the timeout */
    int64_t backoff_ms;

    /* escaped once, at open: literals, identifiers */
    char *group_lit, *topic_lit, *table_id, *index_id;
    struct op *head, *tail;
    size_t ntxn;

    struct stmt st;
    struct txn txn;
    int staging;         /* batches go staged until one meets no conflict */
    uint64_t restaged;

    strbuf_t sql;
};

/* ---- sink_pg.c ---- */

/* Every state change: asserts that the sink is in `from` and that from → to
 * is legal (sink_txn_legal). */
void sink_pg_set_state(sink_pg_t *s, sink_state from, sink_state to);
/* sink_txn_next() for the current state and the operation at the head. */
sink_txn_step sink_pg_decide(const sink_pg_t *s, sink_txn_input *in);
/* The connection is lost or cannot be used: LOST, then DOWN. `why` (or
 * what: PQerrorMessage's first line) is what the owner hears. */
void sink_pg_lost(sink_pg_t *s, const char *why);
void sink_pg_lost_pq(sink_pg_t *s, const char *what);
/* The statement in flight has every result collected: decide what next. */
void sink_pg_step_done(sink_pg_t *s);

/* ---- sink_io.c ---- */

/* Watches the connection's socket for `events`, re-creating the handle if
 * the socket changed. Returns 0, or -1 (nothing watched). */
int sink_io_watch(sink_pg_t *s, int events);
/* Stops watching and closes the handle (freed when libuv is done). */
void sink_io_drop(sink_pg_t *s);
/* Enters statement state `to` from `from`: resets `st`, sends sql. A
 * failure to send is a lost connection (handled). */
void sink_io_send(sink_pg_t *s, sink_state from, sink_state to, const char *sql);

#endif
