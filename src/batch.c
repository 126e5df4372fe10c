/*
 * batch — binary-COPY-encoded rows and per-partition offsets of one
 * transaction (see include/camjoin/batch.h for the format).
 *
 * Both COPY streams (event rows, dead letters) are strbufs used as byte
 * buffers: BUF_INITIAL bytes from batch_new(), doubled on demand and kept
 * across batch_reset(), each starting with the 19-byte binary COPY header.
 * Adding a row first checks every variable-length field (NUL in text,
 * length representable as int32) and sums the row's exact size, reserves
 * that once, then writes the fields at data + len with fixed-width
 * big-endian stores and memcpy — no printf, no per-field growth.
 * The buffer's length is advanced only after the offset has been noted too,
 * so a failed add leaves no trace (the bytes written past the end are just
 * spare capacity, and a failed reserve's sticky oom is cleared: the stream
 * is whole, only that row is refused).
 */
#include "camjoin/batch.h"

#include <endian.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/rollup.h"
#include "camjoin/strbuf.h"
#include "copy_bin.h"

#define BUF_INITIAL 4096
#define OFFSETS_INITIAL 8

/* Largest field a binary COPY length word (int32) can announce. */
#define FIELD_MAX ((size_t)INT32_MAX)

#define EVENT_FIELDS 14
#define DEAD_FIELDS 5

struct batch {
    char *dead_prefix; /* field count (5) + the topic field, ready to copy */
    size_t dead_prefix_len;
    strbuf_t events, dead;
    strbuf_t stamps; /* batch_stamp_t[], for latency at commit */
    rollup_t *rollup; /* the event rows' per-minute aggregates */
    size_t rows, dead_rows, messages;
    batch_offset_t *offsets;
    size_t n_offsets, cap_offsets;
    size_t last; /* index of the partition touched last: the usual next hit */
};

/* ---- streams ----------------------------------------------------------- */

/* Room for one row (or stamp). When there is none, only that one is
 * refused: nothing of it was written, so oom is cleared again. */
static int buf_reserve(strbuf_t *o, size_t extra)
{
    if (strbuf_reserve(o, extra) == 0)
        return 0;
    o->oom = 0;
    return -1;
}

/* Empties a stream down to its header. The capacity is at least
 * BUF_INITIAL (batch_new reserved it), so this cannot fail. */
static void buf_start_copy(strbuf_t *o)
{
    memcpy(o->data, copy_bin_header, sizeof copy_bin_header);
    o->len = sizeof copy_bin_header;
}

/* ---- row sizing: false if the field cannot be sent ---------------------- */

/* Adds `extra` bytes to *size unless the sum would overflow. */
static bool size_add(size_t *size, size_t extra)
{
    if (extra > SIZE_MAX - *size)
        return false;
    *size += extra;
    return true;
}

/* The bytes of a text field (its length word is counted with the row's
 * fixed part). PostgreSQL text holds no NUL. */
static bool size_text(size_t *size, const char *s, size_t n)
{
    if (n > FIELD_MAX || (n && memchr(s, '\0', n)))
        return false;
    return size_add(size, n);
}

/* ---- rows -------------------------------------------------------------- */

/* Exact encoded size of an event row, or 0 if a field cannot be sent. */
static size_t event_row_size(const event_t *ev, const refdata_row_t *ref,
                             size_t attr_len)
{
    /* field count, one length word per field, then the fixed-width values:
     * event_ts, kafka_partition, kafka_offset */
    size_t size = 2 + 4 * EVENT_FIELDS + 8 + 4 + 8;
    size += ev->has_confidence ? 4 : 0;
    size += ev->has_object_count ? 4 : 0;
    if (!size_text(&size, ev->event_id, ev->event_id_len) ||
        !size_text(&size, ev->camera_id, ev->camera_id_len) ||
        !size_text(&size, ev->event_type, ev->event_type_len))
        return 0;
    /* attributes is a C string: no NUL; jsonb adds the version byte */
    if (ev->attributes && (attr_len >= FIELD_MAX || !size_add(&size, 1 + attr_len)))
        return 0;
    if (ref) {
        if (!size_text(&size, ref->site_id, ref->site_id_len) ||
            !size_text(&size, ref->site_name, ref->site_name_len) ||
            !size_text(&size, ref->zone, ref->zone_len))
            return 0;
        size += ref->has_latitude ? 8 : 0;
        size += ref->has_longitude ? 8 : 0;
    }
    return size;
}

