/*
 * Unit tests for rollup: the per-minute groups of a batch's event rows, as
 * the binary COPY stream the sink sends to <table>_minute.
 *
 * Expectations are written out by hand: the minute of each timestamp
 * (arithmetic in comments, checked with Python's datetime), its
 * PostgreSQL timestamptz bytes (microseconds since 2000-01-01, Python's
 * struct.pack('>q', ...)) and the float bits (struct.pack('>f', ...)). The
 * stream is read back by copy_decode.h, independent of src/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/rollup.h"
#include "copy_decode.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* 2023-11-14T22:15:23.456789Z; its minute 22:15:00 is 1700000100000000 µs
 * since 1970, 753315300000000 since 2000 */
#define TS_A INT64_C(1700000123456789)
#define MIN_A "\x00\x02\xad\x22\xe2\xdc\x41\x00"
/* 22:16:00.000000 exactly: its own minute, 753315360000000 since 2000 */
#define TS_B INT64_C(1700000160000000)
#define MIN_B "\x00\x02\xad\x22\xe6\x6f\xc8\x00"
/* 1969-12-31T23:59:59.999999Z: minute 23:59:00, -60000000 µs since 1970,
 * -946684860000000 since 2000 */
#define TS_NEG INT64_C(-1)
#define MIN_NEG "\xff\xfc\xa2\xfe\xc1\x34\x99\x00"

static int setup(void **state)
{
    *state = rollup_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    rollup_free(*state);
    return 0;
}

static event_t ev_of(const char *cam, const char *type, int64_t ts)
{
    return (event_t){.event_id = "x", .event_id_len = 1, .camera_id = cam,
                     .camera_id_len = strlen(cam), .event_type = type,
                     .event_type_len = strlen(type), .event_ts_us = ts};
}

static refdata_row_t ref_of(const char *site, const char *name, const char *zone)
{
    return (refdata_row_t){.camera_id = "c", .camera_id_len = 1, .site_id = site,
                           .site_id_len = strlen(site), .site_name = name,
                           .site_name_len = strlen(name), .zone = zone,
                           .zone_len = strlen(zone)};
}

static void add(rollup_t *r, const event_t *ev, const refdata_row_t *ref)
{
    assert_int_equal(rollup_prepare(r, ev, ref), 0);
    rollup_commit(r);
}

static size_t groups_of(rollup_t *r, struct tuple *t, size_t max)
{
    size_t len;
    const char *data = rollup_data(r, &len);
    assert_non_null(data);
    return decode(data, len, 9, t, max);
}

/* Rows of one minute, camera, type and site make one group: events counted,
 * object_count summed (absent = 0), the largest confidence as real. */
static void test_one_group(void **state)
{
    rollup_t *r = *state;
    refdata_row_t site = ref_of("s1", "Site One", "z1");
    event_t a = ev_of("cam-1", "person", TS_A);
    a.has_object_count = true, a.object_count = 2;
    a.has_confidence = true, a.confidence = 0.25;
    event_t b = ev_of("cam-1", "person", TS_A - 23000000); /* 22:15:00.456789 */
    b.has_object_count = true, b.object_count = 3;
    b.has_confidence = true, b.confidence = 0.9;
    event_t c = ev_of("cam-1", "person", TS_A + 36000000); /* 22:15:59.456789 */
    add(r, &a, &site);
    add(r, &b, &site);
    add(r, &c, &site);
    assert_int_equal(rollup_groups(r), 1);
    struct tuple t[2];
    assert_int_equal(groups_of(r, t, ARRAY_LEN(t)), 1);
    const struct want want[] = {
        W(MIN_A), W("s1"), W("Site One"), W("z1"), W("cam-1"), W("person"),
        W("\0\0\0\0\0\0\0\x03"), W("\0\0\0\0\0\0\0\x05"), W("\x3f\x66\x66\x66"),
    };
    check_tuple("one group", &t[0], want, 9);
}

/* Each key column splits groups: the minute (also before 1970, floored),
 * the camera, the type, the site, the zone, and a join miss (no reference
 * row: site_id, site_name and zone NULL). Groups come out in first-seen
 * order. */
