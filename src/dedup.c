/*
 * dedup — windowed set of 128-bit fingerprints (see include/camjoin/dedup.h).
 *
 * Layout:
 *   ring   power-of-two array of `struct entry` in arrival order; live entries
 *          are ring[(head + k) & rmask] for k in [0, count).
 *   index  power-of-two array (2 x ring capacity, so load <= 0.5) of uint32
 *          slots holding ring position + 1, 0 = empty; linear probing from
 *          fp_lo & imask; deletions shift the cluster back (no tombstones).
 *
 * Time: each entry stores the low 32 bits of the (clamped) now_ms it was first
 * seen at. The window is clamped to [0, UINT32_MAX] ms, and after every call
 * all live entries are at most `window` old relative to `last_now`, so the
 * exact age at `last_now` is the wrapping uint32 difference; the age at a later
 * `now` adds the (64-bit) gap since `last_now`.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <stdlib.h>
#include <string.h>

#include "camjoin/dedup.h"

#define MIN_CAPACITY  ((size_t)1024)
#define MAX_CAPACITY  ((size_t)1 << 31)   /* ring position + 1 fits a uint32 */

struct entry {
    uint64_t fp_lo, fp_hi;
    int64_t offset;
    int32_t partition;
    uint32_t seen;           /* low 32 bits of now_ms at first sighting */
};

struct dedup {
    struct entry *ring;
    uint32_t *index;
    size_t rmask, imask;     /* capacity - 1 of ring and index */
    size_t head, count;
    uint64_t window;         /* ms, <= UINT32_MAX */
    int64_t last_now;        /* largest now_ms seen so far */
};

_Static_assert(sizeof(struct entry) == 32, "ring entry must stay 32 bytes");

/* Both arrays sized for a ring of `cap` entries; index zeroed. */
static int alloc_tables(struct entry **ring, uint32_t **index, size_t cap)
{
    *ring = malloc(cap * sizeof **ring);
    *index = calloc(2 * cap, sizeof **index);
    if (*ring && *index)
        return 0;
    free(*ring);
    free(*index);
    return -1;
}

dedup_t *dedup_new(int64_t window_ms, size_t initial)
{
    size_t cap = MIN_CAPACITY;
    while (cap < initial && cap < MAX_CAPACITY)
        cap <<= 1;

    dedup_t *d = calloc(1, sizeof *d);
    if (!d)
        goto fail_struct;
    if (alloc_tables(&d->ring, &d->index, cap) != 0)
        goto fail_tables;
    d->rmask = cap - 1;
    d->imask = 2 * cap - 1;
    d->window = window_ms < 0 ? 0
              : (uint64_t)window_ms > UINT32_MAX ? UINT32_MAX
              : (uint64_t)window_ms;
    d->last_now = INT64_MIN;
    return d;

fail_tables:
    free(d);
fail_struct:
    return NULL;
}

void dedup_free(dedup_t *d)
{
    if (!d)
        return;
    free(d->ring);
    free(d->index);
    free(d);
}

/* Index slot holding ring position `pos` (which must be indexed). */
static size_t slot_of(const dedup_t *d, size_t pos)
{
    size_t i = d->ring[pos].fp_lo & d->imask;
    while (d->index[i] != pos + 1)
        i = (i + 1) & d->imask;
    return i;
}

/* Empties slot i and shifts later members of its cluster back so that every
 * entry stays reachable from its home slot without tombstones. */
static void index_delete(dedup_t *d, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & d->imask;
        uint32_t v = d->index[j];
        if (v == 0)
            break;
        size_t home = d->ring[v - 1].fp_lo & d->imask;
        /* The entry at j may fill the hole at i unless its home lies in the
         * cyclic range (i, j]. */
        if (((j - home) & d->imask) >= ((j - i) & d->imask)) {
            d->index[i] = v;
            i = j;
        }
    }
    d->index[i] = 0;
}

void dedup_expire(dedup_t *d, int64_t now_ms)
{
    if (now_ms < d->last_now)
        now_ms = d->last_now;
    if (d->count > 0) {
        uint64_t gap = (uint64_t)now_ms - (uint64_t)d->last_now;
        uint32_t last32 = (uint32_t)d->last_now;
        while (d->count > 0) {
            uint64_t age_then = (uint32_t)(last32 - d->ring[d->head].seen);
            if (gap <= d->window && age_then <= d->window - gap)
                break;
            index_delete(d, slot_of(d, d->head));
            d->head = (d->head + 1) & d->rmask;
            d->count--;
        }
    }
    d->last_now = now_ms;
}

/* Slot where fingerprint (lo, hi) is, or the empty slot ending its probe. */
static size_t probe(const dedup_t *d, uint64_t lo, uint64_t hi)
{
    size_t i = lo & d->imask;
    for (;;) {
        uint32_t v = d->index[i];
        if (v == 0)
            return i;
        const struct entry *e = &d->ring[v - 1];
        if (e->fp_lo == lo && e->fp_hi == hi)
            return i;
        i = (i + 1) & d->imask;
    }
}

/* Doubles the ring (unwrapping it to start at 0) and rebuilds the index. */
static int grow(dedup_t *d)
{
    size_t cap = d->rmask + 1;
    if (cap >= MAX_CAPACITY)
        return -1;
    struct entry *ring;
    uint32_t *index;
    if (alloc_tables(&ring, &index, 2 * cap) != 0)
        return -1;

    /* Called only when full: [head, cap) then [0, head). */
    size_t first = cap - d->head;
    memcpy(ring, d->ring + d->head, first * sizeof *ring);
    memcpy(ring + first, d->ring, d->head * sizeof *ring);
    free(d->ring);
    free(d->index);
    d->ring = ring;
    d->index = index;
    d->rmask = 2 * cap - 1;
    d->imask = 4 * cap - 1;
    d->head = 0;
    for (size_t pos = 0; pos < d->count; pos++)
        d->index[probe(d, ring[pos].fp_lo, ring[pos].fp_hi)] = (uint32_t)(pos + 1);
    return 0;
}

int dedup_check(dedup_t *d, const void *key, size_t len, int32_t partition,
                int64_t offset, int64_t now_ms)
{
    XXH128_hash_t fp = XXH3_128bits(key, len);

    dedup_expire(d, now_ms);
    size_t i = probe(d, fp.low64, fp.high64);
    uint32_t v = d->index[i];
    if (v != 0) {
        const struct entry *e = &d->ring[v - 1];
        return e->partition == partition && e->offset == offset
             ? DEDUP_NEW : DEDUP_DUPLICATE;
    }

    if (d->count > d->rmask) {
        if (grow(d) != 0)
            return -1;
        i = probe(d, fp.low64, fp.high64);
    }
    size_t pos = (d->head + d->count) & d->rmask;
    d->ring[pos] = (struct entry){
        .fp_lo = fp.low64, .fp_hi = fp.high64, .offset = offset,
        .partition = partition, .seen = (uint32_t)d->last_now,
    };
    d->index[i] = (uint32_t)(pos + 1);
    d->count++;
    return DEDUP_NEW;
}

size_t dedup_count(const dedup_t *d)
{
    return d->count;
}

size_t dedup_bytes(const dedup_t *d)
{
    size_t cap = d->rmask + 1;
    return sizeof *d + cap * sizeof *d->ring + 2 * cap * sizeof *d->index;
}
