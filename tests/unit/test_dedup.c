/* Unit tests for dedup: scripted scenarios, growth, chunk and probe edge
 * cases, and random runs checked against reference models.
 *
 * White-box: the module's source is compiled into this file (the archive's
 * copy is then never linked), so the tests can check its internal invariants
 * (chunk range, directory, Robin Hood order, displacement fields, exact byte
 * counts), lower its capacity, and make its allocations fail on demand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* Allocation failure injection, for the module's own allocations only: when
 * alloc_fail_at counts down to zero, that allocation returns NULL. */
static long alloc_fail_at;          /* 0: never */
static long alloc_failures;         /* NULLs handed out so far */

static bool fail_now(void)
{
    if (alloc_fail_at > 0 && --alloc_fail_at == 0) {
        alloc_failures++;
        return true;
    }
    return false;
}

static void *t_malloc(size_t n)
{
    return fail_now() ? NULL : malloc(n);
}

static void *t_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : calloc(n, size);
}

#define malloc(n) t_malloc(n)
#define calloc(n, size) t_calloc(n, size)
#include "../../src/dedup.c"
#undef malloc
#undef calloc

enum { NEW = DEDUP_NEW, DUP = DEDUP_DUPLICATE, EXPIRE = 100 };

/* One step: op is EXPIRE (dedup_expire) or the result dedup_check must give;
 * count is dedup_count() afterwards. */
struct step {
    int op;
    const char *key;
    int32_t partition;
    int64_t offset;
    int64_t now;
    size_t count;
};

struct scenario {
    const char *name;
    int64_t window;
    struct step steps[12];
};

#define END { .key = NULL, .op = -1 }

static const struct scenario scenarios[] = {
    { "new then duplicate", 1000, {
        { NEW, "a", 0, 1, 0, 1 },
        { DUP, "a", 0, 2, 10, 1 },
        { NEW, "b", 0, 3, 10, 2 },
        { DUP, "b", 1, 3, 20, 2 },      /* same offset, other partition */
        END } },
    { "window edge measured from first sighting", 1000, {
        { NEW, "a", 0, 1, 5000, 1 },
        { DUP, "a", 0, 2, 6000, 1 },    /* exactly window ms later */
        { NEW, "a", 0, 3, 6001, 1 },    /* window + 1 ms: expired, new again */
        { DUP, "a", 0, 4, 7001, 1 },    /* ... and that is the new first sighting */
        { NEW, "a", 0, 5, 7002, 1 },
        END } },
    { "duplicate does not refresh", 1000, {
        { NEW, "a", 0, 1, 0, 1 },
        { DUP, "a", 0, 2, 900, 1 },
        { DUP, "a", 0, 3, 1000, 1 },
        { NEW, "a", 0, 4, 1001, 1 },
        END } },
    { "re-delivery of the same message is new", 1000, {
        { NEW, "a", 3, 77, 0, 1 },
        { NEW, "a", 3, 77, 10, 1 },     /* same (partition, offset) */
        { DUP, "a", 3, 78, 20, 1 },
        { NEW, "a", 3, 77, 30, 1 },     /* entry left as it was */
        { DUP, "a", 2, 77, 40, 1 },
        END } },
    { "expiry shrinks the count", 100, {
        { NEW, "a", 0, 1, 0, 1 },
        { NEW, "b", 0, 2, 50, 2 },
        { NEW, "c", 0, 3, 90, 3 },
        { EXPIRE, NULL, 0, 0, 100, 3 },
        { EXPIRE, NULL, 0, 0, 101, 2 },
        { EXPIRE, NULL, 0, 0, 150, 2 },
        { EXPIRE, NULL, 0, 0, 151, 1 },
        { EXPIRE, NULL, 0, 0, 191, 0 },
        { NEW, "a", 0, 4, 191, 1 },
        END } },
    { "clock going backwards counts as the last value", 100, {
        { NEW, "a", 0, 1, 1000, 1 },
        { NEW, "b", 0, 2, 500, 2 },     /* stored as seen at 1000 */
        { EXPIRE, NULL, 0, 0, 1100, 2 },
        { DUP, "b", 0, 3, 1050, 2 },    /* treated as 1100 */
        { EXPIRE, NULL, 0, 0, 1101, 0 },
        { NEW, "b", 0, 4, 1101, 1 },
        END } },
    { "zero window keeps only the current millisecond", 0, {
        { NEW, "a", 0, 1, 7, 1 },
        { DUP, "a", 0, 2, 7, 1 },
        { NEW, "a", 0, 3, 8, 1 },
        END } },
    { "large clock values and gaps", 60000, {
        { NEW, "a", 0, 1, INT64_C(1700000000000), 1 },
        { DUP, "a", 0, 2, INT64_C(1700000060000), 1 },
        { NEW, "b", 0, 3, INT64_C(1700000060000), 2 },
        /* 2^32 ms later: wrapped low bits must not look recent */
        { NEW, "b", 0, 4, INT64_C(1700000060000) + (INT64_C(1) << 32), 1 },
        END } },
};

