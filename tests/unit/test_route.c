/*
 * Unit tests for route_message(): one table of messages, each with the
 * routing written out by hand (kind, reason, join miss, the joined row's
 * site), run under every join.on_miss policy and timestamp policy it
 * exercises; then the dedup rules (a retry at another position is a
 * duplicate, a re-read of the same position is not; a rejected timestamp
 * does not occupy the window).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "camjoin/route.h"

/* 2024-01-01T00:00:00Z in ms, the "now" of every case */
#define NOW_MS INT64_C(1704067200000)
#define EV(id, cam, ts) "{\"event_id\":\"" id "\",\"camera_id\":\"" cam \
                        "\",\"event_ts\":\"" ts "\",\"event_type\":\"motion\"}"

static refdata_t *ref;
static char csv_path[64];

static int setup(void **state)
{
    (void)state;
    snprintf(csv_path, sizeof csv_path, "/tmp/test_route.XXXXXX");
    int fd = mkstemp(csv_path);
    assert_true(fd >= 0);
    static const char csv[] =
        "camera_id,site_id,site_name,zone,latitude,longitude\n"
        "cam-1,site-a,Depot,gate,1.5,2.5\n"
        "cam-2,site-b,Yard,dock,,\n";
    assert_int_equal(write(fd, csv, sizeof csv - 1), (ssize_t)(sizeof csv - 1));
    close(fd);
    char err[256];
    assert_int_equal(refdata_load(&ref, csv_path, err, sizeof err), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    refdata_free(ref);
    unlink(csv_path);
    return 0;
}

struct rcase {
    const char *name, *msg;
    enum join_on_miss on_miss;
    int64_t max_future_ms, max_age_ms;
    enum route_kind kind;
    const char *reason;  /* ROUTE_DEAD */
    int join_miss;
    const char *site;    /* ROUTE_ROW: the joined site_id, NULL for none */
};

static const struct rcase CASES[] = {
    {"joined row", EV("a1", "cam-1", "2024-01-01T00:00:00Z"), JOIN_KEEP, 0, 0,
     ROUTE_ROW, NULL, 0, "site-a"},
    {"second camera", EV("a2", "cam-2", "2023-12-31T23:59:59Z"), JOIN_KEEP, 0, 0,
     ROUTE_ROW, NULL, 0, "site-b"},
    {"miss kept", EV("a3", "cam-9", "2024-01-01T00:00:00Z"), JOIN_KEEP, 0, 0,
     ROUTE_ROW, NULL, 1, NULL},
    {"miss dropped", EV("a4", "cam-9", "2024-01-01T00:00:00Z"), JOIN_DROP, 0, 0,
     ROUTE_DROPPED, NULL, 1, NULL},
    {"miss dead-lettered", EV("a5", "cam-9", "2024-01-01T00:00:00Z"),
     JOIN_DEAD_LETTER, 0, 0, ROUTE_DEAD, "unknown_camera", 1, NULL},
    {"invalid json", "{\"event_id\":", JOIN_KEEP, 0, 0, ROUTE_DEAD, "invalid_json",
     0, NULL},
    {"not an object", "[1,2]", JOIN_KEEP, 0, 0, ROUTE_DEAD, "not_object", 0, NULL},
    {"empty", "", JOIN_KEEP, 0, 0, ROUTE_DEAD, "empty", 0, NULL},
    {"missing camera", "{\"event_id\":\"a6\",\"event_ts\":\"2024-01-01T00:00:00Z\","
     "\"event_type\":\"motion\"}", JOIN_KEEP, 0, 0, ROUTE_DEAD,
     "missing_field:camera_id", 0, NULL},
    /* max_future 60 s: 61 s ahead is refused, 59 s ahead is not */
    {"61 s in the future", EV("a7", "cam-1", "2024-01-01T00:01:01Z"), JOIN_KEEP,
     60000, 0, ROUTE_DEAD, "event_ts_in_future", 0, NULL},
    {"59 s in the future", EV("a8", "cam-1", "2024-01-01T00:00:59Z"), JOIN_KEEP,
     60000, 0, ROUTE_ROW, NULL, 0, "site-a"},
    /* max_age 1 h */
    {"2 h old", EV("a9", "cam-1", "2023-12-31T22:00:00Z"), JOIN_KEEP, 0, 3600000,
     ROUTE_DEAD, "event_ts_too_old", 0, NULL},
    {"30 min old", EV("a10", "cam-1", "2023-12-31T23:30:00Z"), JOIN_KEEP, 0,
     3600000, ROUTE_ROW, NULL, 0, "site-a"},
    /* the timestamp policy comes before the join */
    {"future and unknown", EV("a11", "cam-9", "2024-01-02T00:00:00Z"),
     JOIN_DEAD_LETTER, 60000, 0, ROUTE_DEAD, "event_ts_in_future", 0, NULL},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const struct rcase *c = &CASES[i];
        dedup_t *d = dedup_new(600000, 16);
        route_rules rules = {.max_message_bytes = 4096, .max_future_ms = c->max_future_ms,
                             .max_age_ms = c->max_age_ms, .on_miss = c->on_miss};
        route_result r;
        route_message(&rules, d, ref, c->msg, strlen(c->msg), 0, (int64_t)i, NOW_MS,
                      1000, &r);
        print_message("%s\n", c->name);
        assert_int_equal(r.kind, c->kind);
        assert_int_equal(r.join_miss, c->join_miss);
        assert_int_equal(r.dedup_full, 0);
        if (c->kind == ROUTE_DEAD)
            assert_string_equal(r.reason, c->reason);
        if (c->kind == ROUTE_ROW && c->site) {
            assert_non_null(r.row);
            assert_int_equal(r.row->site_id_len, strlen(c->site));
            assert_memory_equal(r.row->site_id, c->site, strlen(c->site));
        } else {
            assert_null(r.row);
        }
        /* the window holds the key exactly when a row or a dropped miss
         * got past the timestamp policy */
        size_t keys = c->kind == ROUTE_ROW || c->kind == ROUTE_DROPPED ||
                      (c->kind == ROUTE_DEAD && !strcmp(c->reason, "unknown_camera"));
        assert_int_equal(dedup_count(d), keys);
        route_clear(&r);
        dedup_free(d);
    }
}