static char *put_event_row(char *w, const event_t *ev, const refdata_row_t *ref,
                           size_t attr_len, int32_t partition, int64_t offset)
{
    w = put_u16(w, EVENT_FIELDS);
    w = put_bytes(w, ev->event_id, ev->event_id_len);
    w = put_timestamptz(w, ev->event_ts_us);
    w = put_bytes(w, ev->camera_id, ev->camera_id_len);
    w = put_bytes(w, ev->event_type, ev->event_type_len);
    w = ev->has_confidence ? put_float4(w, (float)ev->confidence) : put_null(w);
    w = ev->has_object_count ? put_int4(w, ev->object_count) : put_null(w);
    w = ev->attributes ? put_jsonb(w, ev->attributes, attr_len) : put_null(w);
    if (ref) {
        w = put_bytes(w, ref->site_id, ref->site_id_len);
        w = put_bytes(w, ref->site_name, ref->site_name_len);
        w = put_bytes(w, ref->zone, ref->zone_len);
        w = ref->has_latitude ? put_float8(w, ref->latitude) : put_null(w);
        w = ref->has_longitude ? put_float8(w, ref->longitude) : put_null(w);
    } else {
        for (int i = 0; i < 5; i++)
            w = put_null(w);
    }
    w = put_int4(w, partition);
    return put_int8(w, offset);
}

/* ---- offsets ----------------------------------------------------------- */

static batch_offset_t *find_offset(batch_t *b, int32_t partition)
{
    if (b->last < b->n_offsets && b->offsets[b->last].partition == partition)
        return &b->offsets[b->last];
    for (size_t i = 0; i < b->n_offsets; i++) {
        if (b->offsets[i].partition == partition) {
            b->last = i;
            return &b->offsets[i];
        }
    }
    return NULL;
}

static int note_offset(batch_t *b, int32_t partition, int64_t offset)
{
    batch_offset_t *o = find_offset(b, partition);
    if (!o) {
        if (b->n_offsets == b->cap_offsets) {
            size_t cap = b->cap_offsets ? 2 * b->cap_offsets : OFFSETS_INITIAL;
            batch_offset_t *p = realloc(b->offsets, cap * sizeof *p);
            if (!p)
                return -1;
            b->offsets = p;
            b->cap_offsets = cap;
        }
        b->last = b->n_offsets++;
        o = &b->offsets[b->last];
        *o = (batch_offset_t){partition, offset + 1, -1};
    }
    if (offset + 1 > o->next)
        o->next = offset + 1;
    b->messages++;
    return 0;
}

/* ---- public ------------------------------------------------------------ */

batch_t *batch_new(const char *topic)
{
    batch_t *b = calloc(1, sizeof *b);
    if (!b)
        goto fail_batch;
    size_t n = strlen(topic);
    if (n > FIELD_MAX)
        goto fail_topic;
    b->dead_prefix_len = 2 + 4 + n;
    if (!(b->dead_prefix = malloc(b->dead_prefix_len)))
        goto fail_topic;
    put_bytes(put_u16(b->dead_prefix, DEAD_FIELDS), topic, n);
    /* stamps too (one a message): strbuf alone would start them at 256 */
    if (buf_reserve(&b->events, BUF_INITIAL) < 0 || buf_reserve(&b->dead, BUF_INITIAL) < 0 ||
        buf_reserve(&b->stamps, BUF_INITIAL) < 0 || !(b->rollup = rollup_new()))
        goto fail_bufs;
    buf_start_copy(&b->events);
    buf_start_copy(&b->dead);
    return b;

fail_bufs:
    rollup_free(b->rollup);
    strbuf_free(&b->stamps);
    strbuf_free(&b->dead);
    strbuf_free(&b->events);
    free(b->dead_prefix);
fail_topic:
    free(b);
fail_batch:
    return NULL;
}

void batch_free(batch_t *b)
{
    if (!b)
        return;
    free(b->offsets);
    rollup_free(b->rollup);
    strbuf_free(&b->stamps);
    strbuf_free(&b->dead);
    strbuf_free(&b->events);
    free(b->dead_prefix);
    free(b);
}

