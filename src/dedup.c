/*
 * dedup — windowed set of 128-bit fingerprints (see include/camjoin/dedup.h).
 *
 * Why this shape. An event_id is reduced to its 128-bit XXH3 fingerprint
 * (collision chance about n^2/2^129: nil for any window), so entries have a
 * fixed size. Entries live in a FIFO ring in arrival order; because arrival
 * order is time order, expiry only pops the ring's head while it is older
 * than the window: O(1) amortised per insert, and no scan of the whole set
 * ever happens on the hot path. An open-addressing index maps fingerprints
 * to ring positions. A 24-byte entry (fingerprint 16, first sighting 4,
 * position hash 4) and 4-byte index slots at load 0.52..0.8 make 29..31.7
 * bytes a key, plus at most ~48 KiB of partly used chunks.
 *
 * Layout:
 *   ring   entries in arrival order, numbered by a 64-bit sequence number:
 *          the live ones are [head, head + count). Entry `seq` lives in chunk
 *          seq >> CHUNK_BITS at slot seq & CHUNK_MASK. Chunks are reached
 *          through `dir`, a small power-of-two circular directory indexed by
 *          chunk number & dmask. The allocated chunks are exactly
 *          [head >> CHUNK_BITS, ceil((head + count) / CHUNK)): a chunk is
 *          allocated when the tail enters it and freed when the head leaves
 *          it, so memory follows the live count and growth copies nothing.
 *   index  `slots` uint32 slots, any size (not a power of two): linear probing
 *          from home = (fp_lo * slots) >> 64, wrapping from slots - 1 to 0,
 *          kept in Robin Hood order (along a run, entries sit in the order of
 *          their home slots), with backward-shift deletion (no tombstones).
 *          A slot holds, from the top bit down:
 *            4 bits   min(disp, DISP_SAT) + 1, so that 0 means empty; disp is
 *                     the slot's distance from the entry's home;
 *            1 bit    tag: the top bit of fp_hi (independent of the home);
 *            27 bits  pos = seq mod 2^POS_BITS.
 *          Knowing each slot's home without reading the ring is what keeps
 *          this cheap: a lookup reads the ring only for entries with its own
 *          home and tag (on average load / 2 of them for an absent key), and
 *          stops at the first entry closer to its home than the key would
 *          be; a deletion shifts the rest of the run back by one slot without
 *          reading the ring. Only a slot whose displacement saturated
 *          (>= DISP_SAT = 14; about 3 in 1000 at load 0.8) needs its entry's
 *          fingerprint to recompute its home.
 *
 * From pos to entry: at most DEDUP_MAX_KEYS < 2^POS_BITS entries are live, so
 * pos names one of them. They span at most 2^(POS_BITS - CHUNK_BITS) chunks,
 * so the directory never needs more slots than that, and then
 * (pos >> CHUNK_BITS) & dmask equals (seq >> CHUNK_BITS) & dmask: the entry
 * is found without knowing seq.
 *
 * Load: the index grows when an insert would take it above GROW (0.8) and
 * shrinks when expiry leaves it below SHRINK (0.52); both rebuild it at
 * TARGET (0.625) from the ring, in O(count + slots). Between two rebuilds at
 * least ~17% of the keys are inserted or expired, so the cost is amortised
 * O(1). When expiry removes at least half of the keys at once (an idle gap),
 * the index is rebuilt from the survivors instead of deleting slot by slot.
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

#define CHUNK_BITS 10
#define CHUNK      ((uint64_t)1 << CHUNK_BITS)           /* entries per chunk */
#define CHUNK_MASK (CHUNK - 1)
#define POS_BITS   27
#define POS_MASK   (((uint32_t)1 << POS_BITS) - 1)
#define TAG_BITS   1
#define LOW_BITS   (POS_BITS + TAG_BITS)                /* tag and position */
#define LOW_MASK   (((uint32_t)1 << LOW_BITS) - 1)
#define DISP_SAT   ((1u << (32 - LOW_BITS)) - 2)        /* larger ones saturate */
#define DIR_MIN    ((size_t)4)
#define DIR_MAX    ((size_t)1 << (POS_BITS - CHUNK_BITS))
#define MIN_SLOTS  ((size_t)1024)
#define EXPIRE_AHEAD 8         /* expiry fetches the slot of the entry this far ahead */
#define REBUILD_BATCH 16       /* index slots fetched ahead while rebuilding */

