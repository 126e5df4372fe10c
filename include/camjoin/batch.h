/*
 * batch — the rows of one PostgreSQL transaction, already COPY-encoded.
 *
 * A batch holds three things:
 *   - event rows, as PostgreSQL COPY text format (tab-separated, `\N` for
 *     NULL, backslash escapes), in the column order BATCH_EVENT_COLUMNS;
 *   - dead letters, as COPY text in the order BATCH_DEAD_COLUMNS, with the
 *     payload as bytea hex (`\\x…`);
 *   - for each Kafka partition it touched, the offset to store next
 *     (last offset noted + 1) and the offset the store is expected to hold
 *     now (the fence, filled in by the pipeline when the batch is sealed).
 *
 * Every consumed message is noted exactly once through one of
 * batch_add_event(), batch_add_dead() or batch_note_offset() (the latter for
 * duplicates and dropped misses, which add no row), so a committed batch
 * accounts for every offset it covers.
 *
 * Rows are encoded when added, so the batch keeps no pointer into the event,
 * the reference table or the Kafka message: they can be freed at once.
 * Text containing a NUL byte cannot be represented in PostgreSQL text; the
 * event parser already rejects it, and batch_add_event() returns -1 (adding
 * nothing) if one slips through.
 *
 * Cost: one append per field into a growable buffer that is reused across
 * batches (batch_reset keeps the memory).
 */
#ifndef CAMJOIN_BATCH_H
#define CAMJOIN_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "camjoin/event.h"
#include "camjoin/refdata.h"

#define BATCH_EVENT_COLUMNS                                                   \
    "event_id, event_ts, camera_id, event_type, confidence, object_count, "  \
    "attributes, site_id, site_name, zone, latitude, longitude, "            \
    "kafka_partition, kafka_offset"
#define BATCH_DEAD_COLUMNS "topic, kafka_partition, kafka_offset, payload, reason"

/* Expected offset when the store has no row for the partition yet. */
#define BATCH_OFFSET_NONE ((int64_t)-1)

typedef struct batch batch_t;

typedef struct batch_offset {
    int32_t partition;
    int64_t expected;   /* value camjoin_offsets holds now, or BATCH_OFFSET_NONE */
    int64_t next;       /* value to store: last noted offset + 1 */
} batch_offset_t;

/* `topic` is copied; it fills the topic column of dead letters. */
batch_t *batch_new(const char *topic);
void batch_free(batch_t *b);

/* Appends an event row joined with `ref` (NULL = no match: NULL reference
 * columns) and notes the offset. Returns 0, or -1 on NUL in text / ENOMEM. */
int batch_add_event(batch_t *b, const event_t *ev, const refdata_row_t *ref,
                    int32_t partition, int64_t offset);

/* Appends a dead letter (payload may be NULL = SQL NULL) and notes the offset. */
int batch_add_dead(batch_t *b, int32_t partition, int64_t offset,
                   const void *payload, size_t len, const char *reason);

/* Notes an offset that produced no row (a duplicate, a dropped miss). */
int batch_note_offset(batch_t *b, int32_t partition, int64_t offset);

size_t batch_rows(const batch_t *b);      /* event rows */
size_t batch_dead(const batch_t *b);      /* dead letters */
size_t batch_messages(const batch_t *b);  /* all noted messages */
const char *batch_event_data(const batch_t *b, size_t *len);
const char *batch_dead_data(const batch_t *b, size_t *len);

/* Per-partition offsets, in first-touched order; the array is owned by the
 * batch and may be modified (the pipeline sets `expected`). */
batch_offset_t *batch_offsets(batch_t *b, size_t *n);

/* Latency bookkeeping, kept beside the rows: for each written message, when
 * it was produced (its Kafka timestamp, ms since the epoch, -1 if none) and
 * its event time (ms, -1 for a dead letter). The pipeline reads them when
 * the batch commits. Returns 0, or -1 on ENOMEM (nothing is lost but the
 * sample). The array belongs to the batch and moves when a stamp is added. */
typedef struct batch_stamp {
    int64_t produced_ms, event_ms;
} batch_stamp_t;
int batch_add_stamp(batch_t *b, int64_t produced_ms, int64_t event_ms);
const batch_stamp_t *batch_stamps(const batch_t *b, size_t *n);

/* Empties the batch, keeping its buffers. */
void batch_reset(batch_t *b);

/* COPY text escaping of `len` bytes at `src` into `dst`, which needs 2 * len
 * bytes. Escapes backslash, tab, newline, carriage return (and the other
 * control characters with their backslash forms where COPY has them).
 * Returns the number of bytes written, or -1 if src holds a NUL byte. */
ssize_t batch_escape_text(char *dst, const char *src, size_t len);

#endif