int batch_add_event(batch_t *b, const event_t *ev, const refdata_row_t *ref,
                    int32_t partition, int64_t offset)
{
    strbuf_t *o = &b->events;
    size_t attr_len = ev->attributes ? strlen(ev->attributes) : 0;
    size_t size = event_row_size(ev, ref, attr_len);
    if (size == 0 || buf_reserve(o, size) < 0)
        return -1;
    char *end = put_event_row(o->data + o->len, ev, ref, attr_len, partition, offset);
    if ((size_t)(end - (o->data + o->len)) != size)
        abort(); /* event_row_size and put_event_row disagree: a bug here */
    if (rollup_prepare(b->rollup, ev, ref) < 0 || note_offset(b, partition, offset) < 0)
        return -1;
    rollup_commit(b->rollup);
    o->len += size;
    b->rows++;
    return 0;
}

int batch_add_dead(batch_t *b, int32_t partition, int64_t offset,
                   const void *payload, size_t len, const char *reason)
{
    strbuf_t *o = &b->dead;
    size_t reason_len = strlen(reason);
    /* prefix (field count, topic), then the length words of the other four
     * fields and the values of kafka_partition and kafka_offset */
    size_t size = b->dead_prefix_len + 4 * 4 + 4 + 8;
    if ((payload && (len > FIELD_MAX || !size_add(&size, len))) ||
        !size_text(&size, reason, reason_len) || buf_reserve(o, size) < 0)
        return -1;
    char *w = o->data + o->len;
    memcpy(w, b->dead_prefix, b->dead_prefix_len);
    w += b->dead_prefix_len;
    w = put_int4(w, partition);
    w = put_int8(w, offset);
    w = payload ? put_bytes(w, payload, len) : put_null(w);
    w = put_bytes(w, reason, reason_len);
    if ((size_t)(w - (o->data + o->len)) != size)
        abort(); /* the sum above and the writes disagree: a bug here */
    if (note_offset(b, partition, offset) < 0)
        return -1;
    o->len += size;
    b->dead_rows++;
    return 0;
}

void batch_note_time(batch_t *b, int32_t partition, int64_t ts_ms)
{
    batch_offset_t *o = find_offset(b, partition);
    if (o && ts_ms > o->last_ts_ms)
        o->last_ts_ms = ts_ms;
}

int batch_note_offset(batch_t *b, int32_t partition, int64_t offset)
{
    return note_offset(b, partition, offset);
}

int batch_add_gap(batch_t *b, int32_t partition, int64_t from, int64_t to)
{
    char payload[96];
    if (from < 0 || from >= to)
        return -1;
    int n = snprintf(payload, sizeof payload,
                     "{\"from_offset\":%lld,\"to_offset\":%lld,\"offsets\":%lld}",
                     (long long)from, (long long)to, (long long)(to - from));
    if (n < 0 || (size_t)n >= sizeof payload ||
        batch_add_dead(b, partition, from, payload, (size_t)n, "offset_gap") < 0)
        return -1;
    batch_offset_t *o = find_offset(b, partition); /* noted by batch_add_dead */
    if (to > o->next)
        o->next = to;
    return 0;
}

size_t batch_rows(const batch_t *b) { return b->rows; }
size_t batch_dead(const batch_t *b) { return b->dead_rows; }
size_t batch_messages(const batch_t *b) { return b->messages; }

const char *batch_event_data(const batch_t *b, size_t *len)
{
    *len = b->events.len;
    return b->events.data;
}

const char *batch_dead_data(const batch_t *b, size_t *len)
{
    *len = b->dead.len;
    return b->dead.data;
}

const char *batch_rollup_data(batch_t *b, size_t *len)
{
    return rollup_data(b->rollup, len);
}

batch_offset_t *batch_offsets(batch_t *b, size_t *n)
{
    *n = b->n_offsets;
    return b->offsets;
}

void batch_reset(batch_t *b)
{
    buf_start_copy(&b->events);
    buf_start_copy(&b->dead);
    rollup_reset(b->rollup);
    b->stamps.len = 0;
    b->rows = b->dead_rows = b->messages = 0;
    b->n_offsets = 0;
    b->last = 0;
}

int batch_add_stamp(batch_t *b, int64_t produced_ms, int64_t event_ms)
{
    batch_stamp_t st = {produced_ms, event_ms};
    if (buf_reserve(&b->stamps, sizeof st) != 0)
        return -1;
    memcpy(b->stamps.data + b->stamps.len, &st, sizeof st);
    b->stamps.len += sizeof st;
    return 0;
}

const batch_stamp_t *batch_stamps(const batch_t *b, size_t *n)
{
    *n = b->stamps.len / sizeof(batch_stamp_t);
    return (const batch_stamp_t *)(const void *)b->stamps.data;
}