/* ---- white-box helpers ---- */

static bool loose_load;   /* a failed shrink may leave the index too large */

/* Everything the module promises about its own state; O(slots + count). */
static void check_invariants(const dedup_t *d)
{
    const uint64_t tail = d->head + d->count;
    const uint64_t c_lo = d->head >> CHUNK_BITS, c_hi = (tail + CHUNK - 1) >> CHUNK_BITS;
    if (d->chunks != c_hi - c_lo)
        fail_msg("chunks %zu, want %llu", d->chunks, (unsigned long long)(c_hi - c_lo));
    const size_t cap = d->dmask + 1;
    if ((cap & d->dmask) != 0 || cap < DIR_MIN || cap > DIR_MAX || d->chunks > cap ||
        (!loose_load && cap > DIR_MIN && d->chunks * 4 <= cap))
        fail_msg("directory of %zu for %zu chunks", cap, d->chunks);
    for (size_t k = 0; k < cap; k++) {
        uint64_t c = c_lo + ((k - c_lo) & d->dmask);   /* chunk that would sit at k */
        if ((c < c_hi) != (d->dir[k] != NULL))
            fail_msg("directory slot %zu: %p for chunk %llu of [%llu, %llu)", k,
                     (void *)d->dir[k], (unsigned long long)c,
                     (unsigned long long)c_lo, (unsigned long long)c_hi);
    }

    const size_t n = d->slots;
    if (n < d->min_slots || (uint64_t)d->count * GROW_DEN > (uint64_t)n * GROW_NUM)
        fail_msg("%zu keys in %zu slots (min %zu)", d->count, n, d->min_slots);
    if (!loose_load && n > d->min_slots &&
        (uint64_t)d->count * SHRINK_DEN < (uint64_t)n * SHRINK_NUM)
        fail_msg("%zu keys in %zu slots: should have shrunk", d->count, n);

    unsigned char *seen = calloc(d->count + 1, 1);
    assert_non_null(seen);
    size_t occupied = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = d->index[i];
        if (v == 0)
            continue;
        occupied++;
        uint64_t seq = d->head + (((uint64_t)(v & POS_MASK) - d->head) & POS_MASK);
        if (seq >= tail)
            fail_msg("slot %zu: position of no live entry", i);
        if (seen[seq - d->head]++)
            fail_msg("slot %zu: entry indexed twice", i);
        const struct entry *e = entry_at(d, seq);
        size_t disp = dist_to(home_of(e->fp_lo, n), i, n);
        uint32_t want = slot_value(disp, low_bits(e->fp_hi, seq));
        if (v != want)
            fail_msg("slot %zu: value %#x, want %#x (disp %zu)", i, v, want, disp);
        if (disp > 0) {      /* Robin Hood order: the run reaches back home */
            size_t p = i == 0 ? n - 1 : i - 1;
            uint32_t pv = d->index[p];
            if (pv == 0 || disp_of(d, n, pv, p) + 1 < disp)
                fail_msg("slot %zu: disp %zu after slot %zu", i, disp, p);
        }
    }
    free(seen);
    if (occupied != d->count)
        fail_msg("%zu slots used for %zu keys", occupied, d->count);
    size_t bytes = sizeof(struct dedup) + d->chunks * CHUNK * sizeof(struct entry)
                 + cap * sizeof(struct entry *) + n * sizeof(uint32_t);
    if (dedup_bytes(d) != bytes)
        fail_msg("dedup_bytes %zu, want %zu", dedup_bytes(d), bytes);
}

/* The entry holding `key`, or NULL; inserts nothing, expires nothing. */
static const struct entry *find(const dedup_t *d, const char *key)
{
    XXH128_hash_t fp = XXH3_128bits(key, strlen(key));
    size_t slot, disp;
    return index_find(d, fp.low64, fp.high64, &slot, &disp);
}

/* Index slot holding `key` (which must be present). */
static size_t slot_of_key(const dedup_t *d, const char *key)
{
    const struct entry *e = find(d, key);
    assert_non_null(e);
    for (size_t i = 0; i < d->slots; i++)
        if (d->index[i] != 0 && entry_at(d, d->index[i] & POS_MASK) == e)
            return i;
    fail_msg("%s: found but in no slot", key);
    return 0;
}

static size_t home_of_key(const char *key, size_t slots)
{
    return home_of(XXH3_128bits(key, strlen(key)).low64, slots);
}

