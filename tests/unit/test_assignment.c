/*
 * Unit tests for the assignment module: the transition table, and every
 * path of positioning driven through a recording io table — the requests
 * it makes (with their rounds), the starts it reports, stale answers that
 * must find nobody, failures retried at the tick, eager and cooperative
 * revokes, the replay spec and the clamping of start offsets. Every
 * expected value is written out by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/assignment.h"
#include "camjoin/batch.h"

#define MAXP 8

/* what the module asked for, most recent last */
struct rec {
    int reads, warms, resolves, positions;
    uint64_t read_round, warm_round, resolve_round;
    int32_t warm_parts[MAXP], resolve_parts[MAXP];
    size_t nwarm, nresolve;
    int64_t resolve_time;
    assignment_start_t starts[MAXP];
    size_t nstarts;
    int fail_read, fail_resolve, fail_positioned;
    int64_t resolve_until;
};

static int io_read(void *ud, uint64_t round)
{
    struct rec *r = ud;
    r->reads++;
    r->read_round = round;
    return r->fail_read ? -1 : 0;
}

static int io_warm(void *ud, uint64_t round, const int32_t *parts, size_t n)
{
    struct rec *r = ud;
    r->warms++;
    r->warm_round = round;
    memcpy(r->warm_parts, parts, n * sizeof *parts);
    r->nwarm = n;
    return 0;
}

static int io_resolve(void *ud, uint64_t round, const int32_t *parts, size_t n,
                      int64_t time_ms, int64_t until_ms)
{
    struct rec *r = ud;
    r->resolves++;
    r->resolve_round = round;
    memcpy(r->resolve_parts, parts, n * sizeof *parts);
    r->nresolve = n;
    r->resolve_time = time_ms;
    r->resolve_until = until_ms;
    return r->fail_resolve ? -1 : 0;
}

static int io_positioned(void *ud, const assignment_start_t *s, size_t n)
{
    struct rec *r = ud;
    r->positions++;
    memcpy(r->starts, s, n * sizeof *s);
    r->nstarts = n;
    return r->fail_positioned ? -1 : 0;
}

static const assignment_io IO = {io_read, io_warm, io_resolve, io_positioned};

static assignment_t *make(struct rec *r, replay_spec_t *replay, int warm, int latest)
{
    replay_spec_t none = {.kind = REPLAY_NONE};
    memset(r, 0, sizeof *r);
    replay_spec_t no_until = {.kind = REPLAY_NONE};
    assignment_t *a = assignment_new(&IO, r, replay ? replay : &none, &no_until, warm, latest);
    assert_non_null(a);
    return a;
}

/* answers the module's resolve with these watermarks (and at_time) */
static void resolve(assignment_t *a, struct rec *r, const int64_t *low,
                    const int64_t *high, const int64_t *at)
{
    source_resolved_t res = {.n = r->nresolve, .partitions = r->resolve_parts,
                             .low = low, .high = high, .at_time = at, .at_until = high};
    assignment_resolved(a, r->resolve_round, &res);
}

