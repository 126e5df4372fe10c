/*
 * batch — the rows of one PostgreSQL transaction, already COPY-encoded in
 * PostgreSQL's *binary* COPY format (`COPY ... FROM STDIN (FORMAT binary)`).
 *
 * A batch holds four things:
 *   - event rows, in the column order BATCH_EVENT_COLUMNS;
 *   - their per-minute aggregates (include/camjoin/rollup.h), encoded in
 *     ROLLUP_COLUMNS order when batch_rollup_data() is called;
 *   - dead letters, in the column order BATCH_DEAD_COLUMNS;
 *   - for each Kafka partition it touched, the offset to store next
 *     (last offset noted + 1). The offset the store must hold now (the
 *     fence) is not the batch's: the pipeline passes it to sink_pg_submit().
 *
 * Format of each stream: the 19-byte header (signature "PGCOPY\n\377\r\n\0",
 * int32 flags 0, int32 header-extension length 0), written by batch_new()
 * and batch_reset(), then one tuple per row: int16 field count, and per field
 * an int32 length (-1 = NULL) followed by that many bytes. All integers are
 * big-endian. No trailer (int16 -1) is written: the server takes the
 * protocol-level end of COPY data after a tuple as the end, so
 * batch_event_data()/batch_dead_data() always return a complete stream.
 * A stream with no rows (header only) is valid but is never sent: the sink
 * checks batch_rows()/batch_dead() first.
 * Field encodings (each type's binary "send" form):
 *   text         the raw UTF-8 bytes (no escaping; NUL is not allowed)
 *   timestamptz  int64 microseconds since 2000-01-01 00:00:00 UTC
 *                (event_ts_us - 946684800000000)
 *   real         IEEE 754 float32 bits of (float)confidence
 *   double       IEEE 754 float64 bits
 *   integer      int32;  bigint  int64
 *   jsonb        version byte 1, then the JSON text
 *   bytea        the raw bytes
 * NULL columns: confidence, object_count, attributes when absent; site_id,
 * site_name, zone, latitude, longitude when there is no reference row;
 * latitude/longitude when the row lacks them; a NULL payload.
 *
 * Every consumed message is noted exactly once through one of
 * batch_add_event(), batch_add_dead() or batch_note_offset() (the latter for
 * duplicates and dropped misses, which add no row), so a committed batch
 * accounts for every offset it covers.
 *
 * Ownership: rows are encoded when added, so the batch keeps no pointer into
 * the event, the reference table or the Kafka message: they can be freed at
 * once. The data returned by the accessors belongs to the batch and is valid
 * until the next add, reset or free.
 * Text containing a NUL byte cannot be represented in PostgreSQL text; the
 * event parser already rejects it, and batch_add_event() returns -1 (adding
 * nothing) if one slips through. A field longer than INT32_MAX bytes is
 * refused the same way.
 */
#ifndef CAMJOIN_BATCH_H
#define CAMJOIN_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "camjoin/base.h"
#include "camjoin/event.h"
#include "camjoin/refdata.h"
#include "camjoin/rollup.h"

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
    int64_t next;       /* value to store: last noted offset + 1 */
    int64_t last_ts_ms; /* the latest Kafka timestamp noted for the partition
                           (batch_note_time); -1: none */
} batch_offset_t;

/* `topic` is copied; it fills the topic column of dead letters. Both streams
 * start out holding just the binary COPY header. */
batch_t *batch_new(const char *topic);
void batch_free(batch_t *b);

/* Appends an event row joined with `ref` (NULL = no match: NULL reference
 * columns) and notes the offset. Returns 0, or -1 on NUL in text, a field
 * over INT32_MAX bytes, or ENOMEM; on -1 the batch is unchanged. */
CJ_MUSTCHECK int batch_add_event(batch_t *b, const event_t *ev, const refdata_row_t *ref,
                    int32_t partition, int64_t offset);

/* Appends a dead letter (payload may be NULL = SQL NULL) and notes the
 * offset. Returns 0, or -1 (batch unchanged) on a payload or reason over
 * INT32_MAX bytes or ENOMEM. */
CJ_MUSTCHECK int batch_add_dead(batch_t *b, int32_t partition, int64_t offset,
                   const void *payload, size_t len, const char *reason);

/* Notes an offset that produced no row (a duplicate, a dropped miss). */
CJ_MUSTCHECK int batch_note_offset(batch_t *b, int32_t partition, int64_t offset);

/* Notes the Kafka timestamp of a message of `partition` already added or
 * noted in this batch (for the consumer's lag in seconds); the latest one
 * is kept. A partition not in the batch is ignored. */
void batch_note_time(batch_t *b, int32_t partition, int64_t ts_ms);

/* Records offsets [from, to) of a partition as lost before they were read
 * (retention): one dead letter at kafka_offset `from` with reason
 * "offset_gap" and the payload {"from_offset":F,"to_offset":T,"offsets":N},
 * and the partition's next offset becomes `to`. Counts as one message.
 * Returns 0, or -1 (batch unchanged) when from >= to or on ENOMEM. */
CJ_MUSTCHECK int batch_add_gap(batch_t *b, int32_t partition, int64_t from, int64_t to);

size_t batch_rows(const batch_t *b);      /* event rows */
size_t batch_dead(const batch_t *b);      /* dead letters */
size_t batch_messages(const batch_t *b);  /* all noted messages */
/* The complete binary COPY streams (header + rows, no trailer). */
const char *batch_event_data(const batch_t *b, size_t *len);
const char *batch_dead_data(const batch_t *b, size_t *len);

/* The event rows' rollup groups as a binary COPY stream (ROLLUP_COLUMNS),
 * or NULL on ENOMEM. */
const char *batch_rollup_data(batch_t *b, size_t *len);

/* Per-partition offsets, in first-touched order; the array is owned by the
 * batch. */
batch_offset_t *batch_offsets(batch_t *b, size_t *n);

/* Latency bookkeeping, kept beside the rows: for each written message, when
 * it was produced (its Kafka timestamp, ms since the epoch, -1 if none) and
 * its event time (ms, -1 for a dead letter). The pipeline reads them when
 * the batch commits. Returns 0, or -1 on ENOMEM (nothing is lost but the
 * sample). The array belongs to the batch and moves when a stamp is added. */
typedef struct batch_stamp {
    int64_t produced_ms, event_ms;
} batch_stamp_t;
CJ_MUSTCHECK int batch_add_stamp(batch_t *b, int64_t produced_ms, int64_t event_ms);
const batch_stamp_t *batch_stamps(const batch_t *b, size_t *n);

/* Empties the batch, keeping its buffers; both streams are back to just the
 * binary COPY header. */
void batch_reset(batch_t *b);

#endif