static void run_scenario(void **state)
{
    const struct scenario *sc = *state;
    dedup_t *d = dedup_new(sc->window, 0);
    assert_non_null(d);
    for (const struct step *s = sc->steps; s->op != -1; s++) {
        if (s->op == EXPIRE) {
            dedup_expire(d, s->now);
        } else {
            int r = dedup_check(d, s->key, strlen(s->key), s->partition,
                                s->offset, s->now);
            if (r != s->op)
                fail_msg("%s: step %td: got %d, want %d", sc->name,
                         s - sc->steps, r, s->op);
        }
        if (dedup_count(d) != s->count)
            fail_msg("%s: step %td: count %zu, want %zu", sc->name,
                     s - sc->steps, dedup_count(d), s->count);
        check_invariants(d);
    }
    dedup_free(d);
}

static void key_of(char *buf, size_t size, unsigned n)
{
    snprintf(buf, size, "evt-%08u", n);
}

/* 100k distinct keys through many index rebuilds from the minimum size. */
static void test_growth(void **state)
{
    (void)state;
    enum { N = 100000 };
    dedup_t *d = dedup_new(600000, 1);
    assert_non_null(d);
    size_t bytes0 = dedup_bytes(d);
    /* no chunk yet, a 4-slot directory, a 1024-slot index */
    assert_int_equal(bytes0, sizeof(struct dedup) + 4 * sizeof(void *) + 1024 * 4);
    char key[32];
    size_t rebuilds = 0, slots = d->slots;
    for (unsigned i = 0; i < N; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, i / 10), DEDUP_NEW);
        if (d->slots != slots) {
            rebuilds++;
            slots = d->slots;
            check_invariants(d);
        }
    }
    assert_int_equal(dedup_count(d), N);
    for (unsigned i = 0; i < N; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 1, i, 10000),
                         DEDUP_DUPLICATE);
    }
    assert_int_equal(dedup_count(d), N);
    /* 98 chunks of 1024 entries of 24 bytes, a 128-slot directory, and an
     * index grown 20 times (at load 0.8, to 0.625) from 1024 to 143486 slots */
    assert_int_equal(rebuilds, 20);
    assert_int_equal(d->slots, 143486);
    assert_int_equal(dedup_bytes(d) - bytes0,
                     98 * 1024 * 24 + (128 - 4) * 8 + (143486 - 1024) * 4);
    check_invariants(d);
    dedup_free(d);
}

static void test_bytes_grow_with_count(void **state)
{
    (void)state;
    dedup_t *d = dedup_new(1000, 1000);
    assert_non_null(d);
    size_t before = dedup_bytes(d);
    /* index sized for the hint (1000 keys at load 0.625), no ring yet */
    assert_int_equal(before, sizeof(struct dedup) + 4 * 8 + 1601 * 4);
    char key[32];
    for (unsigned i = 0; i < 1024; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, 0), DEDUP_NEW);
        assert_int_equal(dedup_bytes(d), before + 1024 * 24);   /* one chunk */
    }
    assert_int_equal(dedup_check(d, "one more", 8, 0, 1024, 0), DEDUP_NEW);
    assert_int_equal(dedup_bytes(d), before + 2 * 1024 * 24);   /* next chunk */
    for (unsigned i = 1025; i < 1280; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, 0), DEDUP_NEW);
    }
    assert_int_equal(dedup_bytes(d), before + 2 * 1024 * 24);   /* load 0.7995 */
    assert_int_equal(dedup_check(d, "past 0.8", 8, 0, 1280, 0), DEDUP_NEW);
    assert_int_equal(dedup_bytes(d) - before, 2 * 1024 * 24 + (2050 - 1601) * 4);
    check_invariants(d);
    dedup_free(d);
}

/* ---- random operations against a naive model ---- */

struct model_entry { unsigned key; int32_t partition; int64_t offset; int64_t seen; };

struct model {
    struct model_entry *e;
    size_t n;
    int64_t window, last;
};

static void model_expire(struct model *m, int64_t now)
{
    if (now < m->last)
        now = m->last;
    m->last = now;
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        if (now - m->e[i].seen <= m->window)
            m->e[k++] = m->e[i];
    m->n = k;
}

static int model_check(struct model *m, unsigned key, int32_t p, int64_t o, int64_t now)
{
    model_expire(m, now);
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].key == key)
            return m->e[i].partition == p && m->e[i].offset == o ? NEW : DUP;
    m->e[m->n++] = (struct model_entry){ key, p, o, m->last };
    return NEW;
}

static uint64_t rng_next(uint64_t *s)    /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* Every key the model holds must be a duplicate for an unseen position (this
 * inserts nothing, so it does not disturb the run). */
static void assert_all_findable(dedup_t *d, const struct model *m)
{
    char key[32];
    for (size_t i = 0; i < m->n; i++) {
        key_of(key, sizeof key, m->e[i].key);
        if (dedup_check(d, key, strlen(key), 99, -1, m->last) != DEDUP_DUPLICATE)
            fail_msg("key %u lost from the index", m->e[i].key);
    }
}