/* assignment_plan: where a partition starts and stops, every spec kind */
static void test_plan(void **state)
{
    (void)state;
    int32_t fp[] = {1}, up[] = {1, 3};
    int64_t fo[] = {40}, uo[] = {30, 5};
    replay_spec_t none = {.kind = REPLAY_NONE};
    replay_spec_t from_time = {.kind = REPLAY_TIME, .time_ms = 1000};
    replay_spec_t from_parts = {.kind = REPLAY_PARTITIONS, .n = 1, .partitions = fp, .offsets = fo};
    replay_spec_t until_off = {.kind = REPLAY_OFFSET, .offset = 50};
    replay_spec_t until_low = {.kind = REPLAY_OFFSET, .offset = 5};
    replay_spec_t until_high = {.kind = REPLAY_OFFSET, .offset = 500};
    replay_spec_t until_parts = {.kind = REPLAY_PARTITIONS, .n = 2, .partitions = up, .offsets = uo};
    replay_spec_t until_time = {.kind = REPLAY_TIME, .time_ms = 2000};
    static const struct {
        int from, apply, until;
        int32_t id;
        int64_t stored, low, high, at_time, at_until;
        int64_t offset, end;
        int replayed;
        enum assignment_clamp clamp;
    } cases[] = {
        /* from: 0 none, 1 time, 2 parts; until: 0 none, 1 off 50, 2 off 5, 3 off 500,
         * 4 parts {1:30, 3:5}, 5 time */
        {0, 1, 0, 1, 10, 0, 100, 100, 100, 10, -1, 0, ASSIGN_CLAMP_NONE},
        {0, 1, 0, 1, BATCH_OFFSET_NONE, 2, 100, 100, 100, 2, -1, 0, ASSIGN_CLAMP_NONE},
        {1, 1, 0, 1, 10, 0, 100, 60, 100, 60, -1, 1, ASSIGN_CLAMP_NONE},
        {1, 0, 0, 1, 10, 0, 100, 60, 100, 10, -1, 0, ASSIGN_CLAMP_NONE}, /* applied before */
        {2, 1, 0, 1, 10, 0, 100, 100, 100, 40, -1, 1, ASSIGN_CLAMP_NONE},
        {2, 1, 0, 2, 10, 0, 100, 100, 100, 10, -1, 0, ASSIGN_CLAMP_NONE}, /* not listed */
        {0, 1, 0, 1, 3, 8, 100, 100, 100, 8, -1, 0, ASSIGN_CLAMP_GAP},
        {0, 1, 1, 1, 10, 0, 100, 100, 100, 10, 50, 0, ASSIGN_CLAMP_NONE},
        {0, 1, 2, 1, 10, 0, 100, 100, 100, 10, 10, 0, ASSIGN_CLAMP_NONE}, /* below the start */
        {0, 1, 3, 1, 10, 0, 100, 100, 100, 10, 100, 0, ASSIGN_CLAMP_NONE}, /* above the end */
        {0, 1, 4, 1, 10, 0, 100, 100, 100, 10, 30, 0, ASSIGN_CLAMP_NONE},
        {0, 1, 4, 2, 10, 0, 100, 100, 100, 10, 100, 0, ASSIGN_CLAMP_NONE}, /* not listed */
        {0, 1, 4, 3, 10, 0, 100, 100, 100, 10, 10, 0, ASSIGN_CLAMP_NONE},
        {1, 1, 5, 1, 10, 0, 100, 60, 75, 60, 75, 1, ASSIGN_CLAMP_NONE},
    };
    const replay_spec_t *froms[] = {&none, &from_time, &from_parts};
    const replay_spec_t *untils[] = {&none, &until_off, &until_low, &until_high, &until_parts,
                                     &until_time};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        assignment_start_t st = assignment_plan(
            froms[cases[i].from], cases[i].apply, untils[cases[i].until], 0, cases[i].id,
            cases[i].stored, cases[i].low, cases[i].high, cases[i].at_time, cases[i].at_until);
        if (st.offset != cases[i].offset || st.end != cases[i].end ||
            st.replayed != cases[i].replayed || st.clamp != cases[i].clamp)
            fail_msg("case %zu: offset %lld end %lld replayed %d clamp %d", i,
                     (long long)st.offset, (long long)st.end, st.replayed, (int)st.clamp);
    }
}

static void test_legal_transitions(void **state)
{
    (void)state;
    enum { I = ASSIGN_IDLE, R = ASSIGN_READ_OFFSETS, W = ASSIGN_WARMING,
           S = ASSIGN_RESOLVING, A = ASSIGN_ACTIVE, V = ASSIGN_REVOKING };
    /* rows: from; columns: to I R W S A V */
    static const int table[6][6] = {
        /* I */ {0, 1, 0, 0, 0, 0},
        /* R */ {1, 1, 1, 1, 0, 0},
        /* W */ {1, 1, 0, 1, 0, 0},
        /* S */ {1, 1, 0, 0, 1, 0},
        /* A */ {1, 1, 0, 0, 0, 1},
        /* V */ {1, 1, 0, 0, 0, 0},
    };
    for (int f = I; f <= V; f++)
        for (int t = I; t <= V; t++)
            assert_int_equal(assignment_legal((enum assignment_state)f,
                                              (enum assignment_state)t), table[f][t]);
}