/* load thresholds, as count * DEN vs slots * NUM */
#define GROW_NUM    4      /* grow above 4/5 */
#define GROW_DEN    5
#define SHRINK_NUM  13     /* shrink below 13/25 */
#define SHRINK_DEN  25
/* rebuild at 5/8: slots = count * 8 / 5 + 1 */

_Static_assert(DEDUP_MAX_KEYS < ((uint64_t)1 << POS_BITS),
               "live positions must stay distinct modulo 2^POS_BITS");
_Static_assert(DEDUP_MAX_KEYS <= DIR_MAX * CHUNK - CHUNK,
               "the chunks of a full ring must fit the largest directory");

struct entry {
    uint64_t fp_lo, fp_hi;   /* 128-bit XXH3 fingerprint */
    uint32_t seen;           /* low 32 bits of now_ms at first sighting */
    uint32_t where;          /* where_hash(partition, offset) of that sighting */
};

_Static_assert(sizeof(struct entry) == 24, "ring entry must stay 24 bytes");

struct dedup {
    uint32_t *index;
    size_t slots, min_slots;
    struct entry **dir;      /* chunk c at dir[c & dmask] */
    size_t dmask;            /* directory capacity - 1 */
    size_t chunks;           /* allocated chunks */
    uint64_t head;           /* sequence number of the oldest live entry */
    size_t count;
    size_t max_keys;         /* DEDUP_MAX_KEYS; the tests lower it */
    uint64_t window;         /* ms, <= UINT32_MAX */
    int64_t last_now;        /* largest now_ms seen so far */
};

/* ---- small helpers ---- */

static inline size_t home_of(uint64_t lo, size_t slots)
{
    return (size_t)(((unsigned __int128)lo * slots) >> 64);
}

static inline size_t next_slot(size_t i, size_t slots)
{
    return i + 1 == slots ? 0 : i + 1;
}

/* A well-mixed 32-bit digest of a Kafka position (murmur3 finaliser). */
static inline uint32_t where_hash(int32_t partition, int64_t offset)
{
    uint64_t x = (uint64_t)offset + (uint64_t)(uint32_t)partition * 0x9E3779B97F4A7C15u;
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDu;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53u;
    x ^= x >> 33;
    return (uint32_t)x ^ (uint32_t)(x >> 32);
}

static inline struct entry *entry_at(const dedup_t *d, uint64_t pos)
{
    return &d->dir[(pos >> CHUNK_BITS) & d->dmask][pos & CHUNK_MASK];
}

/* Index size that puts `n` keys at the target load (5/8). */
static size_t slots_for(size_t n)
{
    return n + n / 2 + n / 10 + 1;
}

/* ---- life cycle ---- */

dedup_t *dedup_new(int64_t window_ms, size_t initial)
{
    if (initial > DEDUP_MAX_KEYS)
        initial = DEDUP_MAX_KEYS;
    size_t slots = slots_for(initial);
    if (slots < MIN_SLOTS)
        slots = MIN_SLOTS;

    dedup_t *d = calloc(1, sizeof *d);
    if (!d)
        goto fail_struct;
    if (!(d->dir = calloc(DIR_MIN, sizeof *d->dir)))
        goto fail_dir;
    if (!(d->index = calloc(slots, sizeof *d->index)))
        goto fail_index;
    d->slots = d->min_slots = slots;
    d->dmask = DIR_MIN - 1;
    d->max_keys = DEDUP_MAX_KEYS;
    d->window = window_ms < 0 ? 0
              : (uint64_t)window_ms > UINT32_MAX ? UINT32_MAX
              : (uint64_t)window_ms;
    d->last_now = INT64_MIN;
    return d;

fail_index:
    free(d->dir);
fail_dir:
    free(d);
fail_struct:
    return NULL;
}