static void test_random_vs_model(void **state)
{
    (void)state;
    enum { OPS = 30000, KEYS = 2000 };
    uint64_t seed = 20240607;
    struct model m = { calloc(OPS, sizeof *m.e), 0, 4000, INT64_MIN };
    assert_non_null(m.e);
    dedup_t *d = dedup_new(m.window, 0);
    assert_non_null(d);
    int64_t now = 1000, offset = 0;
    char key[32];
    size_t max_live = 0;
    for (unsigned op = 0; op < OPS; op++) {
        uint64_t r = rng_next(&seed);
        now += (int64_t)(r % 3) - (r % 97 == 0 ? 30 : 0);  /* sometimes back */
        if (op % 7000 == 6999)
            now += 4001 + (int64_t)(r % 7);               /* idle gap */
        if ((r >> 8) % 50 == 0) {
            dedup_expire(d, now);
            model_expire(&m, now);
        } else {
            unsigned k = (unsigned)((r >> 16) % KEYS);
            int32_t p = (int32_t)((r >> 40) % 3);
            int64_t o = (r >> 48) % 5 == 0 ? offset - (int64_t)((r >> 20) % 3) : ++offset;
            key_of(key, sizeof key, k);
            int want = model_check(&m, k, p, o, now);
            int got = dedup_check(d, key, strlen(key), p, o, now);
            if (got != want)
                fail_msg("op %u key %u: got %d, want %d", op, k, got, want);
        }
        if (dedup_count(d) != m.n)
            fail_msg("op %u: count %zu, want %zu", op, dedup_count(d), m.n);
        if (op % 97 == 0) {
            assert_all_findable(d, &m);
            check_invariants(d);
        }
        if (m.n > max_live)
            max_live = m.n;
    }
    if (max_live <= 1024)
        fail_msg("max live %zu: the run did not exercise growth", max_live);
    dedup_free(d);
    free(m.e);
}

/* ---- ring chunks ---- */

/* One key a millisecond through a window of 2051 ms: the head and the tail
 * cross several chunk boundaries, in the same chunk and in different ones. */
static void test_chunk_boundaries(void **state)
{
    (void)state;
    enum { W = 2 * 1024 + 3, N = 5 * 1024 + 7 };
    dedup_t *d = dedup_new(W, 0);
    assert_non_null(d);
    char key[32];
    for (unsigned i = 0; i < N; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, i), DEDUP_NEW);
        size_t live = i + 1 < W + 1 ? i + 1 : W + 1;
        assert_int_equal(dedup_count(d), live);
        assert_int_equal(d->head, i + 1 - live);
        assert_int_equal(d->chunks, (i + 1 + 1023) / 1024 - (i + 1 - live) / 1024);
        unsigned r = i % 1024;
        if (r <= 1 || r >= 1022 || (i - W) % 1024 <= 1 || i % 211 == 0)
            check_invariants(d);
    }
    /* every live key found, every expired one gone */
    const unsigned first_live = N - 1 - W;
    for (unsigned i = 0; i < N; i++) {
        key_of(key, sizeof key, i);
        const struct entry *e = find(d, key);
        if ((i >= first_live) != (e != NULL))
            fail_msg("key %u: %s", i, e ? "still there" : "lost");
        if (e)
            assert_int_equal(e->seen, i);
    }
    for (unsigned i = first_live; i < N; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, N - 1), DEDUP_NEW);
        assert_int_equal(dedup_check(d, key, strlen(key), 1, i, N - 1), DEDUP_DUPLICATE);
    }
    assert_int_equal(dedup_count(d), W + 1);
    /* all gone: the tail's chunk (N % 1024 = 7 entries used) stays */
    dedup_expire(d, N - 1 + W + 1);
    assert_int_equal(dedup_count(d), 0);
    assert_int_equal(d->chunks, 1);
    assert_int_equal(dedup_bytes(d), sizeof(struct dedup) + 1024 * 24
                     + (d->dmask + 1) * 8 + d->slots * 4);
    check_invariants(d);
    assert_int_equal(dedup_check(d, "after", 5, 0, 0, N + W), DEDUP_NEW);
    assert_int_equal(d->chunks, 1);
    check_invariants(d);
    dedup_free(d);

    /* emptied exactly at a chunk boundary: no chunk left at all */
    d = dedup_new(10, 0);
    assert_non_null(d);
    size_t bytes0 = dedup_bytes(d);
    for (unsigned i = 0; i < 1024; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, 0), DEDUP_NEW);
    }
    assert_int_equal(d->chunks, 1);
    dedup_expire(d, 11);
    assert_int_equal(dedup_count(d), 0);
    assert_int_equal(d->chunks, 0);
    assert_int_equal(dedup_bytes(d), bytes0);
    check_invariants(d);
    key_of(key, sizeof key, 5);
    assert_int_equal(dedup_check(d, key, strlen(key), 0, 5, 11), DEDUP_NEW);
    assert_int_equal(d->chunks, 1);
    assert_int_equal(d->head, 1024);
    check_invariants(d);
    dedup_free(d);

    /* a zero window: one live key, the only chunk replaced every 1024 */
    d = dedup_new(0, 0);
    assert_non_null(d);
    for (unsigned i = 0; i < 3 * 1024 + 5; i++) {
        key_of(key, sizeof key, i % 700);     /* keys come back once expired */
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, i), DEDUP_NEW);
        assert_int_equal(dedup_count(d), 1);
        assert_int_equal(d->chunks, 1);
        assert_int_equal(d->dmask + 1, DIR_MIN);
        if (i % 1024 <= 1 || i % 1024 == 1023)
            check_invariants(d);
    }
    dedup_free(d);
}

