/* Unit tests for dedup: scripted scenarios, growth, and a random run checked
 * against a naive array model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "camjoin/dedup.h"

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
    }
    dedup_free(d);
}

static void key_of(char *buf, size_t size, unsigned n)
{
    snprintf(buf, size, "evt-%08u", n);
}

/* 100k distinct keys through several doublings from the minimum size. */
static void test_growth(void **state)
{
    (void)state;
    enum { N = 100000 };
    dedup_t *d = dedup_new(600000, 1);
    assert_non_null(d);
    size_t bytes0 = dedup_bytes(d);
    char key[32];
    for (unsigned i = 0; i < N; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, i / 10), DEDUP_NEW);
    }
    assert_int_equal(dedup_count(d), N);
    for (unsigned i = 0; i < N; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 1, i, 10000),
                         DEDUP_DUPLICATE);
    }
    assert_int_equal(dedup_count(d), N);
    /* ring 1024 -> 131072 entries of 32 bytes, index twice that of 4 bytes */
    assert_int_equal(dedup_bytes(d) - bytes0,
                     (131072 - 1024) * 32 + (262144 - 2048) * 4);
    dedup_free(d);
}

static void test_bytes_grow_with_count(void **state)
{
    (void)state;
    dedup_t *d = dedup_new(1000, 1000);
    assert_non_null(d);
    size_t before = dedup_bytes(d);
    assert_true(before >= 1024 * (32 + 8));
    char key[32];
    for (unsigned i = 0; i < 1024; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(dedup_check(d, key, strlen(key), 0, i, 0), DEDUP_NEW);
    }
    assert_int_equal(dedup_bytes(d), before);    /* full, not yet grown */
    assert_int_equal(dedup_check(d, "one more", 8, 0, 1024, 0), DEDUP_NEW);
    assert_int_equal(dedup_bytes(d) - before, 1024 * 32 + 2048 * 4);
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
        if (op % 97 == 0)
            assert_all_findable(d, &m);
        if (m.n > max_live)
            max_live = m.n;
    }
    if (max_live <= 1024)
        fail_msg("max live %zu: the run did not exercise growth", max_live);
    dedup_free(d);
    free(m.e);
}

int main(void)
{
    enum { NS = sizeof scenarios / sizeof scenarios[0], NX = 3 };
    struct CMUnitTest tests[NS + NX];
    for (size_t i = 0; i < NS; i++)
        tests[i] = (struct CMUnitTest){ .name = scenarios[i].name,
                                        .test_func = run_scenario,
                                        .initial_state = (void *)&scenarios[i] };
    const struct CMUnitTest extra[NX] = {
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_bytes_grow_with_count),
        cmocka_unit_test(test_random_vs_model),
    };
    memcpy(tests + NS, extra, sizeof extra);
    return _cmocka_run_group_tests("dedup", tests, NS + NX, NULL, NULL);
}