void dedup_free(dedup_t *d)
{
    if (!d)
        return;
    for (size_t k = 0; k < d->chunks; k++)
        free(d->dir[((d->head >> CHUNK_BITS) + k) & d->dmask]);
    free(d->dir);
    free(d->index);
    free(d);
}

/* ---- chunk directory ---- */

/* Moves the allocated chunks into a directory of `cap` slots (a power of
 * two, at least d->chunks). */
static int dir_resize(dedup_t *d, size_t cap)
{
    struct entry **dir = calloc(cap, sizeof *dir);
    if (!dir)
        return -1;
    uint64_t c0 = d->head >> CHUNK_BITS;
    for (size_t k = 0; k < d->chunks; k++)
        dir[(c0 + k) & (cap - 1)] = d->dir[(c0 + k) & d->dmask];
    free(d->dir);
    d->dir = dir;
    d->dmask = cap - 1;
    return 0;
}

/* Allocates the chunk the tail is entering. */
static int chunk_push(dedup_t *d)
{
    size_t cap = d->dmask + 1;
    if (d->chunks + 1 > cap) {
        while (cap < d->chunks + 1)
            cap <<= 1;
        if (cap > DIR_MAX || dir_resize(d, cap) != 0)
            return -1;
    }
    struct entry *chunk = malloc(CHUNK * sizeof *chunk);
    if (!chunk)
        return -1;
    d->dir[((d->head + d->count) >> CHUNK_BITS) & d->dmask] = chunk;
    d->chunks++;
    return 0;
}

/* Forgets the `k` oldest entries (the index must no longer refer to them),
 * freeing the chunks the head leaves. */
static void ring_pop(dedup_t *d, size_t k)
{
    uint64_t from = d->head >> CHUNK_BITS, to = (d->head + k) >> CHUNK_BITS;
    for (uint64_t c = from; c < to; c++) {
        free(d->dir[c & d->dmask]);
        d->dir[c & d->dmask] = NULL;
        d->chunks--;
    }
    d->head += k;
    d->count -= k;
    size_t cap = d->dmask + 1;
    if (to != from && cap > DIR_MIN && d->chunks * 4 <= cap) {
        while (cap > DIR_MIN && d->chunks * 4 <= cap)
            cap /= 2;
        (void)dir_resize(d, cap);          /* on failure keep the larger one */
    }
}

/* ---- index ---- */

/* The tag: TAG_BITS of fp_hi, independent of the home slot (fp_lo). */
static inline uint32_t low_bits(uint64_t fp_hi, uint64_t seq)
{
    return (uint32_t)(fp_hi >> (64 - TAG_BITS)) << POS_BITS | (uint32_t)(seq & POS_MASK);
}

/* Slot value for displacement `disp` and tag + position `low`. */
static inline uint32_t slot_value(size_t disp, uint32_t low)
{
    uint32_t f = disp < DISP_SAT ? (uint32_t)disp + 1 : DISP_SAT + 1;
    return f << LOW_BITS | low;
}

/* Distance from `home` forward to `i`, across the wrap if need be. */
static inline size_t dist_to(size_t home, size_t i, size_t slots)
{
    return i >= home ? i - home : i + slots - home;
}

/* Exact displacement of the (non-empty) value v found in slot i. */
static inline size_t disp_of(const dedup_t *d, size_t slots, uint32_t v, size_t i)
{
    uint32_t f = v >> LOW_BITS;
    if (f <= DISP_SAT)
        return f - 1;
    return dist_to(home_of(entry_at(d, v & POS_MASK)->fp_lo, slots), i, slots);
}

/* Robin Hood insertion of tag + position `low`, starting at slot i, `disp`
 * slots from its home (every slot in [home, i) holds an entry at least as
 * far from its own home). */
