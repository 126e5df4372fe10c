/*
 * rollup — the per-minute aggregates of one batch (see
 * include/camjoin/rollup.h for the contract).
 *
 * Why here and not in a trigger. The rollup table used to be kept by a
 * statement-level AFTER INSERT trigger with a transition table. That made
 * PostgreSQL capture every row a second time, insert a COPY into the
 * partitioned table row by row instead of in buffered groups, and aggregate
 * in PL/pgSQL: camjoin is 15-18 % faster without it. The batch already
 * holds each row's fields while it encodes them, so summing them here costs
 * a hash lookup per row (about 330 instructions), and the server gets one
 * aggregate row per group (about 2,600 for a 20,000-row batch of the
 * benchmark; docs/BENCHMARKS.md has the figures). This is exact on the
 * direct path only, where a COPY inserts every row or fails whole; the
 * staged path (ON CONFLICT DO NOTHING) aggregates in SQL what its INSERT
 * RETURNING says it really inserted, and does not use this.
 *
 * How. A group's key is serialised into one byte string (has_ref, minute,
 * then length-prefixed camera_id, event_type and, with a reference row,
 * site_id and zone), hashed with XXH3-64 and kept in an open-addressing
 * table of group indexes (linear probing, at most half full). The key bytes
 * and site names live in one arena; rollup_reset() empties everything and
 * keeps the memory, as the batch does with its streams.
 */
#include "camjoin/rollup.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "camjoin/strbuf.h"
#include "copy_bin.h"

#define ROLLUP_FIELDS 9
#define SLOTS_INITIAL 256
#define MINUTE_US INT64_C(60000000)
#define FIELD_MAX ((size_t)INT32_MAX)

typedef struct group {
    uint64_t hash;
    size_t key_off, key_len;   /* in arena */
    size_t name_off, name_len; /* site_name in arena (a reference row's) */
    int64_t events, object_count_sum;
    float confidence_max;
    bool has_confidence;
} group_t;

struct rollup {
    strbuf_t arena;   /* key bytes and site names of the groups */
    strbuf_t key;     /* the key of the row being prepared */
    strbuf_t out;     /* rollup_data()'s stream */
    group_t *groups;
    size_t n, cap;
    uint32_t *slots;  /* group index + 1; 0 = empty */
    size_t nslots;    /* a power of two, > 2n */
    /* the prepared row */
    const event_t *ev;
    const refdata_row_t *ref;
    uint64_t hash;
    size_t found;     /* its group, or SIZE_MAX for a new one */
    bool prepared;
};

rollup_t *rollup_new(void)
{
    return calloc(1, sizeof(rollup_t));
}

void rollup_free(rollup_t *r)
{
    if (!r)
        return;
    strbuf_free(&r->arena);
    strbuf_free(&r->key);
    strbuf_free(&r->out);
    free(r->groups);
    free(r->slots);
    free(r);
}