/* assign → offsets → warm → resolve → positioned, with every kind of start */
static void test_full_round(void **state)
{
    (void)state;
    struct rec r;
    assignment_t *a = make(&r, NULL, 1, 0);
    const int32_t parts[] = {0, 1, 2, 3};
    assert_int_equal(assignment_settled(a), 0); /* no assign yet */
    assert_int_equal(assignment_assign(a, parts, 4), 0);
    assert_int_equal(r.reads, 1);
    assert_int_equal(r.read_round, 1);
    assert_int_equal(assignment_state_of(a, 2), ASSIGN_READ_OFFSETS);
    assert_int_equal(assignment_count(a), 4);
    assert_int_equal(assignment_settled(a), 0);

    /* stored: 0 → 5, 2 → 3 (below the log start 10), 3 → 90 (beyond 50), 1: none;
     * 7 is another partition of the group, not ours */
    const int32_t sp[] = {0, 2, 3, 7};
    const int64_t sn[] = {5, 3, 90, 44};
    assignment_offsets(a, 1, 0, sp, sn, 4);
    assert_int_equal(r.warms, 1);
    assert_int_equal(r.warm_round, 1);
    assert_int_equal(r.nwarm, 4);
    assert_int_equal(assignment_state_of(a, 0), ASSIGN_WARMING);
    assert_int_equal(assignment_warming(a, 1, 0), 1);
    assert_int_equal(assignment_warming(a, 2, 0), 0); /* another round's row */
    assert_int_equal(assignment_warming(a, 1, 7), 0); /* not ours */
    assert_int_equal(r.resolves, 0);

    assignment_warmed(a, 1, 0, 12);
    assert_int_equal(r.resolves, 1);
    assert_int_equal(r.resolve_time, -1);
    assert_int_equal(r.nresolve, 4);
    assert_int_equal(assignment_state_of(a, 3), ASSIGN_RESOLVING);

    const int64_t low[] = {0, 0, 10, 0}, high[] = {100, 100, 100, 50};
    resolve(a, &r, low, high, high);
    assert_int_equal(r.positions, 1);
    assert_int_equal(r.nstarts, 4);
    assert_int_equal(r.starts[0].partition, 0);
    assert_int_equal(r.starts[0].offset, 5);
    assert_int_equal(r.starts[0].clamp, ASSIGN_CLAMP_NONE);
    assert_int_equal(r.starts[1].offset, 0); /* none stored: earliest */
    assert_int_equal(r.starts[1].clamp, ASSIGN_CLAMP_NONE);
    assert_int_equal(r.starts[2].offset, 10);
    assert_int_equal(r.starts[2].wanted, 3);
    assert_int_equal(r.starts[2].clamp, ASSIGN_CLAMP_GAP);
    assert_int_equal(r.starts[3].offset, 50);
    assert_int_equal(r.starts[3].wanted, 90);
    assert_int_equal(r.starts[3].clamp, ASSIGN_CLAMP_HIGH);
    assert_int_equal(assignment_settled(a), 1);
    assert_int_equal(assignment_active_count(a), 4);

    const assignment_pos_t *p2 = assignment_peek(a, 2);
    assert_non_null(p2);
    assert_int_equal(p2->next, 10);
    assert_int_equal(p2->committed, 10);
    assert_int_equal(p2->stored, 3);
    assert_int_equal(p2->high, 100);
    assert_int_equal(assignment_stored(a, 1), BATCH_OFFSET_NONE);

    assert_int_equal(assignment_committed(a, 2, 40), 1);
    assert_int_equal(assignment_peek(a, 2)->committed, 40);
    assert_int_equal(assignment_stored(a, 2), 40);
    assert_int_equal(assignment_committed(a, 7, 9), 0); /* never ours */
    assignment_free(a);
}

