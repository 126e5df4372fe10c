/*
 * Unit tests for the --replay-from parser (replay_parse): every
 * form of the contract, each against the value written out by hand, the
 * relative form against the wall clock read around the call, and the specs
 * it must refuse (with the spec named in the error).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "camjoin/replay.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static replay_spec_t parse_ok(const char *spec)
{
    replay_spec_t r;
    char err[256] = "";
    assert_int_equal(replay_parse(spec, &r, err, sizeof err), 0);
    assert_string_equal(err, "");
    return r;
}

static void test_none(void **state)
{
    (void)state;
    replay_spec_t r = parse_ok(NULL);
    assert_int_equal(r.kind, REPLAY_NONE);
    r = parse_ok("");
    assert_int_equal(r.kind, REPLAY_NONE);
}

static void test_positions(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("earliest").kind, REPLAY_EARLIEST);
    assert_int_equal(parse_ok("latest").kind, REPLAY_LATEST);
    replay_spec_t r = parse_ok("120000");
    assert_int_equal(r.kind, REPLAY_OFFSET);
    assert_int_equal(r.offset, 120000);
    r = parse_ok("3:120000,0:7");
    assert_int_equal(r.kind, REPLAY_PARTITIONS);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.partitions[0], 3);
    assert_int_equal(r.offsets[0], 120000);
    assert_int_equal(r.partitions[1], 0);
    assert_int_equal(r.offsets[1], 7);
    replay_spec_clear(&r);
}

static void test_times(void **state)
{
    (void)state;
    /* 2026-12-02T03:00:00.250Z = 1796180400 s + 250 ms */
    replay_spec_t r = parse_ok("@1796180400250");
    assert_int_equal(r.kind, REPLAY_TIME);
    assert_int_equal(r.time_ms, INT64_C(1796180400250));
    r = parse_ok("@2026-12-02T03:00:00.250Z");
    assert_int_equal(r.time_ms, INT64_C(1796180400250));
    r = parse_ok("@2026-12-02T04:30:00.250+01:30");
    assert_int_equal(r.time_ms, INT64_C(1796180400250));
}

static void test_relative(void **state)
{
    (void)state;
    static const struct { const char *spec; int64_t ago_ms; } cases[] = {
        {"@-1h", 3600000}, {"@-90m", 5400000}, {"@-30s", 30000}, {"@-250ms", 250},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t before = now_ms();
        replay_spec_t r = parse_ok(cases[i].spec);
        int64_t after = now_ms();
        assert_int_equal(r.kind, REPLAY_TIME);
        assert_in_range(r.time_ms, before - cases[i].ago_ms, after - cases[i].ago_ms);
    }
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "yesterday", "@", "@-", "@-0s", "@-1x", "@-h", "@2026-13-01T00:00:00Z", "-1", "1:",
        ":5", "1:2,1:3", "1:2,", "12a", "@12a",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        replay_spec_t r;
        char err[256] = "";
        assert_int_equal(replay_parse(bad[i], &r, err, sizeof err), -1);
        assert_int_equal(r.kind, REPLAY_NONE);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", bad[i]);
        assert_non_null(strstr(err, quoted));
    }
}

/* --replay-until: the same syntax but earliest and latest, its own message */
static void test_until(void **state)
{
    (void)state;
    replay_spec_t r;
    char err[256] = "";
    assert_int_equal(replay_parse_until("3:120,4:7", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, REPLAY_PARTITIONS);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.partitions[1], 4);
    assert_int_equal(r.offsets[1], 7);
    replay_spec_clear(&r);
    assert_int_equal(replay_parse_until("@1700000000000", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, REPLAY_TIME);
    assert_int_equal(r.time_ms, 1700000000000);
    assert_int_equal(replay_parse_until("500", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, REPLAY_OFFSET);
    assert_int_equal(r.offset, 500);
    assert_int_equal(replay_parse_until(NULL, &r, err, sizeof err), 0);
    assert_int_equal(r.kind, REPLAY_NONE);
    static const char *const refused[] = {"earliest", "latest", "x", "3:"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        char want[256];
        snprintf(want, sizeof want, "--replay-until: bad spec \"%s\" (use OFFSET, "
                 "P:OFFSET[,P:OFFSET...], @RFC3339, @EPOCH_MS or @-DURATION)", refused[i]);
        assert_int_equal(replay_parse_until(refused[i], &r, err, sizeof err), -1);
        assert_string_equal(err, want);
        assert_int_equal(r.kind, REPLAY_NONE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_relative),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_until),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