static void test_dedup_positions(void **state)
{
    (void)state;
    dedup_t *d = dedup_new(600000, 16);
    route_rules rules = {.max_message_bytes = 4096, .on_miss = JOIN_KEEP,
                         .max_future_ms = 60000};
    const char *m = EV("dup-1", "cam-1", "2024-01-01T00:00:00Z");
    const char *late = EV("dup-2", "cam-1", "2024-01-01T01:00:00Z");
    const char *fixed = EV("dup-2", "cam-1", "2024-01-01T00:00:10Z");
    route_result r;
    route_message(&rules, d, ref, m, strlen(m), 3, 100, NOW_MS, 1000, &r);
    assert_int_equal(r.kind, ROUTE_ROW);
    route_clear(&r);
    /* the producer's retry: same id, another offset */
    route_message(&rules, d, ref, m, strlen(m), 3, 101, NOW_MS, 1001, &r);
    assert_int_equal(r.kind, ROUTE_DUPLICATE);
    assert_null(r.row);
    route_clear(&r);
    /* the same message read again (after a rebalance): not a duplicate */
    route_message(&rules, d, ref, m, strlen(m), 3, 100, NOW_MS, 1002, &r);
    assert_int_equal(r.kind, ROUTE_ROW);
    route_clear(&r);
    /* refused by the timestamp policy, it does not occupy the window … */
    route_message(&rules, d, ref, late, strlen(late), 3, 102, NOW_MS, 1003, &r);
    assert_int_equal(r.kind, ROUTE_DEAD);
    assert_string_equal(r.reason, "event_ts_in_future");
    route_clear(&r);
    /* … so a corrected event with that id is written */
    route_message(&rules, d, ref, fixed, strlen(fixed), 3, 103, NOW_MS, 1004, &r);
    assert_int_equal(r.kind, ROUTE_ROW);
    route_clear(&r);
    assert_int_equal(dedup_count(d), 2);
    dedup_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_dedup_positions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