/* a reply of an older round finds nobody; the new round's reply applies */
static void test_stale_replies(void **state)
{
    (void)state;
    struct rec r;
    assignment_t *a = make(&r, NULL, 0, 1);
    const int32_t parts[] = {0, 1};
    assert_int_equal(assignment_assign(a, parts, 2), 0);
    assert_int_equal(assignment_reposition(a), 0); /* e.g. a fence */
    assert_int_equal(r.reads, 2);
    assert_int_equal(r.read_round, 2);
    const int32_t sp[] = {0};
    const int64_t sn[] = {7};
    assignment_offsets(a, 1, 0, sp, sn, 1); /* stale */
    assert_int_equal(r.resolves, 0);
    assert_int_equal(assignment_state_of(a, 0), ASSIGN_READ_OFFSETS);
    assignment_offsets(a, 2, 0, sp, sn, 1);
    assert_int_equal(r.resolves, 1); /* no warm-up: straight to resolving */
    assert_int_equal(r.resolve_round, 2);
    /* a revoke in the middle: the resolve answer finds nobody */
    assignment_revoke(a, NULL, 0, 0);
    const int64_t low[] = {0, 0}, high[] = {20, 30};
    resolve(a, &r, low, high, high);
    assert_int_equal(r.positions, 0);
    assert_int_equal(assignment_count(a), 0);
    assert_int_equal(assignment_settled(a), 0); /* waits for the next assign */
    /* assigned again: offset reset "latest" for the one with none stored */
    assert_int_equal(assignment_assign(a, parts, 2), 0);
    assert_int_equal(r.read_round, 3);
    assignment_offsets(a, 3, 0, sp, sn, 1);
    resolve(a, &r, low, high, high);
    assert_int_equal(r.positions, 1);
    assert_int_equal(r.starts[0].offset, 7);
    assert_int_equal(r.starts[1].offset, 30);
    assignment_free(a);
}

/* failed requests leave the partitions for the tick, which starts a new round */
static void test_failures_retry_at_tick(void **state)
{
    (void)state;
    struct rec r;
    assignment_t *a = make(&r, NULL, 0, 0);
    const int32_t parts[] = {4};
    r.fail_read = 1;
    assert_int_equal(assignment_assign(a, parts, 1), 0);
    assert_int_equal(r.reads, 1);
    r.fail_read = 0;
    assert_int_equal(assignment_tick(a), 0);
    assert_int_equal(r.reads, 2);
    assert_int_equal(r.read_round, 2);
    assert_int_equal(assignment_tick(a), 0); /* nothing stalled any more */
    assert_int_equal(r.reads, 2);

    assignment_offsets(a, 2, 0, NULL, NULL, 0);
    assert_int_equal(r.resolves, 1);
    source_resolved_t bad = {.n = 1, .partitions = parts, .status = -1, .err = "x"};
    assignment_resolved(a, 2, &bad);
    assert_int_equal(assignment_state_of(a, 4), ASSIGN_READ_OFFSETS);
    assert_int_equal(assignment_tick(a), 0);
    assert_int_equal(r.reads, 3);
    assignment_offsets(a, 3, 0, NULL, NULL, 0);
    r.fail_positioned = 1;
    const int64_t low[] = {2}, high[] = {9};
    resolve(a, &r, low, high, high);
    assert_int_equal(r.positions, 1);
    assert_int_equal(assignment_state_of(a, 4), ASSIGN_READ_OFFSETS);
    r.fail_positioned = 0;
    assert_int_equal(assignment_tick(a), 0);
    assert_int_equal(r.reads, 4);
    assignment_offsets(a, 4, 0, NULL, NULL, 0);
    resolve(a, &r, low, high, high);
    assert_int_equal(r.positions, 2);
    assert_int_equal(r.starts[0].offset, 2);
    assert_int_equal(assignment_settled(a), 1);
    assignment_free(a);
}

static void position_all(assignment_t *a, struct rec *r, const int32_t *parts, size_t n)
{
    int64_t low[MAXP] = {0}, high[MAXP];
    for (size_t i = 0; i < MAXP; i++)
        high[i] = 100;
    assert_int_equal(assignment_assign(a, parts, n), 0);
    assignment_offsets(a, r->read_round, 0, NULL, NULL, 0);
    resolve(a, r, low, high, high);
}