/* Appends n bytes that strbuf_reserve() made room for. */
static void put_raw(strbuf_t *b, const void *p, size_t n)
{
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_str(strbuf_t *b, const char *s, size_t n)
{
    uint32_t len = (uint32_t)n;
    put_raw(b, &len, sizeof len);
    put_raw(b, s, n);
}

/* floor(ts / 1 min) * 1 min, also before 1970 */
static int64_t minute_of(int64_t unix_us)
{
    int64_t rem = unix_us % MINUTE_US;
    return unix_us - (rem < 0 ? rem + MINUTE_US : rem);
}

/* The key of (ev, ref) into r->key; -1 if it cannot be held. */
static int build_key(rollup_t *r, const event_t *ev, const refdata_row_t *ref)
{
    size_t n = 1 + 8 + 4 + ev->camera_id_len + 4 + ev->event_type_len;
    if (ev->camera_id_len > FIELD_MAX || ev->event_type_len > FIELD_MAX)
        return -1;
    if (ref) {
        if (ref->site_id_len > FIELD_MAX || ref->zone_len > FIELD_MAX ||
            ref->site_name_len > FIELD_MAX)
            return -1;
        n += 4 + ref->site_id_len + 4 + ref->zone_len;
    }
    r->key.len = 0;
    if (strbuf_reserve(&r->key, n) < 0) {
        r->key.oom = 0;
        return -1;
    }
    unsigned char has_ref = ref != NULL;
    int64_t minute = minute_of(ev->event_ts_us);
    put_raw(&r->key, &has_ref, 1);
    put_raw(&r->key, &minute, sizeof minute);
    put_str(&r->key, ev->camera_id, ev->camera_id_len);
    put_str(&r->key, ev->event_type, ev->event_type_len);
    if (ref) {
        put_str(&r->key, ref->site_id, ref->site_id_len);
        put_str(&r->key, ref->zone, ref->zone_len);
    }
    return 0;
}

/* The slot holding the key in r->key (hash h), or the empty slot where it
 * would go. */
static size_t probe(const rollup_t *r, uint64_t h)
{
    size_t mask = r->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        uint32_t s = r->slots[i];
        if (s == 0)
            return i;
        const group_t *g = &r->groups[s - 1];
        if (g->hash == h && g->key_len == r->key.len &&
            memcmp(r->arena.data + g->key_off, r->key.data, r->key.len) == 0)
            return i;
    }
}

/* Room for one more group: a table at most half full after it. */
static int grow_slots(rollup_t *r)
{
    if (r->nslots && (r->n + 1) * 2 <= r->nslots)
        return 0;
    size_t nslots = r->nslots ? 2 * r->nslots : SLOTS_INITIAL;
    uint32_t *slots = calloc(nslots, sizeof *slots);
    if (!slots || r->n >= UINT32_MAX - 1) {
        free(slots);
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        size_t j = (size_t)r->groups[i].hash & (nslots - 1);
        while (slots[j])
            j = (j + 1) & (nslots - 1);
        slots[j] = (uint32_t)(i + 1);
    }
    free(r->slots);
    r->slots = slots;
    r->nslots = nslots;
    return 0;
}

static int grow_groups(rollup_t *r)
{
    if (r->n < r->cap)
        return 0;
    size_t cap = r->cap ? 2 * r->cap : 64;
    group_t *g = realloc(r->groups, cap * sizeof *g);
    if (!g)
        return -1;
    r->groups = g;
    r->cap = cap;
    return 0;
}

/* Whether committing would store ref's site name (a new group, or a name
 * that differs from the group's). */
static bool name_changes(const rollup_t *r, const group_t *g, const refdata_row_t *ref)
{
    return ref && (!g || g->name_len != ref->site_name_len ||
                   (ref->site_name_len &&
                    memcmp(r->arena.data + g->name_off, ref->site_name, ref->site_name_len) != 0));
}

int rollup_prepare(rollup_t *r, const event_t *ev, const refdata_row_t *ref)
{
    r->prepared = false;
    if (build_key(r, ev, ref) < 0)
        return -1;
    uint64_t h = XXH3_64bits(r->key.data, r->key.len);
    size_t slot = r->nslots ? probe(r, h) : 0;
    const group_t *g = r->nslots && r->slots[slot] ? &r->groups[r->slots[slot] - 1] : NULL;
    size_t extra = (g ? 0 : r->key.len) + (name_changes(r, g, ref) ? ref->site_name_len : 0);
    if (!g && (grow_slots(r) < 0 || grow_groups(r) < 0))
        return -1;
    if (strbuf_reserve(&r->arena, extra) < 0) {
        r->arena.oom = 0;
        return -1;
    }
    r->ev = ev;
    r->ref = ref;
    r->hash = h;
    r->found = g ? (size_t)(g - r->groups) : SIZE_MAX;
    r->prepared = true;
    return 0;
}

