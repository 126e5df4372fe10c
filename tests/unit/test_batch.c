/*
 * Unit tests for batch: COPY text escaping, row encoding, dead letters,
 * per-partition offsets. Expected rows are written out by hand from the
 * PostgreSQL COPY text rules; %.17g / %.9g values were computed with Python.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "camjoin/batch.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TOPIC "cam.events"

static int setup(void **state)
{
    *state = batch_new(TOPIC);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    batch_free(*state);
    return 0;
}

/* An event built by hand (the batch must not depend on event_parse). */
static event_t make_event(const char *id, const char *cam, const char *type,
                          int64_t ts_us)
{
    return (event_t){.event_id = id, .event_id_len = strlen(id),
                     .camera_id = cam, .camera_id_len = strlen(cam),
                     .event_type = type, .event_type_len = strlen(type),
                     .event_ts_us = ts_us};
}

static void assert_data(const char *got, size_t got_len, const char *want)
{
    assert_int_equal(got_len, strlen(want));
    assert_memory_equal(got, want, got_len);
}

/* ---- escaping ----------------------------------------------------------- */

static const struct {
    const char *name, *src;
    size_t len; /* 0 = strlen(src) */
    const char *want; /* NULL = rejected */
} escape_cases[] = {
    {"empty", "", 0, ""},
    {"plain", "plain text", 0, "plain text"},
    {"tab", "a\tb", 0, "a\\tb"},
    {"newline", "a\nb", 0, "a\\nb"},
    {"carriage return", "a\r\nb", 0, "a\\r\\nb"},
    {"backslash", "a\\b\\\\", 0, "a\\\\b\\\\\\\\"},
    {"other COPY escapes", "\b\f\v", 0, "\\b\\f\\v"},
    {"other controls raw", "\x01\x1f\x7f", 0, "\x01\x1f\x7f"},
    {"utf-8 untouched", "caf\xc3\xa9 \xf0\x9f\x98\x80", 0, "caf\xc3\xa9 \xf0\x9f\x98\x80"},
    {"JSON text", "{\"k\":\"a\\\"b\"}", 0, "{\"k\":\"a\\\\\"b\"}"},
    {"NUL", "a\0b", 3, NULL},
    {"NUL first", "\0", 1, NULL},
};

static void test_escape(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(escape_cases); i++) {
        size_t len = escape_cases[i].len ? escape_cases[i].len : strlen(escape_cases[i].src);
        char dst[64];
        ssize_t n = batch_escape_text(dst, escape_cases[i].src, len);
        const char *want = escape_cases[i].want;
        if (!want && n != -1)
            fail_msg("%s: accepted", escape_cases[i].name);
        if (want && (n < 0 || (size_t)n != strlen(want) || memcmp(dst, want, (size_t)n)))
            fail_msg("%s: got %.*s", escape_cases[i].name, (int)(n < 0 ? 0 : n), dst);
    }
}

/* The worst case is exactly 2 * len. */
static void test_escape_worst_case(void **state)
{
    (void)state;
    char src[] = "\\\t\n\r\b\f\v";
    size_t len = sizeof src - 1;
    char *dst = malloc(2 * len); /* exact size: ASan catches an overrun */
    assert_non_null(dst);
    assert_int_equal(batch_escape_text(dst, src, len), 2 * len);
    assert_memory_equal(dst, "\\\\\\t\\n\\r\\b\\f\\v", 2 * len);
    free(dst);
}

/* ---- event rows ---------------------------------------------------------- */

static const refdata_row_t full_ref = {
    .camera_id = "cam-1", .camera_id_len = 5,
    .site_id = "s1", .site_id_len = 2,
    .site_name = "Site \xc3\xa9\n", .site_name_len = 8,
    .zone = "", .zone_len = 0,
    .has_latitude = true, .latitude = 52.52,
    .has_longitude = true, .longitude = 13.405,
};