static void rh_insert(const dedup_t *d, uint32_t *index, size_t slots,
                      size_t i, size_t disp, uint32_t low)
{
    uint32_t cur = slot_value(disp, low);
    for (;;) {
        uint32_t v = index[i];
        if (v == 0) {
            index[i] = cur;
            return;
        }
        size_t vd = disp_of(d, slots, v, i);
        if (vd < disp) {              /* v is richer: it moves on instead */
            index[i] = cur;
            disp = vd;
            low = v & LOW_MASK;
        }
        i = next_slot(i, slots);
        disp++;
        cur = slot_value(disp, low);
    }
}

/* Rebuilds the index with `slots` slots from the live ring entries. On
 * allocation failure returns -1 and leaves the old index in place. */
static int index_rebuild(dedup_t *d, size_t slots)
{
    uint32_t *index;
    if (slots == d->slots) {
        index = d->index;
        memset(index, 0, slots * sizeof *index);
    } else if (!(index = calloc(slots, sizeof *index))) {
        return -1;
    }
    /* In ring order, REBUILD_BATCH entries at a time: their home slots are
     * scattered, so fetch them all before inserting any. */
    size_t home[REBUILD_BATCH];
    for (uint64_t s = d->head, end = d->head + d->count; s < end; ) {
        const struct entry *e = entry_at(d, s);
        size_t m = CHUNK - (size_t)(s & CHUNK_MASK);     /* rest of this chunk */
        if (m > end - s)
            m = (size_t)(end - s);
        if (m > REBUILD_BATCH)
            m = REBUILD_BATCH;
        for (size_t k = 0; k < m; k++) {
            home[k] = home_of(e[k].fp_lo, slots);
            __builtin_prefetch(&index[home[k]], 1);
        }
        for (size_t k = 0; k < m; k++, s++)
            rh_insert(d, index, slots, home[k], 0, low_bits(e[k].fp_hi, s));
    }
    if (index != d->index) {
        free(d->index);
        d->index = index;
        d->slots = slots;
    }
    return 0;
}

/* Empties slot i and shifts the rest of its run back by one slot (up to the
 * next empty slot or entry already at home), across the wrap if need be. */
static void index_delete(dedup_t *d, size_t i)
{
    const size_t n = d->slots;
    uint32_t *index = d->index;
    for (;;) {
        size_t j = next_slot(i, n);
        uint32_t v = index[j];
        if (v == 0 || v >> LOW_BITS == 1)      /* empty, or at home */
            break;
        index[i] = slot_value(disp_of(d, n, v, j) - 1, v & LOW_MASK);
        i = j;
    }
    index[i] = 0;
}

/* Drops the `k` oldest entries from the index and the ring. */
static void drop_oldest(dedup_t *d, size_t k)
{
    if (2 * k >= d->count && 64 * k >= d->slots) {
        /* Most of the set goes (an idle gap): rebuild from the survivors,
         * which also brings the index down to size. */
        ring_pop(d, k);
        size_t want = slots_for(d->count);
        if (want < d->min_slots)
            want = d->min_slots;
        if (index_rebuild(d, want) != 0)
            (void)index_rebuild(d, d->slots);     /* same size: cannot fail */
        return;
    }
    for (; k > 0; k--) {
        /* The heads to go next are known: keep their slots coming. */
        if (d->count > EXPIRE_AHEAD) {
            const struct entry *ahead = entry_at(d, d->head + EXPIRE_AHEAD);
            __builtin_prefetch(&d->index[home_of(ahead->fp_lo, d->slots)], 1);
        }
        const uint32_t pos = (uint32_t)(d->head & POS_MASK);
        size_t i = home_of(entry_at(d, pos)->fp_lo, d->slots);
        while ((d->index[i] & POS_MASK) != pos || d->index[i] == 0)
            i = next_slot(i, d->slots);
        index_delete(d, i);
        ring_pop(d, 1);
    }
    if (d->slots > d->min_slots &&
        (uint64_t)d->count * SHRINK_DEN < (uint64_t)d->slots * SHRINK_NUM) {
        size_t want = slots_for(d->count);
        (void)index_rebuild(d, want < d->min_slots ? d->min_slots : want);
    }
}