/* ---- index growth and shrink against a reference model ---- */

struct ref_key { int64_t seen; int64_t offset; int32_t partition; bool live; };

struct ref {
    struct ref_key *k;      /* by key id */
    unsigned *fifo;         /* live ids in insertion order: [qh, qt) */
    size_t qh, qt, live;
    int64_t window, last;
};

static void ref_expire(struct ref *m, int64_t now)
{
    if (now < m->last)
        now = m->last;
    m->last = now;
    while (m->qh < m->qt && now - m->k[m->fifo[m->qh]].seen > m->window) {
        m->k[m->fifo[m->qh++]].live = false;
        m->live--;
    }
}

static int ref_check(struct ref *m, unsigned id, int32_t p, int64_t o, int64_t now)
{
    ref_expire(m, now);
    struct ref_key *k = &m->k[id];
    if (k->live)
        return k->partition == p && k->offset == o ? NEW : DUP;
    *k = (struct ref_key){ m->last, o, p, true };
    m->fifo[m->qt++] = id;
    m->live++;
    return NEW;
}

static void ref_key_name(char *buf, size_t size, unsigned id)
{
    snprintf(buf, size, "cam-%u-%u", id % 97, id);
}

/* Every live key of the model is found with its first sighting; `dead` ids
 * (or all ids below `ids` when dead is 0) that the model has let go are not. */
static void verify_against_ref(const dedup_t *d, const struct ref *m, unsigned ids,
                               uint64_t *rng, unsigned dead)
{
    char key[48];
    check_invariants(d);
    assert_int_equal(dedup_count(d), m->live);
    for (size_t q = m->qh; q < m->qt; q++) {
        unsigned id = m->fifo[q];
        ref_key_name(key, sizeof key, id);
        const struct entry *e = find(d, key);
        if (!e)
            fail_msg("live key %u lost", id);
        if (e->seen != (uint32_t)m->k[id].seen ||
            e->where != where_hash(m->k[id].partition, m->k[id].offset))
            fail_msg("live key %u: wrong entry", id);
    }
    for (unsigned j = 0; j < (dead ? dead : ids); j++) {
        unsigned id = dead ? (unsigned)(rng_next(rng) % ids) : j;
        if (m->k[id].live)
            continue;
        ref_key_name(key, sizeof key, id);
        if (find(d, key))
            fail_msg("expired key %u still found", id);
    }
}

/* 300k operations with a fixed seed. The rate swings between 40 keys and
 * half a key a millisecond, so the live count swings between ~500 and ~20k
 * and the index grows and shrinks many times through sizes that are not
 * powers of two; the model is checked in full at every rebuild. */
static void test_index_vs_reference(void **state)
{
    (void)state;
    enum { OPS = 300000, RECENT = 4000, PHASE = 20000 };
    uint64_t seed = 0x5EED2024u, vrng = 42;
    struct ref m = { calloc(OPS, sizeof *m.k), calloc(OPS, sizeof *m.fifo),
                     0, 0, 0, 1000, INT64_MIN };
    assert_non_null(m.k);
    assert_non_null(m.fifo);
    dedup_t *d = dedup_new(m.window, 0);
    assert_non_null(d);
    int64_t now = 0, offset = 0;
    unsigned ids = 0;
    size_t slots = d->slots, grows = 0, shrinks = 0, odd_sizes = 0, bulk = 0;
    char key[48];
    for (unsigned op = 0; op < OPS; op++) {
        uint64_t r = rng_next(&seed);
        bool busy = (op / PHASE) % 2 == 0;
        now += busy ? (r % 40 == 0) : 2;
        if (r % 499 == 0)
            now -= 5;                                   /* clock goes back */
        if (op % 80000 == 59999) {      /* idle gap at the end of a busy phase */
            now += m.window + 1 + (int64_t)(r % 100);
            bulk++;
        }
        if ((r >> 8) % 33 == 0) {
            dedup_expire(d, now);
            ref_expire(&m, now);
        } else {
            unsigned id;
            if ((r >> 16) % 4 != 0 || ids == 0)
                id = ids++;
            else
                id = ids - 1 - (unsigned)((r >> 24) % (ids < RECENT ? ids : RECENT));
            int32_t p;
            int64_t o;
            if (m.k[id].live && (r >> 40) % 5 == 0) {   /* re-delivery */
                p = m.k[id].partition;
                o = m.k[id].offset;
            } else {
                p = (int32_t)((r >> 44) % 8);
                o = ++offset;
            }
            ref_key_name(key, sizeof key, id);
            int want = ref_check(&m, id, p, o, now);
            int got = dedup_check(d, key, strlen(key), p, o, now);
            if (got != want)
                fail_msg("op %u key %u: got %d, want %d", op, id, got, want);
        }
        if (dedup_count(d) != m.live)
            fail_msg("op %u: count %zu, want %zu", op, dedup_count(d), m.live);
        if (d->slots != slots) {
            if (d->slots > slots)
                grows++;
            else
                shrinks++;
            slots = d->slots;
            odd_sizes += (slots & (slots - 1)) != 0;
            verify_against_ref(d, &m, ids, &vrng, 2000);
        }
        if (op % 50000 == 49999)
            verify_against_ref(d, &m, ids, &vrng, 0);
    }
    verify_against_ref(d, &m, ids, &vrng, 0);
    if (grows < 20 || shrinks < 20 || odd_sizes < 40 || bulk < 4)
        fail_msg("grows %zu shrinks %zu odd sizes %zu bulk %zu: not exercised",
                 grows, shrinks, odd_sizes, bulk);
    dedup_free(d);
    free(m.k);
    free(m.fifo);
}

