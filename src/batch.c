/*
 * batch — COPY-encoded rows and per-partition offsets of one transaction
 * (see include/camjoin/batch.h).
 *
 * Both COPY streams (event rows, dead letters) are `struct buf`: one growable
 * byte buffer, doubled on demand and kept across batch_reset(). A row is
 * appended field by field; if a field cannot be encoded, the buffer is cut
 * back to where the row started, so a failed add leaves no trace.
 */
#include "camjoin/batch.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_INITIAL 4096
#define OFFSETS_INITIAL 8

struct buf {
    char *data;
    size_t len, cap;
};

struct batch {
    char *topic; /* already COPY-escaped */
    size_t topic_len;
    struct buf events, dead;
    struct buf stamps; /* batch_stamp_t[], for latency at commit */
    size_t rows, dead_rows, messages;
    batch_offset_t *offsets;
    size_t n_offsets, cap_offsets;
    size_t last; /* index of the partition touched last: the usual next hit */
};

/* ---- growable buffer --------------------------------------------------- */

static int buf_reserve(struct buf *o, size_t extra)
{
    if (o->cap - o->len >= extra)
        return 0;
    size_t cap = o->cap ? o->cap : BUF_INITIAL;
    while (cap - o->len < extra) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *p = realloc(o->data, cap);
    if (!p)
        return -1;
    o->data = p;
    o->cap = cap;
    return 0;
}

static int buf_append(struct buf *o, const void *s, size_t n)
{
    if (buf_reserve(o, n) < 0)
        return -1;
    memcpy(o->data + o->len, s, n);
    o->len += n;
    return 0;
}

static int buf_append_escaped(struct buf *o, const char *s, size_t n)
{
    if (n > SIZE_MAX / 2 || buf_reserve(o, 2 * n) < 0)
        return -1;
    ssize_t w = batch_escape_text(o->data + o->len, s, n);
    if (w < 0)
        return -1;
    o->len += (size_t)w;
    return 0;
}

/* ---- COPY columns: each writes its value, then `end` ('\t' or '\n') ---- */

static int put_end(struct buf *o, char end)
{
    return buf_append(o, &end, 1);
}

static int put_null(struct buf *o, char end)
{
    return buf_append(o, "\\N", 2) < 0 ? -1 : put_end(o, end);
}

static int put_text(struct buf *o, const char *s, size_t n, char end)
{
    return buf_append_escaped(o, s, n) < 0 ? -1 : put_end(o, end);
}

__attribute__((format(printf, 3, 4)))
static int put_fmt(struct buf *o, char end, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -1;
    return buf_append(o, tmp, (size_t)n) < 0 ? -1 : put_end(o, end);
}

/* bytea in hex form, `\x` with its backslash escaped for COPY text. */
static int put_bytea(struct buf *o, const unsigned char *p, size_t n, char end)
{
    static const char hex[] = "0123456789abcdef";
    if (n > (SIZE_MAX - 3) / 2 || buf_reserve(o, 3 + 2 * n) < 0)
        return -1;
    char *w = o->data + o->len;
    *w++ = '\\';
    *w++ = '\\';
    *w++ = 'x';
    for (size_t i = 0; i < n; i++) {
        *w++ = hex[p[i] >> 4];
        *w++ = hex[p[i] & 0xf];
    }
    o->len += 3 + 2 * n;
    return put_end(o, end);
}

/* The five reference columns: site_id, site_name, zone, latitude, longitude. */
static int put_ref(struct buf *o, const refdata_row_t *ref)
{
    if (!ref) {
        for (int i = 0; i < 5; i++)
            if (put_null(o, '\t') < 0)
                return -1;
        return 0;
    }
    if (put_text(o, ref->site_id, ref->site_id_len, '\t') < 0 ||
        put_text(o, ref->site_name, ref->site_name_len, '\t') < 0 ||
        put_text(o, ref->zone, ref->zone_len, '\t') < 0)
        return -1;
    if ((ref->has_latitude ? put_fmt(o, '\t', "%.17g", ref->latitude)
                           : put_null(o, '\t')) < 0)
        return -1;
    return ref->has_longitude ? put_fmt(o, '\t', "%.17g", ref->longitude)
                              : put_null(o, '\t');
}

