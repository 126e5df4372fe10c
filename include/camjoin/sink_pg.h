/*
 * sink_pg — writes batches to PostgreSQL, one transaction each, without ever
 * blocking the loop.
 *
 * One libpq connection in nonblocking mode, watched by a uv_poll_t over
 * PQsocket() (re-created whenever the socket changes: every reconnect).
 * Work is a FIFO of operations, executed one at a time:
 *
 *   TXN(batch)   BEGIN; COPY the rows and the dead letters straight into
 *                their tables; advance camjoin_offsets fenced by
 *                `next_offset = expected` (INSERT … ON CONFLICT DO NOTHING
 *                for a partition that has no row yet); COMMIT if every
 *                fence held, ROLLBACK otherwise (result SINK_FENCED).
 *                If a COPY meets a row that exists already (unique
 *                violation: a replay, a duplicate older than the dedup
 *                window), the transaction rolls back and the same batch is
 *                redone at once through temp staging tables and INSERT …
 *                SELECT … ON CONFLICT DO NOTHING; later batches stay staged
 *                until one inserts every row it carries. With
 *                postgres.write_mode=staged every batch is staged.
 *   OFFSETS      SELECT the stored offsets of this group and topic.
 *   WARM         COPY (SELECT the window's event_ids of some partitions)
 *                TO STDOUT, streamed row by row to the owner.
 *
 * Failure handling. A lost connection or a failed statement never loses a
 * batch: the operation stays at the head of the queue and is retried after
 * a reconnect with exponential backoff (100 ms doubling to
 * postgres.retry_max). If the connection was lost with a transaction under
 * way, its outcome may be unknown (lost during COMMIT). The retry therefore
 * first reads the stored offsets of the batch's partitions: all equal to the
 * batch's `next` → it committed (SINK_OK, nothing re-sent); all equal to
 * `expected` → it did not, run it again; anything else → SINK_FENCED.
 *
 * The states of the connection and of the statement in flight, and every
 * transition between them: src/sink_txn.h.
 *
 * Startup is the one blocking part, in two halves: sink_pg_connect()
 * (blocking, any thread: the pipeline runs it on the thread pool after a
 * first try) connects and creates whatever part of the schema is missing,
 * idempotently, under an advisory lock (several instances may start
 * together); sink_pg_attach() (loop thread) hands the connection to the
 * sink, which then runs nonblocking. When everything exists no DDL runs at
 * all, so a role without CREATE privilege works. Connection defaults,
 * escaping, the conninfo check and which failures are retried:
 * camjoin/pg_conn.h.
 *
 * Requests: each carries its own callback and user data, called once on
 * the loop thread when it is done (never from inside the request call).
 * The only callback given to sink_pg_new() is on_news: what happened to the
 * connection and to the transactions, for the owner to log and count; the
 * sink itself logs nothing. Errors: a request that cannot be queued (out of memory)
 * returns -1; nothing was queued, the caller keeps what it passed and its
 * callbacks are never called. Out of memory later, while a statement is
 * built or a result is read, counts as a failed attempt: the connection is
 * dropped and the operation retried after the backoff, like any failure.
 *
 * Ownership: sink_pg_submit() takes the batch and its `expected` array (on
 * success); the batch comes back in the request's done callback, whatever
 * the result, and the sink frees the array. The partitions of
 * sink_pg_warm() are copied. Offsets arrays passed to an
 * offsets callback live during the callback only.
 *
 * Threads: the loop thread only.
 */
#ifndef CAMJOIN_SINK_PG_H
#define CAMJOIN_SINK_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "camjoin/base.h"
#include "camjoin/batch.h"
#include "camjoin/config.h"

typedef struct sink_pg sink_pg_t;

enum sink_result { SINK_OK = 0, SINK_FENCED = 1 };

/* TXN done: the batch comes back; `inserted` = event rows actually
 * inserted (the rest hit ON CONFLICT). */
typedef void (*sink_pg_txn_cb)(void *ud, batch_t *b, enum sink_result r,
                               size_t inserted, double commit_ms);
/* OFFSETS done: the stored next offsets for this group/topic (absent
 * partitions omitted). */
typedef void (*sink_pg_offsets_cb)(void *ud, const int32_t *partitions,
                                   const int64_t *next, size_t n);
/* WARM: one event of the window (id not NUL-terminated) … */
typedef void (*sink_pg_row_cb)(void *ud, const char *event_id, size_t len,
                               int32_t partition, int64_t offset);
