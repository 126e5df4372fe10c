/*
 * batchq — the batches between Kafka and the sink: the open one (filling),
 * the sealed ones (a FIFO waiting for the connection), one spare for reuse,
 * and the count of messages read but not yet committed.
 *
 * A batch taken with batchq_next() belongs to the caller (it hands it to the
 * sink) until it comes back through batchq_done(), which recycles it. Every
 * batch ever sealed is numbered; batchq_done() and batchq_drop() advance the
 * count of finished ones, so "everything sealed before now is finished" can
 * be asked later (batchq_sealed_count / batchq_done_count).
 *
 * Pure bookkeeping: no libuv, no I/O, no logging. Loop thread only. Functions
 * returning a batch give NULL when memory ran out; int ones give 0 or -1.
 */
#ifndef CAMJOIN_BATCHQ_H
#define CAMJOIN_BATCHQ_H

#include <stddef.h>
#include <stdint.h>

#include "camjoin/base.h"
#include "camjoin/batch.h"

typedef struct batchq batchq_t;

batchq_t *batchq_new(const char *topic);
void batchq_free(batchq_t *q); /* frees every batch it holds */

/* The open batch, created (at time `now`) when there is none. */
batch_t *batchq_open(batchq_t *q, int64_t now);
/* The open batch, NULL when none; and when it got its first message. */
batch_t *batchq_current(const batchq_t *q);
int64_t batchq_open_since(const batchq_t *q);

/* One more message read (it is in the open batch): counted until committed. */
void batchq_note(batchq_t *q);
size_t batchq_buffered(const batchq_t *q);

/* The open batch, if it holds messages, joins the sealed FIFO. */
CJ_MUSTCHECK int batchq_seal(batchq_t *q);
size_t batchq_sealed(const batchq_t *q);
/* Pops the oldest sealed batch (the caller owns it), NULL when none. */
batch_t *batchq_next(batchq_t *q);
/* A batch back from the sink, committed or rolled back: its messages leave
 * the buffered count; the batch is recycled. */
void batchq_done(batchq_t *q, batch_t *b);
/* Drops the open and the sealed batches (their messages are read again);
 * returns how many messages they held. */
size_t batchq_drop(batchq_t *q);

uint64_t batchq_sealed_count(const batchq_t *q);
uint64_t batchq_done_count(const batchq_t *q);

#endif