/* ---- probe sequences that wrap around the end of the index ---- */

/* Distinct keys "<prefix>-<n>" whose home slot (in `slots`) is `home`. */
static void keys_at_home(char (*out)[24], size_t want, const char *prefix,
                         size_t home, size_t slots, unsigned *n)
{
    for (size_t k = 0; k < want; (*n)++) {
        snprintf(out[k], sizeof out[k], "%s-%u", prefix, *n);
        if (home_of_key(out[k], slots) == home)
            k++;
    }
}

static void assert_layout(const dedup_t *d, char (*keys)[24], const size_t *slot,
                          size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (slot_of_key(d, keys[k]) != slot[k])
            fail_msg("%s in slot %zu, want %zu", keys[k], slot_of_key(d, keys[k]),
                     slot[k]);
    check_invariants(d);
}

static void test_probe_wrap(void **state)
{
    (void)state;
    dedup_t *d = dedup_new(10, 1000);
    assert_non_null(d);
    const size_t S = d->slots;
    assert_int_equal(S, 1601);
    /* B home S-2; A1..A4 home S-1 (the last slot); C1, C2 home 0 */
    char keys[7][24];
    unsigned n = 0;
    keys_at_home(&keys[0], 1, "b", S - 2, S, &n);
    keys_at_home(&keys[1], 4, "a", S - 1, S, &n);
    keys_at_home(&keys[5], 2, "c", 0, S, &n);
    /* arrival: B, A1, A2, A3, C1, A4, C2, one a millisecond */
    const int order[7] = { 0, 1, 2, 3, 5, 4, 6 };
    for (int t = 0; t < 7; t++) {
        const char *k = keys[order[t]];
        assert_int_equal(dedup_check(d, k, strlen(k), 0, t, t), DEDUP_NEW);
    }
    /* Robin Hood: A4 (home S-1, 3 away) takes C1's place (home 0, 2 away) */
    const size_t before[7] = { S - 2, S - 1, 0, 1, 2, 3, 4 };
    assert_layout(d, keys, before, 7);
    assert_int_equal(d->index[2] >> LOW_BITS, 3 + 1);   /* A4 at disp 3 */
    assert_int_equal(d->index[3] >> LOW_BITS, 3 + 1);   /* C1 pushed to disp 3 */
    for (int t = 0; t < 7; t++) {
        const char *k = keys[order[t]];
        assert_int_equal(dedup_check(d, k, strlen(k), 1, t, 7), DEDUP_DUPLICATE);
        assert_int_equal(dedup_check(d, k, strlen(k), 0, t, 7), DEDUP_NEW);  /* again */
    }
    assert_int_equal(dedup_count(d), 7);
    /* an absent key homed at the last slot probes across the wrap */
    char absent[1][24];
    keys_at_home(absent, 1, "x", S - 1, S, &n);
    assert_null(find(d, absent[0]));

    /* B goes (t = 0): A1 is at home, nothing moves */
    dedup_expire(d, 11);
    assert_null(find(d, keys[0]));
    assert_int_equal(d->index[S - 2], 0);
    assert_layout(d, keys + 1, before + 1, 6);
    /* A1 goes (t = 1): the run shifts back across the wrap */
    dedup_expire(d, 12);
    assert_null(find(d, keys[1]));
    const size_t after[5] = { S - 1, 0, 1, 2, 3 };          /* A2 A3 A4 C1 C2 */
    assert_layout(d, keys + 2, after, 5);
    assert_int_equal(d->index[4], 0);
    /* the absent key (home S-1, like A2..A4) goes after them, taking C1's
     * slot; C1, carried on, passes C2 (same home, same distance by then) */
    assert_int_equal(dedup_check(d, absent[0], strlen(absent[0]), 0, 99, 12), DEDUP_NEW);
    assert_int_equal(slot_of_key(d, absent[0]), 2);
    const size_t moved[5] = { S - 1, 0, 1, 4, 3 };          /* A2 A3 A4 C1 C2 */
    assert_layout(d, keys + 2, moved, 5);
    /* the rest go one by one; the survivors stay findable */
    for (int64_t t = 13; t <= 17; t++) {
        dedup_expire(d, t);
        check_invariants(d);
        for (int k = 0; k < 7; k++) {
            int64_t seen = 0;
            while (order[seen] != k)
                seen++;
            if ((find(d, keys[k]) != NULL) != (t - seen <= 10))
                fail_msg("t %lld: key %d", (long long)t, k);
        }
    }
    assert_non_null(find(d, absent[0]));
    dedup_expire(d, 23);
    assert_int_equal(dedup_count(d), 0);
    check_invariants(d);
    dedup_free(d);
}