/* … and the end of the warm-up, with the number of rows. */
typedef void (*sink_pg_warm_done_cb)(void *ud, size_t rows);
/* What the sink reports besides the requests' answers. */
enum sink_news_kind {
    SINK_NEWS_UP,            /* connected, the session is ready */
    SINK_NEWS_DOWN,          /* lost or refused; retried. detail: why */
    SINK_NEWS_RETRY_FAILED,  /* another reconnect failed. n: the next delay, ms */
    SINK_NEWS_COMMITTED,     /* a commit's unknown outcome checked: it had
                                committed. n: the batch's messages */
    SINK_NEWS_NOT_COMMITTED, /* … it had not: the batch is redone. n: same */
    SINK_NEWS_STAGING,       /* a batch met existing rows: batches go through
                                staging until one meets none. detail: the error */
    SINK_NEWS_FAILED,        /* a statement failed; handled by the state
                                machine. step: its state; detail: the error */
};
typedef struct sink_pg_news {
    enum sink_news_kind kind;
    const char *step, *detail; /* valid during the call; NULL when not said */
    uint64_t n;
} sink_pg_news;
typedef void (*sink_pg_news_cb)(void *ud, const sink_pg_news *news);

/* cfg is kept (it must outlive the sink). NULL when out of memory. */
sink_pg_t *sink_pg_new(uv_loop_t *loop, const camjoin_config *cfg,
                       sink_pg_news_cb on_news, void *ud);

/* A connection made by sink_pg_connect(), not yet the sink's. */
typedef struct sink_pg_conn sink_pg_conn_t;
enum sink_open_result {
    SINK_OPEN_OK,    /* *out is set */
    SINK_OPEN_RETRY, /* unreachable, starting, shutting down, full: try again */
    SINK_OPEN_FATAL, /* credentials, TLS, no such database, privileges, a bad
                        postgres.table, out of memory: retrying cannot help */
};
/* Blocking, any thread (reads cfg only): connect, create the schema, prepare
 * the session. Anything but SINK_OPEN_OK leaves one line in err. */
CJ_MUSTCHECK enum sink_open_result sink_pg_connect(const camjoin_config *cfg,
                                                   sink_pg_conn_t **out, char *err,
                                                   size_t errlen);
/* Loop thread, the sink DOWN and never attached: c becomes the sink's (it is
 * freed whatever the result). 0, or -1 with err set (try again later). */
CJ_MUSTCHECK int sink_pg_attach(sink_pg_t *s, sink_pg_conn_t *c, char *err, size_t errlen);
void sink_pg_conn_free(sink_pg_conn_t *c);
/* For a blocking user of the connection (--redrive-dead-letters): the libpq
 * connection and the escaped topic literal and table identifier, all still
 * c's (freed by sink_pg_conn_free). */
PGconn *sink_pg_conn_pq(const sink_pg_conn_t *c);
const char *sink_pg_conn_topic_lit(const sink_pg_conn_t *c);
const char *sink_pg_conn_table_id(const sink_pg_conn_t *c);


/* Queues a transaction for the batch. expected (malloc'd) has one entry per
 * batch_offsets(b): the offset camjoin_offsets must hold now for that
 * partition (BATCH_OFFSET_NONE: no row yet), the fence. Returns 0: the batch
 * and expected pass to the sink; or -1 (out of memory: nothing queued, both
 * stay yours). */
CJ_MUSTCHECK int sink_pg_submit(sink_pg_t *s, batch_t *b, int64_t *expected,
                                sink_pg_txn_cb done, void *ud);
/* Queues a read of the stored offsets. Returns 0, or -1 (out of memory). */
CJ_MUSTCHECK int sink_pg_read_offsets(sink_pg_t *s, sink_pg_offsets_cb done, void *ud);
/* Queues the dedup warm-up: streams (COPY TO STDOUT) the event_ids of these
 * partitions ingested within dedup.window to `row`, then calls `done`.
 * Retried after a reconnect like any operation, so rows may arrive twice;
 * dedup_check() makes that harmless. Returns 0, or -1 (out of memory). */
CJ_MUSTCHECK int sink_pg_warm(sink_pg_t *s, const int32_t *partitions, size_t n,
                 sink_pg_row_cb row, sink_pg_warm_done_cb done, void *ud);

/* Transactions queued or running. */
size_t sink_pg_pending(const sink_pg_t *s);
int sink_pg_up(const sink_pg_t *s);
/* Batches redone through staging after a unique violation. */
uint64_t sink_pg_restaged(const sink_pg_t *s);

/* Closes the connection (an unfinished transaction rolls back on the
 * server, and its rows are read again from Kafka on the next start) and the
 * handles; batches still queued are freed, and no callback is called
 * again. Run the loop once more afterwards
 * so the handles finish closing. */
void sink_pg_free(sink_pg_t *s);

/* The schema the daemon creates, for config/schema.sql and tests. `table` is
 * the events table name and `index` the name of its ingested_at index
 * (`<table>_ingested_at_idx`), both already quoted as identifiers. Returns a
 * malloc'd string. */
char *sink_pg_schema_sql(const char *table, const char *index);

#endif