void dedup_expire(dedup_t *d, int64_t now_ms)
{
    if (now_ms < d->last_now)
        now_ms = d->last_now;
    if (d->count > 0) {
        uint64_t gap = (uint64_t)now_ms - (uint64_t)d->last_now;
        uint32_t last32 = (uint32_t)d->last_now;
        size_t k = 0;
        if (gap > d->window) {
            k = d->count;
        } else {
            const uint64_t limit = d->window - gap;
            while (k < d->count &&
                   (uint32_t)(last32 - entry_at(d, d->head + k)->seen) > limit)
                k++;
        }
        if (k > 0)
            drop_oldest(d, k);
    }
    d->last_now = now_ms;
}

/* The entry holding fingerprint (lo, hi), or NULL; then *slot and *disp
 * are where a Robin Hood insertion of it starts. */
static struct entry *index_find(const dedup_t *d, uint64_t lo, uint64_t hi,
                                size_t *slot, size_t *disp)
{
    const size_t n = d->slots;
    const uint32_t tag = low_bits(hi, 0);
    size_t i = home_of(lo, n), dist = 0;
    for (;; dist++, i = next_slot(i, n)) {
        uint32_t v = d->index[i];
        if (v == 0)
            break;
        uint32_t f = v >> LOW_BITS;
        if (f <= DISP_SAT) {
            if (f - 1 < dist)                  /* richer than we would be */
                break;
            if (f - 1 > dist)
                continue;
        } else if (dist < DISP_SAT) {
            continue;                          /* displaced further than us */
        } else {
            size_t vd = disp_of(d, n, v, i);
            if (vd < dist)
                break;
            if (vd > dist)
                continue;
        }
        if ((v & ~POS_MASK & LOW_MASK) != tag)
            continue;                          /* same home, other tag */
        struct entry *e = entry_at(d, v & POS_MASK);
        if (e->fp_lo == lo && e->fp_hi == hi)
            return e;
    }
    *slot = i;
    *disp = dist;
    return NULL;
}

int dedup_check(dedup_t *d, const void *key, size_t len, int32_t partition,
                int64_t offset, int64_t now_ms)
{
    XXH128_hash_t fp = XXH3_128bits(key, len);
    dedup_expire(d, now_ms);
    size_t i, disp;
    const struct entry *e = index_find(d, fp.low64, fp.high64, &i, &disp);
    if (e)
        return e->where == where_hash(partition, offset) ? DEDUP_NEW : DEDUP_DUPLICATE;

    if (d->count >= d->max_keys)
        return -1;
    if ((uint64_t)(d->count + 1) * GROW_DEN > (uint64_t)d->slots * GROW_NUM) {
        if (index_rebuild(d, slots_for(d->count + 1)) != 0)
            return -1;
        i = home_of(fp.low64, d->slots);
        disp = 0;
    }
    const uint64_t seq = d->head + d->count;
    if ((seq & CHUNK_MASK) == 0 && chunk_push(d) != 0)
        return -1;
    *entry_at(d, seq) = (struct entry){
        .fp_lo = fp.low64, .fp_hi = fp.high64,
        .seen = (uint32_t)d->last_now, .where = where_hash(partition, offset),
    };
    rh_insert(d, d->index, d->slots, i, disp, low_bits(fp.high64, seq));
    d->count++;
    return DEDUP_NEW;
}

size_t dedup_count(const dedup_t *d)
{
    return d->count;
}

size_t dedup_bytes(const dedup_t *d)
{
    return sizeof *d + d->chunks * CHUNK * sizeof(struct entry)
         + (d->dmask + 1) * sizeof *d->dir + d->slots * sizeof *d->index;
}