/* 20 keys with one home near the end: displacements reach past DISP_SAT, so
 * the saturated slots' homes come from the ring, across the wrap. */
static void test_saturated_displacement(void **state)
{
    (void)state;
    enum { SAME = 20, AFTER = 4 };
    dedup_t *d = dedup_new(100, 1000);
    assert_non_null(d);
    const size_t S = d->slots, H = S - 6;
    char keys[SAME + AFTER][24];
    unsigned n = 0;
    keys_at_home(keys, SAME, "s", H, S, &n);
    keys_at_home(keys + SAME, 2, "t", 0, S, &n);
    keys_at_home(keys + SAME + 2, 2, "u", 5, S, &n);
    for (int k = 0; k < SAME + AFTER; k++)
        assert_int_equal(dedup_check(d, keys[k], strlen(keys[k]), 0, k, k), DEDUP_NEW);
    check_invariants(d);
    size_t saturated = 0;
    for (size_t i = 0; i < S; i++)
        saturated += d->index[i] >> LOW_BITS == DISP_SAT + 1;
    assert_true(saturated >= SAME - DISP_SAT);
    for (int k = 0; k < SAME; k++)            /* in arrival order from home */
        assert_int_equal(slot_of_key(d, keys[k]), (H + (size_t)k) % S);
    for (int k = 0; k < SAME + AFTER; k++)
        assert_int_equal(dedup_check(d, keys[k], strlen(keys[k]), 1, k, SAME + AFTER),
                         DEDUP_DUPLICATE);
    char absent[1][24];
    keys_at_home(absent, 1, "v", H, S, &n);
    assert_null(find(d, absent[0]));
    /* out in arrival order; each deletion shifts saturated slots back */
    for (int t = 101; t < 101 + SAME + AFTER; t++) {
        dedup_expire(d, t);
        check_invariants(d);
        for (int k = 0; k < SAME + AFTER; k++)
            if ((find(d, keys[k]) != NULL) != (k >= t - 100))
                fail_msg("t %d: key %d", t, k);
    }
    assert_int_equal(dedup_count(d), 0);
    dedup_free(d);
}

/* ---- capacity and allocation failures ---- */

static void test_max_keys(void **state)
{
    (void)state;
    assert_int_equal(DEDUP_MAX_KEYS, 134216704);
    dedup_t *d = dedup_new(100, 0);
    assert_non_null(d);
    assert_int_equal(d->max_keys, DEDUP_MAX_KEYS);
    d->max_keys = 3000;                 /* a small cap: same code path */
    char key[32];
    for (unsigned i = 0; i < 3000; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, i / 100), DEDUP_NEW);
    }
    assert_int_equal(dedup_check(d, "full", 4, 0, 3000, 29), -1);
    assert_int_equal(dedup_count(d), 3000);
    assert_null(find(d, "full"));
    check_invariants(d);
    key_of(key, sizeof key, 7);          /* lookups still answer */
    assert_int_equal(dedup_check(d, key, strlen(key), 0, 8, 29), DEDUP_DUPLICATE);
    assert_int_equal(dedup_check(d, key, strlen(key), 0, 7, 29), DEDUP_NEW);
    assert_int_equal(dedup_count(d), 3000);
    /* the first 1000 keys (seen at 0..9) expire at 110: room again */
    assert_int_equal(dedup_check(d, "full", 4, 0, 3000, 110), DEDUP_NEW);
    assert_int_equal(dedup_count(d), 2001);
    for (unsigned i = 3001; i < 4000; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, 110), DEDUP_NEW);
    }
    assert_int_equal(dedup_check(d, "over", 4, 0, 4000, 110), -1);
    check_invariants(d);
    dedup_free(d);
}

