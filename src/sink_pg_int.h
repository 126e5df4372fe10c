/*
 * sink_pg_int.h — the sink's state: the operations queue, the TXN at the
 * head, the connection. Read by sink_pg.c alone (kept apart so that file
 * reads in one sitting); the socket and the statement in flight are
 * sink_io's (sink_io.h), embedded here as `io`. Loop thread only.
 *
 * Ownership: the sink owns the connection and the ops; an op owns its
 * batch (until its callback), its `expected` (the fence, taken over from
 * sink_pg_submit's caller) and its partitions;
 * `txn` is the TXN at the head across its statements (set when its WRITE
 * is sent).
 */
#ifndef CAMJOIN_SINK_PG_INT_H
#define CAMJOIN_SINK_PG_INT_H

#include <libpq-fe.h>
#include <stdint.h>
#include <uv.h>

#include "camjoin/sink_pg.h"
#include "camjoin/strbuf.h"
#include "sink_io.h"
#include "sink_sql.h"
#include "sink_txn.h"

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

/* The TXN at the head, across its statements; set when its WRITE is sent. */
struct txn {
    sink_write_plan plan;      /* of the WRITE (also its COPY data) */
    uint64_t start_ns;
    size_t inserted, dead;     /* what the WRITE inserted, reported at COMMIT */
};

struct sink_pg {
    uv_loop_t *loop;
    const camjoin_config *cfg;
    sink_pg_news_cb on_news;
    void *ud;

    PGconn *conn;
    sink_state state;
    sink_io_t io;        /* the socket and the statement in flight (sink_io.c) */
    uv_timer_t retry;    /* DOWN, BACKOFF: the backoff; CONNECTING, SETUP: the timeout */
    int64_t backoff_ms;

    /* escaped once, at open: literals, identifiers */
    char *group_lit, *topic_lit, *table_id, *index_id;
    struct op *head, *tail;
    size_t ntxn;

    struct txn txn;
    size_t warm_rows;    /* WARM: lines delivered so far */
    int staging;         /* batches go staged until one meets no conflict */
    uint64_t restaged;

    strbuf_t sql;
};

/* sink_open.c, for sink_pg_attach(): the connection, and the escaped names
 * into the pointers given (the caller's from here); c is freed. */
PGconn *sink_pg_conn_take(sink_pg_conn_t *c, char **group_lit, char **topic_lit,
                          char **table_id, char **index_id);

#endif
