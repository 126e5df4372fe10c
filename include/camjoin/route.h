/*
 * route — what one Kafka message becomes: a row, a dead letter (with its
 * reason), a duplicate, or a dropped join miss.
 *
 * The decision, in order: parse and validate the event (event.h reasons);
 * the timestamp policy (event.max_future, event.max_age); the dedup window
 * (the message's position makes a re-read of the same message new, not a
 * duplicate); the join with the reference table and the join.on_miss policy.
 *
 * Pure: no libuv, no logging, no I/O. It mutates the dedup set (a new key is
 * recorded) and nothing else. Loop thread only, like the dedup set.
 *
 * Ownership: a ROUTE_ROW result holds the parsed event (its strings point
 * into it) and a pointer into the reference table; the caller releases the
 * event with route_clear() once it has copied what it needs, and must not
 * swap the reference table in between.
 */
#ifndef CAMJOIN_ROUTE_H
#define CAMJOIN_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "camjoin/config.h"
#include "camjoin/dedup.h"
#include "camjoin/event.h"
#include "camjoin/refdata.h"

enum route_kind {
    ROUTE_ROW = 0,   /* write `ev` joined with `row` (NULL: a kept join miss) */
    ROUTE_DEAD,      /* a dead letter with `reason` */
    ROUTE_DUPLICATE, /* seen within the dedup window at another position */
    ROUTE_DROPPED,   /* a join miss under join.on_miss=drop */
};

typedef struct route_rules {
    size_t max_message_bytes;
    int64_t max_future_ms;      /* 0: no limit */
    int64_t max_age_ms;         /* 0: no limit */
    enum join_on_miss on_miss;
} route_rules;

typedef struct route_result {
    enum route_kind kind;
    int join_miss;              /* the camera is not in the reference table */
    int dedup_full;             /* the dedup set could not record a new key;
                                   the row is still written (the primary key
                                   catches a duplicate) */
    char reason[EVENT_REASON_MAX];
    event_t ev;                 /* ROUTE_ROW (zeroed otherwise) */
    const refdata_row_t *row;
} route_result;

/* now_wall_ms: the wall clock (timestamp policy); now_ms: the dedup clock.
 * dedup NULL: no window (a re-drive; the primary key catches duplicates). */
void route_message(const route_rules *rules, dedup_t *dedup, const refdata_t *ref,
                   const void *value, size_t len, int32_t partition,
                   int64_t offset, int64_t now_wall_ms, int64_t now_ms,
                   route_result *out);

/* Releases the event of a result. Safe on every result. */
void route_clear(route_result *r);

#endif