/* Fails the k-th allocation for k = 1, 2, ... through a run that grows and
 * shrinks the index and the directory and empties the set at once: every
 * failure is -1 or a NULL dedup_new, leaves the state consistent, and leaks
 * nothing (ASan / valgrind). */
static void test_allocation_failures(void **state)
{
    (void)state;
    enum { OPS = 12000, W = 400 };
    long points = 0, refused_total = 0;
    loose_load = true;
    for (long k = 1;; k++) {
        alloc_fail_at = k;
        dedup_t *d = dedup_new(W, 100);
        if (!d) {
            assert_true(k <= 3);
            continue;
        }
        int64_t *seen = malloc(OPS * sizeof *seen);
        assert_non_null(seen);
        char key[32];
        int64_t now = 0;
        size_t refused = 0;
        for (unsigned i = 0; i < OPS; i++) {
            /* 25 keys a ms (growing), then one every 2 ms (shrinking), with
             * one idle gap that empties the set */
            now += i < OPS / 2 ? (i % 25 == 0) : (i % 2 == 0);
            if (i == 3 * OPS / 4)
                now += W + 1;
            key_of(key, sizeof key, i);
            size_t before = dedup_count(d);
            int r = dedup_check(d, key, strlen(key), 0, i, now);
            if (r == -1) {
                refused++;
                seen[i] = -1;
                assert_null(find(d, key));
                assert_true(dedup_count(d) <= before);
                check_invariants(d);
            } else {
                assert_int_equal(r, DEDUP_NEW);
                seen[i] = now;
            }
        }
        bool done = alloc_fail_at != 0;      /* the k-th allocation never came */
        alloc_fail_at = 0;
        check_invariants(d);
        for (unsigned i = 0; i < OPS; i++) {
            key_of(key, sizeof key, i);
            bool live = seen[i] >= 0 && now - seen[i] <= W;
            if (live != (find(d, key) != NULL))
                fail_msg("k %ld: key %u: %s", k, i, live ? "lost" : "still there");
        }
        free(seen);
        dedup_free(d);
        if (done)
            break;
        points++;
        refused_total += (long)refused;
    }
    loose_load = false;
    if (points < 20 || refused_total < 10)
        fail_msg("%ld failure points, %ld refusals: not exercised", points,
                 refused_total);
}

/* ---- the memory target ---- */

/* <= 32 bytes a key by dedup_bytes() at 1M keys, and at every count from
 * 200k up while growing and while expiring back down. */
static void test_bytes_per_key_1m(void **state)
{
    (void)state;
    enum { N = 1000000, FLOOR = 200000 };
    dedup_t *d = dedup_new(1000, 0);
    assert_non_null(d);
    char key[40];
    for (unsigned i = 0; i < N; i++) {
        int len = snprintf(key, sizeof key, "ev-1-%u", i);
        assert_int_equal(dedup_check(d, key, (size_t)len, (int32_t)(i % 64), i, i / 1000),
                         DEDUP_NEW);
        size_t c = i + 1;
        if (c >= FLOOR && dedup_bytes(d) > 32 * c)
            fail_msg("%zu keys: %zu bytes", c, dedup_bytes(d));
    }
    assert_int_equal(dedup_count(d), N);
    assert_true(dedup_bytes(d) <= (size_t)32 * N);
    check_invariants(d);
    size_t slots = d->slots;
    for (int64_t t = 1001; t <= 2000; t++) {
        dedup_expire(d, t);
        size_t c = dedup_count(d);
        assert_int_equal(c, (size_t)(2000 - t) * 1000);
        if (c >= FLOOR && dedup_bytes(d) > 32 * c)
            fail_msg("%zu keys: %zu bytes", c, dedup_bytes(d));
        if (t % 100 == 0)
            check_invariants(d);
    }
    assert_true(d->slots < slots);
    dedup_free(d);
}

int main(void)
{
    enum { NS = sizeof scenarios / sizeof scenarios[0], NX = 10 };
    struct CMUnitTest tests[NS + NX];
    for (size_t i = 0; i < NS; i++)
        tests[i] = (struct CMUnitTest){ .name = scenarios[i].name,
                                        .test_func = run_scenario,
                                        .initial_state = (void *)&scenarios[i] };
    const struct CMUnitTest extra[NX] = {
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_bytes_grow_with_count),
        cmocka_unit_test(test_random_vs_model),
        cmocka_unit_test(test_chunk_boundaries),
        cmocka_unit_test(test_index_vs_reference),
        cmocka_unit_test(test_probe_wrap),
        cmocka_unit_test(test_saturated_displacement),
        cmocka_unit_test(test_max_keys),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_bytes_per_key_1m),
    };
    memcpy(tests + NS, extra, sizeof extra);
    return _cmocka_run_group_tests("dedup", tests, NS + NX, NULL, NULL);
}