static int put_event_row(struct buf *o, const event_t *ev, const refdata_row_t *ref,
                         int32_t partition, int64_t offset)
{
    char ts[32];
    size_t ts_len = event_format_ts(ev->event_ts_us, ts);

    if (put_text(o, ev->event_id, ev->event_id_len, '\t') < 0 ||
        buf_append(o, ts, ts_len) < 0 || put_end(o, '\t') < 0 ||
        put_text(o, ev->camera_id, ev->camera_id_len, '\t') < 0 ||
        put_text(o, ev->event_type, ev->event_type_len, '\t') < 0)
        return -1;
    if ((ev->has_confidence ? put_fmt(o, '\t', "%.9g", ev->confidence)
                            : put_null(o, '\t')) < 0 ||
        (ev->has_object_count ? put_fmt(o, '\t', "%" PRId32, ev->object_count)
                              : put_null(o, '\t')) < 0 ||
        (ev->attributes ? put_text(o, ev->attributes, strlen(ev->attributes), '\t')
                        : put_null(o, '\t')) < 0)
        return -1;
    if (put_ref(o, ref) < 0 || put_fmt(o, '\t', "%" PRId32, partition) < 0)
        return -1;
    return put_fmt(o, '\n', "%" PRId64, offset);
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
        *o = (batch_offset_t){partition, BATCH_OFFSET_NONE, offset + 1};
    }
    if (offset + 1 > o->next)
        o->next = offset + 1;
    b->messages++;
    return 0;
}

/* ---- public ------------------------------------------------------------ */

ssize_t batch_escape_text(char *dst, const char *src, size_t len)
{
    char *w = dst;
    for (size_t i = 0; i < len; i++) {
        char c = src[i], esc;
        switch (c) {
        case '\0': return -1;
        case '\\': esc = '\\'; break;
        case '\t': esc = 't'; break;
        case '\n': esc = 'n'; break;
        case '\r': esc = 'r'; break;
        case '\b': esc = 'b'; break;
        case '\f': esc = 'f'; break;
        case '\v': esc = 'v'; break;
        default: *w++ = c; continue;
        }
        *w++ = '\\';
        *w++ = esc;
    }
    return w - dst;
}

batch_t *batch_new(const char *topic)
{
    batch_t *b = calloc(1, sizeof *b);
    if (!b)
        goto fail_batch;
    size_t n = strlen(topic);
    if (!(b->topic = malloc(2 * n + 1)))
        goto fail_topic;
    /* A C string holds no NUL, so escaping cannot fail. */
    b->topic_len = (size_t)batch_escape_text(b->topic, topic, n);
    if (buf_reserve(&b->events, BUF_INITIAL) < 0)
        goto fail_events;
    if (buf_reserve(&b->dead, BUF_INITIAL) < 0)
        goto fail_dead;
    return b;

fail_dead:
    free(b->events.data);
fail_events:
    free(b->topic);
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
    free(b->stamps.data);
    free(b->dead.data);
    free(b->events.data);
    free(b->topic);
    free(b);
}

int batch_add_event(batch_t *b, const event_t *ev, const refdata_row_t *ref,
                    int32_t partition, int64_t offset)
{
    size_t mark = b->events.len;
    if (put_event_row(&b->events, ev, ref, partition, offset) < 0 ||
        note_offset(b, partition, offset) < 0) {
        b->events.len = mark;
        return -1;
    }
    b->rows++;
    return 0;
}

int batch_add_dead(batch_t *b, int32_t partition, int64_t offset,
                   const void *payload, size_t len, const char *reason)
{
    struct buf *o = &b->dead;
    size_t mark = o->len;
    if (buf_append(o, b->topic, b->topic_len) < 0 || put_end(o, '\t') < 0 ||
        put_fmt(o, '\t', "%" PRId32, partition) < 0 ||
        put_fmt(o, '\t', "%" PRId64, offset) < 0 ||
        (payload ? put_bytea(o, payload, len, '\t') : put_null(o, '\t')) < 0 ||
        put_text(o, reason, strlen(reason), '\n') < 0 ||
        note_offset(b, partition, offset) < 0) {
        o->len = mark;
        return -1;
    }
    b->dead_rows++;
    return 0;
}

int batch_note_offset(batch_t *b, int32_t partition, int64_t offset)
{
    return note_offset(b, partition, offset);
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

batch_offset_t *batch_offsets(batch_t *b, size_t *n)
{
    *n = b->n_offsets;
    return b->offsets;
}

void batch_reset(batch_t *b)
{
    b->events.len = 0;
    b->dead.len = 0;
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