static void test_keys_split(void **state)
{
    rollup_t *r = *state;
    refdata_row_t s1 = ref_of("s1", "Site One", "z1"), s1z2 = ref_of("s1", "Site One", "z2");
    refdata_row_t s2 = ref_of("s2", "Site Two", "z1");
    event_t evs[] = {
        ev_of("cam-1", "person", TS_A), ev_of("cam-1", "person", TS_B),
        ev_of("cam-1", "person", TS_NEG), ev_of("cam-2", "person", TS_A),
        ev_of("cam-1", "vehicle", TS_A), ev_of("cam-1", "person", TS_A),
        ev_of("cam-1", "person", TS_A), ev_of("cam-1", "person", TS_A),
    };
    const refdata_row_t *refs[] = {&s1, &s1, &s1, &s1, &s1, &s2, &s1z2, NULL};
    for (size_t i = 0; i < ARRAY_LEN(evs); i++)
        add(r, &evs[i], refs[i]);
    add(r, &evs[7], NULL); /* the join miss again: same group */
    assert_int_equal(rollup_groups(r), 8);
    struct tuple t[9];
    assert_int_equal(groups_of(r, t, ARRAY_LEN(t)), 8);
    static const char one[] = "\0\0\0\0\0\0\0\x01", zero[] = "\0\0\0\0\0\0\0\0";
    const struct want want[8][9] = {
        {W(MIN_A), W("s1"), W("Site One"), W("z1"), W("cam-1"), W("person")},
        {W(MIN_B), W("s1"), W("Site One"), W("z1"), W("cam-1"), W("person")},
        {W(MIN_NEG), W("s1"), W("Site One"), W("z1"), W("cam-1"), W("person")},
        {W(MIN_A), W("s1"), W("Site One"), W("z1"), W("cam-2"), W("person")},
        {W(MIN_A), W("s1"), W("Site One"), W("z1"), W("cam-1"), W("vehicle")},
        {W(MIN_A), W("s2"), W("Site Two"), W("z1"), W("cam-1"), W("person")},
        {W(MIN_A), W("s1"), W("Site One"), W("z2"), W("cam-1"), W("person")},
        {W(MIN_A), WNULL, WNULL, WNULL, W("cam-1"), W("person")},
    };
    for (int g = 0; g < 8; g++) {
        struct want w[9];
        memcpy(w, want[g], 6 * sizeof w[0]);
        w[6] = (struct want){8, g == 7 ? "\0\0\0\0\0\0\0\x02" : one};
        w[7] = (struct want){8, zero};
        w[8] = (struct want)WNULL; /* no confidence in any row */
        check_tuple("keys", &t[g], w, 9);
    }
}

/* site_name is not part of the key: the last one seen is kept (a reload of
 * the reference table within a batch). */
static void test_site_name_last(void **state)
{
    rollup_t *r = *state;
    refdata_row_t before = ref_of("s1", "Old name", "z1"), after = ref_of("s1", "New", "z1");
    event_t ev = ev_of("cam-1", "person", TS_A);
    add(r, &ev, &before);
    add(r, &ev, &after);
    struct tuple t[2];
    assert_int_equal(groups_of(r, t, ARRAY_LEN(t)), 1);
    check_field("site_name", 2, t[0].f[2], (struct want)W("New"));
    check_field("events", 6, t[0].f[6], (struct want)W("\0\0\0\0\0\0\0\x02"));
}

/* A prepare that is not committed leaves no trace, and neither does a
 * refused one; reset forgets every group. */
static void test_prepare_commit_reset(void **state)
{
    rollup_t *r = *state;
    refdata_row_t s1 = ref_of("s1", "Site One", "z1");
    event_t ev = ev_of("cam-1", "person", TS_A), other = ev_of("cam-9", "person", TS_A);
    add(r, &ev, &s1);
    assert_int_equal(rollup_prepare(r, &other, &s1), 0); /* never committed */
    assert_int_equal(rollup_prepare(r, &ev, &s1), 0);     /* this one is */
    rollup_commit(r);
    event_t huge = ev;
    huge.camera_id_len = (size_t)INT32_MAX + 1;
    assert_int_equal(rollup_prepare(r, &huge, &s1), -1);
    assert_int_equal(rollup_groups(r), 1);
    struct tuple t[3];
    assert_int_equal(groups_of(r, t, ARRAY_LEN(t)), 1);
    check_field("events", 6, t[0].f[6], (struct want)W("\0\0\0\0\0\0\0\x02"));

    rollup_reset(r);
    assert_int_equal(rollup_groups(r), 0);
    assert_int_equal(groups_of(r, t, ARRAY_LEN(t)), 0);
    add(r, &other, NULL);
    assert_int_equal(groups_of(r, t, ARRAY_LEN(t)), 1);
    check_field("after reset", 4, t[0].f[4], (struct want)W("cam-9"));
    check_field("after reset", 6, t[0].f[6], (struct want)W("\0\0\0\0\0\0\0\x01"));
}

/* Many groups (the table grows and rehashes several times): 5,000 cameras,
 * each seen k % 7 + 1 times in one minute, interleaved. */
static void test_many_groups(void **state)
{
    rollup_t *r = *state;
    enum { CAMS = 5000 };
    static char names[CAMS][16];
    for (int k = 0; k < CAMS; k++)
        snprintf(names[k], sizeof names[k], "cam-%d", k);
    for (int round = 0; round < 7; round++)
        for (int k = 0; k < CAMS; k++)
            if (round <= k % 7) {
                event_t ev = ev_of(names[k], "person", TS_A);
                ev.has_object_count = true, ev.object_count = k;
                add(r, &ev, NULL);
            }
    assert_int_equal(rollup_groups(r), CAMS);
    struct tuple *t = calloc(CAMS, sizeof *t);
    assert_non_null(t);
    assert_int_equal(groups_of(r, t, CAMS), CAMS);
    for (int k = 0; k < CAMS; k++) { /* first seen in round 0, in k order */
        assert_int_equal(t[k].f[4].len, (int32_t)strlen(names[k]));
        assert_memory_equal(t[k].f[4].p, names[k], strlen(names[k]));
        assert_int_equal((int64_t)rd64(t[k].f[6].p), k % 7 + 1);
        assert_int_equal((int64_t)rd64(t[k].f[7].p), (int64_t)k * (k % 7 + 1));
    }
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_site_name_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_commit_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_groups, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