static const refdata_row_t no_coords_ref = {
    .camera_id = "c", .camera_id_len = 1,
    .site_id = "s\\2", .site_id_len = 3,
    .site_name = "North", .site_name_len = 5,
    .zone = "z", .zone_len = 1,
};

struct row_case {
    const char *name;
    event_t ev;
    const refdata_row_t *ref;
    int32_t partition;
    int64_t offset;
    const char *want;
};

static void test_event_rows(void **state)
{
    batch_t *b = *state;
    const struct row_case cases[] = {
        {"all fields + ref",
         {.event_id = "e\t1", .event_id_len = 3, .camera_id = "cam-1",
          .camera_id_len = 5, .event_type = "motion", .event_type_len = 6,
          .event_ts_us = INT64_C(1709243999123456), .has_confidence = true,
          .confidence = 0.95, .has_object_count = true, .object_count = 3,
          .attributes = "{\"k\":\"a\\\\b\",\"n\":[1,2]}"},
         &full_ref, 7, INT64_C(1234567890123),
         "e\\t1\t2024-02-29 21:59:59.123456+00\tcam-1\tmotion\t0.95\t3\t"
         "{\"k\":\"a\\\\\\\\b\",\"n\":[1,2]}\ts1\tSite \xc3\xa9\\n\t\t"
         "52.520000000000003\t13.404999999999999\t7\t1234567890123\n"},
        {"optional absent, no ref", make_event("e2", "c", "t", 0), NULL, 0, 0,
         "e2\t1970-01-01 00:00:00.000000+00\tc\tt\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t"
         "\\N\t\\N\t0\t0\n"},
        {"ref without coordinates, 9-digit confidence",
         {.event_id = "e3", .event_id_len = 2, .camera_id = "c", .camera_id_len = 1,
          .event_type = "t", .event_type_len = 1, .event_ts_us = 1,
          .has_confidence = true, .confidence = 0.123456789123,
          .has_object_count = true, .object_count = 0},
         &no_coords_ref, 2147483647, INT64_C(9223372036854775806),
         "e3\t1970-01-01 00:00:00.000001+00\tc\tt\t0.123456789\t0\t\\N\ts\\\\2\t"
         "North\tz\t\\N\t\\N\t2147483647\t9223372036854775806\n"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t len;
        batch_reset(b);
        assert_int_equal(batch_add_event(b, &cases[i].ev, cases[i].ref,
                                         cases[i].partition, cases[i].offset), 0);
        const char *data = batch_event_data(b, &len);
        if (len != strlen(cases[i].want) || memcmp(data, cases[i].want, len) != 0)
            fail_msg("%s: got\n%.*s", cases[i].name, (int)len, data);
        assert_int_equal(batch_rows(b), 1);
        assert_int_equal(batch_messages(b), 1);
        assert_int_equal(batch_dead(b), 0);
        batch_dead_data(b, &len);
        assert_int_equal(len, 0);
    }
}

/* Text that COPY cannot carry: the add fails and leaves the batch as it was,
 * even though earlier fields of the row had already been encoded. */
static void test_event_nul_rejected(void **state)
{
    batch_t *b = *state;
    const char want[] = "e\t1970-01-01 00:00:00.000000+00\tc\tt\t\\N\t\\N\t\\N\t\\N\t"
                        "\\N\t\\N\t\\N\t\\N\t1\t10\n";
    event_t good = make_event("e", "c", "t", 0);
    event_t bad_type = good;
    bad_type.event_type = "a\0b";
    bad_type.event_type_len = 3;
    refdata_row_t bad_ref = full_ref;
    bad_ref.zone = "z\0";
    bad_ref.zone_len = 2;

    assert_int_equal(batch_add_event(b, &good, NULL, 1, 10), 0);
    assert_int_equal(batch_add_event(b, &bad_type, NULL, 2, 20), -1);
    assert_int_equal(batch_add_event(b, &good, &bad_ref, 2, 21), -1);

    size_t len, n;
    const char *data = batch_event_data(b, &len);
    assert_data(data, len, want);
    assert_int_equal(batch_rows(b), 1);
    assert_int_equal(batch_messages(b), 1);
    batch_offset_t *off = batch_offsets(b, &n);
    assert_int_equal(n, 1);
    assert_int_equal(off[0].partition, 1);
    assert_int_equal(off[0].next, 11);
}

/* Many rows: the buffer grows past its initial size and keeps every byte. */
static void test_event_growth(void **state)
{
    batch_t *b = *state;
    const char row[] = "id\t1970-01-01 00:00:00.000000+00\tcam\ttype\t\\N\t\\N\t\\N\t"
                       "\\N\t\\N\t\\N\t\\N\t\\N\t3\t5\n";
    const size_t rows = 5000, row_len = sizeof row - 1;
    event_t ev = make_event("id", "cam", "type", 0);
    for (size_t i = 0; i < rows; i++)
        assert_int_equal(batch_add_event(b, &ev, NULL, 3, 5), 0);
    size_t len;
    const char *data = batch_event_data(b, &len);
    assert_int_equal(len, rows * row_len);
    for (size_t i = 0; i < rows; i++)
        assert_memory_equal(data + i * row_len, row, row_len);
    assert_int_equal(batch_rows(b), rows);
}

/* ---- dead letters -------------------------------------------------------- */

static const struct {
    const char *name;
    const void *payload;
    size_t len;
    const char *reason;
    const char *want;
} dead_cases[] = {
    {"binary payload", "\x00\xff\t", 3, "invalid_json",
     TOPIC "\t2\t99\t\\\\x00ff09\tinvalid_json\n"},
    {"NULL payload", NULL, 0, "empty", TOPIC "\t2\t99\t\\N\tempty\n"},
    {"zero-length payload", "", 0, "empty", TOPIC "\t2\t99\t\\\\x\tempty\n"},
    {"text payload, escaped reason", "{\"a\":1}", 7, "bad\ttab\\",
     TOPIC "\t2\t99\t\\\\x7b2261223a317d\tbad\\ttab\\\\\n"},
};

static void test_dead_letters(void **state)
{
    batch_t *b = *state;
    for (size_t i = 0; i < ARRAY_LEN(dead_cases); i++) {
        size_t len;
        batch_reset(b);
        assert_int_equal(batch_add_dead(b, 2, 99, dead_cases[i].payload,
                                        dead_cases[i].len, dead_cases[i].reason), 0);
        const char *data = batch_dead_data(b, &len);
        if (len != strlen(dead_cases[i].want) ||
            memcmp(data, dead_cases[i].want, len) != 0)
            fail_msg("%s: got\n%.*s", dead_cases[i].name, (int)len, data);
        assert_int_equal(batch_dead(b), 1);
        assert_int_equal(batch_rows(b), 0);
        assert_int_equal(batch_messages(b), 1);
        batch_event_data(b, &len);
        assert_int_equal(len, 0);
    }
}

static void test_dead_topic_escaped(void **state)
{
    (void)state;
    batch_t *b = batch_new("odd\\topic");
    assert_non_null(b);
    assert_int_equal(batch_add_dead(b, 0, 1, NULL, 0, "r"), 0);
    size_t len;
    const char *data = batch_dead_data(b, &len);
    assert_data(data, len, "odd\\\\topic\t0\t1\t\\N\tr\n");
    batch_free(b);
}

/* ---- offsets ------------------------------------------------------------- */

static void test_offsets(void **state)
{
    batch_t *b = *state;
    event_t ev = make_event("e", "c", "t", 0);
    assert_int_equal(batch_note_offset(b, 0, 10), 0);
    assert_int_equal(batch_add_event(b, &ev, NULL, 1, 5), 0);
    assert_int_equal(batch_add_dead(b, 0, 11, "x", 1, "invalid_json"), 0);
    assert_int_equal(batch_note_offset(b, 2, 100), 0);
    assert_int_equal(batch_note_offset(b, 1, 7), 0);
    assert_int_equal(batch_note_offset(b, 0, 9), 0); /* lower: next stays 12 */
    assert_int_equal(batch_add_event(b, &ev, NULL, 2, 101), 0);
    assert_int_equal(batch_note_offset(b, 2, 102), 0);

    static const batch_offset_t want[] = {
        {0, BATCH_OFFSET_NONE, 12},
        {1, BATCH_OFFSET_NONE, 8},
        {2, BATCH_OFFSET_NONE, 103},
    };
    size_t n;
    batch_offset_t *off = batch_offsets(b, &n);
    assert_int_equal(n, ARRAY_LEN(want));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(off[i].partition, want[i].partition);
        assert_int_equal(off[i].expected, want[i].expected);
        assert_int_equal(off[i].next, want[i].next);
    }
    assert_int_equal(batch_rows(b), 2);
    assert_int_equal(batch_dead(b), 1);
    assert_int_equal(batch_messages(b), 8);

    /* The pipeline fills in the fence; the batch keeps it. */
    off[1].expected = 3;
    assert_int_equal(batch_note_offset(b, 1, 8), 0);
    off = batch_offsets(b, &n);
    assert_int_equal(off[1].expected, 3);
    assert_int_equal(off[1].next, 9);
}