void rollup_commit(rollup_t *r)
{
    if (!r->prepared)
        abort(); /* a commit without a successful prepare: a bug in the caller */
    r->prepared = false;
    const event_t *ev = r->ev;
    group_t *g;
    if (r->found == SIZE_MAX) { /* room was made by prepare */
        g = &r->groups[r->n];
        *g = (group_t){.hash = r->hash, .key_off = r->arena.len, .key_len = r->key.len};
        put_raw(&r->arena, r->key.data, r->key.len);
        r->slots[probe(r, r->hash)] = (uint32_t)(r->n + 1);
        r->n++;
    } else {
        g = &r->groups[r->found];
    }
    if (name_changes(r, r->found == SIZE_MAX ? NULL : g, r->ref)) {
        g->name_off = r->arena.len;
        g->name_len = r->ref->site_name_len;
        put_raw(&r->arena, r->ref->site_name, r->ref->site_name_len);
    }
    g->events++;
    g->object_count_sum += ev->has_object_count ? ev->object_count : 0;
    if (ev->has_confidence) {
        float c = (float)ev->confidence; /* the column is real */
        if (!g->has_confidence || c > g->confidence_max)
            g->confidence_max = c;
        g->has_confidence = true;
    }
}

size_t rollup_groups(const rollup_t *r) { return r->n; }

/* Reads a length-prefixed string of a key at *p. */
static const char *key_str(const char **p, size_t *n)
{
    uint32_t len;
    memcpy(&len, *p, sizeof len);
    const char *s = *p + sizeof len;
    *p = s + len;
    *n = len;
    return s;
}

const char *rollup_data(rollup_t *r, size_t *len)
{
    strbuf_t *o = &r->out;
    o->len = 0;
    if (strbuf_reserve(o, sizeof copy_bin_header) < 0) {
        o->oom = 0;
        return NULL;
    }
    put_raw(o, copy_bin_header, sizeof copy_bin_header);
    for (size_t i = 0; i < r->n; i++) {
        const group_t *g = &r->groups[i];
        const char *p = r->arena.data + g->key_off, *cam, *type, *site = NULL, *zone = NULL;
        size_t cam_n, type_n, site_n = 0, zone_n = 0;
        bool has_ref = *p++;
        int64_t minute;
        memcpy(&minute, p, sizeof minute);
        p += sizeof minute;
        cam = key_str(&p, &cam_n);
        type = key_str(&p, &type_n);
        if (has_ref) {
            site = key_str(&p, &site_n);
            zone = key_str(&p, &zone_n);
        }
        /* field count, 9 length words, minute, events, object_count_sum */
        size_t size = 2 + 4 * ROLLUP_FIELDS + 8 + 8 + 8 + (g->has_confidence ? 4 : 0) +
                      cam_n + type_n + site_n + zone_n + (has_ref ? g->name_len : 0);
        if (strbuf_reserve(o, size) < 0) {
            o->oom = 0;
            return NULL;
        }
        char *w = o->data + o->len;
        w = put_u16(w, ROLLUP_FIELDS);
        w = put_timestamptz(w, minute);
        w = has_ref ? put_bytes(w, site, site_n) : put_null(w);
        w = has_ref ? put_bytes(w, r->arena.data + g->name_off, g->name_len) : put_null(w);
        w = has_ref ? put_bytes(w, zone, zone_n) : put_null(w);
        w = put_bytes(w, cam, cam_n);
        w = put_bytes(w, type, type_n);
        w = put_int8(w, g->events);
        w = put_int8(w, g->object_count_sum);
        w = g->has_confidence ? put_float4(w, g->confidence_max) : put_null(w);
        if ((size_t)(w - (o->data + o->len)) != size)
            abort(); /* the size above and the writes disagree: a bug here */
        o->len += size;
    }
    *len = o->len;
    return o->data;
}

void rollup_reset(rollup_t *r)
{
    r->arena.len = 0;
    r->n = 0;
    r->prepared = false;
    if (r->slots)
        memset(r->slots, 0, r->nslots * sizeof *r->slots);
}