/* cooperative: ACTIVE partitions go through REVOKING; the rest stay ACTIVE */
static void test_cooperative_revoke(void **state)
{
    (void)state;
    struct rec r;
    assignment_t *a = make(&r, NULL, 0, 0);
    const int32_t parts[] = {0, 1, 2};
    position_all(a, &r, parts, 3);
    assert_int_equal(assignment_active_count(a), 3);
    /* partition 5 is added while 1 is revoked */
    const int32_t add[] = {5};
    assert_int_equal(assignment_assign(a, add, 1), 0);
    const int32_t rev[] = {1, 5};
    assignment_revoke(a, rev, 2, 1);
    assert_int_equal(assignment_state_of(a, 1), ASSIGN_REVOKING);
    assert_int_equal(assignment_state_of(a, 5), ASSIGN_IDLE); /* was positioning */
    assert_null(assignment_active(a, 1));
    assert_non_null(assignment_active(a, 0));
    assert_int_equal(assignment_count(a), 3); /* 0, 1 (revoking), 2 */
    assert_int_equal(assignment_settled(a), 0);
    assert_int_equal(assignment_committed(a, 1, 60), 0); /* stored moves, no Kafka commit */
    assert_int_equal(assignment_stored(a, 1), 60);
    /* a reposition leaves the revoking one alone */
    int reads = r.reads;
    assert_int_equal(assignment_reposition(a), 0);
    assert_int_equal(r.reads, reads + 1);
    assert_int_equal(assignment_state_of(a, 1), ASSIGN_REVOKING);
    assert_int_equal(assignment_state_of(a, 0), ASSIGN_READ_OFFSETS);
    int32_t out[MAXP];
    assert_int_equal(assignment_release(a, out), 1);
    assert_int_equal(out[0], 1);
    assert_int_equal(assignment_count(a), 2);
    assert_int_equal(assignment_at(a, 0), 0);
    assert_int_equal(assignment_at(a, 1), 2);
    assert_int_equal(assignment_release(a, out), 0);
    assignment_free(a);
}

/* the replay spec applies on a partition's first positioning only */
static void test_replay_once(void **state)
{
    (void)state;
    struct rec r;
    int32_t rp[] = {1};
    int64_t ro[] = {7};
    replay_spec_t spec = {.kind = REPLAY_PARTITIONS, .n = 1};
    spec.partitions = malloc(sizeof rp);
    spec.offsets = malloc(sizeof ro);
    memcpy(spec.partitions, rp, sizeof rp);
    memcpy(spec.offsets, ro, sizeof ro);
    assignment_t *a = make(&r, &spec, 0, 0);
    assert_null(spec.partitions); /* taken */
    const int32_t parts[] = {0, 1};
    const int32_t sp[] = {0, 1};
    const int64_t sn[] = {20, 30};
    const int64_t low[] = {0, 0}, high[] = {50, 50};
    assert_int_equal(assignment_assign(a, parts, 2), 0);
    assignment_offsets(a, 1, 0, sp, sn, 2);
    resolve(a, &r, low, high, high);
    assert_int_equal(r.starts[0].offset, 20);
    assert_int_equal(r.starts[1].offset, 7);
    assert_int_equal(assignment_reposition(a), 0);
    assignment_offsets(a, 2, 0, sp, sn, 2);
    resolve(a, &r, low, high, high);
    assert_int_equal(r.starts[1].offset, 30);
    assignment_free(a);
}

static void test_replay_time_and_low(void **state)
{
    (void)state;
    struct rec r;
    replay_spec_t t = {.kind = REPLAY_TIME, .time_ms = 1700000000000};
    assignment_t *a = make(&r, &t, 0, 0);
    const int32_t parts[] = {0, 1};
    assert_int_equal(assignment_assign(a, parts, 2), 0);
    assignment_offsets(a, 1, 0, NULL, NULL, 0);
    assert_int_equal(r.resolve_time, 1700000000000);
    const int64_t low[] = {0, 0}, high[] = {50, 50}, at[] = {12, 50};
    resolve(a, &r, low, high, at);
    assert_int_equal(r.starts[0].offset, 12);
    assert_int_equal(r.starts[1].offset, 50);
    assignment_free(a);

    replay_spec_t o = {.kind = REPLAY_OFFSET, .offset = 3};
    a = make(&r, &o, 0, 0);
    assert_int_equal(assignment_assign(a, parts, 2), 0);
    assignment_offsets(a, 1, 0, NULL, NULL, 0);
    const int64_t low2[] = {5, 0};
    resolve(a, &r, low2, high, high);
    assert_int_equal(r.starts[0].offset, 5);
    assert_int_equal(r.starts[0].wanted, 3);
    assert_int_equal(r.starts[0].clamp, ASSIGN_CLAMP_REPLAY_LOW); /* not a gap */
    assert_int_equal(r.starts[1].offset, 3);
    assignment_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_legal_transitions),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_full_round),
        cmocka_unit_test(test_stale_replies),
        cmocka_unit_test(test_failures_retry_at_tick),
        cmocka_unit_test(test_cooperative_revoke),
        cmocka_unit_test(test_replay_once),
        cmocka_unit_test(test_replay_time_and_low),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
