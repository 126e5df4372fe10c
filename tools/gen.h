/*
 * gen.h — what camjoin-gen's two halves share: gen.c (options, the
 * deterministic message stream, the manifest and the summary) and
 * gen_kafka.c (the producer, the production loop and its transactions).
 * Internal to the tool; see the comment blocks at the top of both files.
 */
#ifndef CAMJOIN_TOOLS_GEN_H
#define CAMJOIN_TOOLS_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "camjoin/event.h"
#include "camjoin/refdata.h"

/* Longest value: id (PREFIX_MAX + 42) + camera (EVENT_CAMERA_MAX) + ts (31)
 * + type + optional fields, with keys: under 420 bytes. */
#define VALUE_MAX 512
#define N_MALFORMED 10 /* entries in gen.c's malformed cycle */

struct opts {
    const char *brokers, *topic, *cameras, *id_prefix, *manifest;
    const char *txn_id; /* --transactional-id; NULL: not transactional */
    uint64_t total, seed;
    uint64_t txn_messages, abort_every; /* abort_every 0: never */
    double rate; /* 0 = as fast as possible */
    double dup_ratio, unknown_ratio, malformed_ratio;
    int ts_text; /* --ts-text: every event_ts a string (no epoch-ms numbers) */
    const char **xprops; /* -X values, in order; owned (array only) */
    int nx;
};

struct msg {
    char key[EVENT_ID_MAX + 1];
    char camera[EVENT_CAMERA_MAX + 1];
    char value[VALUE_MAX];
    size_t len;
};

/* Everything an aborted transaction takes back. */
struct counts {
    uint64_t sent, valid_new, duplicates, malformed, unknown;
    uint64_t by_reason[N_MALFORMED];
    size_t ring_len, ring_next;
};

struct row; /* gen.c: a manifest row held until its transaction ends */

struct gen {
    const struct opts *o;
    const refdata_t *ref;
    FILE *manifest; /* or NULL */
    uint64_t prng;
    struct msg *ring; /* last RING_SIZE valid (committed) events */
    struct msg scratch; /* the current malformed message */
    struct counts c;
    uint64_t seq; /* messages produced, aborted ones included */
    uint64_t next_id, next_bad; /* key counters: never taken back, never reused */
    /* transactional mode only (undo == NULL otherwise) */
    struct counts saved; /* c when the open transaction began */
    struct msg *undo; /* ring slots the open transaction overwrote, in order */
    struct row *rows; /* the open transaction's manifest rows, if manifest */
    size_t rows_cap;
    uint64_t txn_seq0; /* seq when the open transaction began */
    uint64_t aborted, txns_committed, txns_aborted;
};

enum txn_outcome { TXN_COMMITTED, TXN_ABORTED, TXN_UNKNOWN /* after a fatal error */ };

/* gen.c */
struct msg *gen_next(struct gen *g);
void gen_txn_begin(struct gen *g);
void gen_txn_end(struct gen *g, enum txn_outcome how);

/* gen_kafka.c */
rd_kafka_t *gen_producer_new(const struct opts *o, char *err, size_t errsize, const char **flag);
int gen_run(struct gen *g, rd_kafka_t *rk, rd_kafka_topic_t *rkt, double *elapsed);

#endif