/* Many partitions: the array grows and each keeps its own range. */
static void test_offsets_many_partitions(void **state)
{
    batch_t *b = *state;
    const int32_t parts = 100;
    for (int round = 0; round < 3; round++)
        for (int32_t p = parts - 1; p >= 0; p--)
            assert_int_equal(batch_note_offset(b, p, (int64_t)p * 1000 + round), 0);
    size_t n;
    batch_offset_t *off = batch_offsets(b, &n);
    assert_int_equal(n, (size_t)parts);
    for (size_t i = 0; i < n; i++) {
        int32_t p = parts - 1 - (int32_t)i; /* first-touched order */
        assert_int_equal(off[i].partition, p);
        assert_int_equal(off[i].next, (int64_t)p * 1000 + 3);
        assert_int_equal(off[i].expected, BATCH_OFFSET_NONE);
    }
    assert_int_equal(batch_messages(b), 3 * (size_t)parts);
}

static void test_reset(void **state)
{
    batch_t *b = *state;
    event_t ev = make_event("e", "c", "t", 0);
    assert_int_equal(batch_add_event(b, &ev, NULL, 4, 40), 0);
    assert_int_equal(batch_add_dead(b, 5, 50, "p", 1, "r"), 0);
    assert_int_equal(batch_note_offset(b, 6, 60), 0);
    size_t len;
    const char *events_before = batch_event_data(b, &len);
    const char *dead_before = batch_dead_data(b, &len);

    batch_reset(b);
    size_t n;
    assert_int_equal(batch_rows(b), 0);
    assert_int_equal(batch_dead(b), 0);
    assert_int_equal(batch_messages(b), 0);
    batch_offsets(b, &n);
    assert_int_equal(n, 0);
    assert_ptr_equal(batch_event_data(b, &len), events_before); /* memory kept */
    assert_int_equal(len, 0);
    assert_ptr_equal(batch_dead_data(b, &len), dead_before);
    assert_int_equal(len, 0);

    /* Nothing from before the reset leaks into the next batch. */
    assert_int_equal(batch_note_offset(b, 4, 3), 0);
    batch_offset_t *off = batch_offsets(b, &n);
    assert_int_equal(n, 1);
    assert_int_equal(off[0].partition, 4);
    assert_int_equal(off[0].next, 4);
    assert_int_equal(off[0].expected, BATCH_OFFSET_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_escape_worst_case),
        cmocka_unit_test_setup_teardown(test_event_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_nul_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters, setup, teardown),
        cmocka_unit_test(test_dead_topic_escaped),
        cmocka_unit_test_setup_teardown(test_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_many_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
